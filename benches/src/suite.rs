//! `sluice-bench suite`: the benchmark table as one command.
//!
//! Each scenario starts a fresh broker (`--broker`, by default the `sluice`
//! next to this binary) on a fresh data directory under `--dir`, runs the
//! same code as the subcommands against it, reads the broker's CPU time
//! (`/proc/PID/stat`) and peak RSS (`/proc/PID/status`, sampled), then
//! kills the broker and removes the directory. `baseline` measures the
//! machine in the same run; `wal-bench` is run as its own process. With
//! `--rounds N` the whole sequence runs N times, one scenario after the
//! other, and each figure is the median of its rounds. At the end the
//! table is printed with every target of the performance issue checked
//! against the medians: met, or not met.
//!
//! Nothing here changes how the broker is run: every produce is acks=all
//! on the broker's default durability (fdatasync before acknowledgement).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::{Args, Parser};

use crate::args::{BaselineOpts, Opts};
use crate::client::Result;
use crate::report::Report;
use crate::stats::MB;
use crate::{baseline, client, consume, metadata, payload, produce, rebalance};

/// Flags of `suite`.
#[derive(Args, Debug, Clone)]
pub struct SuiteOpts {
    /// The broker binary to start [default: `sluice` next to this binary].
    #[arg(long, value_name = "PATH")]
    pub broker: Option<PathBuf>,
    /// Where the brokers' data directories (one per scenario, removed
    /// after it) and the baseline's scratch file go: put it on the disk
    /// to be measured.
    #[arg(long, default_value = "target/suite", value_name = "DIR")]
    pub dir: PathBuf,
    /// Port the brokers listen on (127.0.0.1).
    #[arg(long, default_value_t = 19400)]
    pub port: u16,
    /// Scenarios to run, comma-separated [default: all, in table order].
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Vec<String>,
    /// Print the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Seconds each timed scenario produces or consumes for.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub duration: f64,
    /// Times the whole sequence runs; each figure is the median.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// A flag for every broker the suite starts (repeatable), as
    /// `--broker-arg=--io-memory-mib=32`.
    #[arg(long = "broker-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub broker_args: Vec<String>,
    /// Scale of the data-volume scenarios (consume from disk: 2 GB,
    /// recovery: 5 GB, wal-bench: 1 GiB per case, at 1.0).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub scale: f64,
}

/// Fetch buffer of each shard, passed to every broker (MiB).
const FETCH_BUFFER_MIB: u64 = 64;
/// Shards of every broker but the one-shard latency scenario.
const SHARDS: u32 = 2;

/// One row of work: what it runs and which figures it records.
struct Scenario {
    name: &'static str,
    what: &'static str,
    run: fn(&mut Ctx) -> Result<()>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "baseline",
        what: "the machine: O_DIRECT write and read, 4 KiB write+fdatasync, loopback TCP",
        run: baseline_row,
    },
    Scenario {
        name: "produce",
        what: "durable produce, 1 KiB x 6 partitions, acks=all, 4 producers: MB/s, broker CPU-s per GB, peak RSS",
        run: produce_row,
    },
    Scenario {
        name: "latency",
        what: "20,000 msgs/s open loop, linger 0, 1 KiB x 6 partitions, acks=all: p99, p99.9",
        run: |c| latency_row(c, SHARDS, 1, "lat"),
    },
    Scenario {
        name: "latency-1shard",
        what: "the same against --shards 1",
        run: |c| latency_row(c, 1, 1, "lat1"),
    },
    Scenario {
        name: "producers-1000",
        what: "the same from 1,000 producers (20 msgs/s each, 1,000 connections)",
        run: |c| latency_row(c, SHARDS, 1000, "many"),
    },
    Scenario {
        name: "consume-buffer",
        what: "100,000 x 1 KiB just produced (within the fetch buffer), read again and again for the run's duration: MB/s",
        run: consume_buffer_row,
    },
    Scenario {
        name: "consume-disk",
        what: "2 GB produced, broker restarted (nothing in memory), read once: MB/s",
        run: consume_disk_row,
    },
    Scenario {
        name: "wal-bench",
        what: "wal-core 1 MiB and 1 KiB appends against raw write (its own process)",
        run: wal_bench_row,
    },
    Scenario {
        name: "partitions-10k",
        what: "produce to 10,000 partitions; Metadata of them; a 10-member group over them",
        run: partitions_row,
    },
    Scenario {
        name: "recovery",
        what: "5 GB produced, kill -9, restart: seconds to ready; then read back and verified",
        run: recovery_row,
    },
];

