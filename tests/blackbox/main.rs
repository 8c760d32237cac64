//! Black-box tests: start the real `sluice` binary, talk to it with real
//! Kafka clients (librdkafka through rdkafka) and with hand-built requests
//! over raw TCP, kill it with SIGKILL, stop it with SIGTERM, restart it, and
//! check that every acknowledged message comes back exactly once, in order,
//! at contiguous offsets.
//!
//! Layout: [`harness`] runs the broker process and builds clients, [`raw`]
//! speaks the wire protocol by hand, [`verify`] checks a consumed log against
//! what was produced and acknowledged (and checks itself on hand-made
//! logs). The test modules: [`durability`] (loss-report scenarios, kill
//! mid-produce, prefix-ordered acks, SIGTERM/SIGINT, restart after a
//! crash), [`features`] (codecs, headers, timestamps, offsets), [`corrupt`]
//! (bad batches and other bad input), [`shards`] (shard-count guard),
//! [`pipelining`] (in-order responses, acks=0), [`limits`] (memory budgets:
//! fetch byte limits, connections, hostile load), [`metadata`] (topic
//! changes survive crashes), [`crash_only`] (a panic or a failed WAL ends
//! the process; restarts right after `kill -9`), [`disk_full`],
//! [`retention`] (retention, DeleteRecords, the WAL cleaner), [`fuzz`]
//! (the request fuzzer, every API and version) and
//! [`loss_modes`] (one test per known way brokers like this lose data,
//! DESIGN.md).
//!
//! Every test starts its own broker on a free port with a fresh data
//! directory under `CARGO_TARGET_TMPDIR`, and every wait has a deadline.

mod harness;
mod raw;
mod verify;

mod acls;
mod admin;
mod admin_clients;
mod checkpoints;
mod corrupt;
mod crash_only;
mod disk_full;
mod durability;
mod features;
mod fetch_sessions;
mod fuzz;
mod hostile;
mod limits;
mod loss_modes;
mod metadata;
mod metrics;
mod pipelining;
mod retention;
mod security;
mod shards;
mod transactions;
