//! The Sluice broker: shards, the router, request handlers and metadata.
//!
//! `server` starts one glommio executor per shard. Each shard (`shard`)
//! holds the owners of its work: the partition log (`log`: the WAL handle,
//! partitions, index, fetch buffer, idempotent producers), the group
//! coordinator (`groups`), and on shard 0 the controller's state
//! (`controller`). `recovery` hands every WAL frame to its owner
//! (`frames`). A connection (`connection`) decodes requests and runs each
//! handler (`handlers`, one file per API family) with a `context`; handlers
//! split the work by owning shard (`router`) and call the owners there.
//! Topic metadata is changed by shard 0 (`controller`, `metadata`) and
//! published to every shard as an immutable snapshot; so are the SCRAM
//! credentials (`security`), which authenticate connections on SASL
//! listeners (`listeners`). Errors are one type (`error`), mapped to Kafka
//! codes in one place.

pub mod admin;
pub mod admission;
pub mod alloc;
pub mod authorizer;
pub mod checkpoint;
pub mod config;
pub mod connection;
pub mod context;
pub mod controller;
pub mod crash;
pub mod error;
pub mod fetch_sessions;
pub mod frames;
pub mod groups;
pub mod handlers;
pub mod inspect;
pub mod layout;
pub mod lifecycle;
pub mod listeners;
pub mod log;
pub mod logging;
pub mod memory;
pub mod metadata;
pub mod metrics;
pub mod metrics_http;
pub mod notify;
pub mod record_stream;
pub mod recovery;
pub mod router;
pub mod security;
pub mod server;
pub mod shard;
pub mod shard_id;
pub mod status_page;
pub mod transactions;
pub mod util;
