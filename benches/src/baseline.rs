//! `sluice-bench baseline`: this machine's limits, measured in the same run
//! as the broker figures so each can be read as a fraction of them:
//!
//! - sequential O_DIRECT write bandwidth (1 MiB blocks, 8 in flight, one
//!   `fdatasync` at the end): the ceiling of durable produce;
//! - sequential O_DIRECT read bandwidth of the same file (1 MiB blocks, 8
//!   in flight): the ceiling of a consumer reading what is not in memory;
//! - the latency of a 4 KiB O_DIRECT write + `fdatasync` at increasing
//!   offsets: the floor under every acks=all produce;
//! - loopback TCP bandwidth (1 MiB writes, one sender thread, one reader):
//!   the ceiling of a client on the same machine.
//!
//! The files are written as the WAL writes its segments: a fresh file,
//! extended by direct-I/O writes, never preallocated. Plain threads and
//! blocking syscalls (`pwrite` through `FileExt::write_all_at`,
//! `fdatasync` through `File::sync_data`): nothing here needs glommio.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::args::{BaselineOpts, MIB};
use crate::client::Result;
use crate::report::{fmt_percentiles, percentiles_json, JsonObject};
use crate::stats::{per_sec, LatencyHistogram, Percentiles, MB};

/// Size of each bandwidth write and of each TCP write.
const BLOCK: usize = MIB as usize;
/// Direct-I/O writes in flight during the bandwidth measurement (as wal-bench).
const DEPTH: usize = 8;
/// Size of each write followed by an fdatasync.
const SYNC_WRITE: usize = 4096;
/// Buffer and offset alignment that satisfies O_DIRECT on any Linux block
/// device (logical blocks are 512 B or 4 KiB).
const ALIGN: usize = 4096;

/// Bytes moved in a measured interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bandwidth {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Bandwidth {
    /// MB (2^20 bytes) per second, as every rate of the tool.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / MB, self.elapsed)
    }

    /// Gbit (10^9 bits) per second, as network links are rated.
    pub fn gbit_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 * 8.0 / 1e9, self.elapsed)
    }
}

/// What `baseline` measured.
#[derive(Debug, Clone)]
pub struct BaselineReport {
    /// Where the disk was written.
    pub dir: PathBuf,
    /// Sequential O_DIRECT writes, fdatasync included.
    pub disk_write: Bandwidth,
    /// Sequential O_DIRECT reads of what was written.
    pub disk_read: Bandwidth,
    /// Number of 4 KiB write + fdatasync samples.
    pub syncs: u64,
    pub sync_latency: Percentiles,
    pub tcp: Bandwidth,
}

impl BaselineReport {
    pub fn text(&self) -> String {
        let (d, t) = (&self.disk_write, &self.tcp);
        format!(
            "baseline in {}:\n  \
             disk write, O_DIRECT {} MiB blocks x{DEPTH} in flight, one fdatasync: \
             {:.2} MB/s ({} MB in {:.2} s)\n  \
             disk read, O_DIRECT {} MiB blocks x{DEPTH} in flight: {:.2} MB/s\n  \
             {} KiB O_DIRECT write + fdatasync, {} times: {}\n  \
             loopback TCP, {} MiB writes: {:.2} MB/s, {:.2} Gbit/s ({} MB in {:.2} s)",
            self.dir.display(),
            BLOCK >> 20,
            d.mb_per_sec(),
            d.bytes / MIB,
            d.elapsed.as_secs_f64(),
            BLOCK >> 20,
            self.disk_read.mb_per_sec(),
            SYNC_WRITE >> 10,
            self.syncs,
            fmt_percentiles(&self.sync_latency),
            BLOCK >> 20,
            t.mb_per_sec(),
            t.gbit_per_sec(),
            t.bytes / MIB,
            t.elapsed.as_secs_f64(),
        )
    }

