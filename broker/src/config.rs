//! Configuration: one struct with defaults, filled from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `sluice serve` flags. Every field has a default, so `sluice serve` alone
/// listens on 127.0.0.1:9092 with its data in `./data`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (every shard binds it with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Address clients are told to connect to (default: the listen address).
    #[arg(long)]
    pub advertised_listener: Option<String>,
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
