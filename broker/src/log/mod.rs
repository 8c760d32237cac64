//! The shard's partition log: the one owner of the shard's WAL handle, its
//! partitions and their index, the fetch buffer, idempotent-producer state
//! and the "data arrived" signal.
//!
//! Its API is a log's, not Kafka's: append a batch to a partition (and
//! await its durability), read from an offset up to a byte limit, wait until
//! data past an offset is visible, find an offset by time, trim the log
//! start. Handlers translate Kafka messages to these calls on the owning
//! shard; other WAL users (groups) write their frames through
//! [`Log::submit_frame`].
//!
//! Offsets are given out in the same synchronous step that hands a batch
//! to the WAL, so WAL order and offset order agree; the high watermark moves
//! only once the WAL says the batch (and everything before it) is durable.

pub mod cleaner;
mod fetch_buffer;
pub mod frame;
mod partition;
pub mod producers;
pub mod retention;
pub mod state;
pub mod transactions;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_protocol::record_batch::{
    control_batch, produce_batch, set_base_offset, set_log_append_time, ControlType,
};
use sluice_protocol::RecordBatch;
use sluice_wal_core::{Durable, Wal};

use crate::error::BrokerError;
use crate::frames::{FrameOwner, FrameType};
use crate::metadata::{Metadata, Topic};
use crate::notify::Notify;
use crate::shard_id::ShardId;
use cleaner::WalUser;
pub use fetch_buffer::FetchBuffer;
use frame::{
    batch_frame_header, encode_log_start, parse_batch_frame, BATCH_FRAME_HEADER, LOG_START,
    RECORD_BATCH, RELOCATED_BATCH,
};
pub use partition::{BatchEntry, Chunk, Partition, PartitionKey};
use producers::{ProducerBatch, SequenceCheck};
pub use state::LogState;
pub use transactions::AbortedTxn;

/// Bytes of the segment being written that, while the disk is full, only
/// log-start frames may use (at most a quarter of a segment): retention and
/// DeleteRecords must always be able to say what can go, or space could
/// never be freed.
const FREEING_RESERVE: u64 = 1 << 20;

/// How a topic wants its batches appended.
#[derive(Debug, Clone, Copy)]
pub struct AppendConfig {
    /// Largest batch accepted (`max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Stamp batches with the broker's time (`LogAppendTime`).
    pub log_append_time: bool,
}

impl AppendConfig {
    /// The topic's settings.
    pub fn of(topic: &Topic) -> AppendConfig {
        AppendConfig {
            max_batch_bytes: topic
                .config("max.message.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_048_588),
            log_append_time: topic.log_append_time(),
        }
    }
}

/// A batch handed to the WAL (or found there already): its offsets are
/// given, and [`Log::wait_durable`] says when it may be acknowledged.
pub struct Appending {
    /// First offset of the batch.
    pub base_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// The partition's log start offset.
    pub log_start: i64,
    key: PartitionKey,
    next_offset: i64,
    /// `None` for a retried batch of an idempotent producer that is stored
    /// already: it is acknowledged once everything before now is durable.
    durable: Option<Durable>,
}

/// Batches read from a partition.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The partition's high watermark when read.
    pub high_watermark: i64,
    /// Its last stable offset when read.
    pub last_stable_offset: i64,
    /// Its log start offset.
    pub log_start: i64,
    /// Whole stored batches, as clients sent them (offsets rewritten).
    pub records: Bytes,
    /// For a read_committed read, the aborted transactions holding
    /// offsets in what was read; `None` for read_uncommitted.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// One partition's read: whole batches from `offset`, up to `max_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct ReadRange {
    /// The partition.
    pub key: PartitionKey,
    /// First offset wanted.
    pub offset: i64,
    /// Byte limit.
    pub max_bytes: usize,
    /// Whether the first batch is returned even when it alone is larger
    /// than `max_bytes` (KIP-74: so a consumer can always make progress,
    /// for the first non-empty partition of a fetch only).
    pub first_batch_always: bool,
    /// read_committed: stop at the last stable offset and list the
    /// aborted transactions read.
    pub committed: bool,
}

