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
