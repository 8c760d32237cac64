//! Committed offsets: durable across SIGKILL, standalone (assign + commit)
//! consumers, unknown groups, DeleteGroups and deleted topics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::{block_on, create_topic, id_of, produce_range, producer, Broker, DataDir};
use crate::members::{Member, MEMBER_DEFAULTS};
use crate::raw::RawClient;
use crate::wire::{self, NONE};

const SHARDS: usize = 2;

fn group_consumer(broker: &Broker, group: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.addr());
    config.set("group.id", group);
    for (k, v) in MEMBER_DEFAULTS {
        config.set(*k, *v);
    }
    config.create().expect("create consumer")
}

fn delete_topic(broker: &Broker, name: &str) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.addr());
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            admin.delete_topics(&[name], &options),
        )
        .await
    })
    .expect("DeleteTopics timed out")
    .expect("DeleteTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("deleting {t}: {e:?}"));
    }
}

/// Commit, SIGKILL the broker, restart: a new member of the group resumes
/// from the committed offsets, re-reading nothing and skipping nothing.
#[test]
fn committed_offsets_survive_kill9_and_a_new_member_resumes_exactly_there() {
    let dir = DataDir::new("groups-resume");
    let mut broker = Broker::start(dir.path(), SHARDS, &[]);
    let (topic, group) = ("resume", "resume-g");
    create_topic(&broker, topic, 4, &[]);
    let p = producer(&broker, &[]);
    produce_range(&p, topic, 4, 0..400, 40);
    assert!(p.flush(Duration::from_secs(30)));
    assert_eq!(p.acked().len(), 400, "{:?}", p.failures());
    drop(p);

    // The first member reads about half, then commits exactly what it read.
    let first = group_consumer(&broker, group);
    first.subscribe(&[topic]).unwrap();
    let mut read_first: BTreeSet<u64> = BTreeSet::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while read_first.len() < 200 {
        assert!(Instant::now() < deadline, "read only {}", read_first.len());
        if let Some(m) = first.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            read_first.insert(id_of(m.payload().unwrap()).unwrap());
            let expected = next.get(&m.partition()).copied().unwrap_or(0);
            assert_eq!(m.offset(), expected, "offsets in order from the start");
            next.insert(m.partition(), m.offset() + 1);
        }
    }
    let mut commit = TopicPartitionList::new();
    for (partition, offset) in &next {
        commit
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    first.commit(&commit, CommitMode::Sync).expect("commit");
    broker.kill9();
    drop(first);
    broker.restart();

    // Committed offsets are there after the restart (partitions the first
    // member never read have none).
    let mut raw = RawClient::connect(broker.addr());
    let fetched = wire::fetch_offsets(&mut raw, &[group], topic, &[0, 1, 2, 3]);
    assert_eq!(fetched[0].0, NONE);
    for (partition, offset, code) in &fetched[0].1 {
        assert_eq!(*code, NONE);
        assert_eq!(
            *offset,
            next.get(partition).copied().unwrap_or(-1),
            "partition {partition}"
        );
    }

    let second = Member::start(&broker, group, topic, false, &[]);
    let everything: BTreeSet<u64> = (0..400).collect();
    let want = 400 - read_first.len();
    assert!(
        crate::harness::wait_until(Duration::from_secs(40), || second.seen().len() >= want),
        "the new member read {} of {want}",
        second.seen().len()
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen = second.stop();
    let read_second: BTreeSet<u64> = seen.iter().map(|s| s.id).collect();
    assert_eq!(seen.len(), want, "read something twice");
    assert!(
        read_first.is_disjoint(&read_second),
        "re-read committed messages"
    );
    let union: BTreeSet<u64> = read_first.union(&read_second).copied().collect();
    assert_eq!(union, everything, "skipped messages");
    for partition in 0..4 {
        let lowest = seen
            .iter()
            .filter(|s| s.partition == partition)
            .map(|s| s.offset)
            .min();
        let committed = next.get(&partition).copied().unwrap_or(0);
        if committed < 100 {
            assert_eq!(lowest, Some(committed), "partition {partition}");
        }
    }
}

/// Standalone consumers (assign + commit, no join), unknown groups,
/// commits beyond the log end, DeleteGroups and deleted topics, and that a
/// restart resurrects none of what was deleted.
#[test]
fn standalone_commits_unknown_groups_and_deletions_survive_restart() {
    let dir = DataDir::new("groups-solo");
    let mut broker = Broker::start(dir.path(), SHARDS, &[]);
    create_topic(&broker, "solo", 3, &[]);
    create_topic(&broker, "doomed", 1, &[]);
    let mut raw = RawClient::connect(broker.addr());

    // Unknown groups: offsets -1, no error (v8 batched, and v5 "all topics").
    let fetched = wire::fetch_offsets(&mut raw, &["nobody-1", "nobody-2"], "solo", &[0, 1, 2]);
    for (code, partitions) in &fetched {
        assert_eq!(*code, NONE);
        assert_eq!(
            partitions,
            &vec![(0, -1, NONE), (1, -1, NONE), (2, -1, NONE)]
        );
    }
    assert_eq!(
        wire::fetch_offsets_v5(&mut raw, "nobody-3", None),
        (NONE, vec![])
    );
    let described = wire::describe(&mut raw, "nobody-4");
    assert_eq!(
        (described.error_code, described.group_state.as_str()),
        (NONE, "Dead")
    );
    assert_eq!(
        wire::delete_group(&mut raw, "nobody-5"),
        wire::GROUP_ID_NOT_FOUND
    );

    // A standalone rdkafka consumer: assign, commit, read back.
    let solo = group_consumer(&broker, "solo-g");
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment.add_partition("solo", p);
    }
    solo.assign(&assignment).unwrap();
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("solo", 0, Offset::Offset(7))
        .unwrap();
    commit
        .add_partition_offset("solo", 1, Offset::Offset(3))
        .unwrap();
    solo.commit(&commit, CommitMode::Sync)
        .expect("standalone commit");
    let committed = solo
        .committed_offsets(assignment.clone(), Duration::from_secs(10))
        .expect("committed");
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(
        offsets,
        vec![Offset::Offset(7), Offset::Offset(3), Offset::Invalid]
    );
    drop(solo);

    // kcat style: generation -1, no member id; beyond the log end is fine.
    assert_eq!(
        wire::commit(&mut raw, "solo-g", -1, "", "solo", 2, 1_000_000),
        NONE
    );
    assert_eq!(
        wire::commit(&mut raw, "solo-g", -1, "", "no-such-topic", 0, 1),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert!(wire::list_groups(&mut raw).contains(&("solo-g".to_string(), "Empty".to_string())));

    // Another group keeps offsets of a topic that is then deleted.
    assert_eq!(wire::commit(&mut raw, "keep-g", -1, "", "solo", 0, 5), NONE);
    assert_eq!(
        wire::commit(&mut raw, "keep-g", -1, "", "doomed", 0, 9),
        NONE
    );
    assert_eq!(wire::delete_group(&mut raw, "solo-g"), NONE);
    delete_topic(&broker, "doomed");
    let check = |raw: &mut RawClient| {
        let solo_g = wire::fetch_offsets(raw, &["solo-g"], "solo", &[0, 1, 2]);
        assert_eq!(
            solo_g[0].1,
            vec![(0, -1, NONE), (1, -1, NONE), (2, -1, NONE)]
        );
        let keep = wire::fetch_offsets(raw, &["keep-g"], "solo", &[0]);
        assert_eq!(keep[0].1, vec![(0, 5, NONE)]);
        let doomed = wire::fetch_offsets(raw, &["keep-g"], "doomed", &[0]);
        assert_eq!(
            doomed[0].1,
            vec![(0, -1, NONE)],
            "offsets of a deleted topic"
        );
        let (code, all) = wire::fetch_offsets_v5(raw, "keep-g", None);
        assert_eq!((code, all), (NONE, vec![("solo".to_string(), 0, 5)]));
    };
    check(&mut raw);

    broker.kill9();
    broker.restart();
    let mut raw = RawClient::connect(broker.addr());
    check(&mut raw);
    // A topic recreated under the old name does not inherit old offsets.
    create_topic(&broker, "doomed", 1, &[]);
    let doomed = wire::fetch_offsets(&mut raw, &["keep-g"], "doomed", &[0]);
    assert_eq!(doomed[0].1, vec![(0, -1, NONE)]);
    let groups: Vec<String> = wire::list_groups(&mut raw)
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert!(groups.contains(&"keep-g".to_string()), "{groups:?}");
    assert!(!groups.contains(&"solo-g".to_string()), "{groups:?}");
}
