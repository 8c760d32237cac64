//! The Sluice broker: shards, the router, request handlers and metadata.
//!
//! `server` starts one glommio executor per shard; each shard owns a WAL
//! (`wal-core`), the partitions assigned to it (`partition`) and accepts
//! connections (`connection`). A request is split by owning shard
//! (`router`) and served by `handlers`. Topic metadata is changed by shard 0
//! (`metadata`) and published to every shard as an immutable snapshot.

pub mod alloc;
pub mod config;
pub mod connection;
pub mod controller;
pub mod groups;
pub mod handlers;
pub mod inspect;
pub mod logging;
pub mod metadata;
pub mod notify;
pub mod partition;
pub mod producers;
pub mod router;
pub mod server;
pub mod shard;
