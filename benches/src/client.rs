//! rdkafka plumbing shared by the subcommands: client configuration from the
//! flags, topic creation, partition and watermark lookups, and a client
//! context that reports librdkafka errors on stderr.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::args::Opts;

/// How long metadata, watermark and admin requests may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors a run can end with, said in words (the binary prints them).
pub type Result<T> = std::result::Result<T, String>;

/// Client context of the consumers and admin client: librdkafka's errors
/// and warnings go to stderr (no `log` backend is installed).
pub struct BenchContext;

impl ClientContext for BenchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_stderr(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("rdkafka error: {error}: {reason}");
    }
}

impl ConsumerContext for BenchContext {}

/// Warnings and worse from librdkafka, on stderr.
pub fn log_to_stderr(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
        eprintln!("rdkafka {fac}: {log_message}");
    }
}

/// A client configuration with `--bootstrap` and every `--client-config`.
fn base_config(o: &Opts) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &o.bootstrap);
    for setting in &o.client_configs {
        match setting.split_once('=') {
            Some((key, value)) => c.set(key, value),
            // clap cannot say it; librdkafka will refuse the empty key.
            None => c.set(setting, ""),
        };
    }
    c
}

/// Producer configuration from the flags.
pub fn producer_config(o: &Opts) -> ClientConfig {
    let mut c = base_config(o);
    c.set("client.id", "sluice-bench")
        .set("acks", o.acks.as_config())
        .set("linger.ms", o.linger_ms.to_string())
        .set("batch.size", o.batch_bytes.to_string())
        .set("compression.type", o.compression.as_config())
        // Transactions need idempotence (librdkafka refuses them without).
        .set(
            "enable.idempotence",
            (o.idempotence || o.transaction_messages.is_some()).to_string(),
        )
        // Room for a second of saturation at small sizes; QueueFull is
        // retried by the sender, never counted as an error.
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000");
    c
}

/// Consumer configuration: librdkafka needs a group.id even for `assign`;
/// offsets are never committed.
pub fn consumer_config(o: &Opts, group: &str) -> ClientConfig {
    let mut c = base_config(o);
    c.set("client.id", "sluice-bench")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    c
}

pub fn consumer(o: &Opts, group: &str) -> Result<BaseConsumer<BenchContext>> {
    consumer_config(o, group)
        .create_with_context(BenchContext)
        .map_err(|e| format!("cannot create consumer for {}: {e}", o.bootstrap))
}

/// Creates the topic with `--partitions` partitions (replication factor 1);
/// a topic that already exists is fine.
pub fn create_topic(o: &Opts) -> Result<()> {
    let admin: AdminClient<BenchContext> = {
        base_config(o)
            .create_with_context(BenchContext)
            .map_err(|e| format!("cannot create admin client: {e}"))?
    };
    let mut topic = NewTopic::new(&o.topic, o.partitions, TopicReplication::Fixed(1));
    for config in &o.topic_configs {
        let (key, value) = config
            .split_once('=')
            .ok_or_else(|| format!("--topic-config {config}: not KEY=VALUE"))?;
        topic = topic.set(key, value);
    }
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| format!("CreateTopics {} failed: {e}", o.topic))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
        }
    }
    Ok(())
}

/// The topic's partition ids, waiting up to [`REQUEST_TIMEOUT`] for it to
/// appear (a just-created topic may take a moment).
pub fn partitions<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str) -> Result<Vec<i32>> {
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let md = consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| format!("metadata for {topic}: {e}"))?;
        let found = md.topics().iter().find(|t| t.name() == topic);
        if let Some(t) = found {
            if t.error().is_none() && !t.partitions().is_empty() {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                return Ok(ids);
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "topic {topic} not found (use --create to create it)"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (low, high) watermark of each partition.
pub fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64, i64)>> {
    partitions
        .iter()
        .map(|&p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
            Ok((p, low, high))
        })
        .collect()
}
