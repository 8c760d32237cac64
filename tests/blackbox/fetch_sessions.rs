//! Incremental fetch sessions (KIP-227) by hand: a session opened by a
//! full fetch, continued with empty requests that answer only the
//! partitions with news, forgetting partitions, the epoch checks, and
//! closing. kafka-python's consumers (the transaction, security and ACL
//! scripts) use sessions on every fetch, so every test consuming with it
//! goes through them too.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::records::Compression;

use crate::harness::{create_topic, Broker, DataDir};
use crate::raw::{batch, topic_name, RawClient, Rec, FETCH_V};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn partition(p: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(p)
        .with_current_leader_epoch(-1)
        .with_fetch_offset(offset)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(1 << 20)
}

fn fetch(id: i32, epoch: i32, parts: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    let topics = if parts.is_empty() {
        vec![]
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name("sess"))
            .with_partitions(parts.iter().map(|(p, o)| partition(*p, *o)).collect())]
    };
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// The answered partitions: (index, record bytes).
fn answered(r: &FetchResponse) -> Vec<(i32, usize)> {
    let mut out: Vec<(i32, usize)> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |b| b.len())))
        .collect();
    out.sort();
    out
}

#[test]
fn a_session_answers_only_what_changed() {
    let dir = DataDir::new("fetch-sessions");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "sess", 4, &[]);
    let mut consumer = RawClient::connect(broker.addr());
    let mut producer = RawClient::connect(broker.addr());
    let one = || {
        batch(
            &[Rec {
                key: None,
                value: Some(b"news"),
                timestamp: 1,
            }],
            Compression::None,
        )
    };

    // A full fetch with epoch 0 opens a session; every partition answered.
    let all = [(0, 0), (1, 0), (2, 0), (3, 0)];
    let r = consumer.call(FETCH_V, &fetch(0, 0, &all, 0));
    assert_eq!(r.error_code, 0);
    let id = r.session_id;
    assert_ne!(id, 0, "a session was opened");
    assert_eq!(answered(&r).len(), 4);

    // Nothing new: an empty incremental fetch waits and answers nothing.
    let r = consumer.call(FETCH_V, &fetch(id, 1, &[], 300));
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert_eq!(answered(&r), vec![]);

    // A record on partition 2 (its shard may differ from the session's):
    // the empty request reads all four and answers partition 2 alone.
    assert_eq!(producer.produce("sess", 2, one()).error_code, 0);
    let r = consumer.call(FETCH_V, &fetch(id, 2, &[], 5000));
    let got = answered(&r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0, "partition 2's record");

    // Partition 2 moves on, partition 3 is forgotten: a record on 3 is no
    // longer news to this session, one on 0 is.
    let mut r3 = fetch(id, 3, &[(2, 1)], 300);
    r3.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(topic_name("sess"))
        .with_partitions(vec![3])];
    assert_eq!(answered(&consumer.call(FETCH_V, &r3)), vec![]);
    assert_eq!(producer.produce("sess", 3, one()).error_code, 0);
    assert_eq!(producer.produce("sess", 0, one()).error_code, 0);
    let r = consumer.call(FETCH_V, &fetch(id, 4, &[], 5000));
    let got = answered(&r);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![0],
        "{got:?}"
    );

    // The epoch must be the next one; an unknown session is not found.
    let r = consumer.call(FETCH_V, &fetch(id, 9, &[], 0));
    assert_eq!(r.error_code, INVALID_FETCH_SESSION_EPOCH);
    let r = consumer.call(FETCH_V, &fetch(id ^ 0x5a5a, 1, &[], 0));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // The session survived the refusals: epoch 5 goes on.
    let r = consumer.call(FETCH_V, &fetch(id, 5, &[], 0));
    assert_eq!(r.error_code, 0);

    // Epoch -1 closes it: a full sessionless answer, then the id is gone.
    let r = consumer.call(FETCH_V, &fetch(id, -1, &all, 0));
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(answered(&r).len(), 4);
    let r = consumer.call(FETCH_V, &fetch(id, 6, &[], 0));
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);
}
