//! Power cuts while retention and the cleaner work: a topic that keeps
//! 64 KiB per partition streams 1 KiB messages through 1 MiB segments,
//! so segments are deleted and their live frames (a long-lived topic
//! streaming beside it, a group's committed offsets) copied forward all
//! the time. At each cut what the broker had not synced is forgotten,
//! including segment deletions whose directory was not synced; every
//! acknowledged message of the long-lived topic and the last committed
//! offsets must be there after the restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::{
    consume_to_end, consumer, create_topic, produce_until, producer, seed, wait_until, Broker, Rng,
};
use crate::verify::check_acked;
use crate::Disk;

/// Ids of the long topic: above the short one's, within the 12 digits a value holds.
const LONG_IDS: u64 = 100_000_000_000;

fn offsets(topic: &str, o: i64) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(o))
        .unwrap();
    list
}

#[test]
fn power_cuts_while_cleaning_keep_every_ack() {
    const CUTS: u64 = 4;
    let seed = seed();
    eprintln!("[powerloss-cleaning] seed {seed}");
    let mut rng = Rng::new(seed);
    let mut disk = Disk::mount("powerloss-cleaning");
    let data = disk.data_dir();
    // A checkpoint after every MiB: cuts also land while one is written,
    // and restarts start from one.
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
    let mut broker = Broker::start(&data, 2, &args);
    create_topic(&broker, "short", 2, &[("retention.bytes", "65536")]);
    create_topic(&broker, "long", 2, &[]);
    let (mut produced, mut acked) = (BTreeMap::new(), BTreeMap::new());
    for cut in 0..CUTS {
        let committer = consumer(&broker, &[("group.id", "keeper")]);
        committer
            .commit(&offsets("long", cut as i64 + 1), CommitMode::Sync)
            .expect("commit");
        let short = Arc::new(producer(&broker, &[("linger.ms", "1")]));
        let long = Arc::new(producer(&broker, &[("linger.ms", "1")]));
        let at_acks = rng.range(200, 3_000) as usize;
        let (switch, pid, reports) = (disk.fs.switch(), broker.pid(), AtomicUsize::new(0));
        long.on_report(move |_| {
            if reports.fetch_add(1, Ordering::SeqCst) + 1 == at_acks {
                switch.cut();
                // SAFETY: kill(2) on the broker's pid.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let base = cut * 1_000_000;
        let short_sender = produce_until(
            short.clone(),
            "short",
            2,
            stop.clone(),
            base..base + 1_000_000,
            1_000,
        );
        let long_ids = LONG_IDS + base..LONG_IDS + base + 1_000_000;
        // The long topic at a tenth of the pace: a message now and then.
        let long_sender = {
            let (long, stop) = (long.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sent = BTreeMap::new();
                for id in long_ids {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    long.send_id("long", (id % 2) as i32, id, 200);
                    sent.insert(id, (id % 2) as i32);
                    std::thread::sleep(Duration::from_micros(200));
                }
                sent
            })
        };
        assert!(
            wait_until(Duration::from_secs(60), || !broker.is_running()),
            "cut {cut}: no power cut at report {at_acks} within 60 s"
        );
        broker.kill9();
        stop.store(true, Ordering::SeqCst);
        short_sender.join().expect("short producer");
        let sent = long_sender.join().expect("long producer");
        for p in [&short, &long] {
            p.purge();
            assert!(p.flush(Duration::from_secs(10)), "reports after purge");
        }
        produced.extend(sent);
        acked.extend(long.acked());
        let dropped = disk
            .fs
            .reboot()
            .expect("remount after the cut")
            .expect("the callback cut the power");
        let counters = disk.fs.counters();
        eprintln!(
            "[powerloss-cleaning] cut {cut} at long report {at_acks}: dropped {} unsynced chunks, \
             {} directories rewound; totals {} file syncs, {} directory syncs",
            dropped.chunks_dropped, dropped.dirs_rewound, counters.file_syncs, counters.dir_syncs
        );
        broker.restart();
        let cleaned = broker
            .log()
            .lines()
            .filter(|l| l.contains("WAL space reclaimed") && !l.contains("segments_cleaned=0"))
            .count();
        let consumed = consume_to_end(&broker, "long", Duration::from_secs(60));
        check_acked(
            &format!("long after power cut number {} (seed {seed})", cut + 1),
            &consumed,
            &produced,
            &acked,
        );
        let committed = consumer(&broker, &[("group.id", "keeper")])
            .committed_offsets(offsets("long", 0), Duration::from_secs(10))
            .expect("committed offsets");
        assert_eq!(
            committed.elements()[0].offset(),
            Offset::Offset(cut as i64 + 1),
            "cut {cut} (seed {seed}): the committed offset"
        );
        eprintln!("[powerloss-cleaning] cut {cut}: {cleaned} cleaner passes that copied so far");
    }
}
