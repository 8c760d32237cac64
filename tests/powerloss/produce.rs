//! Power cuts while a producer streams: every acknowledged message must
//! survive, at its offset, once, in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{
    consume_to_end, create_topic, produce_until, producer, seed, wait_until, Broker, Rng,
};
use crate::verify::check_acked;
use crate::Disk;

/// Six power cuts at random acknowledgements while one producer streams
/// into 6 partitions on 2 shards with 1 MiB WAL segments (so cuts also
/// land around segment rolls: new files and directory syncs). Every other
/// producer sends unbatched (linger.ms=0), for many small flushes racing.
#[test]
fn power_cuts_while_producing_keep_every_ack() {
    const TOPIC: &str = "powerloss";
    const PARTITIONS: i32 = 6;
    const CUTS: u64 = 6;
    const PER_CUT: u64 = 40_000;
    let started = Instant::now();
    let seed = seed();
    eprintln!("[powerloss] seed {seed}");
    let mut rng = Rng::new(seed);

    let mut disk = Disk::mount("powerloss");
    let data = disk.data_dir();
    // A checkpoint after every MiB (looked for every 50 ms): restarts
    // start from one.
    let args = [
        "--wal-segment-mib",
        "1",
        "--checkpoint-interval-mib",
        "1",
        "--log-cleaner-interval-ms",
        "50",
    ];
    let mut broker = Broker::start(&data, 2, &args);
    create_topic(&broker, TOPIC, PARTITIONS, &[]);

    let (mut produced, mut acked) = (BTreeMap::new(), BTreeMap::new());
    let (mut interrupted, mut refused, mut chunks_dropped) = (0, 0, 0);
    for cut in 0..CUTS {
        let linger_ms = if cut % 2 == 0 { "1" } else { "0" };
        let producer = Arc::new(producer(&broker, &[("linger.ms", linger_ms)]));
        // The moment: inside the delivery callback of a random ack, so the
        // cut lands while flushes are in flight, not after a quiet pause.
        let at_acks = rng.range(500, PER_CUT * 3 / 4) as usize;
        let (switch, pid, reports) = (disk.fs.switch(), broker.pid(), AtomicUsize::new(0));
        producer.on_report(move |_| {
            if reports.fetch_add(1, Ordering::SeqCst) + 1 == at_acks {
                switch.cut();
                // SAFETY: kill(2) on the broker's pid.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let ids = cut * PER_CUT..(cut + 1) * PER_CUT;
        let sender = produce_until(producer.clone(), TOPIC, PARTITIONS, stop.clone(), ids, 100);
        assert!(
            wait_until(Duration::from_secs(60), || !broker.is_running()),
            "cut {cut}: no power cut at report {at_acks} within 60 s ({} reports)",
            producer.report_count()
        );
        broker.kill9(); // reap, wait for its sockets to close
        stop.store(true, Ordering::SeqCst);
        let sent = sender.join().expect("producer thread");
        // A dead broker acknowledges nothing more.
        producer.purge();
        assert!(
            producer.flush(Duration::from_secs(10)),
            "reports after purge"
        );
        let cut_acked = producer.acked();
        if cut_acked.len() < sent.len() {
            interrupted += 1;
        }
        let (sent_count, acked_count) = (sent.len(), cut_acked.len());
        produced.extend(sent);
        acked.extend(cut_acked);

        let dropped = disk
            .fs
            .reboot()
            .expect("remount after the cut")
            .expect("the callback cut the power");
        let counters = disk.fs.counters();
        eprintln!(
            "[powerloss] cut {cut} at report {at_acks} (linger.ms={linger_ms}): \
             {sent_count} sent, {acked_count} acked; dropped {} unsynced chunks in {} \
             files, {} directories rewound, {} inodes forgotten; {} requests refused \
             after the cut; totals: {} writes, {} file syncs, {} directory syncs",
            dropped.chunks_dropped,
            dropped.files_rewound,
            dropped.dirs_rewound,
            dropped.inodes_forgotten,
            counters.refused - refused,
            counters.writes,
            counters.file_syncs,
            counters.dir_syncs,
        );

        refused = counters.refused;
        chunks_dropped += dropped.chunks_dropped;

        broker.restart();
        let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
        check_acked(
            &format!("after power cut number {}", cut + 1),
            &consumed,
            &produced,
            &acked,
        );
    }
    assert!(
        interrupted * 2 > CUTS,
        "premise: only {interrupted} of {CUTS} cuts interrupted the stream"
    );
    assert!(
        chunks_dropped > 0,
        "premise: no cut found unsynced data to drop"
    );
    let loaded = broker.log().matches("checkpoint loaded").count();
    eprintln!(
        "[powerloss] {CUTS} cuts, {} acknowledged messages all recovered, {loaded} restarts of a shard from a checkpoint, {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(loaded > 0, "premise: no restart started from a checkpoint");
}
