//! The transaction coordinator of one shard: Kafka's transaction protocol
//! (KIP-98, KIP-447) on the transactional ids that hash here.
//!
//! Every state change is a durable record in this shard's WAL before it
//! is answered. Ending a transaction is two-phase, as in Kafka: the
//! decision (PrepareCommit / PrepareAbort) is made durable first; then a
//! marker is appended, and made durable, on every partition of the
//! transaction (through the owning shards' logs), and the transaction's
//! offsets are committed or dropped on each group's coordinator; only
//! then is the transaction complete (CompleteCommit / CompleteAbort). A
//! crash anywhere in between leaves the decision in the WAL, and the
//! coordinator carries it out again after the restart (a marker written
//! twice is harmless: the second finds no open transaction).
//!
//! One operation at a time per transactional id: another one meanwhile
//! gets CONCURRENT_TRANSACTIONS, which clients retry.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use sluice_protocol::record_batch::ControlType;

use super::state::{Txn, TxnCoordinator, TxnState, TXN_RECORD};
use crate::error::BrokerError;
use crate::lifecycle::Lifecycle;
use crate::log::{Log, PartitionKey};
use crate::shard::Shard;
use crate::shard_id::ShardId;

/// How often open transactions are checked against their timeout, and
/// decisions left unfinished are carried out again.
const TICK: Duration = Duration::from_secs(1);
/// The pause before a marker or group write that failed is tried again.
const RETRY: Duration = Duration::from_millis(100);
/// The coordinator epoch markers carry: one node, one coordinator.
const COORDINATOR_EPOCH: i32 = 0;

/// The transaction coordinator of one shard.
pub struct TxnService {
    coordinator: RefCell<TxnCoordinator>,
    log: Rc<Log>,
    busy: Rc<RefCell<HashSet<String>>>,
    limits: TxnLimits,
}

/// What one shard's coordinator accepts.
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// Transactional ids it keeps state for: each costs memory for as
    /// long as the broker runs, so new ones past it are refused.
    pub max_ids: usize,
}

impl TxnLimits {
    /// One shard's limits: `--transaction-max-timeout-ms`, and its share
    /// of `--max-transactional-ids`.
    pub fn of(args: &crate::config::ServeArgs, shards: usize) -> TxnLimits {
        TxnLimits {
            max_timeout_ms: args.transaction_max_timeout_ms,
            max_ids: (args.max_transactional_ids / shards.max(1)).max(1),
        }
    }
}

impl crate::log::cleaner::WalUser for TxnService {
    fn frames(&self) -> std::cell::RefMut<'_, dyn crate::frames::FrameOwner> {
        std::cell::RefMut::map(self.coordinator.borrow_mut(), |c| {
            c as &mut dyn crate::frames::FrameOwner
        })
    }
}

/// Marks a transactional id busy while an operation on it runs.
struct Busy {
    set: Rc<RefCell<HashSet<String>>>,
    id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set.borrow_mut().remove(&self.id);
    }
}

/// A producer id from the controller's durable counter.
pub async fn allocate_producer_id(shard: &Rc<Shard>) -> Result<i64, BrokerError> {
    let allocated = shard
        .call(ShardId::CONTROLLER, |s| async move {
            let data_dir = s.config().data_dir.clone();
            s.controller().producer_ids.borrow_mut().allocate(&data_dir)
        })
        .await;
    match allocated {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            Err(BrokerError::Storage(e.to_string()))
        }
        None => Err(BrokerError::ShuttingDown),
    }
}

fn now_ms() -> i64 {
    crate::util::now_ms()
}

impl TxnService {
    /// The coordinator rebuilt by recovery, writing through `log`.
    pub fn new(coordinator: TxnCoordinator, log: Rc<Log>, limits: TxnLimits) -> TxnService {
        TxnService {
            coordinator: RefCell::new(coordinator),
            log,
            busy: Rc::default(),
            limits,
        }
    }

    /// Logs what recovery rebuilt and starts the timer that aborts
    /// transactions past their timeout and finishes decisions a crash
    /// interrupted.
    pub fn start(shard: &Rc<Shard>, lifecycle: Rc<Lifecycle>) {
        {
            let svc = shard.transactions();
            let c = svc.coordinator.borrow();
            let open = c
                .txns
                .values()
                .filter(|(t, _)| t.state == TxnState::Ongoing)
                .count();
            let deciding = c.txns.values().filter(|(t, _)| t.state.preparing()).count();
            tracing::info!(
                shard = shard.id().index(),
                transactional_ids = c.txns.len(),
                open,
                deciding,
                skipped_invalid = c.invalid,
                "transactions recovered"
            );
        }
        glommio::spawn_local(run_timer(shard.clone(), lifecycle)).detach();
    }

