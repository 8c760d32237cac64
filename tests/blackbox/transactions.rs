//! Transactions through librdkafka: commit and abort across partitions on
//! both shards, what read_committed and read_uncommitted consumers see
//! (and where an open transaction stops the first), zombie fencing, the
//! coordinator's timeout abort, and consume-transform-produce with
//! `send_offsets_to_transaction` under `kill -9` at random moments: the
//! output, read committed, holds every input record exactly once. The
//! same protocol through an independent client, kafka-python:
//! `tests/clients/transactions_kafka_python.py`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::{
    client_config, consume_to_end_with, create_topic, id_of, producer, seed, value_for, Broker,
    DataDir, Rng,
};

const T: Duration = Duration::from_secs(30);
const UNCOMMITTED: &[(&str, &str)] = &[("isolation.level", "read_uncommitted")];
const COMMITTED: &[(&str, &str)] = &[("isolation.level", "read_committed")];

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A transactional producer for `id`, its transactions initialised.
fn txn_producer(broker: &Broker, id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut config = client_config(
        broker,
        &[
            ("transactional.id", id),
            ("acks", "all"),
            ("linger.ms", "1"),
            ("reconnect.backoff.ms", "20"),
            ("reconnect.backoff.max.ms", "200"),
        ],
    );
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let p: TxnProducer = config.create().expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

/// Sends message `id` (key and value as [`value_for`]) to `partition`.
fn send(p: &TxnProducer, topic: &str, partition: i32, id: u64) {
    let value = value_for(id, 64);
    let key = id.to_string();
    p.send(
        BaseRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(key.as_bytes())
            .payload(&value[..]),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
}

/// Ids of the records of `topic`, read to its end, per partition in
/// offset order.
fn ids(broker: &Broker, topic: &str, isolation: &[(&str, &str)]) -> BTreeMap<i32, Vec<u64>> {
    let mut by_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for r in consume_to_end_with(broker, topic, isolation, T) {
        let id = id_of(r.value.as_deref().unwrap_or_default()).expect("a test value");
        by_partition.entry(r.partition).or_default().push(id);
    }
    by_partition
}

fn all_ids(by_partition: &BTreeMap<i32, Vec<u64>>) -> Vec<u64> {
    let mut all: Vec<u64> = by_partition.values().flatten().copied().collect();
    all.sort_unstable();
    all
}

#[test]
fn commits_and_aborts_across_shards_as_read_committed_and_uncommitted_see_them() {
    let dir = DataDir::new("txn-basic");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "tx", 4, &[]);
    let p = txn_producer(&broker, "basic", &[]);
    let batch = |from: u64, to: u64| {
        for id in from..to {
            send(&p, "tx", (id % 4) as i32, id);
        }
        p.flush(T).expect("flush");
    };
    p.begin_transaction().unwrap();
    batch(0, 40);
    p.commit_transaction(T).expect("commit");
    p.begin_transaction().unwrap();
    batch(1000, 1040);
    p.abort_transaction(T).expect("abort");
    p.begin_transaction().unwrap();
    batch(40, 80);
    p.commit_transaction(T).expect("commit");
    // An open transaction: its records are stored, and read_committed
    // stops where it starts.
    p.begin_transaction().unwrap();
    batch(2000, 2010);

    let committed = ids(&broker, "tx", COMMITTED);
    assert_eq!(all_ids(&committed), (0..80).collect::<Vec<_>>());
    for (partition, ids) in &committed {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} out of order: {ids:?}"
        );
    }
    let uncommitted = all_ids(&ids(&broker, "tx", UNCOMMITTED));
    let expected: Vec<u64> = (0..80).chain(1000..1040).chain(2000..2010).collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(uncommitted, expected_sorted);

    p.commit_transaction(T).expect("commit");
    let committed = all_ids(&ids(&broker, "tx", COMMITTED));
    assert_eq!(committed, (0..80).chain(2000..2010).collect::<Vec<_>>());

    // All of it, markers and the coordinator's decisions, survives kill -9.
    drop(p);
    broker.kill9();
    broker.restart();
    assert_eq!(all_ids(&ids(&broker, "tx", COMMITTED)), committed);
    assert_eq!(all_ids(&ids(&broker, "tx", UNCOMMITTED)), expected_sorted);
    let p = txn_producer(&broker, "basic", &[]);
    p.begin_transaction().unwrap();
    send(&p, "tx", 0, 3000);
    p.commit_transaction(T).expect("commit after a restart");
    assert!(all_ids(&ids(&broker, "tx", COMMITTED)).contains(&3000));

    // `sluice wal inspect --frames` shows the markers, the transactional
    // batches and the coordinator's records.
    broker.sigterm();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["wal", "inspect", "--frames"])
        .arg(dir.path())
        .output()
        .expect("run sluice wal inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "COMMIT marker of producer",
        "ABORT marker of producer",
        "transactional, producer",
        "transaction basic producer",
        "CompleteCommit",
    ] {
        assert!(text.contains(expected), "no '{expected}' in:\n{text}");
    }
}

