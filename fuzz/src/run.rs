//! A fuzzing run: set up, then several workers, each with its own
//! connection, take request indexes in turn, send each generated request
//! followed by an ApiVersions probe, and check the broker still answers.
//!
//! After each request: its answer (if any) must arrive within the response
//! timeout or the connection must close; the probe behind it proves the
//! connection still works. When the fuzzed connection closed, timed out or
//! lost the probe, a fresh connection must get an ApiVersions answer within
//! the probe timeout, and the broker process (when its pid is known) must
//! be alive; otherwise the run stops with a [`Failure`] naming the request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::conn::{self, Conn, Read};
use crate::context::{Context, Member};
use crate::generate::{self, Generated, PROBE_CORRELATION};
use crate::mutate::Hostile;
use crate::stats::{hex, Anomaly, Counts, Stats};

/// How a run is driven.
#[derive(Debug, Clone)]
pub struct Config {
    /// Broker `host:port`.
    pub addr: String,
    pub seed: u64,
    /// Stop after this many requests (from `from`).
    pub requests: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// First request index (replay one request: `from` = its index,
    /// `requests` = 1).
    pub from: u64,
    /// Parallel connections.
    pub workers: usize,
    /// Mutation classes not to generate (prefixes).
    pub skip: Vec<String>,
    /// The broker's pid, to tell a dead process from a silent one.
    pub pid: Option<u32>,
    /// How long a fuzzed request may take to be answered.
    pub response_timeout: Duration,
    /// How long a probe on a fresh connection may take.
    pub probe_timeout: Duration,
    /// Print a progress line every this often.
    pub progress: Option<Duration>,
}

impl Config {
    pub fn new(addr: &str, seed: u64) -> Config {
        Config {
            addr: addr.to_string(),
            seed,
            requests: None,
            duration: None,
            from: 0,
            workers: 4,
            skip: Vec::new(),
            pid: None,
            response_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(5),
            progress: None,
        }
    }
}

/// Why a run stopped early: the broker stopped answering (or died).
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: String,
    pub index: u64,
    pub api: ApiKey,
    pub version: i16,
    pub classes: Vec<String>,
    /// The whole request frame in hex.
    pub hex: String,
    /// The requests sent last, by any worker (the culprit may be one of
    /// them rather than the request that saw the silence).
    pub recent: Vec<String>,
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub stats: Stats,
    pub failure: Option<Failure>,
    pub elapsed: Duration,
    /// Topics the broker lists at the end, and those whose names Kafka
    /// would refuse (empty, longer than 249, or characters outside
    /// `[a-zA-Z0-9._-]`).
    pub topics_at_end: Option<(usize, Vec<String>)>,
}