/// A partition's offsets.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    /// First offset in the log.
    pub log_start: i64,
    /// Every offset below it is durable and visible.
    pub high_watermark: i64,
    /// Bytes of the batches it holds (DescribeLogDirs, retention.bytes).
    pub bytes: u64,
    /// Every offset below it is outside any open transaction.
    pub last_stable_offset: i64,
}

/// A producer as a partition knows it.
#[derive(Debug, Clone, Copy)]
pub struct ProducerInfo {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Sequence of its last batch here (-1: none remembered).
    pub last_sequence: i32,
    /// First offset of its open transaction here (-1: none).
    pub txn_start_offset: i64,
}

/// The partition log of one shard.
pub struct Log {
    shard: ShardId,
    wal: Wal,
    state: RefCell<LogState>,
    fetch_buffer: RefCell<FetchBuffer>,
    data_arrived: Notify,
    /// A segment the cleaner copied and could still not delete (an owner's
    /// bug): left alone rather than copied again every pass.
    cleaner_stuck_at: std::cell::Cell<Option<u64>>,
    /// Held by a cleaner pass and by a checkpoint: a checkpoint taken while
    /// copies are not yet repointed would point at segments about to go.
    maintenance: glommio::sync::Semaphore,
    /// WAL position of the last checkpoint written or loaded.
    checkpointed: std::cell::Cell<u64>,
    /// Fetch reads: batches found in the fetch buffer, batches not found
    /// there, chunks read from the WAL (metrics).
    read_counts: std::cell::Cell<(u64, u64, u64)>,
}

fn unknown_partition() -> BrokerError {
    BrokerError::UnknownTopicOrPartition("partition is not on this shard".into())
}

impl Log {
    /// The log around an opened WAL and the state its replay rebuilt
    /// (after [`LogState::finish_replay`]).
    pub fn new(wal: Wal, state: LogState, fetch_buffer_bytes: usize) -> Log {
        Log {
            shard: state.shard,
            wal,
            state: RefCell::new(state),
            fetch_buffer: RefCell::new(FetchBuffer::new(fetch_buffer_bytes)),
            data_arrived: Notify::default(),
            cleaner_stuck_at: std::cell::Cell::new(None),
            maintenance: glommio::sync::Semaphore::new(1),
            checkpointed: std::cell::Cell::new(0),
            read_counts: std::cell::Cell::new((0, 0, 0)),
        }
    }

    /// Fetch reads so far: batches found in the fetch buffer, batches
    /// not found there, chunks read from the WAL.
    pub fn read_counts(&self) -> (u64, u64, u64) {
        self.read_counts.get()
    }

    /// Bytes the fetch buffer holds.
    pub fn fetch_buffer_bytes(&self) -> usize {
        self.fetch_buffer.borrow().used()
    }

    /// Idempotent producers tracked (per producer and partition).
    pub fn producer_count(&self) -> usize {
        self.state.borrow().producers.len()
    }

    /// The WAL's counters for a metrics scrape.
    pub fn wal_report(&self) -> crate::metrics::WalReport {
        let stats = self.wal.stats();
        let (sync_seconds, flush_frames) = self.wal.flush_histograms();
        crate::metrics::WalReport {
            appends: stats.frames,
            payload_bytes: stats.payload_bytes,
            flushes: stats.flushes,
            syncs: stats.syncs,
            bytes_written: stats.bytes_written,
            segments: self.wal.segments().len(),
            disk_bytes: self.wal.disk_bytes(),
            failed: self.wal.has_failed(),
            flushes_in_flight: self.wal.flushes_in_flight(),
            sync_seconds,
            flush_frames,
        }
    }

    /// Every partition here for a metrics scrape, named by `metadata`.
    pub fn partition_reports(&self, metadata: &Metadata) -> Vec<crate::metrics::PartitionReport> {
        let names: std::collections::HashMap<[u8; 16], &str> = metadata
            .topics
            .values()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        let state = self.state.borrow();
        state
            .partitions
            .iter()
            .filter_map(|(key, p)| {
                Some(crate::metrics::PartitionReport {
                    topic: names.get(&key.topic_id)?.to_string(),
                    partition: key.partition,
                    log_start: p.log_start,
                    log_end: p.log_end,
                    high_watermark: p.high_watermark,
                    bytes: p.bytes,
                    records_in: p.traffic.records_in,
                    bytes_in: p.traffic.bytes_in,
                    records_out: p.traffic.records_out,
                    bytes_out: p.traffic.bytes_out,
                })
            })
            .collect()
    }

