//! What each partition knows of transactions: the transactions still
//! open on it (producer id → first offset), which bound its last stable
//! offset, and the aborted ones (producer id, first offset, marker offset)
//! a read_committed fetch lists so consumers drop their records — Kafka's
//! producer state and `.txnindex`, rebuilt from the log itself.
//!
//! Live appends arrive in offset order. Replay does not: the cleaner
//! copies old batches forward, so a batch may be met after the marker
//! that closed its transaction. Replay therefore gathers the events of a
//! partition and applies them in offset order at the end, and a batch
//! older than its producer's last marker never opens a transaction.

use std::collections::{BTreeMap, HashMap};

/// An aborted transaction on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// Its producer.
    pub producer_id: i64,
    /// Offset of its first batch on this partition.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

/// A transactional event of a partition, in replay.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// A transactional batch starting at the offset.
    Data,
    /// A marker at the offset; `true` commits.
    Marker(bool),
}

/// One partition's transactions.
#[derive(Debug, Default, Clone)]
pub struct TxnIndex {
    /// Open transactions: producer id → offset of their first batch here.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions, by marker offset.
    aborted: Vec<AbortedTxn>,
    /// Offset of each producer's last marker here.
    last_marker: HashMap<i64, i64>,
    /// Replay's events (offset, producer id, event), applied in order by
    /// [`TxnIndex::finish_replay`].
    pending: Vec<(i64, i64, Event)>,
}

impl TxnIndex {
    /// A transactional batch of `producer_id` at `offset` was appended.
    pub fn on_data(&mut self, producer_id: i64, offset: i64) {
        if self
            .last_marker
            .get(&producer_id)
            .is_some_and(|m| *m > offset)
        {
            return;
        }
        self.ongoing.entry(producer_id).or_insert(offset);
    }

    /// A marker of `producer_id` was appended at `offset`.
    pub fn on_marker(&mut self, producer_id: i64, offset: i64, commit: bool) {
        if self
            .last_marker
            .get(&producer_id)
            .is_some_and(|m| *m >= offset)
        {
            return;
        }
        self.last_marker.insert(producer_id, offset);
        if let Some(first_offset) = self.ongoing.remove(&producer_id) {
            if !commit {
                let at = self.aborted.partition_point(|a| a.last_offset < offset);
                self.aborted.insert(
                    at,
                    AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset: offset,
                    },
                );
            }
        }
    }

    /// Replay met a transactional batch.
    pub fn replay_data(&mut self, producer_id: i64, offset: i64) {
        self.pending.push((offset, producer_id, Event::Data));
    }

    /// Replay met a marker.
    pub fn replay_marker(&mut self, producer_id: i64, offset: i64, commit: bool) {
        self.pending
            .push((offset, producer_id, Event::Marker(commit)));
    }

    /// Applies replay's events in offset order.
    pub fn finish_replay(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|e| e.0);
        for (offset, producer_id, event) in pending {
            match event {
                Event::Data => self.on_data(producer_id, offset),
                Event::Marker(commit) => self.on_marker(producer_id, offset, commit),
            }
        }
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable(&self) -> Option<i64> {
        self.ongoing.values().min().copied()
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn ongoing(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Aborted transactions that hold offsets in `from..to`, for a
    /// read_committed fetch of that range.
    pub fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start.
    pub fn trim(&mut self, log_start: i64) {
        let below = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..below);
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.ongoing.is_empty() && self.aborted.is_empty() && self.last_marker.is_empty()
    }

    /// Appends the index to a checkpoint section.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.ongoing.len() as u32).to_le_bytes());
        for (pid, first) in &self.ongoing {
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&first.to_le_bytes());
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_le_bytes());
        for a in &self.aborted {
            out.extend_from_slice(&a.producer_id.to_le_bytes());
            out.extend_from_slice(&a.first_offset.to_le_bytes());
            out.extend_from_slice(&a.last_offset.to_le_bytes());
        }
        out.extend_from_slice(&(self.last_marker.len() as u32).to_le_bytes());
        for (pid, at) in &self.last_marker {
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&at.to_le_bytes());
        }
    }

    /// Reads what [`TxnIndex::snapshot`] wrote.
    pub fn restore(r: &mut crate::checkpoint::Reader<'_>) -> Result<TxnIndex, String> {
        let mut index = TxnIndex::default();
        for _ in 0..r.count(16)? {
            let pid = r.i64()?;
            index.ongoing.insert(pid, r.i64()?);
        }
        for _ in 0..r.count(24)? {
            index.aborted.push(AbortedTxn {
                producer_id: r.i64()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        for _ in 0..r.count(16)? {
            let pid = r.i64()?;
            index.last_marker.insert(pid, r.i64()?);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_commit_and_abort_bound_the_stable_offset() {
        let mut t = TxnIndex::default();
        t.on_data(1, 10);
        t.on_data(1, 12);
        t.on_data(2, 11);
        assert_eq!(t.first_unstable(), Some(10));
        t.on_marker(1, 13, true);
        assert_eq!(t.first_unstable(), Some(11));
        t.on_marker(2, 14, false);
        assert_eq!(t.first_unstable(), None);
        assert_eq!(
            t.aborted_in(0, 100),
            [AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 14
            }]
        );
        assert!(t.aborted_in(15, 100).is_empty());
        assert!(t.aborted_in(0, 11).is_empty());
        t.trim(15);
        assert!(t.aborted_in(0, 100).is_empty());
    }

    /// The cleaner copied a batch forward after its transaction's marker:
    /// replay meets the copy last, and it must not open the transaction
    /// again (the partition's stable offset would stop there for good).
    #[test]
    fn replay_in_wal_order_is_applied_in_offset_order() {
        let mut t = TxnIndex::default();
        t.replay_marker(5, 20, false);
        t.replay_data(6, 21);
        t.replay_data(5, 10); // relocated, older than the marker
        t.replay_data(5, 10); // and its original, met as well
        t.finish_replay();
        assert_eq!(t.first_unstable(), Some(21));
        assert_eq!(t.aborted_in(0, 100).len(), 1);
        assert_eq!(t.aborted_in(0, 100)[0].first_offset, 10);
        // A copy met after the checkpoint that already closed it.
        t.replay_data(5, 12);
        t.finish_replay();
        assert_eq!(t.ongoing(5), None);
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let mut t = TxnIndex::default();
        t.on_data(1, 10);
        t.on_data(2, 11);
        t.on_marker(2, 14, false);
        let mut out = Vec::new();
        t.snapshot(&mut out);
        let mut r = crate::checkpoint::Reader::new(&out);
        let back = TxnIndex::restore(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(back.first_unstable(), Some(10));
        assert_eq!(back.aborted_in(0, 100), t.aborted_in(0, 100));
        // The marker is remembered: an older copy does not reopen.
        let mut back = back;
        back.on_data(2, 12);
        assert_eq!(back.ongoing(2), None);
    }
}