/// What a round shares: flags, the broker binary, and the figures so far.
struct Ctx {
    o: SuiteOpts,
    broker: PathBuf,
    /// Figure name -> its value in each round.
    figures: BTreeMap<String, Vec<f64>>,
}

impl Ctx {
    fn record(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        eprintln!("suite: {name} = {value:.3}");
        self.figures.entry(name).or_default().push(value);
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.o.port)
    }

    /// sluice-bench flags from a command line (subcommand first), with
    /// `--bootstrap` of the suite's broker; echoed on stderr.
    fn opts(&self, line: &str) -> Result<Opts> {
        let args: Vec<&str> = line.split_whitespace().collect();
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            o: Opts,
        }
        eprintln!("suite: sluice-bench {line}");
        let addr = self.addr();
        let argv = ["sluice-bench", "--bootstrap", &addr]
            .into_iter()
            // The first word names the subcommand, for the echo only.
            .chain(args.iter().skip(1).copied());
        let o = Wrapper::try_parse_from(argv)
            .map_err(|e| format!("suite flags {line}: {e}"))?
            .o;
        o.validate()?;
        Ok(o)
    }

    /// Runs a subcommand's code as `against_broker` does.
    fn run(&self, line: &str, run: fn(&Opts, u64) -> Result<Report>) -> Result<Report> {
        let o = self.opts(line)?;
        if o.create {
            client::create_topic(&o)?;
        }
        let report = run(&o, payload::new_run_id())?;
        eprintln!("{}", report.text());
        if let Some((false, verdict)) = &report.verification {
            return Err(format!("verification failed: {verdict}"));
        }
        Ok(report)
    }

    fn seconds(&self) -> String {
        self.o.duration.to_string()
    }

    fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.o.scale) as u64).max(1000)
    }
}

/// A broker this suite started; killed (SIGKILL) when dropped.
struct Broker {
    child: Child,
    dir: PathBuf,
    /// Spawn to the ready line.
    ready_after: Duration,
    peak_rss: Arc<AtomicU64>,
    stop_sampler: Arc<AtomicBool>,
    keep_dir: bool,
}

impl Broker {
    /// Starts the broker on a fresh data directory named `name`.
    fn fresh(ctx: &Ctx, name: &str, shards: u32) -> Result<Broker> {
        let dir = ctx.o.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        Broker::start(ctx, dir, shards)
    }

