//! Every group API at every version Sluice advertises: one member's whole
//! life (find the coordinator, join, sync, heartbeat, commit, fetch,
//! describe, list, leave, delete offsets, delete the group), each step at a
//! version of its own, through the raw client, which fails on any response
//! that does not decode exactly.

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::harness::{create_topic, Broker, DataDir};
use crate::raw::{topic_name, RawClient};
use crate::wire::{self, group_id, NONE};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The committed offset of partition 0 of `topic` at OffsetFetch `version`.
fn fetched(c: &mut RawClient, version: i16, group: &str, topic: &str) -> i64 {
    if version >= 8 {
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0])]))]);
        let r = c.call(version, &request);
        assert_eq!(r.groups[0].error_code, NONE);
        let p = &r.groups[0].topics[0].partitions[0];
        assert_eq!(p.error_code, NONE);
        p.committed_offset
    } else {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0])]));
        let r = c.call(version, &request);
        assert_eq!(r.error_code, NONE);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, NONE);
        p.committed_offset
    }
}

#[test]
fn every_group_api_answers_at_every_version() {
    let dir = DataDir::new("groups-versions");
    let broker = Broker::start(dir.path(), 2, &[]);
    let topic = "versions";
    create_topic(&broker, topic, 2, &[]);
    let mut c = RawClient::connect(broker.addr());

    for v in 0..=6i16 {
        let mut request = FindCoordinatorRequest::default();
        if v >= 4 {
            request = request.with_coordinator_keys(vec![s("a"), s("b")]);
        } else {
            request = request.with_key(s("a"));
        }
        let r = c.call(v, &request);
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert!(r
                .coordinators
                .iter()
                .all(|c| c.error_code == NONE && c.port > 0));
        } else {
            assert_eq!((r.error_code, r.node_id.0), (NONE, 0));
            assert!(r.port > 0);
        }
    }

    for v in 0..=9i16 {
        let group = format!("versions-{v}");
        let join = |c: &mut RawClient, member: &str| {
            let mut request = JoinGroupRequest::default()
                .with_group_id(group_id(&group))
                .with_session_timeout_ms(10_000)
                .with_member_id(s(member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(wire::subscription(&[topic]))]);
            if v >= 1 {
                request = request.with_rebalance_timeout_ms(10_000);
            }
            c.call(v, &request)
        };
        let mut joined = join(&mut c, "");
        if v >= 4 {
            assert_eq!(
                joined.error_code,
                wire::MEMBER_ID_REQUIRED,
                "JoinGroup v{v}"
            );
            let id = joined.member_id.to_string();
            joined = join(&mut c, &id);
        }
        assert_eq!(joined.error_code, NONE, "JoinGroup v{v}");
        let me = joined.member_id.to_string();
        assert_eq!(joined.leader.as_str(), me);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        let generation = joined.generation_id;

        let sv = v % 6;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(generation)
            .with_member_id(s(&me))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&me))
                .with_assignment(bytes::Bytes::from_static(b"mine"))]);
        if sv >= 5 {
            sync = sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let r = c.call(sv, &sync);
        assert_eq!(r.error_code, NONE, "SyncGroup v{sv}");
        assert_eq!(&r.assignment[..], b"mine");

        let hv = v % 5;
        let heartbeat = HeartbeatRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(generation)
            .with_member_id(s(&me));
        assert_eq!(c.call(hv, &heartbeat).error_code, NONE, "Heartbeat v{hv}");

        let cv = 2 + v % 8;
        let commit = OffsetCommitRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(&me))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(40 + i64::from(v))])]);
        let r = c.call(cv, &commit);
        assert_eq!(
            r.topics[0].partitions[0].error_code, NONE,
            "OffsetCommit v{cv}"
        );
        let fv = 1 + v % 9;
        assert_eq!(
            fetched(&mut c, fv, &group, topic),
            40 + i64::from(v),
            "OffsetFetch v{fv}"
        );

        let dv = v % 7;
        let r = c.call(
            dv,
            &DescribeGroupsRequest::default().with_groups(vec![group_id(&group)]),
        );
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Stable",
            "DescribeGroups v{dv}"
        );
        assert_eq!(r.groups[0].members.len(), 1);
        assert_eq!(&r.groups[0].members[0].member_assignment[..], b"mine");

        let lv = v % 6;
        let r = c.call(lv, &ListGroupsRequest::default());
        assert!(
            r.groups.iter().any(|g| g.group_id.0.as_str() == group),
            "ListGroups v{lv}"
        );

        let lgv = v % 6;
        let mut leave = LeaveGroupRequest::default().with_group_id(group_id(&group));
        if lgv >= 3 {
            leave = leave.with_members(vec![MemberIdentity::default().with_member_id(s(&me))]);
        } else {
            leave = leave.with_member_id(s(&me));
        }
        let r = c.call(lgv, &leave);
        assert_eq!(r.error_code, NONE, "LeaveGroup v{lgv}");
        if lgv >= 3 {
            assert_eq!(r.members[0].error_code, NONE);
        }
        assert_eq!(wire::describe(&mut c, &group).group_state.as_str(), "Empty");

        let delete_offsets = OffsetDeleteRequest::default()
            .with_group_id(group_id(&group))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]);
        let r = c.call(0, &delete_offsets);
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.topics[0].partitions[0].error_code, NONE);
        assert_eq!(fetched(&mut c, 8, &group, topic), -1);

        let gv = v % 3;
        let r = c.call(
            gv,
            &DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)]),
        );
        assert_eq!(r.results[0].error_code, NONE, "DeleteGroups v{gv}");
    }
}

