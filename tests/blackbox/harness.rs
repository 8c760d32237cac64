//! The broker process and the clients that talk to it.
//!
//! [`Broker`] starts the real `sluice` binary on a free port with a data
//! directory of its own ([`DataDir`]), waits for its `ready` line, and can
//! SIGKILL it, SIGTERM it and restart it with the same arguments. Its stderr
//! is captured for the whole life of the test and printed when a test fails,
//! so a failure report carries the broker's own account.
//!
//! Clients: [`Producer`] wraps an rdkafka `ThreadedProducer` whose context
//! records every delivery report (id, partition, offset or error);
//! [`consume`] / [`consume_to_end`] read a topic from the beginning with a
//! plain consumer with explicitly assigned partitions and return
//! [`Record`]s; [`create_topic`] uses the admin client.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Headers, Message};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, Timestamp, TopicPartitionList};

/// How long a broker may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signalled broker may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `condition` every few milliseconds until it holds or `timeout`
/// passes; returns whether it held. The one way tests wait for something.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A seed for the tests' random choices, printed so a failure can be rerun.
pub fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// xorshift64: enough randomness for kill moments, no extra crate.
pub struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so close seeds (two tests started in the
    /// same microsecond) still give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-enough value in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A fresh data directory under `CARGO_TARGET_TMPDIR` (direct I/O needs a
/// real file system, which /tmp may not be). Removed on drop, except when
/// the test failed: then it is kept and its path printed, for
/// `sluice wal inspect`.
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    pub fn new(name: &str) -> DataDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("blackbox")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create data dir");
        DataDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every WAL segment file (`*.wal`) below the directory, sorted by path,
    /// so within one shard the newest segment comes last.
    pub fn wal_segments(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "wal") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path, &mut out);
        out.sort();
        out
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[blackbox] keeping data dir {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Why a broker did not become ready.
#[derive(Debug)]
pub struct StartError {
    /// Exit status, if the process exited (None: timed out, then killed).
    pub status: Option<ExitStatus>,
    /// Its stderr of this run.
    pub stderr: String,
}

/// Whether something listens on 127.0.0.1:`port` (IPv4), from
/// /proc/net/tcp: local address `0100007F:<PORT hex>`, state `0A`.
fn has_listener(port: &str) -> bool {
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3 && fields[1] == local && fields[3] == "0A"
            })
        })
        .unwrap_or(false)
}

/// Whether `line` is the readiness line: the word `ready` (not inside
/// "already": "Address already in use" is the opposite) and the address.
fn is_ready_line(line: &str, addr: &str) -> bool {
    line.contains(addr)
        && line
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == "ready")
}

/// One `sluice serve` process (and its restarts) on a fixed address.
pub struct Broker {
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
    addr: String,
    /// Listeners by name (`--listeners`), when not one on `addr`; the
    /// first is on `addr`.
    listeners: Vec<(String, String)>,
    data_dir: PathBuf,
    shards: usize,
    extra: Vec<String>,
    /// Environment variables of the process (fail points).
    env: Vec<(String, String)>,
    /// Every stderr line of every run, runs separated by a marker line.
    log: Arc<Mutex<Vec<String>>>,
    runs: usize,
    /// Index in `log` of the current run's first line.
    run_start: usize,
}

impl Broker {
    /// Starts a broker and waits for its ready line; panics with its stderr
    /// if it exits or is not ready within [`READY_TIMEOUT`].
    pub fn start(data_dir: &Path, shards: usize, extra: &[&str]) -> Broker {
        Broker::try_start(data_dir, shards, extra)
            .unwrap_or_else(|e| panic!("broker did not start: {e:?}\n{}", e.stderr))
    }

    /// [`Broker::start`], returning the failure instead of panicking.
    pub fn try_start(data_dir: &Path, shards: usize, extra: &[&str]) -> Result<Broker, StartError> {
        Broker::try_start_env(data_dir, shards, extra, &[])
    }

