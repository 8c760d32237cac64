//! Idempotent producers: for each (producer id, partition) the current
//! epoch and the sequence ranges and offsets of the last five batches, so
//! a retried batch is answered with its original offsets instead of being
//! stored twice, a gap is refused, and an old epoch is fenced.
//!
//! The state is rebuilt from the WAL on recovery (every stored batch
//! carries its producer id, epoch and sequences), so a retry that arrives
//! after a crash and restart is still recognised. Producer ids come from a
//! durable counter on the controller (`controller::producer_ids`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sluice_protocol::RecordBatch;

use super::partition::PartitionKey;
use crate::error::BrokerError;

/// Batches remembered per producer and partition (Kafka's max in flight).
pub const CACHED_BATCHES: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug)]
struct Entry {
    epoch: i16,
    batches: VecDeque<Batch>,
    last_seen: Instant,
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in sequence: append it.
    Append,
    /// Already stored: answer with these offsets, store nothing.
    Duplicate {
        /// First offset the batch got when it was first stored.
        base_offset: i64,
    },
}

/// The idempotence fields of a stored or incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Producer id.
    pub pid: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
}

impl ProducerBatch {
    /// The fields of `batch`, if it comes from an idempotent producer.
    pub fn of(batch: &RecordBatch<'_>) -> Option<ProducerBatch> {
        (batch.producer_id() >= 0).then(|| ProducerBatch {
            pid: batch.producer_id(),
            epoch: batch.producer_epoch(),
            first_seq: batch.base_sequence(),
            last_seq: last_sequence(batch.base_sequence(), batch.last_offset_delta()),
        })
    }
}

