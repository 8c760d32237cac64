//! The produce side: K threads, each with its own rdkafka producer, sending
//! closed-loop (as fast as the queue allows) or open-loop (`--rate`: at
//! scheduled times, latency counted from the schedule so a stalled broker
//! cannot hide its tail by slowing the sender down).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::args::{Limit, Opts, DEFAULT_MESSAGES};
use crate::client::{self, Result};
use crate::payload::{self, Header};
use crate::stats::LatencyHistogram;

/// How long the final flush may take before in-flight messages count as errors.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Counters the progress line reads while producers run.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// What the producers did.
#[derive(Debug)]
pub struct ProduceOutcome {
    pub sent: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub errors: u64,
    /// Send (or scheduled send) to delivery report.
    pub latency: LatencyHistogram,
    /// From the first send (once every producer is ready) to the last
    /// delivery report.
    pub elapsed: Duration,
}

/// The clock every timestamp is taken on: an `Instant` for latencies, and
/// the Unix time at that instant for the payload's send time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub epoch: Instant,
    pub unix_nanos: u64,
}

impl Clock {
    pub fn start() -> Self {
        let unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            epoch: Instant::now(),
            unix_nanos,
        }
    }

    /// Unix nanoseconds of `at` (on this clock).
    pub fn unix_nanos_at(&self, at: Instant) -> u64 {
        self.unix_nanos + at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    pub fn now_unix_nanos(&self) -> u64 {
        self.unix_nanos_at(Instant::now())
    }
}

/// Delivery reports of one producer: its latency histogram and the shared
/// counters. The opaque of each message is its (scheduled) send time in
/// nanoseconds since the clock's epoch.
struct DeliveryContext {
    epoch: Instant,
    latency: Mutex<LatencyHistogram>,
    counters: Arc<Counters>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::log_to_stderr(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("rdkafka producer error: {error}: {reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_nanos: usize) {
        match result {
            Ok(msg) => {
                let latency = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(sent_nanos as u64));
                // The lock is only ever taken here and after the flush.
                if let Ok(mut h) = self.latency.lock() {
                    h.record(latency);
                }
                let bytes = msg.payload_len() as u64;
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .delivered_bytes
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            Err((e, _)) => {
                let first = self.counters.errors.fetch_add(1, Ordering::Relaxed) == 0;
                if first {
                    eprintln!("delivery failed: {e}");
                }
            }
        }
    }
}

/// Runs `--producers` threads until the limit (or `stop`), flushes, and
/// returns the merged outcome. `run_id` goes into every payload's producer id.
pub fn run(
    o: &Opts,
    run_id: u64,
    clock: Clock,
    counters: &Arc<Counters>,
    stop: &AtomicBool,
) -> Result<ProduceOutcome> {
    let threads = o.producers as u64;
    let (total, duration) = match o.limit() {
        Limit::Messages(n) => (Some(n), None),
        Limit::Duration(d) => (None, Some(d)),
        Limit::Default => (Some(DEFAULT_MESSAGES), None),
    };
    // Every producer is created and knows the topic before the first send:
    // with many producers, the last ones would otherwise start behind their
    // schedule and count their own start-up as the broker's latency.
    let ready = std::sync::Barrier::new(o.producers as usize);
    let started = std::sync::OnceLock::new();
    // Each thread offers rate / K, on its own schedule.
    let interval = o.rate.map(|r| Duration::from_secs_f64(threads as f64 / r));
    let config = client::producer_config(o);

    let results: Vec<Result<LatencyHistogram>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.producers)
            .map(|i| {
                let quota = total.map(|n| n / threads + u64::from((i as u64) < n % threads));
                let (config, ready, started) = (&config, &ready, &started);
                s.spawn(move || -> Result<LatencyHistogram> {
                    let ctx = DeliveryContext {
                        epoch: clock.epoch,
                        latency: Mutex::new(LatencyHistogram::new()),
                        counters: Arc::clone(counters),
                    };
                    let mut config = config.clone();
                    if o.transaction_messages.is_some() {
                        config.set("transactional.id", format!("sluice-bench-{run_id}-{i}"));
                    }
                    let producer: Result<ThreadedProducer<DeliveryContext>> = config
                        .create_with_context(ctx)
                        .map_err(|e| format!("cannot create producer: {e}"));
                    if let Ok(p) = &producer {
                        // Warm-up only: a failure shows again at the first send.
                        let _ = p
                            .client()
                            .fetch_metadata(Some(&o.topic), client::REQUEST_TIMEOUT);
                    }
                    ready.wait();
                    let producer = producer?;
                    let start = *started.get_or_init(Instant::now);
                    let deadline = duration.map(|d| start + d);
                    let transaction = Transaction::begin(&producer, o.transaction_messages)?;
                    let mut buf = payload::new_buffer(o.size as usize);
                    let producer_id = payload::producer_id(run_id, i);
                    let mut seq = 0u64;
                    loop {
                        if quota.is_some_and(|q| seq >= q) || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let scheduled = match interval {
                            Some(iv) => {
                                let at = start + iv.mul_f64(seq as f64);
                                let now = Instant::now();
                                if at > now {
                                    std::thread::sleep(at - now);
                                }
                                at
                            }
                            None => Instant::now(),
                        };
                        if deadline.is_some_and(|d| scheduled >= d) {
                            break;
                        }
                        payload::encode(
                            &mut buf,
                            Header {
                                producer: producer_id,
                                sequence: seq,
                                sent_unix_nanos: clock.unix_nanos_at(scheduled),
                            },
                        );
                        let opaque =
                            scheduled.saturating_duration_since(clock.epoch).as_nanos() as usize;
                        send(&producer, &o.topic, &buf, opaque, counters);
                        seq += 1;
                        transaction.after_send(&producer, seq)?;
                    }
                    transaction.finish(&producer)?;
                    if producer.flush(Timeout::After(FLUSH_TIMEOUT)).is_err() {
                        let lost = producer.in_flight_count().max(0) as u64;
                        eprintln!("flush timed out: {lost} messages never acknowledged");
                        counters.errors.fetch_add(lost, Ordering::Relaxed);
                    }
                    let h = producer
                        .context()
                        .latency
                        .lock()
                        .map(|h| h.clone())
                        .unwrap_or_default();
                    Ok(h)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a producer thread panicked".into()))
            })
            .collect()
    });
    let elapsed = started.get().map_or(Duration::ZERO, Instant::elapsed);

