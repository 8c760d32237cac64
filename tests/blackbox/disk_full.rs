//! A full disk is an error, not an outage: each shard keeps the next WAL
//! segment's space reserved (a spare file), so running out of space is
//! found before any frame is promised to a segment that cannot be made.
//! Produce then gets KAFKA_STORAGE_ERROR (retriable), reads go on, and
//! once retention, DeleteRecords or a topic deletion frees space, produce
//! resumes without a restart; nothing acknowledged is lost, also after
//! `kill -9` and a restart on the full disk. The disk is a small tmpfs
//! (root only; tmpfs takes O_DIRECT and fallocate).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use rdkafka::Offset;

use crate::harness::{delete_records, wait_until, Broker, DataDir};
use crate::raw::{batch, decode_values, simple_batch, RawClient, Rec, NONE};

const KAFKA_STORAGE_ERROR: i16 = 56;

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

/// Ten records of 10 KB each.
fn bulk_batch() -> Bytes {
    let value = vec![7u8; 10_000];
    let recs: Vec<Rec<'_>> = (0..10)
        .map(|_| Rec {
            key: None,
            value: Some(&value),
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        })
        .collect();
    batch(&recs, Compression::None)
}

/// Before, a full disk poisoned the WAL and stopped the broker (status
/// 70): an outage until someone freed space and restarted it.
#[test]
fn a_full_disk_refuses_produce_keeps_reading_and_resumes_when_space_is_freed() {
    let disk = SmallDisk::mount("disk-full", 48);
    let data = disk.path().join("data");
    let args = ["--wal-segment-mib", "4", "--log-cleaner-interval-ms", "100"];
    let mut broker = Broker::start(&data, 1, &args);
    crate::harness::create_topic(&broker, "keep", 1, &[]);
    crate::harness::create_topic(&broker, "bulk", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    for i in 0..20 {
        let r = client.produce("keep", 0, simple_batch(&format!("keep{i}"), 5));
        assert_eq!(r.error_code, NONE);
    }
    // 48 MiB of disk and 4 MiB segments: full after about 40 MB.
    let mut refused = None;
    for _ in 0..1_000 {
        let code = client.produce("bulk", 0, bulk_batch()).error_code;
        if code != NONE {
            refused = Some(code);
            break;
        }
    }
    assert_eq!(refused, Some(KAFKA_STORAGE_ERROR), "{}", broker.log());
    assert!(
        broker.is_running(),
        "the broker stopped on a full disk\n{}",
        broker.log()
    );
    assert!(broker.run_log_has(&["no space for the next WAL segment"]));
    // Still full: refused again; reads go on.
    let again = client.produce("bulk", 0, bulk_batch()).error_code;
    assert_eq!(again, KAFKA_STORAGE_ERROR);
    let kept = client.fetch("keep", 0, 0);
    assert_eq!(kept.error_code, NONE);
    assert_eq!(decode_values(&kept.records.unwrap_or_default()).len(), 100);

    // A restart on the full disk starts, and still refuses.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    let code = client.produce("bulk", 0, bulk_batch()).error_code;
    assert_eq!(code, KAFKA_STORAGE_ERROR, "{}", broker.last_run_log());

    // DeleteRecords frees the bulk topic's segments; produce resumes.
    let high = client.high_watermark("bulk", 0);
    assert_eq!(delete_records(&broker, "bulk", 0, Offset::End), Ok(high));
    let resumed = wait_until(Duration::from_secs(20), || {
        client.produce("bulk", 0, bulk_batch()).error_code == NONE
    });
    assert!(
        resumed,
        "produce did not resume after space was freed\n{}",
        broker.last_run_log()
    );
    assert!(broker.run_log_has(&["appends resume"]));
    // Everything acknowledged is there, after one more kill.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.addr());
    let kept = client.fetch("keep", 0, 0);
    let values: Vec<Vec<u8>> = decode_values(&kept.records.unwrap_or_default())
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect();
    let expected: Vec<Vec<u8>> = (0..20)
        .flat_map(|i| (0..5).map(move |j| format!("keep{i}-{j}").into_bytes()))
        .collect();
    assert_eq!(values, expected);
    assert!(client.high_watermark("bulk", 0) > high);
}
