//! A shard: one glommio executor's state. It owns a WAL, the partitions
//! assigned to it and its fetch buffer; nothing here is shared with other
//! threads. Other shards reach it only by sending a [`Job`] over its flume
//! channel, and only owned data (`Bytes`, `Arc` snapshots) crosses.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use sluice_protocol::record_batch::RecordBatch;
use wal_core::{RecoveredFrame, Wal};

use crate::config::ServeArgs;
use crate::metadata::Metadata;
use crate::notify::Notify;
use crate::partition::{BatchEntry, FetchBuffer, Partition, PartitionKey};
use crate::producers::{ProducerBatch, ProducerIdBlock, ProducerStates};

/// Work sent to a shard: runs on its executor with its state.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// WAL frame type of a record batch. Payload: topic id (16 bytes),
/// partition (i32, big-endian), then the batch exactly as served to consumers.
pub const FRAME_RECORD_BATCH: u8 = 2;
/// WAL frame type of a consumer-group record (`groups::records`).
pub const FRAME_GROUP: u8 = 3;
/// Bytes before the batch in a record-batch frame.
pub const BATCH_FRAME_HEADER: usize = 20;

/// The header of a record-batch frame.
pub fn batch_frame_header(key: &PartitionKey) -> [u8; BATCH_FRAME_HEADER] {
    let mut h = [0u8; BATCH_FRAME_HEADER];
    h[..16].copy_from_slice(&key.0);
    h[16..].copy_from_slice(&key.1.to_be_bytes());
    h
}

/// Splits a record-batch frame payload into its partition and batch bytes.
pub fn parse_batch_frame(payload: &[u8]) -> Option<(PartitionKey, &[u8])> {
    if payload.len() < BATCH_FRAME_HEADER {
        return None;
    }
    let id: [u8; 16] = payload[..16].try_into().ok()?;
    let partition = i32::from_be_bytes(payload[16..20].try_into().ok()?);
    Some(((id, partition), &payload[BATCH_FRAME_HEADER..]))
}

/// One shard's state.
pub struct Shard {
    /// Shard index (0 is the controller).
    pub id: usize,
    /// Number of shards.
    pub count: usize,
    /// Broker configuration.
    pub config: Arc<ServeArgs>,
    /// Cluster id reported to clients.
    pub cluster_id: Arc<str>,
    /// This shard's write-ahead log.
    pub wal: Wal,
    /// Current metadata snapshot.
    pub metadata: RefCell<Arc<Metadata>>,
    /// Partitions this shard owns.
    pub partitions: RefCell<HashMap<PartitionKey, Partition>>,
    /// Recent batches of those partitions.
    pub fetch_buffer: RefCell<FetchBuffer>,
    /// Woken whenever a high watermark moves (long-polling fetches wait here).
    pub data_arrived: Notify,
    /// Serialises metadata changes (used on the controller only).
    pub controller_lock: glommio::sync::Semaphore,
    /// Requests being handled, for draining on shutdown.
    pub active_requests: Cell<usize>,
    /// Calls from other shards being run here, for draining on shutdown.
    pub active_jobs: Cell<usize>,
    /// Woken when a request finishes.
    pub request_done: Notify,
    /// Notified once when the broker shuts down.
    pub shutdown: Notify,
    /// Notified once this shard has drained and stops taking calls.
    pub stopped: Notify,
    /// Idempotent-producer state of this shard's partitions.
    pub producers: RefCell<ProducerStates>,
    /// Producer ids to hand out (used on the controller only).
    pub producer_ids: RefCell<ProducerIdBlock>,
    /// Consumer groups this shard coordinates.
    pub groups: RefCell<crate::groups::Coordinator>,
    peers: Vec<flume::Sender<Job>>,
}