    /// [`Broker::try_start`] with environment variables for the process
    /// (`SLUICE_FAIL_POINT`), kept for its restarts.
    pub fn try_start_env(
        data_dir: &Path,
        shards: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Broker, StartError> {
        Broker::try_start_listeners(data_dir, shards, &[], extra, env)
    }

    /// Starts a broker with one listener of each name in `names` (a
    /// security protocol's name, or one `extra` maps to one), each on a
    /// port of its own ([`Broker::listener`]); `addr` is the first's.
    pub fn start_listeners(
        data_dir: &Path,
        shards: usize,
        names: &[&str],
        extra: &[&str],
    ) -> Broker {
        Broker::try_start_listeners(data_dir, shards, names, extra, &[])
            .unwrap_or_else(|e| panic!("broker did not start: {e:?}\n{}", e.stderr))
    }

    fn try_start_listeners(
        data_dir: &Path,
        shards: usize,
        names: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Broker, StartError> {
        let ports = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.to_string(), format!("127.0.0.1:{}", free_port())))
                .collect()
        };
        let listeners = ports(names);
        let mut broker = Broker {
            child: None,
            reader: None,
            addr: listeners
                .first()
                .map_or_else(|| format!("127.0.0.1:{}", free_port()), |(_, a)| a.clone()),
            listeners,
            data_dir: data_dir.to_path_buf(),
            shards,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Arc::new(Mutex::new(Vec::new())),
            runs: 0,
            run_start: 0,
        };
        // Another test's broker may have been given the same free port in
        // the meantime; the broker refuses an address in use, so try another.
        for _ in 0..5 {
            match broker.spawn() {
                Err(e) if e.stderr.contains("already listening") => {
                    broker.listeners = ports(names);
                    broker.addr = broker
                        .listeners
                        .first()
                        .map_or_else(|| format!("127.0.0.1:{}", free_port()), |(_, a)| a.clone());
                }
                other => return other.map(|()| broker),
            }
        }
        broker.spawn().map(|()| broker)
    }

    /// Starts the process with the stored arguments and waits until ready.
    fn spawn(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "broker is already running");
        self.runs += 1;
        let first_line = {
            let mut log = self.log.lock().unwrap();
            log.push(format!("----- run {} -----", self.runs));
            log.len()
        };
        self.run_start = first_line;
        let listen = if self.listeners.is_empty() {
            vec!["--listen".to_string(), self.addr.clone()]
        } else {
            let all: Vec<String> = self
                .listeners
                .iter()
                .map(|(name, addr)| format!("{name}://{addr}"))
                .collect();
            vec!["--listeners".to_string(), all.join(",")]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .args(&listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--shards", &self.shards.to_string()])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel::<()>();
        let log = self.log.clone();
        self.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line);
                let _ = tx.send(());
            }
        }));
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = self.log.lock().unwrap()[first_line..]
                .iter()
                .any(|l| is_ready_line(l, &self.addr));
            if ready {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                self.join_reader();
                return Err(StartError {
                    status: Some(status),
                    stderr: self.run_log(first_line),
                });
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(StartError {
                    status: None,
                    stderr: self.run_log(first_line),
                });
            }
            // Woken by each stderr line; the timeout covers a silent exit.
            let _ = rx.recv_timeout(Duration::from_millis(50));
        }
    }

    fn run_log(&self, from: usize) -> String {
        self.log.lock().unwrap()[from..].join("\n")
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// `host:port` for bootstrap.servers and raw connections.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `host:port` of the listener named `name`.
    pub fn listener(&self, name: &str) -> &str {
        &self
            .listeners
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name}"))
            .1
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("broker not running").id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// What the current (or last) run wrote to stderr.
    pub fn last_run_log(&self) -> String {
        self.run_log(self.run_start)
    }

    /// Waits up to 10 s for a line of this run's log to hold every one of
    /// `parts`: the log is read by a thread of its own, so a line written
    /// just before an answer may reach the test a moment after it.
    pub fn run_log_has(&self, parts: &[&str]) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.last_run_log()
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        })
    }

    /// Everything the broker wrote to stderr, over all runs.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL, reap, and wait until the listening sockets are gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            self.wait_listeners_closed();
        }
        self.join_reader();
    }

    /// SIGKILL and reap, and nothing more: the next start meets the dead
    /// process's listening sockets, as a supervisor restarting at once does.
    pub fn kill9_at_once(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_reader();
    }

    /// Waits (at most `timeout`) for the broker to exit on its own; its
    /// status, or None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("broker not running");
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
            self.join_reader();
        }
        status
    }

    /// io_uring tears a dead process's ring down asynchronously, so its
    /// listening sockets outlive the reaped process by some milliseconds
    /// (10-30 ms measured here); a restart inside that window would meet
    /// them. An operator or systemd restarting a crashed broker waits far
    /// longer, so the harness waits for them to close.
    fn wait_listeners_closed(&self) {
        let port = self.addr.rsplit(':').next().unwrap_or_default();
        assert!(
            wait_until(Duration::from_secs(10), || !has_listener(port)),
            "port {port} still has a listener 10 s after the broker exited"
        );
    }

    /// Sends `signal` to a broker that goes on running (SIGHUP).
    pub fn signal_keep(&mut self, signal: i32) {
        let child = self.child.as_ref().expect("broker not running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Sends `signal` and waits (at most [`EXIT_TIMEOUT`]) for the exit
    /// status; panics, after a SIGKILL, if the broker does not exit in time.
    pub fn signal(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("broker not running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.join_reader();
                self.wait_listeners_closed();
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.join_reader();
                panic!(
                    "broker did not exit within {EXIT_TIMEOUT:?} of signal {signal}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM: the broker should drain, sync and exit 0.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// Starts the broker again with the same address, data dir and flags.
    /// The previous process must have been stopped (kill9 / sigterm).
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("broker did not restart: {e:?}\n{}", self.log());
        }
    }

    /// Forgets the environment it was started with (a fail point), for
    /// the next restart.
    pub fn clear_env(&mut self) {
        self.env.clear();
    }

    /// [`Broker::restart`] returning the failure.
    pub fn try_restart(&mut self) -> Result<(), StartError> {
        assert!(!self.is_running(), "restart of a running broker");
        self.child = None;
        self.spawn()
    }

    /// Restart with another shard count / flags (same address and dir).
    pub fn try_restart_with(&mut self, shards: usize, extra: &[&str]) -> Result<(), StartError> {
        self.shards = shards;
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.try_restart()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            let tail = &log[log.len().saturating_sub(60)..];
            eprintln!(
                "[blackbox] broker {} stderr (last {} lines):\n{}",
                self.addr,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// Runs a future to completion on a small runtime (admin calls).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

pub fn client_config(broker: &Broker, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.addr());
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    client_config(broker, &[]).create().expect("admin client")
}

/// Waits (bounded) for an admin call and panics unless every topic in it
/// succeeded.
fn admin_result(
    what: &str,
    call: impl Future<Output = rdkafka::error::KafkaResult<Vec<rdkafka::admin::TopicResult>>>,
) {
    let results = block_on(async { tokio::time::timeout(Duration::from_secs(20), call).await })
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("{what} failed for {topic}: {code:?}");
        }
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// CreateTopics through the admin client; panics unless it succeeds.
pub fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    admin_result(
        &format!("CreateTopics {name}"),
        admin(broker).create_topics(&[topic], &admin_options()),
    );
}

/// DeleteTopics through the admin client; panics unless it succeeds.
pub fn delete_topic(broker: &Broker, name: &str) {
    admin_result(
        &format!("DeleteTopics {name}"),
        admin(broker).delete_topics(&[name], &admin_options()),
    );
}

/// DeleteRecords through the admin client: every record of `topic`'s
/// `partition` below `offset` (`Offset::End`: all). Returns the new low
/// watermark, or the error the broker answered for the partition.
pub fn delete_records(
    broker: &Broker,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> Result<i64, rdkafka::error::KafkaError> {
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, offset)
        .expect("add partition");
    let admin = admin(broker);
    let call = admin.delete_records(&offsets, &admin_options());
    let result = block_on(async { tokio::time::timeout(Duration::from_secs(20), call).await })
        .unwrap_or_else(|_| panic!("DeleteRecords {topic}/{partition} timed out"))?;
    let element = result
        .find_partition(topic, partition)
        .unwrap_or_else(|| panic!("DeleteRecords answered without {topic}/{partition}"));
    element.error()?;
    match element.offset() {
        Offset::Offset(low) => Ok(low),
        other => panic!("DeleteRecords answered low watermark {other:?}"),
    }
}

/// A topic config's value, through the admin client's DescribeConfigs.
pub fn topic_config(broker: &Broker, topic: &str, key: &str) -> Option<String> {
    let admin = admin(broker);
    let resource = rdkafka::admin::ResourceSpecifier::Topic(topic);
    let call = admin.describe_configs([&resource], &admin_options());
    let results = block_on(async { tokio::time::timeout(Duration::from_secs(20), call).await })
        .unwrap_or_else(|_| panic!("DescribeConfigs {topic} timed out"))
        .unwrap_or_else(|e| panic!("DescribeConfigs {topic}: {e}"));
    let config = results
        .into_iter()
        .next()
        .expect("one resource")
        .unwrap_or_else(|e| panic!("DescribeConfigs {topic}: {e:?}"));
    config.get(key).and_then(|e| e.value.clone())
}

/// Bytes of every WAL segment below the data directory.
pub fn wal_bytes(dir: &DataDir) -> u64 {
    dir.wal_segments()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// CreatePartitions (to `total`) through the admin client.
pub fn create_partitions(broker: &Broker, name: &str, total: usize) {
    admin_result(
        &format!("CreatePartitions {name} to {total}"),
        admin(broker).create_partitions(&[NewPartitions::new(name, total)], &admin_options()),
    );
}

/// The value of message `id`: `id:<12 digits>:` padded to `len` bytes, so
/// every consumed value names the message it is.
pub fn value_for(id: u64, len: usize) -> Vec<u8> {
    let mut v = format!("id:{id:012}:").into_bytes();
    let pad = b'a' + (id % 26) as u8;
    while v.len() < len {
        v.push(pad);
    }
    v
}

/// The id in a value made by [`value_for`].
pub fn id_of(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(b"id:")?.get(..12)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One delivery report.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: u64,
    pub partition: i32,
    /// Offset on success, error text on failure.
    pub result: Result<i64, String>,
}

type AckHook = Box<dyn Fn(&Report) + Send + Sync>;

/// Producer context: keeps every delivery report; an optional hook runs in
/// the delivery callback itself (to SIGKILL the broker right at an ack).
#[derive(Default)]
pub struct Recorder {
    reports: Mutex<Vec<Report>>,
    hook: Mutex<Option<AckHook>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<u64>) {
        let report = match result {
            Ok(m) => Report {
                id: *id,
                partition: m.partition(),
                result: Ok(m.offset()),
            },
            Err((e, m)) => Report {
                id: *id,
                partition: m.partition(),
                result: Err(e.to_string()),
            },
        };
        if let Some(hook) = &*self.hook.lock().unwrap() {
            hook(&report);
        }
        self.reports.lock().unwrap().push(report);
    }
}

/// A producer that remembers every delivery report.
pub struct Producer {
    inner: ThreadedProducer<Recorder>,
}

/// Settings every test producer starts from: acks=all, no client retries
/// (a retry could store a message twice, which would hide or fake a broker
/// duplicate), no idempotence, and room for the largest test in the queue.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("linger.ms", "5"),
    ("message.send.max.retries", "0"),
    ("enable.idempotence", "false"),
    ("message.timeout.ms", "60000"),
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "1048576"),
];

/// A producer for `broker`; `extra` overrides [`PRODUCER_DEFAULTS`].
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> Producer {
    let mut config = client_config(broker, PRODUCER_DEFAULTS);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let inner = config
        .create_with_context(Recorder::default())
        .expect("create producer");
    Producer { inner }
}

impl Producer {
    /// Enqueues a record (its opaque is the message id), waiting for queue
    /// space if needed (bounded).
    pub fn send(&self, record: BaseRecord<'_, [u8], [u8], Box<u64>>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut record = record;
        loop {
            match self.inner.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(code), back))
                    if code == rdkafka::types::RDKafkaErrorCode::QueueFull
                        && Instant::now() < deadline =>
                {
                    record = back;
                    let _ = self.inner.flush(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("enqueue failed: {e}"),
            }
        }
    }

    /// Sends message `id` (value [`value_for`] of `len` bytes, key = id) to
    /// `partition` of `topic`.
    pub fn send_id(&self, topic: &str, partition: i32, id: u64, len: usize) {
        let value = value_for(id, len);
        let key = id.to_string();
        self.send(
            BaseRecord::with_opaque_to(topic, Box::new(id))
                .partition(partition)
                .key(key.as_bytes())
                .payload(&value[..]),
        );
    }

    /// Waits until every enqueued message has a delivery report; false if
    /// some are still outstanding after `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.flush(timeout).is_ok()
    }

    /// Messages enqueued or in flight, not yet reported.
    pub fn outstanding(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Drops everything queued or in flight (reported as purged errors).
    pub fn purge(&self) {
        self.inner
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    }

    /// Runs `hook` inside the delivery callback of every later report.
    pub fn on_report(&self, hook: impl Fn(&Report) + Send + Sync + 'static) {
        *self.inner.context().hook.lock().unwrap() = Some(Box::new(hook));
    }

    pub fn reports(&self) -> Vec<Report> {
        self.inner.context().reports.lock().unwrap().clone()
    }

    pub fn report_count(&self) -> usize {
        self.inner.context().reports.lock().unwrap().len()
    }

    /// Acknowledged messages: id → (partition, offset). Panics on a success
    /// report with a negative offset: a produce error mapped to "success"
    /// with offset -1 is one of the ways brokers lose data (DESIGN.md).
    pub fn acked(&self) -> BTreeMap<u64, (i32, i64)> {
        let mut acked = BTreeMap::new();
        for r in self.inner.context().reports.lock().unwrap().iter() {
            if let Ok(offset) = r.result {
                assert!(
                    offset >= 0,
                    "message {} reported delivered at offset {offset} (partition {})",
                    r.id,
                    r.partition
                );
                let previous = acked.insert(r.id, (r.partition, offset));
                assert!(previous.is_none(), "message {} acknowledged twice", r.id);
            }
        }
        acked
    }

    /// The failed reports, for messages.
    pub fn failures(&self) -> Vec<Report> {
        self.reports()
            .into_iter()
            .filter(|r| r.result.is_err())
            .collect()
    }
}

