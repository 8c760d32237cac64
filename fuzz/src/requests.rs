//! Request builders: for each supported API, a plausible request at a given
//! version (existing topics, partitions 0..3, real record batches, group and
//! member ids, the run's producer id), with every field drawn through
//! [`Knobs`] so field-level mutation can replace it with a hostile value.
//!
//! Fields a version does not have are left at their defaults:
//! kafka-protocol refuses to encode a non-default field its version lacks.
//! Waits the broker honours (Fetch max_wait_ms, JoinGroup rebalance) stay
//! short in valid requests, so a long run does not sit in long polls.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use crate::batches;
use crate::context::{Context, Topic, PARTITIONS};
use crate::knobs::Knobs;
use crate::rng::Rng;

/// An encoded request body and what was done to it.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// Field mutation classes applied.
    pub classes: Vec<String>,
    /// Produce with acks=0: the broker sends no answer.
    pub no_answer: bool,
    /// The group of a JoinGroup, to remember the member it answers with.
    pub join_group: Option<String>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn encode<R: Encodable>(request: &R, version: i16) -> Result<Vec<u8>, String> {
    let mut buf = BytesMut::new();
    request
        .encode(&mut buf, version)
        .map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

/// The body of `api` at `version`, field-mutated when `fields` is set. A
/// mutation that the encoder refuses (a field the version lacks) falls back
/// to the valid request; `Err` only if even that does not encode, which is a
/// fuzzer bug the unit tests rule out.
pub fn build(
    api: ApiKey,
    version: i16,
    cx: &Context,
    rng: &mut Rng,
    fields: bool,
    skip: &[String],
    index: u64,
) -> Result<Body, String> {
    let saved = rng.clone();
    match build_once(api, version, cx, rng, fields, skip, index) {
        Ok(body) => Ok(body),
        Err(_) if fields => {
            *rng = saved;
            build_once(api, version, cx, rng, false, skip, index)
        }
        Err(e) => Err(e),
    }
}

fn build_once(
    api: ApiKey,
    v: i16,
    cx: &Context,
    rng: &mut Rng,
    fields: bool,
    skip: &[String],
    index: u64,
) -> Result<Body, String> {
    let name = format!("{api:?}");
    let mut k = Knobs::new(rng, fields, &name, skip);
    let k = &mut k;
    let mut no_answer = false;
    let mut joined_group = None;
    let bytes = match api {
        ApiKey::ApiVersions => encode(&api_versions(v, k), v),
        ApiKey::Metadata => encode(&metadata(cx, v, k), v),
        ApiKey::Produce => {
            let r = produce(cx, v, k);
            no_answer = r.acks == 0;
            encode(&r, v)
        }
        ApiKey::Fetch => encode(&fetch(cx, v, k), v),
        ApiKey::ListOffsets => encode(&list_offsets(cx, v, k), v),
        ApiKey::CreateTopics => encode(&create_topics(v, k), v),
        ApiKey::DeleteTopics => encode(&delete_topics(v, k), v),
        ApiKey::CreatePartitions => encode(&create_partitions(cx, k), v),
        ApiKey::DescribeConfigs => encode(&describe_configs(cx, v, k), v),
        ApiKey::DescribeCluster => encode(&describe_cluster(v, k), v),
        ApiKey::DeleteRecords => encode(&delete_records(cx, k), v),
        ApiKey::AlterConfigs => encode(&alter_configs(cx, k), v),
        ApiKey::IncrementalAlterConfigs => encode(&incremental_alter_configs(cx, k), v),
        ApiKey::DescribeLogDirs => encode(&describe_log_dirs(cx, k), v),
        ApiKey::InitProducerId => encode(&init_producer_id(cx, v, k), v),
        ApiKey::FindCoordinator => encode(&find_coordinator(v, k), v),
        ApiKey::JoinGroup => {
            let r = join_group(cx, v, k, index);
            joined_group = Some(r.group_id.0.to_string());
            encode(&r, v)
        }
        ApiKey::SyncGroup => encode(&sync_group(cx, v, k), v),
        ApiKey::Heartbeat => encode(&heartbeat(cx, v, k), v),
        ApiKey::LeaveGroup => encode(&leave_group(cx, v, k), v),
        ApiKey::OffsetCommit => encode(&offset_commit(cx, v, k), v),
        ApiKey::OffsetFetch => encode(&offset_fetch(cx, v, k), v),
        ApiKey::ListGroups => encode(&list_groups(v, k), v),
        ApiKey::DescribeGroups => encode(&describe_groups(v, k), v),
        ApiKey::DeleteGroups => encode(&delete_groups(k), v),
        ApiKey::OffsetDelete => encode(&offset_delete(cx, k), v),
        ApiKey::AddPartitionsToTxn => encode(&add_partitions_to_txn(cx, k), v),
        ApiKey::AddOffsetsToTxn => encode(&add_offsets_to_txn(cx, k), v),
        ApiKey::EndTxn => encode(&end_txn(cx, k), v),
        ApiKey::TxnOffsetCommit => encode(&txn_offset_commit(cx, v, k), v),
        ApiKey::DescribeTransactions => encode(&describe_transactions(k), v),
        ApiKey::ListTransactions => encode(&list_transactions(cx, v, k), v),
        ApiKey::DescribeProducers => encode(&describe_producers(cx, k), v),
        ApiKey::SaslHandshake => encode(&sasl_handshake(k), v),
        ApiKey::SaslAuthenticate => encode(&sasl_authenticate(k), v),
        ApiKey::DescribeUserScramCredentials => encode(&describe_user_scram_credentials(k), v),
        ApiKey::AlterUserScramCredentials => encode(&alter_user_scram_credentials(k), v),
        ApiKey::CreateAcls => encode(&create_acls(cx, k), v),
        ApiKey::DescribeAcls => encode(&describe_acls(cx, k), v),
        ApiKey::DeleteAcls => encode(&delete_acls(cx, k), v),
        other => Err(format!("no builder for {other:?}")),
    }?;
    Ok(Body {
        bytes,
        classes: std::mem::take(&mut k.applied),
        no_answer,
        join_group: joined_group,
    })
}

// ---- shared pieces ----

fn topic<'c>(cx: &'c Context, k: &mut Knobs) -> &'c Topic {
    let i = k.rng().below(cx.topics.len() as u64) as usize;
    &cx.topics[i]
}