    /// The state of `id`.
    pub fn get(&self, id: &str) -> Option<Txn> {
        self.coordinator.borrow().get(id).cloned()
    }

    /// Every transaction here.
    pub fn all(&self) -> Vec<Txn> {
        let c = self.coordinator.borrow();
        let mut all: Vec<Txn> = c.txns.values().map(|(t, _)| t.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn lock(&self, id: &str) -> Result<Busy, BrokerError> {
        if !self.busy.borrow_mut().insert(id.to_string()) {
            return Err(BrokerError::ConcurrentTransactions);
        }
        Ok(Busy {
            set: self.busy.clone(),
            id: id.to_string(),
        })
    }

    /// Writes the entry's new value and waits until it is durable.
    async fn write(&self, txn: Txn) -> Result<(), BrokerError> {
        let (position, durable) = self.log.submit_frame(TXN_RECORD, &[&txn.encode()])?;
        self.coordinator.borrow_mut().apply(txn, position);
        Ok(durable.await?)
    }

    /// The entry of `id`, checked against the producer id and epoch the
    /// client sent.
    fn current(&self, id: &str, producer_id: i64, epoch: i16) -> Result<Txn, BrokerError> {
        let txn = self.get(id).ok_or(BrokerError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(BrokerError::InvalidProducerIdMapping);
        }
        if txn.epoch != epoch {
            return Err(BrokerError::ProducerFenced);
        }
        Ok(txn)
    }

    /// InitProducerId with a transactional id: a producer id and a new
    /// epoch, fencing every older producer of the id; what the previous
    /// one left open is aborted first. `expected` is the producer id and
    /// epoch a client recovering from an error sends (KIP-360).
    pub async fn init_producer_id(
        &self,
        shard: &Rc<Shard>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), BrokerError> {
        if timeout_ms <= 0 || timeout_ms > self.limits.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout);
        }
        let _busy = self.lock(id)?;
        let Some(mut txn) = self.get(id) else {
            if expected.is_some() {
                return Err(BrokerError::InvalidProducerIdMapping);
            }
            if self.coordinator.borrow().txns.len() >= self.limits.max_ids {
                tracing::warn!(
                    transactional_id = id,
                    max = self.limits.max_ids,
                    "transactional id refused: this shard keeps the most it may (--max-transactional-ids)"
                );
                return Err(BrokerError::CoordinatorNotAvailable(
                    "too many transactional ids".into(),
                ));
            }
            let producer_id = allocate_producer_id(shard).await?;
            self.write(Txn::empty(id, producer_id, 0, timeout_ms, now_ms()))
                .await?;
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected {
            // The current epoch, or the one before a bump by this
            // coordinator (a timed-out transaction, aborted since); not
            // the one before a newer producer's, which fenced it.
            let bumped = txn.state == TxnState::CompleteAbort && epoch == txn.epoch - 1;
            let known = pid == txn.producer_id && (epoch == txn.epoch || bumped);
            if !known {
                return Err(BrokerError::ProducerFenced);
            }
        }
        if txn.state.preparing() {
            return Err(BrokerError::ConcurrentTransactions);
        }
        if txn.state == TxnState::Ongoing {
            tracing::info!(
                transactional_id = id,
                producer_id = txn.producer_id,
                epoch = txn.epoch,
                "a new producer aborts the transaction its predecessor left open"
            );
            txn = self.abort_fencing(shard, txn).await?;
        }
        let (producer_id, epoch) = if txn.epoch >= i16::MAX - 1 {
            (allocate_producer_id(shard).await?, 0)
        } else {
            (txn.producer_id, txn.epoch + 1)
        };
        self.write(Txn::empty(id, producer_id, epoch, timeout_ms, now_ms()))
            .await?;
        Ok((producer_id, epoch))
    }

    /// Aborts `txn` (Ongoing) with its epoch bumped, so its producer is
    /// fenced on every partition the markers reach; returns the entry
    /// once complete.
    async fn abort_fencing(&self, shard: &Rc<Shard>, txn: Txn) -> Result<Txn, BrokerError> {
        let epoch = if txn.epoch < i16::MAX - 1 {
            txn.epoch + 1
        } else {
            txn.epoch
        };
        let deciding = Txn {
            epoch,
            state: TxnState::PrepareAbort,
            updated_ms: now_ms(),
            ..txn
        };
        self.write(deciding.clone()).await?;
        self.complete(shard, deciding).await
    }

    /// AddPartitionsToTxn: the partitions join the open transaction (one
    /// starts if none is open). Every partition must exist; otherwise the
    /// unknown ones get UNKNOWN_TOPIC_OR_PARTITION, the others
    /// OPERATION_NOT_ATTEMPTED, and nothing is added.
    pub async fn add_partitions(
        &self,
        shard: &Rc<Shard>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        let (_busy, txn) = self.to_extend(id, producer_id, epoch)?;
        let metadata = shard.metadata();
        let known: Vec<bool> = partitions
            .iter()
            .map(|(topic, p)| {
                metadata
                    .topics
                    .get(topic)
                    .is_some_and(|t| t.owner(*p).is_some())
            })
            .collect();
        if known.contains(&false) {
            return Ok(known
                .into_iter()
                .map(|k| {
                    Err(if k {
                        BrokerError::OperationNotAttempted
                    } else {
                        BrokerError::UnknownTopicOrPartition("unknown partition".into())
                    })
                })
                .collect());
        }
        let count = partitions.len();
        self.extend(txn, |t| t.partitions.extend(partitions))
            .await?;
        Ok((0..count).map(|_| Ok(())).collect())
    }

    /// AddOffsetsToTxn: the group's offsets join the open transaction.
    pub async fn add_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: String,
    ) -> Result<(), BrokerError> {
        let (_busy, txn) = self.to_extend(id, producer_id, epoch)?;
        self.extend(txn, |t| {
            t.groups.insert(group);
        })
        .await
    }

