//! One partition's log on its owning shard: offsets, and the index from
//! offset to WAL position.
//!
//! Offsets are assigned when a batch is handed to the WAL (log end offset);
//! the high watermark moves only once the batch is durable, and never back.

pub use crate::metadata::PartitionKey;

/// Where one batch lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// WAL position of the frame holding it.
    pub position: u64,
    /// Batch size in bytes.
    pub size: u32,
    /// Largest timestamp in the batch (for ListOffsets by time).
    pub max_timestamp: i64,
}

/// A partition's log state.
#[derive(Debug, Default)]
pub struct Partition {
    /// First offset still in the log.
    pub log_start: i64,
    /// Offset the next batch gets (includes batches not yet durable).
    pub log_end: i64,
    /// Every offset below it is durable and visible to consumers.
    pub high_watermark: i64,
    /// Batches in offset order.
    pub index: Vec<BatchEntry>,
    /// For each batch of `index`, the largest timestamp up to and including
    /// it: never decreasing, so a time is found by binary search, as in
    /// Kafka's time index (a scan per lookup made one ListOffsets with a
    /// thousand times stall its shard for seconds).
    times: Vec<i64>,
    /// Records appended, for the counts in logs.
    pub records: u64,
    /// Bytes of the batches in `index` (retention.bytes).
    pub bytes: u64,
    /// WAL position of the log-start frame that set `log_start`, if one did.
    pub log_start_position: Option<u64>,
    /// During replay: the log start the log-start frames set (the largest),
    /// applied once every frame is in.
    replayed_log_start: Option<i64>,
    /// During replay: a relocated batch went in before a later one, so the
    /// index must be sorted (and copies merged) once every frame is in.
    unsorted: bool,
}

impl Partition {
    /// Index of the first batch holding an offset at or after `offset`.
    pub fn batch_at(&self, offset: i64) -> usize {
        self.index.partition_point(|b| b.last_offset < offset)
    }

    /// Records a new batch at the log end.
    pub fn push(&mut self, entry: BatchEntry) {
        self.log_end = entry.last_offset + 1;
        self.records += (entry.last_offset - entry.base_offset + 1) as u64;
        self.bytes += u64::from(entry.size);
        let so_far = self
            .times
            .last()
            .map_or(entry.max_timestamp, |t| (*t).max(entry.max_timestamp));
        self.times.push(so_far);
        self.index.push(entry);
    }

    /// Moves the log start up to `offset` (never down, never past the log
    /// end) and forgets the batches wholly below it.
    pub fn trim(&mut self, offset: i64) {
        if offset <= self.log_start {
            return;
        }
        self.log_start = offset;
        self.log_end = self.log_end.max(offset);
        self.high_watermark = self.high_watermark.max(offset);
        let below = self.batch_at(offset);
        self.bytes -= self.index[..below]
            .iter()
            .map(|b| u64::from(b.size))
            .sum::<u64>();
        self.index.drain(..below);
        self.times.drain(..below);
    }

    /// Replay: a batch copied forward by the cleaner (or its original) in
    /// WAL order, which is not offset order once batches are relocated.
    pub fn replay_batch(&mut self, entry: BatchEntry) {
        if self
            .index
            .last()
            .is_some_and(|l| l.base_offset >= entry.base_offset)
        {
            self.unsorted = true;
        }
        self.log_end = self.log_end.max(entry.last_offset + 1);
        self.index.push(entry);
    }

    /// Replay: a log-start frame at `position` set the log start.
    pub fn replay_log_start(&mut self, log_start: i64, position: u64) {
        if self.replayed_log_start.is_none_or(|s| log_start >= s) {
            self.replayed_log_start = Some(log_start);
            self.log_start_position = Some(position);
        }
    }

    /// Ends a replay: sorts the index by offset (keeping, of a batch and
    /// its copies, the one written last), applies the log start, rebuilds
    /// what is derived from the index, and makes everything visible.
    /// Returns the offset ranges missing between the log start and the
    /// log end, each with the WAL position of the batch after it.
    pub fn finish_replay(&mut self) -> Vec<(i64, i64, u64)> {
        if std::mem::take(&mut self.unsorted) {
            // Stable sort: of equal base offsets the later frame comes last.
            self.index.sort_by_key(|b| b.base_offset);
            let mut merged: Vec<BatchEntry> = Vec::with_capacity(self.index.len());
            for b in self.index.drain(..) {
                match merged.last_mut() {
                    Some(last) if last.base_offset == b.base_offset => *last = b,
                    _ => merged.push(b),
                }
            }
            self.index = merged;
        }
        let start = match self.replayed_log_start.take() {
            Some(s) => s,
            None => self.index.first().map_or(self.log_start, |b| b.base_offset),
        };
        let below = self.index.partition_point(|b| b.last_offset < start);
        let kept = self.index.len() - below;
        let entries = std::mem::replace(&mut self.index, Vec::with_capacity(kept));
        let log_end = self.log_end.max(start);
        self.records = 0;
        self.bytes = 0;
        self.times.clear();
        let mut gaps = Vec::new();
        let mut expected = start;
        // What `push` derives from each batch is derived again, in order.
        for b in entries.into_iter().skip(below) {
            if b.base_offset > expected {
                gaps.push((expected, b.base_offset - 1, b.position));
            }
            expected = expected.max(b.last_offset + 1);
            self.push(b);
        }
        self.log_start = start;
        self.log_end = self.log_end.max(log_end);
        self.high_watermark = self.log_end;
        gaps
    }

