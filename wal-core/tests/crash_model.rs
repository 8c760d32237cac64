//! The crash model: whatever a crash does to the bytes of the last flush,
//! recovery returns exactly the acknowledged frames (plus a valid prefix of
//! the unacknowledged flush) and nothing torn; damage anywhere else is
//! reported as corruption naming the file and byte offset.

mod common;

use std::path::{Path, PathBuf};

use common::{check_payload, payload, run, scan_all, segment_paths, Frame, Rng, Scratch};
use sluice_wal_core::{RecoveryMode, Wal, WalError, WalOptions};

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 64 << 10,
        write_buffer_size: 16 << 10,
        ..WalOptions::default()
    }
}

/// A log whose last flush is known: `acked` frames were durable before it,
/// `last_flush` frames went into it, at file offsets `flush_start..` of the
/// last segment.
struct Fixture {
    _dir: Scratch,
    dir: PathBuf,
    acked: Vec<Frame>,
    last_flush: Vec<Frame>,
    last_segment: PathBuf,
    flush_start: u64,
    image: Vec<u8>,
}

fn fixture(seed: u64) -> Fixture {
    let scratch = Scratch::new("crash");
    let dir = scratch.path().to_path_buf();
    let d = dir.clone();
    let (acked, last_flush) = run(async move {
        let mut rng = Rng::new(seed);
        let (wal, _) = Wal::open(&d, opts(), |_| {}).await.unwrap();
        let mut acked = Vec::new();
        let mut id = 0;
        let mut append_wave = |rng: &mut Rng, count: u64| {
            let mut wave = Vec::new();
            for _ in 0..count {
                let data = payload(id, rng.range(8, 2500) as usize);
                let a = wal.submit(2 + (id % 5) as u8, &[&data]).unwrap();
                wave.push((
                    Frame {
                        position: a.position,
                        frame_type: 2 + (id % 5) as u8,
                        payload: data,
                    },
                    a.durable,
                ));
                id += 1;
            }
            wave
        };
        for _ in 0..rng.range(8, 16) {
            let count = rng.range(1, 12);
            for (frame, durable) in append_wave(&mut rng, count) {
                durable.await.unwrap();
                acked.push(frame);
            }
        }
        // The last flush: a few frames that must not roll the segment.
        loop {
            let segments = segment_paths(&d).len();
            let count = rng.range(1, 6);
            let wave = append_wave(&mut rng, count);
            let mut frames = Vec::new();
            for (frame, durable) in wave {
                durable.await.unwrap();
                frames.push(frame);
            }
            if segment_paths(&d).len() == segments && wal.stats().flushes > 0 {
                assert!(segments >= 2, "fixture needs several segments");
                return (acked, frames);
            }
            acked.extend(frames);
        }
    });
    let last_segment = segment_paths(&dir).pop().unwrap();
    let base: u64 = last_segment
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The flush started on the block boundary at or below its first frame.
    let flush_start = (last_flush[0].position - base) / 4096 * 4096;
    let image = std::fs::read(&last_segment).unwrap();
    Fixture {
        _dir: scratch,
        dir,
        acked,
        last_flush,
        last_segment,
        flush_start,
        image,
    }
}

/// Copies the fixture's log into `trial` with the last segment replaced by `image`.
fn stage(f: &Fixture, trial: &Path, image: &[u8]) {
    let _ = std::fs::remove_dir_all(trial);
    std::fs::create_dir_all(trial).unwrap();
    for seg in segment_paths(&f.dir) {
        let to = trial.join(seg.file_name().unwrap());
        if seg == f.last_segment {
            std::fs::write(&to, image).unwrap();
        } else {
            std::fs::hard_link(&seg, &to).unwrap();
        }
    }
}

/// Recovered frames must be every acked frame, then a prefix of the last flush.
fn check_recovered(f: &Fixture, frames: &[Frame], what: &str) -> usize {
    assert!(
        frames.len() >= f.acked.len(),
        "{what}: recovered {} frames, {} were acknowledged",
        frames.len(),
        f.acked.len()
    );
    assert_eq!(
        &frames[..f.acked.len()],
        &f.acked[..],
        "{what}: acked frames differ"
    );
    let extra = &frames[f.acked.len()..];
    assert!(
        extra.len() <= f.last_flush.len(),
        "{what}: frames from nowhere"
    );
    assert_eq!(
        extra,
        &f.last_flush[..extra.len()],
        "{what}: torn frame recovered"
    );
    extra.len()
}