#[test]
fn a_zombie_producer_is_fenced_and_its_transaction_aborted() {
    let dir = DataDir::new("txn-zombie");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "z", 2, &[]);
    let zombie = txn_producer(&broker, "fenced", &[]);
    zombie.begin_transaction().unwrap();
    send(&zombie, "z", 0, 1);
    send(&zombie, "z", 1, 2);
    zombie.flush(T).expect("flush");
    // The same transactional id again: the open transaction is aborted
    // and the first producer fenced.
    let successor = txn_producer(&broker, "fenced", &[]);
    send(&zombie, "z", 0, 3);
    let _ = zombie.flush(Duration::from_secs(5));
    let err = zombie
        .commit_transaction(T)
        .expect_err("the fenced producer must not commit");
    let fatal = match &err {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    };
    assert!(fatal, "fencing is fatal for the old producer: {err:?}");
    successor.begin_transaction().unwrap();
    send(&successor, "z", 1, 10);
    successor.commit_transaction(T).expect("commit");
    assert_eq!(all_ids(&ids(&broker, "z", COMMITTED)), [10]);
    let uncommitted = all_ids(&ids(&broker, "z", UNCOMMITTED));
    assert!(
        uncommitted.contains(&1) && uncommitted.contains(&2) && !uncommitted.contains(&3),
        "the zombie's records before fencing are stored (aborted), none after: {uncommitted:?}"
    );
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_never_visible() {
    let dir = DataDir::new("txn-timeout");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "slow", 2, &[]);
    let p = txn_producer(
        &broker,
        "slow",
        &[
            ("transaction.timeout.ms", "1500"),
            ("message.timeout.ms", "1500"),
        ],
    );
    p.begin_transaction().unwrap();
    for id in 0..6 {
        send(&p, "slow", (id % 2) as i32, id);
    }
    p.flush(T).expect("flush");
    // Nothing is visible while it is open, and the coordinator aborts it
    // after its timeout: read_committed reaches the end of the partitions.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ids(&broker, "slow", COMMITTED).is_empty());
    assert_eq!(
        all_ids(&ids(&broker, "slow", UNCOMMITTED)),
        (0..6).collect::<Vec<_>>()
    );
    assert!(
        p.commit_transaction(T).is_err(),
        "a transaction aborted for its timeout cannot be committed"
    );
    assert!(ids(&broker, "slow", COMMITTED).is_empty());
    assert!(
        broker.log().contains("transaction timed out"),
        "the abort is logged"
    );
}

/// The shard coordinating transactional id `id` (FNV-1a, as the broker
/// hashes it) of `shards`.
fn coordinator_shard(id: &str, shards: u64) -> u64 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    hash % shards
}

