//! Crash-only (DESIGN.md, Shape): a panic, a dead shard or a poisoned WAL
//! ends the whole process with a non-zero status, never a half-alive
//! broker; a restart right after `kill -9` always starts; a second broker
//! on the same data directory is refused; and the request that used to
//! kill a shard (CreatePartitions with a negative count) gets an error.
//!
//! Faults are injected through `SLUICE_FAIL_POINT` (see `crash.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest};

use crate::harness::{
    consume_to_end, create_topic, produce_range, producer, wait_until, Broker, DataDir,
};
use crate::raw::{topic_name, RawClient, NONE};
use crate::verify::check_acked;

const INVALID_PARTITIONS: i16 = 37;

/// Starts a broker with a fail point and waits for it to end on its own.
fn exit_after_fail_point(name: &str, fail_point: &str) -> (std::process::ExitStatus, String) {
    let dir = DataDir::new(name);
    let mut broker =
        Broker::try_start_env(dir.path(), 2, &[], &[("SLUICE_FAIL_POINT", fail_point)])
            .unwrap_or_else(|e| panic!("broker did not start: {e:?}"));
    let status = broker
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "{fail_point}: the broker is still running 20 s later (half alive)\n{}",
                broker.log()
            )
        });
    (status, broker.log())
}

#[test]
fn a_panic_on_one_shard_ends_the_process() {
    let (status, log) = exit_after_fail_point("panic-shard", "shard-panic:1:300");
    assert_eq!(status.code(), Some(101), "exit status {status:?}\n{log}");
    assert!(
        log.contains("a panic stops the broker"),
        "no clear line:\n{log}"
    );
}

#[test]
fn a_failed_wal_ends_the_process() {
    let (status, log) = exit_after_fail_point("wal-fail", "wal-fail:0:300");
    assert_eq!(status.code(), Some(70), "exit status {status:?}\n{log}");
    assert!(log.contains("the WAL failed"), "no clear line:\n{log}");
}

/// A metadata file renamed into place whose directory could not be synced
/// may not survive a power cut, while memory already acts on it: the
/// process stops, and the next start reads what the disk kept. Before, the
/// broker went on with memory and disk disagreeing.
#[test]
fn a_failed_directory_sync_ends_the_process_and_the_restart_is_consistent() {
    let dir = DataDir::new("dir-sync-fail");
    let mut broker = Broker::try_start_env(
        dir.path(),
        2,
        &[],
        &[("SLUICE_FAIL_POINT", "dir-sync-fail:0:0")],
    )
    .unwrap_or_else(|e| panic!("broker did not start: {e:?}"));
    std::thread::sleep(Duration::from_millis(200));
    let mut client = RawClient::connect(broker.addr());
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("unsynced"))
            .with_num_partitions(2)
            .with_replication_factor(1)])
        .with_timeout_ms(5_000);
    let _ = client.send(5, &request);
    let status = broker
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "the broker is still running after a failed directory sync\n{}",
                broker.log()
            )
        });
    let log = broker.log();
    assert_eq!(status.code(), Some(70), "exit status {status:?}\n{log}");
    assert!(
        log.contains("syncing the directory of"),
        "no clear line:\n{log}"
    );
    drop(broker);
    // The restart serves whatever the disk kept, and works.
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "after", 2, &[]);
    let versions = RawClient::connect(broker.addr()).call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE);
}

#[test]
fn create_partitions_with_a_negative_count_is_refused() {
    let dir = DataDir::new("negative-partitions");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "grow", 2, &[]);
    let mut client = RawClient::connect(broker.addr());
    for count in [-1, 0, 1, i32::MIN, 100_001, i32::MAX] {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name("grow"))
                .with_count(count)])
            .with_timeout_ms(5_000);
        let response = client.call(3, &request);
        assert_eq!(
            response.results[0].error_code, INVALID_PARTITIONS,
            "count {count}: {response:?}"
        );
    }
    assert!(broker.is_running(), "{}", broker.log());
    // Shard 0 (the controller) still works.
    create_topic(&broker, "after", 3, &[]);
    let versions = RawClient::connect(broker.addr()).call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE);
}

#[test]
fn the_total_partition_count_is_capped() {
    let dir = DataDir::new("max-partitions");
    let broker = Broker::start(dir.path(), 2, &["--max-partitions", "10"]);
    create_topic(&broker, "eight", 8, &[]);
    let mut client = RawClient::connect(broker.addr());
    let grow = |count| {
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name("eight"))
                .with_count(count)])
            .with_timeout_ms(5_000)
    };
    assert_eq!(
        client.call(3, &grow(11)).results[0].error_code,
        INVALID_PARTITIONS
    );
    assert_eq!(client.call(3, &grow(10)).results[0].error_code, NONE);
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("one-more"))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(5_000);
    let response = client.call(5, &create);
    assert_eq!(
        response.topics[0].error_code, INVALID_PARTITIONS,
        "an eleventh partition was created: {response:?}"
    );
}

#[test]
fn a_second_broker_on_the_same_data_directory_is_refused() {
    let dir = DataDir::new("dir-lock");
    let _first = Broker::start(dir.path(), 1, &[]);
    let second = Broker::try_start(dir.path(), 1, &[]);
    let error = second
        .err()
        .expect("a second broker started on the same data directory");
    assert!(
        error.stderr.contains("in use by another running broker"),
        "unclear error: {}",
        error.stderr
    );
}

/// A supervisor restarts a crashed broker at once; the dead process's
/// listening sockets are still there for some milliseconds. Twenty kills
/// in the middle of producing, each followed by an immediate restart:
/// every start succeeds and every acknowledged message is there.
#[test]
fn twenty_restarts_right_after_kill9() {
    const TOPIC: &str = "restarts";
    const PER_CYCLE: u64 = 1_000;
    let dir = DataDir::new("restart-at-once");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 3, &[]);
    let (mut produced, mut acked) = (BTreeMap::new(), BTreeMap::new());
    for cycle in 0..20 {
        let producer = producer(&broker, &[("linger.ms", "1")]);
        let ids = cycle * PER_CYCLE..(cycle + 1) * PER_CYCLE;
        produced.extend(produce_range(&producer, TOPIC, 3, ids, 100));
        wait_until(Duration::from_secs(20), || {
            producer.report_count() as u64 >= PER_CYCLE / 2
        });
        broker.kill9_at_once();
        producer.purge();
        assert!(
            producer.flush(Duration::from_secs(10)),
            "reports after purge"
        );
        acked.extend(producer.acked());
        if let Err(e) = broker.try_restart() {
            panic!(
                "cycle {cycle}: no start right after kill -9: {e:?}\n{}",
                broker.log()
            );
        }
    }
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_acked("after 20 immediate restarts", &consumed, &produced, &acked);
    assert!(
        acked.len() as u64 >= 20 * PER_CYCLE / 2,
        "premise: {} acked",
        acked.len()
    );
}