impl Report {
    pub fn summary(&self) -> String {
        let pairs = generate::pairs();
        let mut s = format!(
            "seed {} ran {:.1} s\n{}",
            self.seed,
            self.elapsed.as_secs_f64(),
            self.stats.summary(&pairs)
        );
        if let Some((n, bad)) = &self.topics_at_end {
            s.push_str(&format!(
                "topics at end: {n}, with names Kafka refuses: {}\n",
                bad.len()
            ));
            for b in bad.iter().take(5) {
                s.push_str(&format!("  {:?}\n", b.chars().take(80).collect::<String>()));
            }
        }
        match &self.failure {
            None => s.push_str("crashes/hangs: none\n"),
            Some(f) => s.push_str(&format!(
                "FAILURE: {}\n  request {} ({:?} v{}) classes {:?}\n  request bytes: {}\n  requests sent last:\n    {}\n",
                f.reason,
                f.index,
                f.api,
                f.version,
                f.classes,
                f.hex,
                f.recent.join("\n    ")
            )),
        }
        s
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Shared between workers.
struct Shared<'a> {
    cfg: &'a Config,
    cx: &'a Context,
    pairs: Vec<(ApiKey, i16)>,
    next: AtomicU64,
    sent: AtomicU64,
    stop: AtomicBool,
    end: u64,
    deadline: Option<Instant>,
    recent: Mutex<VecDeque<String>>,
    failure: Mutex<Option<Failure>>,
    probe: Vec<u8>,
}

/// Runs the fuzzer against `cfg.addr`. `Err` if set-up failed (the broker
/// was not answering to begin with).
pub fn run(cfg: &Config) -> Result<Report, String> {
    let started = Instant::now();
    let cx = crate::setup::setup(&cfg.addr)?;
    let probe = conn::request_frame(3, PROBE_CORRELATION, &ApiVersionsRequest::default())?;
    let shared = Shared {
        cfg,
        cx: &cx,
        pairs: generate::pairs(),
        next: AtomicU64::new(cfg.from),
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        end: cfg
            .requests
            .map_or(u64::MAX, |n| cfg.from.saturating_add(n)),
        deadline: cfg.duration.map(|d| Instant::now() + d),
        recent: Mutex::new(VecDeque::new()),
        failure: Mutex::new(None),
        probe,
    };
    let mut stats = Stats::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cfg.workers.max(1))
            .map(|_| scope.spawn(|| worker(&shared)))
            .collect();
        if let Some(every) = cfg.progress {
            let mut last = Instant::now();
            while !workers.iter().all(|w| w.is_finished()) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= every {
                    last = Instant::now();
                    eprintln!(
                        "[sluice-fuzz] {:.0} s: {} requests sent",
                        started.elapsed().as_secs_f64(),
                        shared.sent.load(Ordering::Relaxed)
                    );
                }
            }
        }
        for w in workers {
            match w.join() {
                Ok(s) => stats.merge(&s),
                Err(_) => {
                    shared.stop.store(true, Ordering::SeqCst);
                }
            }
        }
    });
    let failure = shared.failure.lock().map(|f| f.clone()).unwrap_or(None);
    let topics_at_end = if failure.is_none() {
        final_topics(cfg)
    } else {
        None
    };
    Ok(Report {
        seed: cfg.seed,
        stats,
        failure,
        elapsed: started.elapsed(),
        topics_at_end,
    })
}

/// The requests `cfg` would send (after a real set-up, for topic ids and
/// the producer id), one line each: index, api, version, classes, frame in
/// hex. For looking at a request a failure names.
pub fn dump(cfg: &Config) -> Result<Vec<String>, String> {
    let cx = crate::setup::setup(&cfg.addr)?;
    let pairs = generate::pairs();
    let end = cfg
        .requests
        .map_or(cfg.from + 1, |n| cfg.from.saturating_add(n));
    Ok((cfg.from..end)
        .map(|i| {
            let g = generate::generate(cfg.seed, i, &pairs, &cx, &cfg.skip, &[]);
            format!(
                "{} {:?} v{} {:?} {}",
                i,
                g.api,
                g.version,
                g.classes,
                hex(&g.frame, usize::MAX)
            )
        })
        .collect())
}

/// Whether Kafka would accept `name` as a topic name.
fn legal_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Every topic the broker lists at the end, and the illegal names among
/// them.
fn final_topics(cfg: &Config) -> Option<(usize, Vec<String>)> {
    let mut c = Conn::connect(&cfg.addr, cfg.probe_timeout).ok()?;
    let mut all = MetadataRequest::default();
    all.topics = None;
    all.allow_auto_topic_creation = false;
    let answer = c.call(12, 9, &all, Duration::from_secs(30)).ok()?;
    let names: Vec<String> = answer
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    let bad = names.iter().filter(|n| !legal_topic(n)).cloned().collect();
    Some((names.len(), bad))
}

/// How one exchange ended.
enum Outcome {
    /// Answered (or legitimately silent), and the probe behind it answered
    /// on the same connection.
    Alive,
    /// The connection must be replaced and liveness checked on a new one.
    Recheck,
}

