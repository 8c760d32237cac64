//! The metrics listener (`--metrics-listen`): `/metrics` (Prometheus text
//! format, or OpenMetrics when the scraper asks for it), `/health` and
//! `/ready`, on a thread of its own so that a slow scraper never holds a
//! shard.
//!
//! Nothing is counted here. A scrape sends every shard a call through its
//! queue; each answers with a [`ShardReport`] of its owners' counters,
//! taken in one step; the reports are merged and written out through
//! prometheus-client's collector interface. Consumer lag is computed here:
//! a group's committed offsets live on its coordinator's shard, the high
//! watermarks on the partitions' owners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::admission::ConnectionGate;
use crate::metrics::{ApiStats, Histogram, ShardReport};
use crate::shard::{Job, Shard};

/// How long a scrape waits for a shard's report; a shard that does not
/// answer in time is unhealthy.
const SHARD_ANSWER: Duration = Duration::from_secs(2);

/// What the listener needs of the running broker.
pub struct Broker {
    /// Every shard's call queue.
    pub shards: Vec<flume::Sender<Job>>,
    /// Connection counts.
    pub gate: Arc<ConnectionGate>,
    /// Set once every shard has recovered and accepts connections.
    pub ready: Arc<AtomicBool>,
    /// Set once shutdown has begun.
    pub stopping: Arc<AtomicBool>,
    /// Most partitions given series of their own (the rest are counted in
    /// their topic's series only).
    pub max_partition_series: usize,
}

/// Binds `addr` and serves it on a thread of its own until the process
/// ends.
pub fn start(addr: SocketAddr, broker: Broker) -> Result<(), String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("metrics listener on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut last = None;
            for request in server.incoming_requests() {
                let (status, content_type, body) = answer(&broker, &request, &mut last);
                let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header);
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "metrics answer not written");
                }
            }
        })
        .map_err(|e| format!("starting the metrics thread: {e}"))?;
    Ok(())
}

const TEXT: &str = "text/plain; charset=utf-8";

fn answer(
    broker: &Broker,
    request: &tiny_http::Request,
    last: &mut Option<crate::status_page::Totals>,
) -> (u16, &'static str, String) {
    if request.method() != &tiny_http::Method::Get {
        return (405, TEXT, "only GET\n".into());
    }
    let path = request.url().split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let openmetrics = request.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            });
            let reports: Vec<ShardReport> = gather(broker).into_iter().flatten().collect();
            let text = render(broker, &reports);
            if openmetrics {
                (
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )
            } else {
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    prometheus_text(&text),
                )
            }
        }
        "/health" => {
            let mut trouble = Vec::new();
            for (shard, report) in gather(broker).into_iter().enumerate() {
                match report {
                    None => trouble.push(format!("shard {shard} does not answer")),
                    Some(r) if r.wal.failed => trouble.push(format!("shard {shard}: WAL failed")),
                    Some(_) => {}
                }
            }
            if trouble.is_empty() {
                (200, TEXT, "ok\n".into())
            } else {
                (503, TEXT, trouble.join("\n") + "\n")
            }
        }
        "/ready" => {
            if broker.stopping.load(Ordering::SeqCst) {
                (503, TEXT, "stopping\n".into())
            } else if broker.ready.load(Ordering::SeqCst) {
                (200, TEXT, "ready\n".into())
            } else {
                (503, TEXT, "recovering\n".into())
            }
        }
        "/" => {
            let reports = gather(broker);
            let (open, _, _) = broker.gate.counts();
            let ready = broker.ready.load(Ordering::SeqCst);
            let page = crate::status_page::render(&reports, open, ready, last);
            (200, "text/html; charset=utf-8", page)
        }
        _ => (
            404,
            TEXT,
            "not found: /, /metrics, /health, /ready\n".into(),
        ),
    }
}

/// Every shard's report, `None` where a shard did not answer in time.
fn gather(broker: &Broker) -> Vec<Option<ShardReport>> {
    let asked: Vec<Option<flume::Receiver<ShardReport>>> = broker
        .shards
        .iter()
        .map(|queue| {
            let (tx, rx) = flume::bounded(1);
            let job: Job = Box::new(move |shard: Rc<Shard>| {
                Box::pin(async move {
                    let _ = tx.send(ShardReport::of(&shard));
                })
            });
            queue.send_timeout(job, SHARD_ANSWER).ok().map(|()| rx)
        })
        .collect();
    asked
        .into_iter()
        .map(|rx| rx?.recv_timeout(SHARD_ANSWER).ok())
        .collect()
}