    /// The entry of `id`, locked, for partitions or groups to join its
    /// transaction: not while a decision is being carried out.
    fn to_extend(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(Busy, Txn), BrokerError> {
        let busy = self.lock(id)?;
        let txn = self.current(id, producer_id, epoch)?;
        if txn.state.preparing() {
            return Err(BrokerError::ConcurrentTransactions);
        }
        Ok((busy, txn))
    }

    /// Opens a transaction on `txn` if none is, adds what `add` adds, and
    /// writes the entry if that changed it.
    async fn extend(&self, txn: Txn, add: impl FnOnce(&mut Txn)) -> Result<(), BrokerError> {
        let mut next = begin(txn.clone());
        add(&mut next);
        if next != txn {
            next.updated_ms = now_ms();
            self.write(next).await?;
        }
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction, answered once
    /// every marker and group write is durable. A retry of a decision
    /// already carried out is answered as success.
    pub async fn end_txn(
        &self,
        shard: &Rc<Shard>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), BrokerError> {
        let _busy = self.lock(id)?;
        let txn = self.current(id, producer_id, epoch)?;
        match (txn.state, commit) {
            (TxnState::Ongoing, _) => {
                let deciding = Txn {
                    state: if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    },
                    updated_ms: now_ms(),
                    ..txn
                };
                self.write(deciding.clone()).await?;
                self.complete(shard, deciding).await.map(|_| ())
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                Err(BrokerError::ConcurrentTransactions)
            }
            (state, _) => Err(BrokerError::InvalidTxnState(format!(
                "cannot {} a transaction in state {}",
                if commit { "commit" } else { "abort" },
                state.name()
            ))),
        }
    }

    /// Carries out the decision of `txn` (PrepareCommit or PrepareAbort):
    /// markers on its partitions, its offsets on its groups, then the
    /// completed state. Writes that fail are tried again until they
    /// succeed or the broker stops (the decision stays in the WAL for
    /// the next start).
    async fn complete(&self, shard: &Rc<Shard>, txn: Txn) -> Result<Txn, BrokerError> {
        let commit = txn.state == TxnState::PrepareCommit;
        let control = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let (producer_id, epoch) = (txn.producer_id, txn.epoch);
        crate::crash::txn_decided(shard.id().index(), 0);
        let mut markers: Vec<(ShardId, PartitionKey)> = {
            let metadata = shard.metadata();
            txn.partitions
                .iter()
                .filter_map(|(topic, p)| {
                    let t = metadata.topics.get(topic)?;
                    Some((t.owner(*p)?, PartitionKey::new(t.id, *p)))
                })
                .collect()
        };
        while !markers.is_empty() {
            let results = crate::router::scatter(
                shard,
                markers.clone(),
                move |s, keys: Vec<PartitionKey>| async move {
                    let mut done = Vec::with_capacity(keys.len());
                    for key in keys {
                        done.push(write_marker(&s, key, producer_id, epoch, control).await);
                    }
                    done
                },
                |_| Err(BrokerError::ShuttingDown),
            )
            .await;
            let mut again = Vec::new();
            for (target, result) in markers.into_iter().zip(results) {
                match result {
                    Ok(()) | Err(BrokerError::UnknownTopicOrPartition(_)) => {}
                    Err(e) => {
                        tracing::warn!(transactional_id = txn.id, error = %e, "transaction marker not written; trying again");
                        again.push(target);
                    }
                }
            }
            markers = again;
            if !markers.is_empty() {
                self.pause(shard).await?;
            }
        }
        crate::crash::txn_decided(shard.id().index(), 1);
        for group in &txn.groups {
            loop {
                let owner = crate::groups::coordinator_shard(group, shard.count());
                let g = group.clone();
                let done = shard
                    .call(owner, move |s| async move {
                        s.groups().end_txn(&g, producer_id, commit).await
                    })
                    .await
                    .unwrap_or(Err(BrokerError::ShuttingDown));
                match done {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(transactional_id = txn.id, group, error = %e, "transactional offsets not ended; trying again");
                        self.pause(shard).await?;
                    }
                }
            }
        }
        let done = Txn {
            state: if commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
            started_ms: -1,
            updated_ms: now_ms(),
            partitions: Default::default(),
            groups: Default::default(),
            ..txn
        };
        self.write(done.clone()).await?;
        tracing::debug!(
            transactional_id = done.id,
            producer_id,
            epoch,
            commit,
            "transaction completed"
        );
        Ok(done)
    }