fn worker(sh: &Shared) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    let mut donor: Vec<u8> = Vec::new();
    let mut on_conn = 0u32;
    loop {
        if sh.stop.load(Ordering::SeqCst) || sh.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let index = sh.next.fetch_add(1, Ordering::SeqCst);
        if index >= sh.end {
            break;
        }
        let g = generate::generate(sh.cfg.seed, index, &sh.pairs, sh.cx, &sh.cfg.skip, &donor);
        donor = g.frame.clone();
        if let Ok(mut recent) = sh.recent.lock() {
            recent.push_back(format!(
                "{} {:?} v{} {:?}",
                index, g.api, g.version, g.classes
            ));
            if recent.len() > 16 {
                recent.pop_front();
            }
        }
        sh.sent.fetch_add(1, Ordering::Relaxed);
        count_kind(&mut stats, &g);

        // A fresh connection now and then: sessions of every length.
        if on_conn >= 500 {
            conn = None;
        }
        if conn.is_none() {
            on_conn = 0;
            match Conn::connect(&sh.cfg.addr, sh.cfg.probe_timeout) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail(sh, &g, format!("cannot connect: {e}"));
                    break;
                }
            }
        }
        on_conn += 1;
        let outcome = match conn.as_mut() {
            Some(c) => exchange(sh, c, &g, &mut stats),
            None => Outcome::Recheck,
        };
        if let Outcome::Recheck = outcome {
            conn = None;
            stats.reconnects += 1;
            if let Err(reason) = liveness(sh) {
                fail(sh, &g, reason);
                break;
            }
        }
        if index.is_multiple_of(64) {
            if let Some(pid) = sh.cfg.pid {
                if !process_alive(pid) {
                    fail(sh, &g, format!("broker process {pid} is gone"));
                    break;
                }
            }
        }
    }
    stats
}

fn count_kind(stats: &mut Stats, g: &Generated) {
    if g.fields_mutated {
        stats.fields_mutated += 1;
    }
    if g.bytes_mutated {
        stats.bytes_mutated += 1;
    }
    if !g.fields_mutated && !g.bytes_mutated && g.hostile.is_none() {
        stats.valid += 1;
    }
}

/// Sends `g` and the probe, reads what comes back, and counts it.
fn exchange(sh: &Shared, c: &mut Conn, g: &Generated, stats: &mut Stats) -> Outcome {
    let mut counts = Counts {
        sent: 1,
        ..Counts::default()
    };
    let mut found: Vec<(&str, String)> = Vec::new();
    let outcome = exchange_inner(sh, c, g, &mut counts, &mut found);
    let entry = if g.header_ok {
        stats.per_pair.entry((g.api as i16, g.version)).or_default()
    } else {
        stats
            .hostile
            .entry(g.hostile.map_or("other", |h| h.class()).to_string())
            .or_default()
    };
    entry.add(&counts);
    for (kind, detail) in found {
        stats.anomaly(Anomaly {
            kind: kind.to_string(),
            index: g.index,
            api: g.api,
            version: g.version,
            classes: g.classes.clone(),
            detail,
            hex: hex(&g.frame, 4096),
        });
    }
    outcome
}

