//! Idempotent-producer black-box tests: the real `sluice` binary, rdkafka
//! producers with `enable.idempotence=true` streaming through a `kill -9`
//! and restart, and hand-made batches over raw TCP for the broker's
//! sequence rules (a duplicate is stored once and answered with the same
//! offset, also after a restart; a gap is refused; an old epoch is fenced).
//!
//! [`harness`] and [`raw`] are the general black-box suite's.

#[allow(dead_code)]
#[path = "../blackbox/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../blackbox/raw.rs"]
mod raw;

mod retries;
mod sequences;