    /// Starts the broker on `dir` and waits for its ready line.
    fn start(ctx: &Ctx, dir: PathBuf, shards: u32) -> Result<Broker> {
        let started = Instant::now();
        let mut child = Command::new(&ctx.broker)
            .args(["serve", "--listen", &ctx.addr(), "--data-dir"])
            .arg(&dir)
            .args(["--shards", &shards.to_string()])
            .args(["--fetch-buffer-mib", &FETCH_BUFFER_MIB.to_string()])
            .args(&ctx.o.broker_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", ctx.broker.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end, so the broker never blocks on a full pipe.
            let mut first = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if line.contains("sluice ready") {
                    let _ = ready_tx.send(Ok(()));
                } else if first.len() < 20 {
                    first.push(line);
                }
            }
            let _ = ready_tx.send(Err(first.join("\n")));
        });
        let mut broker = Broker {
            child,
            dir,
            ready_after: Duration::ZERO,
            peak_rss: Arc::default(),
            stop_sampler: Arc::default(),
            keep_dir: false,
        };
        match ready_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => return Err(format!("the broker exited before it was ready:\n{log}")),
            Err(_) => return Err("the broker was not ready within 120 s".into()),
        }
        broker.ready_after = started.elapsed();
        let (pid, peak, stop) = (
            broker.child.id(),
            broker.peak_rss.clone(),
            broker.stop_sampler.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match rss_bytes(pid) {
                    Some(rss) => peak.fetch_max(rss, Ordering::Relaxed),
                    None => return,
                };
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(broker)
    }

    /// utime + stime of the broker so far, in seconds.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id()).unwrap_or(0.0)
    }

    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss.load(Ordering::Relaxed) as f64 / MB
    }

    /// kill -9, keeping the data directory for a restart.
    fn crash(mut self) -> PathBuf {
        self.keep_dir = true;
        self.dir.clone()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_sampler.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// CPU time of this process (the load generator) and of the broker from
/// a moment on, to be read as cores over some span.
struct CpuSince {
    own: f64,
    broker: f64,
}

impl CpuSince {
    fn now(b: &Broker) -> CpuSince {
        CpuSince {
            own: cpu_seconds(std::process::id()).unwrap_or(0.0),
            broker: b.cpu_seconds(),
        }
    }

    /// (load generator, broker) cores over `secs` since [`CpuSince::now`].
    fn cores(&self, b: &Broker, secs: f64) -> (f64, f64) {
        let own = cpu_seconds(std::process::id()).unwrap_or(0.0) - self.own;
        (own / secs, (b.cpu_seconds() - self.broker) / secs)
    }
}

/// The 14th and 15th fields of /proc/PID/stat (after the command's
/// parenthesis), in clock ticks.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Bytes the process has had read from storage (`read_bytes` of
/// /proc/PID/io); 0 where it cannot be read.
fn disk_read_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("read_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// VmRSS of the process, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn baseline_row(c: &mut Ctx) -> Result<()> {
    let r = baseline::run(&BaselineOpts {
        dir: c.o.dir.join("baseline"),
        bytes: None,
        syncs: 2000,
        json: false,
    })?;
    eprintln!("{}", r.text());
    c.record("raw_write_mbs", r.disk_write.mb_per_sec());
    c.record("raw_read_mbs", r.disk_read.mb_per_sec());
    c.record("fsync_p99_ms", r.sync_latency.p99_ms);
    c.record("tcp_mbs", r.tcp.mb_per_sec());
    Ok(())
}

/// MB/s and broker CPU-s per GB (10^9 payload bytes) of a produce run.
fn produce_measured(c: &mut Ctx, b: &Broker, line: &str, prefix: &str) -> Result<()> {
    let cpu = b.cpu_seconds();
    let r = c.run(line, produce::report)?;
    let cpu = b.cpu_seconds() - cpu;
    c.record(format!("{prefix}_mbs"), r.throughput.mb_per_sec());
    c.record(
        format!("{prefix}_cpu_s_per_gb"),
        cpu / (r.throughput.bytes as f64 / 1e9),
    );
    Ok(())
}

fn produce_row(c: &mut Ctx) -> Result<()> {
    let b = Broker::fresh(c, "produce", SHARDS)?;
    let secs = c.seconds();
    produce_measured(
        c,
        &b,
        &format!("produce --create --topic p6 --partitions 6 --size 1024 --acks all --producers 4 --duration {secs}"),
        "produce",
    )?;
    c.record("produce_rss_mib", b.peak_rss_mib());
    Ok(())
}

fn latency_row(c: &mut Ctx, shards: u32, producers: u32, key: &str) -> Result<()> {
    let b = Broker::fresh(c, key, shards)?;
    let (secs, k) = (c.seconds(), producers.to_string());
    // Where the two cores went: this process (the load generator) and the broker.
    let (cpu, started) = (CpuSince::now(&b), Instant::now());
    let r = c.run(
        &format!("produce --create --topic lat --partitions 6 --size 1024 --acks all --rate 20000 --linger-ms 0 --producers {k} --duration {secs}"),
        produce::report,
    )?;
    let (client, broker) = cpu.cores(&b, started.elapsed().as_secs_f64());
    c.record(format!("{key}_p99_ms"), r.latency.p99_ms);
    c.record(format!("{key}_p999_ms"), r.latency.p999_ms);
    c.record(format!("{key}_msgs"), r.throughput.msgs_per_sec());
    c.record(format!("{key}_client_cores"), client);
    c.record(format!("{key}_broker_cores"), broker);
    Ok(())
}

fn consume_buffer_row(c: &mut Ctx) -> Result<()> {
    let b = Broker::fresh(c, "consume-buffer", SHARDS)?;
    c.run(
        "produce --create --topic tail --partitions 6 --size 1024 --acks all --messages 100000",
        produce::report,
    )?;
    // Each pass is a new consumer from the beginning; only the time it
    // spends receiving counts, and the passes go on until that adds up to
    // the run's duration.
    let (mut bytes, mut busy) = (0u64, Duration::ZERO);
    let cpu = CpuSince::now(&b);
    while busy.as_secs_f64() < c.o.duration {
        let r = c.run("consume --topic tail", consume::run)?;
        bytes += r.throughput.bytes;
        busy += r.throughput.elapsed;
    }
    // CPU over the time spent reading (the consumers' set-up between
    // passes is idle by comparison, but its CPU counts: an upper bound).
    let busy_s = busy.as_secs_f64();
    c.record("consume_buffer_mbs", bytes as f64 / MB / busy_s);
    c.record("consume_buffer_s", busy_s);
    let (client, broker) = cpu.cores(&b, busy_s);
    c.record("consume_client_cores", client);
    c.record("consume_broker_cores", broker);
    c.record("consume_rss_mib", b.peak_rss_mib());
    Ok(())
}

fn consume_disk_row(c: &mut Ctx) -> Result<()> {
    let n = c.scaled(2_000_000).to_string();
    let b = Broker::fresh(c, "consume-disk", SHARDS)?;
    c.run(
        &format!("produce --create --topic cold --partitions 6 --size 1024 --acks all --producers 4 --messages {n}"),
        produce::report,
    )?;
    let dir = b.crash();
    let b = Broker::start(c, dir, SHARDS)?;
    let read = disk_read_bytes(b.child.id());
    let r = c.run("consume --topic cold", consume::run)?;
    c.record("consume_disk_mbs", r.throughput.mb_per_sec());
    // Bytes the broker read from the disk for each byte delivered.
    let read = disk_read_bytes(b.child.id()).saturating_sub(read);
    c.record(
        "consume_disk_read_per_byte",
        read as f64 / r.throughput.bytes.max(1) as f64,
    );
    drop(b);
    Ok(())
}

fn wal_bench_row(c: &mut Ctx) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("own path: {e}"))?
        .with_file_name("wal-bench");
    let mib = ((1024.0 * c.o.scale) as u64).max(64).to_string();
    let dir = c.o.dir.join("wal-bench");
    eprintln!("suite: wal-bench --dir {} --mib {mib}", dir.display());
    let out = Command::new(&exe)
        .args(["--dir", &dir.display().to_string(), "--mib", &mib])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprint!("{text}");
    if !out.status.success() {
        return Err(format!("wal-bench failed: {}", out.status));
    }
    // "wal-bench: append-1KiB 1999 MB/s (0.50 of raw), append-1MiB 1599 MB/s (0.40 of raw), ..."
    let ratio = |case: &str| -> Result<f64> {
        let at = text
            .rfind(&format!("append-{case} "))
            .ok_or_else(|| format!("no append-{case} in wal-bench's summary"))?;
        let rest = &text[at..];
        let open = rest.find('(').ok_or("no ratio")? + 1;
        rest[open..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no ratio for append-{case}"))
    };
    c.record("wal_1mib_ratio", ratio("1MiB")?);
    c.record("wal_1kib_ratio", ratio("1KiB")?);
    Ok(())
}