    /// The log start that retention asks for: past every leading batch
    /// whose newest timestamp is older than `min_timestamp` (retention.ms),
    /// and past the oldest batches for as long as what stays is at least
    /// `max_bytes` (retention.bytes, as Kafka keeps at least that much).
    /// Only durable batches go. `None` when nothing is due.
    pub fn retention_log_start(
        &self,
        min_timestamp: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Option<i64> {
        let visible = self.visible_batches();
        let mut kept = self.bytes;
        let mut drop = 0;
        for b in &self.index[..visible] {
            let expired = min_timestamp.is_some_and(|t| b.max_timestamp < t);
            let too_big = max_bytes.is_some_and(|m| kept - u64::from(b.size) >= m);
            if !expired && !too_big {
                break;
            }
            kept -= u64::from(b.size);
            drop += 1;
        }
        if drop == 0 {
            return None;
        }
        Some(
            self.index
                .get(drop)
                .map_or(self.high_watermark, |b| b.base_offset)
                .min(self.high_watermark),
        )
    }

    /// The lowest WAL position of a batch still served. Batches copied
    /// forward by the cleaner are no longer in position order.
    pub fn lowest_position(&self) -> Option<u64> {
        self.index.iter().map(|b| b.position).min()
    }

    /// Moves the high watermark up to `offset` (never down).
    pub fn advance_high_watermark(&mut self, offset: i64) -> bool {
        if offset > self.high_watermark {
            self.high_watermark = offset.min(self.log_end);
            return true;
        }
        false
    }

    /// The first visible batch holding a timestamp at or after `ts`
    /// (its max timestamp is), if any.
    pub fn batch_for_time(&self, ts: i64) -> Option<BatchEntry> {
        let visible = self.visible_batches();
        let at = self.times[..visible].partition_point(|t| *t < ts);
        self.index[..visible].get(at).copied()
    }

    /// Offset and timestamp of the batch with the largest timestamp (the
    /// first such batch).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let visible = self.visible_batches();
        let max = *self.times[..visible].last()?;
        let at = self.times[..visible].partition_point(|t| *t < max);
        self.index.get(at).map(|b| (b.base_offset, b.max_timestamp))
    }

    /// Batches below the high watermark.
    fn visible_batches(&self) -> usize {
        self.index
            .partition_point(|b| b.base_offset < self.high_watermark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(base: i64, last: i64, ts: i64) -> BatchEntry {
        BatchEntry {
            base_offset: base,
            last_offset: last,
            position: base as u64 * 100,
            size: 100,
            max_timestamp: ts,
        }
    }

    #[test]
    fn index_lookup_and_watermark() {
        let mut p = Partition::default();
        p.push(entry(0, 4, 10));
        p.push(entry(5, 5, 30));
        p.push(entry(6, 9, 20));
        assert_eq!(p.log_end, 10);
        assert_eq!(p.batch_at(0), 0);
        assert_eq!(p.batch_at(3), 0);
        assert_eq!(p.batch_at(5), 1);
        assert_eq!(p.batch_at(7), 2);
        assert_eq!(p.batch_at(10), 3);
        assert!(p.advance_high_watermark(6));
        assert!(!p.advance_high_watermark(5), "never backwards");
        assert_eq!(p.high_watermark, 6);
        assert_eq!(p.batch_for_time(25).map(|b| b.base_offset), Some(5));
        assert_eq!(p.batch_for_time(31), None);
        assert_eq!(p.max_timestamp(), Some((5, 30)));
        p.trim(7);
        assert_eq!((p.log_start, p.index.len(), p.batch_at(7)), (7, 1, 0));
        p.trim(3);
        assert_eq!(p.log_start, 7, "never backwards");
    }

    #[test]
    fn retention_drops_expired_and_oversized_batches_oldest_first() {
        let mut p = Partition::default();
        for (i, ts) in [10, 20, 15, 40, 50].into_iter().enumerate() {
            p.push(entry(i as i64, i as i64, ts));
        }
        p.advance_high_watermark(4);
        assert_eq!(p.bytes, 500);
        assert_eq!(p.retention_log_start(None, None), None);
        // retention.ms: the leading batches whose newest timestamp is
        // older than 21 (10, 20, 15) go; at 11 only the first.
        assert_eq!(p.retention_log_start(Some(21), None), Some(3));
        assert_eq!(p.retention_log_start(Some(11), None), Some(1));
        // retention.bytes: at least 250 bytes stay.
        assert_eq!(p.retention_log_start(None, Some(250)), Some(2));
        assert_eq!(p.retention_log_start(None, Some(300)), Some(2));
        assert_eq!(p.retention_log_start(None, Some(301)), Some(1));
        // Batch 4 is not durable yet: it never goes, and the log start
        // stops at the high watermark.
        assert_eq!(p.retention_log_start(Some(1_000), None), Some(4));
        assert_eq!(p.retention_log_start(None, Some(0)), Some(4));
        p.trim(2);
        assert_eq!(p.bytes, 300);
    }

    /// The binary searches answer what a scan of every visible batch would.
    #[test]
    fn time_lookups_match_a_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let mut p = Partition::default();
            let n = next() % 40;
            for i in 0..n as i64 {
                p.push(entry(i, i, (next() % 100) as i64));
            }
            p.advance_high_watermark((next() % (n + 1)) as i64);
            let visible: Vec<BatchEntry> = p
                .index
                .iter()
                .take_while(|b| b.base_offset < p.high_watermark)
                .copied()
                .collect();
            for ts in -1..=101 {
                let scan = visible.iter().find(|b| b.max_timestamp >= ts).copied();
                assert_eq!(p.batch_for_time(ts), scan, "ts {ts}");
            }
            let scan_max = visible
                .iter()
                .max_by_key(|b| (b.max_timestamp, std::cmp::Reverse(b.base_offset)))
                .map(|b| (b.base_offset, b.max_timestamp));
            assert_eq!(p.max_timestamp(), scan_max);
        }
    }
}
