//! Who may connect: at most `--max-connections` connections at once, and
//! `--max-connections-per-ip` from one client address (Kafka's
//! `max.connections` and `max.connections.per.ip`). One gate shared by
//! every shard's accept loop, so the counts are exact; a connection passes
//! it once, off the request path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The broker's connection counts and limits.
pub struct ConnectionGate {
    max_total: usize,
    /// 0: no limit per address.
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    accepted: u64,
    refused: u64,
}

/// A connection let in; it is counted until this is dropped.
pub struct Admitted {
    gate: Arc<ConnectionGate>,
    ip: Option<IpAddr>,
}

impl ConnectionGate {
    /// A gate with these limits (`max_per_ip` 0: none).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Lets a connection from `peer` in, or says which limit it meets and
    /// how many were refused so far.
    pub fn admit(self: &Arc<Self>, peer: Option<SocketAddr>) -> Result<Admitted, (String, u64)> {
        let ip = peer.map(|p| p.ip());
        // A poisoned lock means a panic, which has already ended the process.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = ip.map_or(0, |ip| counts.per_ip.get(&ip).copied().unwrap_or(0));
        let refusal = if counts.total >= self.max_total {
            Some(format!(
                "{} connections open (--max-connections)",
                counts.total
            ))
        } else if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            Some(format!(
                "{from_ip} connections open from this address (--max-connections-per-ip)"
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            counts.refused += 1;
            return Err((why, counts.refused));
        }
        counts.total += 1;
        counts.accepted += 1;
        if let Some(ip) = ip {
            *counts.per_ip.entry(ip).or_default() += 1;
        }
        Ok(Admitted {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().0
    }

    /// Connections open now, accepted and refused so far.
    pub fn counts(&self) -> (usize, u64, u64) {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        (c.total, c.accepted, c.refused)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.gate.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(ip) = self.ip {
            if let Some(n) = counts.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_address() {
        let gate = ConnectionGate::new(3, 2);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let a1 = gate.admit(Some(a)).unwrap();
        let _a2 = gate.admit(Some(a)).unwrap();
        let refused = |r: Result<Admitted, (String, u64)>| r.err().expect("refused").0;
        assert!(refused(gate.admit(Some(a))).contains("per-ip"));
        let _b1 = gate.admit(Some(b)).unwrap();
        assert!(refused(gate.admit(Some(b))).contains("--max-connections)"));
        assert_eq!(gate.open(), 3);
        drop(a1);
        let again = gate.admit(Some(a)).unwrap();
        assert_eq!(gate.open(), 3);
        drop(again);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(Some(b)).is_ok());
    }
}
