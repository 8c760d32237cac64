//! Consumer group coordination (Kafka's classic group protocol).
//!
//! A group lives on shard `hash(group id) % shards` ([`coordinator_shard`],
//! FNV-1a, stable across restarts because the shard count is fixed by the
//! data directory); every group request is run there. The parts:
//!
//! - `state`: one group's state machine, synchronous and I/O-free, with an
//!   outbox of records to write;
//! - `coordinator`: the groups of one shard and their committed offsets as
//!   plain state, changed by records in WAL order; the WAL user of group
//!   records (replay, and what is still live for reclaiming space);
//! - `records`: the record layout (frame type [`records::GROUP_RECORD`]);
//! - `service`: the glue — writes the records through the shard's log
//!   (an OffsetCommit is answered only once its record is durable), runs
//!   the timers, and offers each group operation as a call on the
//!   coordinator shard.
//!
//! Members are not kept across a restart (Kafka does not keep them
//! either), so clients simply rejoin.

pub mod coordinator;
pub mod records;
pub mod service;
pub mod state;

pub use coordinator::Coordinator;
pub use service::GroupService;

use crate::shard_id::ShardId;

/// The shard that coordinates `group_id`.
pub fn coordinator_shard(group_id: &str, shards: usize) -> ShardId {
    ShardId::for_hash(crate::util::fnv1a(group_id.as_bytes()), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_shard_is_stable_and_in_range() {
        assert_eq!(coordinator_shard("g", 1), ShardId::new(0));
        for shards in 1..8 {
            for g in ["", "a", "orders-consumers", "ü"] {
                let s = coordinator_shard(g, shards);
                assert!(s.index() < shards);
                assert_eq!(s, coordinator_shard(g, shards));
            }
        }
    }
}