    /// Waits before a retry; `Err` once the broker is stopping (a failed
    /// WAL ends the process, so there is no retrying past one).
    async fn pause(&self, shard: &Rc<Shard>) -> Result<(), BrokerError> {
        let lifecycle = shard.lifecycle();
        let since = lifecycle.shutdown.generation();
        if lifecycle.sleep_or_shutdown(RETRY, since).await {
            return Err(BrokerError::ShuttingDown);
        }
        Ok(())
    }

    /// One timer pass: transactions past their timeout are aborted (with
    /// their epoch bumped, fencing the producer), and decisions a crash
    /// interrupted are carried out.
    async fn tick(shard: &Rc<Shard>) {
        let now = now_ms();
        let due: Vec<String> = {
            let svc = shard.transactions();
            let busy = svc.busy.borrow();
            let c = svc.coordinator.borrow();
            c.txns
                .values()
                .filter(|(t, _)| !busy.contains(&t.id))
                .filter(|(t, _)| {
                    t.state.preparing()
                        || (t.state == TxnState::Ongoing
                            && now - t.started_ms > i64::from(t.timeout_ms))
                })
                .map(|(t, _)| t.id.clone())
                .collect()
        };
        for id in due {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let svc = shard.transactions().clone();
                let Ok(_busy) = svc.lock(&id) else {
                    return;
                };
                let Some(txn) = svc.get(&id) else {
                    return;
                };
                let result = if txn.state.preparing() {
                    tracing::info!(transactional_id = id, state = txn.state.name(), "carrying out a transaction decision");
                    svc.complete(&shard, txn).await.map(|_| ())
                } else if txn.state == TxnState::Ongoing {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = txn.producer_id,
                        epoch = txn.epoch,
                        timeout_ms = txn.timeout_ms,
                        "transaction timed out; aborting it"
                    );
                    svc.abort_fencing(&shard, txn).await.map(|_| ())
                } else {
                    Ok(())
                };
                if let Err(e) = result {
                    tracing::warn!(transactional_id = id, error = %e, "transaction not completed yet");
                }
            })
            .detach();
        }
    }
}

/// The entry with a transaction open: an Ongoing one as it is, else a new
/// one starting now.
fn begin(txn: Txn) -> Txn {
    if txn.state == TxnState::Ongoing {
        return txn;
    }
    Txn {
        state: TxnState::Ongoing,
        started_ms: now_ms(),
        partitions: Default::default(),
        groups: Default::default(),
        ..txn
    }
}

/// Appends a marker on the partition's owner (this shard) and waits
/// until it is durable.
async fn write_marker(
    s: &Rc<Shard>,
    key: PartitionKey,
    producer_id: i64,
    epoch: i16,
    control: ControlType,
) -> Result<(), BrokerError> {
    let appending = s
        .log()
        .append_marker(key, producer_id, epoch, control, COORDINATOR_EPOCH)?;
    s.log().wait_durable(appending).await
}

async fn run_timer(shard: Rc<Shard>, lifecycle: Rc<Lifecycle>) {
    let stop = lifecycle.shutdown.generation();
    loop {
        if lifecycle.sleep_or_shutdown(TICK, stop).await {
            return;
        }
        TxnService::tick(&shard).await;
    }
}
