//! The groups one shard coordinates, as plain state: the group state
//! machines and their committed offsets, changed by records in WAL order
//! ([`Coordinator::apply`]) and by time ([`Coordinator::tick`]). No I/O:
//! `service.rs` writes the records and runs the timers.
//!
//! As a WAL user it replays group records, and knows where the record of
//! every live value is: an offset or a generation is needed until a newer
//! record replaces it. To reclaim the WAL below a position, the live values
//! there are written again as fresh records ([`LiveFrame`]), never
//! copied: an old commit record may also hold values replaced since.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sluice_wal_core::RecoveredFrame;

use super::records::{GroupRecord, OffsetRecord, GROUP_RECORD};
use super::state::{Committed, Group, GroupState};
use crate::frames::{FrameOwner, FrameType, LiveFrame};
use crate::metadata::Metadata;

/// How often empty groups and expired offsets are cleaned up.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);
/// Offsets of an empty group are kept this long (Kafka's
/// offsets.retention.minutes default: 7 days) after the group became
/// empty, or, for standalone consumers, after the commit.
pub const OFFSET_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Counts of a replay, for the recovery log.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayCounts {
    /// Group records applied.
    pub records: u64,
    /// Offsets dropped because their topic no longer exists.
    pub dropped_deleted_topic: u64,
    /// Records that did not parse (logged, skipped).
    pub invalid: u64,
}

/// The groups one shard coordinates.
#[derive(Debug, Default)]
pub struct Coordinator {
    /// Groups by id.
    pub groups: HashMap<String, Group>,
    /// What recovery replayed.
    pub replayed: ReplayCounts,
    last_cleanup: Option<Instant>,
}

impl Coordinator {
    /// The group, created empty when it does not exist.
    pub fn get_or_create(&mut self, id: &str) -> &mut Group {
        self.groups
            .entry(id.to_string())
            .or_insert_with(|| Group::new(id, crate::util::now_ms()))
    }

    /// Applies a record's effect on memory (recovery, and live writes right
    /// after handing the record to the WAL, so memory follows WAL order);
    /// `position` is where the record is in the WAL.
    pub fn apply(&mut self, record: &GroupRecord, position: u64) {
        match record {
            GroupRecord::Commit { group, offsets } => {
                let g = self.get_or_create(group);
                for o in offsets {
                    g.offsets
                        .insert((o.topic.clone(), o.partition), committed(o, position));
                }
            }
            GroupRecord::TxnCommit {
                group,
                producer_id,
                offsets,
            } => {
                let g = self.get_or_create(group);
                let held = g.txn_offsets.entry(*producer_id).or_default();
                for o in offsets {
                    held.insert((o.topic.clone(), o.partition), committed(o, position));
                }
            }
            GroupRecord::TxnEnd {
                group,
                producer_id,
                committed,
            } => {
                if let Some(g) = self.groups.get_mut(group) {
                    let held = g.txn_offsets.remove(producer_id).unwrap_or_default();
                    if *committed {
                        g.offsets.extend(held);
                    }
                }
            }
            GroupRecord::DeleteOffsets { group, partitions } => {
                if let Some(g) = self.groups.get_mut(group) {
                    for (topic, partition) in partitions {
                        g.offsets.remove(&(topic.clone(), *partition));
                    }
                }
            }
            GroupRecord::DeleteGroup { group } => {
                self.groups.remove(group);
            }
            GroupRecord::Generation {
                group,
                generation,
                protocol_type,
            } => {
                let g = self.get_or_create(group);
                if g.members.is_empty() {
                    g.generation = *generation;
                    g.protocol_type.clone_from(protocol_type);
                }
                if g.generation == *generation {
                    g.generation_position = Some(position);
                }
            }
        }
    }

    /// Notes where a record the groups produced themselves (their effect
    /// already in memory) was written: a generation's record is needed
    /// until a newer one replaces it.
    pub fn note_written(&mut self, record: &GroupRecord, position: u64) {
        if let GroupRecord::Generation {
            group, generation, ..
        } = record
        {
            if let Some(g) = self.groups.get_mut(group) {
                if g.generation == *generation {
                    g.generation_position = Some(position);
                }
            }
        }
    }