/// A consumed record, with everything the tests compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

/// A consumer with partitions assigned explicitly (no group membership;
/// librdkafka still wants a group.id for assign, and it is never used to
/// commit). CRCs are checked by the client too.
pub fn consumer(broker: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(
        broker,
        &[
            ("group.id", "sluice-blackbox"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", "earliest"),
            ("check.crcs", "true"),
            ("fetch.wait.max.ms", "100"),
            ("fetch.error.backoff.ms", "50"),
            ("fetch.message.max.bytes", "4194304"),
            ("receive.message.max.bytes", "104857600"),
        ],
    );
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create consumer")
}

/// The partition count of `topic` as Metadata reports it.
pub fn partition_count(consumer: &BaseConsumer, topic: &str) -> i32 {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("topic {topic} missing from metadata"));
    assert!(
        t.error().is_none(),
        "metadata error for {topic}: {:?}",
        t.error()
    );
    t.partitions().len() as i32
}

/// Reads `topic` from the beginning of every partition until `n` records
/// arrived or `timeout` passed; returns what arrived.
pub fn consume(broker: &Broker, topic: &str, n: usize, timeout: Duration) -> Vec<Record> {
    consume_inner(broker, topic, Some(n), timeout, &[])
}

/// Reads `topic` from the beginning until every partition reached its end
/// (partition EOF), or `timeout` passed (then panics: a consumer that cannot
/// reach the end is a failure in itself).
pub fn consume_to_end(broker: &Broker, topic: &str, timeout: Duration) -> Vec<Record> {
    consume_inner(broker, topic, None, timeout, &[])
}