    fn count_reads(&self, hits: u64, misses: u64, chunks: u64) {
        let (h, m, c) = self.read_counts.get();
        self.read_counts.set((h + hits, m + misses, c + chunks));
    }

    /// Notes the checkpoint recovery started from (its position).
    pub fn set_checkpointed(&self, position: u64) {
        self.checkpointed.set(position);
    }

    /// WAL bytes written since the last checkpoint.
    pub fn since_checkpoint(&self) -> u64 {
        self.wal
            .stats()
            .end_position
            .saturating_sub(self.checkpointed.get())
    }

    /// Writes a checkpoint of this log and `others` into `dir`: their
    /// state taken in one step with the WAL's end position, installed once
    /// the WAL is durable up to there. Returns the position.
    pub async fn checkpoint(
        &self,
        others: &[&dyn WalUser],
        dir: &std::path::Path,
    ) -> Result<u64, BrokerError> {
        let _exclusive = self.maintenance.acquire_permit(1).await;
        let started = Instant::now();
        let (position, bytes) = {
            let log = self.frames();
            let others: Vec<_> = others.iter().map(|o| o.frames()).collect();
            let mut owners: Vec<&dyn FrameOwner> = vec![&*log];
            owners.extend(others.iter().map(|o| &**o));
            let position = self.wal.stats().end_position;
            (
                position,
                crate::checkpoint::encode(self.shard, position, &owners),
            )
        };
        // The one step the shard waits for (the rest runs while it serves).
        let snapshot_us = started.elapsed().as_micros() as u64;
        self.wal.sync().await?;
        let (dir, len) = (dir.to_path_buf(), bytes.len());
        glommio::executor()
            .spawn_blocking(move || crate::checkpoint::install(&dir, position, &bytes))
            .await
            .map_err(BrokerError::Storage)?;
        self.checkpointed.set(position);
        tracing::info!(
            shard = self.shard.index(),
            position,
            bytes = len,
            snapshot_us,
            seconds = started.elapsed().as_secs_f64(),
            "checkpoint written"
        );
        Ok(position)
    }

    /// Validates a produced batch, gives it offsets and hands it to the WAL.
    /// Synchronous: offsets and WAL positions are given out in one step.
    pub fn append(
        &self,
        key: PartitionKey,
        records: &[u8],
        config: AppendConfig,
    ) -> Result<Appending, BrokerError> {
        let batch = produce_batch(records)?;
        if batch.size() > config.max_batch_bytes {
            return Err(BrokerError::MessageTooLarge {
                size: batch.size(),
                max: config.max_batch_bytes,
            });
        }
        let count = i64::from(batch.last_offset_delta()) + 1;
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let partition = state
            .partitions
            .get_mut(&key)
            .ok_or_else(unknown_partition)?;
        let producer = ProducerBatch::of(&batch);
        if let Some(pb) = &producer {
            if let SequenceCheck::Duplicate { base_offset } = state.producers.check(key, pb)? {
                tracing::debug!(
                    producer_id = pb.pid,
                    first_seq = pb.first_seq,
                    base_offset,
                    "duplicate batch answered with its offsets"
                );
                return Ok(Appending {
                    base_offset,
                    log_append_time: -1,
                    log_start: partition.log_start,
                    key,
                    next_offset: base_offset,
                    durable: None,
                });
            }
        }
        self.check_room(batch.size())?;
        let mut bytes = BytesMut::from(batch.as_bytes());
        let base_offset = partition.log_end;
        set_base_offset(&mut bytes, base_offset)?;
        let (log_append_time, max_timestamp) = if config.log_append_time {
            let now = crate::util::now_ms();
            set_log_append_time(&mut bytes, now)?;
            (now, now)
        } else {
            (-1, batch.max_timestamp())
        };
        let durable = self.store(partition, key, bytes.freeze(), count, max_timestamp)?;
        let log_start = partition.log_start;
        if let Some(pb) = &producer {
            state.producers.record(key, pb, base_offset, Instant::now());
            if batch.is_transactional() {
                state
                    .txns
                    .entry(key)
                    .or_default()
                    .on_data(pb.pid, base_offset);
            }
        } else if batch.is_transactional() {
            // Kafka's rule: a transactional batch names its producer.
            tracing::warn!(base_offset, "transactional batch without a producer id");
        }
        Ok(Appending {
            base_offset,
            log_append_time,
            log_start,
            key,
            next_offset: base_offset + count,
            durable: Some(durable),
        })
    }

