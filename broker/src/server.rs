//! Start-up and shutdown: the data directory's shard count, one pinned
//! glommio executor per shard (WAL recovery, then listening with
//! SO_REUSEPORT), the readiness line, and draining on SIGTERM/SIGINT.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::admission::ConnectionGate;
use crate::config::ServeArgs;
use crate::context::Session;
use crate::crash::{self, FailPoint};
use crate::groups::service::GroupLimits;
use crate::groups::GroupService;
use crate::layout::{self, CLUSTER_FILE};
use crate::lifecycle::Lifecycle;
use crate::listeners::Listener;
use crate::log::cleaner::WalUser;
use crate::log::retention::Retention;
use crate::log::Log;
use crate::metadata::{self, Metadata};
use crate::security::sasl::ANONYMOUS;
use crate::security::store::Store;
use crate::shard::{Job, Shard, ShardOwners};
use crate::shard_id::ShardId;
use crate::transactions::{TxnLimits, TxnService};
use futures_rustls::TlsAcceptor;

/// Runs the broker until SIGTERM or SIGINT.
pub fn serve(args: ServeArgs) -> Result<(), String> {
    check_memlock()?;
    crate::alloc::check_overcommit();
    // Its entry in its parent must survive a power cut too.
    sluice_wal_core::segment::create_dir_durably(&args.data_dir)
        .map_err(|e| format!("creating data directory: {e}"))?;
    // Held until the process exits, however it exits.
    let _lock = layout::lock_data_dir(&args.data_dir)?;
    let (shards, cluster_id) = cluster_identity(&args)?;
    let metadata = Arc::new(metadata::load(&args.data_dir, shards)?);
    let security = Arc::new(crate::security::store::load(&args.data_dir)?);
    let listeners: Vec<Arc<Listener>> = crate::listeners::of(&args)?
        .into_iter()
        .map(Arc::new)
        .collect();
    crate::security::sasl::enabled(&args.sasl_enabled_mechanisms)?;
    crate::authorizer::Settings::of(&args)?;
    let tls = crate::security::tls::acceptor(&args)?;
    if let Some(l) = listeners.iter().find(|l| l.protocol.tls()) {
        if tls.is_none() {
            return Err(format!(
                "listener {} uses {}: it needs --ssl-certificate and --ssl-key",
                l.name,
                l.protocol.name()
            ));
        }
    }
    for l in &listeners {
        refuse_address_in_use(l.bind)?;
    }
    let fail_point = crate::crash::FailPoint::from_env()?;
    let gate = ConnectionGate::new(args.max_connections, args.max_connections_per_ip);
    let signals = block_shutdown_signals();
    let args = Arc::new(args);
    let cluster_id: Arc<str> = cluster_id.into();

    let channels: Vec<(flume::Sender<Job>, flume::Receiver<Job>)> =
        (0..shards).map(|_| flume::bounded(CALL_QUEUE)).collect();
    let senders: Vec<flume::Sender<Job>> = channels.iter().map(|(tx, _)| tx.clone()).collect();
    let (is_ready, stopping) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    if let Some(addr) = args.metrics_listen {
        crate::metrics_http::start(
            addr,
            crate::metrics_http::Broker {
                shards: senders.clone(),
                gate: gate.clone(),
                ready: is_ready.clone(),
                stopping: stopping.clone(),
                max_partition_series: args.metrics_partition_series,
            },
        )?;
    }
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let exited = Arc::new(AtomicUsize::new(0));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut handles = Vec::new();
    for (id, (_, rx)) in channels.into_iter().enumerate() {
        let (args, cluster_id, metadata) = (args.clone(), cluster_id.clone(), metadata.clone());
        let (peers, ready, exited) = (senders.clone(), ready_tx.clone(), exited.clone());
        let (gate, security, tls) = (gate.clone(), security.clone(), tls.clone());
        let listeners = listeners.clone();
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("shard-{id}"))
            .io_memory(args.io_memory_mib << 20);
        if args.idle_spin_us > 0 {
            builder = builder.spin_before_park(Duration::from_micros(args.idle_spin_us));
        }
        let handle = builder
            .spawn(move || async move {
                let start = ShardStart {
                    id: ShardId::new(id),
                    args,
                    cluster_id,
                    metadata,
                    security,
                    tls,
                    listeners,
                    jobs: rx,
                    peers,
                    gate,
                    fail_point,
                };
                let result = run_shard(start, ready.clone()).await;
                if let Err(e) = result {
                    let _ = ready.send(Err(format!("shard {id}: {e}")));
                }
                exited.fetch_add(1, Ordering::SeqCst);
            })
            .map_err(|e| format!("starting shard {id}: {e}{}", memlock_hint(&e.to_string())))?;
        handles.push(handle);
    }
    drop(ready_tx);

    let mut ready = 0;
    let mut failure = None;
    while ready < shards {
        match ready_rx.recv() {
            Ok(Ok(())) => ready += 1,
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(_) => {
                failure = Some("a shard stopped during start-up".into());
                break;
            }
        }
    }
    if failure.is_none() {
        let listening: Vec<String> = listeners
            .iter()
            .map(|l| match l.protocol.name() {
                same if same == l.name => format!("{} ({same})", l.bind),
                protocol => format!("{} ({}: {protocol})", l.bind, l.name),
            })
            .collect();
        eprintln!(
            "sluice ready: listening on {} with {shards} shard(s), data in {}",
            listening.join(", "),
            args.data_dir.display()
        );
        tracing::info!(listen = %listening.join(", "), shards, "ready");
        is_ready.store(true, Ordering::SeqCst);
        // Until a signal arrives or a shard dies on its own.
        loop {
            let signal = wait_signal(&signals, Duration::from_millis(200));
            if signal == Some("SIGHUP") {
                reload_tls(&args, &senders);
            } else if let Some(signal) = signal {
                tracing::info!(
                    signal,
                    "shutting down: draining requests and syncing the WAL"
                );
                break;
            }
            if exited.load(Ordering::SeqCst) > 0 {
                failure = ready_rx.try_recv().ok().and_then(Result::err);
                failure.get_or_insert_with(|| "a shard stopped unexpectedly".into());
                break;
            }
        }
    }
    stopping.store(true, Ordering::SeqCst);
    for tx in &senders {
        let _ = tx.send(Box::new(|shard: Rc<Shard>| {
            Box::pin(async move { shard.lifecycle().shutdown.notify() })
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    match failure {
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// Calls waiting for a shard to take them; a caller past this waits (the
/// shard takes calls as fast as they come, each into a task of its own, so
/// the bound only limits what sits in the queue).
const CALL_QUEUE: usize = 4096;
/// Bytes one cleaner pass may copy forward, so a pass does a bounded
/// amount of I/O beside the produce traffic.
const MAX_COPIED_PER_PASS: u64 = 64 << 20;

/// What one shard starts from.
struct ShardStart {
    id: ShardId,
    args: Arc<ServeArgs>,
    cluster_id: Arc<str>,
    metadata: Arc<Metadata>,
    /// The SCRAM credentials.
    security: Arc<Store>,
    /// The TLS configuration of SSL and SASL_SSL listeners.
    tls: Option<TlsAcceptor>,
    /// Every listener, each bound by every shard.
    listeners: Vec<Arc<Listener>>,
    /// Calls from other shards to this one.
    jobs: flume::Receiver<Job>,
    /// Every shard's call queue, this one's included.
    peers: Vec<flume::Sender<Job>>,
    /// The broker's connection limits.
    gate: Arc<ConnectionGate>,
    fail_point: Option<FailPoint>,
}

async fn run_shard(
    start: ShardStart,
    ready: mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let ShardStart {
        id,
        args,
        cluster_id,
        metadata,
        security,
        tls,
        listeners,
        jobs,
        peers,
        gate,
        fail_point,
    } = start;
    if let Some(FailPoint::RecoveryDelay { shard, after_ms }) = fail_point {
        if shard == id.index() {
            glommio::timer::sleep(Duration::from_millis(after_ms)).await;
        }
    }
    let recovered = crate::recovery::recover(id, &args, &metadata).await?;
    let log = Rc::new(Log::new(
        recovered.wal,
        recovered.log,
        args.fetch_buffer_mib << 20,
    ));
    log.set_checkpointed(recovered.checkpoint);
    let recovered_stats = recovered.stats;
    let limits = GroupLimits::of(&args, peers.len());
    let groups = Rc::new(GroupService::new(recovered.groups, log.clone(), limits));
    let transactions = Rc::new(TxnService::new(
        recovered.txns,
        log.clone(),
        TxnLimits::of(&args, peers.len()),
    ));
    let lifecycle = Rc::new(Lifecycle::default());
    let shard = Rc::new(Shard::new(
        id,
        args.clone(),
        cluster_id,
        ShardOwners {
            log,
            groups,
            transactions,
        },
        lifecycle.clone(),
        peers,
    ));
    shard.metrics().set_recovery(recovered_stats);
    shard.groups().start(id.index(), lifecycle.clone());
    TxnService::start(&shard, lifecycle.clone());
    glommio::spawn_local(expire_producers(shard.clone())).detach();
    glommio::spawn_local(maintain_log(shard.clone())).detach();
    shard.apply_metadata(metadata);
    shard.apply_security(security);
    shard.apply_tls(tls);

    let runner = shard.clone();
    let jobs_done = glommio::spawn_local(async move {
        let lifecycle = runner.lifecycle().clone();
        let stopped = lifecycle.stopped.generation();
        loop {
            let next = futures_lite::future::or(async { jobs.recv_async().await.ok() }, async {
                lifecycle.stopped.changed(stopped).await;
                None
            })
            .await;
            match next {
                Some(job) => {
                    let (shard, lifecycle) = (runner.clone(), lifecycle.clone());
                    Lifecycle::started(&lifecycle.active_jobs);
                    glommio::spawn_local(async move {
                        job(shard).await;
                        lifecycle.done(&lifecycle.active_jobs);
                    })
                    .detach();
                }
                None => break,
            }
        }
        // Work still queued for this stopped shard is dropped, which fails
        // its callers at once instead of leaving them waiting; once the
        // receiver is gone, new calls fail at send.
        while let Ok(job) = jobs.try_recv() {
            drop(job);
        }
    })
    .detach();

    let mut bound = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let socket = glommio::net::TcpListener::bind(listener.bind)
            .map_err(|e| format!("listening on {} ({}): {e}", listener.bind, listener.name))?;
        bound.push((listener, socket));
    }
    let _ = ready.send(Ok(()));
    glommio::spawn_local(stop_on_wal_failure(shard.clone())).detach();
    if let Some(fail_point) = fail_point {
        glommio::spawn_local(inject(shard.clone(), fail_point)).detach();
    }
    let accepting: Vec<_> = bound
        .into_iter()
        .map(|(listener, socket)| {
            glommio::spawn_local(accept(shard.clone(), listener, socket, gate.clone())).detach()
        })
        .collect();
    for done in accepting {
        let _ = done.await;
    }
    drain(&shard).await;
    lifecycle.stopped.notify();
    let _ = jobs_done.await;
    // Calls from other shards that are running here must finish: a task
    // left on a stopped executor would never answer its caller.
    wait_until_idle(&lifecycle, || lifecycle.active_jobs.get() == 0).await;
    Ok(())
}

/// Accepts the connections of one listener until shutdown.
async fn accept(
    shard: Rc<Shard>,
    listener: Arc<Listener>,
    socket: glommio::net::TcpListener,
    gate: Arc<ConnectionGate>,
) {
    let lifecycle = shard.lifecycle().clone();
    let stop = lifecycle.shutdown.generation();
    loop {
        let accepted = futures_lite::future::or(async { Some(socket.accept().await) }, async {
            lifecycle.shutdown.changed(stop).await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => match gate.admit(stream.peer_addr().ok()) {
                Ok(admitted) => {
                    let (shard, listener) = (shard.clone(), listener.clone());
                    glommio::spawn_local(async move {
                        connect(shard, listener, stream).await;
                        drop(admitted);
                    })
                    .detach();
                }
                Err((why, refused)) => {
                    // Closed at once, as Kafka does; logged sparingly, since
                    // a flood of them is what the limit is for.
                    if refused.is_power_of_two() {
                        tracing::warn!(why, refused, "connection refused");
                    }
                    drop(stream);
                }
            },
            Some(Err(e)) => {
                tracing::warn!(shard = %shard.id(), error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How long a client has for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets up one accepted connection (its TLS session on SSL listeners, its
/// principal) and serves it.
async fn connect(shard: Rc<Shard>, listener: Arc<Listener>, stream: glommio::net::TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let idle = Duration::from_millis(shard.config().connections_max_idle_ms.max(1));
    let _ = stream.set_read_timeout(Some(idle));
    let sasl = listener.protocol.sasl();
    if !listener.protocol.tls() {
        let principal = (!sasl).then(|| ANONYMOUS.to_string());
        let session = Rc::new(Session::new(peer, listener, principal));
        return crate::connection::serve(shard, stream, session).await;
    }
    let Some(acceptor) = shard.tls() else {
        return;
    };
    let handshake =
        futures_lite::future::or(async { Some(acceptor.accept(stream).await) }, async {
            glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
            None
        })
        .await;
    let peer_text = peer.map(|a| a.to_string()).unwrap_or_default();
    let tls = match handshake {
        Some(Ok(tls)) => tls,
        Some(Err(e)) => {
            shard.metrics().failed_authentication();
            tracing::warn!(peer = peer_text, listener = listener.name, error = %e, "TLS handshake failed");
            return;
        }
        None => {
            shard.metrics().failed_authentication();
            tracing::warn!(
                peer = peer_text,
                listener = listener.name,
                "TLS handshake timed out"
            );
            return;
        }
    };
    let principal = if sasl {
        None
    } else {
        let certificate = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
        Some(
            certificate
                .and_then(|c| crate::security::tls::principal_of(c))
                .unwrap_or_else(|| ANONYMOUS.to_string()),
        )
    };
    let session = Rc::new(Session::new(peer, listener, principal));
    crate::connection::serve(shard, tls, session).await;
}

/// SIGHUP: reads the TLS certificate, key and client CA again and hands
/// them to every shard for new connections. A set that does not load is
/// logged and the old one kept.
fn reload_tls(args: &ServeArgs, shards: &[flume::Sender<Job>]) {
    match crate::security::tls::acceptor(args) {
        Ok(tls) => {
            for tx in shards {
                let tls = tls.clone();
                let _ = tx.send(Box::new(move |shard: Rc<Shard>| {
                    Box::pin(async move { shard.apply_tls(tls) })
                }));
            }
            tracing::info!("SIGHUP: TLS certificate and key reloaded");
        }
        Err(e) => tracing::error!(
            error = e,
            "SIGHUP: TLS reload failed; the old certificate stays"
        ),
    }
}

/// A failed WAL write or sync poisons the log for good: the shard could
/// only answer KAFKA_STORAGE_ERROR from then on, so the process stops.
async fn stop_on_wal_failure(shard: Rc<Shard>) {
    let why = shard.log().wal_failure().await;
    crash::fatal(&format!("shard {}: the WAL failed: {why}", shard.id()));
}

/// Runs a test's fail point if it names this shard.
async fn inject(shard: Rc<Shard>, fail_point: FailPoint) {
    if let FailPoint::TxnDecidedExit { shard, stage } = fail_point {
        return crash::exit_when_txn_decided(shard, stage);
    }
    let (FailPoint::ShardPanic {
        shard: at,
        after_ms,
    }
    | FailPoint::WalFail {
        shard: at,
        after_ms,
    }
    | FailPoint::DirSyncFail {
        shard: at,
        after_ms,
    }
    | FailPoint::RecoveryDelay {
        shard: at,
        after_ms,
    }) = fail_point
    else {
        return;
    };
    if matches!(fail_point, FailPoint::RecoveryDelay { .. }) {
        return; // done before recovery (`run_shard`)
    }
    if at != shard.id().index() {
        return;
    }
    glommio::timer::sleep(Duration::from_millis(after_ms)).await;
    match fail_point {
        FailPoint::ShardPanic { .. } => panic!("fail point: shard {at} panics"),
        FailPoint::WalFail { .. } => shard
            .log()
            .inject_wal_failure("fail point: fdatasync failed"),
        FailPoint::DirSyncFail { .. } => crash::fail_dir_syncs(),
        FailPoint::RecoveryDelay { .. } | FailPoint::TxnDecidedExit { .. } => {}
    }
}

/// Applies retention every `--log-retention-check-interval-ms` and
/// reclaims WAL space every `--log-cleaner-interval-ms`. A failed WAL stops
/// the process elsewhere; anything else is logged and tried again later.
async fn maintain_log(shard: Rc<Shard>) {
    let config = shard.config();
    let every = Duration::from_millis(config.log_cleaner_interval_ms.max(10));
    let retention_every = Duration::from_millis(config.log_retention_check_interval_ms.max(10));
    let defaults = Retention::defaults(config);
    let checkpoint_every = config.checkpoint_interval_mib.max(1) << 20;
    let lifecycle = shard.lifecycle();
    let stop = lifecycle.shutdown.generation();
    let mut retention_due = std::time::Instant::now() + retention_every;
    loop {
        if lifecycle.sleep_or_shutdown(every, stop).await {
            return;
        }
        if std::time::Instant::now() >= retention_due {
            retention_due = std::time::Instant::now() + retention_every;
            let metadata = shard.metadata();
            if let Err(e) = shard
                .log()
                .enforce_retention(&metadata, defaults, crate::util::now_ms())
                .await
            {
                tracing::error!(shard = shard.id().index(), error = %e, "retention failed");
            }
        }
        let groups: &dyn WalUser = shard.groups().as_ref();
        let txns: &dyn WalUser = shard.transactions().as_ref();
        if let Err(e) = shard
            .log()
            .reclaim(&[groups, txns], MAX_COPIED_PER_PASS)
            .await
        {
            tracing::error!(shard = shard.id().index(), error = %e, "reclaiming WAL space failed");
        }
        if shard.log().since_checkpoint() >= checkpoint_every {
            checkpoint(&shard).await;
        }
    }
}

/// Writes a checkpoint of the shard's log, groups and transactions; a failure is logged
/// (the WAL still holds everything: the next restart replays more).
async fn checkpoint(shard: &Rc<Shard>) {
    let groups: &dyn WalUser = shard.groups().as_ref();
    let txns: &dyn WalUser = shard.transactions().as_ref();
    let dir = crate::checkpoint::dir(&shard.config().data_dir, shard.id());
    if let Err(e) = shard.log().checkpoint(&[groups, txns], &dir).await {
        tracing::error!(shard = shard.id().index(), error = %e, "checkpoint failed");
    }
}

/// Forgets idempotent producers idle longer than the expiration time.
async fn expire_producers(shard: Rc<Shard>) {
    let max_idle = Duration::from_millis(shard.config().producer_id_expiration_ms);
    let every = (max_idle / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let lifecycle = shard.lifecycle();
    let stop = lifecycle.shutdown.generation();
    loop {
        if lifecycle.sleep_or_shutdown(every, stop).await {
            return;
        }
        let expired = shard
            .log()
            .expire_producers(std::time::Instant::now(), max_idle);
        if expired > 0 {
            tracing::debug!(
                shard = shard.id().index(),
                expired,
                "idle producer state expired"
            );
        }
    }
}

/// Waits (up to 10 s) for requests in flight, then syncs the WAL and
/// writes a checkpoint.
async fn drain(shard: &Rc<Shard>) {
    let lifecycle = shard.lifecycle();
    wait_until_idle(lifecycle, || lifecycle.active_requests.get() == 0).await;
    if let Err(e) = shard.log().sync().await {
        tracing::error!(shard = shard.id().index(), error = %e, "final WAL sync failed");
    } else if shard.log().since_checkpoint() > 0 {
        // So that the next start replays nothing.
        checkpoint(shard).await;
    }
    tracing::info!(shard = shard.id().index(), "shard stopped");
}

/// Waits until `idle()` holds, re-checking whenever a request or job of
/// the shard finishes, for 10 s at most.
async fn wait_until_idle(lifecycle: &Lifecycle, idle: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !idle() && std::time::Instant::now() < deadline {
        let g = lifecycle.request_done.generation();
        futures_lite::future::or(
            lifecycle.request_done.changed(g),
            glommio::timer::sleep(Duration::from_millis(50)),
        )
        .await;
    }
}

/// The shards bind with SO_REUSEPORT, which would let a second broker (or
/// any process setting it) share the address silently, each getting some of
/// the connections. So: if something accepts connections there, refuse. (A
/// plain test bind cannot tell: the TIME_WAIT connections a killed broker
/// leaves behind conflict with it but not with SO_REUSEPORT.)
///
/// A broker killed a moment ago still has listening sockets for some
/// milliseconds while io_uring tears its ring down (10-30 ms measured), and
/// a supervisor may restart it within that window. So an address that
/// accepts is probed again until [`ADDRESS_RELEASE_WAIT`]: a dead
/// process's sockets go away, a live process's stay.
fn refuse_address_in_use(address: std::net::SocketAddr) -> Result<(), String> {
    let mut probe = address;
    if probe.ip().is_unspecified() {
        probe.set_ip(match probe {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = std::time::Instant::now() + ADDRESS_RELEASE_WAIT;
    while std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(500)).is_ok() {
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "cannot listen on {address}: another process is already listening there"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// How long an address may keep accepting before start-up gives up on it.
const ADDRESS_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// The shard count and cluster id of the data directory, recording them
/// when it is new. A different `--shards` than recorded is refused.
fn cluster_identity(args: &ServeArgs) -> Result<(usize, String), String> {
    let path = args.data_dir.join(CLUSTER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                    .map(str::trim)
                    .ok_or_else(|| format!("{} has no {name}", path.display()))
            };
            let shards: usize = field("shards")?
                .parse()
                .map_err(|_| format!("{}: bad shard count", path.display()))?;
            let cluster_id = field("cluster_id")?.to_string();
            if let Some(asked) = args.shards {
                if asked != shards {
                    return Err(format!(
                        "data directory {} was created with {shards} shards; restart with --shards {shards} \
                         (got --shards {asked}). Partitions cannot move between shards.",
                        args.data_dir.display()
                    ));
                }
            }
            Ok((shards, cluster_id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let shards = args
                .shards
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if shards == 0 || shards > 1024 {
                return Err(format!("--shards must be between 1 and 1024, got {shards}"));
            }
            let id = metadata::new_topic_id();
            let cluster_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let text = format!("shards={shards}\ncluster_id=sluice-{}\n", &cluster_id[..16]);
            layout::write_durably(&path, text.as_bytes())?;
            Ok((shards, format!("sluice-{}", &cluster_id[..16])))
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// glommio registers DMA memory with io_uring, which needs locked memory.
/// Root is exempt; anyone else needs `ulimit -l` of at least 512 KiB.
fn check_memlock() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Ok(());
    }
    const NEEDED: libc::rlim_t = 512 * 1024;
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < NEEDED {
        return Err(format!(
            "the locked-memory limit is {} KiB, and io_uring needs at least 512 KiB. {}",
            limit.rlim_cur / 1024,
            MEMLOCK_FIX
        ));
    }
    Ok(())
}

const MEMLOCK_FIX: &str =
    "Raise it with `ulimit -l unlimited` (or at least 512) in the shell that starts sluice, \
     LimitMEMLOCK=infinity in its systemd unit, or `--ulimit memlock=-1` for a container.";

fn memlock_hint(error: &str) -> String {
    if error.contains("MemLock") || error.contains("locked memory") {
        format!(" ({MEMLOCK_FIX})")
    } else {
        String::new()
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and the shard threads
/// started after it), so they are taken only by [`wait_signal`].
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a zeroed, then initialised, local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits up to `timeout` for SIGTERM, SIGINT or SIGHUP; returns its name.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<&'static str> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` holds blocked signals; a null siginfo is allowed.
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    match signal {
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGINT => Some("SIGINT"),
        libc::SIGHUP => Some("SIGHUP"),
        _ => None,
    }
}
