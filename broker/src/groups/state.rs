//! One consumer group's state machine (Kafka's classic protocol): members,
//! generations, protocol selection, static membership and the
//! Empty → PreparingRebalance → CompletingRebalance → Stable cycle.
//!
//! Everything here is synchronous and runs on the coordinator shard; the
//! waits (a JoinGroup until the rebalance completes, a SyncGroup until the
//! leader's assignment) are one-shot channels whose receivers the handlers
//! await. Every waiter is answered explicitly, with a result or an error.
//! Records that must reach the WAL (new generations) go to `outbox`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::records::GroupRecord;
use crate::error::BrokerError;
use crate::memory::Reservation;
use bytes::Bytes;

/// How long a group that was empty waits for more members before the first
/// rebalance completes (Kafka's group.initial.rebalance.delay.ms, shorter).
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(500);

/// Why a dead group's coordinator answers nothing.
const DEAD: &str = "the group is being removed";

/// The classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may exist).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka uses (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    /// Why the request failed, if it did.
    pub error: Option<BrokerError>,
    /// Generation id (-1 on error).
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol (assignor).
    pub protocol_name: Option<String>,
    /// Member id of the leader.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader only: every member with its metadata of the selected protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub(crate) fn error(member_id: &str, error: BrokerError) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

/// What a SyncGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    /// Why the request failed, if it did.
    pub error: Option<BrokerError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment (opaque to the broker).
    pub assignment: Bytes,
}

impl SyncResult {
    pub(crate) fn error(error: BrokerError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..SyncResult::default()
        }
    }
}

/// An answer now, or a wait for it.
pub enum Answer<T> {
    /// Answered at once.
    Now(T),
    /// Answered when the group gets there.
    Wait(flume::Receiver<T>),
}

/// A JoinGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id ("" for a new member).
    pub member_id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client host, shown by DescribeGroups.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Protocols (assignors) in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

impl JoinRequest {
    /// Bytes the group keeps for this member: what the coordinator must
    /// hold before letting it in.
    pub fn footprint(&self) -> usize {
        const MEMBER_OVERHEAD: usize = 256;
        let protocols: usize = self
            .protocols
            .iter()
            .map(|(n, m)| n.len() + m.len() + 32)
            .sum();
        MEMBER_OVERHEAD
            // The id is kept twice (map key and member); a new one is the
            // client id and a UUID.
            + 2 * self.member_id.len().max(self.client_id.len() + 37)
            + self.instance_id.as_ref().map_or(0, |i| 2 * i.len())
            + self.client_id.len()
            + self.client_host.len()
            + self.protocol_type.len()
            + protocols
    }
}

/// A member id handed out with MEMBER_ID_REQUIRED, not yet used.
#[derive(Debug)]
pub struct Pending {
    /// When it is forgotten.
    pub deadline: Instant,
    _held: Option<Reservation>,
}

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// group.instance.id (static membership).
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Expelled when no heartbeat arrives for this long.
    pub session_timeout: Duration,
    /// How long a rebalance waits for this member to rejoin.
    pub rebalance_timeout: Duration,
    /// Protocols in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment of the current generation.
    pub assignment: Bytes,
    /// Last sign of life (heartbeat, join, sync, commit).
    pub last_heartbeat: Instant,
    /// Order of joining: the leader is the earliest joined member.
    pub joined_seq: u64,
    join_waiter: Option<flume::Sender<JoinResult>>,
    sync_waiter: Option<flume::Sender<SyncResult>>,
    held: Option<Reservation>,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it has none).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn answer_join(&mut self, result: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(result);
        }
    }

    fn answer_sync(&mut self, result: SyncResult) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(result);
        }
    }

    /// Whether the member is waiting for a JoinGroup answer.
    pub fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }
}

/// A committed offset in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Topic id when committed.
    pub topic_id: [u8; 16],
    /// Offset.
    pub offset: i64,
    /// Leader epoch (-1: none).
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
    /// Commit time, ms since the epoch.
    pub commit_timestamp: i64,
    /// WAL position of the record that holds it.
    pub position: u64,
}

