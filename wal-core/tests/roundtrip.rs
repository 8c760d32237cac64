//! Round trips: random frames across several segments come back identical,
//! by recovery and by position; group commit batches many appends per sync;
//! retention removes whole segments only.

mod common;

use std::rc::Rc;

use common::{check_payload, payload, run, scan_all, segment_paths, Rng, Scratch};
use sluice_wal_core::{RecoveryMode, Wal, WalOptions};

fn small_segments() -> WalOptions {
    WalOptions {
        segment_size: 256 << 10,
        write_buffer_size: 64 << 10,
        ..WalOptions::default()
    }
}

#[test]
fn random_frames_round_trip_across_segments() {
    for seed in 1..=4u64 {
        let dir = Scratch::new("roundtrip");
        let path = dir.path().to_path_buf();
        run(async move {
            let mut rng = Rng::new(seed);
            let (wal, report) = Wal::open(&path, small_segments(), |_| {}).await.unwrap();
            assert_eq!(report.frames, 0);
            let mut written = Vec::new();
            let mut id = 0u64;
            // Waves of concurrent appends with sizes from 0 to 70 KiB.
            for _ in 0..20 {
                let mut pending = Vec::new();
                for _ in 0..rng.range(1, 40) {
                    let len = match rng.range(0, 10) {
                        0 => rng.range(16 << 10, 70 << 10),
                        1 => 8,
                        _ => rng.range(8, 3000),
                    } as usize;
                    let frame_type = rng.range(2, 256) as u8;
                    let data = payload(id, len);
                    let appended = wal
                        .submit(frame_type, &[&data[..len / 2], &data[len / 2..]])
                        .unwrap();
                    written.push((appended.position, frame_type, data));
                    pending.push(appended.durable);
                    id += 1;
                }
                for d in pending {
                    d.await.unwrap();
                }
            }
            let stats = wal.stats();
            assert_eq!(stats.frames, id);
            assert!(
                stats.segments_created >= 3,
                "frames must span several segments: {stats:?}"
            );
            // Reads by position, straight after the appends.
            for (position, frame_type, data) in &written {
                let frame = wal.read(*position).await.unwrap();
                assert_eq!(frame.frame_type, *frame_type);
                assert_eq!(frame.payload(), &data[..]);
            }
            drop(wal);

            let (frames, report) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
            assert_eq!(frames.len(), written.len());
            for (f, (position, frame_type, data)) in frames.iter().zip(&written) {
                assert_eq!(
                    (f.position, f.frame_type, &f.payload),
                    (*position, *frame_type, data)
                );
            }
            assert!(report.segments.len() >= 4);
            assert!(report
                .segments
                .iter()
                .all(|s| s.torn_tail.is_none() && s.skipped.is_empty()));

            // Reopen: the same frames, and appends continue after them.
            let mut seen = 0;
            let (wal, _) = Wal::open(&path, small_segments(), |f| {
                check_payload(f.payload);
                seen += 1;
            })
            .await
            .unwrap();
            assert_eq!(seen, written.len());
            let data = payload(id, 100);
            let position = wal.append(9, &data).await.unwrap();
            assert!(position > written.last().unwrap().0);
            assert_eq!(wal.read(position).await.unwrap().payload(), &data[..]);
            drop(wal);
            let (frames, _) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
            assert_eq!(frames.len(), written.len() + 1);
            assert_eq!(frames.last().unwrap().payload, data);
        });
    }
}

