//! The log's life: retention that is enforced (retention.bytes and
//! retention.ms move the log start durably), DeleteRecords from a real
//! admin client, and the cleaner that gives WAL space back although one
//! shard's segments mix partitions: a long-retention topic and a group's
//! committed offsets, written once among data that expires, are copied
//! forward instead of pinning every old segment. Everything survives
//! `kill -9`.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::{
    consume_to_end, consumer, create_topic, delete_records, produce_range, producer, wait_until,
    wal_bytes, watermarks, Broker, DataDir,
};
use crate::raw::RawClient;
use crate::verify::check_acked;

const MIB: u64 = 1 << 20;
const LONG: u64 = 1_000_000;
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Small segments, and retention and the cleaner every few hundred ms.
const FAST_LIFECYCLE: &[&str] = &[
    "--wal-segment-mib",
    "1",
    "--log-retention-check-interval-ms",
    "200",
    "--log-cleaner-interval-ms",
    "100",
];

/// Commits `offsets` (partition → offset) of `topic` for `group`.
pub(crate) fn commit(broker: &Broker, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c = consumer(broker, &[("group.id", group)]);
    let mut list = TopicPartitionList::new();
    for &(p, o) in offsets {
        list.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
    }
    c.commit(&list, CommitMode::Sync).expect("commit");
}

/// The offsets `group` has committed for partitions 0 and 1 of `topic`.
pub(crate) fn committed(broker: &Broker, group: &str, topic: &str) -> Vec<Offset> {
    let c = consumer(broker, &[("group.id", group)]);
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    list.add_partition(topic, 1);
    let got = c
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements().iter().map(|e| e.offset()).collect()
}