    /// Replays one group frame of the WAL. Offsets of topics that no longer
    /// exist (or were recreated under the same name) are dropped.
    fn replay_record(&mut self, position: u64, payload: &[u8], metadata: &Metadata) {
        let mut record = match GroupRecord::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                self.replayed.invalid += 1;
                tracing::error!(position, error = e, "group record does not parse; skipped");
                return;
            }
        };
        if let GroupRecord::Commit { offsets, .. } | GroupRecord::TxnCommit { offsets, .. } =
            &mut record
        {
            let before = offsets.len();
            offsets.retain(|o| {
                metadata
                    .topics
                    .get(&o.topic)
                    .is_some_and(|t| t.id == o.topic_id)
            });
            self.replayed.dropped_deleted_topic += (before - offsets.len()) as u64;
        }
        self.replayed.records += 1;
        self.apply(&record, position);
    }

    /// Drops the offsets of topics that were deleted (a new metadata snapshot).
    pub fn retain_topics(&mut self, metadata: &Metadata) {
        let live = |(topic, _): &(String, i32), c: &mut Committed| {
            metadata
                .topics
                .get(topic)
                .is_some_and(|t| t.id == c.topic_id)
        };
        for g in self.groups.values_mut() {
            g.offsets.retain(live);
            g.txn_offsets.values_mut().for_each(|h| h.retain(live));
        }
    }

    /// Records the groups produced (new generations), to be written.
    pub fn take_outbox(&mut self) -> Vec<GroupRecord> {
        self.groups
            .values_mut()
            .flat_map(|g| std::mem::take(&mut g.outbox))
            .collect()
    }

    /// Expires sessions, completes due join phases and, now and then,
    /// removes expired offsets and empty groups without offsets. Returns
    /// the records to write.
    pub fn tick(&mut self, now: Instant) -> Vec<GroupRecord> {
        for g in self.groups.values_mut() {
            g.tick(now);
        }
        let mut out = self.take_outbox();
        if self
            .last_cleanup
            .is_some_and(|t| now.duration_since(t) < CLEANUP_EVERY)
        {
            return out;
        }
        self.last_cleanup = Some(now);
        let wall = crate::util::now_ms();
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            if g.state != GroupState::Empty {
                continue;
            }
            let standalone = g.protocol_type.is_none();
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    let since = if standalone {
                        c.commit_timestamp
                    } else {
                        g.empty_since.max(c.commit_timestamp)
                    };
                    wall - since >= OFFSET_RETENTION_MS
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !expired.is_empty() {
                for k in &expired {
                    g.offsets.remove(k);
                }
                tracing::info!(
                    group = g.id,
                    offsets = expired.len(),
                    "expired offsets removed"
                );
                out.push(GroupRecord::DeleteOffsets {
                    group: g.id.clone(),
                    partitions: expired,
                });
            }
            if g.offsets.is_empty() && g.pending.is_empty() && g.txn_offsets.is_empty() {
                dead.push(g.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
            tracing::info!(group = id, "empty group without offsets removed");
            out.push(GroupRecord::DeleteGroup { group: id });
        }
        out
    }
}

