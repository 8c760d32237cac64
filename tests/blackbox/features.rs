//! What a Kafka client expects to round-trip: the four compression codecs
//! (stored compressed, as sent), headers, null keys and values, a 1 MiB
//! message, CreateTime timestamps; and the offset queries built on them:
//! watermarks, ListOffsets earliest/latest and offsets_for_times.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::harness::{
    consume, consume_to_end, consumer, create_topic, produce_range, producer, watermarks, Broker,
    DataDir,
};
use crate::raw::{self, RawClient, EARLIEST, LATEST, NONE};
use crate::verify::check_complete;

/// Each codec on its own topic: 2000 compressible messages over 2
/// partitions come back exactly once, in order, live and after kill -9 and
/// recovery; a raw Fetch shows the stored batches still carry the codec
/// (the broker did not decompress).
#[test]
fn all_four_compression_codecs_round_trip() {
    const CODECS: [(&str, i16); 4] = [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)];
    let dir = DataDir::new("codecs");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    let mut expected = Vec::new();
    for (codec, _) in CODECS {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 2, &[]);
        let producer = producer(&broker, &[("compression.type", codec), ("linger.ms", "20")]);
        let produced = produce_range(&producer, &topic, 2, 0..2_000, 300);
        assert!(producer.flush(Duration::from_secs(60)), "{codec}: reports");
        expected.push((topic, produced, producer.acked()));
    }

    let check = |broker: &Broker, when: &str| {
        for ((codec, bits), (topic, produced, acked)) in CODECS.iter().zip(&expected) {
            let consumed = consume_to_end(broker, topic, Duration::from_secs(30));
            check_complete(&format!("{topic} {when}"), &consumed, produced, acked);

            let mut client = RawClient::connect(broker.addr());
            let data = client.fetch(topic, 0, 0);
            assert_eq!(data.error_code, NONE, "{codec}: fetch error");
            let records = data.records.expect("records");
            let batches = raw::split_batches(&records);
            assert!(!batches.is_empty(), "{codec}: no batch fetched");
            for b in batches {
                let attributes = i16::from_be_bytes([b[21], b[22]]);
                assert_eq!(
                    attributes & 7,
                    *bits,
                    "{codec} {when}: stored batch has codec bits {}",
                    attributes & 7
                );
                assert!(
                    raw::crc_ok(b),
                    "{codec} {when}: fetched batch fails its CRC"
                );
            }
        }
    };
    check(&broker, "live");
    broker.kill9();
    broker.restart();
    check(&broker, "after kill -9");
}

/// Headers (binary, null-valued, repeated keys), null keys, null values and
/// both at once, each as sent.
#[test]
fn headers_null_keys_and_null_values_round_trip() {
    const TOPIC: &str = "shapes";
    let dir = DataDir::new("shapes");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let producer = producer(&broker, &[("linger.ms", "0")]);

    type Shape = (Option<&'static [u8]>, Option<&'static [u8]>);
    let shapes: [Shape; 5] = [
        (Some(b"k0"), Some(b"v0")),
        (None, Some(b"v1")),
        (Some(b"k2"), None),
        (None, None),
        (Some(b""), Some(b"")),
    ];
    let headers = || -> Vec<(String, Option<Vec<u8>>)> {
        vec![
            ("trace".into(), Some(b"abc".to_vec())),
            ("binary".into(), Some(vec![0, 1, 2, 255])),
            ("null".into(), None),
            ("dup".into(), Some(b"first".to_vec())),
            ("dup".into(), Some(b"second".to_vec())),
        ]
    };
    for (i, (key, value)) in shapes.iter().enumerate() {
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers() {
            owned = owned.insert(Header {
                key: &k,
                value: v.as_deref(),
            });
        }
        let mut record =
            BaseRecord::<[u8], [u8], Box<u64>>::with_opaque_to(TOPIC, Box::new(i as u64))
                .partition(0)
                .headers(owned);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer.send(record);
    }
    assert!(producer.flush(Duration::from_secs(30)), "reports");
    assert_eq!(
        producer.acked().len(),
        shapes.len(),
        "{:?}",
        producer.failures()
    );

    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    assert_eq!(consumed.len(), shapes.len(), "{consumed:?}");
    for (i, (r, (key, value))) in consumed.iter().zip(shapes.iter()).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key.as_deref(), *key, "key of record {i}");
        assert_eq!(r.value.as_deref(), *value, "value of record {i}");
        assert_eq!(r.headers, headers(), "headers of record {i}");
    }
}