#[test]
fn group_commit_syncs_far_fewer_times_than_appends() {
    let dir = Scratch::new("group");
    let path = dir.path().to_path_buf();
    run(async move {
        let (wal, _) = Wal::open(&path, WalOptions::default(), |_| {})
            .await
            .unwrap();
        let wal = Rc::new(wal);
        let mut tasks = Vec::new();
        for id in 0..1000u64 {
            let wal = wal.clone();
            tasks.push(glommio::spawn_local(async move {
                wal.append(2, &payload(id, 200 + (id as usize % 700)))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await;
        }
        let stats = wal.stats();
        assert_eq!(stats.frames, 1000);
        assert!(
            stats.syncs <= 100,
            "1000 concurrent appends took {} syncs; group commit should batch them",
            stats.syncs
        );
        assert_eq!(stats.syncs, stats.flushes);
        drop(wal);
        let (frames, _) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
        let mut ids: Vec<u64> = frames.iter().map(|f| check_payload(&f.payload)).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    });
}

#[test]
fn flushes_in_flight_acknowledge_in_position_order() {
    // With several flushes in flight, an append is only acknowledged when all
    // earlier ones are durable too.
    let dir = Scratch::new("order");
    let path = dir.path().to_path_buf();
    run(async move {
        let opts = WalOptions {
            max_flushes_in_flight: 8,
            write_buffer_size: 4096,
            ..WalOptions::default()
        };
        let (wal, _) = Wal::open(&path, opts, |_| {}).await.unwrap();
        let wal = Rc::new(wal);
        let acked = Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        for id in 0..400u64 {
            let (wal, acked) = (wal.clone(), acked.clone());
            tasks.push(glommio::spawn_local(async move {
                let a = wal.submit(2, &[&payload(id, 3000)]).unwrap();
                let position = a.position;
                a.durable.await.unwrap();
                // Everything before this frame must be durable now.
                assert!(wal.durable_position() > position);
                acked.borrow_mut().push(position);
            }));
            if id % 4 == 0 {
                // Let a flush start, so the next appends go to another one.
                futures_lite::future::yield_now().await;
            }
        }
        for t in tasks {
            t.await;
        }
        assert_eq!(acked.borrow().len(), 400);
        let stats = wal.stats();
        assert!(stats.flushes > 1);
        assert!(stats.peak_flushes_in_flight > 1, "{stats:?}");
    });
}

#[test]
fn delete_segments_below_removes_only_whole_older_segments() {
    let dir = Scratch::new("retention");
    let path = dir.path().to_path_buf();
    run(async move {
        let (wal, _) = Wal::open(&path, small_segments(), |_| {}).await.unwrap();
        let mut positions = Vec::new();
        for id in 0..200u64 {
            positions.push(wal.append(2, &payload(id, 5000)).await.unwrap());
        }
        let before = segment_paths(&path).len();
        assert!(before >= 4);
        // A position in the middle of the log: segments wholly below it go.
        let cut = positions[100];
        let removed = wal.delete_segments_below(cut).await.unwrap();
        assert!(removed >= 1);
        assert_eq!(segment_paths(&path).len(), before - removed);
        // The frame at `cut` and everything after it is still readable.
        for (id, p) in positions.iter().enumerate().skip(100) {
            assert_eq!(
                check_payload(wal.read(*p).await.unwrap().payload()),
                id as u64
            );
        }
        assert!(wal.read(positions[0]).await.is_err());
        // Nothing removes the segment being written.
        wal.delete_segments_below(u64::MAX).await.unwrap();
        assert_eq!(segment_paths(&path).len(), 1);
        let last = wal.append(2, &payload(999, 10)).await.unwrap();
        assert_eq!(check_payload(wal.read(last).await.unwrap().payload()), 999);
        drop(wal);
        let (frames, _) = scan_all(&path, RecoveryMode::Strict).await.unwrap();
        assert_eq!(check_payload(&frames.last().unwrap().payload), 999);
    });
}

#[test]
fn bad_requests_get_errors_not_panics() {
    let dir = Scratch::new("bad");
    let path = dir.path().to_path_buf();
    run(async move {
        let opts = WalOptions {
            max_frame_len: 1000,
            ..WalOptions::default()
        };
        let (wal, _) = Wal::open(&path, opts, |_| {}).await.unwrap();
        assert!(wal.submit(0, &[b"x"]).is_err());
        assert!(wal.submit(1, &[b"x"]).is_err());
        assert!(wal.submit(2, &[&[0u8; 1001]]).is_err());
        let p = wal.append(2, b"ok").await.unwrap();
        assert!(wal.read(p + 4096 * 100).await.is_err());
        assert!(
            wal.read(p + 16).await.is_err(),
            "a position inside a frame is not a frame"
        );
    });
}