impl FrameOwner for Coordinator {
    fn frame_types(&self) -> &'static [FrameType] {
        &[GROUP_RECORD]
    }

    fn replay(&mut self, frame: &RecoveredFrame<'_>, metadata: &Metadata) {
        self.replay_record(frame.position, frame.payload, metadata);
    }

    fn lowest_needed_position(&self) -> Option<u64> {
        self.groups
            .values()
            .flat_map(|g| {
                g.offsets
                    .values()
                    .chain(g.txn_offsets.values().flat_map(|h| h.values()))
                    .map(|c| c.position)
                    .chain(g.generation_position)
            })
            .min()
    }

    /// Per group: one commit record of its offsets held below `position`,
    /// and its generation if that record is below it.
    fn live_below(&self, position: u64) -> Vec<LiveFrame> {
        let mut live = Vec::new();
        for g in self.groups.values() {
            let offsets: Vec<OffsetRecord> = g
                .offsets
                .iter()
                .filter(|(_, c)| c.position < position)
                .map(|(key, c)| offset_record(key, c))
                .collect();
            if !offsets.is_empty() {
                let record = GroupRecord::Commit {
                    group: g.id.clone(),
                    offsets,
                };
                live.push(LiveFrame {
                    frame_type: GROUP_RECORD.id,
                    payload: record.encode(),
                });
            }
            for (producer_id, held) in &g.txn_offsets {
                let offsets: Vec<OffsetRecord> = held
                    .iter()
                    .filter(|(_, c)| c.position < position)
                    .map(|(key, c)| offset_record(key, c))
                    .collect();
                if !offsets.is_empty() {
                    let record = GroupRecord::TxnCommit {
                        group: g.id.clone(),
                        producer_id: *producer_id,
                        offsets,
                    };
                    live.push(LiveFrame {
                        frame_type: GROUP_RECORD.id,
                        payload: record.encode(),
                    });
                }
            }
            if g.generation_position.is_some_and(|p| p < position) {
                live.push(LiveFrame {
                    frame_type: GROUP_RECORD.id,
                    payload: generation_record(g).encode(),
                });
            }
        }
        live
    }

    /// Each group as the records that state its values, each at the
    /// position of the record it restates: its generation, and one commit
    /// per position its offsets were written at.
    fn snapshot(&self) -> Vec<u8> {
        let mut records: Vec<(u64, GroupRecord)> = Vec::new();
        for g in self.groups.values() {
            if let Some(at) = g.generation_position {
                records.push((at, generation_record(g)));
            }
            let mut by_position: BTreeMap<u64, Vec<OffsetRecord>> = BTreeMap::new();
            for (key, c) in &g.offsets {
                by_position
                    .entry(c.position)
                    .or_default()
                    .push(offset_record(key, c));
            }
            records.extend(by_position.into_iter().map(|(at, offsets)| {
                let group = g.id.clone();
                (at, GroupRecord::Commit { group, offsets })
            }));
            for (producer_id, held) in &g.txn_offsets {
                let mut by_position: BTreeMap<u64, Vec<OffsetRecord>> = BTreeMap::new();
                for (key, c) in held {
                    by_position
                        .entry(c.position)
                        .or_default()
                        .push(offset_record(key, c));
                }
                records.extend(by_position.into_iter().map(|(at, offsets)| {
                    let (group, producer_id) = (g.id.clone(), *producer_id);
                    let record = GroupRecord::TxnCommit {
                        group,
                        producer_id,
                        offsets,
                    };
                    (at, record)
                }));
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for (at, record) in records {
            let bytes = record.encode();
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Replays the records of the snapshot at their positions.
    fn restore(&mut self, snapshot: &[u8], metadata: &Metadata) -> Result<(), String> {
        let mut r = crate::checkpoint::Reader::new(snapshot);
        for _ in 0..r.count(12)? {
            let at = r.u64()?;
            let len = r.u32()? as usize;
            let record = r.bytes(len)?;
            GroupRecord::decode(record).map_err(|e| format!("group record: {e}"))?;
            self.replay_record(at, record, metadata);
        }
        if !r.is_empty() {
            return Err("bytes after the groups' section".into());
        }
        Ok(())
    }

    /// Values the fresh record states again (and that no newer record has
    /// replaced meanwhile) now live at `position`.
    fn relocated(&mut self, _frame_type: u8, payload: &[u8], position: u64) {
        let Ok(record) = GroupRecord::decode(payload) else {
            return;
        };
        let Some(g) = self.groups.get_mut(record.group()) else {
            return;
        };
        match record {
            GroupRecord::Commit { offsets, .. } => {
                for o in offsets {
                    if let Some(c) = g.offsets.get_mut(&(o.topic, o.partition)) {
                        if c.offset == o.offset && c.commit_timestamp == o.commit_timestamp {
                            c.position = c.position.max(position);
                        }
                    }
                }
            }
            GroupRecord::TxnCommit {
                producer_id,
                offsets,
                ..
            } => {
                let Some(held) = g.txn_offsets.get_mut(&producer_id) else {
                    return;
                };
                for o in offsets {
                    if let Some(c) = held.get_mut(&(o.topic, o.partition)) {
                        if c.offset == o.offset && c.commit_timestamp == o.commit_timestamp {
                            c.position = c.position.max(position);
                        }
                    }
                }
            }
            GroupRecord::Generation { generation, .. } if g.generation == generation => {
                g.generation_position = Some(position);
            }
            _ => {}
        }
    }
}

/// The value a stored offset record holds, at `position`.
fn committed(o: &OffsetRecord, position: u64) -> Committed {
    Committed {
        topic_id: o.topic_id,
        offset: o.offset,
        leader_epoch: o.leader_epoch,
        metadata: o.metadata.clone(),
        commit_timestamp: o.commit_timestamp,
        position,
    }
}

/// The record stating a committed offset.
fn offset_record((topic, partition): &(String, i32), c: &Committed) -> OffsetRecord {
    OffsetRecord {
        topic: topic.clone(),
        topic_id: c.topic_id,
        partition: *partition,
        offset: c.offset,
        leader_epoch: c.leader_epoch,
        metadata: c.metadata.clone(),
        commit_timestamp: c.commit_timestamp,
    }
}

/// The record stating a group's generation.
fn generation_record(g: &Group) -> GroupRecord {
    GroupRecord::Generation {
        group: g.id.clone(),
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Topic;
    use crate::shard_id::ShardId;
    use crate::util::now_ms;
    use std::sync::Arc;

    fn commit(group: &str, topic: &str, id: u8, partition: i32, offset: i64) -> GroupRecord {
        GroupRecord::Commit {
            group: group.into(),
            offsets: vec![OffsetRecord {
                topic: topic.into(),
                topic_id: [id; 16],
                partition,
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: now_ms(),
            }],
        }
    }

    /// Metadata holding topic "t" (id [1; 16]) with two partitions.
    fn topic_t() -> Metadata {
        let mut metadata = Metadata::default();
        metadata.topics.insert(
            "t".into(),
            Arc::new(Topic {
                name: "t".into(),
                id: [1; 16],
                partitions: vec![ShardId::new(0), ShardId::new(0)],
                configs: Default::default(),
            }),
        );
        metadata
    }

    #[test]
    fn replay_keeps_the_last_commit_and_honours_tombstones_and_deleted_topics() {
        let mut metadata = topic_t();
        let mut c = Coordinator::default();
        let frames = [
            commit("g", "t", 1, 0, 5),
            commit("g", "t", 1, 0, 9),
            commit("g", "t", 1, 1, 3),
            commit("g", "gone", 2, 0, 3),
            commit("g", "t", 3, 1, 4), // an older topic "t" with another id
            GroupRecord::DeleteOffsets {
                group: "g".into(),
                partitions: vec![("t".into(), 1)],
            },
            commit("h", "t", 1, 0, 1),
            GroupRecord::DeleteGroup { group: "h".into() },
            GroupRecord::Generation {
                group: "g".into(),
                generation: 7,
                protocol_type: Some("consumer".into()),
            },
        ];
        for (i, f) in frames.iter().enumerate() {
            c.replay_record(i as u64, &f.encode(), &metadata);
        }
        c.replay_record(99, b"junk", &metadata);
        assert_eq!(c.replayed.invalid, 1);
        assert_eq!(c.replayed.dropped_deleted_topic, 2);
        assert!(!c.groups.contains_key("h"));
        let g = &c.groups["g"];
        assert_eq!(g.generation, 7);
        assert_eq!(g.offsets.len(), 1);
        assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 9);

        metadata.topics.clear();
        c.retain_topics(&metadata);
        assert!(c.groups["g"].offsets.is_empty());
        // The next clean-up removes the now empty group.
        let out = c.tick(Instant::now());
        assert!(!c.groups.contains_key("g"));
        assert!(out.contains(&GroupRecord::DeleteGroup { group: "g".into() }));
    }

    #[test]
    fn live_values_are_stated_again_and_then_needed_only_at_the_head() {
        let mut c = Coordinator::default();
        c.apply(&commit("g", "t", 1, 0, 5), 100);
        c.apply(&commit("g", "t", 1, 0, 9), 200); // replaces the one at 100
        c.apply(&commit("g", "t", 1, 1, 3), 300);
        c.apply(&commit("h", "t", 1, 0, 1), 400);
        c.apply(&GroupRecord::DeleteGroup { group: "h".into() }, 500);
        c.apply(
            &GroupRecord::Generation {
                group: "g".into(),
                generation: 4,
                protocol_type: Some("consumer".into()),
            },
            600,
        );
        assert_eq!(c.lowest_needed_position(), Some(200));
        // Nothing below 200 is needed: the commit at 100 was replaced.
        assert!(c.live_below(200).is_empty());
        let live = c.live_below(650);
        assert_eq!(
            live.len(),
            2,
            "one commit record and one generation: {live:?}"
        );
        let mut head = 10_000;
        for frame in &live {
            let LiveFrame {
                frame_type,
                payload,
            } = frame;
            assert_eq!(*frame_type, GROUP_RECORD.id);
            match GroupRecord::decode(payload).unwrap() {
                GroupRecord::Commit { group, offsets } => {
                    assert_eq!(group, "g");
                    let mut values: Vec<_> =
                        offsets.iter().map(|o| (o.partition, o.offset)).collect();
                    values.sort_unstable();
                    assert_eq!(values, [(0, 9), (1, 3)]);
                }
                GroupRecord::Generation { generation, .. } => assert_eq!(generation, 4),
                other => panic!("unexpected {other:?}"),
            }
            c.relocated(*frame_type, payload, head);
            head += 128;
        }
        assert_eq!(c.lowest_needed_position(), Some(10_000));
        assert!(c.live_below(10_000).is_empty());
        // Replaying the fresh records alone rebuilds the same values.
        let metadata = topic_t();
        let mut again = Coordinator::default();
        for (i, frame) in live.iter().enumerate() {
            again.replay_record(i as u64, &frame.payload, &metadata);
        }
        let g = &again.groups["g"];
        assert_eq!(g.generation, 4);
        assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 9);
        assert_eq!(g.offsets[&("t".to_string(), 1)].offset, 3);
    }

    /// Offsets of a transaction are held apart until its end: committed
    /// on commit, dropped on abort; held ones stay needed (and are stated
    /// again, still held) until then, and a checkpoint keeps them held.
    #[test]
    fn transactional_offsets_wait_for_the_transaction() {
        let held = |producer_id: i64, offset: i64| {
            let GroupRecord::Commit { offsets, .. } = commit("g", "t", 1, 0, offset) else {
                unreachable!()
            };
            GroupRecord::TxnCommit {
                group: "g".into(),
                producer_id,
                offsets,
            }
        };
        let end = |producer_id, committed| GroupRecord::TxnEnd {
            group: "g".into(),
            producer_id,
            committed,
        };
        let mut c = Coordinator::default();
        c.apply(&commit("g", "t", 1, 0, 5), 100);
        c.apply(&held(7, 9), 200);
        c.apply(&held(8, 11), 300);
        let offset = |c: &Coordinator| c.groups["g"].offsets[&("t".to_string(), 0)].offset;
        assert_eq!(offset(&c), 5, "held offsets are not committed yet");
        assert_eq!(c.lowest_needed_position(), Some(100));

        let snapshot = c.snapshot();
        let mut back = Coordinator::default();
        back.restore(&snapshot, &topic_t()).unwrap();
        assert_eq!(back.groups["g"].txn_offsets.len(), 2);
        assert_eq!(offset(&back), 5);

        let live = c.live_below(250);
        assert!(live.iter().any(|f| matches!(
            GroupRecord::decode(&f.payload),
            Ok(GroupRecord::TxnCommit { producer_id: 7, .. })
        )));
        c.apply(&end(8, false), 400);
        assert_eq!(offset(&c), 5, "an abort drops the held offsets");
        c.apply(&end(7, true), 500);
        assert_eq!(offset(&c), 9, "a commit makes them the committed ones");
        assert!(c.groups["g"].txn_offsets.is_empty());
    }
}
