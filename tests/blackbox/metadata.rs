//! Topic metadata is durable like data: partitions added with
//! CreatePartitions survive kill -9 with their messages, and a deleted
//! topic's data never comes back, neither when the name is reused nor
//! after a crash and recovery replays the WAL that still holds it.

use std::time::Duration;

use crate::harness::{
    consume_to_end, consumer, create_partitions, create_topic, delete_topic, partition_count,
    produce_range, producer, Broker, DataDir,
};
use crate::verify::check_complete;

#[test]
fn created_partitions_survive_kill9() {
    const TOPIC: &str = "grow";
    let dir = DataDir::new("grow");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 2, &[]);
    create_partitions(&broker, TOPIC, 5);
    assert_eq!(partition_count(&consumer(&broker, &[]), TOPIC), 5);

    let producer = producer(&broker, &[]);
    let produced = produce_range(&producer, TOPIC, 5, 0..2_000, 100);
    assert!(producer.flush(Duration::from_secs(30)), "reports");
    let acked = producer.acked();
    drop(producer);

    broker.kill9();
    broker.restart();
    assert_eq!(
        partition_count(&consumer(&broker, &[]), TOPIC),
        5,
        "partition count after recovery"
    );
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    check_complete("after kill -9", &consumed, &produced, &acked);
}

#[test]
fn deleted_topic_stays_deleted_after_recovery() {
    const TOPIC: &str = "reborn";
    let dir = DataDir::new("reborn");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 2, &[]);
    let old = producer(&broker, &[]);
    // Ids 1_000_000.. for the old incarnation: any of them in the new
    // topic is resurrected data (check_complete reports it as never
    // produced).
    produce_range(&old, TOPIC, 2, 1_000_000..1_000_500, 100);
    assert!(old.flush(Duration::from_secs(30)), "reports");
    assert_eq!(old.acked().len(), 500, "{:?}", old.failures().first());
    drop(old);

    delete_topic(&broker, TOPIC);
    create_topic(&broker, TOPIC, 2, &[]);
    let new = producer(&broker, &[]);
    let produced = produce_range(&new, TOPIC, 2, 0..300, 100);
    assert!(new.flush(Duration::from_secs(30)), "reports");
    let acked = new.acked();
    drop(new);

    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    check_complete("recreated topic, live", &consumed, &produced, &acked);
    broker.kill9();
    broker.restart();
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    check_complete(
        "recreated topic, after kill -9",
        &consumed,
        &produced,
        &acked,
    );
}

/// KIP-430 without an authorizer: asked, Metadata (topics; the cluster up
/// to v10) and DescribeGroups list every operation of the resource type,
/// as Kafka does; not asked, the field says so (`i32::MIN`).
#[test]
fn authorized_operations_are_all_of_the_type_when_asked() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    let dir = crate::harness::DataDir::new("kip430");
    let broker = crate::harness::Broker::start(dir.path(), 1, &[]);
    crate::harness::create_topic(&broker, "ops", 1, &[]);
    let mut raw = crate::raw::RawClient::connect(broker.addr());
    let ask = |topics: bool, cluster: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(crate::raw::topic_name("ops")))
            ]))
            .with_include_topic_authorized_operations(topics)
            .with_include_cluster_authorized_operations(cluster)
    };
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
    let topic_ops = [3, 4, 5, 6, 7, 8, 10, 11].iter().fold(0, |b, c| b | 1 << c);
    // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
    let cluster_ops = [5, 7, 8, 9, 10, 11, 12].iter().fold(0, |b, c| b | 1 << c);
    let asked = raw.call(10, &ask(true, true));
    assert_eq!(asked.topics[0].topic_authorized_operations, topic_ops);
    assert_eq!(asked.cluster_authorized_operations, cluster_ops);
    let not_asked = raw.call(10, &ask(false, false));
    assert_eq!(not_asked.topics[0].topic_authorized_operations, i32::MIN);
    assert_eq!(not_asked.cluster_authorized_operations, i32::MIN);
    let groups = raw.call(
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("g"))])
            .with_include_authorized_operations(true),
    );
    // READ DELETE DESCRIBE
    assert_eq!(
        groups.groups[0].authorized_operations,
        1 << 3 | 1 << 6 | 1 << 8
    );
}
