//! wal-bench: wal-core against the raw disk, in one run on one file system.
//!
//! 1. Raw sequential O_DIRECT writes of 1 MiB blocks (8 in flight) and one
//!    `fdatasync` at the end: the bandwidth ceiling. Also, for reference,
//!    1 MiB write + `fdatasync` one at a time.
//! 2. Raw sequential O_DIRECT reads of the same file (1 MiB, 8 in flight).
//! 3. wal-core durable appends of 1 KiB, 16 KiB and 1 MiB frames from 64
//!    concurrent appenders: each with one append outstanding (a closed loop:
//!    bounded by 64 frames per sync), and each keeping a window of appends
//!    outstanding as a pipelining producer does (up to 64 appends or 2 MiB),
//!    with one flush in flight and with the default.
//! 4. Recovery scans of the logs just written.
//!
//! Usage: `cargo run --release -p sluice-benches --bin wal-bench -- [--dir DIR] [--mib N]`
//! (default: `target/wal-bench`, 1024 MiB per measurement).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use glommio::io::{DmaFile, OpenOptions};
use sluice_wal_core::{scan, RecoveryMode, Wal, WalOptions};

/// As `sluice serve`: large direct-I/O buffers are reused per thread.
#[global_allocator]
static ALLOC: sluice_wal_core::buffer_pool::PooledDmaAlloc<std::alloc::System> =
    sluice_wal_core::buffer_pool::PooledDmaAlloc::new(std::alloc::System);

const MIB: usize = 1 << 20;
/// DMA memory glommio preallocates (what `sluice serve` gives each shard).
const IO_MEMORY: usize = 64 << 20;
/// Appends one appender keeps outstanding, at most (and at most 2 MiB of them).
const MAX_WINDOW: usize = 64;

