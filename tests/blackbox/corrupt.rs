//! Bad input gets a Kafka error code or a closed connection, never a
//! crash. A batch whose CRC-32C does not match is refused with
//! CORRUPT_MESSAGE (error code 2), stores nothing (the high watermark
//! stays, and nothing of it reappears after a crash and recovery), and
//! leaves the partition and the connection fully usable; in a request for
//! several partitions it fails only its own. Oversized frames close their
//! connection; unsupported versions are answered.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, ProduceRequest};

use crate::harness::{consume_to_end, create_topic, wait_until, Broker, DataDir};
use crate::raw::{simple_batch, topic_name, RawClient, CORRUPT_MESSAGE, NONE, PRODUCE_V};

#[test]
fn batch_with_bad_crc_is_refused_with_corrupt_message() {
    const TOPIC: &str = "corrupt";
    let dir = DataDir::new("corrupt");
    let mut broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());

    let good = client.produce(TOPIC, 0, simple_batch("good", 5));
    assert_eq!(
        (good.error_code, good.base_offset),
        (NONE, 0),
        "first good batch: {:?}",
        good.error_message
    );
    let hw = client.high_watermark(TOPIC, 0);
    assert_eq!(hw, 5);

    let template = simple_batch("bad", 5);
    // Byte positions (in the batch) to flip, all covered by the CRC or the
    // CRC itself: a record's value, the base timestamp, the stored CRC.
    let flips = [
        ("a byte of the last record", template.len() - 2),
        ("the base timestamp", 30),
        ("the stored CRC", 18),
    ];
    for (what, at) in flips {
        let mut bad = template.to_vec();
        bad[at] ^= 0x20;
        let r = client.produce(TOPIC, 0, Bytes::from(bad));
        assert_eq!(
            r.error_code, CORRUPT_MESSAGE,
            "flipped {what} (byte {at}): error code {} ({:?}), base offset {}",
            r.error_code, r.error_message, r.base_offset
        );
        assert_eq!(
            client.high_watermark(TOPIC, 0),
            hw,
            "flipped {what}: the refused batch moved the high watermark"
        );
    }

    // Same connection, same partition: a good batch goes right after.
    let after = client.produce(TOPIC, 0, simple_batch("after", 3));
    assert_eq!(
        (after.error_code, after.base_offset),
        (NONE, 5),
        "good batch after refusals"
    );
    assert_eq!(client.high_watermark(TOPIC, 0), 8);

    let expected: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("good-{i}"))
        .chain((0..3).map(|i| format!("after-{i}")))
        .map(String::into_bytes)
        .collect();
    let check = |broker: &Broker, when: &str| {
        let consumed = consume_to_end(broker, TOPIC, Duration::from_secs(30));
        let values: Vec<Vec<u8>> = consumed.iter().filter_map(|r| r.value.clone()).collect();
        let offsets: Vec<i64> = consumed.iter().map(|r| r.offset).collect();
        assert_eq!(
            values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>(),
            "{when}: values"
        );
        assert_eq!(offsets, (0..8).collect::<Vec<i64>>(), "{when}: offsets");
    };
    check(&broker, "live");

    // Nothing of the refused batches may be in the WAL either.
    drop(client);
    broker.kill9();
    broker.restart();
    check(&broker, "after kill -9 and recovery");
}

/// One Produce request for four partitions spread over two shards (the
/// router splits it and merges the answers), one of them carrying a corrupt
/// batch: only that partition is refused, the others are stored, and every
/// partition is answered.
#[test]
fn corrupt_batch_in_a_multi_partition_request_fails_only_its_partition() {
    const TOPIC: &str = "split";
    let dir = DataDir::new("split");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 4, &[]);
    let mut client = RawClient::connect(broker.addr());

    let partitions = (0..4)
        .map(|p| {
            let mut batch = simple_batch(&format!("p{p}"), 3).to_vec();
            if p == 2 {
                let last = batch.len() - 1;
                batch[last] ^= 0x01;
            }
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(batch)))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(TOPIC))
            .with_partition_data(partitions)]);
    let response = client.call(PRODUCE_V, &request);
    assert_eq!(response.responses.len(), 1, "one topic");
    let mut answers: Vec<(i32, i16, i64)> = response.responses[0]
        .partition_responses
        .iter()
        .map(|r| (r.index, r.error_code, r.base_offset))
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        vec![
            (0, NONE, 0),
            (1, NONE, 0),
            (2, CORRUPT_MESSAGE, -1),
            (3, NONE, 0)
        ],
        "(partition, error code, base offset)"
    );
    for p in 0..4 {
        let expected = if p == 2 { 0 } else { 3 };
        assert_eq!(client.high_watermark(TOPIC, p), expected, "partition {p}");
    }
}

/// A frame larger than --max-request-bytes is refused from its size
/// prefix: that connection is closed, the broker keeps running and serves
/// the next connection.
#[test]
fn oversized_frame_closes_only_its_connection() {
    let dir = DataDir::new("oversized");
    let mut broker = Broker::start(dir.path(), 1, &["--max-request-bytes", "100000"]);
    let mut client = RawClient::connect(broker.addr());
    let mut frame = (50_000_000i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0; 64]);
    client.write_raw(&frame);
    let outcome = client.try_read_frame();
    assert!(outcome.is_err(), "answered an oversized frame: {outcome:?}");
    assert!(broker.is_running(), "broker died on an oversized frame");

    let mut other = RawClient::connect(broker.addr());
    let versions = other.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE, "next connection");
    assert!(
        wait_until(Duration::from_secs(5), || broker
            .last_run_log()
            .contains("50000000")),
        "no log line about the refused 50000000-byte frame:\n{}",
        broker.last_run_log()
    );
}

/// A version outside the table is answered, not dropped: ApiVersions at
/// v127 gets a v0 answer with UNSUPPORTED_VERSION (35) and the table, so a
/// client can retry; the connection stays usable.
#[test]
fn unsupported_api_version_is_answered() {
    const UNSUPPORTED_VERSION: i16 = 35;
    let dir = DataDir::new("unsupported");
    let broker = Broker::start(dir.path(), 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    // Header v2 (ApiVersions is flexible from v3) by hand, and no body: a
    // broker cannot know the body of a version it does not implement.
    let mut frame = Vec::new();
    frame.extend_from_slice(&0i32.to_be_bytes());
    frame.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    frame.extend_from_slice(&127i16.to_be_bytes());
    frame.extend_from_slice(&4242i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.push(0); // no tagged fields
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    client.write_raw(&frame);

    let (id, response) = client.recv::<ApiVersionsRequest>(0);
    assert_eq!(id, 4242, "correlation id");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert!(
        response.api_keys.iter().any(|k| k.api_key == 0),
        "the table should list Produce"
    );
    let versions = client.call(3, &ApiVersionsRequest::default());
    assert_eq!(
        versions.error_code, NONE,
        "same connection, supported version"
    );
}
