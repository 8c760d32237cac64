//! Command-line flags of `sluice-bench`: one `Opts` struct shared by the
//! three broker subcommands, so a produce run and the consume run that
//! checks it are spelled the same way, and `BaselineOpts` for `baseline`,
//! which talks to no broker.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Messages a produce or e2e run sends when neither `--messages` nor
/// `--duration` is given.
pub const DEFAULT_MESSAGES: u64 = 1_000_000;

/// 2^20 bytes: the unit of `--bytes` and the block `baseline` writes and sends.
pub const MIB: u64 = 1 << 20;
/// Bytes `baseline` writes to disk without `--bytes`.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;
/// Bytes `baseline` sends over loopback TCP without `--bytes` (more than it
/// writes: loopback is faster, and a short transfer is mostly ramp-up).
pub const DEFAULT_TCP_BYTES: u64 = 4 << 30;

/// `sluice-bench`: an rdkafka load generator for any Kafka-compatible broker.
#[derive(Parser, Debug)]
#[command(name = "sluice-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to measure.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Produce messages; latency is send to delivery report.
    Produce(Opts),
    /// Read the topic from the beginning; verify count and per-partition order.
    Consume(Opts),
    /// Produce and consume at once; latency is send to receipt by the consumer.
    E2e(Opts),
    /// Metadata requests for the topic, one at a time (`--messages`, 100 by
    /// default); latency is request to parsed answer.
    Metadata(Opts),
    /// Time a consumer group over the topic to settle: `--members`
    /// consumers join (until their assignments cover every partition),
    /// then one leaves (until the rest cover them again).
    Rebalance(Opts),
    /// Run the named scenarios of the benchmark table, each against a
    /// fresh broker this command starts, and print the table with each
    /// target met or not.
    Suite(crate::suite::SuiteOpts),
    /// Measure this machine's limits to read the broker's figures against:
    /// O_DIRECT write bandwidth, 4 KiB write + fdatasync latency, loopback
    /// TCP bandwidth.
    Baseline(BaselineOpts),
}

impl Command {
    /// The subcommand's name, as printed in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Produce(_) => "produce",
            Command::Consume(_) => "consume",
            Command::E2e(_) => "e2e",
            Command::Metadata(_) => "metadata",
            Command::Rebalance(_) => "rebalance",
            Command::Suite(_) => "suite",
            Command::Baseline(_) => "baseline",
        }
    }
}

/// Flags common to all subcommands (each ignores those it has no use for).
#[derive(Args, Debug, Clone)]
pub struct Opts {
    /// Broker to bootstrap from.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// Topic to produce to or consume from.
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,
    /// A librdkafka setting for every client of the run (repeatable), as
    /// kcat's -X: `--client-config security.protocol=SASL_SSL`.
    #[arg(long = "client-config", value_name = "KEY=VALUE")]
    pub client_configs: Vec<String>,
    /// Partitions of the topic when `--create` creates it.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Create the topic first (an existing topic is not an error).
    #[arg(long)]
    pub create: bool,
    /// A config of the topic `--create` creates (`retention.bytes=-1`);
    /// repeatable.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_configs: Vec<String>,
    /// Stop after this many messages (produce/e2e default: 1,000,000;
    /// consume default: everything below the high watermarks at start).
    #[arg(long, conflicts_with = "duration", value_name = "N")]
    pub messages: Option<u64>,
    /// Stop after this many seconds instead of a message count.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Payload size in bytes (at least the 24-byte header).
    #[arg(long, default_value_t = 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(crate::payload::HEADER_LEN as i64..))]
    pub size: u32,
    /// Producer threads (each its own rdkafka producer).
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub producers: u32,
    /// Acknowledgements the producer waits for.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// linger.ms: how long the producer waits to fill a batch.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub linger_ms: u64,
    /// batch.size: bytes per partition batch (librdkafka caps it at message.max.bytes).
    #[arg(long, default_value_t = 1_000_000, value_name = "BYTES")]
    pub batch_bytes: u64,
    /// Compression codec of produced batches.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// enable.idempotence (producer id and sequences; implies acks=all).
    #[arg(long)]
    pub idempotence: bool,
    /// Transactional produce: each producer gets a transactional id and
    /// commits a transaction every this many messages (its last one at
    /// the end); the run's time includes the commits.
    #[arg(long, value_name = "MESSAGES")]
    pub transaction_messages: Option<u64>,
    /// Open loop: offer this many messages/s in total (spread over the
    /// producers), latency measured from each message's scheduled time.
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<f64>,
    /// Consumers in the group (`rebalance`).
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub members: u32,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Messages(u64),
    Duration(Duration),
    /// Neither flag given: the subcommand's default.
    Default,
}

