//! Counts of a run: per (api, version) how many requests were sent, how
//! they ended, and the anomalies seen (an answer that does not decode, a
//! response to the wrong request, a well-formed request whose connection
//! was closed...), each kept with the request that caused it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kafka_protocol::messages::ApiKey;

/// How the requests of one (api, version) ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    /// An answer with the request's correlation id.
    pub answered: u64,
    /// The broker closed the connection.
    pub closed: u64,
    /// The broker answered the probe sent after it, but not the request.
    pub unanswered: u64,
    /// Nothing within the response timeout (a long poll, or a frame the
    /// broker is still waiting for).
    pub timed_out: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.closed += o.closed;
        self.unanswered += o.unanswered;
        self.timed_out += o.timed_out;
    }
}

/// One anomaly, with its request.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: String,
    pub index: u64,
    pub api: ApiKey,
    pub version: i16,
    pub classes: Vec<String>,
    pub detail: String,
    /// The request frame in hex (cut at 4 KB).
    pub hex: String,
}

/// Anomalies of one kind kept in full; the rest are counted.
const KEEP_PER_KIND: usize = 3;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Requests whose header named a supported (api, version) and whose
    /// body was of that version: the coverage.
    pub per_pair: BTreeMap<(i16, i16), Counts>,
    /// Requests with a hostile header or frame, by class.
    pub hostile: BTreeMap<String, Counts>,
    pub valid: u64,
    pub fields_mutated: u64,
    pub bytes_mutated: u64,
    pub reconnects: u64,
    pub anomaly_counts: BTreeMap<String, u64>,
    pub anomalies: Vec<Anomaly>,
}

/// `bytes` in hex, cut at `max` bytes.
pub fn hex(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(2 * bytes.len().min(max) + 16);
    for b in bytes.iter().take(max) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        let _ = write!(s, "...({} bytes)", bytes.len());
    }
    s
}

impl Stats {
    pub fn anomaly(&mut self, a: Anomaly) {
        let n = self.anomaly_counts.entry(a.kind.clone()).or_default();
        *n += 1;
        if *n as usize <= KEEP_PER_KIND {
            self.anomalies.push(a);
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        for (k, c) in &o.per_pair {
            self.per_pair.entry(*k).or_default().add(c);
        }
        for (k, c) in &o.hostile {
            self.hostile.entry(k.clone()).or_default().add(c);
        }
        self.valid += o.valid;
        self.fields_mutated += o.fields_mutated;
        self.bytes_mutated += o.bytes_mutated;
        self.reconnects += o.reconnects;
        for a in &o.anomalies {
            let kept = self.anomalies.iter().filter(|x| x.kind == a.kind).count();
            if kept < KEEP_PER_KIND {
                self.anomalies.push(a.clone());
            }
        }
        for (k, n) in &o.anomaly_counts {
            *self.anomaly_counts.entry(k.clone()).or_default() += n;
        }
    }

    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.per_pair.values().chain(self.hostile.values()) {
            t.add(c);
        }
        t
    }

    /// Supported (api, version) pairs never sent with a valid header.
    pub fn missing(&self, pairs: &[(ApiKey, i16)]) -> Vec<(ApiKey, i16)> {
        pairs
            .iter()
            .filter(|(a, v)| {
                self.per_pair
                    .get(&(*a as i16, *v))
                    .is_none_or(|c| c.sent == 0)
            })
            .copied()
            .collect()
    }

    /// A human summary: totals, then per API its versions covered and how
    /// its requests ended, then hostile headers and anomalies.
    pub fn summary(&self, pairs: &[(ApiKey, i16)]) -> String {
        let mut s = String::new();
        let t = self.total();
        let covered = pairs.len() - self.missing(pairs).len();
        let _ = writeln!(
            s,
            "requests sent: {} (valid {}, field-mutated {}, byte-mutated {}, hostile header/frame {})",
            t.sent,
            self.valid,
            self.fields_mutated,
            self.bytes_mutated,
            self.hostile.values().map(|c| c.sent).sum::<u64>()
        );
        let _ = writeln!(
            s,
            "answered {}, connection closed {}, unanswered {}, timed out {}, reconnects {}",
            t.answered, t.closed, t.unanswered, t.timed_out, self.reconnects
        );
        let _ = writeln!(
            s,
            "coverage: {covered} of {} (api, version) pairs",
            pairs.len()
        );
        let _ = writeln!(
            s,
            "{:<18} {:>9} {:>9} {:>9} {:>8} {:>10} {:>9}",
            "api", "versions", "sent", "answered", "closed", "unanswered", "timed out"
        );
        let mut apis: Vec<ApiKey> = pairs.iter().map(|p| p.0).collect();
        apis.dedup();
        for api in apis {
            let versions: Vec<i16> = pairs.iter().filter(|p| p.0 == api).map(|p| p.1).collect();
            let mut c = Counts::default();
            let mut hit = 0;
            for v in &versions {
                if let Some(x) = self.per_pair.get(&(api as i16, *v)) {
                    c.add(x);
                    hit += usize::from(x.sent > 0);
                }
            }
            let _ = writeln!(
                s,
                "{:<18} {:>4}/{:<4} {:>9} {:>9} {:>8} {:>10} {:>9}",
                format!("{api:?}"),
                hit,
                versions.len(),
                c.sent,
                c.answered,
                c.closed,
                c.unanswered,
                c.timed_out
            );
        }
        for (class, c) in &self.hostile {
            let _ = writeln!(
                s,
                "{:<28} {:>9} sent, {} answered, {} closed, {} unanswered, {} timed out",
                class, c.sent, c.answered, c.closed, c.unanswered, c.timed_out
            );
        }
        if self.anomaly_counts.is_empty() {
            let _ = writeln!(s, "anomalies: none");
        } else {
            let _ = writeln!(s, "anomalies:");
            for (kind, n) in &self.anomaly_counts {
                let _ = writeln!(s, "  {kind}: {n}");
            }
            for a in &self.anomalies {
                let _ = writeln!(
                    s,
                    "  - {} at request {} ({:?} v{}) classes {:?}: {}\n    request: {}",
                    a.kind, a.index, a.api, a.version, a.classes, a.detail, a.hex
                );
            }
        }
        s
    }
}
