//! Clients pipeline many requests on one connection; responses must come
//! back in request order, and the appends of one connection to one
//! partition must land in request order (what librdkafka's ordering
//! guarantee for max.in.flight > 1 rests on).

use std::time::Duration;

use kafka_protocol::messages::ProduceRequest;

use crate::harness::{
    consume_to_end, create_topic, produce_range, producer, wait_until, Broker, DataDir,
};
use crate::raw::{
    list_offsets_request, produce_request, simple_batch, single_produce_result, RawClient, LATEST,
    LIST_OFFSETS_V, NONE, PRODUCE_V,
};
use crate::verify::check_complete;

/// 50 Produce requests (acks=-1, correlation ids 1..=50, 10 records each)
/// written back to back in one write before reading anything; then 50
/// responses: correlation ids 1..=50 in order, base offsets contiguous and
/// in request order, and the log holds each request's records in order.
#[test]
fn fifty_pipelined_produces_are_answered_in_order() {
    const TOPIC: &str = "pipeline";
    const REQUESTS: i32 = 50;
    const PER_REQUEST: usize = 10;
    let dir = DataDir::new("pipeline");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 1, &[]);

    let mut client = RawClient::connect(broker.addr());
    let mut burst = Vec::new();
    for id in 1..=REQUESTS {
        let batch = simple_batch(&format!("req{id}"), PER_REQUEST);
        let request = produce_request(TOPIC, 0, batch, -1);
        burst.extend_from_slice(&RawClient::frame(PRODUCE_V, id, &request));
    }
    client.write_raw(&burst);

    let mut base_offsets = Vec::new();
    for expected_id in 1..=REQUESTS {
        let (id, response) = client.recv::<ProduceRequest>(PRODUCE_V);
        assert_eq!(
            id, expected_id,
            "response {expected_id} carries correlation id {id}"
        );
        let r = single_produce_result(response);
        assert_eq!(r.error_code, NONE, "request {id}: {:?}", r.error_message);
        base_offsets.push(r.base_offset);
    }
    let mut sorted = base_offsets.clone();
    sorted.sort();
    let contiguous: Vec<i64> = (0..REQUESTS as i64)
        .map(|i| i * PER_REQUEST as i64)
        .collect();
    assert_eq!(sorted, contiguous, "base offsets not contiguous");
    assert_eq!(base_offsets, contiguous, "appends not in request order");

    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    assert_eq!(consumed.len(), REQUESTS as usize * PER_REQUEST);
    for (i, r) in consumed.iter().enumerate() {
        let expected = format!("req{}-{}", i / PER_REQUEST + 1, i % PER_REQUEST);
        assert_eq!(r.offset, i as i64);
        assert_eq!(
            r.value.as_deref(),
            Some(expected.as_bytes()),
            "record at offset {i}"
        );
    }
}

/// librdkafka with max.in.flight.requests.per.connection at its maximum
/// (1,000,000) and tiny batches, so thousands of requests are in flight:
/// every message acked, back exactly once, in order, offsets contiguous.
#[test]
fn librdkafka_with_a_million_in_flight_keeps_order() {
    const TOPIC: &str = "inflight";
    let dir = DataDir::new("inflight");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 2, &[]);
    let producer = producer(
        &broker,
        &[
            ("max.in.flight.requests.per.connection", "1000000"),
            ("linger.ms", "0"),
            ("batch.num.messages", "5"),
        ],
    );
    let produced = produce_range(&producer, TOPIC, 2, 0..20_000, 100);
    assert!(producer.flush(Duration::from_secs(90)), "reports");
    let failures = producer.failures();
    assert!(
        failures.is_empty(),
        "{} failed, first {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let acked = producer.acked();
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_complete(TOPIC, &consumed, &produced, &acked);
}

/// acks=0 gets no response at all: a produce with acks=0 followed by a
/// ListOffsets on the same connection yields the ListOffsets' response
/// first; then 40 pipelined produces alternating acks=0 and acks=-1 yield
/// exactly the 20 acks=-1 responses, in order, at increasing offsets; and
/// the acks=0 records are stored all the same.
#[test]
fn acks_zero_produce_gets_no_response() {
    const TOPIC: &str = "acks0";
    let dir = DataDir::new("acks0");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());

    let produce = produce_request(TOPIC, 0, simple_batch("fire-and-forget", 4), 0);
    let produce_id = client.send(PRODUCE_V, &produce);
    let list_id = client.send(LIST_OFFSETS_V, &list_offsets_request(TOPIC, 0, LATEST));
    let frame = client.read_frame();
    let id = i32::from_be_bytes(frame[..4].try_into().unwrap());
    assert_ne!(id, produce_id, "the acks=0 produce was answered");
    assert_eq!(id, list_id, "first response");

    let mut answered = Vec::new();
    let mut burst = Vec::new();
    for id in 100..140 {
        let acks = if id % 2 == 0 { 0 } else { -1 };
        let request = produce_request(TOPIC, 0, simple_batch(&format!("a{id}"), 2), acks);
        burst.extend_from_slice(&RawClient::frame(PRODUCE_V, id, &request));
        if acks != 0 {
            answered.push(id);
        }
    }
    client.write_raw(&burst);
    let mut last_offset = -1;
    for expected in answered {
        let (id, response) = client.recv::<ProduceRequest>(PRODUCE_V);
        assert_eq!(
            id, expected,
            "responses to the acks=-1 requests only, in order"
        );
        let r = single_produce_result(response);
        assert_eq!(r.error_code, NONE, "request {id}");
        assert!(
            r.base_offset > last_offset,
            "request {id}: base offset {}",
            r.base_offset
        );
        last_offset = r.base_offset;
    }

    let expected_hw = 4 + 40 * 2;
    assert!(
        wait_until(Duration::from_secs(10), || client.high_watermark(TOPIC, 0)
            == expected_hw),
        "acks=0 records not all stored: high watermark {}, expected {expected_hw}",
        client.high_watermark(TOPIC, 0)
    );
}

/// One connection sends 40,000 requests one at a time, so the broker reads
/// it 40,000 times. Every read used to leave a waker on the shard's
/// shutdown signal behind; glommio counts a task's wakers in an `i16`, and
/// the 32,768th panicked the shard. The broker must answer them all and
/// then still serve a new connection.
#[test]
fn a_long_lived_connection_reads_forever() {
    const TOPIC: &str = "longlived";
    let dir = DataDir::new("longlived");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    for i in 0..40_000 {
        let latest = client.high_watermark(TOPIC, 0);
        assert_eq!(latest, 0, "request {i}");
    }
    let mut fresh = RawClient::connect(broker.addr());
    let response = fresh.call(
        PRODUCE_V,
        &produce_request(TOPIC, 0, simple_batch("after", 3), -1),
    );
    assert_eq!(single_produce_result(response).error_code, NONE);
    assert_eq!(client.high_watermark(TOPIC, 0), 3);
}
