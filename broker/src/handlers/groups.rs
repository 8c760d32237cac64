//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups and OffsetDelete.
//!
//! Each request for a group runs on the group's coordinator shard
//! (`groups::coordinator_shard`) through `Shard::call`: owned request data
//! goes in, an owned response comes out. The state machine is in
//! `crate::groups::state`; this file translates Kafka messages and maps
//! outcomes to error codes.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use sluice_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use sluice_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use sluice_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use sluice_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use sluice_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use sluice_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::ResponseError;

use crate::groups::records::{GroupRecord, OffsetRecord};
use crate::groups::state::{GroupState, JoinRequest, JoinResult, Reply, SyncResult};
use crate::groups::{coordinator_shard, now_ms, storage_error, submit, submit_all};
use crate::handlers::NODE_ID;
use crate::metadata::str_bytes;
use crate::shard::Shard;

/// Kafka's group.min.session.timeout.ms and group.max.session.timeout.ms.
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 6_000..=1_800_000;
/// Kafka's offset.metadata.max.bytes.
const MAX_OFFSET_METADATA: usize = 4096;
/// Group ids are stored with a 15-bit length.
const MAX_GROUP_ID: usize = i16::MAX as usize;

fn text(s: &StrBytes) -> String {
    s.to_string()
}

fn opt_text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(text)
}

fn not_coordinator() -> i16 {
    ResponseError::NotCoordinator.code()
}

/// Runs `f` on the coordinator shard of `group`; `None` if it has stopped.
async fn on_coordinator<R, F, Fut>(shard: &Rc<Shard>, group: &str, f: F) -> Option<R>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    shard.call(coordinator_shard(group, shard.count), f).await
}

/// Writes the records the groups produced (new generations).
fn flush_outbox(shard: &Shard) {
    let records = shard.groups.borrow_mut().take_outbox();
    submit_all(shard, records);
}

