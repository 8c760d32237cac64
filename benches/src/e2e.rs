//! The e2e subcommand: producers and one consumer in the same process; the
//! latency is the payload's (scheduled) send time to the consumer's receipt,
//! both on one clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::args::Opts;
use crate::client::{self, Result};
use crate::consume::IDLE_TIMEOUT;
use crate::payload;
use crate::produce::{self, Clock, Counters};
use crate::report::Report;
use crate::stats::{LatencyHistogram, Throughput};
use crate::verify::OrderCheck;

/// What the consumer thread saw.
struct Received {
    check: OrderCheck,
    bytes: u64,
    errors: u64,
    latency: LatencyHistogram,
    last_receipt: Instant,
}

pub fn run(o: &Opts, run_id: u64) -> Result<Report> {
    let consumer = client::consumer(o, &format!("sluice-bench-e2e-{run_id:x}"))?;
    let partitions = client::partitions(&consumer, &o.topic)?;
    // Start at the high watermarks read now, so no message of this run is
    // missed however long the consumer takes to connect.
    let mut tpl = TopicPartitionList::new();
    for (p, _, high) in client::watermarks(&consumer, &o.topic, &partitions)? {
        tpl.add_partition_offset(&o.topic, p, Offset::Offset(high))
            .map_err(|e| format!("partition {p}: {e}"))?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    // Let the consumer connect and start fetching before the clock starts.
    let _ = consumer.poll(Duration::from_millis(500));

    let counters = Arc::new(Counters::default());
    let received = AtomicU64::new(0);
    let received_bytes = AtomicU64::new(0);
    let producers_done = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let clock = Clock::start();

    let (outcome, got) = std::thread::scope(|s| {
        s.spawn(|| {
            crate::progress(
                &done,
                |_| {
                    format!(
                        "received; sent {} delivered {} errors {}",
                        counters.sent.load(Ordering::Relaxed),
                        counters.delivered.load(Ordering::Relaxed),
                        counters.errors.load(Ordering::Relaxed)
                    )
                },
                Some(&received_bytes),
                &received,
            )
        });
        let consumer_thread = s.spawn(|| {
            let mut r = Received {
                check: OrderCheck::default(),
                bytes: 0,
                errors: 0,
                latency: LatencyHistogram::new(),
                last_receipt: clock.epoch,
            };
            let mut last_activity = Instant::now();
            loop {
                if producers_done.load(Ordering::Acquire) {
                    let expected = counters.delivered.load(Ordering::Relaxed);
                    if r.check.messages >= expected || last_activity.elapsed() >= IDLE_TIMEOUT {
                        break;
                    }
                } else {
                    last_activity = Instant::now();
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let bytes = m.payload().unwrap_or(&[]);
                        // Only this run's messages (another client may share the topic).
                        let ours =
                            payload::decode(bytes).is_some_and(|h| h.producer >> 16 == run_id);
                        if !ours {
                            continue;
                        }
                        let now = Instant::now();
                        if let Some(h) = r.check.observe(m.partition(), m.offset(), bytes) {
                            let now_unix = clock.unix_nanos_at(now);
                            r.latency.record(Duration::from_nanos(
                                now_unix.saturating_sub(h.sent_unix_nanos),
                            ));
                        }
                        r.bytes += bytes.len() as u64;
                        r.last_receipt = now;
                        last_activity = now;
                        received.fetch_add(1, Ordering::Relaxed);
                        received_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    Some(Err(e)) => {
                        r.errors += 1;
                        if r.errors == 1 {
                            eprintln!("consume error: {e}");
                        }
                    }
                    None => {}
                }
            }
            r
        });
        let outcome = produce::run(o, run_id, clock, &counters, &stop);
        producers_done.store(true, Ordering::Release);
        let got = consumer_thread.join();
        done.store(true, Ordering::Relaxed);
        (outcome, got)
    });
    let outcome = outcome?;
    let got = got.map_err(|_| "the consumer thread panicked".to_string())?;
    let verdict = got.check.verdict(Some(outcome.delivered));
    Ok(Report {
        mode: "e2e",
        throughput: Throughput {
            messages: got.check.messages,
            bytes: got.bytes,
            errors: outcome.errors + got.errors,
            elapsed: got.last_receipt.saturating_duration_since(clock.epoch),
        },
        latency_kind: Some(if o.rate.is_some() {
            "scheduled send to receipt by the consumer"
        } else {
            "send to receipt by the consumer"
        }),
        latency: got.latency.percentiles(),
        produce_latency: Some(outcome.latency.percentiles()),
        rate: o.rate,
        verification: Some((got.check.ok(Some(outcome.delivered)), verdict)),
    })
}
