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
    /// WAL position of the log-start frame that set `log_start`, if one did.
    pub log_start_position: Option<u64>,
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
        self.index.drain(..below);
        self.times.drain(..below);
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