/// FindCoordinator: every group is coordinated by this broker.
pub fn find_coordinator(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = shard.config.advertised();
    let answer = |key_type: i8| -> Result<(), (i16, &'static str)> {
        match key_type {
            0 => Ok(()),
            1 => Err((
                ResponseError::CoordinatorNotAvailable.code(),
                "transactions are not supported",
            )),
            _ => Err((ResponseError::InvalidRequest.code(), "unknown key type")),
        }
    };
    if version < 4 {
        let mut r = FindCoordinatorResponse::default();
        match answer(request.key_type) {
            Ok(()) => {
                r = r
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(str_bytes(&host))
                    .with_port(port);
            }
            Err((code, why)) => {
                r = r
                    .with_error_code(code)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1);
                if version >= 1 {
                    r = r.with_error_message(Some(str_bytes(why)));
                }
            }
        }
        return r;
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = FoundCoordinator::default().with_key(key);
            match answer(request.key_type) {
                Ok(()) => c
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(str_bytes(&host))
                    .with_port(port),
                Err((code, why)) => c
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(why)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

fn join_response(version: i16, r: JoinResult) -> JoinGroupResponse {
    // Before v7 the protocol name is not nullable.
    let empty = (version < 7).then(|| str_bytes(""));
    let members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let m = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_metadata(metadata);
            if version >= 5 {
                m.with_group_instance_id(instance.as_deref().map(str_bytes))
            } else {
                m
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_name(r.protocol_name.as_deref().map(str_bytes).or(empty))
        .with_leader(str_bytes(&r.leader))
        .with_member_id(str_bytes(&r.member_id))
        .with_members(members);
    if version >= 7 {
        response = response.with_protocol_type(r.protocol_type.as_deref().map(str_bytes));
    }
    response
}

/// JoinGroup: waits on the coordinator until the join phase completes.
pub async fn join_group(
    shard: &Rc<Shard>,
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
) -> JoinGroupResponse {
    let group = text(&request.group_id.0);
    let fail = |code: i16| {
        join_response(
            version,
            JoinResult {
                error: code,
                generation: -1,
                member_id: text(&request.member_id),
                ..JoinResult::default()
            },
        )
    };
    if group.is_empty() || group.len() > MAX_GROUP_ID {
        return fail(ResponseError::InvalidGroupId.code());
    }
    if !SESSION_TIMEOUT_MS.contains(&request.session_timeout_ms) {
        return fail(ResponseError::InvalidSessionTimeout.code());
    }
    let session = Duration::from_millis(request.session_timeout_ms as u64);
    let rebalance = if version >= 1 {
        Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let join = JoinRequest {
        member_id: text(&request.member_id),
        instance_id: opt_text(&request.group_instance_id),
        client_id,
        client_host: String::new(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: text(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| (text(&p.name), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let key = group.clone();
    let result = on_coordinator(shard, &key, move |s| async move {
        let reply = s
            .groups
            .borrow_mut()
            .get_or_create(&group)
            .join(join, Instant::now());
        flush_outbox(&s);
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.recv_async().await.unwrap_or_else(|_| JoinResult {
                error: not_coordinator(),
                generation: -1,
                ..JoinResult::default()
            }),
        }
    })
    .await;
    match result {
        Some(r) => join_response(version, r),
        None => fail(not_coordinator()),
    }
}

/// SyncGroup: the leader's assignment is handed to every member.
pub async fn sync_group(
    shard: &Rc<Shard>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group = text(&request.group_id.0);
    let result = on_coordinator(shard, &group.clone(), move |s| async move {
        let reply = match s.groups.borrow_mut().groups.get_mut(&group) {
            None => Reply::Now(SyncResult {
                error: ResponseError::UnknownMemberId.code(),
                ..SyncResult::default()
            }),
            Some(g) => g.sync(
                &text(&request.member_id),
                request.group_instance_id.as_deref(),
                request.generation_id,
                (
                    request.protocol_type.as_deref(),
                    request.protocol_name.as_deref(),
                ),
                request
                    .assignments
                    .into_iter()
                    .map(|a| (text(&a.member_id), a.assignment))
                    .collect(),
                Instant::now(),
            ),
        };
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.recv_async().await.unwrap_or_else(|_| SyncResult {
                error: not_coordinator(),
                ..SyncResult::default()
            }),
        }
    })
    .await
    .unwrap_or_else(|| SyncResult {
        error: not_coordinator(),
        ..SyncResult::default()
    });
    let mut response = SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_assignment(result.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(result.protocol_name.as_deref().map(str_bytes));
    }
    response
}

/// Heartbeat: keeps the session alive and says when to rejoin.
pub async fn heartbeat(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group = text(&request.group_id.0);
    let code = on_coordinator(shard, &group.clone(), move |s| async move {
        match s.groups.borrow_mut().groups.get_mut(&group) {
            None => ResponseError::UnknownMemberId.code(),
            Some(g) => g.heartbeat(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                Instant::now(),
            ),
        }
    })
    .await
    .unwrap_or_else(not_coordinator);
    HeartbeatResponse::default().with_error_code(code)
}

/// LeaveGroup: one member (v0-2) or a batch (v3+).
pub async fn leave_group(
    shard: &Rc<Shard>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = text(&request.group_id.0);
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (text(&m.member_id), opt_text(&m.group_instance_id)))
            .collect()
    } else {
        vec![(text(&request.member_id), None)]
    };
    let asked = leaving.clone();
    let codes = on_coordinator(shard, &group.clone(), move |s| async move {
        let codes = match s.groups.borrow_mut().groups.get_mut(&group) {
            None => vec![ResponseError::UnknownMemberId.code(); leaving.len()],
            Some(g) => {
                let now = Instant::now();
                leaving
                    .iter()
                    .map(|(id, instance)| g.leave(id, instance.as_deref(), now))
                    .collect()
            }
        };
        flush_outbox(&s);
        codes
    })
    .await
    .unwrap_or_else(|| vec![not_coordinator(); asked.len()]);
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let members = asked
        .into_iter()
        .zip(codes)
        .map(|((id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&id))
                .with_group_instance_id(instance.as_deref().map(str_bytes))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// OffsetCommit: checks membership and generation, writes one WAL record
/// for the request's offsets and answers once it is durable.
pub async fn offset_commit(
    shard: &Rc<Shard>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = text(&request.group_id.0);
    // Per partition in request order: the error code.
    let shape: Vec<(TopicName, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let codes: Vec<Vec<i16>> = if group.is_empty() || group.len() > MAX_GROUP_ID {
        let code = ResponseError::InvalidGroupId.code();
        shape.iter().map(|(_, ps)| vec![code; ps.len()]).collect()
    } else {
        let fallback: Vec<Vec<i16>> = shape
            .iter()
            .map(|(_, ps)| vec![not_coordinator(); ps.len()])
            .collect();
        on_coordinator(shard, &group.clone(), move |s| {
            commit_on_coordinator(s, group, request)
        })
        .await
        .unwrap_or(fallback)
    };
    let topics = shape
        .into_iter()
        .zip(codes)
        .map(|((name, partitions), codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

async fn commit_on_coordinator(
    shard: Rc<Shard>,
    group: String,
    request: OffsetCommitRequest,
) -> Vec<Vec<i16>> {
    let now = Instant::now();
    let member = text(&request.member_id);
    let instance = opt_text(&request.group_instance_id);
    let generation = request.generation_id_or_member_epoch;
    let check = match shard.groups.borrow_mut().groups.get_mut(&group) {
        None if generation < 0 => 0,
        None => ResponseError::IllegalGeneration.code(),
        Some(g) => g.check_commit(&member, instance.as_deref(), generation, now),
    };
    if check != 0 {
        return request
            .topics
            .iter()
            .map(|t| vec![check; t.partitions.len()])
            .collect();
    }
    let metadata = shard.metadata();
    let timestamp = now_ms();
    let mut offsets = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let topic = metadata.topics.get(t.name.0.as_str());
        let mut topic_codes = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let known = topic.filter(|t| {
                p.partition_index >= 0 && (p.partition_index as usize) < t.partitions.len()
            });
            let code = match known {
                None => ResponseError::UnknownTopicOrPartition.code(),
                Some(_)
                    if p.committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_OFFSET_METADATA) =>
                {
                    ResponseError::OffsetMetadataTooLarge.code()
                }
                Some(topic) => {
                    offsets.push(OffsetRecord {
                        topic: topic.name.clone(),
                        topic_id: topic.id,
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: opt_text(&p.committed_metadata),
                        commit_timestamp: timestamp,
                    });
                    0
                }
            };
            topic_codes.push(code);
        }
        codes.push(topic_codes);
    }
    if offsets.is_empty() {
        return codes;
    }
    let record = GroupRecord::Commit { group, offsets };
    // Handed to the WAL and applied to memory in one step, so memory
    // follows WAL order; answered only once durable.
    let durable = submit(&shard, &record);
    if durable.is_ok() {
        shard.groups.borrow_mut().apply(&record);
    }
    let failed = match durable {
        Ok(durable) => durable.await.err().map(|e| storage_error(&e.to_string())),
        Err(e) => Some(storage_error(&e)),
    };
    if let Some(code) = failed {
        for c in codes.iter_mut().flatten() {
            if *c == 0 {
                *c = code;
            }
        }
    }
    codes
}

/// One committed offset as answered: partition index, offset, leader
/// epoch, metadata.
type FetchedOffset = (i32, i64, i32, Option<String>);
/// One group's committed offsets as asked, per topic.
type GroupOffsets = Vec<(String, Vec<FetchedOffset>)>;

/// The committed offsets of `group` for `topics` (`None`: all). An unknown
/// group or partition gets offset -1, not an error.
async fn fetch_offsets(
    shard: &Rc<Shard>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<GroupOffsets, i16> {
    on_coordinator(shard, &group.clone(), move |s| async move {
        let coordinator = s.groups.borrow();
        let g = coordinator.groups.get(&group);
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
    })
    .await
    .ok_or_else(not_coordinator)
}

/// OffsetFetch: one group (v1-7) or several (v8+).
pub async fn offset_fetch(
    shard: &Rc<Shard>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let meta = |m: Option<String>| Some(str_bytes(m.as_deref().unwrap_or("")));
    if version < 8 {
        let topics = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let mut response = OffsetFetchResponse::default();
        match fetch_offsets(shard, text(&request.group_id.0), topics).await {
            Ok(found) => {
                response = response.with_topics(
                    found
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(str_bytes(&topic)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, offset, epoch, m)| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(meta(m))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            }
            Err(code) if version >= 2 => response = response.with_error_code(code),
            Err(_) => {}
        }
        return response;
    }
    let mut groups = Vec::with_capacity(request.groups.len());
    for g in request.groups {
        let topics = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        match fetch_offsets(shard, text(&g.group_id.0), topics).await {
            Ok(found) => {
                out = out.with_topics(
                    found
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(&topic)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, offset, epoch, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(meta(m))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            }
            Err(code) => out = out.with_error_code(code),
        }
        groups.push(out);
    }
    OffsetFetchResponse::default().with_groups(groups)
}

/// ListGroups: the groups of every shard.
pub async fn list_groups(
    shard: &Rc<Shard>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let mut listed = Vec::new();
    let mut error = 0;
    for target in 0..shard.count {
        let part = shard
            .call(target, |s| async move {
                s.groups
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
                    .collect::<Vec<_>>()
            })
            .await;
        match part {
            Some(part) => listed.extend(part),
            None => error = ResponseError::CoordinatorNotAvailable.code(),
        }
    }
    listed.sort();
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| states.is_empty() || states.contains(&state.to_lowercase()))
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type));
            if version >= 4 {
                g = g.with_group_state(str_bytes(state));
            }
            if version >= 5 {
                g = g.with_group_type(str_bytes("classic"));
            }
            g
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}

/// DescribeGroups: state, protocol, members and (when stable) assignments.
pub async fn describe_groups(
    shard: &Rc<Shard>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(request.groups.len());
    for id in request.groups {
        let group = text(&id.0);
        let found = on_coordinator(shard, &group.clone(), move |s| async move {
            let coordinator = s.groups.borrow();
            let g = coordinator.groups.get(&group)?;
            let stable = g.state == GroupState::Stable;
            let protocol = if stable {
                g.protocol_name.clone().unwrap_or_default()
            } else {
                String::new()
            };
            let mut members: Vec<_> = g.members.values().collect();
            members.sort_by_key(|m| m.joined_seq);
            let members: Vec<DescribedGroupMember> = members
                .into_iter()
                .map(|m| {
                    let mut d = DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.id))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host));
                    if version >= 4 {
                        d = d.with_group_instance_id(m.instance_id.as_deref().map(str_bytes));
                    }
                    if stable {
                        d = d
                            .with_member_metadata(m.metadata(&protocol))
                            .with_member_assignment(m.assignment.clone());
                    }
                    d
                })
                .collect();
            Some(
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(str_bytes(&protocol))
                    .with_members(members),
            )
        })
        .await;
        let d = match found {
            Some(Some(d)) => d,
            Some(None) if version >= 6 => DescribedGroup::default()
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes("group does not exist")))
                .with_group_state(str_bytes("Dead")),
            Some(None) => DescribedGroup::default().with_group_state(str_bytes("Dead")),
            None => DescribedGroup::default().with_error_code(not_coordinator()),
        };
        described.push(d.with_group_id(id));
    }
    DescribeGroupsResponse::default().with_groups(described)
}

/// DeleteGroups: empty groups only; a durable tombstone each.
pub async fn delete_groups(
    shard: &Rc<Shard>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let group = text(&id.0);
        let code = on_coordinator(shard, &group.clone(), move |s| async move {
            let durable = {
                let mut coordinator = s.groups.borrow_mut();
                match coordinator.groups.get(&group) {
                    None => return ResponseError::GroupIdNotFound.code(),
                    Some(g) if g.state != GroupState::Empty => {
                        return ResponseError::NonEmptyGroup.code()
                    }
                    Some(_) => {}
                }
                let record = GroupRecord::DeleteGroup { group };
                let durable = submit(&s, &record);
                if durable.is_ok() {
                    coordinator.apply(&record);
                }
                durable
            };
            match durable {
                Ok(d) => match d.await {
                    Ok(()) => 0,
                    Err(e) => storage_error(&e.to_string()),
                },
                Err(e) => storage_error(&e),
            }
        })
        .await
        .unwrap_or_else(not_coordinator);
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete: removes offsets of partitions the group does not consume.
pub async fn offset_delete(
    shard: &Rc<Shard>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = text(&request.group_id.0);
    let shape: Vec<(TopicName, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let asked = shape.clone();
    let outcome = on_coordinator(shard, &group.clone(), move |s| async move {
        let metadata = s.metadata();
        let durable = {
            let mut coordinator = s.groups.borrow_mut();
            let Some(g) = coordinator.groups.get(&group) else {
                return Err(ResponseError::GroupIdNotFound.code());
            };
            let Some(subscribed) = g.subscribed_topics() else {
                return Err(ResponseError::NonEmptyGroup.code());
            };
            let mut removed = Vec::new();
            let codes: Vec<Vec<i16>> = asked
                .iter()
                .map(|(topic, partitions)| {
                    let name = topic.0.to_string();
                    partitions
                        .iter()
                        .map(|p| {
                            if subscribed.contains(&name) {
                                ResponseError::GroupSubscribedToTopic.code()
                            } else if !metadata
                                .topics
                                .get(&name)
                                .is_some_and(|t| *p >= 0 && (*p as usize) < t.partitions.len())
                            {
                                ResponseError::UnknownTopicOrPartition.code()
                            } else {
                                removed.push((name.clone(), *p));
                                0
                            }
                        })
                        .collect()
                })
                .collect();
            if removed.is_empty() {
                return Ok(codes);
            }
            let record = GroupRecord::DeleteOffsets {
                group,
                partitions: removed,
            };
            let durable = submit(&s, &record);
            if durable.is_ok() {
                coordinator.apply(&record);
            }
            (codes, durable)
        };
        let (mut codes, durable) = durable;
        let failed = match durable {
            Ok(d) => d.await.err().map(|e| storage_error(&e.to_string())),
            Err(e) => Some(storage_error(&e)),
        };
        if let Some(code) = failed {
            for c in codes.iter_mut().flatten() {
                if *c == 0 {
                    *c = code;
                }
            }
        }
        Ok(codes)
    })
    .await
    .unwrap_or_else(|| Err(not_coordinator()));
    let codes = match outcome {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let topics = shape
        .into_iter()
        .zip(codes)
        .map(|((name, partitions), codes)| {
            OffsetDeleteResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
