//! The group coordinator of one shard at work: the glue around the pure
//! [`Coordinator`]. It writes the records the groups produce through the
//! shard's log (answering only once they are durable where a client waits
//! on them), runs the timers, and offers each group operation as a call
//! that runs on the coordinator shard — owned data in, owned results out —
//! so handlers (and later TxnOffsetCommit) only translate Kafka messages.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::coordinator::Coordinator;
use super::records::{GroupRecord, OffsetRecord, GROUP_RECORD};
use super::state::{Answer, GroupState, JoinRequest, JoinResult, SyncResult};
use crate::error::BrokerError;
use crate::lifecycle::Lifecycle;
use crate::log::Log;
use crate::memory::MemoryBudget;
use crate::metadata::Metadata;

/// How often member sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// Kafka's offset.metadata.max.bytes.
const MAX_OFFSET_METADATA: usize = 4096;

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct PartitionCommit {
    /// Partition index.
    pub partition: i32,
    /// The offset (the next one to consume).
    pub offset: i64,
    /// Leader epoch (-1: none).
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

impl PartitionCommit {
    /// A partition of an OffsetCommit or TxnOffsetCommit request.
    pub fn of(
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<&sluice_protocol::kafka_protocol::protocol::StrBytes>,
    ) -> PartitionCommit {
        PartitionCommit {
            partition,
            offset,
            leader_epoch,
            metadata: metadata.map(|m| m.to_string()),
        }
    }
}

/// An OffsetCommit as the coordinator sees it.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    /// Member id ("" for a standalone consumer).
    pub member_id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Generation (-1 for a standalone consumer).
    pub generation: i32,
    /// Topic names and their partitions' offsets, in request order.
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

/// One committed offset as answered: partition index, offset, leader
/// epoch, metadata.
pub type FetchedOffset = (i32, i64, i32, Option<String>);
/// One group's committed offsets as asked, per topic.
pub type GroupOffsets = Vec<(String, Vec<FetchedOffset>)>;
/// A result per partition, per topic, in request order.
pub type PartitionResults = Vec<Vec<Result<(), BrokerError>>>;

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub id: String,
    /// group.instance.id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata and assignment, when the group is stable.
    pub stable: Option<(Bytes, Bytes)>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol when stable, else empty.
    pub protocol: String,
    /// Members in join order.
    pub members: Vec<MemberDescription>,
}

/// What one shard's groups may hold: members are state a client creates
/// and keeps alive, so they are capped like any other memory.
pub struct GroupLimits {
    /// Most members and pending member ids per group (Kafka's
    /// group.max.size); a new member past it gets GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// Memory for members, pending member ids and assignments; a join or
    /// an assignment that does not fit gets COORDINATOR_NOT_AVAILABLE,
    /// which clients retry.
    pub memory: Rc<MemoryBudget>,
}

impl GroupLimits {
    /// One shard's limits: `--group-max-size`, and an eighth of the shard's
    /// share of the memory budget.
    pub fn of(args: &crate::config::ServeArgs, shards: usize) -> GroupLimits {
        GroupLimits {
            max_size: args.group_max_size,
            memory: MemoryBudget::new(args.memory_budget_bytes(shards) / shards.max(1) / 8),
        }
    }
}

/// The group coordinator of one shard.
pub struct GroupService {
    coordinator: RefCell<Coordinator>,
    log: Rc<Log>,
    limits: GroupLimits,
}

impl crate::log::cleaner::WalUser for GroupService {
    fn frames(&self) -> std::cell::RefMut<'_, dyn crate::frames::FrameOwner> {
        std::cell::RefMut::map(self.coordinator.borrow_mut(), |c| {
            c as &mut dyn crate::frames::FrameOwner
        })
    }
}

/// Why a join or an assignment was refused for memory.
const GROUP_MEMORY_FULL: &str = "the coordinator's memory for group members is full";

impl GroupService {
    /// The coordinator rebuilt by recovery, writing through `log`.
    pub fn new(coordinator: Coordinator, log: Rc<Log>, limits: GroupLimits) -> GroupService {
        GroupService {
            coordinator: RefCell::new(coordinator),
            log,
            limits,
        }
    }

    /// Logs what recovery rebuilt and starts the group timers.
    pub fn start(self: &Rc<Self>, shard: usize, lifecycle: Rc<Lifecycle>) {
        {
            let coordinator = self.coordinator.borrow();
            let counts = coordinator.replayed;
            let offsets: usize = coordinator.groups.values().map(|g| g.offsets.len()).sum();
            tracing::info!(
                shard,
                groups = coordinator.groups.len(),
                offsets,
                records = counts.records,
                dropped_deleted_topic = counts.dropped_deleted_topic,
                skipped_invalid = counts.invalid,
                "groups recovered"
            );
        }
        glommio::spawn_local(self.clone().run_timers(lifecycle)).detach();
    }