fn main() {
    let mut dir = PathBuf::from("target/wal-bench");
    let mut mib: usize = 1024;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--dir", Some(v)) => dir = PathBuf::from(v),
            ("--mib", Some(v)) => mib = v.parse().expect("--mib takes a number"),
            _ => {
                eprintln!("usage: wal-bench [--dir DIR] [--mib N]");
                std::process::exit(2);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let total = mib * MIB;
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .io_memory(IO_MEMORY)
        .make()
        .expect("glommio executor (see README: locked-memory limit)")
        .run(bench(dir.clone(), total));
    let _ = std::fs::remove_dir_all(&dir);
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

async fn bench(dir: PathBuf, total: usize) {
    println!(
        "wal-bench: {} MiB per measurement in {}",
        total / MIB,
        dir.display()
    );
    let raw_path = dir.join("raw.dat");
    let raw_write = raw_stream_write(&raw_path, total).await;
    println!("raw write, 1 MiB blocks x8 in flight, one fdatasync: {raw_write:.0} MB/s");
    let raw_sync_each = raw_write_sync_each(&dir.join("raw-sync.dat"), total / 8).await;
    println!("raw write, 1 MiB block + fdatasync one at a time:    {raw_sync_each:.0} MB/s");
    let raw_read = raw_stream_read(&raw_path, total).await;
    println!("raw read, 1 MiB blocks x8 in flight:                 {raw_read:.0} MB/s");
    let _ = std::fs::remove_file(&raw_path);

    let mut append = Vec::new();
    let mut recovery = Vec::new();
    let default_in_flight = WalOptions::default().max_flushes_in_flight;
    for (label, frame) in [("1KiB", 1024usize), ("16KiB", 16 << 10), ("1MiB", MIB)] {
        let pipelined = (2 * MIB / frame).clamp(2, MAX_WINDOW);
        for (window, in_flight) in [
            (1, default_in_flight),
            (pipelined, 1),
            (pipelined, default_in_flight),
        ] {
            let wal_dir = dir.join(format!("wal-{label}-{window}-{in_flight}"));
            let (rate, stats) = wal_append(&wal_dir, frame, total, window, in_flight).await;
            println!(
                "wal append {label:>5}, 64 appenders x {window:>2} outstanding, {in_flight} flush(es) in flight: \
                 {rate:>5.0} MB/s ({:.2} of raw; {:.1} frames/sync, peak {} in flight, {:.1}% padding)",
                rate / raw_write,
                stats.frames as f64 / stats.syncs.max(1) as f64,
                stats.peak_flushes_in_flight,
                100.0 * stats.padding_bytes as f64 / stats.bytes_written.max(1) as f64,
            );
            if window == pipelined && in_flight == default_in_flight {
                append.push((label, rate));
                let rec = recover(&wal_dir).await;
                println!(
                    "recovery scan of the {label} log: {rec:.0} MB/s ({:.2} of raw read)",
                    rec / raw_read
                );
                recovery.push((label, rec));
            }
            let _ = std::fs::remove_dir_all(&wal_dir);
        }
    }
    let get = |v: &[(&str, f64)], l: &str| v.iter().find(|(x, _)| *x == l).map_or(0.0, |(_, r)| *r);
    let (a1k, a1m) = (get(&append, "1KiB"), get(&append, "1MiB"));
    let rec = recovery
        .iter()
        .map(|(_, r)| *r)
        .fold(f64::INFINITY, f64::min);
    println!(
        "wal-bench: append-1KiB {a1k:.0} MB/s ({:.2} of raw), append-1MiB {a1m:.0} MB/s ({:.2} of raw), recovery {rec:.0} MB/s",
        a1k / raw_write,
        a1m / raw_write
    );
}

async fn create(path: &Path) -> Rc<DmaFile> {
    Rc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(path)
            .await
            .expect("create bench file"),
    )
}

/// Sequential 1 MiB writes, `depth` in flight, then one fdatasync.
async fn raw_stream_write(path: &Path, total: usize) -> f64 {
    // Make the glommio poll-ring probe see a file with data first.
    std::fs::write(path, vec![0u8; 4096]).expect("probe file");
    drop(DmaFile::open(path).await.expect("probe"));
    let file = create(path).await;
    let started = Instant::now();
    let depth = 8;
    let blocks = total / MIB;
    let mut tasks = Vec::new();
    for lane in 0..depth {
        let file = file.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut block = lane;
            while block < blocks {
                let mut buf = file.alloc_dma_buffer(MIB);
                buf.as_bytes_mut().fill(block as u8 | 1);
                file.write_at(buf, (block * MIB) as u64)
                    .await
                    .expect("write");
                block += depth;
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    file.fdatasync().await.expect("fdatasync");
    mb_per_s(total as u64, started.elapsed().as_secs_f64())
}

/// Sequential 1 MiB writes, each followed by fdatasync, one at a time.
async fn raw_write_sync_each(path: &Path, total: usize) -> f64 {
    let file = create(path).await;
    let started = Instant::now();
    for block in 0..total / MIB {
        let mut buf = file.alloc_dma_buffer(MIB);
        buf.as_bytes_mut().fill(7);
        file.write_at(buf, (block * MIB) as u64)
            .await
            .expect("write");
        file.fdatasync().await.expect("fdatasync");
    }
    let rate = mb_per_s(total as u64, started.elapsed().as_secs_f64());
    let _ = std::fs::remove_file(path);
    rate
}

/// Sequential 1 MiB reads, 8 in flight.
async fn raw_stream_read(path: &Path, total: usize) -> f64 {
    let file = Rc::new(DmaFile::open(path).await.expect("open"));
    let started = Instant::now();
    let depth = 8;
    let blocks = total / MIB;
    let mut tasks = Vec::new();
    for lane in 0..depth {
        let file = file.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut sum = 0u64;
            let mut block = lane;
            while block < blocks {
                let r = file
                    .read_at_aligned((block * MIB) as u64, MIB)
                    .await
                    .expect("read");
                sum += u64::from(r[0]);
                block += depth;
            }
            sum
        }));
    }
    let mut sum = 0;
    for t in tasks {
        sum += t.await;
    }
    assert!(sum > 0);
    mb_per_s(total as u64, started.elapsed().as_secs_f64())
}

/// 64 appenders, each appending `frame`-byte frames with up to `window`
/// appends outstanding (a producer pipelining requests), until `total`
/// payload bytes are durable.
async fn wal_append(
    dir: &Path,
    frame: usize,
    total: usize,
    window: usize,
    in_flight: usize,
) -> (f64, sluice_wal_core::WalStats) {
    let opts = WalOptions {
        max_flushes_in_flight: in_flight,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir, opts, |_| {}).await.expect("open wal");
    let wal = Rc::new(wal);
    let per_appender = (total / frame / 64).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..64u8 {
        let wal = wal.clone();
        tasks.push(glommio::spawn_local(async move {
            let payload = vec![a; frame];
            let mut outstanding = std::collections::VecDeque::new();
            for _ in 0..per_appender {
                if outstanding.len() == window {
                    let durable: sluice_wal_core::Durable =
                        outstanding.pop_front().expect("window is full");
                    durable.await.expect("durable");
                }
                outstanding.push_back(wal.submit(2, &[&payload]).expect("append").durable);
                if outstanding.len() < window {
                    // Let the other appenders in, as requests arriving would.
                    futures_lite::future::yield_now().await;
                }
            }
            for durable in outstanding {
                durable.await.expect("durable");
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = wal.stats();
    (mb_per_s(stats.payload_bytes, secs), stats)
}

async fn recover(dir: &Path) -> f64 {
    let mut frames = 0u64;
    let report = scan(dir, RecoveryMode::Strict, |f| {
        frames += 1;
        std::hint::black_box(f.payload);
    })
    .await
    .expect("recovery");
    assert_eq!(frames, report.frames);
    mb_per_s(report.bytes_scanned, report.seconds)
}
