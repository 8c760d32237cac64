//! The consume side: read the topic from the beginning with `assign` (no
//! group membership, nothing committed), measure throughput and verify the
//! count and per-partition order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::args::{Limit, Opts};
use crate::client::{self, Result};
use crate::report::Report;
use crate::stats::{LatencyHistogram, Throughput};
use crate::verify::OrderCheck;

/// A consumer that has received nothing for this long gives up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads from the beginning until `--messages`, `--duration` or, by
/// default, everything below the high watermarks at start.
pub fn run(o: &Opts, run_id: u64) -> Result<Report> {
    let consumer = client::consumer(o, &format!("sluice-bench-{run_id:x}"))?;
    let partitions = client::partitions(&consumer, &o.topic)?;
    let (target, deadline_after, expected) = match o.limit() {
        Limit::Messages(n) => (Some(n), None, Some(n)),
        Limit::Duration(d) => (None, Some(d), None),
        Limit::Default => {
            let marks = client::watermarks(&consumer, &o.topic, &partitions)?;
            let n: i64 = marks
                .iter()
                .map(|&(_, low, high)| (high - low).max(0))
                .sum();
            (Some(n as u64), None, Some(n as u64))
        }
    };
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(&o.topic, p, Offset::Beginning)
            .map_err(|e| format!("partition {p}: {e}"))?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;

    let received = AtomicU64::new(0);
    let received_bytes = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let mut check = OrderCheck::default();
    let mut errors = 0u64;
    let start = Instant::now();
    let mut last_message = start;
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::progress(
                &done,
                |_| format!("received {}", received.load(Ordering::Relaxed),),
                Some(&received_bytes),
                &received,
            )
        });
        loop {
            if target.is_some_and(|t| check.messages >= t)
                || deadline_after.is_some_and(|d| start.elapsed() >= d)
                || last_message.elapsed() >= IDLE_TIMEOUT
            {
                break;
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or(&[]);
                    check.observe(m.partition(), m.offset(), payload);
                    received.fetch_add(1, Ordering::Relaxed);
                    received_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                    last_message = Instant::now();
                }
                Some(Err(e)) => {
                    errors += 1;
                    if errors == 1 {
                        eprintln!("consume error: {e}");
                    }
                }
                None => {}
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    if last_message.elapsed() >= IDLE_TIMEOUT {
        eprintln!("stopped: no message for {} s", IDLE_TIMEOUT.as_secs());
    }
    // An idle stop does not count the idle wait against throughput.
    let elapsed = if deadline_after.is_some() {
        start.elapsed()
    } else {
        last_message - start
    };
    let verdict = check.verdict(expected);
    Ok(Report {
        mode: "consume",
        throughput: Throughput {
            messages: check.messages,
            bytes: received_bytes.load(Ordering::Relaxed),
            errors,
            elapsed,
        },
        latency_kind: None,
        latency: LatencyHistogram::new().percentiles(),
        produce_latency: None,
        rate: None,
        verification: Some((check.ok(expected), verdict)),
    })
}
