//! Checkpoints: a restart loads the newest one and replays only the WAL
//! after it, after `kill -9` and after a clean stop (which writes one, so
//! nothing is replayed); a damaged checkpoint is reported and not used,
//! and the data is all there either way.

use std::time::Duration;

use rdkafka::Offset;

use crate::harness::{
    consume_to_end, create_topic, delete_records, produce_range, producer, wait_until, watermarks,
    Broker, DataDir,
};
use crate::retention::{commit, committed, logged_total};
use crate::verify::{check_acked, Acked, Produced};

/// A checkpoint after every MiB written, looked for every 50 ms.
const OFTEN: &[&str] = &[
    "--checkpoint-interval-mib",
    "1",
    "--log-cleaner-interval-ms",
    "50",
    "--wal-segment-mib",
    "4",
];

/// Ids of the messages of "trim" (those of "c" are below).
const TRIM: u64 = 1_000_000;

/// The acknowledgements of "c".
fn only_c(acked: &Acked) -> Acked {
    acked
        .iter()
        .filter(|(id, _)| **id < TRIM)
        .map(|(id, at)| (*id, *at))
        .collect()
}

/// Frames the last run replayed, over every shard.
fn replayed(broker: &Broker) -> u64 {
    logged_total(&broker.last_run_log(), "WAL recovered", "frames")
}

/// Shards the last run started from a checkpoint.
fn from_checkpoint(broker: &Broker) -> usize {
    broker
        .last_run_log()
        .lines()
        .filter(|l| l.contains("WAL recovered") && !l.contains("checkpoint=0 "))
        .count()
}

/// Every acknowledged message of "c" is there once, in order; the log
/// start DeleteRecords set on "trim" and the committed offsets are as set.
fn check(broker: &Broker, produced: &Produced, acked: &Acked, label: &str) {
    let records = consume_to_end(broker, "c", Duration::from_secs(30));
    check_acked(label, &records, produced, acked);
    assert_eq!(
        watermarks(broker, "trim", 0),
        (10, 20),
        "{label}: log start"
    );
    assert_eq!(
        committed(broker, "g", "c"),
        [Offset::Offset(7), Offset::Offset(9)],
        "{label}: committed offsets"
    );
}

#[test]
fn a_restart_replays_only_what_came_after_the_checkpoint() {
    let dir = DataDir::new("checkpoints");
    let mut broker = Broker::start(dir.path(), 2, OFTEN);
    create_topic(&broker, "c", 4, &[]);
    let p = producer(&broker, &[("linger.ms", "5"), ("batch.size", "16384")]);
    let mut produced = produce_range(&p, "c", 4, 0..6_000, 1_000);
    assert!(p.flush(Duration::from_secs(30)));
    commit(&broker, "g", "c", &[(0, 7), (1, 9)]);
    create_topic(&broker, "trim", 1, &[]);
    produce_range(&p, "trim", 1, TRIM..TRIM + 20, 100);
    assert!(p.flush(Duration::from_secs(30)));
    assert_eq!(
        delete_records(&broker, "trim", 0, Offset::Offset(10)),
        Ok(10)
    );
    // Both shards checkpoint the 6 MB (more than the interval each).
    assert!(
        wait_until(Duration::from_secs(20), || broker
            .log()
            .matches("checkpoint written")
            .count()
            >= 2),
        "no checkpoints:\n{}",
        broker.log()
    );
    // A little more after it, then killed.
    produced.extend(produce_range(&p, "c", 4, 6_000..6_100, 100));
    assert!(p.flush(Duration::from_secs(30)));
    let mut acked = only_c(&p.acked());
    broker.kill9();
    broker.restart();
    assert_eq!(from_checkpoint(&broker), 2, "{}", broker.last_run_log());
    let after_kill = replayed(&broker);
    check(&broker, &produced, &acked, "after kill -9");

    // A clean stop writes a checkpoint of everything: nothing to replay.
    produced.extend(produce_range(&p, "c", 4, 6_100..6_200, 100));
    assert!(p.flush(Duration::from_secs(30)));
    acked = only_c(&p.acked());
    assert!(broker.sigterm().success());
    broker.restart();
    assert_eq!(from_checkpoint(&broker), 2, "{}", broker.last_run_log());
    assert_eq!(replayed(&broker), 0, "{}", broker.last_run_log());
    check(&broker, &produced, &acked, "after a clean stop");

    // A damaged newest checkpoint is reported and not used; the one before
    // it (or a full replay) gives the same log.
    assert!(broker.sigterm().success());
    for shard in 0..2 {
        let ckpt = dir.path().join(format!("shard-{shard}/checkpoints"));
        let mut files: Vec<_> = std::fs::read_dir(&ckpt)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let newest = files.last().expect("a checkpoint");
        let mut bytes = std::fs::read(newest).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(newest, bytes).unwrap();
    }
    // `sluice wal inspect` says which checkpoint the next start uses.
    let out = crate::harness::wal_inspect(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("NOT USABLE: checksum mismatch"), 2, "{text}");
    assert_eq!(lines("the next start replays the"), 2, "{text}");
    broker.restart();
    let log = broker.last_run_log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("checkpoint not used") && l.contains("checksum"))
            .count(),
        2,
        "{log}"
    );
    check(&broker, &produced, &acked, "after a damaged checkpoint");

    // Without any checkpoint: a full replay.
    assert!(broker.sigterm().success());
    std::fs::remove_dir_all(dir.path().join("shard-0/checkpoints")).unwrap();
    std::fs::remove_dir_all(dir.path().join("shard-1/checkpoints")).unwrap();
    broker.restart();
    assert_eq!(from_checkpoint(&broker), 0, "{}", broker.last_run_log());
    // What the first restart replayed after its checkpoint is a small part
    // of the whole log.
    let full = replayed(&broker);
    assert!(
        full > 300 && after_kill * 4 < full,
        "after kill -9: {after_kill} frames replayed, {full} in a full replay\n{}",
        broker.log()
    );
    check(&broker, &produced, &acked, "after a full replay");
}