    /// Hands the batch `bytes` (its base offset written: the partition's
    /// log end) to the WAL, indexes it and keeps it in the fetch buffer.
    fn store(
        &self,
        partition: &mut Partition,
        key: PartitionKey,
        bytes: Bytes,
        count: i64,
        max_timestamp: i64,
    ) -> Result<Durable, BrokerError> {
        let base_offset = partition.log_end;
        let appended = self
            .wal
            .submit(RECORD_BATCH.id, &[&batch_frame_header(&key), &bytes])?;
        partition.append(
            BatchEntry {
                base_offset,
                last_offset: base_offset + count - 1,
                position: appended.position,
                size: bytes.len() as u32,
                max_timestamp,
            },
            appended.segment,
        );
        self.fetch_buffer
            .borrow_mut()
            .insert(key, base_offset, bytes);
        Ok(appended.durable)
    }

    /// Hands a transaction marker of producer `pid` (epoch `epoch`) to the
    /// WAL as the partition's next batch: the transaction's end on this
    /// partition. Synchronous, like [`Log::append`]; an older epoch than
    /// the partition knows is refused.
    pub fn append_marker(
        &self,
        key: PartitionKey,
        pid: i64,
        epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<Appending, BrokerError> {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let partition = state
            .partitions
            .get_mut(&key)
            .ok_or_else(unknown_partition)?;
        if state.producers.epoch(key, pid).is_some_and(|e| e > epoch) {
            return Err(BrokerError::InvalidProducerEpoch(format!(
                "marker of producer {pid} epoch {epoch} is older than the partition's epoch"
            )));
        }
        let now = crate::util::now_ms();
        let mut bytes =
            BytesMut::from(&control_batch(pid, epoch, control, coordinator_epoch, now)[..]);
        self.check_room(bytes.len())?;
        let base_offset = partition.log_end;
        set_base_offset(&mut bytes, base_offset)?;
        let durable = self.store(partition, key, bytes.freeze(), 1, now)?;
        let commit = control == ControlType::Commit;
        state
            .txns
            .entry(key)
            .or_default()
            .on_marker(pid, base_offset, commit);
        state.producers.mark(key, pid, epoch, Instant::now());
        Ok(Appending {
            base_offset,
            log_append_time: -1,
            log_start: partition.log_start,
            key,
            next_offset: base_offset + 1,
            durable: Some(durable),
        })
    }

    /// Waits until the batch is durable, then moves the high watermark and
    /// wakes waiting readers.
    pub async fn wait_durable(&self, appending: Appending) -> Result<(), BrokerError> {
        match appending.durable {
            Some(durable) => durable.await?,
            None => self.wal.sync().await?,
        }
        let moved = self
            .state
            .borrow_mut()
            .partitions
            .get_mut(&appending.key)
            .is_some_and(|p| p.advance_high_watermark(appending.next_offset));
        if moved {
            self.data_arrived.notify();
        }
        Ok(())
    }

    /// Reads whole batches from `range.offset` up to `range.max_bytes`
    /// (see [`ReadRange::first_batch_always`]), from the fetch buffer or,
    /// chunk by chunk, from the WAL.
    pub async fn read(self: &Rc<Self>, range: ReadRange) -> Result<Fetched, BrokerError> {
        let (high_watermark, last_stable_offset, log_start, upper) = {
            let state = self.state.borrow();
            let p = state
                .partitions
                .get(&range.key)
                .ok_or_else(unknown_partition)?;
            if range.offset < p.log_start || range.offset > p.high_watermark {
                return Err(BrokerError::OffsetOutOfRange {
                    offset: range.offset,
                    log_start: p.log_start,
                    high_watermark: p.high_watermark,
                });
            }
            let stable = state.last_stable_offset(&range.key, p);
            let upper = state.readable_end(&range.key, p, range.committed);
            (p.high_watermark, stable, p.log_start, upper)
        };
        let mut batches: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut next = range.offset;
        // Whether a batch of `size` bytes still fits the limit.
        let fits = |total: usize, size: usize| {
            (total == 0 && range.first_batch_always) || total + size <= range.max_bytes
        };
        'read: while next < upper {
            let buffered = self.fetch_buffer.borrow().containing(&range.key, next);
            if let Some((last, bytes)) = buffered {
                if !fits(total, bytes.len()) {
                    break;
                }
                total += bytes.len();
                batches.push(bytes);
                next = last + 1;
                self.count_reads(1, 0, 0);
                continue;
            }
            let chunk = {
                let state = self.state.borrow();
                let p = state
                    .partitions
                    .get(&range.key)
                    .ok_or_else(unknown_partition)?;
                match p.chunks.get(p.chunk_at(next)) {
                    Some(c) if c.base_offset <= next => *c,
                    // Trimmed meanwhile: what was read so far is the answer.
                    _ => break,
                }
            };
            let found = self.read_chunk(&range.key, &chunk, next).await?;
            self.count_reads(0, 0, 1);
            let before = next;
            for (entry, bytes) in found {
                if entry.last_offset < next {
                    continue;
                }
                if entry.base_offset >= upper || !fits(total, bytes.len()) {
                    break 'read;
                }
                total += bytes.len();
                batches.push(bytes);
                next = entry.last_offset + 1;
                self.count_reads(0, 1, 0);
            }
            if next == before {
                return Err(BrokerError::Storage(format!(
                    "offset {next} is not in the chunk at WAL position {} where the index says",
                    chunk.position
                )));
            }
            glommio::yield_if_needed().await;
        }
        if let Some(p) = self.state.borrow_mut().partitions.get_mut(&range.key) {
            p.traffic.records_out += (next - range.offset).max(0) as u64;
            p.traffic.bytes_out += total as u64;
        }
        let records = match batches.len() {
            1 => batches.pop().expect("one batch"),
            _ => {
                let mut all = BytesMut::with_capacity(total);
                batches.iter().for_each(|b| all.extend_from_slice(b));
                all.freeze()
            }
        };
        let aborted = range.committed.then(|| {
            let state = self.state.borrow();
            state
                .txns
                .get(&range.key)
                .map(|t| t.aborted_in(range.offset, next))
                .unwrap_or_default()
        });
        Ok(Fetched {
            high_watermark,
            last_stable_offset,
            log_start,
            records,
            aborted,
        })
    }