/// The process dies (as on `kill -9`) right after a commit or abort
/// decision is durable (stage 0), or after its markers too (stage 1):
/// after the restart the coordinator carries the decision out — the
/// records and the group's offsets become visible on commit, never on
/// abort — and the next producer of the id is served once it is done.
#[test]
fn a_decision_interrupted_by_a_crash_is_carried_out_after_restart() {
    for (stage, commit) in [(0, true), (0, false), (1, true), (1, false)] {
        let case = format!("stage {stage}, commit {commit}");
        let dir = DataDir::new("txn-decided");
        let id = format!("decided-{stage}-{commit}");
        let fail_point = format!("txn-decided-exit:{}:{stage}", coordinator_shard(&id, 2));
        let mut broker =
            Broker::try_start_env(dir.path(), 2, &[], &[("SLUICE_FAIL_POINT", &fail_point)])
                .expect("broker starts");
        create_topic(&broker, "d", 4, &[]);
        let p = txn_producer(&broker, &id, &[]);
        let group: BaseConsumer = client_config(&broker, &[("group.id", "dg")])
            .create()
            .expect("consumer");
        p.begin_transaction().unwrap();
        for i in 0..8 {
            send(&p, "d", i % 4, i as u64);
        }
        p.flush(T).expect("flush");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("d", 0, Offset::Offset(5))
            .unwrap();
        p.send_offsets_to_transaction(&offsets, &group.group_metadata().unwrap(), T)
            .expect("send offsets");
        let ended = if commit {
            p.commit_transaction(Duration::from_secs(3))
        } else {
            p.abort_transaction(Duration::from_secs(3))
        };
        assert!(ended.is_err(), "{case}: the broker died before answering");
        let status = broker.wait_exit(Duration::from_secs(10)).expect("exited");
        assert_eq!(
            status.code(),
            Some(137),
            "{case}: {}",
            broker.last_run_log()
        );
        drop(p);
        broker.clear_env();
        broker.kill9();
        broker.restart();
        // The next producer of the id waits until the decision is carried out.
        let next = txn_producer(&broker, &id, &[]);
        let committed = all_ids(&ids(&broker, "d", COMMITTED));
        let expected: Vec<u64> = if commit { (0..8).collect() } else { vec![] };
        assert_eq!(committed, expected, "{case}");
        assert_eq!(
            all_ids(&ids(&broker, "d", UNCOMMITTED)),
            (0..8).collect::<Vec<u64>>(),
            "{case}"
        );
        let mut asked = TopicPartitionList::new();
        asked.add_partition("d", 0);
        let found = group
            .committed_offsets(asked, T)
            .expect("committed offsets");
        let offset = found.find_partition("d", 0).map(|e| e.offset());
        let expected = if commit {
            Offset::Offset(5)
        } else {
            Offset::Invalid
        };
        assert_eq!(offset, Some(expected), "{case}: the group's offset");
        assert!(
            broker.log().contains("carrying out a transaction decision"),
            "{case}: the decision is resumed by the coordinator"
        );
        next.begin_transaction().unwrap();
        send(&next, "d", 0, 100);
        next.commit_transaction(T)
            .expect("the next transaction commits");
    }
}

