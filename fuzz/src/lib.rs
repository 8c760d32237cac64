//! sluice-fuzz: a request fuzzer for a running Sluice broker.
//!
//! For every API and version the broker advertises
//! (`sluice_protocol::versions::SUPPORTED_APIS`) it builds a plausible
//! request ([`requests`]), mutates it at the field level ([`knobs`]) and
//! the byte level ([`mutate`], which also damages headers and frames),
//! sends it, and checks the broker still answers ([`run`]). Everything
//! follows from a seed: request `i` of seed `s` is the same request every
//! time ([`generate`]), so a failure is replayed with
//! `sluice-fuzz --seed s --from i --requests 1`.

pub mod batches;
pub mod conn;
pub mod context;
pub mod generate;
pub mod knobs;
pub mod mutate;
pub mod requests;
pub mod rng;
pub mod run;
pub mod setup;
pub mod stats;

pub use run::{run, Config, Failure, Report};