fn partition(k: &mut Knobs) -> i32 {
    let p = k.rng().below(PARTITIONS as u64) as i32;
    k.i32("partition", p)
}

/// A topic id: the real one, or an unknown or nil id.
fn topic_id(t: &Topic, k: &mut Knobs) -> Uuid {
    if k.custom("topic_id", "unknown") {
        Uuid::from_u128(u128::from(k.rng().next_u64()) << 64 | 7)
    } else if k.custom("topic_id", "nil") {
        Uuid::nil()
    } else {
        t.id
    }
}

/// A group id from a small pool shared by all group APIs.
fn group(k: &mut Knobs) -> GroupId {
    let n = k.rng().below(32);
    GroupId(k.string("group_id", &format!("fz-g{n}")))
}

fn member(k: &mut Knobs) -> StrBytes {
    let n = k.rng().below(8);
    k.string("member_id", &format!("fz-member-{n}"))
}

/// Group, member and generation: half the time a member the broker
/// admitted earlier (when there is one), else made up.
fn membership(cx: &Context, k: &mut Knobs) -> (GroupId, StrBytes, i32) {
    let pick = k.rng().next_u64();
    match cx.member(pick).filter(|_| pick.is_multiple_of(2)) {
        Some(m) => (
            GroupId(k.string("group_id", &m.group)),
            k.string("member_id", &m.member_id),
            k.i32("generation_id", m.generation),
        ),
        None => {
            let generation = *k.rng().pick(&[-1, 0, 1]);
            (group(k), member(k), k.i32("generation_id", generation))
        }
    }
}

/// A consumer protocol assignment (version 0): partitions 0..3 of the
/// first working topic.
fn assignment(cx: &Context) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    let name = cx.topics.first().map_or("", |t| t.name.as_str());
    b.put_i16(name.len() as i16);
    b.put_slice(name.as_bytes());
    b.put_i32(PARTITIONS);
    for p in 0..PARTITIONS {
        b.put_i32(p);
    }
    b.put_i32(-1);
    b.to_vec()
}

/// A consumer protocol subscription (version 0, the working topics).
fn subscription(cx: &Context) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(cx.topics.len() as i32);
    for t in &cx.topics {
        b.put_i16(t.name.len() as i16);
        b.put_slice(t.name.as_bytes());
    }
    b.put_i32(-1);
    b.to_vec()
}

// ---- builders, one per API ----

fn api_versions(v: i16, k: &mut Knobs) -> ApiVersionsRequest {
    let mut r = ApiVersionsRequest::default();
    if v >= 3 {
        r.client_software_name = k.string("client_software_name", "sluice-fuzz");
        r.client_software_version = k.string("client_software_version", "0.1.0");
    }
    r
}

fn metadata(cx: &Context, v: i16, k: &mut Knobs) -> MetadataRequest {
    let mut r = MetadataRequest::default();
    // All topics (null from v1, empty list at v0) now and then.
    if k.rng().chance(1, 8) {
        r.topics = if v >= 1 { None } else { Some(Vec::new()) };
    } else {
        let n = k.rng().below(3) as usize + 1;
        let n = k.count("topics", n);
        let topics = (0..n)
            .map(|_| {
                let t = topic(cx, k);
                let mut mt = MetadataRequestTopic::default();
                if v >= 10 && k.rng().chance(1, 3) {
                    mt.topic_id = topic_id(t, k);
                    mt.name = None;
                } else {
                    mt.name = Some(k.topic("topic", &t.name));
                }
                mt
            })
            .collect();
        r.topics = Some(k.dup("topics", topics));
    }
    if v >= 4 {
        r.allow_auto_topic_creation = k.bool("allow_auto_topic_creation", true);
    }
    if (8..=10).contains(&v) {
        r.include_cluster_authorized_operations =
            k.bool("include_cluster_authorized_operations", false);
    }
    if v >= 8 {
        r.include_topic_authorized_operations =
            k.bool("include_topic_authorized_operations", false);
    }
    r
}

fn records(cx: &Context, k: &mut Knobs) -> Option<Bytes> {
    let valid = k.rng().pick(&cx.batches).clone();
    if k.custom("records", "null") {
        return None;
    }
    if k.custom("records", "empty") {
        return Some(Bytes::new());
    }
    // Pick the damage first so its kind names the class.
    let mut trial = k.rng().clone();
    let (_, kind) = batches::hostile(&mut trial, &valid, &cx.bomb);
    if k.custom("records", &kind) {
        let (b, _) = batches::hostile(k.rng(), &valid, &cx.bomb);
        return Some(b);
    }
    Some(valid)
}