#[test]
fn cut_at_every_byte_of_the_last_flush() {
    let f = fixture(7);
    let trial = f.dir.with_extension("trial");
    let (dir, trial2) = (f.dir.clone(), trial.clone());
    let f = std::rc::Rc::new(f);
    let fx = f.clone();
    let full = run(async move {
        let mut full_recoveries = 0;
        for cut in fx.flush_start..=fx.image.len() as u64 {
            stage(&fx, &trial2, &fx.image[..cut as usize]);
            let (frames, report) = scan_all(&trial2, RecoveryMode::Strict).await.unwrap();
            let extra = check_recovered(&fx, &frames, &format!("cut at {cut}"));
            if extra == fx.last_flush.len() {
                full_recoveries += 1;
            }
            let last = report.segments.last().unwrap();
            assert!(last.valid_end <= cut);
        }
        full_recoveries
    });
    // Only cuts past the last frame's end keep the whole last flush.
    assert!(full >= 1);
    let _ = std::fs::remove_dir_all(&trial);
    drop(dir);
}

#[test]
fn random_cuts_and_bit_flips_across_seeds() {
    for seed in 1..=40u64 {
        let f = std::rc::Rc::new(fixture(seed));
        let trial = f.dir.with_extension("trial");
        let fx = f.clone();
        let t = trial.clone();
        run(async move {
            let mut rng = Rng::new(seed * 1000);
            let len = fx.image.len() as u64;
            for _ in 0..20 {
                // A random cut in the last flush.
                let cut = rng.range(fx.flush_start, len + 1);
                stage(&fx, &t, &fx.image[..cut as usize]);
                let (frames, _) = scan_all(&t, RecoveryMode::Strict).await.unwrap();
                check_recovered(&fx, &frames, &format!("seed {seed} cut {cut}"));

                // A random flipped bit in the last flush (possibly also cut).
                let mut image = fx.image.clone();
                let at = rng.range(fx.flush_start, len) as usize;
                image[at] ^= 1 << rng.range(0, 8);
                if rng.range(0, 2) == 0 {
                    image.truncate(rng.range(at as u64, len + 1) as usize);
                }
                stage(&fx, &t, &image);
                let (frames, _) = scan_all(&t, RecoveryMode::Strict).await.unwrap();
                check_recovered(&fx, &frames, &format!("seed {seed} flip at {at}"));
            }
        });
        let _ = std::fs::remove_dir_all(&trial);
    }
}

#[test]
fn repaired_tail_never_resurrects_stale_frames() {
    // Damage the first frame of the last flush so the frames after it are
    // valid but unreachable; reopen (repair), append, reopen: the new frames
    // follow the acked ones and none of the stale frames come back.
    for (seed, damage_at_start) in [(3u64, true), (4, false), (5, true), (6, false)] {
        let f = fixture(seed);
        let mut image = f.image.clone();
        let base = f.last_flush[0].position - (f.last_flush[0].position % 4096) - f.flush_start;
        let first = (f.last_flush[0].position - base) as usize;
        if damage_at_start {
            image[first + 20] ^= 0x40; // payload of the first frame of the flush
        } else {
            // A cut in the middle of the flush, not on a frame boundary.
            image.truncate(first + 30);
        }
        let trial = f.dir.with_extension("trial");
        stage(&f, &trial, &image);
        let t = trial.clone();
        let acked = f.acked.clone();
        let stale = f.last_flush.clone();
        run(async move {
            let (wal, report) = Wal::open(&t, opts(), |_| {}).await.unwrap();
            assert_eq!(report.frames as usize, acked.len());
            let torn = report.segments.last().unwrap().torn_tail.clone().unwrap();
            assert_eq!(torn.offset as usize, first);
            let mut fresh = Vec::new();
            for i in 0..2u64 {
                let data = payload(1_000_000 + i, 100);
                let position = wal.append(2, &data).await.unwrap();
                fresh.push(position);
            }
            drop(wal);
            let (frames, report) = scan_all(&t, RecoveryMode::Strict).await.unwrap();
            assert_eq!(&frames[..acked.len()], &acked[..]);
            let after: Vec<u64> = frames[acked.len()..]
                .iter()
                .map(|f| check_payload(&f.payload))
                .collect();
            assert_eq!(
                after,
                vec![1_000_000, 1_000_001],
                "{} stale frames were in the damaged flush",
                stale.len()
            );
            assert!(report.segments.iter().all(|s| s.torn_tail.is_none()));
        });
        let _ = std::fs::remove_dir_all(&trial);
    }
}

