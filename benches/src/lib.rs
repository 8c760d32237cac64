//! sluice-bench: an rdkafka load generator for Sluice and any other
//! Kafka-compatible broker. `produce` measures send-to-delivery-report
//! latency, `consume` reads a topic back and verifies it, `e2e` measures
//! send-to-receipt latency, and `baseline` measures the machine itself
//! (disk bandwidth, fdatasync latency, loopback TCP) to read those against.
//! The binary (`src/bin/sluice-bench.rs`) only parses flags and prints;
//! everything else lives in these modules.

pub mod args;
pub mod baseline;
pub mod client;
pub mod consume;
pub mod e2e;
pub mod metadata;
pub mod payload;
pub mod produce;
pub mod rebalance;
pub mod report;
pub mod stats;
pub mod suite;
pub mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stats::MB;

/// Prints a progress line to stderr every second until `done`: the rate of
/// `messages` (and `bytes`) over the last second, then `extra`'s words.
pub fn progress(
    done: &AtomicBool,
    extra: impl Fn(Duration) -> String,
    bytes: Option<&AtomicU64>,
    messages: &AtomicU64,
) {
    let start = Instant::now();
    let mut next = start + Duration::from_secs(1);
    let (mut last_msgs, mut last_bytes) = (0u64, 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        let msgs = messages.load(Ordering::Relaxed);
        let b = bytes.map(|b| b.load(Ordering::Relaxed)).unwrap_or(0);
        eprintln!(
            "[{:>4}s] {:>9} msgs/s {:>8.1} MB/s  {}",
            (now - start).as_secs(),
            msgs - last_msgs,
            (b - last_bytes) as f64 / MB,
            extra(now - start)
        );
        (last_msgs, last_bytes) = (msgs, b);
        next += Duration::from_secs(1);
    }
}