    pub fn json(&self) -> String {
        let (d, t) = (&self.disk_write, &self.tcp);
        let mut j = JsonObject::default();
        j.string("mode", "baseline");
        j.string("dir", &self.dir.display().to_string());
        j.uint("disk_bytes", d.bytes);
        j.float("disk_elapsed_s", d.elapsed.as_secs_f64());
        j.float("disk_mb_per_sec", d.mb_per_sec());
        j.float("disk_read_mb_per_sec", self.disk_read.mb_per_sec());
        j.uint("syncs", self.syncs);
        percentiles_json(&mut j, "sync_", &self.sync_latency);
        j.uint("tcp_bytes", t.bytes);
        j.float("tcp_elapsed_s", t.elapsed.as_secs_f64());
        j.float("tcp_mb_per_sec", t.mb_per_sec());
        j.float("tcp_gbit_per_sec", t.gbit_per_sec());
        j.finish()
    }
}

/// Runs the three measurements one after the other (so none competes with
/// another for the cores) and removes what it wrote, also on error.
pub fn run(o: &BaselineOpts) -> Result<BaselineReport> {
    let scratch = Scratch::new(&o.dir)?;
    eprintln!(
        "baseline: writing {} MB with O_DIRECT to {}",
        o.disk_bytes() / MIB,
        scratch.file.display()
    );
    let disk_write = write_bandwidth(&scratch.file, o.disk_bytes())?;
    eprintln!("baseline: reading it back with O_DIRECT");
    let disk_read = read_bandwidth(&scratch.file, o.disk_bytes())?;
    eprintln!(
        "baseline: {} x {} KiB write + fdatasync",
        o.syncs,
        SYNC_WRITE >> 10
    );
    let sync_latency = sync_latency(&scratch.file, o.syncs)?.percentiles();
    drop(scratch);
    eprintln!(
        "baseline: sending {} MB over loopback TCP",
        o.tcp_bytes() / MIB
    );
    let tcp = loopback_bandwidth(o.tcp_bytes())?;
    Ok(BaselineReport {
        dir: o.dir.clone(),
        disk_write,
        disk_read,
        syncs: o.syncs,
        sync_latency,
        tcp,
    })
}

/// The scratch file's path. Dropping it removes the file, and the
/// directories this run created to hold it.
#[derive(Debug)]
struct Scratch {
    file: PathBuf,
    /// Created directories, innermost first.
    created: Vec<PathBuf>,
}

impl Scratch {
    fn new(dir: &Path) -> Result<Self> {
        let created = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        // The guard exists before the directories do, so a failure half-way
        // still removes what was made.
        let scratch = Scratch {
            file: dir.join(format!("sluice-baseline-{}.dat", std::process::id())),
            created,
        };
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        for dir in &self.created {
            // Only ever empty directories: anything else put there is kept.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates (or truncates) `path` for direct I/O.
fn open_direct(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| {
            format!(
                "opening {} with O_DIRECT: {e} (some file systems have no direct \
                 I/O; pick another --dir)",
                path.display()
            )
        })
}

/// Writes `bytes` (whole MiB) sequentially in 1 MiB blocks, [`DEPTH`]
/// threads each with one `pwrite` in flight taking the next block, then
/// one fdatasync; timed from the first write to the end of the sync.
fn write_bandwidth(path: &Path, bytes: u64) -> Result<Bandwidth> {
    let file = open_direct(path)?;
    let blocks = bytes / MIB;
    // Filled before the clock starts, one buffer per thread.
    let mut buffers: Vec<AlignedBuf> = (0..DEPTH)
        .map(|lane| AlignedBuf::new(BLOCK, lane as u64 + 1))
        .collect();
    let started = Instant::now();
    in_lanes(&mut buffers, blocks, |buf, block| {
        file.write_all_at(buf.as_slice(), block * MIB)
            .map_err(|e| io_error("writing", path, block * MIB, e))
    })?;
    file.sync_data()
        .map_err(|e| format!("fdatasync of {}: {e}", path.display()))?;
    Ok(Bandwidth {
        bytes: blocks * MIB,
        elapsed: started.elapsed(),
    })
}

/// Runs `op(buffer, block)` for every block below `blocks`: one thread per
/// buffer, each with one operation in flight taking the next block.
fn in_lanes(
    buffers: &mut [AlignedBuf],
    blocks: u64,
    op: impl Fn(&mut AlignedBuf, u64) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        let lanes: Vec<_> = buffers
            .iter_mut()
            .map(|buf| {
                let (next, op) = (&next, &op);
                s.spawn(move || -> Result<()> {
                    loop {
                        let block = next.fetch_add(1, Ordering::Relaxed);
                        if block >= blocks {
                            return Ok(());
                        }
                        op(buf, block)?;
                    }
                })
            })
            .collect();
        lanes.into_iter().try_for_each(|lane| {
            lane.join()
                .unwrap_or_else(|_| Err("an I/O thread panicked".into()))
        })
    })
}