/// A 1 MiB value (topic max.message.bytes raised to 2 MiB, producer
/// message.max.bytes to 3 MB) between two small ones, byte for byte.
#[test]
fn one_mebibyte_message_round_trips() {
    const TOPIC: &str = "big";
    let dir = DataDir::new("big");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[("max.message.bytes", "2097152")]);
    let producer = producer(
        &broker,
        &[("message.max.bytes", "3000000"), ("linger.ms", "0")],
    );
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let values: [&[u8]; 3] = [b"before", &big, b"after"];
    for (i, v) in values.iter().enumerate() {
        producer.send(
            BaseRecord::with_opaque_to(TOPIC, Box::new(i as u64))
                .partition(0)
                .payload(*v),
        );
    }
    assert!(producer.flush(Duration::from_secs(30)), "reports");
    assert_eq!(producer.acked().len(), 3, "{:?}", producer.failures());

    let consumed = consume(&broker, TOPIC, 3, Duration::from_secs(30));
    assert_eq!(consumed.len(), 3);
    for (i, (r, v)) in consumed.iter().zip(values).enumerate() {
        assert_eq!(r.offset, i as i64);
        let got = r.value.as_deref().unwrap_or_default();
        assert!(
            got == v,
            "value {i}: {} bytes back, {} sent",
            got.len(),
            v.len()
        );
    }
}