fn partitions_row(c: &mut Ctx) -> Result<()> {
    let b = Broker::fresh(c, "partitions-10k", SHARDS)?;
    let secs = c.seconds();
    produce_measured(
        c,
        &b,
        &format!("produce --create --topic p10000 --partitions 10000 --size 1024 --acks all --producers 4 --duration {secs}"),
        "p10k",
    )?;
    let r = c.run("metadata --topic p10000 --messages 200", metadata::run)?;
    c.record("metadata_p99_ms", r.latency.p99_ms);
    let o = c.opts("rebalance --topic p10000 --members 10")?;
    let r = rebalance::measure(&o, payload::new_run_id(), 10)?;
    eprintln!("{}", r.text(10));
    c.record("rebalance_join_s", r.join.as_secs_f64());
    c.record("rebalance_leave_s", r.leave.as_secs_f64());
    Ok(())
}

fn recovery_row(c: &mut Ctx) -> Result<()> {
    let n = c.scaled(5_000_000);
    let b = Broker::fresh(c, "recovery", SHARDS)?;
    let count = n.to_string();
    c.run(
        &format!("produce --create --topic rec --partitions 6 --size 1024 --acks all --producers 4 --messages {count}"),
        produce::report,
    )?;
    let dir = b.crash();
    let wal_bytes = dir_bytes(&dir);
    let b = Broker::start(c, dir, SHARDS)?;
    c.record("recovery_s", b.ready_after.as_secs_f64());
    c.record("recovery_gb", wal_bytes as f64 / 1e9);
    // The default consume reads everything below the high watermarks and
    // verifies count and order; acks=all means every one must be there.
    let r = c.run("consume --topic rec", consume::run)?;
    if r.throughput.messages != n {
        return Err(format!(
            "after kill -9: {} of {n} acknowledged messages",
            r.throughput.messages
        ));
    }
    drop(b);
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Raises the open-file limit to its hard limit: 1,000 producers hold
/// thousands of sockets and pipes, and the broker (started from here)
/// inherits the limit for their connections.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Runs the scenarios and returns the table.
pub fn run(o: &SuiteOpts) -> Result<String> {
    if o.list {
        return Ok(SCENARIOS
            .iter()
            .map(|s| format!("{:<16} {}", s.name, s.what))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    if !(o.duration.is_finite() && o.duration > 0.0 && o.scale > 0.0) {
        return Err("--duration and --scale must be positive".into());
    }
    for name in &o.only {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            return Err(format!("no scenario {name} (see --list)"));
        }
    }
    let broker = match &o.broker {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("own path: {e}"))?
            .with_file_name("sluice"),
    };
    raise_fd_limit();
    let mut ctx = Ctx {
        o: o.clone(),
        broker,
        figures: BTreeMap::new(),
    };
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| o.only.is_empty() || o.only.iter().any(|n| n == s.name))
        .collect();
    for round in 1..=o.rounds {
        for s in &chosen {
            eprintln!("suite: round {round}, {}", s.name);
            (s.run)(&mut ctx).map_err(|e| format!("scenario {}: {e}", s.name))?;
        }
    }
    let _ = std::fs::remove_dir(&o.dir);
    Ok(table(&ctx.figures, o.rounds))
}