    /// Reads every range in order, all of them together up to `max_bytes`
    /// (each range also up to its own limit; only the first non-empty one
    /// may pass either with its first batch, as KIP-74 says), so a fetch
    /// never holds more than its budget.
    pub async fn read_all(
        self: &Rc<Self>,
        ranges: &[ReadRange],
        max_bytes: usize,
    ) -> Vec<Result<Fetched, BrokerError>> {
        let mut results = Vec::with_capacity(ranges.len());
        let mut budget = max_bytes;
        let mut nothing_yet = true;
        for range in ranges {
            let read = self
                .read(ReadRange {
                    max_bytes: range.max_bytes.min(budget),
                    first_batch_always: range.first_batch_always && nothing_yet,
                    ..*range
                })
                .await;
            match &read {
                Err(e @ BrokerError::Storage(_)) => {
                    tracing::error!(error = %e, "fetch read failed")
                }
                Ok(f) if !f.records.is_empty() => {
                    nothing_yet = false;
                    budget = budget.saturating_sub(f.records.len());
                }
                _ => {}
            }
            results.push(read);
            // A fetch may name thousands of partitions: let others run.
            glommio::yield_if_needed().await;
        }
        results
    }

    /// Waits until the high watermark of any `(partition, seen)` moves
    /// past `seen` (or the partition goes), the deadline passes, or the
    /// broker shuts down.
    pub async fn wait_for_data(
        &self,
        waits: &[(PartitionKey, i64)],
        committed: bool,
        deadline: Instant,
        shutdown: &Notify,
    ) {
        let stop = shutdown.generation();
        loop {
            let generation = self.data_arrived.generation();
            let ready = {
                let state = self.state.borrow();
                waits.iter().any(|(key, seen)| {
                    state
                        .partitions
                        .get(key)
                        .is_none_or(|p| state.readable_end(key, p, committed) > *seen)
                })
            };
            let now = Instant::now();
            if ready || now >= deadline || shutdown.generation() != stop {
                return;
            }
            // Shutting down ends the wait: the fetch answers with what it has.
            futures_lite::future::or(
                futures_lite::future::or(
                    self.data_arrived.changed(generation),
                    shutdown.changed(stop),
                ),
                glommio::timer::sleep(deadline - now),
            )
            .await;
        }
    }

