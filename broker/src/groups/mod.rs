//! Consumer group coordination (Kafka's classic group protocol).
//!
//! A group lives on shard `hash(group id) % shards` (FNV-1a, stable across
//! restarts because the shard count is fixed by the data directory); every
//! group request is run there. Each shard's [`Coordinator`] owns its groups:
//! the state machines (`state`) and the committed offsets. Offsets and the
//! last generation of each group are records in the shard's WAL (`records`,
//! frame type [`FRAME_GROUP`]), appended with the same group commit as
//! produce; an OffsetCommit is answered only once its record is durable.
//! Recovery replays the records; members are not kept across a restart
//! (Kafka does not keep them either), so clients simply rejoin.

pub mod records;
pub mod state;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_protocol::kafka_protocol::ResponseError;
use wal_core::Durable;

use crate::metadata::Metadata;
use crate::shard::{Shard, FRAME_GROUP};
use records::GroupRecord;
use state::{Committed, Group, GroupState};

/// How often member sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How often empty groups and expired offsets are cleaned up.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);
/// Offsets of an empty group are kept this long (Kafka's
/// offsets.retention.minutes default: 7 days) after the group became
/// empty, or, for standalone consumers, after the commit.
pub const OFFSET_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The shard that coordinates `group_id`.
pub fn coordinator_shard(group_id: &str, shards: usize) -> usize {
    let hash = group_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

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
            .or_insert_with(|| Group::new(id, now_ms()))
    }

    /// Applies a record's effect on memory (recovery, and live writes right
    /// after handing the record to the WAL, so memory follows WAL order).
    pub fn apply(&mut self, record: &GroupRecord) {
        match record {
            GroupRecord::Commit { group, offsets } => {
                let g = self.get_or_create(group);
                for o in offsets {
                    g.offsets.insert(
                        (o.topic.clone(), o.partition),
                        Committed {
                            topic_id: o.topic_id,
                            offset: o.offset,
                            leader_epoch: o.leader_epoch,
                            metadata: o.metadata.clone(),
                            commit_timestamp: o.commit_timestamp,
                        },
                    );
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
            }
        }
    }

    /// Replays one group frame of the WAL. Offsets of topics that no longer
    /// exist (or were recreated under the same name) are dropped.
    pub fn replay(&mut self, position: u64, payload: &[u8], metadata: &Metadata) {
        let mut record = match GroupRecord::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                self.replayed.invalid += 1;
                tracing::error!(position, error = e, "group record does not parse; skipped");
                return;
            }
        };
        if let GroupRecord::Commit { offsets, .. } = &mut record {
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
        self.apply(&record);
    }

    /// Drops the offsets of topics that were deleted (a new metadata snapshot).
    pub fn retain_topics(&mut self, metadata: &Metadata) {
        for g in self.groups.values_mut() {
            g.offsets.retain(|(topic, _), c| {
                metadata
                    .topics
                    .get(topic)
                    .is_some_and(|t| t.id == c.topic_id)
            });
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
        let wall = now_ms();
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
            if g.offsets.is_empty() && g.pending.is_empty() {
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

/// Hands a group record to the shard's WAL; await the result before
/// answering anything that depends on it.
pub fn submit(shard: &Shard, record: &GroupRecord) -> Result<Durable, String> {
    shard
        .wal
        .submit(FRAME_GROUP, &[&record.encode()])
        .map(|a| a.durable)
        .map_err(|e| e.to_string())
}

/// Writes records whose durability nobody waits for (generations,
/// clean-up tombstones): a lost one only means a lower generation id or a
/// group that is removed again after a restart.
pub fn submit_all(shard: &Shard, records: Vec<GroupRecord>) {
    for r in records {
        if let Err(e) = submit(shard, &r) {
            tracing::error!(group = r.group(), error = e, "group record not written");
        }
    }
}

/// The error code for a WAL failure on the group path.
pub fn storage_error(e: &str) -> i16 {
    tracing::error!(error = e, "group record write failed");
    ResponseError::KafkaStorageError.code()
}

/// Installs the groups rebuilt by recovery and starts the shard's group
/// timers.
pub fn start(shard: &Rc<Shard>, coordinator: Coordinator) {
    let counts = coordinator.replayed;
    let offsets: usize = coordinator.groups.values().map(|g| g.offsets.len()).sum();
    tracing::info!(
        shard = shard.id,
        groups = coordinator.groups.len(),
        offsets,
        records = counts.records,
        dropped_deleted_topic = counts.dropped_deleted_topic,
        skipped_invalid = counts.invalid,
        "groups recovered"
    );
    *shard.groups.borrow_mut() = coordinator;
    glommio::spawn_local(run_timers(shard.clone())).detach();
}

async fn run_timers(shard: Rc<Shard>) {
    let stop = shard.shutdown.generation();
    loop {
        if shard.sleep_or_shutdown(TICK, stop).await {
            // Waiting joins and syncs are told to find the coordinator
            // again, so draining does not wait for rebalance timeouts.
            let code = ResponseError::NotCoordinator.code();
            for g in shard.groups.borrow_mut().groups.values_mut() {
                g.fail_waiters(code);
            }
            return;
        }
        let records = shard.groups.borrow_mut().tick(Instant::now());
        submit_all(&shard, records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Topic;
    use records::OffsetRecord;
    use std::sync::Arc;

    #[test]
    fn coordinator_shard_is_stable_and_in_range() {
        assert_eq!(coordinator_shard("g", 1), 0);
        for shards in 1..8 {
            for g in ["", "a", "orders-consumers", "ü"] {
                let s = coordinator_shard(g, shards);
                assert!(s < shards);
                assert_eq!(s, coordinator_shard(g, shards));
            }
        }
    }

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

    #[test]
    fn replay_keeps_the_last_commit_and_honours_tombstones_and_deleted_topics() {
        let mut metadata = Metadata::default();
        metadata.topics.insert(
            "t".into(),
            Arc::new(Topic {
                name: "t".into(),
                id: [1; 16],
                partitions: vec![0, 0],
                configs: Default::default(),
            }),
        );
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
            c.replay(i as u64, &f.encode(), &metadata);
        }
        c.replay(99, b"junk", &metadata);
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
}
