//! Consumer-group black-box tests: the real `sluice` binary, real rdkafka
//! consumers in groups (range, round-robin and cooperative-sticky
//! assignors, static membership), hand-built group requests for what a
//! client will not do on cue, SIGKILL and restart for committed offsets.
//!
//! [`harness`] and [`raw`] are the general black-box suite's (broker
//! process, producers, raw connection); [`members`] runs group consumers on
//! threads of their own; [`wire`] builds group requests by hand. Every test
//! starts its own broker, and every wait has a deadline.

#[allow(dead_code)]
#[path = "../blackbox/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../blackbox/raw.rs"]
mod raw;

#[allow(dead_code)]
mod members;
#[allow(dead_code)]
mod wire;

mod offsets;
mod rebalance;
mod versions;