    /// The producers `key` knows (DescribeProducers), with the first
    /// offset of their open transaction here (-1: none).
    pub fn producers_of(&self, key: &PartitionKey) -> Result<Vec<ProducerInfo>, BrokerError> {
        let state = self.state.borrow();
        if !state.partitions.contains_key(key) {
            return Err(unknown_partition());
        }
        let txns = state.txns.get(key);
        Ok(state
            .producers
            .of_partition(key)
            .into_iter()
            .map(|(producer_id, epoch, last_sequence)| ProducerInfo {
                producer_id,
                epoch,
                last_sequence,
                txn_start_offset: txns.and_then(|t| t.ongoing(producer_id)).unwrap_or(-1),
            })
            .collect())
    }

    /// The partition's log start, high watermark and size.
    pub fn offsets(&self, key: &PartitionKey) -> Result<Offsets, BrokerError> {
        let state = self.state.borrow();
        let p = state.partitions.get(key).ok_or_else(unknown_partition)?;
        Ok(Offsets {
            log_start: p.log_start,
            high_watermark: p.high_watermark,
            bytes: p.bytes,
            last_stable_offset: state.last_stable_offset(key, p),
        })
    }

    /// The first visible batch holding a timestamp at or after `ts`, and
    /// its stored bytes; `None` if there is none.
    pub async fn batch_for_time(
        &self,
        key: &PartitionKey,
        ts: i64,
    ) -> Result<Option<(BatchEntry, Bytes)>, BrokerError> {
        let chunk = self.partition(key, |p| p.chunk_for_time(ts))?;
        self.first_in_chunk(key, chunk, |b| b.max_timestamp >= ts)
            .await
    }

    /// Offset and timestamp of the first batch holding the largest
    /// timestamp (ListOffsets' max timestamp), if any batch is visible.
    pub async fn max_timestamp(
        &self,
        key: &PartitionKey,
    ) -> Result<Option<(i64, i64)>, BrokerError> {
        let (best, partial) = self.partition(key, |p| p.max_timestamp_chunks())?;
        let max = best.map(|c| c.max_timestamp);
        let whole = self
            .first_in_chunk(key, best, |b| Some(b.max_timestamp) == max)
            .await?;
        let mut found = whole.map(|(b, _)| b);
        if let Some(chunk) = partial {
            let high_watermark = self.partition(key, |p| p.high_watermark)?;
            for (b, _) in self.read_chunk(key, &chunk, chunk.base_offset).await? {
                if b.base_offset >= high_watermark {
                    break;
                }
                if found.is_none_or(|f| b.max_timestamp > f.max_timestamp) {
                    found = Some(b);
                }
            }
        }
        Ok(found.map(|b| (b.base_offset, b.max_timestamp)))
    }

    /// The first visible batch of `chunk` that `wanted` picks.
    async fn first_in_chunk(
        &self,
        key: &PartitionKey,
        chunk: Option<Chunk>,
        wanted: impl Fn(&BatchEntry) -> bool,
    ) -> Result<Option<(BatchEntry, Bytes)>, BrokerError> {
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        let high_watermark = self.partition(key, |p| p.high_watermark)?;
        Ok(self
            .read_chunk(key, &chunk, chunk.base_offset)
            .await?
            .into_iter()
            .take_while(|(b, _)| b.base_offset < high_watermark)
            .find(|(b, _)| wanted(b)))
    }