fn produce(cx: &Context, v: i16, k: &mut Knobs) -> ProduceRequest {
    let mut r = ProduceRequest::default();
    // Mostly idempotent producers; now and then one of a few
    // transactional ids (a bounded set: each is kept by the broker).
    let txn = k.rng().chance(1, 4).then(|| txn_name(k));
    r.transactional_id = k
        .opt_string("transactional_id", txn.as_deref())
        .map(TransactionalId);
    let acks = *k.rng().pick(&[1, -1]);
    r.acks = k.i16("acks", acks);
    r.timeout_ms = k.i32("timeout_ms", 5_000);
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut td = TopicProduceData::default();
            if v >= 13 {
                td.topic_id = topic_id(t, k);
            } else {
                td.name = k.topic("topic", &t.name);
            }
            let np = k.rng().below(2) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np)
                .map(|_| {
                    let mut pd = PartitionProduceData::default();
                    pd.index = partition(k);
                    pd.records = records(cx, k);
                    pd
                })
                .collect();
            td.partition_data = k.dup("partitions", parts);
            td
        })
        .collect();
    r.topic_data = k.dup("topics", topics);
    r
}

fn fetch(cx: &Context, v: i16, k: &mut Knobs) -> FetchRequest {
    let mut r = FetchRequest::default();
    if v <= 14 {
        r.replica_id = BrokerId(k.i32("replica_id", -1));
    } else {
        r.replica_state.replica_id = BrokerId(k.i32("replica_state", -1));
    }
    let wait = *k.rng().pick(&[0, 10, 50]);
    r.max_wait_ms = k.wait_ms("max_wait_ms", wait);
    let min = *k.rng().pick(&[0, 1]);
    r.min_bytes = k.i32("min_bytes", min);
    r.max_bytes = k.i32("max_bytes", 1 << 20);
    let iso = *k.rng().pick(&[0, 1]);
    r.isolation_level = k.i8("isolation_level", iso);
    if v >= 7 {
        r.session_id = k.i32("session_id", 0);
        r.session_epoch = k.i32("session_epoch", -1);
        if k.custom("forgotten_topics", "present") {
            let t = topic(cx, k);
            let mut f = ForgottenTopic::default();
            if v >= 13 {
                f.topic_id = t.id;
            } else {
                f.topic = TopicName(s(&t.name));
            }
            f.partitions = vec![0, -1, i32::MAX];
            r.forgotten_topics_data = vec![f];
        }
    }
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut ft = FetchTopic::default();
            if v >= 13 {
                ft.topic_id = topic_id(t, k);
            } else {
                ft.topic = k.topic("topic", &t.name);
            }
            let np = k.rng().below(3) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np)
                .map(|_| {
                    let mut fp = FetchPartition::default();
                    fp.partition = partition(k);
                    if v >= 9 {
                        fp.current_leader_epoch = k.i32("current_leader_epoch", -1);
                    }
                    let offset = k.rng().below(50) as i64;
                    fp.fetch_offset = k.i64("fetch_offset", offset);
                    if v >= 12 {
                        fp.last_fetched_epoch = k.i32("last_fetched_epoch", -1);
                    }
                    if v >= 5 {
                        fp.log_start_offset = k.i64("log_start_offset", -1);
                    }
                    fp.partition_max_bytes = k.i32("partition_max_bytes", 256 << 10);
                    fp
                })
                .collect();
            ft.partitions = k.dup("partitions", parts);
            ft
        })
        .collect();
    r.topics = k.dup("topics", topics);
    if v >= 11 {
        r.rack_id = k.string("rack_id", "");
    }
    r
}

fn delete_records(cx: &Context, k: &mut Knobs) -> DeleteRecordsRequest {
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut dt = DeleteRecordsTopic::default();
            dt.name = k.topic("topic", &t.name);
            let np = k.rng().below(3) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np)
                .map(|_| {
                    let mut dp = DeleteRecordsPartition::default();
                    dp.partition_index = partition(k);
                    // The high watermark, the start, a little, or past the end.
                    let offset = *k.rng().pick(&[-1, 0, 1, 3, 1 << 40]);
                    dp.offset = k.i64("offset", offset);
                    dp
                })
                .collect();
            dt.partitions = k.dup("partitions", parts);
            dt
        })
        .collect();
    let mut r = DeleteRecordsRequest::default();
    r.topics = k.dup("topics", topics);
    r.timeout_ms = k.i32("timeout_ms", 1_000);
    r
}

fn list_offsets(cx: &Context, v: i16, k: &mut Knobs) -> ListOffsetsRequest {
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(k.i32("replica_id", -1));
    if v >= 2 {
        let iso = *k.rng().pick(&[0, 1]);
        r.isolation_level = k.i8("isolation_level", iso);
    }
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut lt = ListOffsetsTopic::default();
            lt.name = k.topic("topic", &t.name);
            let np = k.rng().below(3) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np)
                .map(|_| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = partition(k);
                    if v >= 4 {
                        lp.current_leader_epoch = k.i32("current_leader_epoch", -1);
                    }
                    // Latest, earliest, max timestamp (v7+), or a time.
                    let ts = *k.rng().pick(&[-1, -2, -3, 1_700_000_000_001, 0]);
                    let ts = if ts == -3 && v < 7 { -1 } else { ts };
                    lp.timestamp = k.i64("timestamp", ts);
                    lp
                })
                .collect();
            lt.partitions = k.dup("partitions", parts);
            lt
        })
        .collect();
    r.topics = k.dup("topics", topics);
    if v >= 10 {
        r.timeout_ms = k.i32("timeout_ms", 1_000);
    }
    r
}

fn create_topics(v: i16, k: &mut Knobs) -> CreateTopicsRequest {
    let mut r = CreateTopicsRequest::default();
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let mut t = CreatableTopic::default();
            let churn = Context::churn_topic(k.rng().next_u64());
            t.name = k.topic("name", &churn);
            // Valid requests stay small (1..=3 partitions, or the default);
            // hostile counts may be anything.
            let partitions = if v >= 4 && k.rng().chance(1, 4) {
                -1
            } else {
                1 + k.rng().below(3) as i32
            };
            t.num_partitions = k.i32("num_partitions", partitions);
            let rf = if v >= 4 { *k.rng().pick(&[1, -1]) } else { 1 };
            t.replication_factor = k.i16("replication_factor", rf);
            if k.rng().chance(1, 3) {
                let mut c = CreatableTopicConfig::default();
                c.name = k.string("config_name", "retention.ms");
                c.value = k.opt_string("config_value", Some("60000"));
                t.configs = k.dup("configs", vec![c]);
            }
            t
        })
        .collect();
    r.topics = k.dup("topics", topics);
    r.timeout_ms = k.i32("timeout_ms", 5_000);
    if v >= 1 {
        let validate = k.rng().chance(1, 4);
        r.validate_only = k.bool("validate_only", validate);
    }
    r
}