    async fn run_timers(self: Rc<Self>, lifecycle: Rc<Lifecycle>) {
        let stop = lifecycle.shutdown.generation();
        loop {
            if lifecycle.sleep_or_shutdown(TICK, stop).await {
                // Waiting joins and syncs are told to find the coordinator
                // again, so draining does not wait for rebalance timeouts.
                for g in self.coordinator.borrow_mut().groups.values_mut() {
                    g.fail_waiters(BrokerError::NotCoordinator);
                }
                return;
            }
            let records = self.coordinator.borrow_mut().tick(Instant::now());
            self.submit_all(records);
        }
    }

    /// Hands a record to the WAL and applies it to memory in one step, so
    /// memory follows WAL order; await the result before answering anything
    /// that depends on it.
    fn submit(
        &self,
        coordinator: &mut Coordinator,
        record: &GroupRecord,
    ) -> Result<sluice_wal_core::Durable, BrokerError> {
        let (position, durable) = self.log.submit_frame(GROUP_RECORD, &[&record.encode()])?;
        coordinator.apply(record, position);
        Ok(durable)
    }

    /// Writes records whose durability nobody waits for (generations,
    /// clean-up tombstones): a lost one only means a lower generation id or a
    /// group that is removed again after a restart.
    fn submit_all(&self, records: Vec<GroupRecord>) {
        for r in records {
            match self.log.submit_frame(GROUP_RECORD, &[&r.encode()]) {
                Ok((position, _)) => self.coordinator.borrow_mut().note_written(&r, position),
                Err(e) => {
                    tracing::error!(group = r.group(), error = %e, "group record not written")
                }
            }
        }
    }

    /// Expels the members of `group` (every group: None) whose session ran
    /// out, before anything about the group is answered: the timer ticks
    /// only every 100 ms, and a request arriving a few milliseconds after a
    /// deadline must not meet a member Kafka would already have expelled.
    fn expire_due(&self, group: Option<&str>) {
        let now = Instant::now();
        {
            let mut coordinator = self.coordinator.borrow_mut();
            match group {
                Some(id) => coordinator
                    .groups
                    .get_mut(id)
                    .into_iter()
                    .for_each(|g| g.tick(now)),
                None => coordinator.groups.values_mut().for_each(|g| g.tick(now)),
            }
        }
        self.flush_outbox();
    }

    /// Writes the records the groups produced (new generations).
    fn flush_outbox(&self) {
        let records = self.coordinator.borrow_mut().take_outbox();
        self.submit_all(records);
    }

    /// Drops the offsets of topics that were deleted (a new metadata snapshot).
    pub fn retain_topics(&self, metadata: &Metadata) {
        self.coordinator.borrow_mut().retain_topics(metadata);
    }

    /// JoinGroup: waits until the join phase completes.
    pub async fn join(&self, group: &str, join: JoinRequest) -> JoinResult {
        self.expire_due(Some(group));
        let Some(held) = self.limits.memory.try_reserve(join.footprint()) else {
            let full = BrokerError::CoordinatorNotAvailable(GROUP_MEMORY_FULL.into());
            return JoinResult::error(&join.member_id, full);
        };
        let answer = {
            let mut coordinator = self.coordinator.borrow_mut();
            let g = coordinator.get_or_create(group);
            g.max_size = self.limits.max_size;
            g.join(join, Some(held), Instant::now())
        };
        self.flush_outbox();
        match answer {
            Answer::Now(r) => r,
            Answer::Wait(rx) => rx.recv_async().await.unwrap_or_else(|_| JoinResult {
                error: Some(BrokerError::NotCoordinator),
                generation: -1,
                ..JoinResult::default()
            }),
        }
    }

    /// SyncGroup: the leader's assignment is handed to every member.
    pub async fn sync(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        self.expire_due(Some(group));
        let bytes: usize = assignments
            .iter()
            .map(|(m, a)| m.len() + a.len() + 32)
            .sum();
        let Some(held) = self.limits.memory.try_reserve(bytes) else {
            let full = BrokerError::CoordinatorNotAvailable(GROUP_MEMORY_FULL.into());
            return SyncResult::error(full);
        };
        let answer = match self.coordinator.borrow_mut().groups.get_mut(group) {
            None => Answer::Now(SyncResult {
                error: Some(BrokerError::UnknownMemberId),
                ..SyncResult::default()
            }),
            Some(g) => g.sync(
                member_id,
                instance_id,
                generation,
                protocol,
                assignments,
                Some(held),
                Instant::now(),
            ),
        };
        match answer {
            Answer::Now(r) => r,
            Answer::Wait(rx) => rx.recv_async().await.unwrap_or_else(|_| SyncResult {
                error: Some(BrokerError::NotCoordinator),
                ..SyncResult::default()
            }),
        }
    }

