//! One partition's log on its owning shard: offsets, the index from offset
//! to WAL position, and the shard's fetch buffer of recent batches.
//!
//! Offsets are assigned when a batch is handed to the WAL (log end offset);
//! the high watermark moves only once the batch is durable, and never back.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;

/// Identifies a partition inside a shard: topic id and partition index.
pub type PartitionKey = ([u8; 16], i32);

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
    /// Records appended, for the counts in logs.
    pub records: u64,
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
        self.index.push(entry);
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
        self.index
            .iter()
            .take_while(|b| b.base_offset < self.high_watermark)
            .find(|b| b.max_timestamp >= ts)
            .copied()
    }

    /// Offset and timestamp of the batch with the largest timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.index
            .iter()
            .take_while(|b| b.base_offset < self.high_watermark)
            .max_by_key(|b| (b.max_timestamp, std::cmp::Reverse(b.base_offset)))
            .map(|b| (b.base_offset, b.max_timestamp))
    }
}

/// The shard's budget of recent batches kept in memory, so consumers at the
/// tail are served without touching the disk. Oldest batches go first.
#[derive(Debug, Default)]
pub struct FetchBuffer {
    budget: usize,
    used: usize,
    batches: HashMap<PartitionKey, BTreeMap<i64, Bytes>>,
    order: VecDeque<(PartitionKey, i64, usize)>,
}

impl FetchBuffer {
    /// A buffer holding at most `budget` bytes.
    pub fn new(budget: usize) -> FetchBuffer {
        FetchBuffer {
            budget,
            ..FetchBuffer::default()
        }
    }

    /// Keeps `batch` (starting at `base_offset`), evicting the oldest batches
    /// beyond the budget.
    pub fn insert(&mut self, key: PartitionKey, base_offset: i64, batch: Bytes) {
        let len = batch.len();
        if len > self.budget {
            return;
        }
        self.used += len;
        self.batches
            .entry(key)
            .or_default()
            .insert(base_offset, batch);
        self.order.push_back((key, base_offset, len));
        while self.used > self.budget {
            let Some((k, base, len)) = self.order.pop_front() else {
                break;
            };
            if let Some(map) = self.batches.get_mut(&k) {
                if map.remove(&base).is_some() {
                    self.used -= len;
                }
                if map.is_empty() {
                    self.batches.remove(&k);
                }
            }
        }
    }

    /// The batch starting at `base_offset`, if still buffered.
    pub fn get(&self, key: &PartitionKey, base_offset: i64) -> Option<Bytes> {
        self.batches.get(key)?.get(&base_offset).cloned()
    }

    /// Drops every batch of a partition (its topic was deleted).
    pub fn forget(&mut self, key: &PartitionKey) {
        if let Some(map) = self.batches.remove(key) {
            self.used -= map.values().map(Bytes::len).sum::<usize>();
        }
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
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
    }

    #[test]
    fn fetch_buffer_evicts_oldest_within_budget() {
        let mut b = FetchBuffer::new(250);
        let k = ([1; 16], 0);
        for base in 0..5 {
            b.insert(k, base, Bytes::from(vec![0u8; 100]));
        }
        assert!(b.used() <= 250);
        assert!(b.get(&k, 0).is_none());
        assert!(b.get(&k, 4).is_some());
        b.forget(&k);
        assert_eq!(b.used(), 0);
    }
}