/// A figure's median with its rounds, or `None` if it was not measured.
fn fig(f: &BTreeMap<String, Vec<f64>>, name: &str) -> Option<(f64, String)> {
    let v = f.get(name)?;
    let rounds = v
        .iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" / ");
    Some((median(v), rounds))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// The table: one line per target (where its figures were measured),
/// then the machine's own figures and the rows without a target.
pub fn table(f: &BTreeMap<String, Vec<f64>>, rounds: u32) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |what: &str, rounds: String, median: String, v: String| {
        rows.push([what.to_string(), rounds, median, v]);
    };
    let raw_write = fig(f, "raw_write_mbs").map(|x| x.0);
    let raw_read = fig(f, "raw_read_mbs").map(|x| x.0);
    let fsync = fig(f, "fsync_p99_ms").map(|x| x.0);
    for (name, what) in [
        ("raw_write_mbs", "machine: O_DIRECT write MB/s"),
        ("raw_read_mbs", "machine: O_DIRECT read MB/s"),
        ("fsync_p99_ms", "machine: 4 KiB write+fdatasync p99 ms"),
        ("tcp_mbs", "machine: loopback TCP MB/s"),
    ] {
        if let Some((m, r)) = fig(f, name) {
            row(what, r, format!("{m:.2}"), String::new());
        }
    }
    if let Some((m, r)) = fig(f, "produce_cpu_s_per_gb") {
        row(
            "1. broker CPU-s per GB, durable 1 KiB produce (<= 0.4)",
            r,
            format!("{m:.2}"),
            verdict(m <= 0.4).into(),
        );
    }
    if let Some((m, r)) = fig(f, "produce_mbs") {
        let v = raw_write.map_or(String::new(), |w| {
            format!(
                "{:.2} of raw write (>= 0.5: {})",
                m / w,
                verdict(m / w >= 0.5)
            )
        });
        row("1. durable produce MB/s", r, format!("{m:.1}"), v);
    }
    let latency = |row: &mut dyn FnMut(&str, String, String, String), key: &str, what: &str| {
        let get = |name: &str| fig(f, &format!("{key}_{name}"));
        let (Some((m99, r99)), Some((m999, r999))) = (get("p99_ms"), get("p999_ms")) else {
            return;
        };
        let cores = match (get("msgs"), get("client_cores"), get("broker_cores")) {
            (Some((msgs, _)), Some((client, _)), Some((broker, _))) => format!(
                " ({msgs:.0} msgs/s delivered; CPU: load generator {client:.2} cores, broker {broker:.2})"
            ),
            _ => String::new(),
        };
        let p999_met = format!("p99.9 <= 2 x p99: {}", verdict(m999 <= 2.0 * m99));
        let v = match fsync.map(|s| s + 2.0) {
            Some(b) => format!("p99 <= {b:.2}: {}; {p999_met}", verdict(m99 <= b)),
            None => p999_met,
        };
        row(
            &format!("{what}{cores}"),
            format!("p99 {r99}; p99.9 {r999}"),
            format!("{m99:.2} / {m999:.2}"),
            v,
        );
    };
    latency(
        &mut row,
        "lat",
        "2. produce p99 / p99.9 ms at 20,000 msgs/s, linger 0, --shards 2",
    );
    latency(&mut row, "lat1", "2. the same, --shards 1");
    if let Some((m, r)) = fig(f, "consume_buffer_mbs") {
        let secs = fig(f, "consume_buffer_s").map_or(0.0, |x| x.0);
        let gbs = m * MB / 1e9;
        let cores = match (
            fig(f, "consume_client_cores"),
            fig(f, "consume_broker_cores"),
        ) {
            (Some((client, _)), Some((broker, _))) => {
                format!("; CPU: load generator {client:.2} cores, broker {broker:.2}")
            }
            _ => String::new(),
        };
        row(
            &format!("3. consume from the fetch buffer MB/s ({secs:.0} s of reading{cores})"),
            r,
            format!("{m:.1}"),
            format!(
                "{gbs:.2} GB/s (>= 1.5: {})",
                verdict(gbs >= 1.5 && secs >= 10.0)
            ),
        );
    }
    if let Some((m, r)) = fig(f, "consume_disk_mbs") {
        let v = raw_read.map_or(String::new(), |rr| {
            format!(
                "{:.2} of raw read (>= 0.5: {})",
                m / rr,
                verdict(m / rr >= 0.5)
            )
        });
        let amplification = fig(f, "consume_disk_read_per_byte").map_or(String::new(), |(x, _)| {
            format!(" (the broker read {x:.2} bytes from disk per byte delivered)")
        });
        row(
            &format!("3. consume from disk MB/s{amplification}"),
            r,
            format!("{m:.1}"),
            v,
        );
    }
    if let Some((m, r)) = fig(f, "wal_1mib_ratio") {
        row(
            "4. wal-bench 1 MiB appends, fraction of raw write",
            r,
            format!("{m:.2}"),
            format!(">= 0.8: {}", verdict(m >= 0.8)),
        );
    }
    if let Some((m, r)) = fig(f, "wal_1kib_ratio") {
        row(
            "4. wal-bench 1 KiB appends, fraction of raw write",
            r,
            format!("{m:.2}"),
            String::new(),
        );
    }
    let limit = (2 * FETCH_BUFFER_MIB + 128) as f64;
    for (name, what) in [
        ("produce_rss_mib", "5. broker peak RSS MiB under produce"),
        ("consume_rss_mib", "5. broker peak RSS MiB under consume"),
    ] {
        if let Some((m, r)) = fig(f, name) {
            row(
                what,
                r,
                format!("{m:.0}"),
                format!(
                    "<= fetch buffer 2 x {FETCH_BUFFER_MIB} + 128 = {limit:.0}: {}",
                    verdict(m <= limit)
                ),
            );
        }
    }
    if let Some((m, r)) = fig(f, "p10k_mbs") {
        let v = fig(f, "produce_mbs").map_or(String::new(), |(p6, _)| {
            format!(
                "{:.2} of 6 partitions (>= 0.8: {})",
                m / p6,
                verdict(m / p6 >= 0.8)
            )
        });
        row(
            "6. produce to 10,000 partitions MB/s",
            r,
            format!("{m:.1}"),
            v,
        );
    }
    for (name, what, limit) in [
        (
            "metadata_p99_ms",
            "6. Metadata of 10,000 partitions p99 ms",
            50.0,
        ),
        (
            "rebalance_join_s",
            "6. 10 members join a group over 10,000 partitions, s",
            5.0,
        ),
        (
            "rebalance_leave_s",
            "6. one member leaves, the other 9 cover them, s",
            5.0,
        ),
    ] {
        if let Some((m, r)) = fig(f, name) {
            row(
                what,
                r,
                format!("{m:.2}"),
                format!("< {limit}: {}", verdict(m < limit)),
            );
        }
    }
    latency(
        &mut row,
        "many",
        "7. 1,000 producers, 20,000 msgs/s together: p99 / p99.9 ms",
    );
    if let Some((m, r)) = fig(f, "recovery_s") {
        let gb = fig(f, "recovery_gb").map_or(0.0, |x| x.0);
        row(
            &format!("recovery after kill -9 with {gb:.1} GB of data, s to ready"),
            r,
            format!("{m:.2}"),
            "every acknowledged message read back in order".into(),
        );
    }
    let mut out =
        format!("| figure | rounds ({rounds}) | median | target |\n| --- | --- | --- | --- |\n");
    for [what, rounds, median, v] in rows {
        out.push_str(&format!("| {what} | {rounds} | {median} | {v} |\n"));
    }
    out
}