    /// Heartbeat: keeps the session alive and says when to rejoin.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), BrokerError> {
        self.expire_due(Some(group));
        match self.coordinator.borrow_mut().groups.get_mut(group) {
            None => Err(BrokerError::UnknownMemberId),
            Some(g) => g.heartbeat(member_id, instance_id, generation, Instant::now()),
        }
    }

    /// LeaveGroup: a result per leaving member.
    pub fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), BrokerError>> {
        self.expire_due(Some(group));
        let results = match self.coordinator.borrow_mut().groups.get_mut(group) {
            None => vec![Err(BrokerError::UnknownMemberId); members.len()],
            Some(g) => {
                let now = Instant::now();
                members
                    .iter()
                    .map(|(id, instance)| g.leave(id, instance.as_deref(), now))
                    .collect()
            }
        };
        self.flush_outbox();
        results
    }

    /// OffsetCommit: checks membership and generation, writes one WAL
    /// record for the request's offsets and answers once it is durable.
    /// With a producer id (TxnOffsetCommit) the offsets are held for that
    /// producer's transaction until [`GroupService::end_txn`].
    pub async fn commit_offsets(
        &self,
        metadata: &Metadata,
        group: String,
        commit: OffsetCommit,
        transaction: Option<i64>,
    ) -> PartitionResults {
        self.expire_due(Some(&group));
        let check = match self.coordinator.borrow_mut().groups.get_mut(&group) {
            None if commit.generation < 0 => Ok(()),
            None => Err(BrokerError::IllegalGeneration),
            Some(g) => g.check_commit(
                &commit.member_id,
                commit.instance_id.as_deref(),
                commit.generation,
                Instant::now(),
            ),
        };
        if let Err(e) = check {
            return commit
                .topics
                .iter()
                .map(|(_, ps)| vec![Err(e.clone()); ps.len()])
                .collect();
        }
        let timestamp = crate::util::now_ms();
        let mut offsets = Vec::new();
        let mut results: PartitionResults = Vec::with_capacity(commit.topics.len());
        for (name, partitions) in commit.topics {
            let topic = metadata.topics.get(&name);
            let mut topic_results = Vec::with_capacity(partitions.len());
            for p in partitions {
                let result = match topic.filter(|t| t.owner(p.partition).is_some()) {
                    None => Err(BrokerError::UnknownTopicOrPartition(
                        "unknown partition".into(),
                    )),
                    Some(_)
                        if p.metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > MAX_OFFSET_METADATA) =>
                    {
                        Err(BrokerError::OffsetMetadataTooLarge)
                    }
                    Some(topic) => {
                        offsets.push(OffsetRecord {
                            topic: topic.name.clone(),
                            topic_id: topic.id,
                            partition: p.partition,
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata: p.metadata,
                            commit_timestamp: timestamp,
                        });
                        Ok(())
                    }
                };
                topic_results.push(result);
            }
            results.push(topic_results);
        }
        if offsets.is_empty() {
            return results;
        }
        let record = match transaction {
            None => GroupRecord::Commit { group, offsets },
            Some(producer_id) => GroupRecord::TxnCommit {
                group,
                producer_id,
                offsets,
            },
        };
        let durable = self.submit(&mut self.coordinator.borrow_mut(), &record);
        if let Err(e) = wait(durable).await {
            for r in results.iter_mut().flatten() {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
        results
    }

    /// The transaction of `producer_id` ended: the offsets it committed
    /// to `group` become the group's (`committed`) or are dropped, by a
    /// durable record.
    pub async fn end_txn(
        &self,
        group: &str,
        producer_id: i64,
        committed: bool,
    ) -> Result<(), BrokerError> {
        let held = self
            .coordinator
            .borrow()
            .groups
            .get(group)
            .is_some_and(|g| g.txn_offsets.contains_key(&producer_id));
        if !held {
            return Ok(());
        }
        let record = GroupRecord::TxnEnd {
            group: group.to_string(),
            producer_id,
            committed,
        };
        // The borrow ends before the wait: other tasks use the groups
        // while the record becomes durable.
        let durable = self.submit(&mut self.coordinator.borrow_mut(), &record);
        wait(durable).await
    }

    /// Partitions of `group` with transactional offsets not yet committed
    /// or aborted (OffsetFetch's `require_stable`).
    pub fn unstable(&self, group: &str) -> std::collections::HashSet<(String, i32)> {
        let coordinator = self.coordinator.borrow();
        coordinator
            .groups
            .get(group)
            .into_iter()
            .flat_map(|g| g.txn_offsets.values().flat_map(|h| h.keys().cloned()))
            .collect()
    }

    /// The committed offsets of `group` for `topics` (`None`: all). An
    /// unknown group or partition gets offset -1, not an error.
    pub fn fetch_offsets(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> GroupOffsets {
        let coordinator = self.coordinator.borrow();
        let g = coordinator.groups.get(group);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(
                            |p| match g.and_then(|g| g.offsets.get(&(topic.clone(), p))) {
                                Some(c) => (p, c.offset, c.leader_epoch, c.metadata.clone()),
                                None => (p, -1, -1, Some(String::new())),
                            },
                        )
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
                for ((topic, p), c) in g.iter().flat_map(|g| g.offsets.iter()) {
                    by_topic.entry(topic.clone()).or_default().push((
                        *p,
                        c.offset,
                        c.leader_epoch,
                        c.metadata.clone(),
                    ));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// ListGroups: id, protocol type and state of every group here.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.expire_due(None);
        self.coordinator
            .borrow()
            .groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect()
    }

    /// Every group here for a metrics scrape: state, members, committed
    /// offsets.
    pub fn reports(&self) -> Vec<crate::metrics::GroupReport> {
        self.coordinator
            .borrow()
            .groups
            .values()
            .map(|g| crate::metrics::GroupReport {
                group: g.id.clone(),
                state: g.state.name(),
                members: g.members.len(),
                generation: g.generation,
                rebalances: g.rebalances,
                offsets: g
                    .offsets
                    .iter()
                    .map(|((topic, partition), c)| (topic.clone(), *partition, c.offset))
                    .collect(),
            })
            .collect()
    }

    /// DescribeGroups: state, protocol, members and (when stable) assignments.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        self.expire_due(Some(group));
        let coordinator = self.coordinator.borrow();
        let g = coordinator.groups.get(group)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut members: Vec<_> = g.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        let members = members
            .into_iter()
            .map(|m| MemberDescription {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                stable: stable.then(|| (m.metadata(&protocol), m.assignment.clone())),
            })
            .collect();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        })
    }

    /// DeleteGroups: empty groups only; a durable tombstone each.
    pub async fn delete_group(&self, group: String) -> Result<(), BrokerError> {
        self.expire_due(Some(&group));
        let durable = {
            let mut coordinator = self.coordinator.borrow_mut();
            match coordinator.groups.get(&group) {
                None => return Err(BrokerError::GroupIdNotFound),
                Some(g) if g.state != GroupState::Empty => return Err(BrokerError::NonEmptyGroup),
                Some(_) => {}
            }
            self.submit(&mut coordinator, &GroupRecord::DeleteGroup { group })
        };
        wait(durable).await
    }

    /// OffsetDelete: removes offsets of partitions the group does not
    /// consume; a result per partition asked.
    pub async fn delete_offsets(
        &self,
        metadata: &Metadata,
        group: String,
        asked: &[(String, Vec<i32>)],
    ) -> Result<PartitionResults, BrokerError> {
        self.expire_due(Some(&group));
        let (mut results, durable) = {
            let mut coordinator = self.coordinator.borrow_mut();
            let Some(g) = coordinator.groups.get(&group) else {
                return Err(BrokerError::GroupIdNotFound);
            };
            let Some(subscribed) = g.subscribed_topics() else {
                return Err(BrokerError::NonEmptyGroup);
            };
            let mut removed = Vec::new();
            let results: PartitionResults = asked
                .iter()
                .map(|(name, partitions)| {
                    partitions
                        .iter()
                        .map(|p| {
                            if subscribed.contains(name) {
                                Err(BrokerError::GroupSubscribedToTopic)
                            } else if metadata
                                .topics
                                .get(name)
                                .and_then(|t| t.owner(*p))
                                .is_none()
                            {
                                Err(BrokerError::UnknownTopicOrPartition(
                                    "unknown partition".into(),
                                ))
                            } else {
                                removed.push((name.clone(), *p));
                                Ok(())
                            }
                        })
                        .collect()
                })
                .collect();
            if removed.is_empty() {
                return Ok(results);
            }
            let record = GroupRecord::DeleteOffsets {
                group,
                partitions: removed,
            };
            (results, self.submit(&mut coordinator, &record))
        };
        if let Err(e) = wait(durable).await {
            for r in results.iter_mut().flatten() {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
        Ok(results)
    }
}

/// Waits for a submitted record to be durable; a failure is logged.
async fn wait(durable: Result<sluice_wal_core::Durable, BrokerError>) -> Result<(), BrokerError> {
    let result = match durable {
        Ok(durable) => durable.await.map_err(BrokerError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "group record write failed");
    }
    result
}