/// [`consume_to_end`] with consumer settings of its own (`extra`), such
/// as `isolation.level` (librdkafka's default is read_committed).
pub fn consume_to_end_with(
    broker: &Broker,
    topic: &str,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Vec<Record> {
    consume_inner(broker, topic, None, timeout, extra)
}

fn consume_inner(
    broker: &Broker,
    topic: &str,
    n: Option<usize>,
    timeout: Duration,
    extra: &[(&str, &str)],
) -> Vec<Record> {
    let consumer = consumer(broker, extra);
    let partitions = partition_count(&consumer, topic);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign");

    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    let mut at_end = vec![false; partitions as usize];
    loop {
        match n {
            Some(n) if records.len() >= n => break,
            None if at_end.iter().all(|e| *e) => break,
            _ => {}
        }
        if Instant::now() >= deadline {
            if n.is_none() {
                panic!(
                    "consuming {topic}: partitions {:?} not at end after {timeout:?} ({} records read)",
                    at_end
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| !**e)
                        .map(|(p, _)| p)
                        .collect::<Vec<_>>(),
                    records.len()
                );
            }
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                at_end[m.partition() as usize] = false;
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp: m.timestamp(),
                });
            }
        }
    }
    records
}

/// (low, high) watermarks of one partition.
pub fn watermarks(broker: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    consumer(broker, &[])
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition}: {e}"))
}

