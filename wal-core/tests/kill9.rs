//! A real process appends in a loop and prints each acknowledgement; it is
//! killed with SIGKILL at a random moment; recovery must find every frame it
//! acknowledged, and the log must continue cleanly after repair.
//!
//! The child is this test binary itself, re-run with an environment variable
//! that turns `child_appender` into the appender.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{check_payload, payload, run, scan_all, Rng, Scratch};
use sluice_wal_core::{RecoveryMode, Wal, WalOptions};

const CHILD_DIR: &str = "SLUICE_WAL_KILL9_DIR";

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 256 << 10,
        write_buffer_size: 64 << 10,
        ..WalOptions::default()
    }
}

/// In the child: append forever from 8 tasks, print `ACK <id>` once durable.
#[test]
fn child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return; // Only does something when run as the child.
    };
    run(async move {
        let (wal, report) = Wal::open(Path::new(&dir), opts(), |_| {}).await.unwrap();
        let first_id = report.frames;
        let wal = Rc::new(wal);
        let next_id = Rc::new(std::cell::Cell::new(first_id));
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let (wal, next_id) = (wal.clone(), next_id.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut rng = Rng::new(t + 1);
                while Instant::now() < deadline {
                    let id = next_id.get();
                    next_id.set(id + 1);
                    let data = payload(id, rng.range(8, 6000) as usize);
                    wal.append(2, &data).await.unwrap();
                    println!("ACK {id}");
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn kill9_at_random_moments_loses_no_acknowledged_frame() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(std::process::id() as u64);
    for trial in 0..6 {
        let dir = Scratch::new("kill9");
        let mut acked_total = BTreeSet::new();
        // Two lives of the appender per trial: the second starts on the
        // repaired log of the first.
        for life in 0..2 {
            let mut child = Command::new(&exe)
                .args([
                    "child_appender",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (first_ack, appending) = std::sync::mpsc::channel::<()>();
            let reader = std::thread::spawn(move || {
                let mut acked = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(id) = line.strip_prefix("ACK ") {
                        if acked.is_empty() {
                            let _ = first_ack.send(());
                        }
                        acked.push(id.parse::<u64>().unwrap());
                    }
                }
                acked
            });
            // The kill lands at a random moment of appending, 150-900 ms
            // in (long enough to roll segments): counted from the first
            // acknowledgement, since starting the child (a process, an
            // executor, the log) can take longer than that on a loaded
            // machine.
            let _ = appending.recv_timeout(Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(rng.range(150, 900)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let acked = reader.join().unwrap();
            assert!(
                !acked.is_empty(),
                "trial {trial} life {life}: child acknowledged nothing"
            );
            acked_total.extend(acked);

            let path = dir.path().to_path_buf();
            let acked = acked_total.clone();
            run(async move {
                let (frames, report) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
                let ids: Vec<u64> = frames.iter().map(|f| check_payload(&f.payload)).collect();
                // Frames come back as a gap-free prefix of what was submitted ...
                assert_eq!(
                    ids,
                    (0..ids.len() as u64).collect::<Vec<_>>(),
                    "trial {trial}: hole in the log"
                );
                // ... that holds every acknowledged frame.
                let recovered: BTreeSet<u64> = ids.iter().copied().collect();
                let lost: Vec<&u64> = acked.difference(&recovered).collect();
                assert!(
                    lost.is_empty(),
                    "trial {trial} life {life}: lost acknowledged frames {lost:?}"
                );
                assert!(
                    report.segments.len() >= 2,
                    "the appender should roll segments"
                );
            });
        }
        // After repair, an append still lands after everything recovered.
        let path = dir.path().to_path_buf();
        run(async move {
            let mut count = 0u64;
            let (wal, _) = Wal::open(&path, opts(), |_| count += 1).await.unwrap();
            wal.append(2, &payload(count, 64)).await.unwrap();
            drop(wal);
            let (frames, _) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
            assert_eq!(frames.len() as u64, count + 1);
            assert_eq!(check_payload(&frames.last().unwrap().payload), count);
        });
    }
}