fn delete_topics(v: i16, k: &mut Knobs) -> DeleteTopicsRequest {
    let mut r = DeleteTopicsRequest::default();
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let names: Vec<TopicName> = (0..n)
        .map(|_| {
            let churn = Context::churn_topic(k.rng().next_u64());
            k.topic("name", &churn)
        })
        .collect();
    let names = k.dup("topics", names);
    if v >= 6 {
        r.topics = names
            .into_iter()
            .map(|name| {
                let mut t = DeleteTopicState::default();
                if k.custom("topic_id", "unknown") {
                    t.topic_id = Uuid::from_u128(u128::from(k.rng().next_u64()) + 1);
                } else {
                    t.name = Some(name);
                }
                t
            })
            .collect();
    } else {
        r.topic_names = names;
    }
    r.timeout_ms = k.i32("timeout_ms", 5_000);
    r
}

fn create_partitions(cx: &Context, k: &mut Knobs) -> CreatePartitionsRequest {
    let mut r = CreatePartitionsRequest::default();
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let mut t = CreatePartitionsTopic::default();
            let valid = PARTITIONS + k.rng().below(5) as i32;
            t.count = k.i32("count", valid);
            // Working topics may grow to 8 partitions, churn topics to
            // anything: a working topic with 65536 partitions would make
            // every later Metadata answer megabytes long.
            let name = if t.count <= 2 * PARTITIONS && k.rng().chance(1, 2) {
                topic(cx, k).name.clone()
            } else {
                Context::churn_topic(k.rng().next_u64())
            };
            t.name = k.topic("name", &name);
            if k.custom("assignments", "present") {
                let mut a = CreatePartitionsAssignment::default();
                a.broker_ids = vec![BrokerId(0), BrokerId(-1)];
                t.assignments = Some(vec![a]);
            }
            t
        })
        .collect();
    r.topics = k.dup("topics", topics);
    r.timeout_ms = k.i32("timeout_ms", 5_000);
    let validate = k.rng().chance(1, 2);
    r.validate_only = k.bool("validate_only", validate);
    r
}

fn describe_configs(cx: &Context, v: i16, k: &mut Knobs) -> DescribeConfigsRequest {
    let mut r = DescribeConfigsRequest::default();
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("resources", n);
    let resources = (0..n)
        .map(|_| {
            let mut res = DescribeConfigsResource::default();
            // 2: topic, 4: broker.
            if k.rng().chance(1, 2) {
                res.resource_type = k.i8("resource_type", 2);
                let name = topic(cx, k).name.clone();
                res.resource_name = k.string("resource_name", &name);
            } else {
                res.resource_type = k.i8("resource_type", 4);
                res.resource_name = k.string("resource_name", "0");
            }
            if k.rng().chance(1, 2) {
                let keys = vec![
                    k.string("configuration_keys", "retention.ms"),
                    s("cleanup.policy"),
                ];
                res.configuration_keys = Some(k.dup("configuration_keys", keys));
            }
            res
        })
        .collect();
    r.resources = k.dup("resources", resources);
    if v >= 1 {
        r.include_synonyms = k.bool("include_synonyms", false);
    }
    if v >= 3 {
        r.include_documentation = k.bool("include_documentation", false);
    }
    r
}

/// Topic configs and values the working topics can live with (the
/// mutations supply the bad ones).
const CONFIGS: &[(&str, &str)] = &[
    ("retention.ms", "604800000"),
    ("retention.bytes", "-1"),
    ("cleanup.policy", "delete"),
    ("max.message.bytes", "1048588"),
    ("message.format.version", "3.0-IV1"),
    ("message.timestamp.type", "CreateTime"),
];

/// A resource type (2: topic, 4: broker) and name.
fn config_resource(cx: &Context, k: &mut Knobs) -> (i8, StrBytes) {
    if k.rng().chance(4, 5) {
        let name = topic(cx, k).name.clone();
        (k.i8("resource_type", 2), k.string("resource_name", &name))
    } else {
        (k.i8("resource_type", 4), k.string("resource_name", "0"))
    }
}

fn alter_configs(cx: &Context, k: &mut Knobs) -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("resources", n);
    let resources = (0..n)
        .map(|_| {
            let (resource_type, resource_name) = config_resource(cx, k);
            let nc = k.rng().below(3) as usize;
            let nc = k.count("configs", nc);
            let configs = (0..nc)
                .map(|_| {
                    let (name, value) = *k.rng().pick(CONFIGS);
                    AlterableConfig::default()
                        .with_name(k.string("name", name))
                        .with_value(k.opt_string("value", Some(value)))
                })
                .collect();
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
                .with_configs(k.dup("configs", configs))
        })
        .collect();
    AlterConfigsRequest::default()
        .with_resources(k.dup("resources", resources))
        .with_validate_only(k.bool("validate_only", false))
}

