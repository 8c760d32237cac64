//! What a shard counts, next to the owners whose work it is: plain cells,
//! no atomics or locks on the hot path. The metrics listener
//! (`metrics_http.rs`) gathers a [`ShardReport`] from every shard at
//! scrape time, through the shards' call queues, and renders them.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use crate::shard::Shard;
pub use sluice_wal_core::histogram::{Histogram, LATENCY_BUCKETS};

/// Requests of one API on one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiStats {
    /// Requests answered (or closed).
    pub requests: u64,
    /// Bytes of their frames.
    pub request_bytes: u64,
    /// Bytes of their answers.
    pub response_bytes: u64,
    /// From the request read to its answer written.
    pub latency: Histogram,
}

impl ApiStats {
    /// Adds another shard's counts.
    pub fn merge(&mut self, other: &ApiStats) {
        self.requests += other.requests;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.latency.merge(&other.latency);
    }
}

impl Default for ApiStats {
    fn default() -> ApiStats {
        ApiStats {
            requests: 0,
            request_bytes: 0,
            response_bytes: 0,
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// What recovery did at start-up on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecoveryStats {
    /// Wall time of the WAL scan.
    pub seconds: f64,
    /// Bytes read.
    pub bytes: u64,
    /// Frames replayed.
    pub frames: u64,
    /// WAL position of the checkpoint it started from (0: none).
    pub checkpoint: u64,
}

/// The request counters of one shard.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    apis: RefCell<BTreeMap<i16, ApiStats>>,
    /// Error codes in answers, by (API key, code).
    errors: RefCell<BTreeMap<(i16, i16), u64>>,
    recovery: Cell<RecoveryStats>,
    /// Calls to other shards, by target, and how long each took.
    calls: RefCell<(BTreeMap<usize, u64>, Option<Histogram>)>,
    /// Seconds the executor ran tasks, and tasks run, so far (glommio
    /// hands them out as deltas).
    busy: Cell<(f64, u64)>,
    /// Failed authentications: SASL exchanges and TLS handshakes.
    failed_authentications: Cell<u64>,
}

impl ShardMetrics {
    /// Notes what recovery did.
    pub fn set_recovery(&self, stats: RecoveryStats) {
        self.recovery.set(stats);
    }

    /// What recovery did.
    pub fn recovery(&self) -> RecoveryStats {
        self.recovery.get()
    }

    /// Counts a request of `api` whose frame had `bytes` bytes.
    pub fn request(&self, api: i16, bytes: usize) {
        let mut apis = self.apis.borrow_mut();
        let s = apis.entry(api).or_default();
        s.requests += 1;
        s.request_bytes += bytes as u64;
    }

    /// Counts an answer of `api`, written `started` after its request was read.
    pub fn answered(&self, api: i16, bytes: usize, started: Instant) {
        let mut apis = self.apis.borrow_mut();
        let s = apis.entry(api).or_default();
        s.response_bytes += bytes as u64;
        s.latency.observe(started.elapsed().as_secs_f64());
    }

    /// Counts an error code in an answer of `api`.
    pub fn error(&self, api: i16, code: i16) {
        *self.errors.borrow_mut().entry((api, code)).or_default() += 1;
    }

    /// Error codes answered so far, by (API key, code).
    pub fn errors(&self) -> BTreeMap<(i16, i16), u64> {
        self.errors.borrow().clone()
    }

    /// Every API's counters so far.
    pub fn apis(&self) -> BTreeMap<i16, ApiStats> {
        self.apis.borrow().clone()
    }

    /// Counts a failed authentication (SASL or a TLS handshake).
    pub fn failed_authentication(&self) {
        self.failed_authentications
            .set(self.failed_authentications.get() + 1);
    }

    /// Failed authentications so far.
    pub fn failed_authentications(&self) -> u64 {
        self.failed_authentications.get()
    }