    /// What `f` says of the partition.
    fn partition<T>(
        &self,
        key: &PartitionKey,
        f: impl FnOnce(&Partition) -> T,
    ) -> Result<T, BrokerError> {
        let state = self.state.borrow();
        Ok(f(state
            .partitions
            .get(key)
            .ok_or_else(unknown_partition)?))
    }

    /// Moves the partition's log start up to `offset` (at most the high
    /// watermark), durably; returns the new log start.
    pub async fn trim_log_start(
        &self,
        key: &PartitionKey,
        offset: i64,
    ) -> Result<i64, BrokerError> {
        match self.submit_log_start(key, offset)? {
            Some(durable) => durable.await?,
            // Nothing to move; what it is may not be durable yet.
            None => self.wal.sync().await?,
        }
        Ok(self.offsets(key)?.log_start)
    }

    /// Hands the log-start frame of `key` at `offset` to the WAL and
    /// trims the index at once (readers below it get OFFSET_OUT_OF_RANGE);
    /// `None` when the log start is there already.
    fn submit_log_start(
        &self,
        key: &PartitionKey,
        offset: i64,
    ) -> Result<Option<Durable>, BrokerError> {
        let mut state = self.state.borrow_mut();
        let p = state
            .partitions
            .get_mut(key)
            .ok_or_else(unknown_partition)?;
        if offset > p.high_watermark || offset < 0 {
            return Err(BrokerError::OffsetOutOfRange {
                offset,
                log_start: p.log_start,
                high_watermark: p.high_watermark,
            });
        }
        if offset <= p.log_start {
            return Ok(None);
        }
        let appended = self
            .wal
            .submit(LOG_START.id, &[&encode_log_start(key, offset)])?;
        p.trim(offset);
        p.log_start_position = Some(appended.position);
        if let Some(t) = state.txns.get_mut(key) {
            t.trim(offset);
        }
        Ok(Some(appended.durable))
    }

    /// Hands a frame of another WAL user (groups) to the WAL; await the
    /// result before answering anything that depends on it.
    pub fn submit_frame(
        &self,
        frame_type: FrameType,
        parts: &[&[u8]],
    ) -> Result<(u64, Durable), BrokerError> {
        self.check_room(parts.iter().map(|p| p.len()).sum())?;
        let appended = self.wal.submit(frame_type.id, parts)?;
        Ok((appended.position, appended.durable))
    }