fn incremental_alter_configs(cx: &Context, k: &mut Knobs) -> IncrementalAlterConfigsRequest {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("resources", n);
    let resources = (0..n)
        .map(|_| {
            let (resource_type, resource_name) = config_resource(cx, k);
            let nc = k.rng().below(3) as usize;
            let nc = k.count("configs", nc);
            let configs = (0..nc)
                .map(|_| {
                    let (name, value) = *k.rng().pick(CONFIGS);
                    // SET, DELETE, APPEND, SUBTRACT.
                    let op = *k.rng().pick(&[0, 0, 1, 2, 3]);
                    AlterableConfig::default()
                        .with_name(k.string("name", name))
                        .with_config_operation(k.i8("config_operation", op))
                        .with_value(k.opt_string("value", Some(value)))
                })
                .collect();
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
                .with_configs(k.dup("configs", configs))
        })
        .collect();
    IncrementalAlterConfigsRequest::default()
        .with_resources(k.dup("resources", resources))
        .with_validate_only(k.bool("validate_only", false))
}

fn describe_log_dirs(cx: &Context, k: &mut Knobs) -> DescribeLogDirsRequest {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let mut r = DescribeLogDirsRequest::default();
    if k.rng().chance(1, 3) {
        return r;
    }
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let name = k.topic("topic", &t.name);
            let np = k.rng().below(3) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np).map(|_| partition(k)).collect();
            DescribableLogDirTopic::default()
                .with_topic(name)
                .with_partitions(k.dup("partitions", parts))
        })
        .collect();
    r.topics = Some(k.dup("topics", topics));
    r
}

fn describe_cluster(v: i16, k: &mut Knobs) -> DescribeClusterRequest {
    let mut r = DescribeClusterRequest::default();
    r.include_cluster_authorized_operations =
        k.bool("include_cluster_authorized_operations", false);
    if v >= 1 {
        r.endpoint_type = k.i8("endpoint_type", 1);
    }
    if v >= 2 {
        r.include_fenced_brokers = k.bool("include_fenced_brokers", false);
    }
    r
}

fn init_producer_id(cx: &Context, v: i16, k: &mut Knobs) -> InitProducerIdRequest {
    let mut r = InitProducerIdRequest::default();
    // Mostly idempotent producers; now and then one of a few
    // transactional ids (a bounded set: each is kept by the broker).
    let txn = k.rng().chance(1, 4).then(|| txn_name(k));
    r.transactional_id = k
        .opt_string("transactional_id", txn.as_deref())
        .map(TransactionalId);
    r.transaction_timeout_ms = k.i32("transaction_timeout_ms", 60_000);
    if v >= 3 {
        // A fresh producer, or the run's own bumping its epoch.
        let (id, epoch) = if k.rng().chance(1, 2) {
            (-1, -1)
        } else {
            (cx.producer_id, cx.producer_epoch)
        };
        r.producer_id = ProducerId(k.i64("producer_id", id));
        r.producer_epoch = k.i16("producer_epoch", epoch);
    }
    r
}

fn find_coordinator(v: i16, k: &mut Knobs) -> FindCoordinatorRequest {
    let mut r = FindCoordinatorRequest::default();
    if v <= 3 {
        r.key = group(k).0;
    }
    if v >= 1 {
        r.key_type = k.i8("key_type", 0);
    }
    if v >= 4 {
        let n = k.rng().below(3) as usize + 1;
        let n = k.count("coordinator_keys", n);
        let keys = (0..n).map(|_| group(k).0).collect();
        r.coordinator_keys = k.dup("coordinator_keys", keys);
    }
    r
}

fn join_group(cx: &Context, v: i16, k: &mut Knobs, index: u64) -> JoinGroupRequest {
    let mut r = JoinGroupRequest::default();
    // A group of its own per join, mostly: a join into a group with other
    // members waits for them to rejoin.
    let g = format!("fz-j{}", index % 4096);
    r.group_id = GroupId(k.string("group_id", &g));
    r.session_timeout_ms = k.i32("session_timeout_ms", 10_000);
    if v >= 1 {
        r.rebalance_timeout_ms = k.wait_ms("rebalance_timeout_ms", 200);
    }
    // v4+ with no member id gets MEMBER_ID_REQUIRED at once; a member id
    // the broker handed out joins (or rejoins) for real.
    let learned = cx
        .member(k.rng().next_u64())
        .filter(|_| k.rng().chance(1, 3));
    let m = match &learned {
        Some(m) => {
            r.group_id = GroupId(k.string("group_id", &m.group));
            m.member_id.clone()
        }
        None if k.rng().chance(1, 2) => String::new(),
        None => format!("fz-member-{}", k.rng().below(8)),
    };
    r.member_id = k.string("member_id", &m);
    if v >= 5 {
        r.group_instance_id = k.opt_string("group_instance_id", None);
    }
    r.protocol_type = k.string("protocol_type", "consumer");
    let sub = subscription(cx);
    let n = k.count("protocols", 1);
    let protocols = (0..n)
        .map(|_| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = k.string("protocol_name", "range");
            p.metadata = k.bytes("protocol_metadata", &sub);
            p
        })
        .collect();
    r.protocols = k.dup("protocols", protocols);
    if v >= 8 {
        r.reason = k.opt_string("reason", None);
    }
    r
}

fn sync_group(cx: &Context, v: i16, k: &mut Knobs) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default();
    (r.group_id, r.member_id, r.generation_id) = membership(cx, k);
    if v >= 3 {
        r.group_instance_id = k.opt_string("group_instance_id", None);
    }
    if v >= 5 {
        r.protocol_type = k.opt_string("protocol_type", Some("consumer"));
        r.protocol_name = k.opt_string("protocol_name", Some("range"));
    }
    // The leader's assignments: itself first, then made-up members.
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("assignments", n);
    let valid = assignment(cx);
    let leader = r.member_id.clone();
    let assignments = (0..n)
        .map(|i| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = if i == 0 { leader.clone() } else { member(k) };
            a.assignment = k.bytes("assignment", &valid);
            a
        })
        .collect();
    r.assignments = k.dup("assignments", assignments);
    r
}