/// The number a `key=N` field of the broker's log lines adds up to.
pub(crate) fn logged_total(log: &str, line: &str, key: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(line))
        .filter_map(|l| {
            let at = l.find(&format!("{key}="))? + key.len() + 1;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The Done-when of the log lifecycle: far more than `retention.bytes`
/// goes into one topic while a topic without limit and a group's committed
/// offsets, written once at the start, stay; the WAL stays within
/// live x 1.5 + two segments per shard; after `kill -9` the long topic and
/// the offsets are intact and the short topic starts at a moved log start.
#[test]
fn retention_bytes_bounds_the_wal_while_long_lived_data_stays() {
    let dir = DataDir::new("retention-bytes");
    let mut broker = Broker::start(dir.path(), 2, FAST_LIFECYCLE);
    create_topic(&broker, "short", 2, &[("retention.bytes", "262144")]);
    create_topic(&broker, "long", 2, &[]);
    let p = producer(&broker, &[("batch.size", "16384"), ("linger.ms", "5")]);
    // The long topic and the offsets land among the first short batches,
    // in the oldest segments.
    // Ids are unique per producer: the long topic's start at a million.
    let mut long_produced = produce_range(&p, "long", 2, LONG..LONG + 400, 200);
    produce_range(&p, "short", 2, 0..2_000, 1_000);
    long_produced.extend(produce_range(&p, "long", 2, LONG + 400..LONG + 800, 200));
    assert!(p.flush(Duration::from_secs(30)), "first produce not acked");
    commit(&broker, "keeper", "long", &[(0, 123), (1, 77)]);
    // Then 40 MB more into the short topic: 20 times what it keeps.
    for round in 1..20u64 {
        produce_range(&p, "short", 2, round * 2_000..(round + 1) * 2_000, 1_000);
        assert!(p.flush(Duration::from_secs(30)), "round {round} not acked");
    }
    let long_acked: std::collections::BTreeMap<u64, (i32, i64)> = p
        .acked()
        .into_iter()
        .filter(|(id, _)| long_produced.contains_key(id))
        .collect();
    assert_eq!(long_acked.len(), 800, "{:?}", p.failures().first());

    // Live: 256 KiB and at most a batch per short partition, the long
    // topic, frame headers; two 1 MiB segments per shard.
    let live = 2 * (256 + 16) * 1024 + 800 * 300;
    let bound = live * 3 / 2 + 2 * 2 * MIB;
    let within = wait_until(Duration::from_secs(30), || wal_bytes(&dir) <= bound);
    let log = broker.log();
    assert!(
        within,
        "WAL is {} bytes, bound {bound}, after writing {} MB\n{log}",
        wal_bytes(&dir),
        40
    );
    eprintln!(
        "[retention] 40 MB produced, WAL {} bytes (bound {bound}), {} frames copied forward",
        wal_bytes(&dir),
        logged_total(&log, "WAL space reclaimed", "frames_copied")
    );
    assert!(
        logged_total(&log, "WAL space reclaimed", "segments_cleaned") > 0,
        "no segment was cleaned: the long topic was never copied forward\n{log}"
    );

    broker.kill9();
    broker.restart();
    let records = consume_to_end(&broker, "long", Duration::from_secs(30));
    check_acked("long after kill -9", &records, &long_produced, &long_acked);
    assert_eq!(
        committed(&broker, "keeper", "long"),
        [Offset::Offset(123), Offset::Offset(77)]
    );
    for partition in 0..2 {
        let (low, high) = watermarks(&broker, "short", partition);
        assert!(low > 0, "short/{partition}: log start did not move");
        assert_eq!(high, 20_000, "short/{partition}: high watermark");
    }
    let short = consume_to_end(&broker, "short", Duration::from_secs(30));
    for partition in 0..2 {
        let offsets: Vec<i64> = short
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset)
            .collect();
        let (low, _) = watermarks(&broker, "short", partition);
        let expected: Vec<i64> = (low..20_000).collect();
        assert_eq!(offsets, expected, "short/{partition} after kill -9");
    }
}

/// retention.ms: batches whose newest timestamp is older than the topic
/// keeps go (here: all of them, after a second).
#[test]
fn retention_ms_moves_the_log_start_past_old_batches() {
    let dir = DataDir::new("retention-ms");
    let broker = Broker::start(dir.path(), 1, FAST_LIFECYCLE);
    create_topic(&broker, "brief", 1, &[("retention.ms", "1000")]);
    create_topic(&broker, "kept", 1, &[]);
    let p = producer(&broker, &[]);
    produce_range(&p, "brief", 1, 0..100, 100);
    produce_range(&p, "kept", 1, LONG..LONG + 100, 100);
    assert!(p.flush(Duration::from_secs(30)));
    let moved = wait_until(Duration::from_secs(10), || {
        watermarks(&broker, "brief", 0) == (100, 100)
    });
    assert!(
        moved,
        "brief: {:?}\n{}",
        watermarks(&broker, "brief", 0),
        broker.log()
    );
    assert_eq!(watermarks(&broker, "kept", 0), (0, 100));
}

/// DeleteRecords from a real admin client moves the log start durably; a
/// fetch below it gets OFFSET_OUT_OF_RANGE, a consumer resets to it, and
/// past the high watermark is refused.
#[test]
fn delete_records_moves_the_log_start_durably() {
    let dir = DataDir::new("delete-records");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "trim", 1, &[]);
    let p = producer(&broker, &[]);
    produce_range(&p, "trim", 1, 0..100, 100);
    assert!(p.flush(Duration::from_secs(30)));

    assert_eq!(
        delete_records(&broker, "trim", 0, Offset::Offset(40)),
        Ok(40)
    );
    assert!(
        delete_records(&broker, "trim", 0, Offset::Offset(101)).is_err(),
        "past the high watermark must be refused"
    );
    assert_eq!(watermarks(&broker, "trim", 0), (40, 100));
    let below = RawClient::connect(broker.addr()).fetch("trim", 0, 10);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE);
    let records = consume_to_end(&broker, "trim", Duration::from_secs(20));
    assert_eq!(records.first().map(|r| r.offset), Some(40));
    assert_eq!(records.len(), 60);

    broker.kill9();
    broker.restart();
    assert_eq!(watermarks(&broker, "trim", 0), (40, 100));
    assert_eq!(delete_records(&broker, "trim", 0, Offset::End), Ok(100));
    assert_eq!(
        delete_records(&broker, "trim", 0, Offset::Offset(50)),
        Ok(100)
    );
    broker.kill9();
    broker.restart();
    assert_eq!(watermarks(&broker, "trim", 0), (100, 100));
}