/// A transactional id's limit: above `--transaction-max-timeout-ms` a
/// producer is refused (INVALID_TRANSACTION_TIMEOUT) at init.
#[test]
fn a_timeout_above_the_maximum_is_refused() {
    let dir = DataDir::new("txn-max-timeout");
    let broker = Broker::start(dir.path(), 1, &["--transaction-max-timeout-ms", "5000"]);
    let mut config = client_config(
        &broker,
        &[
            ("transactional.id", "greedy"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    config.set("message.timeout.ms", "60000");
    let p: TxnProducer = config.create().expect("producer");
    let err = p
        .init_transactions(Duration::from_secs(10))
        .expect_err("a timeout above the maximum");
    assert!(
        format!("{err:?}").contains("InvalidTransactionTimeout")
            || format!("{err}").to_lowercase().contains("timeout"),
        "{err:?}"
    );
}

/// What admin tools see (DescribeTransactions, ListTransactions,
/// DescribeProducers, over raw requests: librdkafka has none of them):
/// an open transaction with its partitions and where it starts on each,
/// and after the commit, none.
#[test]
fn admin_apis_show_open_transactions() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{
        DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
        TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    let dir = DataDir::new("txn-admin");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "adm", 2, &[]);
    let p = txn_producer(&broker, "watched", &[]);
    p.begin_transaction().unwrap();
    send(&p, "adm", 0, 1);
    send(&p, "adm", 1, 2);
    p.flush(T).expect("flush");

    let mut raw = crate::raw::RawClient::connect(broker.addr());
    let describe = |raw: &mut crate::raw::RawClient| {
        let ids = ["watched", "nobody"]
            .map(|id| TransactionalId(StrBytes::from_static_str(id)))
            .to_vec();
        raw.call(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(ids),
        )
        .transaction_states
    };
    let states = describe(&mut raw);
    assert_eq!(states[0].error_code, 0);
    assert_eq!(states[0].transaction_state.as_str(), "Ongoing");
    assert_eq!(states[0].transaction_timeout_ms, 60_000);
    assert!(states[0].transaction_start_time_ms > 0);
    assert_eq!(states[0].topics.len(), 1);
    assert_eq!(states[0].topics[0].partitions, [0, 1]);
    assert_eq!(states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
    let producer_id = states[0].producer_id;

    let listed = raw.call(
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![
                StrBytes::from_static_str("Ongoing"),
                StrBytes::from_static_str("Bogus"),
            ])
            .with_duration_filter(-1),
    );
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.transaction_states[0].producer_id, producer_id);
    assert_eq!(listed.unknown_state_filters.len(), 1);

    let producers = |raw: &mut crate::raw::RawClient| {
        let topic = TopicRequest::default()
            .with_name(crate::raw::topic_name("adm"))
            .with_partition_indexes(vec![0, 1]);
        raw.call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![topic]),
        )
        .topics
        .remove(0)
        .partitions
    };
    for partition in producers(&mut raw) {
        assert_eq!(partition.error_code, 0);
        let active = &partition.active_producers;
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].producer_id, producer_id);
        assert_eq!(active[0].current_txn_start_offset, 0);
    }

    p.commit_transaction(T).expect("commit");
    assert_eq!(
        describe(&mut raw)[0].transaction_state.as_str(),
        "CompleteCommit"
    );
    for partition in producers(&mut raw) {
        assert_eq!(partition.active_producers[0].current_txn_start_offset, -1);
    }
}

/// A group id longer than a 15-bit length can carry, sent in
/// TxnOffsetCommit or AddOffsetsToTxn, is refused (INVALID_GROUP_ID)
/// instead of creating a group that ListGroups v0-2 can then no longer
/// encode for anyone (found by the fuzzer: the connection of every
/// ListGroups was closed).
#[test]
fn overlong_group_ids_in_transactions_are_refused() {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, GroupId, ListGroupsRequest, ProducerId, TransactionalId,
        TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    let dir = DataDir::new("txn-long-group");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, "lg", 1, &[]);
    let long = GroupId(StrBytes::from_string("g".repeat(32_768)));
    let mut raw = crate::raw::RawClient::connect(broker.addr());
    let txn = TransactionalId(StrBytes::from_static_str("long-group"));
    let partition = TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1);
    let topic = TxnOffsetCommitRequestTopic::default()
        .with_name(crate::raw::topic_name("lg"))
        .with_partitions(vec![partition]);
    let commit = raw.call(
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(txn.clone())
            .with_group_id(long.clone())
            .with_producer_id(ProducerId(1))
            .with_generation_id(-1)
            .with_topics(vec![topic]),
    );
    assert_eq!(
        commit.topics[0].partitions[0].error_code, 24,
        "INVALID_GROUP_ID"
    );
    let add = raw.call(
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn)
            .with_producer_id(ProducerId(1))
            .with_group_id(long),
    );
    assert_eq!(add.error_code, 24, "INVALID_GROUP_ID");
    for version in 0..=2 {
        let listed = raw.call(version, &ListGroupsRequest::default());
        assert_eq!(listed.error_code, 0);
    }
}

/// Transactional ids cost memory for as long as the broker runs: past
/// `--max-transactional-ids` a new one is refused (and retried by the
/// client until its timeout), while known ones keep working.
#[test]
fn transactional_ids_are_bounded() {
    let dir = DataDir::new("txn-ids");
    let broker = Broker::start(dir.path(), 1, &["--max-transactional-ids", "2"]);
    create_topic(&broker, "ids", 1, &[]);
    let first = txn_producer(&broker, "one", &[]);
    let _second = txn_producer(&broker, "two", &[]);
    let third: TxnProducer = client_config(&broker, &[("transactional.id", "three")])
        .create()
        .expect("producer");
    assert!(third.init_transactions(Duration::from_secs(3)).is_err());
    assert!(broker.log().contains("transactional id refused"));
    first.begin_transaction().unwrap();
    send(&first, "ids", 0, 1);
    first
        .commit_transaction(T)
        .expect("a known id still commits");
}