fn heartbeat(cx: &Context, v: i16, k: &mut Knobs) -> HeartbeatRequest {
    let mut r = HeartbeatRequest::default();
    (r.group_id, r.member_id, r.generation_id) = membership(cx, k);
    if v >= 3 {
        r.group_instance_id = k.opt_string("group_instance_id", None);
    }
    r
}

fn leave_group(cx: &Context, v: i16, k: &mut Knobs) -> LeaveGroupRequest {
    let mut r = LeaveGroupRequest::default();
    let (group_id, first, _) = membership(cx, k);
    r.group_id = group_id;
    if v <= 2 {
        r.member_id = first;
    } else {
        let n = k.rng().below(2) as usize + 1;
        let n = k.count("members", n);
        let members = (0..n)
            .map(|i| {
                let mut m = MemberIdentity::default();
                m.member_id = if i == 0 { first.clone() } else { member(k) };
                m.group_instance_id = k.opt_string("group_instance_id", None);
                if v >= 5 {
                    m.reason = k.opt_string("reason", None);
                }
                m
            })
            .collect();
        r.members = k.dup("members", members);
    }
    r
}

fn offset_commit(cx: &Context, v: i16, k: &mut Knobs) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default();
    if k.rng().chance(1, 2) {
        // A member's commit (real or made up).
        (r.group_id, r.member_id, r.generation_id_or_member_epoch) = membership(cx, k);
    } else {
        // Generation -1 and no member: a standalone commit, which an
        // empty group accepts.
        r.group_id = group(k);
        r.generation_id_or_member_epoch = k.i32("generation_id", -1);
        r.member_id = k.string("member_id", "");
    }
    if v >= 7 {
        r.group_instance_id = k.opt_string("group_instance_id", None);
    }
    if (2..=4).contains(&v) {
        r.retention_time_ms = k.i64("retention_time_ms", -1);
    }
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut ct = OffsetCommitRequestTopic::default();
            ct.name = k.topic("topic", &t.name);
            let np = k.rng().below(3) as usize + 1;
            let np = k.count("partitions", np);
            let parts = (0..np)
                .map(|_| {
                    let mut p = OffsetCommitRequestPartition::default();
                    p.partition_index = partition(k);
                    let offset = k.rng().below(100) as i64;
                    p.committed_offset = k.i64("committed_offset", offset);
                    if v >= 6 {
                        p.committed_leader_epoch = k.i32("committed_leader_epoch", -1);
                    }
                    p.committed_metadata = k.opt_string("committed_metadata", Some(""));
                    p
                })
                .collect();
            ct.partitions = k.dup("partitions", parts);
            ct
        })
        .collect();
    r.topics = k.dup("topics", topics);
    r
}

fn offset_fetch(cx: &Context, v: i16, k: &mut Knobs) -> OffsetFetchRequest {
    let mut r = OffsetFetchRequest::default();
    let all = v >= 2 && k.rng().chance(1, 4);
    if v <= 7 {
        r.group_id = group(k);
        if all {
            r.topics = None;
        } else {
            let n = k.rng().below(2) as usize + 1;
            let n = k.count("topics", n);
            let topics = (0..n)
                .map(|_| {
                    let t = topic(cx, k);
                    let mut ft = OffsetFetchRequestTopic::default();
                    ft.name = k.topic("topic", &t.name);
                    let ps = vec![partition(k), partition(k)];
                    ft.partition_indexes = k.dup("partition_indexes", ps);
                    ft
                })
                .collect();
            r.topics = Some(k.dup("topics", topics));
        }
    } else {
        let n = k.rng().below(2) as usize + 1;
        let n = k.count("groups", n);
        let groups = (0..n)
            .map(|_| {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = group(k);
                if v >= 9 {
                    g.member_id = k.opt_string("member_id", None);
                    g.member_epoch = k.i32("member_epoch", -1);
                }
                if !all {
                    let t = topic(cx, k);
                    let mut ft = OffsetFetchRequestTopics::default();
                    ft.name = k.topic("topic", &t.name);
                    let ps = vec![partition(k), partition(k)];
                    ft.partition_indexes = k.dup("partition_indexes", ps);
                    g.topics = Some(vec![ft]);
                } else {
                    g.topics = None;
                }
                g
            })
            .collect();
        r.groups = k.dup("groups", groups);
    }
    if v >= 7 {
        r.require_stable = k.bool("require_stable", false);
    }
    r
}

fn list_groups(v: i16, k: &mut Knobs) -> ListGroupsRequest {
    let mut r = ListGroupsRequest::default();
    if v >= 4 && k.rng().chance(1, 2) {
        r.states_filter = vec![k.string("states_filter", "Stable"), s("Empty")];
    }
    if v >= 5 && k.rng().chance(1, 2) {
        r.types_filter = vec![k.string("types_filter", "classic")];
    }
    r
}

fn describe_groups(v: i16, k: &mut Knobs) -> DescribeGroupsRequest {
    let mut r = DescribeGroupsRequest::default();
    let n = k.rng().below(3) as usize + 1;
    let n = k.count("groups", n);
    let groups = (0..n).map(|_| group(k)).collect();
    r.groups = k.dup("groups", groups);
    if v >= 3 {
        r.include_authorized_operations = k.bool("include_authorized_operations", false);
    }
    r
}

fn delete_groups(k: &mut Knobs) -> DeleteGroupsRequest {
    let mut r = DeleteGroupsRequest::default();
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("groups", n);
    let groups = (0..n).map(|_| group(k)).collect();
    r.groups_names = k.dup("groups", groups);
    r
}

