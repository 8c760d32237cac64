//! The broker's sequence rules with hand-made batches: a duplicate (same
//! producer id, epoch and sequence) is stored once and both answers carry
//! the same base offset, also when the retry comes after a `kill -9` and
//! restart; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER; an old epoch gets
//! INVALID_PRODUCER_EPOCH; an unknown producer is accepted at any sequence,
//! as Kafka does; producer ids are never handed out twice across restarts.

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::Compression;

use crate::harness::{create_topic, Broker, DataDir};
use crate::raw::{decode_values, producer_batch, RawClient, Rec, NONE};

const TOPIC: &str = "seq";
const INIT_V: i16 = 4;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// One batch of `count` records from producer `pid`/`epoch`, sequences
/// `first_seq..`, values `<pid>-<epoch>-<seq>`.
fn idempotent_batch(pid: i64, epoch: i16, first_seq: i32, count: i32) -> Bytes {
    let values: Vec<String> = (first_seq..first_seq + count)
        .map(|seq| format!("{pid}-{epoch}-{seq}"))
        .collect();
    let records: Vec<Rec<'_>> = values
        .iter()
        .map(|v| Rec {
            key: None,
            value: Some(v.as_bytes()),
            timestamp: 1_700_000_000_000,
        })
        .collect();
    producer_batch(&records, Compression::None, pid, epoch, first_seq)
}

fn init_producer_id(client: &mut RawClient, pid: i64, epoch: i16) -> (i64, i16) {
    let response = client.call(
        INIT_V,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
    );
    assert_eq!(response.error_code, NONE, "InitProducerId");
    (response.producer_id.0, response.producer_epoch)
}

/// (error code, base offset) of producing `batch` to partition 0.
fn produce(client: &mut RawClient, batch: &Bytes) -> (i16, i64) {
    let r = client.produce(TOPIC, 0, batch.clone());
    (r.error_code, r.base_offset)
}

/// Every value stored in partition 0, in offset order.
fn stored_values(client: &mut RawClient) -> Vec<String> {
    let data = client.fetch(TOPIC, 0, 0);
    assert_eq!(data.error_code, NONE, "fetch");
    decode_values(&data.records.unwrap_or_default())
        .into_iter()
        .map(|(_, v)| String::from_utf8(v.unwrap_or_default()).expect("utf-8 value"))
        .collect()
}

#[test]
fn duplicates_are_stored_once_even_after_kill9_and_gaps_and_old_epochs_are_refused() {
    let dir = DataDir::new("idem-seq");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    let (pid, epoch) = init_producer_id(&mut client, -1, -1);
    assert!(pid >= 0);

    let first = idempotent_batch(pid, epoch, 0, 5);
    assert_eq!(produce(&mut client, &first), (NONE, 0));
    assert_eq!(
        produce(&mut client, &first),
        (NONE, 0),
        "a duplicate gets the original offset"
    );
    let second = idempotent_batch(pid, epoch, 5, 3);
    assert_eq!(produce(&mut client, &second), (NONE, 5));
    assert_eq!(
        client.high_watermark(TOPIC, 0),
        8,
        "the duplicate was not stored"
    );

    // The retry of an acknowledged batch after a crash is still recognised.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(
        produce(&mut client, &second),
        (NONE, 5),
        "duplicate after restart"
    );
    assert_eq!(
        produce(&mut client, &first),
        (NONE, 0),
        "older duplicate after restart"
    );
    assert_eq!(client.high_watermark(TOPIC, 0), 8);

    // A gap is refused and stores nothing.
    let gap = idempotent_batch(pid, epoch, 10, 1);
    assert_eq!(produce(&mut client, &gap).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(client.high_watermark(TOPIC, 0), 8);
    // The next batch in sequence still goes through.
    assert_eq!(
        produce(&mut client, &idempotent_batch(pid, epoch, 8, 2)),
        (NONE, 8)
    );

    // Re-initialising with an id and epoch and no transactional id gets a
    // fresh producer id, as Kafka answers: naming someone else's id must
    // not bump its epoch, or any client could fence any producer.
    let (new_pid, new_epoch) = init_producer_id(&mut client, pid, epoch);
    assert_ne!(new_pid, pid, "another client's id was handed out again");
    assert_eq!(new_epoch, 0);
    assert_eq!(
        produce(&mut client, &idempotent_batch(new_pid, new_epoch, 0, 1)),
        (NONE, 10)
    );
    assert_eq!(
        produce(&mut client, &idempotent_batch(pid, epoch, 10, 1)),
        (NONE, 11),
        "the first producer was fenced by another's InitProducerId"
    );
    // A batch of a newer epoch of the id fences the older epoch.
    assert_eq!(
        produce(&mut client, &idempotent_batch(pid, epoch + 1, 0, 1)),
        (NONE, 12)
    );
    assert_eq!(
        produce(&mut client, &idempotent_batch(pid, epoch, 11, 1)).0,
        INVALID_PRODUCER_EPOCH
    );

    // A producer id the broker has no state for: any sequence, as Kafka does.
    assert_eq!(
        produce(&mut client, &idempotent_batch(pid + 5000, 0, 42, 1)),
        (NONE, 13)
    );

    let expected: Vec<String> = [
        (pid, epoch, 0..10),
        (new_pid, new_epoch, 0..1),
        (pid, epoch, 10..11),
        (pid, epoch + 1, 0..1),
        (pid + 5000, 0, 42..43),
    ]
    .into_iter()
    .flat_map(|(p, e, seqs)| seqs.map(move |s| format!("{p}-{e}-{s}")))
    .collect();
    assert_eq!(
        stored_values(&mut client),
        expected,
        "every record exactly once, in order"
    );
}