/// The consume-transform-produce loop of one application instance.
struct Transformer {
    producer: TxnProducer,
    consumer: BaseConsumer,
}

const INPUT: &str = "ctp-in";
const OUTPUT: &str = "ctp-out";
const GROUP: &str = "ctp";

/// Client settings for the broker at `addr`, reconnecting quickly.
fn config_for(addr: &str, settings: &[(&str, &str)]) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config
}

impl Transformer {
    /// A new instance: its producer first (fencing the previous one and
    /// finishing or aborting what it left), then its consumer from the
    /// group's committed offsets.
    fn new(addr: &str, partitions: i32) -> Result<Transformer, KafkaError> {
        let producer: TxnProducer = config_for(
            addr,
            &[
                ("transactional.id", "ctp-app"),
                ("acks", "all"),
                ("linger.ms", "1"),
                ("transaction.timeout.ms", "10000"),
            ],
        )
        .create()?;
        producer.init_transactions(T)?;
        let consumer: BaseConsumer = config_for(
            addr,
            &[
                ("group.id", GROUP),
                ("isolation.level", "read_committed"),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
                ("fetch.wait.max.ms", "50"),
            ],
        )
        .create()?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment.add_partition_offset(INPUT, p, Offset::Stored)?;
        }
        consumer.assign(&assignment)?;
        Ok(Transformer { producer, consumer })
    }

    /// One transaction: up to 50 input records read, each written to the
    /// output with the same partition and value, the offsets sent with
    /// it, committed. Returns how many records it carried.
    fn cycle(&self) -> Result<usize, KafkaError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut records = Vec::new();
        while records.len() < 50 && Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(20)) {
                None => {}
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => {
                    next.insert(m.partition(), m.offset() + 1);
                    records.push((m.partition(), m.payload().unwrap_or_default().to_vec()));
                }
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        self.producer.begin_transaction()?;
        for (partition, value) in &records {
            self.producer
                .send(
                    BaseRecord::<[u8], [u8]>::to(OUTPUT)
                        .partition(*partition)
                        .payload(&value[..]),
                )
                .map_err(|(e, _)| e)?;
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets.add_partition_offset(INPUT, *p, Offset::Offset(*o))?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .expect("a consumer with a group id has group metadata");
        self.producer
            .send_offsets_to_transaction(&offsets, &metadata, T)?;
        self.producer.commit_transaction(T)?;
        Ok(records.len())
    }

    /// The group's committed offset of each input partition.
    fn committed(&self, partitions: i32) -> Result<Vec<i64>, KafkaError> {
        let mut asked = TopicPartitionList::new();
        for p in 0..partitions {
            asked.add_partition(INPUT, p);
        }
        let found = self.consumer.committed_offsets(asked, T)?;
        Ok((0..partitions)
            .map(
                |p| match found.find_partition(INPUT, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                },
            )
            .collect())
    }
}