#[test]
fn flipped_bit_in_an_older_segment_is_corruption_with_file_and_offset() {
    let f = fixture(11);
    let segments = segment_paths(&f.dir);
    let victim = segments[0].clone();
    // A frame in the middle of the first segment.
    let frame = f
        .acked
        .iter()
        .filter(|fr| fr.position < 64 << 10)
        .nth(3)
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[frame.position as usize + 16 + 3] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    let dir = f.dir.clone();
    let total = f.acked.len() + f.last_flush.len();
    run(async move {
        match scan_all(&dir, RecoveryMode::Strict).await {
            Err(WalError::Corruption {
                file,
                offset,
                reason,
            }) => {
                assert_eq!(file, victim);
                assert_eq!(offset, frame.position);
                assert!(reason.contains("checksum"), "{reason}");
                let msg = WalError::Corruption {
                    file,
                    offset,
                    reason,
                }
                .to_string();
                assert!(
                    msg.contains("00000000000000000000.wal") && msg.contains(&offset.to_string())
                );
            }
            other => panic!("expected corruption, got {:?}", other.map(|r| r.1)),
        }
        // Opening refuses too: nothing is truncated behind the operator's back.
        assert!(matches!(
            Wal::open(&dir, opts(), |_| {}).await,
            Err(WalError::Corruption { .. })
        ));
        // Skipping is explicit and says what it skipped.
        let (frames, report) = scan_all(&dir, RecoveryMode::SkipCorruption).await.unwrap();
        assert_eq!(frames.len(), total - 1);
        assert!(frames.iter().all(|fr| fr.position != frame.position));
        let skipped = &report.segments[0].skipped;
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].offset, frame.position);
        assert!(report.skipped_bytes() > 0);
    });
}

/// The base position of the segment file at `path`.
fn base_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A fixture whose last segment holds acknowledged frames before its last
/// flush, and one of them (the first in that segment).
fn fixture_with_acked_frames_in_the_last_segment() -> (Fixture, Frame) {
    for seed in 100..200 {
        let f = fixture(seed);
        let base = base_of(&f.last_segment);
        if let Some(frame) = f.acked.iter().find(|fr| fr.position >= base).cloned() {
            return (f, frame);
        }
    }
    panic!("no fixture with acknowledged frames in its last segment");
}

/// Expects strict recovery to stop with corruption in `file` at `offset`.
async fn expect_corruption(dir: &Path, file: &Path, offset: u64, what: &str) -> String {
    match scan_all(dir, RecoveryMode::Strict).await {
        Err(WalError::Corruption {
            file: f,
            offset: o,
            reason,
        }) => {
            assert_eq!((f.as_path(), o), (file, offset), "{what}: {reason}");
            reason
        }
        other => panic!(
            "{what}: expected corruption, got {:?}",
            other.map(|r| r.1.frames)
        ),
    }
}

/// A flipped bit in an acknowledged frame of the last segment is damage,
/// not a torn tail: the durable mark of the last flush proves it was
/// acknowledged. Every byte of the frame's header, and one of its payload.
#[test]
fn damage_to_an_acknowledged_frame_of_the_last_segment_is_corruption() {
    let (f, frame) = fixture_with_acked_frames_in_the_last_segment();
    let base = base_of(&f.last_segment);
    let at = (frame.position - base) as usize;
    let trial = f.dir.with_extension("trial");
    let f = std::rc::Rc::new(f);
    let fx = f.clone();
    let t = trial.clone();
    run(async move {
        for byte in (0..16).chain([16 + 3]) {
            let mut image = fx.image.clone();
            image[at + byte] ^= 0x04;
            stage(&fx, &t, &image);
            let what = format!(
                "bit flipped in byte {byte} of the frame at {}",
                frame.position
            );
            let reason = expect_corruption(
                &t,
                &t.join(fx.last_segment.file_name().unwrap()),
                at as u64,
                &what,
            )
            .await;
            assert!(reason.contains("acknowledged"), "{what}: {reason}");
            assert!(
                matches!(
                    Wal::open(&t, opts(), |_| {}).await,
                    Err(WalError::Corruption { .. })
                ),
                "{what}: the log opened over acknowledged damage"
            );
        }
        // Skipping is explicit and loses only the damaged frame.
        let mut image = fx.image.clone();
        image[at + 16 + 3] ^= 0x04;
        stage(&fx, &t, &image);
        let (frames, report) = scan_all(&t, RecoveryMode::SkipCorruption).await.unwrap();
        let total = fx.acked.len() + fx.last_flush.len();
        assert_eq!(frames.len(), total - 1);
        assert!(report.skipped_bytes() > 0);
    });
    let _ = std::fs::remove_dir_all(&trial);
}

