//! A full disk: the broker that cannot write stops (crash-only, its WAL
//! failed), a restart on the still-full disk says what is wrong and exits
//! without a panic, and once space is freed everything acknowledged is
//! there. The disk is a small tmpfs (root only; tmpfs takes O_DIRECT).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{consume_to_end, create_topic, producer, wait_until, Broker, DataDir};
use crate::verify::check_acked;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: DataDir,
}

impl SmallDisk {
    fn mount(name: &str, mib: usize) -> SmallDisk {
        let dir = DataDir::new(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs (needs root): {status}");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_stops_the_broker_and_a_restart_after_freeing_space_keeps_every_ack() {
    const TOPIC: &str = "full";
    let disk = SmallDisk::mount("disk-full", 40);
    // Space an operator can free later.
    let ballast: PathBuf = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 8 << 20]).expect("ballast");
    let data = disk.path().join("data");
    let mut broker = Broker::start(&data, 1, &["--wal-segment-mib", "4"]);
    create_topic(&broker, TOPIC, 2, &[]);

    let producer = producer(
        &broker,
        &[("linger.ms", "5"), ("message.timeout.ms", "10000")],
    );
    let mut produced = BTreeMap::new();
    let mut id = 0u64;
    // 40 MiB of disk: the WAL runs out after about 3,000 messages.
    while broker.is_running() && id < 20_000 {
        let partition = (id % 2) as i32;
        producer.send_id(TOPIC, partition, id, 10_000);
        produced.insert(id, partition);
        id += 1;
        if id.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let status = broker
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the broker did not stop on a full disk\n{}", broker.log()));
    assert_eq!(status.code(), Some(70), "exit status\n{}", broker.log());
    producer.purge();
    assert!(
        producer.flush(Duration::from_secs(15)),
        "reports after purge"
    );
    let acked = producer.acked();
    assert!(
        acked.len() > 100,
        "premise: {} acked before the disk filled",
        acked.len()
    );

    // Still full: refused with a reason, not a panic.
    let refused = broker.try_restart().expect_err("started on a full disk");
    assert_eq!(
        refused.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("disk is full"),
        "no clear reason: {}",
        refused.stderr
    );

    std::fs::remove_file(&ballast).expect("free space");
    broker.restart();
    assert!(wait_until(Duration::from_secs(5), || broker.is_running()));
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_acked(
        "after the disk filled and space was freed",
        &consumed,
        &produced,
        &acked,
    );
}