/// Runs `sluice wal inspect DIR` and returns what it printed.
pub fn wal_inspect(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["wal", "inspect"])
        .arg(dir)
        .output()
        .expect("run sluice wal inspect")
}

/// Sends messages `ids` to `topic`, message `id` to partition
/// `id % partitions`, values of `len` bytes; returns id → partition.
pub fn produce_range(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    len: usize,
) -> BTreeMap<u64, i32> {
    let mut produced = BTreeMap::new();
    for id in ids {
        let partition = (id % partitions as u64) as i32;
        producer.send_id(topic, partition, id, len);
        produced.insert(id, partition);
    }
    produced
}

/// Sends `ids` to `topic` (message `id` to partition `id % partitions`,
/// values of `len` bytes) from a thread until `stop` is set, keeping at
/// most ~20k messages outstanding; the thread returns id → partition of
/// what it sent.
pub fn produce_until(
    producer: Arc<Producer>,
    topic: &'static str,
    partitions: i32,
    stop: Arc<AtomicBool>,
    ids: std::ops::Range<u64>,
    len: usize,
) -> JoinHandle<BTreeMap<u64, i32>> {
    std::thread::spawn(move || {
        let mut produced = BTreeMap::new();
        for id in ids {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if producer.outstanding() > 20_000 {
                wait_until(Duration::from_secs(5), || {
                    producer.outstanding() < 10_000 || stop.load(Ordering::SeqCst)
                });
            }
            let partition = (id % partitions as u64) as i32;
            producer.send_id(topic, partition, id, len);
            produced.insert(id, partition);
        }
        produced
    })
}