fn exchange_inner(
    sh: &Shared,
    c: &mut Conn,
    g: &Generated,
    counts: &mut Counts,
    found: &mut Vec<(&'static str, String)>,
) -> Outcome {
    let mut bytes = Vec::with_capacity(g.frame.len() + sh.probe.len());
    bytes.extend_from_slice(&g.frame);
    bytes.extend_from_slice(&sh.probe);
    if c.write(&bytes).is_err() {
        counts.closed += 1;
        return Outcome::Recheck;
    }
    // A frame whose size lies leaves the broker waiting for bytes that never
    // come: give it a moment, then move on.
    let lying = matches!(
        g.hostile,
        Some(Hostile::SizeShort | Hostile::SizeLong | Hostile::SizeBad)
    );
    let wait = if lying {
        Duration::from_millis(150)
    } else {
        sh.cfg.response_timeout
    };
    let mut anomaly = |kind: &'static str, detail: String| found.push((kind, detail));
    match c.read(Instant::now() + wait) {
        Read::Frame(f) => {
            let corr = f
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if corr == Some(g.correlation_id) && g.correlation_id != PROBE_CORRELATION {
                counts.answered += 1;
                if g.header_ok && g.hostile.is_none_or(|h| h == Hostile::Correlation) {
                    if let (Some(group), false) = (&g.join_group, g.bytes_mutated) {
                        learn_member(sh.cx, g.version, group, &f);
                    }
                    if let Err(e) = check_response(g.api, g.version, f) {
                        anomaly("undecodable response", e);
                    }
                }
                match c.read(Instant::now() + sh.cfg.response_timeout) {
                    Read::Frame(p) if p.get(..4) == Some(&PROBE_CORRELATION.to_be_bytes()[..]) => {
                        Outcome::Alive
                    }
                    Read::Frame(p) => {
                        anomaly("second answer to one request", hex(&p, 256));
                        Outcome::Recheck
                    }
                    _ => Outcome::Recheck,
                }
            } else if corr == Some(PROBE_CORRELATION) {
                counts.unanswered += 1;
                // Only acks=0 Produce owes no answer; a damaged Produce may
                // have become acks=0.
                let may_be_silent =
                    g.no_answer || (g.api == ApiKey::Produce && !g.well_formed) || lying;
                if !may_be_silent {
                    anomaly(
                        "request skipped (the probe after it was answered, it was not)",
                        String::new(),
                    );
                }
                Outcome::Alive
            } else {
                counts.answered += 1;
                if !lying {
                    anomaly(
                        "response with a wrong correlation id",
                        format!("expected {}, got {:?}", g.correlation_id, corr),
                    );
                }
                Outcome::Recheck
            }
        }
        Read::Closed => {
            counts.closed += 1;
            if g.well_formed && g.header_ok {
                anomaly("connection closed on a well-formed request", String::new());
            }
            Outcome::Recheck
        }
        Read::Timeout => {
            counts.timed_out += 1;
            // Long polls (Fetch max_wait_ms) and rebalances (JoinGroup) may
            // legitimately take long; anything else valid should not.
            let may_wait = lying
                || !g.well_formed
                || matches!(g.api, ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup);
            if !may_wait {
                anomaly(
                    "no answer within the response timeout",
                    format!("{:?}", sh.cfg.response_timeout),
                );
            }
            Outcome::Recheck
        }
        Read::BadFrame(size) => {
            anomaly("response frame with an impossible size", size.to_string());
            Outcome::Recheck
        }
    }
}

/// Fresh connections probed at once: the kernel spreads them over the
/// shards (SO_REUSEPORT), so one dead or stuck shard among two is found
/// with probability 1 - 2^-PROBES rather than a half.
const PROBES: usize = 4;

/// Fresh connections answer ApiVersions within the probe timeout, and the
/// process is alive.
fn liveness(sh: &Shared) -> Result<(), String> {
    if let Some(pid) = sh.cfg.pid {
        if !process_alive(pid) {
            return Err(format!("broker process {pid} is gone"));
        }
    }
    let deadline = Instant::now() + sh.cfg.probe_timeout;
    let mut conns = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let mut c = Conn::connect(&sh.cfg.addr, sh.cfg.probe_timeout)
            .map_err(|e| format!("no new connection after the request: {e}"))?;
        c.write(&sh.probe)
            .map_err(|e| format!("writing ApiVersions on a new connection: {e}"))?;
        conns.push(c);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        match c.read(deadline) {
            Read::Frame(f) if f.get(..4) == Some(&PROBE_CORRELATION.to_be_bytes()[..]) => {}
            other => {
                return Err(format!(
                    "ApiVersions on new connection {} of {PROBES}: {other:?} within {:?}",
                    i + 1,
                    sh.cfg.probe_timeout
                ))
            }
        }
    }
    Ok(())
}