/// Reads the first `bytes` (whole MiB) of `path` sequentially in 1 MiB
/// blocks with O_DIRECT, [`DEPTH`] threads each with one `pread` in flight
/// taking the next block.
fn read_bandwidth(path: &Path, bytes: u64) -> Result<Bandwidth> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| format!("opening {} with O_DIRECT: {e}", path.display()))?;
    let blocks = bytes / MIB;
    let mut buffers: Vec<AlignedBuf> = (0..DEPTH).map(|_| AlignedBuf::new(BLOCK, 0)).collect();
    let started = Instant::now();
    in_lanes(&mut buffers, blocks, |buf, block| {
        file.read_exact_at(buf.as_mut_slice(), block * MIB)
            .map_err(|e| io_error("reading", path, block * MIB, e))
    })?;
    Ok(Bandwidth {
        bytes: blocks * MIB,
        elapsed: started.elapsed(),
    })
}

/// `syncs` times: a 4 KiB O_DIRECT write just past the previous one, then
/// fdatasync; each pair timed. The file grows with every write, as a WAL
/// segment does, so each sync also makes the new file size durable.
fn sync_latency(path: &Path, syncs: u64) -> Result<LatencyHistogram> {
    let file = open_direct(path)?;
    let buf = AlignedBuf::new(SYNC_WRITE, 7);
    let mut latency = LatencyHistogram::new();
    for i in 0..syncs {
        let offset = i * SYNC_WRITE as u64;
        let started = Instant::now();
        file.write_all_at(buf.as_slice(), offset)
            .map_err(|e| io_error("writing", path, offset, e))?;
        file.sync_data()
            .map_err(|e| io_error("fdatasync after writing", path, offset, e))?;
        latency.record(started.elapsed());
    }
    Ok(latency)
}

