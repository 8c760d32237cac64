//! The log's state on one shard: its partitions (offsets and index) and
//! the idempotent-producer state of those partitions. Recovery rebuilds it
//! by replaying the log's frames ([`FrameOwner`]); afterwards the
//! [`super::Log`] owns it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sluice_protocol::record_batch::{ControlType, RecordBatch};
use sluice_wal_core::RecoveredFrame;

use super::frame::{
    encode_log_start, parse_batch_frame, parse_log_start, LOG_START, RECORD_BATCH, RELOCATED_BATCH,
};
use super::partition::{BatchEntry, Chunk, Partition, PartitionKey};
use super::producers::{ProducerBatch, ProducerStates};
use super::transactions::TxnIndex;
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
    /// Transactions of those partitions that have seen any.
    pub txns: HashMap<PartitionKey, TxnIndex>,
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
            txns: HashMap::new(),
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
        for t in self.txns.values_mut() {
            t.finish_replay();
        }
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

    fn replay_batch(&mut self, frame: &RecoveredFrame<'_>, metadata: &Metadata, relocated: bool) {
        let position = frame.position;
        let Some((key, batch)) = parse_batch_frame(frame.payload) else {
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
        partition.replay_batch(
            BatchEntry {
                base_offset: batch.base_offset(),
                last_offset: batch.last_offset(),
                position,
                size: batch.size() as u32,
                max_timestamp: batch.max_timestamp(),
            },
            frame.segment,
        );
        let pid = batch.producer_id();
        if let Some(control) = batch.control_type() {
            let commit = control == ControlType::Commit;
            let txns = self.txns.entry(key).or_default();
            txns.replay_marker(pid, batch.base_offset(), commit);
            self.producers
                .mark(key, pid, batch.producer_epoch(), Instant::now());
        } else if let Some(pb) = ProducerBatch::of(&batch) {
            if batch.is_transactional() {
                let txns = self.txns.entry(key).or_default();
                txns.replay_data(pid, batch.base_offset());
            }
            self.producers
                .record_replayed(key, &pb, batch.base_offset(), Instant::now());
        }
    }

    /// Where a read of `key` ends: read_committed stops at the last
    /// stable offset, read_uncommitted at the high watermark.
    pub fn readable_end(&self, key: &PartitionKey, p: &Partition, committed: bool) -> i64 {
        if committed {
            self.last_stable_offset(key, p)
        } else {
            p.high_watermark
        }
    }

    /// The last stable offset of `key`: the first offset of its oldest
    /// open transaction, else its high watermark.
    pub fn last_stable_offset(&self, key: &PartitionKey, p: &Partition) -> i64 {
        self.txns
            .get(key)
            .and_then(TxnIndex::first_unstable)
            .map_or(p.high_watermark, |first| first.min(p.high_watermark))
    }

    /// Every chunk in segments below `position`, with its partition.
    pub fn chunks_below(&self, position: u64) -> Vec<(PartitionKey, Chunk)> {
        self.partitions
            .iter()
            .flat_map(|(key, p)| p.chunks_below(position).map(|c| (*key, *c)))
            .collect()
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
        let (mut records, mut index_bytes) = (0, 0);
        for (key, p) in &self.partitions {
            records += p.records;
            index_bytes += p.index_bytes();
            tracing::debug!(
                shard = self.shard.index(),
                topic = names.get(&key.topic_id).copied().unwrap_or("?"),
                partition = key.partition,
                records = p.records,
                batches = p.batches,
                chunks = p.chunks.len(),
                first_offset = p.log_start,
                last_offset = p.log_end - 1,
                "recovered"
            );
        }
        tracing::info!(
            shard = self.shard.index(),
            partitions = self.partitions.len(),
            records,
            index_bytes,
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
            self.replay_batch(frame, metadata, relocated);
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

    /// A log start set by a frame below `position` is stated again. The
    /// batches there are copied by the cleaner chunk by chunk
    /// ([`LogState::chunks_below`]): finding them means reading the WAL.
    fn live_below(&self, position: u64) -> Vec<LiveFrame> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.log_start_position.is_some_and(|at| at < position))
            .map(|(key, p)| LiveFrame {
                frame_type: LOG_START.id,
                payload: encode_log_start(key, p.log_start).to_vec(),
            })
            .collect()
    }

    /// Partitions (offsets, log start, sparse index), producers, then
    /// the transactions of each partition that has seen any.
    fn snapshot(&self) -> Vec<u8> {
        let chunks: usize = self.partitions.values().map(|p| p.chunks.len()).sum();
        let mut out = Vec::with_capacity(self.partitions.len() * 48 + chunks * 52 + 4096);
        out.extend_from_slice(&(self.partitions.len() as u32).to_le_bytes());
        for (key, p) in &self.partitions {
            out.extend_from_slice(&key.topic_id);
            out.extend_from_slice(&key.partition.to_le_bytes());
            p.snapshot(&mut out);
        }
        self.producers.snapshot(&mut out);
        out.extend_from_slice(&(self.txns.len() as u32).to_le_bytes());
        for (key, t) in &self.txns {
            out.extend_from_slice(&key.topic_id);
            out.extend_from_slice(&key.partition.to_le_bytes());
            t.snapshot(&mut out);
        }
        out
    }

    fn restore(&mut self, snapshot: &[u8], metadata: &Metadata) -> Result<(), String> {
        let mut r = crate::checkpoint::Reader::new(snapshot);
        for _ in 0..r.count(48)? {
            let topic_id: [u8; 16] = r.bytes(16)?.try_into().expect("16 bytes");
            let key = PartitionKey::new(topic_id, r.i32()?);
            let partition = Partition::restore(&mut r)?;
            if self.owns(metadata, &key) {
                self.partitions.insert(key, partition);
            } else {
                self.skipped_deleted += 1;
            }
        }
        let owned = |k: &PartitionKey| self.owns(metadata, k);
        let mut producers = ProducerStates::default();
        producers.restore(&mut r, owned, Instant::now())?;
        self.producers = producers;
        for _ in 0..r.count(32)? {
            let topic_id: [u8; 16] = r.bytes(16)?.try_into().expect("16 bytes");
            let key = PartitionKey::new(topic_id, r.i32()?);
            let txns = TxnIndex::restore(&mut r)?;
            if self.owns(metadata, &key) {
                self.txns.insert(key, txns);
            }
        }
        if !r.is_empty() {
            return Err("bytes after the log's section".into());
        }
        Ok(())
    }

    fn relocated(&mut self, frame_type: u8, payload: &[u8], position: u64) {
        if frame_type != LOG_START.id {
            return;
        }
        if let Some((key, log_start)) = parse_log_start(payload) {
            if let Some(p) = self.partitions.get_mut(&key) {
                if p.log_start == log_start {
                    p.log_start_position = Some(position);
                }
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

    /// Replays a frame at `position`, in the segment of the 4 KiB block
    /// it is in.
    fn replay(state: &mut LogState, position: u64, frame_type: u8, payload: &[u8]) {
        let frame = RecoveredFrame {
            position,
            segment: position / 4096 * 4096,
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
    fn a_trimmed_log_needs_its_log_start_frame_and_the_chunks_it_serves() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        for (i, position) in [4096u64, 4224, 8192, 8320].into_iter().enumerate() {
            replay(&mut s, position, RECORD_BATCH.id, &batch_frame(0, i as i64));
        }
        replay(&mut s, 12288, LOG_START.id, &encode_log_start(&key, 3));
        s.finish_replay();
        let p = &s.partitions[&key];
        // The chunk holding offset 3 stays whole.
        assert_eq!((p.log_start, p.chunks.len(), p.batches), (3, 1, 2));
        assert_eq!(s.lowest_needed_position(), Some(8192));
        // Below 12288: the chunk still served. Below 16384: the log start too.
        assert!(s.live_below(12288).is_empty());
        assert_eq!(s.chunks_below(12288).len(), 1);
        assert!(s.chunks_below(8192).is_empty());
        let live = s.live_below(16384);
        assert_eq!(
            live,
            [LiveFrame {
                frame_type: LOG_START.id,
                payload: encode_log_start(&key, 3).to_vec()
            }]
        );
        // Stated again at the head: the log start's frame follows.
        s.relocated(LOG_START.id, &encode_log_start(&key, 3), 20_128);
        assert_eq!(s.partitions[&key].log_start_position, Some(20_128));
        assert!(s.live_below(16384).is_empty());
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
    /// replay serves every offset once, from its newest copy.
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
        let at: Vec<(i64, i64, u64)> = p
            .chunks
            .iter()
            .map(|c| (c.base_offset, c.last_offset, c.position))
            .collect();
        assert_eq!(at, [(0, 2, 12288), (3, 3, 8192)]);
        assert_eq!(s.lowest_needed_position(), Some(8192));
        // The narrowed original still counts both its batches.
        assert_eq!(p.bytes, 5 * 61);
    }

    /// A log start stated before relocated copies of batches it trimmed:
    /// the copies below it are not served.
    #[test]
    fn a_log_start_applies_to_batches_relocated_after_it() {
        let key = PartitionKey::new(TOPIC, 0);
        let mut s = LogState::new(ShardId::new(0));
        replay(&mut s, 4096, LOG_START.id, &encode_log_start(&key, 2));
        replay(&mut s, 4224, RECORD_BATCH.id, &batch_frame(0, 3));
        replay(&mut s, 8192, RELOCATED_BATCH.id, &batch_frame(0, 0));
        replay(&mut s, 12288, RELOCATED_BATCH.id, &batch_frame(0, 1));
        replay(&mut s, 12416, RELOCATED_BATCH.id, &batch_frame(0, 2));
        s.finish_replay();
        assert!(s.gaps.is_empty(), "{:?}", s.gaps);
        let p = &s.partitions[&key];
        assert_eq!((p.log_start, p.log_end, p.chunks.len()), (2, 4, 2));
        assert_eq!(p.chunks[0].position, 12288);
    }

    /// A checkpoint's state with the frames after it replayed on top is
    /// the state a full replay rebuilds.
    #[test]
    fn a_checkpoint_and_the_tail_rebuild_what_a_full_replay_does() {
        let key = PartitionKey::new(TOPIC, 0);
        let frames: Vec<(u64, u8, Vec<u8>)> = vec![
            (4096, RECORD_BATCH.id, batch_frame(0, 0)),
            (4224, RECORD_BATCH.id, batch_frame(0, 1)),
            (4352, RECORD_BATCH.id, batch_frame(1, 0)), // shard 1's
            (8192, RECORD_BATCH.id, batch_frame(0, 2)),
            (8320, LOG_START.id, encode_log_start(&key, 1).to_vec()),
            (12288, RECORD_BATCH.id, batch_frame(0, 3)),
            (12416, RELOCATED_BATCH.id, batch_frame(0, 1)),
            (12544, RECORD_BATCH.id, batch_frame(0, 4)),
        ];
        let mut full = LogState::new(ShardId::new(0));
        for (at, t, payload) in &frames {
            replay(&mut full, *at, *t, payload);
        }
        full.finish_replay();
        for cut in 0..=frames.len() {
            let mut head = LogState::new(ShardId::new(0));
            for (at, t, payload) in &frames[..cut] {
                replay(&mut head, *at, *t, payload);
            }
            // What a running broker holds: the replay of what was written.
            head.finish_replay();
            let snapshot = head.snapshot();
            let mut s = LogState::new(ShardId::new(0));
            s.restore(&snapshot, &metadata()).unwrap();
            for (at, t, payload) in &frames[cut..] {
                replay(&mut s, *at, *t, payload);
            }
            s.finish_replay();
            let (a, b) = (&s.partitions[&key], &full.partitions[&key]);
            assert_eq!(
                (a.log_start, a.log_end, a.high_watermark, &a.chunks),
                (b.log_start, b.log_end, b.high_watermark, &b.chunks),
                "cut at {cut}"
            );
            assert_eq!(s.lowest_needed_position(), full.lowest_needed_position());
        }
        let snapshot = full.snapshot();
        for len in [0, 3, snapshot.len() - 1] {
            let mut s = LogState::new(ShardId::new(0));
            assert!(s.restore(&snapshot[..len], &metadata()).is_err(), "{len}");
        }
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