/// One group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// Generation id (0 until the first rebalance completes).
    pub generation: i32,
    /// Protocol type of the members ("consumer"); kept while empty.
    pub protocol_type: Option<String>,
    /// Protocol selected for the current generation.
    pub protocol_name: Option<String>,
    /// Member id of the leader.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time by
    /// which they must join.
    pub pending: HashMap<String, Pending>,
    /// Committed offsets by topic name and partition.
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Offsets of open transactions, by producer id: committed when the
    /// transaction commits, dropped when it aborts.
    pub txn_offsets: BTreeMap<i64, BTreeMap<(String, i32), Committed>>,
    /// When the group last became empty (ms since the epoch; offset retention).
    pub empty_since: i64,
    /// Records to write to the WAL (drained by the coordinator).
    pub outbox: Vec<GroupRecord>,
    /// WAL position of the record of the last generation, once written.
    pub generation_position: Option<u64>,
    /// Rebalances completed since the process started (metrics).
    pub rebalances: u64,
    /// Most members (with pending member ids) a join may bring the group to.
    pub max_size: usize,
    /// The coordinator's memory for the current generation's assignments.
    assignments_held: Option<Reservation>,
    rebalance_deadline: Option<Instant>,
    join_not_before: Option<Instant>,
    next_join_seq: u64,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            offsets: BTreeMap::new(),
            txn_offsets: BTreeMap::new(),
            empty_since: now_ms,
            outbox: Vec::new(),
            generation_position: None,
            rebalances: 0,
            max_size: usize::MAX,
            assignments_held: None,
            rebalance_deadline: None,
            join_not_before: None,
            next_join_seq: 0,
        }
    }

    /// Protocols every member supports, in the first member's order.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|p| p.0.clone()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    /// Whether a member with these protocols may join.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// The protocol most members prefer among those all support.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, c)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|v| v.1 == name) {
                    v.0 += 1;
                }
            }
        }
        // Ties go to the earlier candidate (the first member's preference).
        let mut best: Option<(usize, &String)> = None;
        for v in votes {
            if best.is_none_or(|b| v.0 > b.0) {
                best = Some(v);
            }
        }
        best.map(|b| b.1.clone())
    }

    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(Member::awaiting_join)
    }

    /// Handles a JoinGroup; `held` is the coordinator's memory for the
    /// member (or its pending id), kept as long as the group keeps it.
    pub fn join(
        &mut self,
        req: JoinRequest,
        held: Option<Reservation>,
        now: Instant,
    ) -> Answer<JoinResult> {
        let fail = |e: BrokerError| Answer::Now(JoinResult::error(&req.member_id, e));
        if self.state == GroupState::Dead {
            return fail(BrokerError::CoordinatorNotAvailable(DEAD.into()));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return fail(BrokerError::InconsistentGroupProtocol);
        }
        let returning_static = req
            .instance_id
            .as_ref()
            .is_some_and(|i| self.static_members.contains_key(i));
        if req.member_id.is_empty()
            && !returning_static
            && self.members.len() + self.pending.len() >= self.max_size
        {
            return fail(BrokerError::GroupMaxSizeReached);
        }
        if req.member_id.is_empty() {
            // Kafka's form, client id then a UUID, with the client id cut
            // so the member id still fits a 15-bit string length.
            let mut cut = req.client_id.len().min(MAX_CLIENT_ID_IN_MEMBER_ID);
            while !req.client_id.is_char_boundary(cut) {
                cut -= 1;
            }
            let new_id = format!(
                "{}-{}",
                &req.client_id[..cut],
                uuid::Uuid::from_bytes(crate::metadata::new_topic_id())
            );
            if let Some(instance) = &req.instance_id {
                if let Some(old_id) = self.static_members.get(instance).cloned() {
                    return self.replace_static_member(&old_id, new_id, req, held, now);
                }
                return self.add_member(new_id, req, held, now);
            }
            if req.require_known_member_id {
                let pending = Pending {
                    deadline: now + req.session_timeout,
                    _held: held,
                };
                self.pending.insert(new_id.clone(), pending);
                return Answer::Now(JoinResult::error(&new_id, BrokerError::MemberIdRequired));
            }
            return self.add_member(new_id, req, held, now);
        }
        if self.is_fenced(req.instance_id.as_deref(), &req.member_id) {
            return fail(BrokerError::FencedInstanceId);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, held, now);
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return fail(BrokerError::UnknownMemberId);
        };
        let same_protocols = member.protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                let rx = self.update_member(&req, held, now);
                self.maybe_complete_join(now);
                Answer::Wait(rx)
            }
            GroupState::CompletingRebalance if same_protocols => {
                Answer::Now(self.join_result(&req.member_id))
            }
            GroupState::Stable if same_protocols && !is_leader => {
                Answer::Now(self.join_result(&req.member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let rx = self.update_member(&req, held, now);
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
                Answer::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => fail(BrokerError::UnknownMemberId),
        }
    }

    /// The join answer for a member of the current generation.
    fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if leader == member_id {
            let mut ms: Vec<&Member> = self.members.values().collect();
            ms.sort_by_key(|m| m.joined_seq);
            ms.iter()
                .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        held: Option<Reservation>,
        now: Instant,
    ) -> Answer<JoinResult> {
        let (tx, rx) = flume::bounded(1);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.next_join_seq += 1;
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                joined_seq: self.next_join_seq,
                join_waiter: Some(tx),
                sync_waiter: None,
                held,
            },
        );
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
        Answer::Wait(rx)
    }

    fn update_member(
        &mut self,
        req: &JoinRequest,
        held: Option<Reservation>,
        now: Instant,
    ) -> flume::Receiver<JoinResult> {
        let (tx, rx) = flume::bounded(1);
        if let Some(m) = self.members.get_mut(&req.member_id) {
            // A retried join supersedes the earlier one, which is told to rejoin.
            m.answer_join(JoinResult::error(
                &req.member_id,
                BrokerError::RebalanceInProgress,
            ));
            m.protocols = req.protocols.clone();
            m.session_timeout = req.session_timeout;
            m.rebalance_timeout = req.rebalance_timeout;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.last_heartbeat = now;
            m.join_waiter = Some(tx);
            m.held = held;
        }
        rx
    }

    /// A static member came back with a new member id: it takes over the old
    /// member's place and assignment; the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        held: Option<Reservation>,
        now: Instant,
    ) -> Answer<JoinResult> {
        let Some(mut old) = self.members.remove(old_id) else {
            return self.add_member(new_id, req, held, now);
        };
        old.answer_join(JoinResult::error(old_id, BrokerError::FencedInstanceId));
        old.answer_sync(SyncResult::error(BrokerError::FencedInstanceId));
        let old_leader = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let (tx, rx) = flume::bounded(1);
        let member = Member {
            id: new_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: old.assignment,
            last_heartbeat: now,
            joined_seq: old.joined_seq,
            join_waiter: None,
            sync_waiter: None,
            held,
        };
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                // No rebalance: the member gets its old assignment from
                // SyncGroup. The old leader id is returned so that a
                // returning leader does not run a pointless assignment.
                Answer::Now(JoinResult {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: old_leader,
                    member_id: new_id,
                    members: Vec::new(),
                })
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now);
                }
                self.maybe_complete_join(now);
                Answer::Wait(rx)
            }
        }
    }

    /// Starts a rebalance: every member must rejoin.
    pub fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(BrokerError::RebalanceInProgress));
            }
        }
        self.join_not_before = if self.state == GroupState::Empty {
            Some(now + INITIAL_REBALANCE_DELAY.min(self.max_rebalance_timeout()))
        } else {
            None
        };
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
    }

    /// Completes the join phase once every member has rejoined (after the
    /// initial delay of a new group), or when the rebalance timeout passes.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.join_not_before.is_some_and(|t| now < t) {
            return;
        }
        let timed_out = self.rebalance_deadline.is_none_or(|d| now >= d);
        if self.all_joined() || timed_out {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        // Dynamic members that did not rejoin are dropped; static ones stay
        // until their session expires.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        if !self.members.is_empty() && !self.members.values().any(Member::awaiting_join) {
            // Only static members that have not rejoined: wait for them or
            // for their sessions to expire.
            let wait = self
                .members
                .values()
                .map(|m| m.session_timeout)
                .max()
                .unwrap_or_default();
            self.rebalance_deadline = Some(now + wait);
            return;
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalances += 1;
        self.join_not_before = None;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.empty_since = crate::util::now_ms();
        } else {
            self.protocol_name = self.select_protocol();
            let leader_joined = self
                .leader
                .as_ref()
                .and_then(|l| self.members.get(l))
                .is_some_and(Member::awaiting_join);
            if !leader_joined {
                self.leader = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join())
                    .min_by_key(|m| m.joined_seq)
                    .map(|m| m.id.clone());
            }
            self.state = GroupState::CompletingRebalance;
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                let result = self.join_result(&id);
                if let Some(m) = self.members.get_mut(&id) {
                    m.last_heartbeat = now;
                    m.answer_join(result);
                }
            }
        }
        tracing::info!(
            group = self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            state = self.state.name(),
            "rebalance: join phase completed"
        );
        self.outbox.push(GroupRecord::Generation {
            group: self.id.clone(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
        });
    }

    /// Removes a member without starting a rebalance.
    fn drop_member(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        m.answer_join(JoinResult::error(id, BrokerError::UnknownMemberId));
        m.answer_sync(SyncResult::error(BrokerError::UnknownMemberId));
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).is_some_and(|x| x == id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
    }

    /// Removes a member (left or expired) and rebalances the rest.
    pub fn remove_member(&mut self, id: &str, now: Instant) {
        self.drop_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
        self.maybe_complete_join(now);
    }

    /// Handles a SyncGroup; `held` is the coordinator's memory for the
    /// leader's `assignments`, kept until the next generation's.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        held: Option<Reservation>,
        now: Instant,
    ) -> Answer<SyncResult> {
        let fail = |e: BrokerError| Answer::Now(SyncResult::error(e));
        if self.state == GroupState::Dead {
            return fail(BrokerError::CoordinatorNotAvailable(DEAD.into()));
        }
        if self.is_fenced(instance_id, member_id) {
            return fail(BrokerError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return fail(BrokerError::UnknownMemberId);
        }
        if generation != self.generation {
            return fail(BrokerError::IllegalGeneration);
        }
        let (ptype, pname) = protocol;
        if ptype.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || pname.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return fail(BrokerError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(BrokerError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(BrokerError::RebalanceInProgress),
            GroupState::Stable => {
                let m = &mut self.members.get_mut(member_id).expect("checked above");
                m.last_heartbeat = now;
                Answer::Now(SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = flume::bounded(1);
                {
                    let m = self.members.get_mut(member_id).expect("checked above");
                    m.last_heartbeat = now;
                    m.answer_sync(SyncResult::error(BrokerError::RebalanceInProgress));
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    self.state = GroupState::Stable;
                    self.assignments_held = held;
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                        let result = SyncResult {
                            error: None,
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol_name.clone(),
                            assignment: m.assignment.clone(),
                        };
                        m.answer_sync(result);
                    }
                    tracing::info!(
                        group = self.id,
                        generation = self.generation,
                        members = self.members.len(),
                        "rebalance: assignment received, group stable"
                    );
                }
                Answer::Wait(rx)
            }
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable(DEAD.into()));
        }
        if self.is_fenced(instance_id, member_id) {
            return Err(BrokerError::FencedInstanceId);
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(BrokerError::UnknownMemberId);
        };
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration);
        }
        m.last_heartbeat = now;
        match self.state {
            GroupState::PreparingRebalance => Err(BrokerError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(BrokerError::UnknownMemberId),
            _ => Ok(()),
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable(DEAD.into()));
        }
        let id = match instance_id {
            Some(instance) if member_id.is_empty() => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return Err(BrokerError::UnknownMemberId),
            },
            _ => member_id.to_string(),
        };
        if self.is_fenced(instance_id, &id) {
            return Err(BrokerError::FencedInstanceId);
        }
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now);
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(BrokerError::UnknownMemberId);
        }
        tracing::info!(group = self.id, member = id, "member left the group");
        self.remove_member(&id, now);
        Ok(())
    }

    /// Checks whether an OffsetCommit may be applied.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable(DEAD.into()));
        }
        if self.is_fenced(instance_id, member_id) {
            return Err(BrokerError::FencedInstanceId);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // A standalone consumer (assign + commit, no membership).
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(BrokerError::RebalanceInProgress);
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(BrokerError::UnknownMemberId);
        };
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration);
        }
        m.last_heartbeat = now;
        Ok(())
    }

    /// Expels members whose session expired and forgets member ids that were
    /// never used; completes a pending join phase when it is due.
    pub fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, p| p.deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_heartbeat) >= m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(
                group = self.id,
                member = id,
                "member expelled: session timeout expired"
            );
            self.remove_member(&id, now);
        }
        self.maybe_complete_join(now);
    }

    /// Answers every waiting request with `error` (shutdown).
    pub fn fail_waiters(&mut self, error: BrokerError) {
        for m in self.members.values_mut() {
            let id = m.id.clone();
            m.answer_join(JoinResult::error(&id, error.clone()));
            m.answer_sync(SyncResult::error(error.clone()));
        }
    }

    /// Topics the members subscribed to, when the protocol is "consumer";
    /// `None` when unknown (another protocol type).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use sluice_protocol::kafka_protocol::messages::ConsumerProtocolSubscription;
        use sluice_protocol::kafka_protocol::protocol::Decodable;
        if self.members.is_empty() {
            return Some(Vec::new());
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata(&protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]).clamp(0, 3);
            let _ = bytes::Buf::get_i16(&mut meta);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

