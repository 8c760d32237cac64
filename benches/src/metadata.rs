//! `metadata`: how long a Metadata request for the topic takes, as a
//! client sees it (librdkafka's `fetch_metadata`: the request, the broker's
//! answer and the client's parsing of it), `--messages` requests in a row
//! (100 by default), one at a time.

use std::time::Instant;

use rdkafka::consumer::Consumer;

use crate::args::{Limit, Opts};
use crate::client::{self, Result, REQUEST_TIMEOUT};
use crate::report::Report;
use crate::stats::{LatencyHistogram, Throughput};

/// Requests of a run without `--messages`.
const DEFAULT_REQUESTS: u64 = 100;

pub fn run(o: &Opts, run_id: u64) -> Result<Report> {
    let consumer = client::consumer(o, &format!("sluice-bench-{run_id:x}"))?;
    let requests = match o.limit() {
        Limit::Messages(n) => n,
        _ => DEFAULT_REQUESTS,
    };
    let mut latency = LatencyHistogram::new();
    let mut partitions = 0;
    let start = Instant::now();
    for _ in 0..requests {
        let sent = Instant::now();
        let metadata = consumer
            .fetch_metadata(Some(&o.topic), REQUEST_TIMEOUT)
            .map_err(|e| format!("metadata of {}: {e}", o.topic))?;
        latency.record(sent.elapsed());
        partitions = metadata
            .topics()
            .iter()
            .map(|t| t.partitions().len())
            .sum::<usize>();
    }
    Ok(Report {
        mode: "metadata",
        throughput: Throughput {
            messages: requests,
            bytes: 0,
            errors: 0,
            elapsed: start.elapsed(),
        },
        latency_kind: Some("Metadata request"),
        latency: latency.percentiles(),
        produce_latency: None,
        rate: None,
        verification: Some((true, format!("{partitions} partitions in each answer"))),
    })
}
