//! The log's state on one shard: its partitions (offsets and index) and
//! the idempotent-producer state of those partitions. Recovery rebuilds it
//! by replaying the log's frames ([`FrameOwner`]); afterwards the
//! [`super::Log`] owns it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sluice_protocol::record_batch::RecordBatch;
use sluice_wal_core::RecoveredFrame;

use super::frame::{
    encode_log_start, parse_batch_frame, parse_log_start, LOG_START, RECORD_BATCH, RELOCATED_BATCH,
};
use super::partition::{BatchEntry, Partition, PartitionKey};
use super::producers::{ProducerBatch, ProducerStates};
use crate::frames::{FrameOwner, FrameType, LiveFrame};
use crate::metadata::Metadata;
use crate::shard_id::ShardId;

/// Partitions and producer state of one shard.
#[derive(Debug)]
pub struct LogState {
    /// The shard this is.
    pub shard: ShardId,
    /// Partitions this shard owns.
    pub partitions: HashMap<PartitionKey, Partition>,
    /// Idempotent-producer state of those partitions.
    pub producers: ProducerStates,
    /// Frames of topics that no longer exist (deleted), skipped in replay.
    pub skipped_deleted: u64,
    /// Frames that did not parse or did not fit the log (logged, skipped).
    pub skipped_invalid: u64,
    /// Offsets missing between two batches of a partition, as found in
    /// replay: a loss that must not hide (recovery stops on it unless told
    /// to skip corruption).
    pub gaps: Vec<String>,
}

impl LogState {
    /// Empty state of `shard`.
    pub fn new(shard: ShardId) -> LogState {
        LogState {
            shard,
            partitions: HashMap::new(),
            producers: ProducerStates::default(),
            skipped_deleted: 0,
            skipped_invalid: 0,
            gaps: Vec::new(),
        }
    }

    /// Whether `key` is a partition this shard owns in `metadata`.
    fn owns(&self, metadata: &Metadata, key: &PartitionKey) -> bool {
        metadata.owner(key) == Some(self.shard)
    }

    /// Ends a replay: puts each partition's batches in offset order,
    /// applies its log start, and makes everything visible (everything
    /// replayed was durable). Offsets missing between a partition's log
    /// start and its end go to `gaps`.
    pub fn finish_replay(&mut self) {
        for (key, p) in &mut self.partitions {
            for (first, last, position) in p.finish_replay() {
                let gap = format!(
                    "partition {} of topic id {}: offsets {first}..{last} missing before the batch at WAL position {position}",
                    key.partition,
                    crate::metadata::hex(&key.topic_id),
                );
                tracing::error!(gap, "offset gap in the log");
                self.gaps.push(gap);
            }
        }
    }

    fn replay_batch(
        &mut self,
        position: u64,
        payload: &[u8],
        metadata: &Metadata,
        relocated: bool,
    ) {
        let Some((key, batch)) = parse_batch_frame(payload) else {
            self.skipped_invalid += 1;
            tracing::warn!(position, "short record-batch frame skipped");
            return;
        };
        if !self.owns(metadata, &key) {
            self.skipped_deleted += 1;
            return;
        }
        let batch = match RecordBatch::parse(batch) {
            Ok(b) => b,
            Err(e) => {
                self.skipped_invalid += 1;
                tracing::error!(position, error = %e, "stored batch does not parse; skipped");
                return;
            }
        };
        let partition = self.partitions.entry(key).or_default();
        // A record batch is newer than everything before it; only a
        // relocated one may go back.
        if !relocated && batch.base_offset() < partition.log_end {
            self.skipped_invalid += 1;
            tracing::error!(
                position,
                base_offset = batch.base_offset(),
                log_end = partition.log_end,
                "stored batch overlaps the log; skipped"
            );
            return;
        }
        partition.replay_batch(BatchEntry {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            position,
            size: batch.size() as u32,
            max_timestamp: batch.max_timestamp(),
        });
        if let Some(pb) = ProducerBatch::of(&batch) {
            self.producers
                .record_replayed(key, &pb, batch.base_offset(), Instant::now());
        }
    }

    fn replay_log_start(&mut self, position: u64, payload: &[u8], metadata: &Metadata) {
        let Some((key, log_start)) = parse_log_start(payload) else {
            self.skipped_invalid += 1;
            tracing::warn!(position, "short log-start frame skipped");
            return;
        };
        if !self.owns(metadata, &key) {
            self.skipped_deleted += 1;
            return;
        }
        let partition = self.partitions.entry(key).or_default();
        partition.replay_log_start(log_start, position);
    }

    /// Logs what was recovered in total, and per partition at debug level
    /// (a line each would flood the log of a broker with many partitions).
    pub fn log_replay(&self, metadata: &Metadata) {
        let names: BTreeMap<[u8; 16], &str> = metadata
            .topics
            .values()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        let mut records = 0;
        for (key, p) in &self.partitions {
            records += p.records;
            tracing::debug!(
                shard = self.shard.index(),
                topic = names.get(&key.topic_id).copied().unwrap_or("?"),
                partition = key.partition,
                records = p.records,
                batches = p.index.len(),
                first_offset = p.log_start,
                last_offset = p.log_end - 1,
                "recovered"
            );
        }
        tracing::info!(
            shard = self.shard.index(),
            partitions = self.partitions.len(),
            records,
            skipped_deleted = self.skipped_deleted,
            skipped_invalid = self.skipped_invalid,
            "recovery replayed"
        );
    }
}