fn offset_delete(cx: &Context, k: &mut Knobs) -> OffsetDeleteRequest {
    let mut r = OffsetDeleteRequest::default();
    r.group_id = group(k);
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut dt = OffsetDeleteRequestTopic::default();
            dt.name = k.topic("topic", &t.name);
            let parts = (0..2)
                .map(|_| {
                    let mut p = OffsetDeleteRequestPartition::default();
                    p.partition_index = partition(k);
                    p
                })
                .collect();
            dt.partitions = k.dup("partitions", parts);
            dt
        })
        .collect();
    r.topics = k.dup("topics", topics);
    r
}

/// One of a few transactional ids.
fn txn_name(k: &mut Knobs) -> String {
    format!("fz-txn{}", k.rng().below(8))
}

fn transactional_id(k: &mut Knobs) -> TransactionalId {
    let name = txn_name(k);
    TransactionalId(k.string("transactional_id", &name))
}

/// The run's producer id and epoch (the broker may know them under a
/// transactional id, or not).
fn producer(cx: &Context, k: &mut Knobs) -> (ProducerId, i16) {
    (
        ProducerId(k.i64("producer_id", cx.producer_id)),
        k.i16("producer_epoch", cx.producer_epoch),
    )
}

fn add_partitions_to_txn(cx: &Context, k: &mut Knobs) -> AddPartitionsToTxnRequest {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let mut r = AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = transactional_id(k);
    (r.v3_and_below_producer_id, r.v3_and_below_producer_epoch) = producer(cx, k);
    let n = k.rng().below(2) as usize + 1;
    let n = k.count("topics", n);
    let topics = (0..n)
        .map(|_| {
            let t = topic(cx, k);
            let mut at = AddPartitionsToTxnTopic::default();
            at.name = k.topic("topic", &t.name);
            let ps = vec![partition(k), partition(k)];
            at.partitions = k.dup("partitions", ps);
            at
        })
        .collect();
    r.v3_and_below_topics = k.dup("topics", topics);
    r
}

fn add_offsets_to_txn(cx: &Context, k: &mut Knobs) -> AddOffsetsToTxnRequest {
    let mut r = AddOffsetsToTxnRequest::default();
    r.transactional_id = transactional_id(k);
    (r.producer_id, r.producer_epoch) = producer(cx, k);
    r.group_id = group(k);
    r
}

fn end_txn(cx: &Context, k: &mut Knobs) -> EndTxnRequest {
    let mut r = EndTxnRequest::default();
    r.transactional_id = transactional_id(k);
    (r.producer_id, r.producer_epoch) = producer(cx, k);
    let commit = k.rng().chance(1, 2);
    r.committed = k.bool("committed", commit);
    r
}

fn txn_offset_commit(cx: &Context, v: i16, k: &mut Knobs) -> TxnOffsetCommitRequest {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let mut r = TxnOffsetCommitRequest::default();
    r.transactional_id = transactional_id(k);
    (r.producer_id, r.producer_epoch) = producer(cx, k);
    r.group_id = group(k);
    if v >= 3 {
        r.generation_id = k.i32("generation_id", -1);
        r.member_id = k.string("member_id", "");
        r.group_instance_id = k.opt_string("group_instance_id", None);
    }
    let t = topic(cx, k);
    let mut ct = TxnOffsetCommitRequestTopic::default();
    ct.name = k.topic("topic", &t.name);
    let parts = (0..2)
        .map(|_| {
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = partition(k);
            let offset = k.rng().below(100) as i64;
            p.committed_offset = k.i64("committed_offset", offset);
            if v >= 2 {
                p.committed_leader_epoch = k.i32("committed_leader_epoch", -1);
            }
            p.committed_metadata = k.opt_string("committed_metadata", Some(""));
            p
        })
        .collect();
    ct.partitions = k.dup("partitions", parts);
    r.topics = k.dup("topics", vec![ct]);
    r
}

fn describe_transactions(k: &mut Knobs) -> DescribeTransactionsRequest {
    let mut r = DescribeTransactionsRequest::default();
    let n = k.rng().below(3) as usize + 1;
    let n = k.count("transactional_ids", n);
    let ids = (0..n).map(|_| transactional_id(k)).collect();
    r.transactional_ids = k.dup("transactional_ids", ids);
    r
}

fn list_transactions(cx: &Context, v: i16, k: &mut Knobs) -> ListTransactionsRequest {
    let mut r = ListTransactionsRequest::default();
    if k.rng().chance(1, 2) {
        r.state_filters = vec![k.string("state_filters", "Ongoing"), s("CompleteCommit")];
    }
    if k.rng().chance(1, 2) {
        r.producer_id_filters = vec![ProducerId(k.i64("producer_id_filters", cx.producer_id))];
    }
    if v >= 1 {
        r.duration_filter = k.i64("duration_filter", -1);
    }
    r
}

fn describe_producers(cx: &Context, k: &mut Knobs) -> DescribeProducersRequest {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let mut r = DescribeProducersRequest::default();
    let t = topic(cx, k);
    let mut dt = TopicRequest::default();
    dt.name = k.topic("topic", &t.name);
    let ps = vec![partition(k), partition(k)];
    dt.partition_indexes = k.dup("partition_indexes", ps);
    r.topics = k.dup("topics", vec![dt]);
    r
}

/// A SCRAM user name: a few fixed ones, so describes find upserts.
fn scram_user(k: &mut Knobs) -> StrBytes {
    let n = k.rng().below(4);
    k.string("user", &format!("fuzz-user-{n}"))
}

fn sasl_handshake(k: &mut Knobs) -> SaslHandshakeRequest {
    let mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"];
    let m = mechanisms[k.rng().below(mechanisms.len() as u64) as usize];
    SaslHandshakeRequest::default().with_mechanism(k.string("mechanism", m))
}