#[test]
fn producer_ids_are_never_reused_after_kill9() {
    let dir = DataDir::new("idem-ids");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    let mut client = RawClient::connect(broker.addr());
    let before: Vec<i64> = (0..3)
        .map(|_| init_producer_id(&mut client, -1, -1).0)
        .collect();
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    let after: Vec<i64> = (0..3)
        .map(|_| init_producer_id(&mut client, -1, -1).0)
        .collect();
    let max_before = *before.iter().max().unwrap();
    assert!(
        after.iter().all(|id| *id > max_before),
        "ids after the restart {after:?} must all be new (before: {before:?})"
    );
}

/// InitProducerId with a transactional id: the same producer id with a
/// new epoch each time (fencing the older ones), KIP-360's recovery with
/// the current id and epoch, an older epoch fenced (as INVALID_PRODUCER_EPOCH
/// before v4), and Kafka's refusals of an empty id and a zero timeout.
#[test]
fn transactional_init_bumps_the_epoch_and_fences() {
    let dir = DataDir::new("idem-txn");
    let broker = Broker::start(dir.path(), 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    let mut init = |version: i16, id: &'static str, timeout: i32, pid: i64, epoch: i16| {
        let response = client.call(
            version,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
                    kafka_protocol::protocol::StrBytes::from_static_str(id),
                )))
                .with_transaction_timeout_ms(timeout)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
        );
        (
            response.error_code,
            response.producer_id.0,
            response.producer_epoch,
        )
    };
    let (code, pid, epoch) = init(INIT_V, "txn-1", 60_000, -1, -1);
    assert_eq!((code, epoch), (0, 0));
    assert_eq!(init(INIT_V, "txn-1", 60_000, -1, -1), (0, pid, 1));
    assert_eq!(init(INIT_V, "txn-1", 60_000, pid, 1), (0, pid, 2));
    assert_eq!(init(4, "txn-1", 60_000, pid, 0).0, 90, "PRODUCER_FENCED");
    // The epoch just before the current one belongs to a producer a newer
    // one fenced: it may not take the id back (only after a timeout abort
    // by the coordinator may the previous epoch recover).
    assert_eq!(init(4, "txn-1", 60_000, pid, 1).0, 90, "PRODUCER_FENCED");
    assert_eq!(
        init(3, "txn-1", 60_000, pid, 0).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(init(INIT_V, "", 60_000, -1, -1).0, 42, "INVALID_REQUEST");
    assert_eq!(
        init(INIT_V, "txn-2", 0, -1, -1).0,
        50,
        "INVALID_TRANSACTION_TIMEOUT"
    );
    let (code, other, _) = init(INIT_V, "txn-2", 60_000, -1, -1);
    assert_eq!(code, 0);
    assert_ne!(other, pid, "another transactional id, another producer id");
}