impl Opts {
    /// `--messages` or `--duration` (clap rejects both at once).
    pub fn limit(&self) -> Limit {
        match (self.messages, self.duration) {
            (Some(n), _) => Limit::Messages(n),
            (None, Some(s)) => Limit::Duration(Duration::from_secs_f64(s.max(0.0))),
            (None, None) => Limit::Default,
        }
    }

    /// Checks clap cannot express; the message says which flag is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.duration {
            if !(s.is_finite() && s > 0.0) {
                return Err(format!(
                    "--duration must be a positive number of seconds, got {s}"
                ));
            }
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--rate must be a positive number of messages/s, got {r}"
                ));
            }
        }
        Ok(())
    }
}

/// Flags of `baseline`.
#[derive(Args, Debug, Clone)]
pub struct BaselineOpts {
    /// Directory for the disk measurements' scratch file (created if
    /// missing; everything created is removed afterwards). Use the file
    /// system of the broker's data directory.
    #[arg(long, default_value = "target/baseline", value_name = "DIR")]
    pub dir: PathBuf,
    /// Bytes written to disk and sent over loopback TCP, with an optional
    /// K, M or G suffix (2^10, 2^20, 2^30), rounded down to whole MiB
    /// [default: 1G written, 4G sent].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub bytes: Option<u64>,
    /// fdatasync latency samples, each a 4 KiB O_DIRECT write then fdatasync.
    #[arg(long, default_value_t = 2000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub syncs: u64,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl BaselineOpts {
    /// Bytes the disk bandwidth measurement writes: whole MiB.
    pub fn disk_bytes(&self) -> u64 {
        self.bytes.unwrap_or(DEFAULT_DISK_BYTES)
    }

    /// Bytes the loopback TCP measurement sends: whole MiB.
    pub fn tcp_bytes(&self) -> u64 {
        self.bytes.unwrap_or(DEFAULT_TCP_BYTES)
    }
}

/// `--bytes`: digits with an optional K, M or G suffix (powers of 2, `KiB`
/// style spellings and lower case accepted), rounded down to whole MiB
/// because the disk is written in 1 MiB direct-I/O blocks; at least 1 MiB.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a byte count such as 1073741824, 512M or 4GiB");
    let lower = s.trim().to_ascii_lowercase();
    // "4gib" -> "4g"; an "ib" with no k, m or g before it is rejected below.
    let number = lower.strip_suffix("ib").unwrap_or(&lower);
    let (digits, unit) = match number.as_bytes().last() {
        Some(b'k') => (&number[..number.len() - 1], 1u64 << 10),
        Some(b'm') => (&number[..number.len() - 1], 1 << 20),
        Some(b'g') => (&number[..number.len() - 1], 1 << 30),
        _ if number.len() == lower.len() => (number, 1),
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_mul(unit)
        .ok_or_else(|| format!("{s:?} is more bytes than fit in 64 bits"))?;
    if bytes < MIB {
        return Err(format!("{s:?} is below the 1 MiB block size"));
    }
    Ok(bytes / MIB * MIB)
}