/// Remembers the member id a JoinGroup answer hands out (joined, or
/// MEMBER_ID_REQUIRED), for later group requests.
fn learn_member(cx: &Context, version: i16, group: &str, frame: &[u8]) {
    /// Kafka's MEMBER_ID_REQUIRED: rejoin with this member id.
    const MEMBER_ID_REQUIRED: i16 = 79;
    let mut b = Bytes::copy_from_slice(frame);
    let api = ApiKey::JoinGroup;
    if ResponseHeader::decode(&mut b, api.response_header_version(version)).is_err() {
        return;
    }
    let Ok(answer) = JoinGroupResponse::decode(&mut b, version) else {
        return;
    };
    let joined = answer.error_code == 0;
    if (joined || answer.error_code == MEMBER_ID_REQUIRED) && !answer.member_id.is_empty() {
        cx.learn(Member {
            group: group.to_string(),
            member_id: answer.member_id.to_string(),
            generation: if joined { answer.generation_id } else { -1 },
        });
    }
}

fn fail(sh: &Shared, g: &Generated, reason: String) {
    sh.stop.store(true, Ordering::SeqCst);
    let recent = sh
        .recent
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    if let Ok(mut f) = sh.failure.lock() {
        if f.is_none() {
            *f = Some(Failure {
                reason,
                index: g.index,
                api: g.api,
                version: g.version,
                classes: g.classes.clone(),
                hex: hex(&g.frame, usize::MAX),
                recent,
            });
        }
    }
}

/// Decodes a response of `api` at `version` whole: header, body, nothing
/// left over.
fn check_response(api: ApiKey, version: i16, frame: Vec<u8>) -> Result<(), String> {
    let mut b = Bytes::from(frame);
    ResponseHeader::decode(&mut b, api.response_header_version(version))
        .map_err(|e| format!("header: {e}"))?;
    macro_rules! decode {
        ($($variant:ident => $ty:ty),* $(,)?) => {
            match api {
                $( ApiKey::$variant => <$ty>::decode(&mut b, version).map(|_| ()), )*
                other => return Err(format!("no response decoder for {other:?}")),
            }
        };
    }
    decode! {
        ApiVersions => ApiVersionsResponse,
        Metadata => MetadataResponse,
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        CreatePartitions => CreatePartitionsResponse,
        DescribeConfigs => DescribeConfigsResponse,
        DescribeCluster => DescribeClusterResponse,
        DeleteRecords => DeleteRecordsResponse,
        AlterConfigs => AlterConfigsResponse,
        IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
        DescribeLogDirs => DescribeLogDirsResponse,
        InitProducerId => InitProducerIdResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        SyncGroup => SyncGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        ListGroups => ListGroupsResponse,
        DescribeGroups => DescribeGroupsResponse,
        DeleteGroups => DeleteGroupsResponse,
        OffsetDelete => OffsetDeleteResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        EndTxn => EndTxnResponse,
        TxnOffsetCommit => TxnOffsetCommitResponse,
        DescribeTransactions => DescribeTransactionsResponse,
        ListTransactions => ListTransactionsResponse,
        DescribeProducers => DescribeProducersResponse,
        SaslHandshake => SaslHandshakeResponse,
        SaslAuthenticate => SaslAuthenticateResponse,
        DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
        AlterUserScramCredentials => AlterUserScramCredentialsResponse,
        CreateAcls => CreateAclsResponse,
        DescribeAcls => DescribeAclsResponse,
        DeleteAcls => DeleteAclsResponse,
    }
    .map_err(|e| format!("body: {e}"))?;
    if !b.is_empty() {
        return Err(format!("{} bytes left after the response", b.len()));
    }
    Ok(())
}