impl FrameOwner for LogState {
    fn frame_types(&self) -> &'static [FrameType] {
        &[RECORD_BATCH, LOG_START, RELOCATED_BATCH]
    }

    fn replay(&mut self, frame: &RecoveredFrame<'_>, metadata: &Metadata) {
        let relocated = frame.frame_type == RELOCATED_BATCH.id;
        if frame.frame_type == LOG_START.id {
            self.replay_log_start(frame.position, frame.payload, metadata);
        } else {
            self.replay_batch(frame.position, frame.payload, metadata, relocated);
        }
    }

    /// The oldest batch any partition still serves, or the log-start frame
    /// that says where a trimmed partition starts.
    fn lowest_needed_position(&self) -> Option<u64> {
        self.partitions
            .values()
            .flat_map(|p| p.lowest_position().into_iter().chain(p.log_start_position))
            .min()
    }

    /// Batches below `position` are copied as stored (as relocated
    /// batches); a log start set by a frame below it is stated again.
    fn live_below(&self, position: u64) -> Vec<LiveFrame> {
        let mut live = Vec::new();
        for (key, p) in &self.partitions {
            if p.log_start_position.is_some_and(|at| at < position) {
                live.push(LiveFrame::Fresh {
                    frame_type: LOG_START.id,
                    payload: encode_log_start(key, p.log_start).to_vec(),
                });
            }
            live.extend(p.index.iter().filter(|b| b.position < position).map(|b| {
                LiveFrame::Stored {
                    position: b.position,
                    copy_as: RELOCATED_BATCH.id,
                    bytes: (super::frame::BATCH_FRAME_HEADER as u32 + b.size).into(),
                }
            }));
        }
        live
    }

    fn relocated(&mut self, frame_type: u8, payload: &[u8], position: u64) {
        if frame_type == LOG_START.id {
            if let Some((key, log_start)) = parse_log_start(payload) {
                if let Some(p) = self.partitions.get_mut(&key) {
                    if p.log_start == log_start {
                        p.log_start_position = Some(position);
                    }
                }
            }
            return;
        }
        let Some((key, batch)) = parse_batch_frame(payload) else {
            return;
        };
        let Some(base) = batch.get(..8).and_then(|b| b.try_into().ok()) else {
            return;
        };
        let base = i64::from_be_bytes(base);
        if let Some(p) = self.partitions.get_mut(&key) {
            let at = p.batch_at(base);
            if let Some(entry) = p.index.get_mut(at).filter(|e| e.base_offset == base) {
                entry.position = position;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::frame::batch_frame_header;
    use crate::metadata::Topic;
    use std::sync::Arc;

    const TOPIC: [u8; 16] = [5; 16];

    fn metadata() -> Metadata {
        let mut m = Metadata::default();
        m.topics.insert(
            "t".into(),
            Arc::new(Topic {
                name: "t".into(),
                id: TOPIC,
                partitions: vec![ShardId::new(0), ShardId::new(1)],
                configs: Default::default(),
            }),
        );
        m
    }

    /// A record-batch frame payload: a valid (empty, header-only) v2 batch
    /// at `base`, of no producer.
    fn batch_frame(partition: i32, base: i64) -> Vec<u8> {
        let mut batch = vec![0u8; 61];
        batch[..8].copy_from_slice(&base.to_be_bytes());
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[16] = 2;
        batch[43..57].fill(0xff);
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut payload = batch_frame_header(&PartitionKey::new(TOPIC, partition)).to_vec();
        payload.extend_from_slice(&batch);
        payload
    }

    fn replay(state: &mut LogState, position: u64, frame_type: u8, payload: &[u8]) {
        let frame = RecoveredFrame {
            position,
            frame_type,
            payload,
        };
        state.replay(&frame, &metadata());
    }

    #[test]
    fn replay_rebuilds_partitions_of_this_shard_only() {
        let mut s = LogState::new(ShardId::new(0));
        for (i, position) in [4096u64, 4224, 4352].into_iter().enumerate() {
            replay(&mut s, position, RECORD_BATCH.id, &batch_frame(0, i as i64));
        }
        replay(&mut s, 4480, RECORD_BATCH.id, &batch_frame(1, 0)); // shard 1's
        replay(&mut s, 4608, RECORD_BATCH.id, &batch_frame(0, 1)); // overlaps
        s.finish_replay();
        let p = &s.partitions[&PartitionKey::new(TOPIC, 0)];
        assert_eq!((p.log_start, p.log_end, p.high_watermark), (0, 3, 3));
        assert_eq!((s.skipped_deleted, s.skipped_invalid), (1, 1));
        assert_eq!(s.lowest_needed_position(), Some(4096));
    }

    #[test]
    fn a_trimmed_log_needs_its_log_start_frame_and_the_batches_it_serves() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        for (i, position) in [4096u64, 4224, 4352].into_iter().enumerate() {
            replay(&mut s, position, RECORD_BATCH.id, &batch_frame(0, i as i64));
        }
        replay(&mut s, 8192, LOG_START.id, &encode_log_start(&key, 2));
        s.finish_replay();
        let p = &s.partitions[&key];
        assert_eq!((p.log_start, p.index.len()), (2, 1));
        assert_eq!(s.lowest_needed_position(), Some(4352));
        // Below 5000: the one batch still served. Below 9000: the log start too.
        assert_eq!(
            s.live_below(5000),
            [LiveFrame::Stored {
                position: 4352,
                copy_as: RELOCATED_BATCH.id,
                bytes: 81
            }]
        );
        let live = s.live_below(9000);
        assert_eq!(live.len(), 2);
        assert!(live.contains(&LiveFrame::Fresh {
            frame_type: LOG_START.id,
            payload: encode_log_start(&key, 2).to_vec()
        }));
        // Copied to the head: the index and the log start follow.
        s.relocated(RECORD_BATCH.id, &batch_frame(0, 2), 20_000);
        s.relocated(LOG_START.id, &encode_log_start(&key, 2), 20_128);
        assert_eq!(s.partitions[&key].index[0].position, 20_000);
        assert_eq!(s.lowest_needed_position(), Some(20_000));
        assert!(s.live_below(20_000).is_empty());
    }

    #[test]
    fn a_log_trimmed_to_its_end_keeps_its_offsets() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        replay(&mut s, 4096, LOG_START.id, &encode_log_start(&key, 7));
        replay(&mut s, 4224, RECORD_BATCH.id, &batch_frame(0, 7));
        s.finish_replay();
        let p = &s.partitions[&key];
        assert_eq!((p.log_start, p.log_end, p.high_watermark), (7, 8, 8));
        assert!(s.gaps.is_empty());
    }

    /// The cleaner copied batches 0 and 1 forward (their originals' segment
    /// is gone) after batches 2 and 3 were written, then copied batch 2
    /// while its original was still there (a crash before the delete):
    /// replay puts every batch in its place, once, at its newest position.
    #[test]
    fn relocated_batches_take_their_place_by_offset() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        replay(&mut s, 8192, RECORD_BATCH.id, &batch_frame(0, 2));
        replay(&mut s, 8320, RECORD_BATCH.id, &batch_frame(0, 3));
        replay(&mut s, 12288, RELOCATED_BATCH.id, &batch_frame(0, 0));
        replay(&mut s, 12416, RELOCATED_BATCH.id, &batch_frame(0, 1));
        replay(&mut s, 12544, RELOCATED_BATCH.id, &batch_frame(0, 2));
        // A record batch behind the log end is still refused.
        replay(&mut s, 12672, RECORD_BATCH.id, &batch_frame(0, 1));
        s.finish_replay();
        assert!(s.gaps.is_empty(), "{:?}", s.gaps);
        assert_eq!(s.skipped_invalid, 1);
        let p = &s.partitions[&key];
        assert_eq!((p.log_start, p.log_end, p.high_watermark), (0, 4, 4));
        let at: Vec<(i64, u64)> = p
            .index
            .iter()
            .map(|b| (b.base_offset, b.position))
            .collect();
        assert_eq!(at, [(0, 12288), (1, 12416), (2, 12544), (3, 8320)]);
        assert_eq!(s.lowest_needed_position(), Some(8320));
        assert_eq!(p.bytes, 4 * 61);
    }

    /// A log start stated before relocated copies of batches it trimmed:
    /// the copies are dropped once replay is over.
    #[test]
    fn a_log_start_applies_to_batches_relocated_after_it() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        replay(&mut s, 4096, LOG_START.id, &encode_log_start(&key, 1));
        replay(&mut s, 4224, RECORD_BATCH.id, &batch_frame(0, 2));
        replay(&mut s, 8192, RELOCATED_BATCH.id, &batch_frame(0, 0));
        replay(&mut s, 8320, RELOCATED_BATCH.id, &batch_frame(0, 1));
        s.finish_replay();
        assert!(s.gaps.is_empty(), "{:?}", s.gaps);
        let p = &s.partitions[&key];
        assert_eq!((p.log_start, p.log_end, p.index.len()), (1, 3, 2));
        assert_eq!(p.index[0].position, 8320);
    }

    #[test]
    fn an_offset_gap_in_replay_is_reported() {
        let mut s = LogState::new(ShardId::new(0));
        replay(&mut s, 4096, RECORD_BATCH.id, &batch_frame(0, 0));
        replay(&mut s, 4224, RECORD_BATCH.id, &batch_frame(0, 1));
        replay(&mut s, 4352, RECORD_BATCH.id, &batch_frame(0, 5));
        s.finish_replay();
        assert_eq!(s.gaps.len(), 1);
        assert!(s.gaps[0].contains("offsets 2..4 missing"), "{}", s.gaps[0]);
        assert!(s.gaps[0].contains("4352"), "{}", s.gaps[0]);
    }
}
