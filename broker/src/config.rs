//! Configuration: one struct with defaults ([`ServeArgs`]), filled from a
//! TOML file (`--config`) and then from flags, which win.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `sluice serve` flags. Every field has a default, so `sluice serve` alone
/// listens on 127.0.0.1:9092 with its data in `./data`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the flags, with `-` or
    /// `_`: `data-dir = "/var/lib/sluice"`). Flags on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (every shard binds it with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Address clients are told to connect to (default: the listen address).
    #[arg(long)]
    pub advertised_listener: Option<String>,
    /// Listeners, Kafka's way: `NAME://host:port,...`, each NAME a
    /// security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or
    /// mapped to one by --listener-security-protocol-map. Replaces
    /// --listen and --advertised-listener when given.
    #[arg(long)]
    pub listeners: Option<String>,
    /// `NAME://host:port,...`: the address clients are told to use for
    /// each listener (default: the address it binds).
    #[arg(long)]
    pub advertised_listeners: Option<String>,
    /// `NAME:PROTOCOL,...` for listeners whose name is no protocol.
    #[arg(long)]
    pub listener_security_protocol_map: Option<String>,
    /// The broker's TLS certificate chain (PEM), for SSL and SASL_SSL
    /// listeners. Read again on SIGHUP, with the key and client CA.
    #[arg(long)]
    pub ssl_certificate: Option<PathBuf>,
    /// The TLS certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    pub ssl_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to;
    /// needed for --ssl-client-auth requested or required.
    #[arg(long)]
    pub ssl_client_ca: Option<PathBuf>,
    /// Client certificates (Kafka's ssl.client.auth): none, requested
    /// (checked when given) or required. The certificate's subject is the
    /// principal of an SSL listener's connection.
    #[arg(long, default_value = "none")]
    pub ssl_client_auth: String,
    /// SASL mechanisms offered on SASL listeners (Kafka's
    /// sasl.enabled.mechanisms).
    #[arg(long, default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")]
    pub sasl_enabled_mechanisms: String,
    /// A failed authentication is answered this much later, then the
    /// connection closed (Kafka's connection.failed.authentication.delay.ms).
    #[arg(long, default_value_t = 100)]
    pub connection_failed_authentication_delay_ms: u64,
    /// SASL sessions last this long; clients re-authenticate before then
    /// (KIP-368) or their connection is closed. 0: for ever (Kafka's
    /// connections.max.reauth.ms).
    #[arg(long, default_value_t = 0)]
    pub connections_max_reauth_ms: u64,
    /// Incremental fetch sessions (KIP-227) kept, all shards together
    /// (Kafka's max.incremental.fetch.session.cache.slots); 0: none, every
    /// fetch is full.
    #[arg(long, default_value_t = 1000)]
    pub max_incremental_fetch_session_cache_slots: usize,
    /// The authorizer (Kafka's authorizer.class.name): `none` allows
    /// every principal everything; `acl` enforces the ACLs of CreateAcls.
    #[arg(long, default_value = "none")]
    pub authorizer: String,
    /// Principals allowed everything whatever the ACLs say, `;`-separated
    /// (Kafka's super.users: `User:admin;User:CN=ops,O=Acme`).
    #[arg(long, default_value = "")]
    pub super_users: String,
    /// A resource no ACL names is open to everyone (Kafka's
    /// allow.everyone.if.no.acl.found).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_everyone_if_no_acl_found: bool,
    /// Data directory (metadata and one WAL per shard).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Number of shards (one glommio executor pinned per CPU). Default: the
    /// number of CPUs. Fixed when the data directory is created.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Partitions of auto-created topics and of CreateTopics with -1.
    #[arg(long, default_value_t = 1)]
    pub default_partitions: i32,
    /// Create topics on first Metadata or Produce request.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Most partitions the broker holds, all topics together; CreateTopics
    /// and CreatePartitions past it get INVALID_PARTITIONS. Each partition
    /// costs memory on its shard and lines in every Metadata answer.
    #[arg(long, default_value_t = 100_000)]
    pub max_partitions: usize,
    /// Most record bytes one Fetch answer carries, whatever the request
    /// asks (Kafka's fetch.max.bytes): it bounds the memory of one fetch.
    #[arg(long, default_value_t = 55 * 1024 * 1024)]
    pub fetch_max_bytes: usize,
    /// Memory for requests being handled, fetch reads and responses not yet
    /// written, all shards together (split evenly); past it connections
    /// are not read until memory comes back. Default: 32 MiB per shard (at
    /// most a quarter of RAM).
    #[arg(long)]
    pub memory_budget_mib: Option<usize>,
    /// Most client connections at once; more are closed as they arrive
    /// (Kafka's max.connections).
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most connections from one client address (Kafka's
    /// max.connections.per.ip); 0: no limit but --max-connections.
    #[arg(long, default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// A connection with nothing to read for this long is closed (Kafka's
    /// connections.max.idle.ms).
    #[arg(long, default_value_t = 600_000)]
    pub connections_max_idle_ms: u64,
    /// Most members one consumer group may have (Kafka's group.max.size);
    /// a member past it gets GROUP_MAX_SIZE_REACHED. Members are also held
    /// against an eighth of the memory budget, past which joins get
    /// COORDINATOR_NOT_AVAILABLE and are retried.
    #[arg(long, default_value_t = 10_000)]
    pub group_max_size: usize,
    /// How long a topic keeps a batch unless its `retention.ms` says
    /// otherwise (Kafka's log.retention.ms); -1: for ever.
    #[arg(long, default_value_t = 604_800_000, allow_negative_numbers = true)]
    pub log_retention_ms: i64,
    /// How many bytes a partition keeps unless its topic's
    /// `retention.bytes` says otherwise (Kafka's log.retention.bytes);
    /// -1: no limit.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub log_retention_bytes: i64,
    /// How often retention is applied (Kafka's
    /// log.retention.check.interval.ms).
    #[arg(long, default_value_t = 300_000)]
    pub log_retention_check_interval_ms: u64,
    /// How often each shard looks for WAL segments to reclaim: deleted
    /// when nothing in them is live, cleaned (live frames copied forward)
    /// when the WAL is larger than 1.5 x its live bytes + 2 segments.
    #[arg(long, default_value_t = 1_000)]
    pub log_cleaner_interval_ms: u64,
    /// Address of the metrics listener: `/metrics` (Prometheus text
    /// format, or OpenMetrics when asked), `/health` and `/ready`. Off
    /// unless given (a second open port is the operator's choice;
    /// 127.0.0.1:9644 is a common pick).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Most partitions (and group partitions, for lag) given series of
    /// their own in `/metrics`; past it only the topic's series count
    /// them, so a broker with very many partitions cannot flood a scraper.
    #[arg(long, default_value_t = 10_000)]
    pub metrics_partition_series: usize,
    /// Each shard writes a checkpoint (what replay would rebuild: offsets,
    /// the sparse index, producer and group state) once this many MiB were
    /// appended to its WAL since the last one, and at a clean stop; a
    /// restart replays only the WAL after it.
    #[arg(long, default_value_t = 1024)]
    pub checkpoint_interval_mib: u64,
    /// WAL segment size in MiB.
    #[arg(long, default_value_t = 256)]
    pub wal_segment_mib: u64,
    /// WAL flushes (write + fdatasync) in flight per shard.
    #[arg(long, default_value_t = 4)]
    pub wal_flushes_in_flight: usize,
    /// Fetch buffer of recent batches per shard, in MiB.
    #[arg(long, default_value_t = 64)]
    pub fetch_buffer_mib: usize,
    /// Direct-I/O memory preallocated per shard, in MiB.
    #[arg(long, default_value_t = 64)]
    pub io_memory_mib: usize,
    /// Idempotent-producer state is forgotten after this long without a
    /// batch from the producer (Kafka's producer.id.expiration.ms).
    #[arg(long, default_value_t = 86_400_000)]
    pub producer_id_expiration_ms: u64,
    /// The longest `transaction.timeout.ms` a transactional producer may
    /// ask for (Kafka's transaction.max.timeout.ms).
    #[arg(long, default_value_t = 900_000)]
    pub transaction_max_timeout_ms: i32,
    /// Transactional ids the broker keeps state for, all shards together
    /// (split evenly); InitProducerId for a new id past it gets
    /// COORDINATOR_NOT_AVAILABLE.
    #[arg(long, default_value_t = 100_000)]
    pub max_transactional_ids: usize,
    /// Microseconds an idle shard spins before parking, so a cross-shard
    /// hop does not wait for a wake-up (0: park at once).
    #[arg(long, default_value_t = 50)]
    pub idle_spin_us: u64,
    /// Recovery skips corrupt WAL frames outside the last segment's tail
    /// (and logs each) instead of refusing to start.
    #[arg(long)]
    pub skip_corruption: bool,
}