/// Kills the broker at random moments while retention and the cleaner
/// work (1 MiB segments, a pass every 20 ms, a short topic that expires
/// as fast as it is written, a long topic and group offsets that must be
/// copied forward): after every restart each acknowledged message of the
/// long topic is there exactly once, in order, and the last committed
/// offsets are intact. `SLUICE_CLEANER_TRIALS` (default 20) and
/// `SLUICE_CLEANER_SEED` (default fixed) make the long run of the README.
#[test]
fn kills_during_cleaning_lose_and_duplicate_nothing() {
    let trials: u64 = std::env::var("SLUICE_CLEANER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("SLUICE_CLEANER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_130);
    let mut rng = crate::harness::Rng::new(seed);
    // Checkpoints as often as they go, so kills also land while one is
    // written and restarts start from them.
    let args = [
        "--wal-segment-mib",
        "1",
        "--log-retention-check-interval-ms",
        "50",
        "--log-cleaner-interval-ms",
        "20",
        "--checkpoint-interval-mib",
        "1",
    ];
    let dir = DataDir::new("kill-while-cleaning");
    let mut broker = Broker::start(dir.path(), 2, &args);
    create_topic(&broker, "short", 2, &[("retention.bytes", "65536")]);
    create_topic(&broker, "long", 2, &[]);
    let (mut produced, mut acked) = (
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    );
    let (mut cleaned, mut copied, mut checkpointed, mut loaded) = (0, 0, 0, 0);
    for trial in 0..trials {
        let p = producer(&broker, &[("batch.size", "16384"), ("linger.ms", "2")]);
        // Ids are unique per producer; the long topic's far above the short's.
        let (base, long_base) = (trial * 10_000, 100_000_000_000 + trial * 10_000);
        let long = produce_range(&p, "long", 2, long_base..long_base + 100, 200);
        produce_range(&p, "short", 2, base..base + 2_000, 1_000);
        commit(
            &broker,
            "keeper",
            "long",
            &[(0, trial as i64), (1, 2 * trial as i64)],
        );
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        broker.kill9_at_once();
        let log = broker.last_run_log();
        cleaned += logged_total(&log, "WAL space reclaimed", "segments_cleaned");
        checkpointed += log.matches("checkpoint written").count();
        copied += logged_total(&log, "WAL space reclaimed", "frames_copied");
        p.purge();
        assert!(p.flush(Duration::from_secs(10)), "reports after purge");
        acked.extend(
            p.acked()
                .into_iter()
                .filter(|(id, _)| long.contains_key(id)),
        );
        produced.extend(long);
        if let Err(e) = broker.try_restart() {
            panic!(
                "trial {trial} (seed {seed}): no restart: {e:?}\n{}",
                broker.log()
            );
        }
        loaded += broker.last_run_log().matches("checkpoint loaded").count();
        assert_eq!(
            committed(&broker, "keeper", "long"),
            [
                Offset::Offset(trial as i64),
                Offset::Offset(2 * trial as i64)
            ],
            "trial {trial} (seed {seed}): committed offsets"
        );
    }
    let records = consume_to_end(&broker, "long", Duration::from_secs(60));
    check_acked(
        &format!("long after {trials} kills while cleaning (seed {seed})"),
        &records,
        &produced,
        &acked,
    );
    eprintln!(
        "[cleaner] {trials} kills (seed {seed}): {} long messages acked, {cleaned} segments cleaned, {copied} frames copied, {checkpointed} checkpoints written, {loaded} loaded",
        acked.len()
    );
    assert!(loaded > 0, "premise: no restart started from a checkpoint");
    assert!(
        cleaned > 0,
        "premise: the cleaner never copied a segment forward"
    );
    assert!(
        acked.len() as u64 >= trials * 50,
        "premise: {} acked",
        acked.len()
    );
}

/// `sluice wal inspect` on a data directory says, per segment, how much is
/// still live (what the cleaner would copy before deleting it), and shows
/// the spare segment the WAL keeps for its next roll.
#[test]
fn wal_inspect_shows_what_is_live_and_the_spare() {
    let dir = DataDir::new("inspect-live");
    let mut broker = Broker::start(dir.path(), 1, &["--wal-segment-mib", "1"]);
    create_topic(&broker, "long", 1, &[]);
    let p = producer(&broker, &[("linger.ms", "0"), ("batch.num.messages", "1")]);
    produce_range(&p, "long", 1, LONG..LONG + 50, 4000);
    assert!(p.flush(Duration::from_secs(30)));
    assert_eq!(
        delete_records(&broker, "long", 0, Offset::Offset(20)).ok(),
        Some(20)
    );
    broker.kill9();
    let out = crate::harness::wal_inspect(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let segments = text
        .lines()
        .filter(|l| l.trim_start().starts_with("segment "))
        .count();
    let live: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("live: "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(live.len(), segments, "a live line per segment:\n{text}");
    // The 30 records still served (single-record batches of 4,000 bytes
    // and more), and the log start; not the 20 deleted, but for those in
    // the index chunk (64 KiB) holding the new log start.
    let total: u64 = live.iter().sum();
    assert!(
        (30 * 4000..50 * 4000).contains(&total),
        "live {total} bytes:\n{text}"
    );
    let spare = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("spare segment: "))
        .and_then(|l| l.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(spare >= MIB, "no spare of a segment's size:\n{text}");
}