impl Shard {
    /// Creates the shard state around its opened WAL.
    pub fn new(
        id: usize,
        config: Arc<ServeArgs>,
        cluster_id: Arc<str>,
        wal: Wal,
        metadata: Arc<Metadata>,
        peers: Vec<flume::Sender<Job>>,
    ) -> Shard {
        let budget = config.fetch_buffer_mib << 20;
        Shard {
            id,
            count: peers.len(),
            config,
            cluster_id,
            wal,
            metadata: RefCell::new(metadata),
            partitions: RefCell::new(HashMap::new()),
            fetch_buffer: RefCell::new(FetchBuffer::new(budget)),
            data_arrived: Notify::default(),
            controller_lock: glommio::sync::Semaphore::new(1),
            active_requests: Cell::new(0),
            active_jobs: Cell::new(0),
            request_done: Notify::default(),
            shutdown: Notify::default(),
            stopped: Notify::default(),
            producers: RefCell::new(ProducerStates::default()),
            producer_ids: RefCell::new(ProducerIdBlock::default()),
            groups: RefCell::default(),
            peers,
        }
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.borrow().clone()
    }

    /// Runs `f` on shard `target` and returns its result; `None` if that
    /// shard has stopped. Runs in place when `target` is this shard.
    pub async fn call<R, F, Fut>(self: &Rc<Self>, target: usize, f: F) -> Option<R>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return Some(f(self.clone()).await);
        }
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let _ = tx.send(f(shard).await);
            })
        });
        self.peers.get(target)?.send(job).ok()?;
        rx.recv_async().await.ok()
    }

    /// Sleeps for `every`; returns `true` instead when the broker starts
    /// shutting down (after generation `since` of [`Shard::shutdown`]).
    /// The heartbeat of the shard's periodic tasks.
    pub async fn sleep_or_shutdown(&self, every: std::time::Duration, since: u64) -> bool {
        futures_lite::future::or(
            async {
                glommio::timer::sleep(every).await;
                false
            },
            async {
                self.shutdown.changed(since).await;
                true
            },
        )
        .await
    }

    /// The stored bytes of a batch: from the fetch buffer, or read from the
    /// WAL (checksum verified) and checked against the index.
    pub async fn batch_bytes(
        &self,
        key: &PartitionKey,
        entry: &BatchEntry,
    ) -> Result<Bytes, String> {
        match self.buffered_batch(key, entry) {
            Some(bytes) => Ok(bytes),
            None => self.read_batch(key, entry).await,
        }
    }

    /// The batch's bytes if the fetch buffer still holds them.
    pub fn buffered_batch(&self, key: &PartitionKey, entry: &BatchEntry) -> Option<Bytes> {
        self.fetch_buffer.borrow().get(key, entry.base_offset)
    }

    /// Reads the batch from the WAL (checksum verified) and checks it
    /// against the index.
    pub async fn read_batch(
        &self,
        key: &PartitionKey,
        entry: &BatchEntry,
    ) -> Result<Bytes, String> {
        let position = entry.position;
        let frame = self.wal.read(position).await.map_err(|e| e.to_string())?;
        let (stored_key, batch) = parse_batch_frame(frame.payload())
            .ok_or_else(|| format!("WAL position {position} is not a batch"))?;
        let stored_base = batch
            .get(..8)
            .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
        if &stored_key != key || stored_base != Some(entry.base_offset) {
            return Err(format!(
                "WAL position {position} holds another batch than the index says (offset {})",
                entry.base_offset
            ));
        }
        Ok(Bytes::copy_from_slice(batch))
    }

    /// Installs a new metadata snapshot: creates state for partitions this
    /// shard now owns and drops the state of deleted topics.
    pub fn apply_metadata(&self, metadata: Arc<Metadata>) {
        let mut partitions = self.partitions.borrow_mut();
        for topic in metadata.topics.values() {
            for (index, owner) in topic.partitions.iter().enumerate() {
                if *owner == self.id {
                    partitions.entry((topic.id, index as i32)).or_default();
                }
            }
        }
        let live = |key: &PartitionKey| {
            metadata
                .by_id(&key.0)
                .is_some_and(|t| t.partitions.get(key.1 as usize) == Some(&self.id))
        };
        let dead: Vec<PartitionKey> = partitions.keys().filter(|k| !live(k)).copied().collect();
        for key in &dead {
            partitions.remove(key);
            self.fetch_buffer.borrow_mut().forget(key);
        }
        if !dead.is_empty() {
            self.producers
                .borrow_mut()
                .retain_partitions(|k| !dead.contains(k));
        }
        drop(partitions);
        self.groups.borrow_mut().retain_topics(&metadata);
        *self.metadata.borrow_mut() = metadata;
    }
}