/// A bit flip at every byte of the last segment's header: the segment holds
/// frames, so it is corruption, never "died while creating the segment"
/// (which recreated the file empty, with every frame in it).
#[test]
fn a_damaged_header_of_the_last_segment_is_corruption_not_a_new_segment() {
    let f = fixture(21);
    let trial = f.dir.with_extension("trial");
    let last = trial.join(f.last_segment.file_name().unwrap());
    let f = std::rc::Rc::new(f);
    let fx = f.clone();
    let t = trial.clone();
    run(async move {
        for byte in 0..4096usize {
            let mut image = fx.image.clone();
            image[byte] ^= 0x01;
            stage(&fx, &t, &image);
            let what = format!("bit flipped in header byte {byte}");
            if byte < 28 {
                let reason = expect_corruption(&t, &last, 0, &what).await;
                assert!(reason.contains("holding frames"), "{what}: {reason}");
                assert!(Wal::open(&t, opts(), |_| {}).await.is_err(), "{what}");
            } else {
                // Bytes the header does not use: nothing is lost.
                let (frames, _) = scan_all(&t, RecoveryMode::Strict).await.unwrap();
                assert_eq!(frames.len(), fx.acked.len() + fx.last_flush.len(), "{what}");
            }
        }
    });
    let _ = std::fs::remove_dir_all(&trial);
}

/// A segment gone from the middle of the log is corruption naming the
/// segment after the hole, never a clean start that skips its frames.
#[test]
fn a_missing_segment_is_corruption() {
    let f = (31..100)
        .map(fixture)
        .find(|f| segment_paths(&f.dir).len() >= 3)
        .expect("a fixture with 3 segments");
    let segments = segment_paths(&f.dir);
    std::fs::remove_file(&segments[1]).unwrap();
    let dir = f.dir.clone();
    let next = segments[2].clone();
    run(async move {
        let reason = expect_corruption(&dir, &next, 0, "segment 1 removed").await;
        assert!(reason.contains("missing"), "{reason}");
        assert!(Wal::open(&dir, opts(), |_| {}).await.is_err());
    });
}

/// What recovery takes out of the log goes aside, not away: a last segment
/// with a torn header (no frame in it) is moved to `damaged/`, and the
/// non-zero bytes of a torn tail are copied there before the cut.
#[test]
fn recovery_moves_damaged_bytes_aside() {
    let f = fixture(41);
    let trial = f.dir.with_extension("trial");
    let total = f.acked.len();
    let names_aside = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir.join("damaged"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    // A torn tail: garbage in the middle of the last (unacknowledged) flush.
    let mut image = f.image.clone();
    let cut = f.flush_start as usize + 40;
    for b in &mut image[cut..cut + 8] {
        *b ^= 0xff;
    }
    stage(&f, &trial, &image);
    let t = trial.clone();
    run(async move {
        let (_, report) = Wal::open(&t, opts(), |_| {}).await.unwrap();
        assert!(report.frames as usize >= total);
    });
    let aside = names_aside(&trial);
    assert!(
        aside.iter().any(|n| n.contains(".from-")),
        "torn tail not saved aside: {aside:?}"
    );

    // A segment being created when the process died: a header half written.
    stage(&f, &trial, &f.image);
    let next_base = base_of(&f.last_segment) + f.image.len() as u64;
    let torn_header = format!("{next_base:020}.wal");
    std::fs::write(trial.join(&torn_header), [0x53u8; 100]).unwrap();
    let t = trial.clone();
    let all = f.acked.len() + f.last_flush.len();
    run(async move {
        let (_, report) = Wal::open(&t, opts(), |_| {}).await.unwrap();
        assert_eq!(report.frames as usize, all);
    });
    let aside = names_aside(&trial);
    assert!(
        aside.contains(&torn_header),
        "torn header not moved aside: {aside:?}"
    );
    let _ = std::fs::remove_dir_all(&trial);
}