/// Fencing and refusals a real client rarely provokes.
#[test]
fn refusals_carry_the_right_error_codes() {
    let dir = DataDir::new("groups-refusals");
    let broker = Broker::start(dir.path(), 2, &[]);
    let topic = "refusals";
    create_topic(&broker, topic, 1, &[]);
    let mut c = RawClient::connect(broker.addr());
    let group = "refusals-g";
    let first = wire::join(&mut c, group, "", 6000, &[topic]);
    let me = first.member_id.to_string();
    let joined = wire::join(&mut c, group, &me, 6000, &[topic]);
    assert_eq!(joined.error_code, NONE);
    let generation = joined.generation_id;
    // Before the leader's SyncGroup: commits wait for the rebalance.
    assert_eq!(
        wire::commit(&mut c, group, generation, &me, topic, 0, 1),
        wire::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        wire::sync(&mut c, group, generation + 1, &me, vec![]).0,
        wire::ILLEGAL_GENERATION
    );
    assert_eq!(wire::sync(&mut c, group, generation, &me, vec![]).0, NONE);
    assert_eq!(
        wire::heartbeat(&mut c, group, generation, "stranger"),
        wire::UNKNOWN_MEMBER_ID
    );
    assert_eq!(wire::delete_group(&mut c, group), wire::NON_EMPTY_GROUP);
    // Inconsistent protocol type.
    let other = kafka_protocol::messages::JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(6000)
        .with_member_id(s(""))
        .with_protocol_type(s("connect"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range"))
        ]);
    assert_eq!(
        c.call(5, &other).error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );
    // Session timeout outside the broker's bounds.
    let short = other
        .with_protocol_type(s("consumer"))
        .with_session_timeout_ms(10);
    assert_eq!(c.call(5, &short).error_code, 26, "INVALID_SESSION_TIMEOUT");
    // Offsets of a subscribed topic cannot be deleted while members consume it.
    let delete_offsets = OffsetDeleteRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let r = c.call(0, &delete_offsets);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 86,
        "GROUP_SUBSCRIBED_TO_TOPIC"
    );
}

/// Found by the request fuzzer: a JoinGroup at a flexible version may carry
/// a 32 KB protocol type, which no ListGroups v0-2 or DescribeGroups v0-4
/// answer can encode, so every such request closed its connection for as
/// long as the group lived. Names that long are refused at the door.
#[test]
fn a_group_name_too_long_for_old_answers_is_refused() {
    let dir = DataDir::new("groups-long-names");
    let broker = Broker::start(dir.path(), 2, &[]);
    let mut c = RawClient::connect(broker.addr());
    let long = "x".repeat(32_768);
    let request = JoinGroupRequest::default()
        .with_group_id(group_id("long-names"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(1_000)
        .with_member_id(s(""))
        .with_protocol_type(s(&long))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(wire::subscription(&["t"]))]);
    let joined = c.call(6, &request);
    assert_eq!(
        joined.error_code, 42,
        "INVALID_REQUEST for a 32 KB protocol type"
    );
    // Old versions of the describing APIs still answer.
    for version in 0..=2 {
        let listed = c.call(version, &ListGroupsRequest::default());
        assert_eq!(listed.error_code, NONE, "ListGroups v{version}");
    }
    let described = c.call(
        0,
        &DescribeGroupsRequest::default().with_groups(vec![group_id("long-names")]),
    );
    assert_eq!(described.groups.len(), 1);
}

/// Group members are state a client creates and keeps alive, so they are
/// capped like any other memory: a group takes at most `--group-max-size`
/// members (GROUP_MAX_SIZE_REACHED past it, as Kafka's group.max.size), and
/// all groups of a shard hold their members within an eighth of its memory
/// budget (COORDINATOR_NOT_AVAILABLE past it, which clients retry). Before,
/// every JoinGroup was kept, whatever its size, by any number of groups.
#[test]
fn group_members_are_capped_in_number_and_memory() {
    let dir = DataDir::new("groups-capped");
    let broker = Broker::start(
        dir.path(),
        1,
        &["--memory-budget-mib", "64", "--group-max-size", "3"],
    );
    let mut c = RawClient::connect(broker.addr());
    let join = |c: &mut RawClient, group: &str, metadata_bytes: usize| {
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(6_000)
            .with_rebalance_timeout_ms(6_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(vec![7u8; metadata_bytes].into())]);
        c.call(5, &request).error_code
    };
    let codes: Vec<i16> = (0..4).map(|_| join(&mut c, "small", 100)).collect();
    assert_eq!(
        codes,
        [wire::MEMBER_ID_REQUIRED; 3]
            .iter()
            .copied()
            .chain([81])
            .collect::<Vec<_>>()
    );

    // 64 MiB on one shard: 8 MiB for groups, so seven 1 MiB members fit.
    let codes: Vec<i16> = (0..12)
        .map(|i| join(&mut c, &format!("big-{i}"), 1 << 20))
        .collect();
    let held = codes
        .iter()
        .filter(|&&e| e == wire::MEMBER_ID_REQUIRED)
        .count();
    assert_eq!(held, 7, "{codes:?}");
    assert!(codes[held..].iter().all(|&e| e == 15), "{codes:?}");

    // Pending member ids are forgotten after the session timeout, and their
    // memory with them.
    std::thread::sleep(std::time::Duration::from_millis(6_500));
    assert_eq!(join(&mut c, "big-again", 1 << 20), wire::MEMBER_ID_REQUIRED);
    assert_eq!(join(&mut c, "small", 100), wire::MEMBER_ID_REQUIRED);
}
