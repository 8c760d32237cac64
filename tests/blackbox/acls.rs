//! Authorization against the real broker (`--authorizer acl`): a principal
//! without ACLs is refused produce, fetch, group join and topic creation
//! with Kafka's codes, then allowed after CreateAcls (literal and prefixed
//! ACLs); Metadata leaves out the topics it may not describe; DeleteAcls
//! takes a right back; the ACLs survive `kill -9`; and librdkafka produces
//! and consumes in a group once allowed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use sluice_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use sluice_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use sluice_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use sluice_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use sluice_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use sluice_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateTopicsRequest, DeleteAclsRequest, DescribeAclsRequest, GroupId,
    JoinGroupRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::records::Compression;

use crate::harness::{block_on, Broker, DataDir};
use crate::raw::{batch, fetch_request, produce_request, topic_name, RawClient, Rec, FETCH_V};
use crate::security::bootstrap_user;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;

// Kafka's ACL codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A raw connection authenticated as `user` with SASL PLAIN.
fn login(broker: &Broker, user: &str, password: &str) -> RawClient {
    let mut c = RawClient::connect(broker.listener("SASL_PLAINTEXT"));
    let r = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
    );
    assert_eq!(r.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let r = c.call(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    );
    assert_eq!(r.error_code, 0, "login of {user}");
    c
}

fn acl(rt: i8, pattern: i8, name: &str, who: &str, operation: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(who))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW)
}

fn create_acls(c: &mut RawClient, acls: Vec<AclCreation>) -> Vec<i16> {
    let r = c.call(3, &CreateAclsRequest::default().with_creations(acls));
    r.results.iter().map(|r| r.error_code).collect()
}

/// DescribeAcls of every ACL: (error code, [(resource name, principal, operation)]).
fn describe_acls(c: &mut RawClient) -> (i16, Vec<(String, String, i8)>) {
    let r = c.call(
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(ANY)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(ANY)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(ANY)
            .with_permission_type(ANY),
    );
    let acls = r
        .resources
        .iter()
        .flat_map(|res| {
            res.acls.iter().map(|a| {
                (
                    res.resource_name.to_string(),
                    a.principal.to_string(),
                    a.operation,
                )
            })
        })
        .collect();
    (r.error_code, acls)
}

fn produce_code(c: &mut RawClient, topic: &str) -> i16 {
    let b = batch(
        &[Rec {
            key: None,
            value: Some(b"v"),
            timestamp: 1,
        }],
        Compression::None,
    );
    let r = c.call(9, &produce_request(topic, 0, b, -1));
    r.responses[0].partition_responses[0].error_code
}

fn fetch_code(c: &mut RawClient, topic: &str) -> i16 {
    let r = c.call(FETCH_V, &fetch_request(topic, 0, 0));
    r.responses[0].partitions[0].error_code
}

fn join_code(c: &mut RawClient, group: &str) -> i16 {
    let r = c.call(
        5,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))]),
    );
    r.error_code
}

fn create_topic_code(c: &mut RawClient, topic: &str) -> i16 {
    let r = c.call(
        5,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
    );
    r.topics[0].error_code
}

/// Metadata of every topic: (name, error code, authorized operations).
fn metadata(c: &mut RawClient, topics: Option<&[&str]>) -> Vec<(String, i16, i32)> {
    let r = c.call(
        10,
        &MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false)
            .with_include_topic_authorized_operations(true),
    );
    let mut topics: Vec<(String, i16, i32)> = r
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (name, t.error_code, t.topic_authorized_operations)
        })
        .collect();
    topics.sort();
    topics
}

fn client(broker: &Broker, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.listener("SASL_PLAINTEXT"))
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "10000");
    c
}