/// The metrics of `reports` in the OpenMetrics text format.
fn render(broker: &Broker, reports: &[ShardReport]) -> String {
    let (open, accepted, refused) = broker.gate.counts();
    let scrape = Scrape {
        reports: reports.to_vec(),
        connections: (open as u64, accepted, refused),
        max_partition_series: broker.max_partition_series,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics not rendered");
    }
    out
}

/// OpenMetrics text as the Prometheus text format (0.0.4) has it: a
/// counter's family is named with its `_total` suffix, and there are no
/// `# UNIT` and `# EOF` lines.
fn prometheus_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in lines {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One scrape's reports, as a prometheus-client collector.
#[derive(Debug)]
struct Scrape {
    reports: Vec<ShardReport>,
    /// Connections open, accepted and refused.
    connections: (u64, u64, u64),
    max_partition_series: usize,
}

type Labels = Vec<(&'static str, String)>;

fn label(name: &'static str, v: impl ToString) -> (&'static str, String) {
    (name, v.to_string())
}

/// Writes one family: `name` (a counter's without `_total`), its help,
/// and a metric per label set (one without labels is written bare).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Vec<(&Labels, M)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(labels, m)] = &samples[..] {
        if labels.is_empty() {
            return m.encode(metric);
        }
    }
    for (labels, m) in &samples {
        m.encode(metric.encode_family(*labels)?)?;
    }
    Ok(())
}

/// Writes one counter family.
fn counter<V: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, V)],
) -> std::fmt::Result
where
    ConstCounter<V>: EncodeMetric,
{
    let metrics = samples.iter().map(|(l, v)| (l, ConstCounter::new(*v)));
    family(encoder, name, help, MetricType::Counter, metrics.collect())
}

/// Writes one gauge family.
fn gauge<V: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, V)],
) -> std::fmt::Result
where
    ConstGauge<V>: EncodeMetric,
{
    let metrics = samples.iter().map(|(l, v)| (l, ConstGauge::new(*v)));
    family(encoder, name, help, MetricType::Gauge, metrics.collect())
}

/// Writes one histogram family, a histogram per label set.
fn histograms<'h>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels, &'h Histogram)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        metric.encode_family(&labels)?.encode_histogram::<Labels>(
            h.sum(),
            h.count(),
            &h.buckets(),
            None,
        )?;
    }
    Ok(())
}

/// A value per shard.
fn per_shard<T>(shards: &[ShardReport], f: impl Fn(&ShardReport) -> T) -> Vec<(Labels, T)> {
    shards
        .iter()
        .map(|r| (vec![label("shard", r.shard)], f(r)))
        .collect()
}