/// Explicit CreateTime timestamps come back unchanged; watermarks,
/// ListOffsets earliest/latest and offsets_for_times agree with them.
#[test]
fn create_time_watermarks_and_offsets_for_times() {
    const TOPIC: &str = "times";
    const T0: i64 = 1_600_000_000_000;
    const N: i64 = 100;
    let dir = DataDir::new("times");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 2, &[]);
    assert_eq!(watermarks(&broker, TOPIC, 0), (0, 0), "empty partition");

    let producer = producer(&broker, &[("linger.ms", "10")]);
    let mut produced = BTreeMap::new();
    for i in 0..N {
        let value = crate::harness::value_for(i as u64, 50);
        producer.send(
            BaseRecord::with_opaque_to(TOPIC, Box::new(i as u64))
                .partition(0)
                .payload(&value[..])
                .timestamp(T0 + i * 1000),
        );
        produced.insert(i as u64, 0);
    }
    assert!(producer.flush(Duration::from_secs(30)), "reports");
    let acked = producer.acked();

    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    check_complete(TOPIC, &consumed, &produced, &acked);
    for r in &consumed {
        assert_eq!(
            r.timestamp,
            Timestamp::CreateTime(T0 + r.offset * 1000),
            "timestamp of offset {}",
            r.offset
        );
    }

    assert_eq!(watermarks(&broker, TOPIC, 0), (0, N));
    assert_eq!(watermarks(&broker, TOPIC, 1), (0, 0));
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(client.list_offset(TOPIC, 0, EARLIEST), (NONE, 0));
    assert_eq!(client.list_offset(TOPIC, 0, LATEST), (NONE, N));

    // (query timestamp, expected offset): the first *record* at or after it,
    // as Kafka answers (not the first batch: the 100 records here share a
    // few batches, and a consumer seeking to a batch's base offset would
    // read records older than it asked for).
    let queries = [
        (T0 - 5_000, Offset::Offset(0)),
        (T0, Offset::Offset(0)),
        (T0 + 50_000, Offset::Offset(50)),
        (T0 + 49_999, Offset::Offset(50)),
        (T0 + (N - 1) * 1000, Offset::Offset(N - 1)),
        (T0 + N * 1000, Offset::End),
    ];
    let consumer = consumer(&broker, &[]);
    let mut wrong = Vec::new();
    for (ts, expected) in queries {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(ts))
            .expect("tpl");
        let answer = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("offsets_for_times({ts}): {e}"));
        let element = answer.find_partition(TOPIC, 0).expect("partition 0");
        assert!(
            element.error().is_ok(),
            "offsets_for_times({ts}): {:?}",
            element.error()
        );
        if element.offset() != expected {
            wrong.push(format!(
                "T0{:+} ms: got {:?}, expected {expected:?}",
                ts - T0,
                element.offset()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "offsets_for_times (records at T0 + 1000 ms x offset):\n  {}",
        wrong.join("\n  ")
    );
}

/// Fetch inside [log start, high watermark] succeeds (at the high watermark
/// with no records); outside it is OFFSET_OUT_OF_RANGE.
#[test]
fn fetch_outside_the_log_is_offset_out_of_range() {
    const TOPIC: &str = "range";
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    let dir = DataDir::new("range");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    let r = client.produce(TOPIC, 0, raw::simple_batch("r", 10));
    assert_eq!((r.error_code, r.base_offset), (NONE, 0));

    for offset in [0, 9] {
        let data = client.fetch(TOPIC, 0, offset);
        assert_eq!(data.error_code, NONE, "fetch at {offset}");
        assert_eq!(
            data.high_watermark, 10,
            "high watermark in fetch at {offset}"
        );
        assert!(
            data.records.is_some_and(|r| !r.is_empty()),
            "records at {offset}"
        );
    }
    let at_end = client.fetch(TOPIC, 0, 10);
    assert_eq!(at_end.error_code, NONE, "fetch at the high watermark");
    assert!(
        at_end.records.is_none_or(|r| r.is_empty()),
        "records past the high watermark"
    );
    for offset in [11, 1_000, -5] {
        let data = client.fetch(TOPIC, 0, offset);
        assert_eq!(data.error_code, OFFSET_OUT_OF_RANGE, "fetch at {offset}");
    }
}

#[test]
fn fetch_long_polls_until_min_bytes_or_max_wait() {
    const TOPIC: &str = "longpoll";
    let dir = DataDir::new("longpoll");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(
        client
            .produce(TOPIC, 0, raw::simple_batch("a", 3))
            .error_code,
        NONE
    );

    // Some data is there, but less than min_bytes: the broker waits for
    // max_wait before answering with what it has.
    let request = raw::fetch_request(TOPIC, 0, 0)
        .with_max_wait_ms(400)
        .with_min_bytes(1 << 20);
    let started = std::time::Instant::now();
    let response = client.call(raw::FETCH_V, &request);
    let waited = started.elapsed();
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert_eq!(
        raw::decode_values(&records).len(),
        3,
        "the data that was there"
    );
    assert!(
        waited >= Duration::from_millis(350),
        "answered after {waited:?}, before max_wait"
    );

    // New data that reaches min_bytes ends the wait early.
    let addr = broker.addr().to_string();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut c = RawClient::connect(&addr);
        c.produce(TOPIC, 0, raw::simple_batch("b", 2)).error_code
    });
    let request = raw::fetch_request(TOPIC, 0, 3)
        .with_max_wait_ms(20_000)
        .with_min_bytes(1);
    let started = std::time::Instant::now();
    let response = client.call(raw::FETCH_V, &request);
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert_eq!(writer.join().unwrap(), NONE);
    assert_eq!(
        raw::decode_values(&records).len(),
        2,
        "woken by the new batch"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not woken by new data"
    );
}
