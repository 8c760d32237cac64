//! A shard: one glommio executor's state. It holds the owners of the
//! shard's work — the partition log ([`Log`]), the group coordinator
//! ([`GroupService`]), the transaction coordinator ([`TxnService`]), on shard 0 the controller's state — plus the current
//! metadata snapshot and its lifecycle. Nothing here is shared with other
//! threads: other shards reach it only by sending a [`Job`] over its flume
//! channel ([`Shard::call`]), and only owned data (`Bytes`, `Arc`
//! snapshots) crosses.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::ServeArgs;
use crate::controller::state::ControllerState;
use crate::groups::GroupService;
use crate::lifecycle::Lifecycle;
use crate::log::Log;
use crate::memory::MemoryBudget;
use crate::metadata::Metadata;
use crate::metrics::ShardMetrics;
use crate::security::store::Store;
use crate::shard_id::ShardId;
use crate::transactions::TxnService;
use futures_rustls::TlsAcceptor;

/// Work sent to a shard: runs on its executor with its state.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The owners of a shard's WAL frames, as recovery rebuilt them.
pub struct ShardOwners {
    /// The partition log.
    pub log: Rc<Log>,
    /// The group coordinator.
    pub groups: Rc<GroupService>,
    /// The transaction coordinator.
    pub transactions: Rc<TxnService>,
}

/// One shard's state.
pub struct Shard {
    id: ShardId,
    config: Arc<ServeArgs>,
    cluster_id: Arc<str>,
    metadata: RefCell<Arc<Metadata>>,
    security: RefCell<Arc<Store>>,
    authorization: crate::authorizer::Settings,
    fetch_sessions: RefCell<crate::fetch_sessions::FetchSessions>,
    tls: RefCell<Option<TlsAcceptor>>,
    log: Rc<Log>,
    groups: Rc<GroupService>,
    transactions: Rc<TxnService>,
    controller: ControllerState,
    lifecycle: Rc<Lifecycle>,
    memory: Rc<MemoryBudget>,
    metrics: Rc<ShardMetrics>,
    peers: Vec<flume::Sender<Job>>,
}

impl Shard {
    /// The shard around its owners (what its WAL's replay rebuilt);
    /// `peers` reach every shard, this one included.
    pub fn new(
        id: ShardId,
        config: Arc<ServeArgs>,
        cluster_id: Arc<str>,
        owners: ShardOwners,
        lifecycle: Rc<Lifecycle>,
        peers: Vec<flume::Sender<Job>>,
    ) -> Shard {
        let ShardOwners {
            log,
            groups,
            transactions,
        } = owners;
        let memory =
            MemoryBudget::new(config.memory_budget_bytes(peers.len()) / peers.len().max(1));
        let shard_config = config.clone();
        Shard {
            id,
            memory,
            config,
            cluster_id,
            metadata: RefCell::new(Arc::new(Metadata::default())),
            security: RefCell::default(),
            // Checked at start-up (server.rs); were it not, closed.
            authorization: crate::authorizer::Settings::of(&shard_config).unwrap_or_else(|_| {
                crate::authorizer::Settings {
                    enabled: true,
                    ..Default::default()
                }
            }),
            fetch_sessions: RefCell::new(crate::fetch_sessions::FetchSessions::new(
                shard_config
                    .max_incremental_fetch_session_cache_slots
                    .div_ceil(peers.len().max(1)),
                // Ids of different shards start far apart.
                (id.index() as i64 * (i32::MAX as i64 / peers.len().max(1) as i64) + 1) as i32,
            )),
            tls: RefCell::default(),
            log,
            groups,
            transactions,
            controller: ControllerState::default(),
            lifecycle,
            metrics: Rc::default(),
            peers,
        }
    }

    /// The request counters of this shard.
    pub fn metrics(&self) -> &Rc<ShardMetrics> {
        &self.metrics
    }

    /// This shard.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// This shard's share of the broker's memory budget.
    pub fn memory(&self) -> &Rc<MemoryBudget> {
        &self.memory
    }

    /// Number of shards.
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// Broker configuration.
    pub fn config(&self) -> &ServeArgs {
        &self.config
    }

    /// Cluster id reported to clients.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The current snapshot of the security store (SCRAM credentials and
    /// ACLs).
    pub fn security(&self) -> Arc<Store> {
        self.security.borrow().clone()
    }

    /// This shard's incremental fetch sessions.
    pub fn fetch_sessions(&self) -> &RefCell<crate::fetch_sessions::FetchSessions> {
        &self.fetch_sessions
    }

    /// The authorizer's settings.
    pub fn authorization(&self) -> &crate::authorizer::Settings {
        &self.authorization
    }

    /// Installs a new snapshot of the security store.
    pub fn apply_security(&self, store: Arc<Store>) {
        *self.security.borrow_mut() = store;
    }

    /// The TLS acceptor of SSL and SASL_SSL listeners, if configured.
    pub fn tls(&self) -> Option<TlsAcceptor> {
        self.tls.borrow().clone()
    }

    /// Installs a (re)loaded TLS configuration for new connections.
    pub fn apply_tls(&self, tls: Option<TlsAcceptor>) {
        *self.tls.borrow_mut() = tls;
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.borrow().clone()
    }

    /// The partition log of this shard's partitions.
    pub fn log(&self) -> &Rc<Log> {
        &self.log
    }

    /// The consumer groups this shard coordinates.
    pub fn groups(&self) -> &Rc<GroupService> {
        &self.groups
    }

    /// The transactions this shard coordinates.
    pub fn transactions(&self) -> &Rc<TxnService> {
        &self.transactions
    }

    /// The controller's state (meaningful on [`ShardId::CONTROLLER`] only).
    pub fn controller(&self) -> &ControllerState {
        &self.controller
    }

    /// Shutdown and draining.
    pub fn lifecycle(&self) -> &Rc<Lifecycle> {
        &self.lifecycle
    }

    /// Runs `f` on shard `target` and returns its result; `None` if that
    /// shard has stopped. Runs in place when `target` is this shard.
    pub async fn call<R, F, Fut>(self: &Rc<Self>, target: ShardId, f: F) -> Option<R>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return Some(f(self.clone()).await);
        }
        let started = std::time::Instant::now();
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let _ = tx.send(f(shard).await);
            })
        });
        self.peers.get(target.index())?.send_async(job).await.ok()?;
        let answer = rx.recv_async().await.ok();
        self.metrics.called(target.index(), started);
        answer
    }

    /// Installs a new metadata snapshot: the log takes up partitions this
    /// shard now owns and drops deleted ones; groups drop their offsets.
    pub fn apply_metadata(&self, metadata: Arc<Metadata>) {
        self.log.apply_metadata(&metadata);
        self.groups.retain_topics(&metadata);
        *self.metadata.borrow_mut() = metadata;
    }
}
