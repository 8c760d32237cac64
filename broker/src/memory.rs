//! The shard's memory budget. Request bytes being handled, what a Fetch
//! may read, and response bytes until they are written all draw from one
//! budget per shard (`--memory-budget-mib`, split evenly between shards).
//! Past it, connections stop taking new requests off their sockets until
//! memory comes back: backpressure, not growth. Shard-local (a `Cell` and
//! a [`Notify`]), so the hot path takes no lock and no atomic.

use std::cell::Cell;
use std::rc::Rc;

use crate::notify::Notify;

/// Largest request frame that may use the headroom of
/// [`MemoryBudget::reserve_request`].
pub const SMALL_REQUEST: usize = 64 << 10;

/// One shard's budget.
pub struct MemoryBudget {
    limit: usize,
    used: Cell<usize>,
    peak: Cell<usize>,
    released: Notify,
}

/// Bytes held against a budget; given back when dropped.
pub struct Reservation {
    budget: Rc<MemoryBudget>,
    bytes: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Rc<MemoryBudget> {
        Rc::new(MemoryBudget {
            limit,
            used: Cell::new(0),
            peak: Cell::new(0),
            released: Notify::default(),
        })
    }

    /// Waits until `bytes` fit, then holds them. When nothing at all is
    /// held, any size is let in alone, so a request larger than the whole
    /// budget is slow, never stuck.
    pub async fn reserve(self: &Rc<Self>, bytes: usize) -> Reservation {
        while self.used.get() > 0 && self.used.get().saturating_add(bytes) > self.limit {
            let seen = self.released.generation();
            self.released.changed(seen).await;
        }
        self.force(bytes)
    }

    /// A request frame's bytes: as [`MemoryBudget::reserve`], except that a
    /// small frame (Metadata, heartbeats, commits, the request of a fetch)
    /// may go an eighth of the budget past it. Large reads and writes spend
    /// the budget; the requests that steer clients keep being answered.
    pub async fn reserve_request(self: &Rc<Self>, bytes: usize) -> Reservation {
        if bytes > SMALL_REQUEST {
            return self.reserve(bytes).await;
        }
        let ceiling = self.limit + self.limit / 8;
        while self.used.get().saturating_add(bytes) > ceiling {
            let seen = self.released.generation();
            self.released.changed(seen).await;
        }
        self.force(bytes)
    }

    /// Holds `bytes` if they fit now, else nothing: for state that lives
    /// long (group members), which must be refused rather than wait.
    pub fn try_reserve(self: &Rc<Self>, bytes: usize) -> Option<Reservation> {
        (self.used.get().saturating_add(bytes) <= self.limit).then(|| self.force(bytes))
    }

    /// Holds `bytes` at once: for memory that already exists (a response
    /// built by a request that was let in), so that it counts until written.
    pub fn force(self: &Rc<Self>, bytes: usize) -> Reservation {
        let used = self.used.get() + bytes;
        self.used.set(used);
        self.peak.set(self.peak.get().max(used));
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Most bytes held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.get()
    }

    /// The budget.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let budget = &self.budget;
        budget.used.set(budget.used.get() - self.bytes);
        budget.released.notify();
    }
}

/// Budget per shard when `--memory-budget-mib` is not given.
pub const DEFAULT_PER_SHARD: usize = 32 << 20;

/// The default budget of `shards` shards: [`DEFAULT_PER_SHARD`] each, and
/// at most a quarter of the machine's memory (`MemTotal`; 1 GiB where it
/// cannot be read). Enough to keep the WAL's flushes full: measured, a
/// larger budget (a quarter of 24 GiB) only let requests queue in memory
/// and cost more CPU per byte (README, "Memory budget").
pub fn default_budget_bytes(shards: usize) -> usize {
    let quarter = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(1 << 30, |kib| kib * 1024 / 4);
    quarter.min(DEFAULT_PER_SHARD * shards.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_wait_for_room_and_one_always_gets_in() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(async {
                let budget = MemoryBudget::new(100);
                // Larger than the whole budget, but alone: let in.
                let huge = budget.reserve(1_000).await;
                assert_eq!(budget.used(), 1_000);
                let waiting = glommio::spawn_local({
                    let budget = budget.clone();
                    async move { budget.reserve(60).await }
                });
                glommio::yield_if_needed().await;
                glommio::executor().yield_task_queue_now().await;
                assert_eq!(budget.used(), 1_000, "60 more bytes did not wait");
                drop(huge);
                let sixty = waiting.await;
                assert_eq!((budget.used(), sixty.bytes()), (60, 60));
                // Forced bytes count at once, past the limit if need be.
                let response = budget.force(80);
                assert_eq!(budget.used(), 140);
                drop((sixty, response));
                assert_eq!((budget.used(), budget.peak()), (0, 1_000));
                // Long-lived state is refused past the limit, never let in alone.
                let most = budget.try_reserve(100).expect("fits");
                assert!(budget.try_reserve(1).is_none());
                drop(most);
                assert!(budget.try_reserve(101).is_none());
            });
    }
}