/// `acks`: 0, 1 or all.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    /// The librdkafka `acks` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// `compression.type` of produced batches.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluice-bench").chain(args.iter().copied()))
    }

    /// The flags of a broker subcommand.
    fn broker_opts(command: &Command) -> Option<&Opts> {
        match command {
            Command::Produce(o)
            | Command::Consume(o)
            | Command::E2e(o)
            | Command::Metadata(o)
            | Command::Rebalance(o) => Some(o),
            Command::Baseline(_) | Command::Suite(_) => None,
        }
    }

    fn opts(args: &[&str]) -> Opts {
        broker_opts(&parse(args).unwrap().command).unwrap().clone()
    }

    #[test]
    fn defaults() {
        let cli = parse(&["produce"]).unwrap();
        assert_eq!(cli.command.name(), "produce");
        let o = broker_opts(&cli.command).unwrap();
        assert_eq!(o.bootstrap, "127.0.0.1:9092");
        assert_eq!(o.topic, "sluice-bench");
        assert_eq!(o.partitions, 6);
        assert!(!o.create && !o.idempotence && !o.json);
        assert_eq!(o.limit(), Limit::Default);
        assert_eq!(o.size, 1024);
        assert_eq!(o.producers, 1);
        assert_eq!(o.acks, Acks::All);
        assert_eq!(o.linger_ms, 5);
        assert_eq!(o.batch_bytes, 1_000_000);
        assert_eq!(o.compression, Compression::None);
        assert_eq!(o.rate, None);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn subcommands() {
        assert_eq!(parse(&["consume"]).unwrap().command.name(), "consume");
        assert_eq!(parse(&["e2e"]).unwrap().command.name(), "e2e");
        assert!(parse(&["bogus"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn acks_values() {
        assert_eq!(opts(&["produce", "--acks", "0"]).acks, Acks::None);
        assert_eq!(opts(&["produce", "--acks", "1"]).acks, Acks::Leader);
        assert_eq!(opts(&["produce", "--acks", "all"]).acks, Acks::All);
        assert_eq!(opts(&["produce", "--acks=-1"]).acks, Acks::All);
        assert_eq!(Acks::None.as_config(), "0");
        assert_eq!(Acks::Leader.as_config(), "1");
        assert_eq!(Acks::All.as_config(), "all");
        assert!(parse(&["produce", "--acks", "2"]).is_err());
    }

    #[test]
    fn compression_values() {
        for (flag, want) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let c = opts(&["produce", "--compression", flag]).compression;
            assert_eq!(c, want);
            assert_eq!(c.as_config(), flag);
        }
        assert!(parse(&["produce", "--compression", "brotli"]).is_err());
    }

    #[test]
    fn messages_or_duration() {
        assert_eq!(
            opts(&["produce", "--messages", "500"]).limit(),
            Limit::Messages(500)
        );
        assert_eq!(
            opts(&["e2e", "--duration", "2.5"]).limit(),
            Limit::Duration(Duration::from_millis(2500))
        );
        let err = parse(&["produce", "--messages", "5", "--duration", "3"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(opts(&["produce", "--duration", "0"]).validate().is_err());
        assert!(opts(&["produce", "--duration=-1"]).validate().is_err());
    }

    #[test]
    fn other_flags() {
        let o = opts(&[
            "e2e",
            "--bootstrap",
            "h:1",
            "--topic",
            "t",
            "--partitions",
            "12",
            "--create",
            "--size",
            "100",
            "--producers",
            "4",
            "--linger-ms",
            "0",
            "--batch-bytes",
            "65536",
            "--idempotence",
            "--rate",
            "20000",
            "--json",
        ]);
        assert_eq!((o.bootstrap.as_str(), o.topic.as_str()), ("h:1", "t"));
        assert_eq!((o.partitions, o.size, o.producers), (12, 100, 4));
        assert_eq!((o.linger_ms, o.batch_bytes), (0, 65536));
        assert!(o.create && o.idempotence && o.json);
        assert_eq!(o.rate, Some(20000.0));
        assert!(o.validate().is_ok());
        assert!(opts(&["produce", "--rate", "0"]).validate().is_err());
        assert!(parse(&["produce", "--size", "8"]).is_err());
        assert!(parse(&["produce", "--partitions", "0"]).is_err());
        assert!(parse(&["produce", "--producers", "0"]).is_err());
    }

    fn baseline(args: &[&str]) -> BaselineOpts {
        match parse(&[&["baseline"], args].concat()).unwrap().command {
            Command::Baseline(o) => o,
            other => panic!("parsed as {}", other.name()),
        }
    }

    #[test]
    fn baseline_defaults_and_flags() {
        let cli = parse(&["baseline"]).unwrap();
        assert_eq!(cli.command.name(), "baseline");
        assert!(broker_opts(&cli.command).is_none());
        let o = baseline(&[]);
        assert_eq!(o.dir, PathBuf::from("target/baseline"));
        assert_eq!(o.bytes, None);
        assert_eq!((o.disk_bytes(), o.tcp_bytes()), (1 << 30, 4 << 30));
        assert_eq!(o.syncs, 2000);
        assert!(!o.json);

        let o = baseline(&[
            "--dir", "/data", "--bytes", "256M", "--syncs", "10", "--json",
        ]);
        assert_eq!(o.dir, PathBuf::from("/data"));
        assert_eq!((o.disk_bytes(), o.tcp_bytes()), (256 << 20, 256 << 20));
        assert_eq!(o.syncs, 10);
        assert!(o.json);

        assert!(parse(&["baseline", "--syncs", "0"]).is_err());
        assert!(parse(&["baseline", "--bytes", "1K"]).is_err());
        // Broker flags belong to the broker subcommands only.
        assert!(parse(&["baseline", "--topic", "t"]).is_err());
    }

    #[test]
    fn byte_counts() {
        for (arg, want) in [
            ("1048576", MIB),
            ("3000000", 2 * MIB),
            ("1024k", MIB),
            ("1024KiB", MIB),
            ("512M", 512 * MIB),
            ("512mib", 512 * MIB),
            (" 4G ", 4 << 30),
            ("4GiB", 4 << 30),
        ] {
            assert_eq!(parse_bytes(arg), Ok(want), "{arg}");
        }
        for bad in [
            "",
            "G",
            "1.5G",
            "1GB",
            "1ib",
            "-1G",
            "1T",
            "1048575",
            "0",
            "99999999999G",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} accepted");
        }
    }
}