/// The last sequence of a batch starting at `first` with `delta` more
/// records (sequences wrap from i32::MAX to 0, as in Kafka).
pub fn last_sequence(first: i32, delta: i32) -> i32 {
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

/// Producer state of one shard's partitions.
#[derive(Debug, Default)]
pub struct ProducerStates {
    entries: HashMap<(i64, PartitionKey), Entry>,
}

impl ProducerStates {
    /// Decides about a batch of producer `pid` (epoch, sequences) for `key`.
    pub fn check(
        &self,
        key: PartitionKey,
        b: &ProducerBatch,
    ) -> Result<SequenceCheck, BrokerError> {
        let ProducerBatch {
            pid,
            epoch,
            first_seq,
            last_seq,
        } = *b;
        let Some(entry) = self.entries.get(&(pid, key)) else {
            // Unknown producer (new, or its state expired): any sequence is
            // accepted, as Kafka does since KIP-360.
            return Ok(SequenceCheck::Append);
        };
        if epoch == entry.epoch {
            if let Some(b) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate {
                    base_offset: b.base_offset,
                });
            }
        }
        if epoch < entry.epoch {
            return Err(BrokerError::InvalidProducerEpoch(format!(
                "producer {pid} epoch {epoch} is older than the current epoch {}",
                entry.epoch
            )));
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(BrokerError::OutOfOrderSequence(format!(
                    "producer {pid} new epoch {epoch} must start at sequence 0, got {first_seq}"
                )));
            }
            return Ok(SequenceCheck::Append);
        }
        // Known only from a marker: no sequence to follow yet.
        let Some(last) = entry.batches.back().map(|b| b.last_seq) else {
            return Ok(SequenceCheck::Append);
        };
        if !in_sequence(last, first_seq) {
            return Err(BrokerError::OutOfOrderSequence(format!(
                "producer {pid} sent sequence {first_seq}, expected {}",
                last.wrapping_add(1)
            )));
        }
        Ok(SequenceCheck::Append)
    }

    /// Remembers a batch that was appended at `base_offset`.
    pub fn record(&mut self, key: PartitionKey, b: &ProducerBatch, base_offset: i64, now: Instant) {
        let ProducerBatch {
            pid,
            epoch,
            first_seq,
            last_seq,
        } = *b;
        let entry = self.entries.entry((pid, key)).or_insert(Entry {
            epoch,
            batches: VecDeque::with_capacity(CACHED_BATCHES),
            last_seen: now,
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(Batch {
            first_seq,
            last_seq,
            base_offset,
        });
        entry.last_seen = now;
    }

    /// A transaction marker of `pid` at `epoch` was written on `key`: a
    /// newer epoch (the coordinator fencing a timed-out transaction)
    /// becomes the producer's, so its older epoch is refused from now on.
    pub fn mark(&mut self, key: PartitionKey, pid: i64, epoch: i16, now: Instant) {
        let entry = self.entries.entry((pid, key)).or_insert(Entry {
            epoch,
            batches: VecDeque::new(),
            last_seen: now,
        });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_seen = now;
    }

    /// The epoch the partition `key` knows of producer `pid`, if any.
    pub fn epoch(&self, key: PartitionKey, pid: i64) -> Option<i16> {
        self.entries.get(&(pid, key)).map(|e| e.epoch)
    }

    /// The epoch and last sequence known of each producer of `key`
    /// (DescribeProducers): (producer id, epoch, last sequence), by
    /// producer id.
    pub fn of_partition(&self, key: &PartitionKey) -> Vec<(i64, i16, i32)> {
        let mut found: Vec<_> = self
            .entries
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|((pid, _), e)| (*pid, e.epoch, e.batches.back().map_or(-1, |b| b.last_seq)))
            .collect();
        found.sort_unstable();
        found
    }

    /// Replay: remembers a stored batch met in WAL order, which is not
    /// offset order once the cleaner has copied batches forward: a batch
    /// older than the newest remembered one of its producer takes its place
    /// among the last [`CACHED_BATCHES`] (same epoch) or is ignored.
    pub fn record_replayed(
        &mut self,
        key: PartitionKey,
        b: &ProducerBatch,
        base_offset: i64,
        now: Instant,
    ) {
        let Some(entry) = self.entries.get_mut(&(b.pid, key)) else {
            return self.record(key, b, base_offset, now);
        };
        if entry
            .batches
            .back()
            .is_none_or(|l| l.base_offset < base_offset)
        {
            return self.record(key, b, base_offset, now);
        }
        if b.epoch != entry.epoch || entry.batches.iter().any(|x| x.base_offset == base_offset) {
            return;
        }
        let at = entry
            .batches
            .partition_point(|x| x.base_offset < base_offset);
        entry.batches.insert(
            at,
            Batch {
                first_seq: b.first_seq,
                last_seq: b.last_seq,
                base_offset,
            },
        );
        if entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Appends the state to a checkpoint section.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for ((pid, key), e) in &self.entries {
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&key.topic_id);
            out.extend_from_slice(&key.partition.to_le_bytes());
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_le_bytes());
                out.extend_from_slice(&b.last_seq.to_le_bytes());
                out.extend_from_slice(&b.base_offset.to_le_bytes());
            }
        }
    }

    /// Reads what [`ProducerStates::snapshot`] wrote, keeping the
    /// producers of partitions `keep` says (as seen now: the idle time
    /// starts again).
    pub fn restore(
        &mut self,
        r: &mut crate::checkpoint::Reader<'_>,
        keep: impl Fn(&PartitionKey) -> bool,
        now: Instant,
    ) -> Result<(), String> {
        for _ in 0..r.count(31)? {
            let pid = r.i64()?;
            let topic_id: [u8; 16] = r.bytes(16)?.try_into().expect("16 bytes");
            let key = PartitionKey::new(topic_id, r.i32()?);
            let epoch = r.i16()?;
            let n = r.u8()? as usize;
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(Batch {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                });
            }
            if keep(&key) {
                let entry = Entry {
                    epoch,
                    batches,
                    last_seen: now,
                };
                self.entries.insert((pid, key), entry);
            }
        }
        Ok(())
    }

    /// Forgets producers idle for longer than `max_idle`; returns how many.
    pub fn expire(&mut self, now: Instant, max_idle: Duration) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now.duration_since(e.last_seen) <= max_idle);
        before - self.entries.len()
    }

    /// Forgets the state of partitions that are gone.
    pub fn retain_partitions(&mut self, mut live: impl FnMut(&PartitionKey) -> bool) {
        self.entries.retain(|(_, key), _| live(key));
    }

    /// Producer-partition pairs tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_protocol::kafka_protocol::ResponseError;

    const K: PartitionKey = PartitionKey {
        topic_id: [7; 16],
        partition: 0,
    };

    fn pb(pid: i64, epoch: i16, first_seq: i32, last_seq: i32) -> ProducerBatch {
        ProducerBatch {
            pid,
            epoch,
            first_seq,
            last_seq,
        }
    }

    /// Replay meets a relocated (older) batch after newer ones: it takes
    /// its place among the remembered batches instead of becoming the
    /// last, so the next sequence is still expected after the newest.
    #[test]
    fn replayed_batches_out_of_order_keep_the_newest_last() {
        let now = Instant::now();
        let mut s = ProducerStates::default();
        s.record_replayed(K, &pb(1, 0, 5, 9), 5, now);
        s.record_replayed(K, &pb(1, 0, 10, 14), 10, now);
        s.record_replayed(K, &pb(1, 0, 0, 4), 0, now);
        assert_eq!(s.check(K, &pb(1, 0, 15, 15)), Ok(SequenceCheck::Append));
        assert_eq!(
            s.check(K, &pb(1, 0, 0, 4)),
            Ok(SequenceCheck::Duplicate { base_offset: 0 })
        );
        // A copy of a batch already remembered changes nothing.
        s.record_replayed(K, &pb(1, 0, 5, 9), 5, now);
        assert_eq!(s.check(K, &pb(1, 0, 15, 15)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn a_checkpoint_keeps_what_a_retry_needs() {
        let now = Instant::now();
        let mut s = ProducerStates::default();
        s.record(K, &pb(1, 3, 0, 4), 100, now);
        s.record(K, &pb(1, 3, 5, 9), 105, now);
        let gone = PartitionKey::new([9; 16], 0);
        s.record(gone, &pb(2, 0, 0, 0), 7, now);
        let mut out = Vec::new();
        s.snapshot(&mut out);
        let mut back = ProducerStates::default();
        let mut r = crate::checkpoint::Reader::new(&out);
        back.restore(&mut r, |k| *k == K, now).unwrap();
        assert!(r.is_empty());
        assert_eq!(
            back.len(),
            1,
            "the deleted partition's producer is left out"
        );
        assert_eq!(
            back.check(K, &pb(1, 3, 5, 9)),
            Ok(SequenceCheck::Duplicate { base_offset: 105 })
        );
        assert_eq!(back.check(K, &pb(1, 3, 10, 10)), Ok(SequenceCheck::Append));
        assert!(back.check(K, &pb(1, 2, 10, 10)).is_err(), "older epoch");
        let mut r = crate::checkpoint::Reader::new(&out[..out.len() - 1]);
        assert!(ProducerStates::default()
            .restore(&mut r, |_| true, now)
            .is_err());
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let now = Instant::now();
        let mut s = ProducerStates::default();
        assert_eq!(s.check(K, &pb(1, 0, 0, 4)), Ok(SequenceCheck::Append));
        s.record(K, &pb(1, 0, 0, 4), 100, now);
        assert_eq!(
            s.check(K, &pb(1, 0, 0, 4)),
            Ok(SequenceCheck::Duplicate { base_offset: 100 })
        );
        assert_eq!(s.check(K, &pb(1, 0, 5, 9)), Ok(SequenceCheck::Append));
        s.record(K, &pb(1, 0, 5, 9), 105, now);
        let gap = s.check(K, &pb(1, 0, 11, 12)).unwrap_err();
        assert_eq!(gap.code(), ResponseError::OutOfOrderSequenceNumber.code());
        // A new epoch starts at 0; the old epoch is fenced afterwards.
        assert_eq!(
            s.check(K, &pb(1, 1, 3, 3)).unwrap_err().code(),
            ResponseError::OutOfOrderSequenceNumber.code()
        );
        assert_eq!(s.check(K, &pb(1, 1, 0, 0)), Ok(SequenceCheck::Append));
        s.record(K, &pb(1, 1, 0, 0), 110, now);
        assert_eq!(
            s.check(K, &pb(1, 0, 10, 10)).unwrap_err().code(),
            ResponseError::InvalidProducerEpoch.code()
        );
        // Only the last five batches are remembered.
        for i in 1..=6 {
            s.record(K, &pb(1, 1, i, i), 110 + i64::from(i), now);
        }
        assert_eq!(
            s.check(K, &pb(1, 1, 1, 1)).unwrap_err().code(),
            ResponseError::OutOfOrderSequenceNumber.code()
        );
        assert_eq!(
            s.check(K, &pb(1, 1, 2, 2)),
            Ok(SequenceCheck::Duplicate { base_offset: 112 })
        );
        // Another partition of the same producer is independent.
        assert_eq!(
            s.check(PartitionKey::new([8; 16], 0), &pb(1, 0, 17, 17)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(5, 3), 8);
        assert!(in_sequence(i32::MAX, 0));
        let mut s = ProducerStates::default();
        s.record(K, &pb(2, 0, i32::MAX - 2, i32::MAX), 0, Instant::now());
        assert_eq!(s.check(K, &pb(2, 0, 0, 3)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn idle_producers_expire() {
        let t0 = Instant::now();
        let mut s = ProducerStates::default();
        s.record(K, &pb(1, 0, 0, 0), 0, t0);
        s.record(K, &pb(2, 0, 0, 0), 1, t0 + Duration::from_secs(50));
        assert_eq!(
            s.expire(t0 + Duration::from_secs(70), Duration::from_secs(60)),
            1
        );
        assert_eq!(s.len(), 1);
    }
}
