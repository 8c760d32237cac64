//! Power cuts while topics are being created: CreateTopics is answered
//! only once the topic is durable (the topics file is replaced by temp
//! file, fsync, rename, directory fsync), so every topic whose creation was
//! acknowledged must be there after the cut, with its partition count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

use crate::harness::{block_on, consumer, seed, Broker, Rng};
use crate::Disk;

/// Creates topics `t<cut>-<i>` (1 to 4 partitions) one after another until
/// one fails or `stop` is set; returns the acknowledged ones.
fn create_topics_until(
    addr: String,
    cut: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, usize)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .create()
            .expect("admin client");
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(2)))
            .request_timeout(Some(Duration::from_secs(2)));
        for i in 0u64.. {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let name = format!("t{cut}-{i}");
            let partitions = 1 + (i % 4) as usize;
            let topic = NewTopic::new(&name, partitions as i32, TopicReplication::Fixed(1));
            // Bounded: after the cut the broker is gone and rdkafka retries.
            let topics = [topic];
            let call = admin.create_topics(&topics, &options);
            let result =
                block_on(async { tokio::time::timeout(Duration::from_secs(3), call).await });
            match result {
                Ok(Ok(results)) if results.iter().all(|r| r.is_ok()) => {
                    acked.lock().unwrap().push((name, partitions));
                }
                _ => return,
            }
        }
    })
}

/// Three cuts at a random moment (50-400 ms in) while topics are created
/// one after another on 2 shards; after each reboot every acknowledged
/// topic exists with its partitions.
#[test]
fn acknowledged_topic_creations_survive_power_cuts() {
    const CUTS: u64 = 3;
    let seed = seed();
    eprintln!("[powerloss] topics seed {seed}");
    let mut rng = Rng::new(seed);

    let mut disk = Disk::mount("powerloss-topics");
    let data = disk.data_dir();
    let mut broker = Broker::start(&data, 2, &["--auto-create-topics", "false"]);
    let mut acked: Vec<(String, usize)> = Vec::new();
    for cut in 0..CUTS {
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(Mutex::new(Vec::new()));
        let creator = create_topics_until(
            broker.addr().to_string(),
            cut,
            stop.clone(),
            created.clone(),
        );
        std::thread::sleep(Duration::from_millis(rng.range(50, 400)));
        let dropped = disk.fs.switch().cut();
        // SAFETY: kill(2) on the broker's pid.
        unsafe { libc::kill(broker.pid(), libc::SIGKILL) };
        broker.kill9(); // reap
        stop.store(true, Ordering::SeqCst);
        creator.join().expect("topic creator thread");
        let created = std::mem::take(&mut *created.lock().unwrap());
        eprintln!(
            "[powerloss] topics cut {cut}: {} creations acknowledged; dropped {} unsynced \
             chunks in {} files, {} directories rewound, {} inodes forgotten",
            created.len(),
            dropped.chunks_dropped,
            dropped.files_rewound,
            dropped.dirs_rewound,
            dropped.inodes_forgotten,
        );
        acked.extend(created);
        disk.fs.reboot().expect("remount after the cut");

        broker.restart();
        let consumer = consumer(&broker, &[]);
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let present: BTreeMap<&str, usize> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name(), t.partitions().len()))
            .collect();
        let wrong: Vec<String> = acked
            .iter()
            .filter(|(name, partitions)| present.get(name.as_str()) != Some(partitions))
            .map(|(name, partitions)| {
                format!(
                    "{name}: {partitions} partitions acked, found {:?}",
                    present.get(name.as_str())
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "after power cut number {}: {} of {} acknowledged topics lost or changed: {}",
            cut + 1,
            wrong.len(),
            acked.len(),
            wrong[..wrong.len().min(10)].join("; ")
        );
    }
    assert!(
        !acked.is_empty(),
        "premise: no topic creation was acknowledged"
    );
}
