//! The request fuzzer against the real broker: a few thousand requests of
//! every supported API and version, valid and mutated (fields, bytes,
//! headers, frames), from a fixed seed and from a time seed (printed, for a
//! rerun). The broker must answer or close each, keep answering ApiVersions
//! on a fresh connection, and stay alive; every (api, version) it
//! advertises must have been sent at least once.

use kafka_protocol::messages::ApiVersionsRequest;

use crate::harness::{self, Broker, DataDir};
use crate::raw::{RawClient, NONE};

/// The seed every run repeats, so a regression shows on every machine.
const FIXED_SEED: u64 = 0x51_u64 << 32 | 11;
/// Requests per seed: about 26 of each (api, version), a few seconds per
/// seed on two cores (each cycle of 164 visits every pair once).
const REQUESTS: u64 = 4_000;

#[test]
fn fuzzed_requests_of_every_api_and_version_leave_the_broker_answering() {
    let dir = DataDir::new("fuzz");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    let pairs = sluice_fuzz::generate::pairs();
    for seed in [FIXED_SEED, harness::seed()] {
        eprintln!("[fuzz] seed {seed}");
        let mut cfg = sluice_fuzz::Config::new(broker.addr(), seed);
        cfg.requests = Some(REQUESTS);
        cfg.pid = Some(broker.pid() as u32);
        let report = sluice_fuzz::run(&cfg)
            .unwrap_or_else(|e| panic!("seed {seed}: fuzzer set-up failed: {e}\n{}", broker.log()));
        let summary = report.summary();
        eprintln!("{summary}");
        assert!(
            report.failure.is_none() && broker.is_running(),
            "seed {seed}: the broker stopped answering or died\n{summary}\nbroker stderr:\n{}",
            broker.last_run_log()
        );
        let missing = report.stats.missing(&pairs);
        assert!(
            missing.is_empty(),
            "seed {seed}: never sent {missing:?}\n{summary}"
        );
        assert_eq!(
            report.stats.total().sent,
            REQUESTS,
            "seed {seed}: not every request was sent"
        );
    }
    let mut client = RawClient::connect(broker.addr());
    let versions = client.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE, "ApiVersions after the fuzzing");
    assert!(broker.is_running(), "broker died:\n{}", broker.log());
}
