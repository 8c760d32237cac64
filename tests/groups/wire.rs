//! Group requests by hand, over the black-box suite's raw client: for what
//! an rdkafka consumer will not do on cue (stop heartbeating while its
//! process lives, commit with a stale generation, ask for unknown groups).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::raw::{topic_name, RawClient};

pub const JOIN_V: i16 = 9;
pub const SYNC_V: i16 = 5;
pub const HEARTBEAT_V: i16 = 4;
pub const COMMIT_V: i16 = 8;
pub const FETCH_V: i16 = 8;

/// Kafka error codes the tests name.
pub const NONE: i16 = 0;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn group_id(g: &str) -> GroupId {
    GroupId(s(g))
}

/// Consumer-protocol subscription metadata (version prefix + body).
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .encode(&mut buf, 0)
        .expect("encode subscription");
    buf.freeze()
}

/// The partitions of `topic` in a consumer-protocol assignment.
pub fn assigned(assignment: &Bytes, topic: &str) -> Vec<i32> {
    let mut b = assignment.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut b, version).expect("decode assignment");
    a.assigned_partitions
        .iter()
        .filter(|tp| tp.topic.0.as_str() == topic)
        .flat_map(|tp| tp.partitions.clone())
        .collect()
}

/// JoinGroup (blocks until the join phase completes).
pub fn join(
    c: &mut RawClient,
    group: &str,
    member_id: &str,
    session_ms: i32,
    topics: &[&str],
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(topics))]);
    c.call(JOIN_V, &request)
}

/// SyncGroup: (error, assignment).
pub fn sync(
    c: &mut RawClient,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: Vec<(String, Bytes)>,
) -> (i16, Bytes) {
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    let r = c.call(SYNC_V, &request);
    (r.error_code, r.assignment)
}

pub fn heartbeat(c: &mut RawClient, group: &str, generation: i32, member_id: &str) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    c.call(HEARTBEAT_V, &request).error_code
}

/// OffsetCommit of one partition; its error code.
pub fn commit(
    c: &mut RawClient,
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let r = c.call(COMMIT_V, &request);
    r.topics[0].partitions[0].error_code
}

/// One group's answer: its error and (partition, offset, error) each.
pub type GroupOffsets = (i16, Vec<(i32, i64, i16)>);

/// OffsetFetch v8 of several groups for partitions of one topic.
pub fn fetch_offsets(
    c: &mut RawClient,
    groups: &[&str],
    topic: &str,
    partitions: &[i32],
) -> Vec<GroupOffsets> {
    let request = OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(group_id(g))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.to_vec())]))
            })
            .collect(),
    );
    let r = c.call(FETCH_V, &request);
    assert_eq!(r.groups.len(), groups.len());
    r.groups
        .iter()
        .map(|g| {
            let ps = g
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
                .collect();
            (g.error_code, ps)
        })
        .collect()
}

/// OffsetFetch v5 (one group, all topics when `topic` is None):
/// (error, [(topic, partition, offset)]).
pub fn fetch_offsets_v5(
    c: &mut RawClient,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> (i16, Vec<(String, i32, i64)>) {
    let topics = topic.map(|(t, ps)| {
        vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(ps.to_vec()),
        ]
    });
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics);
    let r = c.call(5, &request);
    let found = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    (r.error_code, found)
}

pub fn describe(c: &mut RawClient, group: &str) -> DescribedGroup {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let mut r = c.call(5, &request);
    r.groups.remove(0)
}

pub fn delete_group(c: &mut RawClient, group: &str) -> i16 {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    c.call(2, &request).results[0].error_code
}

/// ListGroups v4: (group id, state).
pub fn list_groups(c: &mut RawClient) -> Vec<(String, String)> {
    let r = c.call(4, &ListGroupsRequest::default());
    assert_eq!(r.error_code, NONE);
    r.groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
        .collect()
}