/// Rebuilds partition state from WAL frames during recovery.
#[derive(Default)]
pub struct Replay {
    /// Partition state rebuilt so far.
    pub partitions: HashMap<PartitionKey, Partition>,
    /// Idempotent-producer state rebuilt from the stored batch headers.
    pub producers: ProducerStates,
    /// Frames of topics that no longer exist (deleted), skipped.
    pub skipped_deleted: u64,
    /// Frames that did not parse or did not fit the log (logged, skipped).
    pub skipped_invalid: u64,
    /// Consumer groups and committed offsets rebuilt from group frames.
    pub groups: crate::groups::Coordinator,
}

impl Replay {
    /// Applies one recovered frame.
    pub fn frame(&mut self, shard: usize, metadata: &Metadata, frame: RecoveredFrame<'_>) {
        if frame.frame_type == FRAME_GROUP {
            self.groups.replay(frame.position, frame.payload, metadata);
            return;
        }
        if frame.frame_type != FRAME_RECORD_BATCH {
            self.skipped_invalid += 1;
            tracing::warn!(
                position = frame.position,
                frame_type = frame.frame_type,
                "unknown WAL frame type skipped"
            );
            return;
        }
        let Some((key, batch)) = parse_batch_frame(frame.payload) else {
            self.skipped_invalid += 1;
            tracing::warn!(
                position = frame.position,
                "short record-batch frame skipped"
            );
            return;
        };
        let owned = metadata
            .by_id(&key.0)
            .is_some_and(|t| t.partitions.get(key.1 as usize) == Some(&shard));
        if !owned {
            self.skipped_deleted += 1;
            return;
        }
        let batch = match RecordBatch::parse(batch) {
            Ok(b) => b,
            Err(e) => {
                self.skipped_invalid += 1;
                tracing::error!(position = frame.position, error = %e, "stored batch does not parse; skipped");
                return;
            }
        };
        let partition = self.partitions.entry(key).or_default();
        if batch.base_offset() < partition.log_end {
            self.skipped_invalid += 1;
            tracing::error!(
                position = frame.position,
                base_offset = batch.base_offset(),
                log_end = partition.log_end,
                "stored batch overlaps the log; skipped"
            );
            return;
        }
        if partition.index.is_empty() {
            partition.log_start = batch.base_offset();
        }
        partition.push(BatchEntry {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            position: frame.position,
            size: batch.size() as u32,
            max_timestamp: batch.max_timestamp(),
        });
        if let Some(pb) = ProducerBatch::of(&batch) {
            self.producers
                .record(key, &pb, batch.base_offset(), std::time::Instant::now());
        }
    }

    /// Logs what was recovered in total, and per partition at debug level
    /// (a line each would flood the log of a broker with many partitions).
    pub fn log(&self, shard: usize, metadata: &Metadata) {
        let names: BTreeMap<[u8; 16], &str> = metadata
            .topics
            .values()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        let mut records = 0;
        for (key, p) in &self.partitions {
            records += p.records;
            tracing::debug!(
                shard,
                topic = names.get(&key.0).copied().unwrap_or("?"),
                partition = key.1,
                records = p.records,
                batches = p.index.len(),
                first_offset = p.log_start,
                last_offset = p.log_end - 1,
                "recovered"
            );
        }
        tracing::info!(
            shard,
            partitions = self.partitions.len(),
            records,
            skipped_deleted = self.skipped_deleted,
            skipped_invalid = self.skipped_invalid,
            "recovery replayed"
        );
    }
}