/// Sends `bytes` from a thread to this one over 127.0.0.1 in 1 MiB writes;
/// timed from the first write to the reader seeing the sender close.
fn loopback_bandwidth(bytes: u64) -> Result<Bandwidth> {
    let tcp_error = |what: &str, e: io::Error| format!("loopback TCP, {what}: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| tcp_error("bind", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| tcp_error("local address", e))?;
    // The kernel completes the handshake before accept, so connecting first
    // cannot wait on this thread.
    let mut sender = TcpStream::connect(addr).map_err(|e| tcp_error("connect", e))?;
    let (mut reader, _) = listener.accept().map_err(|e| tcp_error("accept", e))?;
    // Loopback copies bytes and never compresses them: any content will do.
    let chunk = vec![0x5a; BLOCK];
    let mut buf = vec![0; BLOCK];
    let started = Instant::now();
    let (sent, received) = std::thread::scope(|s| {
        let send = s.spawn(move || -> io::Result<()> {
            let mut left = bytes;
            while left > 0 {
                let n = left.min(BLOCK as u64) as usize;
                sender.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            // Dropping `sender` closes it: the reader sees end of stream.
            Ok(())
        });
        let mut received = 0u64;
        let read = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(received),
                Ok(n) => received += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Closed before joining: after a read error the sender is still
        // writing, and only a closed peer turns its blocked write into an error.
        drop(reader);
        let sent = send
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the sender thread panicked")));
        (sent, read)
    });
    let elapsed = started.elapsed();
    sent.map_err(|e| tcp_error("send", e))?;
    let received = received.map_err(|e| tcp_error("receive", e))?;
    if received != bytes {
        return Err(format!(
            "loopback TCP: received {received} of {bytes} bytes"
        ));
    }
    Ok(Bandwidth { bytes, elapsed })
}

fn io_error(what: &str, path: &Path, offset: u64, e: io::Error) -> String {
    format!("{what} {} at byte {offset}: {e}", path.display())
}

/// `len` bytes at an address aligned to [`ALIGN`], as O_DIRECT requires,
/// cut out of a slightly larger `Vec` (so no unsafe allocation), filled
/// with xorshift bytes so no layer below can compress or deduplicate them.
struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, seed: u64) -> Self {
        let mut bytes = vec![0u8; len + ALIGN];
        let start = (ALIGN - bytes.as_ptr() as usize % ALIGN) % ALIGN;
        let mut x = seed | 1;
        for b in &mut bytes[start..start + len] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Self { bytes, start, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> BaselineReport {
        BaselineReport {
            dir: PathBuf::from("target/baseline"),
            disk_write: Bandwidth {
                bytes: 1 << 30,
                elapsed: Duration::from_millis(500),
            },
            disk_read: Bandwidth {
                bytes: 1 << 30,
                elapsed: Duration::from_millis(250),
            },
            syncs: 2000,
            sync_latency: Percentiles {
                p50_ms: 0.5,
                p90_ms: 0.75,
                p99_ms: 2.0,
                p999_ms: 4.5,
                max_ms: 9.0,
            },
            tcp: Bandwidth {
                bytes: 4 << 30,
                elapsed: Duration::from_secs(2),
            },
        }
    }

    #[test]
    fn rates_text_and_json() {
        let r = report();
        assert_eq!(r.disk_write.mb_per_sec(), 2048.0);
        assert_eq!(r.tcp.mb_per_sec(), 2048.0);
        assert!((r.tcp.gbit_per_sec() - 17.179869184).abs() < 1e-9);
        assert_eq!(Bandwidth::default().mb_per_sec(), 0.0);

        let t = r.text();
        assert!(
            t.contains("O_DIRECT 1 MiB blocks x8 in flight, one fdatasync: 2048.00 MB/s (1024 MB in 0.50 s)"),
            "{t}"
        );
        assert!(
            t.contains("disk read, O_DIRECT 1 MiB blocks x8 in flight: 4096.00 MB/s"),
            "{t}"
        );
        assert!(
            t.contains("write + fdatasync, 2000 times: p50 0.500 ms"),
            "{t}"
        );
        assert!(
            t.contains("2048.00 MB/s, 17.18 Gbit/s (4096 MB in 2.00 s)"),
            "{t}"
        );

        let j = r.json();
        assert!(
            j.starts_with('{') && j.ends_with('}') && !j.contains('\n'),
            "{j}"
        );
        for field in [
            "\"mode\":\"baseline\"",
            "\"dir\":\"target/baseline\"",
            "\"disk_bytes\":1073741824",
            "\"disk_mb_per_sec\":2048",
            "\"syncs\":2000",
            "\"sync_p50_ms\":0.5",
            "\"sync_p99_ms\":2",
            "\"sync_p999_ms\":4.5",
            "\"sync_max_ms\":9",
            "\"tcp_mb_per_sec\":2048",
            "\"tcp_gbit_per_sec\":17.18",
        ] {
            assert!(j.contains(field), "{field} missing from {j}");
        }
    }

    #[test]
    fn aligned_buffers() {
        for len in [SYNC_WRITE, BLOCK] {
            let buf = AlignedBuf::new(len, 3);
            let s = buf.as_slice();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
            assert!(s.iter().any(|&b| b != s[0]), "not all one byte");
        }
    }

    #[test]
    fn loopback_sends_every_byte() {
        // A partial last write too.
        let b = loopback_bandwidth(3 * MIB + 12345).unwrap();
        assert_eq!(b.bytes, 3 * MIB + 12345);
        assert!(b.elapsed > Duration::ZERO);
    }

    #[test]
    fn disk_measurements_clean_up_after_themselves() {
        let top = std::env::temp_dir().join(format!("sluice-baseline-test-{}", std::process::id()));
        let dir = top.join("a/b");
        let scratch = Scratch::new(&dir).unwrap();
        assert!(dir.is_dir());
        let file = scratch.file.clone();
        let measured =
            write_bandwidth(&file, 2 * MIB).and_then(|w| Ok((w, sync_latency(&file, 5)?)));
        match measured {
            Ok((write, syncs)) => {
                assert_eq!(write.bytes, 2 * MIB);
                assert_eq!(syncs.count(), 5);
                assert!(file.exists());
            }
            // Some temp directories have no O_DIRECT (tmpfs before Linux 6.6).
            Err(e) => assert!(e.contains("O_DIRECT"), "{e}"),
        }
        drop(scratch);
        assert!(!file.exists() && !top.exists());
    }
}