impl ServeArgs {
    /// The memory budget in bytes of `shards` shards together
    /// (`--memory-budget-mib` or the default).
    pub fn memory_budget_bytes(&self, shards: usize) -> usize {
        self.memory_budget_mib.map_or_else(
            || crate::memory::default_budget_bytes(shards),
            |mib| mib << 20,
        )
    }

    /// `host:port` clients should use.
    pub fn advertised(&self) -> (String, i32) {
        match &self.advertised_listener {
            Some(a) => match a.rsplit_once(':') {
                Some((host, port)) => (
                    host.trim_matches(['[', ']']).to_string(),
                    port.parse().unwrap_or(i32::from(self.listen.port())),
                ),
                None => (a.clone(), i32::from(self.listen.port())),
            },
            None => (self.listen.ip().to_string(), i32::from(self.listen.port())),
        }
    }
}

/// The settings of a TOML config file as command-line flags, to be placed
/// before the real flags so that those win.
pub fn config_flags(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        if flag == "--config" {
            return Err(format!(
                "{}: a config file cannot name another one",
                path.display()
            ));
        }
        match value {
            toml::Value::Boolean(b) if flag == "--skip-corruption" => {
                if b {
                    flags.push(flag);
                }
            }
            toml::Value::String(s) => flags.extend([flag, s]),
            toml::Value::Integer(i) => flags.extend([flag, i.to_string()]),
            toml::Value::Boolean(b) => flags.extend([flag, b.to_string()]),
            other => {
                return Err(format!(
                    "{}: '{key}' must be a string, integer or boolean, not {}",
                    path.display(),
                    other.type_str()
                ))
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_becomes_flags() {
        let path = std::env::temp_dir().join(format!("sluice-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nshards = 2\nauto_create_topics = false\nskip-corruption = true\n",
        )
        .unwrap();
        let flags = config_flags(&path).unwrap();
        assert_eq!(
            flags,
            [
                "--auto-create-topics",
                "false",
                "--listen",
                "127.0.0.1:9999",
                "--shards",
                "2",
                "--skip-corruption"
            ]
        );
        std::fs::write(&path, "listen = [1]\n").unwrap();
        assert!(config_flags(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