fn sasl_authenticate(k: &mut Knobs) -> SaslAuthenticateRequest {
    let tokens: [&[u8]; 3] = [b"\0fuzz-user-0\0password", b"n,,n=fuzz-user-1,r=nonce", b""];
    let t = tokens[k.rng().below(tokens.len() as u64) as usize];
    SaslAuthenticateRequest::default().with_auth_bytes(k.bytes("auth_bytes", t))
}

fn describe_user_scram_credentials(k: &mut Knobs) -> DescribeUserScramCredentialsRequest {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    let mut r = DescribeUserScramCredentialsRequest::default();
    if k.rng().chance(2, 3) {
        let users = vec![UserName::default().with_name(scram_user(k))];
        r.users = Some(k.dup("users", users));
    }
    r
}

fn alter_user_scram_credentials(k: &mut Knobs) -> AlterUserScramCredentialsRequest {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    let mut r = AlterUserScramCredentialsRequest::default();
    let valid = 1 + k.rng().below(2) as i8;
    let mechanism = k.i8("mechanism", valid);
    if k.rng().chance(1, 2) {
        let d = ScramCredentialDeletion::default()
            .with_name(scram_user(k))
            .with_mechanism(mechanism);
        r.deletions = k.dup("deletions", vec![d]);
    } else {
        let salted = vec![7u8; if mechanism == 2 { 64 } else { 32 }];
        let u = ScramCredentialUpsertion::default()
            .with_name(scram_user(k))
            .with_mechanism(mechanism)
            .with_iterations(k.i32("iterations", 4096))
            .with_salt(k.bytes("salt", b"fuzz-salt"))
            .with_salted_password(k.bytes("salted_password", &salted));
        r.upsertions = k.dup("upsertions", vec![u]);
    }
    r
}

/// An ACL's resource: a topic, group or the cluster, by a known name.
fn acl_resource(cx: &Context, k: &mut Knobs) -> (i8, StrBytes, i8) {
    let (rt, name) = match k.rng().below(3) {
        0 => {
            let name = topic(cx, k).name.clone();
            (2, k.string("topic", &name))
        }
        1 => (3, k.string("group", "fuzz-group")),
        _ => (4, k.string("cluster", "kafka-cluster")),
    };
    let pattern = 3 + k.rng().below(2) as i8;
    (
        k.i8("resource_type", rt),
        name,
        k.i8("pattern_type", pattern),
    )
}

fn create_acls(cx: &Context, k: &mut Knobs) -> CreateAclsRequest {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    let (rt, name, pattern) = acl_resource(cx, k);
    let operation = 2 + k.rng().below(11) as i8;
    let permission = 2 + k.rng().below(2) as i8;
    let permission = k.i8("permission_type", permission);
    let c = AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(name)
        .with_resource_pattern_type(pattern)
        .with_principal({
            let n = k.rng().below(4);
            k.string("principal", &format!("User:fuzz-user-{n}"))
        })
        .with_host(k.string("host", "*"))
        .with_operation(k.i8("operation", operation))
        .with_permission_type(permission);
    CreateAclsRequest::default().with_creations(k.dup("creations", vec![c]))
}

fn describe_acls(cx: &Context, k: &mut Knobs) -> DescribeAclsRequest {
    let (rt, name, pattern) = acl_resource(cx, k);
    let mut r = DescribeAclsRequest::default()
        .with_resource_type_filter(if k.rng().chance(1, 2) { 1 } else { rt })
        .with_pattern_type_filter(if k.rng().chance(1, 2) { 1 } else { pattern })
        .with_operation(k.i8("operation", 1))
        .with_permission_type(k.i8("permission_type", 1))
        .with_principal_filter(None)
        .with_host_filter(None);
    r.resource_name_filter = k.rng().chance(1, 2).then_some(name);
    r
}

fn delete_acls(cx: &Context, k: &mut Knobs) -> DeleteAclsRequest {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    let (rt, name, pattern) = acl_resource(cx, k);
    let f = DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(Some(name))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(k.i8("operation", 1))
        .with_permission_type(k.i8("permission_type", 1));
    DeleteAclsRequest::default().with_filters(k.dup("filters", vec![f]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::versions::SUPPORTED_APIS;

    /// Decodes `bytes` as `api` at `version` the way the broker does.
    fn decodes(api: ApiKey, version: i16, bytes: &[u8]) -> Result<(), String> {
        let header = sluice_protocol::header::RequestHeader {
            api_key: api as i16,
            api_version: version,
            correlation_id: 1,
            client_id: None,
        };
        sluice_protocol::Request::decode(&header, Bytes::copy_from_slice(bytes))
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn every_valid_request_encodes_and_decodes_at_every_supported_version() {
        let cx = Context::offline();
        for range in SUPPORTED_APIS {
            for v in range.min..=range.max {
                for i in 0..50 {
                    let mut rng = Rng::for_request(1, i);
                    let body = build_once(range.api_key, v, &cx, &mut rng, false, &[], i)
                        .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", range.api_key));
                    assert!(body.classes.is_empty());
                    decodes(range.api_key, v, &body.bytes)
                        .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", range.api_key));
                }
            }
        }
    }

    #[test]
    fn field_mutation_mostly_encodes() {
        let cx = Context::offline();
        let (mut mutated, mut total) = (0, 0);
        for range in SUPPORTED_APIS {
            for v in range.min..=range.max {
                for i in 0..50 {
                    let mut rng = Rng::for_request(2, i);
                    let body = build(range.api_key, v, &cx, &mut rng, true, &[], i).unwrap();
                    total += 1;
                    if !body.classes.is_empty() {
                        mutated += 1;
                    }
                }
            }
        }
        assert!(mutated * 3 > total, "{mutated} of {total} mutated");
    }
}
