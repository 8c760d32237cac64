//! A shard's life: the shutdown signal, the requests and cross-shard calls
//! in flight (drained before the shard stops), and the heartbeat of its
//! periodic tasks.

use std::cell::Cell;
use std::time::Duration;

use crate::notify::Notify;

/// Shutdown and draining state of one shard.
#[derive(Default)]
pub struct Lifecycle {
    /// Requests being handled, for draining on shutdown.
    pub active_requests: Cell<usize>,
    /// Calls from other shards being run here, for draining on shutdown.
    pub active_jobs: Cell<usize>,
    /// Woken when a request or call finishes.
    pub request_done: Notify,
    /// Notified once when the broker shuts down.
    pub shutdown: Notify,
    /// Notified once this shard has drained and stops taking calls.
    pub stopped: Notify,
}

impl Lifecycle {
    /// Counts a request (or a call from another shard) as started.
    pub fn started(counter: &Cell<usize>) {
        counter.set(counter.get() + 1);
    }

    /// Counts one as done and wakes whoever drains.
    pub fn done(&self, counter: &Cell<usize>) {
        counter.set(counter.get() - 1);
        self.request_done.notify();
    }

    /// Sleeps for `every`; returns `true` instead when the broker starts
    /// shutting down (after generation `since` of [`Lifecycle::shutdown`]).
    /// The heartbeat of the shard's periodic tasks.
    pub async fn sleep_or_shutdown(&self, every: Duration, since: u64) -> bool {
        futures_lite::future::or(
            async {
                glommio::timer::sleep(every).await;
                false
            },
            async {
                self.shutdown.changed(since).await;
                true
            },
        )
        .await
    }
}