    let mut latency = LatencyHistogram::new();
    for r in results {
        latency.merge(&r?);
    }
    Ok(ProduceOutcome {
        sent: counters.sent.load(Ordering::Relaxed),
        delivered: counters.delivered.load(Ordering::Relaxed),
        delivered_bytes: counters.delivered_bytes.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        latency,
        elapsed,
    })
}

/// A producer's transactions (`--transaction-messages`): one is open
/// from the start, committed and another begun every `every` messages.
struct Transaction {
    every: Option<u64>,
}

impl Transaction {
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn begin<C: ProducerContext>(
        producer: &ThreadedProducer<C>,
        every: Option<u64>,
    ) -> Result<Transaction> {
        if every.is_some() {
            producer
                .init_transactions(Self::TIMEOUT)
                .map_err(|e| format!("init_transactions: {e}"))?;
            producer
                .begin_transaction()
                .map_err(|e| format!("begin_transaction: {e}"))?;
        }
        Ok(Transaction { every })
    }

    /// After the `sent`-th message: commit and begin the next one when due.
    fn after_send<C: ProducerContext>(
        &self,
        producer: &ThreadedProducer<C>,
        sent: u64,
    ) -> Result<()> {
        match self.every {
            Some(n) if sent.is_multiple_of(n.max(1)) => {
                Self::commit(producer)?;
                producer
                    .begin_transaction()
                    .map_err(|e| format!("begin_transaction: {e}"))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Commits the last transaction (empty ones too: begin was called).
    fn finish<C: ProducerContext>(&self, producer: &ThreadedProducer<C>) -> Result<()> {
        if self.every.is_some() {
            Self::commit(producer)?;
        }
        Ok(())
    }

    /// Waits for every delivery report, then commits. The wait watches
    /// the in-flight count while the producer's polling thread serves the
    /// reports: rdkafka's `flush` (and so `commit_transaction` with
    /// messages outstanding) competes with that thread for them and
    /// sleeps 100 ms a round, and that sleep, not the broker, would set
    /// the pace of transactions.
    fn commit<C: ProducerContext>(producer: &ThreadedProducer<C>) -> Result<()> {
        let deadline = Instant::now() + Self::TIMEOUT;
        while producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        producer
            .commit_transaction(Self::TIMEOUT)
            .map_err(|e| format!("commit_transaction: {e}"))
    }
}

/// Enqueues one message, waiting while librdkafka's queue is full (the
/// wait counts toward the message's latency: its clock already runs).
fn send(
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    payload: &[u8],
    opaque: usize,
    counters: &Counters,
) {
    let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => {
                let first = counters.errors.fetch_add(1, Ordering::Relaxed) == 0;
                if first {
                    eprintln!("send failed: {e}");
                }
                return;
            }
        }
    }
}

/// The `produce` subcommand: run the producers with a progress line.
pub fn report(o: &Opts, run_id: u64) -> Result<crate::report::Report> {
    let counters = Arc::new(Counters::default());
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let clock = Clock::start();
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            crate::progress(
                &done,
                |_| {
                    format!(
                        "sent {} delivered {} errors {}",
                        counters.sent.load(Ordering::Relaxed),
                        counters.delivered.load(Ordering::Relaxed),
                        counters.errors.load(Ordering::Relaxed)
                    )
                },
                Some(&counters.delivered_bytes),
                &counters.delivered,
            )
        });
        let r = run(o, run_id, clock, &counters, &stop);
        done.store(true, Ordering::Relaxed);
        r
    })?;
    Ok(crate::report::Report {
        mode: "produce",
        throughput: crate::stats::Throughput {
            messages: outcome.delivered,
            bytes: outcome.delivered_bytes,
            errors: outcome.errors,
            elapsed: outcome.elapsed,
        },
        latency_kind: Some(if o.rate.is_some() {
            "scheduled send to delivery report"
        } else {
            "send to delivery report"
        }),
        latency: outcome.latency.percentiles(),
        produce_latency: None,
        rate: o.rate,
        verification: None,
    })
}
