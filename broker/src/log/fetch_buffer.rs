//! The shard's fetch buffer: the most recent batches of its partitions,
//! kept in memory within a byte budget so consumers at the tail are served
//! without touching the disk.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;

use super::partition::PartitionKey;

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

    /// The buffered batch holding `offset`, with its last offset.
    pub fn containing(&self, key: &PartitionKey, offset: i64) -> Option<(i64, Bytes)> {
        let (base, batch) = self.batches.get(key)?.range(..=offset).next_back()?;
        let delta = batch.get(23..27)?;
        let last = base + i64::from(i32::from_be_bytes(delta.try_into().ok()?));
        (last >= offset).then(|| (last, batch.clone()))
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

    #[test]
    fn fetch_buffer_evicts_oldest_within_budget() {
        let mut b = FetchBuffer::new(250);
        let k = PartitionKey::new([1; 16], 0);
        for base in 0..5 {
            b.insert(k, base, Bytes::from(vec![0u8; 100]));
        }
        assert!(b.used() <= 250);
        assert!(b.containing(&k, 0).is_none());
        assert!(b.containing(&k, 4).is_some());
        b.forget(&k);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_batch_is_found_by_any_of_its_offsets() {
        let mut b = FetchBuffer::new(1000);
        let k = PartitionKey::new([1; 16], 0);
        let mut batch = vec![0u8; 100];
        batch[23..27].copy_from_slice(&2i32.to_be_bytes()); // offsets 10..=12
        b.insert(k, 10, Bytes::from(batch));
        assert_eq!(b.containing(&k, 9), None);
        assert_eq!(b.containing(&k, 12).map(|(last, _)| last), Some(12));
        assert_eq!(b.containing(&k, 13), None);
    }
}