/// Consume-transform-produce, with the broker killed at random moments
/// (while records are read, written, their offsets sent, or the commit's
/// markers written) and restarted at once, as a supervisor would: the
/// instance carries on where it can, and where its client gives up a new
/// one takes over. At the end the output read committed holds every
/// input record exactly once, each partition in order, and the group's
/// offsets are at the input's end. `SLUICE_TXN_KILLS` sets the number of
/// kills (default 20), `SLUICE_TXN_SEED` the seed of their moments.
#[test]
fn consume_transform_produce_is_exactly_once_across_kill9() {
    const PARTITIONS: i32 = 4;
    let kills: usize = std::env::var("SLUICE_TXN_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // About one kill every three transactions of 50 records: the kills
    // land while there is work.
    let records = (kills as u64 * 150).max(3000);
    let seed = std::env::var("SLUICE_TXN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(seed);
    let mut rng = Rng::new(seed);
    let dir = DataDir::new("txn-ctp");
    let broker = Broker::start(dir.path(), 2, &["--checkpoint-interval-mib", "1"]);
    create_topic(&broker, INPUT, PARTITIONS, &[]);
    create_topic(&broker, OUTPUT, PARTITIONS, &[]);
    let input = producer(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("message.send.max.retries", "10"),
        ],
    );
    for id in 0..records {
        input.send_id(INPUT, (id % PARTITIONS as u64) as i32, id, 64);
    }
    assert!(input.flush(T), "input written");
    let acked = input.acked();
    assert_eq!(acked.len(), records as usize, "{:?}", input.failures());
    let mut ends = vec![0i64; PARTITIONS as usize];
    for (p, o) in acked.values() {
        ends[*p as usize] = ends[*p as usize].max(o + 1);
    }
    drop(input);
    let addr = broker.addr().to_string();
    let broker = Arc::new(Mutex::new(broker));

    let mut killed = 0;
    let mut instances = 0;
    let mut transactions = 0;
    let mut broken = 0;
    let started = Instant::now();
    let mut app: Option<Transformer> = None;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no progress: {killed} kills, {transactions} transactions (seed {seed})\n{}",
            broker.lock().unwrap().last_run_log()
        );
        {
            let mut broker = broker.lock().unwrap();
            assert!(
                broker.is_running(),
                "the broker stopped on its own (seed {seed}):\n{}",
                broker.last_run_log()
            );
        }
        let current = match app.take() {
            Some(a) => a,
            None => {
                instances += 1;
                match Transformer::new(&addr, PARTITIONS) {
                    Ok(a) => a,
                    Err(_) => continue,
                }
            }
        };
        // Now and then a kill at a random moment of the next cycle, and a
        // restart right after it.
        let killer = (killed < kills && rng.range(0, 3) == 0).then(|| {
            let pid = broker.lock().unwrap().pid();
            let after = Duration::from_micros(rng.range(0, 60_000));
            let broker = broker.clone();
            std::thread::spawn(move || {
                std::thread::sleep(after);
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let mut broker = broker.lock().unwrap();
                broker.kill9();
                broker.restart();
            })
        });
        let result = current.cycle();
        if let Some(killer) = killer {
            killer.join().expect("the broker restarts");
            killed += 1;
        }
        match result {
            Ok(0) => {
                let done = current.committed(PARTITIONS).is_ok_and(|c| c == ends);
                if done && killed >= kills {
                    break;
                }
                app = Some(current);
            }
            Ok(_) => {
                transactions += 1;
                app = Some(current);
            }
            // The client gave up on this transaction (or on itself): a new
            // instance fences it and takes over from the committed offsets.
            Err(_) => {
                broken += 1;
                drop(current);
            }
        }
    }
    let broker = broker.lock().unwrap();
    let out = ids(&broker, OUTPUT, COMMITTED);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for id in out.values().flatten() {
        *seen.entry(*id).or_default() += 1;
    }
    let missing: Vec<u64> = (0..records).filter(|id| !seen.contains_key(id)).collect();
    let twice: Vec<(u64, usize)> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && seen.len() == records as usize,
        "exactly once broken (seed {seed}, {killed} kills): missing {} {:?}, duplicated {} {:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    // Each output partition holds its input partition's records in order.
    for (partition, ids) in &out {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "output partition {partition} out of order"
        );
    }
    let log = broker.log();
    let resumed = log.matches("carrying out a transaction decision").count();
    let fenced = log
        .matches("aborts the transaction its predecessor left open")
        .count();
    eprintln!(
        "consume-transform-produce: {records} records, {killed} kills, {broken} transactions \
         broken off, {instances} instances, {transactions} transactions committed, {resumed} \
         decisions carried out after a restart, {fenced} open transactions aborted by a new \
         instance, {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}

/// kafka-python's transactions (commit, abort, consume-transform-produce,
/// fencing) against the broker: `tests/clients/transactions_kafka_python.py`.
#[test]
fn transactions_through_kafka_python() {
    let dir = DataDir::new("txn-kafka-python");
    let broker = Broker::start(dir.path(), 2, &[]);
    crate::admin_clients::run_client_script(
        &broker,
        "transactions_kafka_python.py",
        &[broker.addr()],
        "kafka-python transactions: ok",
    );
}
