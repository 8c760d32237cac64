//! Which shard owns something: a partition, a group, the controller's
//! state. A type rather than a bare `usize`, so that the day a cluster has
//! several nodes, "owner" can grow a node id in one place.

use std::fmt;

/// A shard of this broker (0 is the controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(usize);

impl ShardId {
    /// The shard that changes cluster metadata and hands out producer ids.
    pub const CONTROLLER: ShardId = ShardId(0);

    /// Shard number `index`.
    pub const fn new(index: usize) -> ShardId {
        ShardId(index)
    }

    /// The shard a stable hash places something on, among `count`.
    pub fn for_hash(hash: u64, count: usize) -> ShardId {
        ShardId((hash % count.max(1) as u64) as usize)
    }

    /// Its number, for indexing per-shard tables and naming directories.
    pub const fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
