//! Transactions (Kafka's KIP-98 and KIP-447): a producer writes to many
//! partitions and commits consumer offsets, and all of it becomes visible
//! to read_committed consumers at once, or none of it.
//!
//! A transactional id is coordinated on shard `hash(id) % shards`
//! ([`coordinator_shard`], the hash groups use). The parts:
//!
//! - `state`: the transactions of one shard as plain state, their record
//!   layout (frame type [`state::TXN_RECORD`]), replay and checkpoints;
//! - `service`: the protocol — InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, EndTxn with its two phases, timeouts, and finishing
//!   after a crash what was decided before it.
//!
//! The partitions' side (open transactions, the last stable offset,
//! aborted transactions for read_committed fetches) is the log's:
//! `log/transactions.rs`. The groups' side (offsets held until the
//! transaction ends) is the group coordinator's.

pub mod service;
pub mod state;

pub use service::{TxnLimits, TxnService};
pub use state::TxnCoordinator;

use crate::shard_id::ShardId;

/// The shard that coordinates transactional id `id`.
pub fn coordinator_shard(id: &str, shards: usize) -> ShardId {
    ShardId::for_hash(crate::util::fnv1a(id.as_bytes()), shards)
}
