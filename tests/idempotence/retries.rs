//! librdkafka idempotent producers stream 30,000 messages over 4 partitions
//! while the broker is killed with SIGKILL and restarted two seconds later;
//! the producers keep retrying, and afterwards every message is there
//! exactly once, in per-partition order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{
    consume_to_end, create_topic, id_of, producer, wait_until, Broker, DataDir, Producer,
};

const PARTITIONS: i32 = 4;

/// Producer settings for exactly-once-per-partition writes that keep
/// retrying through a broker outage.
const IDEMPOTENT: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("message.send.max.retries", "2147483647"),
    ("retry.backoff.ms", "50"),
    ("message.timeout.ms", "120000"),
    ("linger.ms", "2"),
    ("batch.num.messages", "200"),
];

/// Streams ids `first..first + count` from each producer (ids interleaved by
/// producer), SIGKILLs the broker once `kill_after` messages are acknowledged,
/// restarts it two seconds later, and waits for every delivery report.
fn stream_through_a_crash(
    broker: &mut Broker,
    topic: &str,
    producers: &[Producer],
    count: u64,
    kill_after: usize,
) {
    let killed = Arc::new(AtomicBool::new(false));
    let total = producers.len() as u64 * count;
    std::thread::scope(|scope| {
        for (p, producer) in producers.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..count {
                    let id = i * producers.len() as u64 + p as u64;
                    producer.send_id(topic, (id % PARTITIONS as u64) as i32, id, 100);
                }
            });
        }
        // Kill once enough messages are acknowledged, while sending goes on.
        let acked = || producers.iter().map(|p| p.report_count()).sum::<usize>();
        assert!(
            wait_until(Duration::from_secs(60), || acked() >= kill_after),
            "only {} of {kill_after} messages acknowledged before the crash",
            acked()
        );
        broker.kill9();
        killed.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
        broker.restart();
    });
    assert!(killed.load(Ordering::SeqCst));
    for producer in producers {
        assert!(
            producer.flush(Duration::from_secs(120)),
            "delivery reports still outstanding"
        );
        let failures = producer.failures();
        assert!(
            failures.is_empty(),
            "idempotent producer gave up on messages: {:?}",
            &failures[..failures.len().min(5)]
        );
    }
    let acked: usize = producers.iter().map(|p| p.acked().len()).sum();
    assert_eq!(
        acked as u64, total,
        "every message must be acknowledged in the end"
    );
}

/// Every id of `0..total` exactly once, and per partition in increasing id
/// order at contiguous offsets from 0.
fn check_exactly_once(broker: &Broker, topic: &str, total: u64, producers: u64) {
    let records = consume_to_end(broker, topic, Duration::from_secs(60));
    let mut seen = BTreeMap::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for r in &records {
        let id = id_of(r.value.as_deref().unwrap_or_default()).expect("value carries its id");
        if let Some(previous) = seen.insert(id, (r.partition, r.offset)) {
            panic!(
                "message {id} stored twice: at {previous:?} and at ({}, {})",
                r.partition, r.offset
            );
        }
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.offset, id));
    }
    let missing: Vec<u64> = (0..total)
        .filter(|id| !seen.contains_key(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} messages missing, e.g. {missing:?}",
        total - seen.len() as u64
    );
    assert_eq!(seen.len() as u64, total);
    for (partition, mut log) in by_partition {
        log.sort_unstable();
        for (i, (offset, _)) in log.iter().enumerate() {
            assert_eq!(
                *offset, i as i64,
                "partition {partition}: offsets not contiguous"
            );
        }
        // Each producer's messages keep their order within the partition.
        for p in 0..producers {
            let ids: Vec<u64> = log
                .iter()
                .map(|(_, id)| *id)
                .filter(|id| id % producers == p)
                .collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "partition {partition}: producer {p} reordered"
            );
        }
    }
}

#[test]
fn idempotent_producer_survives_kill9_exactly_once() {
    let dir = DataDir::new("idem-one");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "idem", PARTITIONS, &[]);
    let producers = [producer(&broker, IDEMPOTENT)];
    stream_through_a_crash(&mut broker, "idem", &producers, 30_000, 8_000);
    check_exactly_once(&broker, "idem", 30_000, 1);
}

#[test]
fn several_idempotent_producers_survive_kill9_exactly_once() {
    let dir = DataDir::new("idem-many");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "idem-many", PARTITIONS, &[]);
    let producers: Vec<Producer> = (0..3).map(|_| producer(&broker, IDEMPOTENT)).collect();
    stream_through_a_crash(&mut broker, "idem-many", &producers, 10_000, 9_000);
    check_exactly_once(&broker, "idem-many", 30_000, 3);
}