    /// Refuses `bytes` more when the disk is full and they would eat into
    /// [`FREEING_RESERVE`]; the error is retriable (KAFKA_STORAGE_ERROR).
    fn check_room(&self, bytes: usize) -> Result<(), BrokerError> {
        let Some(left) = self.wal.headroom() else {
            return Ok(());
        };
        let reserve = FREEING_RESERVE.min(self.wal.segment_size() / 4);
        if left < reserve + bytes as u64 + 4096 {
            return Err(BrokerError::Storage(
                "the disk is full: produce resumes once retention, DeleteRecords or a topic \
                 deletion frees space"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Waits until everything handed to the WAL so far is durable.
    pub async fn sync(&self) -> Result<(), BrokerError> {
        Ok(self.wal.sync().await?)
    }

    /// Resolves with the reason once the WAL has failed (a write or sync
    /// error poisons it for good).
    pub fn wal_failure(&self) -> impl std::future::Future<Output = String> {
        self.wal.failure()
    }

    /// Fails the WAL as a failed sync would (the `wal-fail` fail point).
    pub fn inject_wal_failure(&self, why: &str) {
        self.wal.inject_failure(why);
    }

    /// Follows a new metadata snapshot: state for partitions this shard now
    /// owns, none for deleted topics.
    pub fn apply_metadata(&self, metadata: &Metadata) {
        let mut state = self.state.borrow_mut();
        for topic in metadata.topics.values() {
            for (index, owner) in topic.partitions.iter().enumerate() {
                if *owner == self.shard {
                    state
                        .partitions
                        .entry(PartitionKey::new(topic.id, index as i32))
                        .or_default();
                }
            }
        }
        let dead: Vec<PartitionKey> = state
            .partitions
            .keys()
            .filter(|k| metadata.owner(k) != Some(self.shard))
            .copied()
            .collect();
        for key in &dead {
            state.partitions.remove(key);
            self.fetch_buffer.borrow_mut().forget(key);
        }
        if !dead.is_empty() {
            state.producers.retain_partitions(|k| !dead.contains(k));
            state.txns.retain(|k, _| !dead.contains(k));
        }
    }

    /// Forgets idempotent producers idle longer than `max_idle`.
    pub fn expire_producers(&self, now: Instant, max_idle: Duration) -> usize {
        self.state.borrow_mut().producers.expire(now, max_idle)
    }

    /// The durable batches of `chunk` holding offsets at or after `from`,
    /// in offset order, with their bytes ([`batches_in`]): its WAL span
    /// read in one go. Where the cleaner moved the chunk meanwhile, it is
    /// read where it is now.
    async fn read_chunk(
        &self,
        key: &PartitionKey,
        chunk: &Chunk,
        from: i64,
    ) -> Result<Vec<(BatchEntry, Bytes)>, BrokerError> {
        let span = match self.wal.read_span(chunk.position, chunk.end()).await {
            Ok(span) => span,
            Err(e) => {
                let now = self.partition(key, |p| {
                    p.chunks
                        .get(p.chunk_at(chunk.base_offset))
                        .copied()
                        .filter(|c| c.base_offset <= chunk.base_offset)
                        .ok_or(BrokerError::OffsetOutOfRange {
                            offset: chunk.base_offset,
                            log_start: p.log_start,
                            high_watermark: p.high_watermark,
                        })
                })??;
                if now.position == chunk.position {
                    return Err(e.into());
                }
                return Box::pin(self.read_chunk(key, &now, from)).await;
            }
        };
        batches_in(&span, key, chunk, from)
    }
}

/// The batches of `chunk` in `span` (its WAL span, read) holding offsets
/// at or after `from`, in offset order, with their bytes: the other
/// partitions' frames are skipped, and each batch's checksum verified (the
/// chunk's batches before `from` are passed over unverified: one damaged
/// batch does not hide its neighbours).
fn batches_in(
    span: &sluice_wal_core::FrameSpan,
    key: &PartitionKey,
    chunk: &Chunk,
    from: i64,
) -> Result<Vec<(BatchEntry, Bytes)>, BrokerError> {
    let mut found = Vec::with_capacity(chunk.batches as usize);
    let mut expected = chunk.base_offset;
    for frame in span.frames() {
        let frame = frame?;
        if frame.frame_type != RECORD_BATCH.id && frame.frame_type != RELOCATED_BATCH.id {
            continue;
        }
        // Which partition and offsets, before paying for the checksum.
        let head = frame.peek(BATCH_FRAME_HEADER + 27);
        let ours = parse_batch_frame(head).is_some_and(|(k, batch)| {
            &k == key && batch.get(..8) == Some(&expected.to_be_bytes()[..])
        });
        if !ours {
            continue;
        }
        let delta = head
            .get(BATCH_FRAME_HEADER + 23..)
            .and_then(|d| d.try_into().ok())
            .map(i32::from_be_bytes);
        if let Some(delta) = delta.filter(|d| expected + i64::from(*d) < from) {
            expected += i64::from(delta) + 1;
            continue;
        }
        let (_, batch) = parse_batch_frame(frame.payload()?).ok_or_else(|| {
            BrokerError::Storage(format!("WAL position {} is not a batch", frame.position))
        })?;
        let parsed = RecordBatch::parse(batch).map_err(|e| {
            BrokerError::Storage(format!(
                "the batch at WAL position {} does not parse: {e}",
                frame.position
            ))
        })?;
        let entry = BatchEntry {
            base_offset: expected,
            last_offset: parsed.last_offset(),
            position: frame.position,
            size: batch.len() as u32,
            max_timestamp: parsed.max_timestamp(),
        };
        found.push((entry, Bytes::copy_from_slice(batch)));
        expected = entry.last_offset + 1;
        if expected > chunk.last_offset {
            break;
        }
    }
    Ok(found)
}