    /// Counts a call to shard `target` answered `started` after it was sent.
    pub fn called(&self, target: usize, started: Instant) {
        let mut calls = self.calls.borrow_mut();
        *calls.0.entry(target).or_default() += 1;
        calls
            .1
            .get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(started.elapsed().as_secs_f64());
    }

    /// Calls to other shards by target, and their latency.
    pub fn calls(&self) -> (BTreeMap<usize, u64>, Histogram) {
        let calls = self.calls.borrow();
        let latency = calls
            .1
            .clone()
            .unwrap_or_else(|| Histogram::new(LATENCY_BUCKETS));
        (calls.0.clone(), latency)
    }

    /// Seconds this shard's executor has run tasks and tasks it ran, so
    /// far (on the shard's thread).
    pub fn busy(&self) -> (f64, u64) {
        let stats = glommio::executor().executor_stats();
        let (seconds, tasks) = self.busy.get();
        let now = (
            seconds + stats.executor_runtime().as_secs_f64(),
            tasks + stats.tasks_executed(),
        );
        self.busy.set(now);
        now
    }
}

/// A request being handled: its answer is counted when this is dropped,
/// which happens once the answer is written (or the connection gone).
pub struct RequestTiming {
    metrics: Rc<ShardMetrics>,
    api: i16,
    started: Instant,
    response_bytes: usize,
}

impl RequestTiming {
    /// Starts timing a request of `api` read at `started`.
    pub fn new(metrics: Rc<ShardMetrics>, api: i16, started: Instant) -> RequestTiming {
        RequestTiming {
            metrics,
            api,
            started,
            response_bytes: 0,
        }
    }

    /// The answer's size.
    pub fn set_response_bytes(&mut self, bytes: usize) {
        self.response_bytes = bytes;
    }
}

impl Drop for RequestTiming {
    fn drop(&mut self) {
        self.metrics
            .answered(self.api, self.response_bytes, self.started);
    }
}

/// One partition as a scrape sees it.
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// First offset in the log.
    pub log_start: i64,
    /// Offset the next batch gets.
    pub log_end: i64,
    /// Offsets below it are visible.
    pub high_watermark: i64,
    /// Bytes of its batches.
    pub bytes: u64,
    /// Records and bytes appended since the process started.
    pub records_in: u64,
    /// See `records_in`.
    pub bytes_in: u64,
    /// Records and bytes fetched since the process started.
    pub records_out: u64,
    /// See `records_out`.
    pub bytes_out: u64,
}

/// One group as a scrape sees it.
#[derive(Debug, Clone)]
pub struct GroupReport {
    /// Group id.
    pub group: String,
    /// Its state's name (Empty, Stable, ...).
    pub state: &'static str,
    /// Members now.
    pub members: usize,
    /// Current generation.
    pub generation: i32,
    /// Rebalances (new generations) since the process started.
    pub rebalances: u64,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// The WAL of one shard as a scrape sees it.
#[derive(Debug, Clone)]
pub struct WalReport {
    /// Frames appended since open.
    pub appends: u64,
    /// Payload bytes appended.
    pub payload_bytes: u64,
    /// Flushes (write + fdatasync) completed.
    pub flushes: u64,
    /// fdatasync calls completed.
    pub syncs: u64,
    /// Bytes written by flushes.
    pub bytes_written: u64,
    /// Segments in the log now.
    pub segments: usize,
    /// Bytes of its segment files.
    pub disk_bytes: u64,
    /// Whether a failed write or sync poisoned it.
    pub failed: bool,
    /// Flushes running now.
    pub flushes_in_flight: usize,
    /// Seconds each flush's fdatasync took.
    pub sync_seconds: Histogram,
    /// Frames each flush carried (the group-commit size).
    pub flush_frames: Histogram,
}

/// Everything one shard reports to a scrape.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The shard's index.
    pub shard: usize,
    /// Requests by API key.
    pub apis: BTreeMap<i16, ApiStats>,
    /// Error codes answered, by (API key, code).
    pub errors: BTreeMap<(i16, i16), u64>,
    /// Its WAL.
    pub wal: WalReport,
    /// Fetch buffer: bytes held, batches found there and not.
    pub fetch_buffer_bytes: u64,
    /// See `fetch_buffer_bytes`.
    pub fetch_buffer_hits: u64,
    /// See `fetch_buffer_bytes`.
    pub fetch_buffer_misses: u64,
    /// Index chunks read from the WAL for fetches.
    pub chunk_reads: u64,
    /// Failed authentications (SASL and TLS handshakes).
    pub failed_authentications: u64,
    /// Its partitions.
    pub partitions: Vec<PartitionReport>,
    /// The groups it coordinates.
    pub groups: Vec<GroupReport>,
    /// Idempotent producers tracked (per producer and partition).
    pub producers: usize,
    /// Memory budget in use and its limit.
    pub memory_used: u64,
    /// See `memory_used`.
    pub memory_limit: u64,
    /// What recovery did at start-up.
    pub recovery: RecoveryStats,
    /// Seconds its executor ran tasks, and tasks it ran.
    pub busy_seconds: f64,
    /// See `busy_seconds`.
    pub tasks: u64,
    /// Calls it made to other shards, by target shard.
    pub calls: BTreeMap<usize, u64>,
    /// How long those calls took (sent to answered).
    pub call_latency: Histogram,
}