fn api_name(key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(_) => key.to_string(),
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let shards = &self.reports;
        gauge(
            &mut e,
            "sluice_shards",
            "Shards that answered this scrape.",
            &[(vec![], shards.len() as i64)],
        )?;

        // Requests, by API (over every shard).
        let mut apis: BTreeMap<i16, ApiStats> = BTreeMap::new();
        for r in shards {
            for (key, s) in &r.apis {
                apis.entry(*key).or_default().merge(s);
            }
        }
        let by_api = |f: &dyn Fn(&ApiStats) -> u64| -> Vec<(Labels, u64)> {
            apis.iter()
                .map(|(k, a)| (vec![label("api", api_name(*k))], f(a)))
                .collect()
        };
        counter(
            &mut e,
            "sluice_requests",
            "Kafka requests received, by API.",
            &by_api(&|a| a.requests),
        )?;
        counter(
            &mut e,
            "sluice_request_bytes",
            "Bytes of the request frames, by API.",
            &by_api(&|a| a.request_bytes),
        )?;
        counter(
            &mut e,
            "sluice_response_bytes",
            "Bytes of the answers written, by API.",
            &by_api(&|a| a.response_bytes),
        )?;
        let mut errors: BTreeMap<(i16, i16), u64> = BTreeMap::new();
        for r in shards {
            for (key, n) in &r.errors {
                *errors.entry(*key).or_default() += n;
            }
        }
        let errors: Vec<(Labels, u64)> = errors
            .into_iter()
            .map(|((api, code), n)| {
                let name = kafka_protocol::ResponseError::try_from_code(code)
                    .map_or_else(|| code.to_string(), |e| e.to_string());
                (vec![label("api", api_name(api)), label("error", name)], n)
            })
            .collect();
        counter(
            &mut e,
            "sluice_errors",
            "Error codes in answers, by API and Kafka error name (each partition's, group's or resource's counted).",
            &errors,
        )?;
        histograms(
            &mut e,
            "sluice_request_duration_seconds",
            "From a request read to its answer written, by API.",
            apis.iter()
                .map(|(k, a)| (vec![label("api", api_name(*k))], &a.latency)),
        )?;

        // The WAL of each shard.
        counter(
            &mut e,
            "sluice_wal_appends",
            "Frames appended to the WAL.",
            &per_shard(shards, |r| r.wal.appends),
        )?;
        counter(
            &mut e,
            "sluice_wal_appended_bytes",
            "Payload bytes appended to the WAL.",
            &per_shard(shards, |r| r.wal.payload_bytes),
        )?;
        counter(
            &mut e,
            "sluice_wal_flushes",
            "WAL flushes (one write and one fdatasync for everything appended meanwhile).",
            &per_shard(shards, |r| r.wal.flushes),
        )?;
        counter(
            &mut e,
            "sluice_wal_syncs",
            "fdatasync calls of WAL flushes.",
            &per_shard(shards, |r| r.wal.syncs),
        )?;
        counter(
            &mut e,
            "sluice_wal_written_bytes",
            "Bytes written by WAL flushes (with alignment and padding).",
            &per_shard(shards, |r| r.wal.bytes_written),
        )?;
        gauge(
            &mut e,
            "sluice_wal_segments",
            "WAL segment files.",
            &per_shard(shards, |r| r.wal.segments as i64),
        )?;
        gauge(
            &mut e,
            "sluice_wal_disk_bytes",
            "Bytes of the WAL's segment files.",
            &per_shard(shards, |r| r.wal.disk_bytes as i64),
        )?;
        gauge(
            &mut e,
            "sluice_wal_failed",
            "1 once a failed write or sync poisoned the WAL (the process then stops).",
            &per_shard(shards, |r| i64::from(r.wal.failed)),
        )?;

        gauge(
            &mut e,
            "sluice_wal_flushes_in_flight",
            "WAL flushes running now.",
            &per_shard(shards, |r| r.wal.flushes_in_flight as i64),
        )?;
        histograms(
            &mut e,
            "sluice_wal_sync_duration_seconds",
            "Seconds each WAL flush's fdatasync took.",
            shards
                .iter()
                .map(|r| (vec![label("shard", r.shard)], &r.wal.sync_seconds)),
        )?;
        histograms(
            &mut e,
            "sluice_wal_flush_frames",
            "Frames each WAL flush carried (the group-commit size).",
            shards
                .iter()
                .map(|r| (vec![label("shard", r.shard)], &r.wal.flush_frames)),
        )?;

        // Fetch reads.
        gauge(
            &mut e,
            "sluice_fetch_buffer_bytes",
            "Bytes of recent batches held in the fetch buffer.",
            &per_shard(shards, |r| r.fetch_buffer_bytes as i64),
        )?;
        counter(
            &mut e,
            "sluice_fetch_buffer_hits",
            "Batches fetches found in the fetch buffer.",
            &per_shard(shards, |r| r.fetch_buffer_hits),
        )?;
        counter(
            &mut e,
            "sluice_fetch_buffer_misses",
            "Batches fetches read from the WAL.",
            &per_shard(shards, |r| r.fetch_buffer_misses),
        )?;
        counter(
            &mut e,
            "sluice_fetch_disk_reads",
            "Index chunks read from the WAL by fetches (one read each).",
            &per_shard(shards, |r| r.chunk_reads),
        )?;
        counter(
            &mut e,
            "sluice_failed_authentications",
            "Failed authentications: SASL exchanges and TLS handshakes.",
            &per_shard(shards, |r| r.failed_authentications),
        )?;

        // Shard state.
        gauge(
            &mut e,
            "sluice_idempotent_producers",
            "Idempotent producer states tracked (per producer and partition).",
            &per_shard(shards, |r| r.producers as i64),
        )?;
        gauge(
            &mut e,
            "sluice_memory_budget_used_bytes",
            "Memory budget in use (requests, fetch reads, answers not yet written).",
            &per_shard(shards, |r| r.memory_used as i64),
        )?;
        gauge(
            &mut e,
            "sluice_memory_budget_limit_bytes",
            "Memory budget of the shard.",
            &per_shard(shards, |r| r.memory_limit as i64),
        )?;
        gauge(
            &mut e,
            "sluice_recovery_seconds",
            "Seconds the WAL scan took at start-up.",
            &shards
                .iter()
                .map(|r| (vec![label("shard", r.shard)], r.recovery.seconds))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "sluice_recovery_read_bytes",
            "WAL bytes read at start-up (after the checkpoint used).",
            &per_shard(shards, |r| r.recovery.bytes as i64),
        )?;
        gauge(
            &mut e,
            "sluice_recovery_frames",
            "WAL frames replayed at start-up.",
            &per_shard(shards, |r| r.recovery.frames as i64),
        )?;

        // The shards' executors and the calls between them.
        counter(
            &mut e,
            "sluice_shard_busy_seconds",
            "Seconds the shard's executor ran tasks (busy, not spinning or parked).",
            &per_shard(shards, |r| r.busy_seconds),
        )?;
        counter(
            &mut e,
            "sluice_shard_tasks",
            "Tasks the shard's executor ran.",
            &per_shard(shards, |r| r.tasks),
        )?;
        let calls: Vec<(Labels, u64)> = shards
            .iter()
            .flat_map(|r| {
                r.calls
                    .iter()
                    .map(|(to, n)| (vec![label("shard", r.shard), label("to", to)], *n))
            })
            .collect();
        counter(
            &mut e,
            "sluice_shard_calls",
            "Calls a shard made to another (the router's cross-shard hops).",
            &calls,
        )?;
        histograms(
            &mut e,
            "sluice_shard_call_duration_seconds",
            "From a cross-shard call sent to its answer received.",
            shards
                .iter()
                .map(|r| (vec![label("shard", r.shard)], &r.call_latency)),
        )?;

        // Connections.
        let (open, accepted, refused) = self.connections;
        gauge(
            &mut e,
            "sluice_connections_open",
            "Client connections open.",
            &[(vec![], open as i64)],
        )?;
        counter(
            &mut e,
            "sluice_connections_accepted",
            "Client connections accepted.",
            &[(vec![], accepted)],
        )?;
        counter(
            &mut e,
            "sluice_connections_closed",
            "Client connections closed.",
            &[(vec![], accepted.saturating_sub(open))],
        )?;
        counter(
            &mut e,
            "sluice_connections_refused",
            "Connections refused by --max-connections or --max-connections-per-ip.",
            &[(vec![], refused)],
        )?;

        // Topics, and partitions up to the cap.
        let partitions = crate::metrics::sorted_partitions(shards);
        let mut topics: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
        for p in &partitions {
            let t = topics.entry(&p.topic).or_default();
            for (sum, v) in t.iter_mut().zip([
                p.records_in,
                p.bytes_in,
                p.records_out,
                p.bytes_out,
                p.bytes,
                1,
            ]) {
                *sum += v;
            }
        }
        let by_topic = |i: usize| -> Vec<(Labels, u64)> {
            topics
                .iter()
                .map(|(t, v)| (vec![label("topic", t)], v[i]))
                .collect()
        };
        counter(
            &mut e,
            "sluice_topic_records_in",
            "Records appended to the topic since the broker started.",
            &by_topic(0),
        )?;
        counter(
            &mut e,
            "sluice_topic_bytes_in",
            "Batch bytes appended to the topic since the broker started.",
            &by_topic(1),
        )?;
        counter(
            &mut e,
            "sluice_topic_records_out",
            "Records fetched from the topic since the broker started.",
            &by_topic(2),
        )?;
        counter(
            &mut e,
            "sluice_topic_bytes_out",
            "Batch bytes fetched from the topic since the broker started.",
            &by_topic(3),
        )?;
        gauge(
            &mut e,
            "sluice_topic_size_bytes",
            "Bytes of the topic's batches in the log.",
            &by_topic(4),
        )?;
        gauge(
            &mut e,
            "sluice_topic_partitions",
            "Partitions of the topic.",
            &by_topic(5),
        )?;
        let shown = &partitions[..partitions.len().min(self.max_partition_series)];
        let by_partition =
            |f: &dyn Fn(&crate::metrics::PartitionReport) -> i64| -> Vec<(Labels, i64)> {
                shown
                    .iter()
                    .map(|p| {
                        (
                            vec![label("topic", &p.topic), label("partition", p.partition)],
                            f(p),
                        )
                    })
                    .collect()
            };
        gauge(
            &mut e,
            "sluice_partition_log_start_offset",
            "First offset in the partition's log.",
            &by_partition(&|p| p.log_start),
        )?;
        gauge(
            &mut e,
            "sluice_partition_log_end_offset",
            "Offset the partition's next batch gets.",
            &by_partition(&|p| p.log_end),
        )?;
        gauge(
            &mut e,
            "sluice_partition_high_watermark",
            "Offsets below it are durable and visible.",
            &by_partition(&|p| p.high_watermark),
        )?;
        gauge(
            &mut e,
            "sluice_partition_size_bytes",
            "Bytes of the partition's batches in the log.",
            &by_partition(&|p| p.bytes as i64),
        )?;
        let partition_counts =
            |f: &dyn Fn(&crate::metrics::PartitionReport) -> u64| -> Vec<(Labels, u64)> {
                shown
                    .iter()
                    .map(|p| {
                        (
                            vec![label("topic", &p.topic), label("partition", p.partition)],
                            f(p),
                        )
                    })
                    .collect()
            };
        counter(
            &mut e,
            "sluice_partition_records_in",
            "Records appended to the partition since the broker started.",
            &partition_counts(&|p| p.records_in),
        )?;
        counter(
            &mut e,
            "sluice_partition_records_out",
            "Records fetched from the partition since the broker started.",
            &partition_counts(&|p| p.records_out),
        )?;

        // Consumer groups and their lag.
        let reports: Vec<&ShardReport> = shards.iter().collect();
        let groups = crate::metrics::group_lags(&reports, &partitions);
        let by_group = |f: &dyn Fn(&crate::metrics::GroupReport) -> i64| -> Vec<(Labels, i64)> {
            groups
                .iter()
                .map(|(g, _)| (vec![label("group", &g.group)], f(g)))
                .collect()
        };
        gauge(
            &mut e,
            "sluice_group_members",
            "Members of the consumer group.",
            &by_group(&|g| g.members as i64),
        )?;
        gauge(
            &mut e,
            "sluice_group_generation",
            "Generation of the consumer group.",
            &by_group(&|g| i64::from(g.generation)),
        )?;
        let rebalances: Vec<(Labels, u64)> = groups
            .iter()
            .map(|(g, _)| (vec![label("group", &g.group)], g.rebalances))
            .collect();
        counter(
            &mut e,
            "sluice_group_rebalances",
            "Rebalances (new generations) of the group since the broker started.",
            &rebalances,
        )?;
        let states: Vec<(Labels, i64)> = groups
            .iter()
            .map(|(g, _)| (vec![label("group", &g.group), label("state", g.state)], 1))
            .collect();
        gauge(
            &mut e,
            "sluice_group_state",
            "The group's state (1 for the state it is in).",
            &states,
        )?;
        let mut lags: Vec<(Labels, i64)> = Vec::new();
        let mut topic_lags: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for (g, group_lags) in &groups {
            for l in group_lags {
                *topic_lags.entry((&g.group, l.topic)).or_default() += l.lag;
                if lags.len() < self.max_partition_series {
                    let labels = vec![
                        label("group", &g.group),
                        label("topic", l.topic),
                        label("partition", l.partition),
                    ];
                    lags.push((labels, l.lag));
                }
            }
        }
        gauge(
            &mut e,
            "sluice_group_lag",
            "High watermark minus the group's committed offset, per partition.",
            &lags,
        )?;
        let topic_lags: Vec<(Labels, i64)> = topic_lags
            .into_iter()
            .map(|((g, t), lag)| (vec![label("group", g), label("topic", t)], lag))
            .collect();
        gauge(
            &mut e,
            "sluice_group_topic_lag",
            "The group's lag summed over the topic's partitions.",
            &topic_lags,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_suffix_in_the_prometheus_text_format() {
        let open = "# HELP a_x Help.\n# TYPE a_x counter\na_x_total{s=\"0\"} 1\n# HELP b Gauge.\n# TYPE b gauge\n# UNIT b bytes\nb 2\n# EOF\n";
        assert_eq!(
            prometheus_text(open),
            "# HELP a_x_total Help.\n# TYPE a_x_total counter\na_x_total{s=\"0\"} 1\n# HELP b Gauge.\n# TYPE b gauge\nb 2\n"
        );
    }
}