/// Bytes of the client id a new member id starts with (Kafka uses it
/// whole; a 32 KB client id would make an id no old-version answer holds).
const MAX_CLIENT_ID_IN_MEMBER_ID: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(Into::into),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_of(r: Answer<JoinResult>) -> JoinResult {
        match r {
            Answer::Now(r) => r,
            Answer::Wait(rx) => rx.try_recv().expect("answered"),
        }
    }

    /// Joins a new dynamic member through the MEMBER_ID_REQUIRED round trip.
    fn join_new(g: &mut Group, now: Instant) -> (String, Answer<JoinResult>) {
        let first = now_of(g.join(req("", None), None, now));
        assert_eq!(first.error, Some(BrokerError::MemberIdRequired));
        let id = first.member_id;
        let r = g.join(req(&id, None), None, now);
        (id, r)
    }

    #[test]
    fn a_full_group_refuses_new_members_and_gives_their_memory_back() {
        let budget = crate::memory::MemoryBudget::new(1_000);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        g.max_size = 2;
        let join =
            |g: &mut Group, id: &str| now_of(g.join(req(id, None), budget.try_reserve(100), t0));
        let a = join(&mut g, "").member_id;
        let b = join(&mut g, "");
        assert_eq!(b.error, Some(BrokerError::MemberIdRequired));
        // Pending member ids count: a third new member is refused, and
        // what was held for it is given back at once.
        assert_eq!(
            join(&mut g, "").error,
            Some(BrokerError::GroupMaxSizeReached)
        );
        assert_eq!(budget.used(), 200);
        // A known id still joins, holding its new bytes instead of the old.
        let _ = g.join(req(&a, None), budget.try_reserve(100), t0);
        assert_eq!((g.members.len(), budget.used()), (1, 200));
        // Forgotten pending ids and expelled members give memory back
        // (the first tick completes the join phase).
        g.tick(t0 + Duration::from_secs(12));
        g.tick(t0 + Duration::from_secs(40));
        assert!(g.members.is_empty() && g.pending.is_empty());
        assert_eq!(budget.used(), 0);
        assert_eq!(join(&mut g, "").error, Some(BrokerError::MemberIdRequired));
    }

    #[test]
    fn two_members_join_sync_and_one_leaves() {
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, ra) = join_new(&mut g, t0);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let (b, rb) = join_new(&mut g, t0);
        // The initial delay holds the first generation back.
        let Answer::Wait(ra) = ra else { panic!() };
        assert!(ra.try_recv().is_err());
        g.tick(t0 + INITIAL_REBALANCE_DELAY);
        let ja = ra.try_recv().unwrap();
        let jb = now_of(rb);
        assert_eq!((ja.error, jb.error), (None, None));
        assert_eq!(ja.generation, 1);
        assert_eq!(ja.leader, a);
        assert_eq!(ja.members.len(), 2, "the leader sees every member");
        assert!(jb.members.is_empty());
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
        assert_eq!(g.state, GroupState::CompletingRebalance);

        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        let Answer::Wait(sb) = g.sync(&b, None, 1, (None, None), vec![], None, t1) else {
            panic!()
        };
        assert!(sb.try_recv().is_err(), "followers wait for the leader");
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        let Answer::Wait(sa) = g.sync(&a, None, 1, (None, None), assignments, None, t1) else {
            panic!()
        };
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
        assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&b, None, 1, t1), Ok(()));
        assert_eq!(
            g.heartbeat(&b, None, 0, t1),
            Err(BrokerError::IllegalGeneration)
        );
        assert_eq!(g.check_commit(&a, None, 1, t1), Ok(()));
        assert_eq!(
            g.check_commit(&a, None, 0, t1),
            Err(BrokerError::IllegalGeneration)
        );
        assert_eq!(
            g.check_commit("", None, -1, t1),
            Err(BrokerError::UnknownMemberId),
            "no standalone commits into a live group"
        );

        assert_eq!(g.leave(&b, None, t1), Ok(()));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&a, None, 1, t1),
            Err(BrokerError::RebalanceInProgress)
        );
        let ja = now_of(g.join(req(&a, None), None, t1));
        assert_eq!((ja.error, ja.generation, ja.members.len()), (None, 2, 1));
    }

    #[test]
    fn expired_member_is_expelled_and_empty_group_accepts_standalone_commits() {
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _) = join_new(&mut g, t0);
        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        g.tick(t1);
        let _ = g.sync(&a, None, 1, (None, None), vec![], None, t1);
        assert_eq!(g.state, GroupState::Stable);
        g.tick(t1 + Duration::from_secs(9));
        assert_eq!(g.members.len(), 1);
        g.tick(t1 + Duration::from_secs(11));
        assert!(g.members.is_empty());
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, 2);
        assert_eq!(g.check_commit("", None, -1, t1), Ok(()));
        assert_eq!(
            g.check_commit(&a, None, 1, t1),
            Err(BrokerError::UnknownMemberId)
        );
    }

    #[test]
    fn static_member_rejoins_stable_group_without_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let _first = g.join(req("", Some("i1")), None, t0);
        let (b, _) = join_new(&mut g, t0);
        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        g.tick(t1);
        let a = g.static_members["i1"].clone();
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        let _ = g.sync(&b, None, 1, (None, None), vec![], None, t1);
        let _ = g.sync(&a, Some("i1"), 1, (None, None), assignments, None, t1);
        assert_eq!(g.state, GroupState::Stable);

        let back = now_of(g.join(req("", Some("i1")), None, t1));
        assert_eq!(back.error, None);
        assert_eq!(back.generation, 1, "no new generation");
        assert_ne!(back.member_id, a);
        assert_eq!(back.leader, a, "the old leader id: no assignment to run");
        assert_eq!(g.state, GroupState::Stable);
        let Answer::Now(s) = g.sync(
            &back.member_id,
            Some("i1"),
            1,
            (None, None),
            vec![],
            None,
            t1,
        ) else {
            panic!()
        };
        assert_eq!(s.assignment, Bytes::from_static(b"A"));
        assert_eq!(
            g.heartbeat(&a, Some("i1"), 1, t1),
            Err(BrokerError::FencedInstanceId)
        );
        assert_eq!(g.heartbeat(&b, None, 1, t1), Ok(()));
    }

    #[test]
    fn the_protocol_most_members_prefer_among_common_ones_is_selected() {
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let with = |names: &[&str]| {
            let mut r = req("", None);
            r.require_known_member_id = false;
            r.protocols = names
                .iter()
                .map(|n| (n.to_string(), Bytes::new()))
                .collect();
            r
        };
        let _a = g.join(with(&["range", "roundrobin", "sticky"]), None, t0);
        let _b = g.join(with(&["roundrobin", "range"]), None, t0);
        let _c = g.join(with(&["roundrobin", "range"]), None, t0);
        g.tick(t0 + INITIAL_REBALANCE_DELAY);
        assert_eq!(g.generation, 1);
        assert_eq!(g.protocol_name.as_deref(), Some("roundrobin"));
        // "sticky" is not supported by everyone: a member offering only it is refused.
        let r = g.join(with(&["sticky"]), None, t0);
        let Answer::Now(r) = r else { panic!() };
        assert_eq!(r.error, Some(BrokerError::InconsistentGroupProtocol));
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let _ = join_new(&mut g, t0);
        let mut other = req("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            now_of(g.join(other, None, t0)).error,
            Some(BrokerError::InconsistentGroupProtocol)
        );
    }
}