/// Every partition of `reports`, in (topic, partition) order.
pub fn sorted_partitions<'a>(
    reports: impl IntoIterator<Item = &'a ShardReport>,
) -> Vec<&'a PartitionReport> {
    let mut partitions: Vec<&PartitionReport> =
        reports.into_iter().flat_map(|r| &r.partitions).collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    partitions
}

/// A group's lag on one partition: its high watermark minus the offset
/// the group committed (never below 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition index.
    pub partition: i32,
    /// Offsets not consumed.
    pub lag: i64,
}

/// Every group of `reports` by id, each with its lag on every partition it
/// committed whose owner answered (computed here: the offsets live on the
/// group's coordinator, the high watermarks on the partitions' owners).
pub fn group_lags<'a>(
    reports: &[&'a ShardReport],
    partitions: &[&PartitionReport],
) -> Vec<(&'a GroupReport, Vec<Lag<'a>>)> {
    let high: std::collections::HashMap<(&str, i32), i64> = partitions
        .iter()
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut groups: Vec<&GroupReport> = reports.iter().flat_map(|r| &r.groups).collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups
        .into_iter()
        .map(|g| {
            let lags = g
                .offsets
                .iter()
                .filter_map(|(topic, partition, offset)| {
                    let hw = high.get(&(topic.as_str(), *partition))?;
                    Some(Lag {
                        topic,
                        partition: *partition,
                        lag: (hw - offset).max(0),
                    })
                })
                .collect();
            (g, lags)
        })
        .collect()
}

impl ShardReport {
    /// Gathers the report on `shard` (in one synchronous step).
    pub fn of(shard: &Rc<Shard>) -> ShardReport {
        let metadata = shard.metadata();
        let log = shard.log();
        let (hits, misses, chunk_reads) = log.read_counts();
        let (busy_seconds, tasks) = shard.metrics().busy();
        let (calls, call_latency) = shard.metrics().calls();
        ShardReport {
            shard: shard.id().index(),
            apis: shard.metrics().apis(),
            errors: shard.metrics().errors(),
            wal: log.wal_report(),
            fetch_buffer_bytes: log.fetch_buffer_bytes() as u64,
            fetch_buffer_hits: hits,
            fetch_buffer_misses: misses,
            chunk_reads,
            failed_authentications: shard.metrics().failed_authentications(),
            partitions: log.partition_reports(&metadata),
            groups: shard.groups().reports(),
            producers: log.producer_count(),
            memory_used: shard.memory().used() as u64,
            memory_limit: shard.memory().limit() as u64,
            recovery: shard.metrics().recovery(),
            busy_seconds,
            tasks,
            calls,
            call_latency,
        }
    }
}