#[test]
fn a_principal_without_acls_is_refused_until_acls_allow_it() {
    let dir = DataDir::new("acls");
    bootstrap_user(dir.path(), "admin", "admin-secret");
    bootstrap_user(dir.path(), "bob", "bob-secret");
    let mut broker = Broker::start_listeners(
        dir.path(),
        2,
        &["SASL_PLAINTEXT"],
        &["--authorizer", "acl", "--super-users", "User:admin"],
    );
    let mut admin = login(&broker, "admin", "admin-secret");
    for t in ["orders", "secret"] {
        assert_eq!(create_topic_code(&mut admin, t), 0, "admin creates {t}");
    }
    assert_eq!(produce_code(&mut admin, "orders"), 0);

    // Without ACLs bob may do nothing, and is told so with Kafka's codes.
    let mut bob = login(&broker, "bob", "bob-secret");
    assert_eq!(produce_code(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch_code(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        join_code(&mut bob, "bobs-group"),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(
        create_topic_code(&mut bob, "bob-new"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(metadata(&mut bob, None), vec![], "bob sees no topic");
    assert_eq!(
        metadata(&mut bob, Some(&["orders"])),
        vec![("orders".into(), TOPIC_AUTHORIZATION_FAILED, i32::MIN)]
    );
    assert_eq!(describe_acls(&mut bob).0, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        create_acls(
            &mut bob,
            vec![acl(TOPIC, LITERAL, "orders", "User:bob", ALL)]
        ),
        vec![CLUSTER_AUTHORIZATION_FAILED],
        "bob cannot grant himself rights"
    );

    // The admin grants: literal topic rights, a group, and prefixed ones.
    let granted = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, LITERAL, "orders", "User:bob", WRITE),
            acl(TOPIC, LITERAL, "orders", "User:bob", READ),
            acl(GROUP, LITERAL, "bobs-group", "User:bob", READ),
            acl(TOPIC, PREFIXED, "bob-", "User:bob", CREATE),
            acl(TOPIC, PREFIXED, "logs-", "User:bob", ALL),
            // Refused: not TYPE:NAME, and a cluster that is not Kafka's.
            acl(TOPIC, LITERAL, "x", "bob", READ),
            acl(CLUSTER, LITERAL, "other", "User:bob", DESCRIBE),
        ],
    );
    assert_eq!(
        granted,
        vec![0, 0, 0, 0, 0, INVALID_REQUEST, INVALID_REQUEST]
    );

    assert_eq!(produce_code(&mut bob, "orders"), 0);
    assert_eq!(fetch_code(&mut bob, "orders"), 0);
    assert_eq!(
        join_code(&mut bob, "bobs-group"),
        79,
        "MEMBER_ID_REQUIRED: let in"
    );
    assert_eq!(
        join_code(&mut bob, "other-group"),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(create_topic_code(&mut bob, "bob-new"), 0, "prefixed CREATE");
    assert_eq!(
        create_topic_code(&mut bob, "other-new"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(produce_code(&mut bob, "secret"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(create_topic_code(&mut bob, "logs-app"), 0, "prefixed ALL");
    assert_eq!(produce_code(&mut bob, "logs-app"), 0);
    // Metadata lists what bob may describe (WRITE and READ imply DESCRIBE;
    // CREATE alone does not), with his operations (KIP-430).
    let bit = |ops: &[i8]| ops.iter().fold(0, |b, o| b | 1 << o);
    let seen = metadata(&mut bob, None);
    let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["logs-app", "orders"]);
    assert_eq!(
        seen[1].2,
        bit(&[READ, WRITE, DESCRIBE]),
        "bob's operations on orders"
    );
    assert_eq!(
        seen[0].2.count_ones(),
        8,
        "ALL on logs-: every topic operation"
    );

    // librdkafka, as bob: produce and consume in his group.
    let producer: FutureProducer = client(&broker, "bob", "bob-secret").create().unwrap();
    let sent = block_on(
        producer.send(
            FutureRecord::<(), str>::to("orders")
                .partition(0)
                .payload("from librdkafka"),
            Duration::from_secs(10),
        ),
    );
    assert!(sent.is_ok(), "{sent:?}\n{}", broker.log());
    let consumer: BaseConsumer = client(&broker, "bob", "bob-secret")
        .set("group.id", "bobs-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while Instant::now() < deadline && got.is_none() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.payload() == Some(b"from librdkafka") => got = Some(m.offset()),
            Some(Err(e)) => panic!("bob's consumer: {e}\n{}", broker.log()),
            _ => {}
        }
    }
    assert!(got.is_some(), "bob's group consumer read nothing");
    drop(consumer);

    // DeleteAcls takes READ back; the ACLs are durable.
    let r = admin.call(
        3,
        &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(Some(s("User:bob")))
            .with_host_filter(None)
            .with_operation(READ)
            .with_permission_type(ANY)]),
    );
    assert_eq!(r.filter_results[0].error_code, 0);
    assert_eq!(r.filter_results[0].matching_acls.len(), 1);
    assert_eq!(fetch_code(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);
    let (code, before) = describe_acls(&mut admin);
    assert_eq!((code, before.len()), (0, 4));
    broker.kill9();
    broker.restart();
    let mut admin = login(&broker, "admin", "admin-secret");
    assert_eq!(describe_acls(&mut admin), (0, before), "ACLs after kill -9");
    let mut bob = login(&broker, "bob", "bob-secret");
    assert_eq!(produce_code(&mut bob, "orders"), 0);
    assert_eq!(fetch_code(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);
}

/// Independent clients: `tests/clients/acls_clients.py` manages ACLs with
/// confluent-kafka's admin API and is refused, then allowed, as bob through
/// kafka-python.
#[test]
fn independent_clients_manage_acls_and_are_held_to_them() {
    let dir = DataDir::new("acls-python");
    bootstrap_user(dir.path(), "alice", "alice-secret");
    let broker = Broker::start_listeners(
        dir.path(),
        2,
        &["SASL_PLAINTEXT"],
        &["--authorizer", "acl", "--super-users", "User:alice"],
    );
    crate::admin_clients::run_client_script(
        &broker,
        "acls_clients.py",
        &[broker.listener("SASL_PLAINTEXT")],
        "acls clients: ok",
    );
}
