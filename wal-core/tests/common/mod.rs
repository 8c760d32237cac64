//! Shared helpers of the wal-core tests: an executor, scratch directories on
//! the project's file system (direct I/O does not work on tmpfs), a seeded
//! PRNG and payloads that carry their own identity.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_wal_core::{scan, RecoveryMode, RecoveryReport};

/// Runs `fut` to completion on a fresh glommio executor.
pub fn run<F, T>(fut: F) -> T
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(fut)
}

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "wal-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The payload of frame `id`: its id, then `len - 8` bytes derived from it.
pub fn payload(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(8);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&id.to_le_bytes());
    let mut rng = Rng::new(id + 1);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The id a payload made by [`payload`] carries, checking the rest of it.
pub fn check_payload(bytes: &[u8]) -> u64 {
    let id = u64::from_le_bytes(bytes[..8].try_into().expect("payload has an id"));
    assert_eq!(
        bytes,
        payload(id, bytes.len()),
        "payload of frame {id} damaged"
    );
    id
}

/// A recovered frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub position: u64,
    pub frame_type: u8,
    pub payload: Vec<u8>,
}

/// Scans `dir` and returns the frames and the report.
pub async fn scan_all(
    dir: &Path,
    mode: RecoveryMode,
) -> sluice_wal_core::Result<(Vec<Frame>, RecoveryReport)> {
    let mut frames = Vec::new();
    let report = scan(dir, mode, |f| {
        frames.push(Frame {
            position: f.position,
            frame_type: f.frame_type,
            payload: f.payload.to_vec(),
        })
    })
    .await?;
    Ok((frames, report))
}

/// Segment files of `dir`, sorted.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}
