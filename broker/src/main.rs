//! The `sluice` command: `sluice serve` runs the broker, `sluice admin`
//! manages topics and groups of a running broker, `sluice wal inspect`
//! reads WAL segments directly for an operator.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sluice::config::ServeArgs;

/// Lazily mapped huge allocations (see `sluice::alloc`), and direct-I/O
/// buffers beyond glommio's registered memory reused per shard (see
/// `sluice_wal_core::buffer_pool`).
#[global_allocator]
static ALLOC: sluice_wal_core::buffer_pool::PooledDmaAlloc<sluice::alloc::LazyLargeAlloc> =
    sluice_wal_core::buffer_pool::PooledDmaAlloc::new(sluice::alloc::LazyLargeAlloc);

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a Kafka-compatible, thread-per-core message broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    // A flag given twice takes the last value: config-file flags go first.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Topics, groups and the cluster of a running broker (any
    /// Kafka-compatible one), through the Kafka protocol.
    Admin(Box<sluice::admin::AdminArgs>),
    /// Sets a user's SCRAM credentials in the data directory of a broker
    /// that is not running: the first user, before any client can
    /// authenticate to add others (AlterUserScramCredentials). Only the
    /// salted and hashed credential is stored.
    ScramCredential(Box<ScramCredentialArgs>),
    /// Tools that read the write-ahead log directly.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Print each segment (frames, byte range, checksum verdict) and totals.
    /// DIR is one shard's WAL directory or a whole data directory.
    Inspect {
        /// WAL directory (segments) or data directory (every shard's WAL).
        dir: std::path::PathBuf,
        /// List every frame too.
        #[arg(long)]
        frames: bool,
    },
}

#[derive(clap::Args)]
struct ScramCredentialArgs {
    /// The broker's data directory.
    #[arg(long, default_value = "data")]
    data_dir: std::path::PathBuf,
    /// The user.
    #[arg(long)]
    user: String,
    /// A file whose first line is the password (a password on the command
    /// line would show in the process list and shell history).
    #[arg(long)]
    password_file: std::path::PathBuf,
    /// The mechanisms to set: SCRAM-SHA-256, SCRAM-SHA-512 or both.
    #[arg(long, default_value = "SCRAM-SHA-256,SCRAM-SHA-512")]
    mechanisms: String,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    iterations: u32,
}

fn scram_credential(args: &ScramCredentialArgs) -> Result<(), String> {
    use sluice::security::scram::Mechanism;
    let text = std::fs::read_to_string(&args.password_file)
        .map_err(|e| format!("reading {}: {e}", args.password_file.display()))?;
    let password = text.lines().next().unwrap_or("");
    let mechanisms = args
        .mechanisms
        .split(',')
        .map(|m| {
            Mechanism::from_name(m.trim())
                .ok_or_else(|| format!("'{m}' is not SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    sluice::security::bootstrap(
        &args.data_dir,
        &args.user,
        password,
        &mechanisms,
        args.iterations,
    )?;
    eprintln!(
        "SCRAM credentials of user '{}' set ({}) in {}",
        args.user,
        args.mechanisms,
        args.data_dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        if let Some(path) = &args.config {
            // Re-parse with the file's settings first, so command-line flags win.
            let file_flags = match sluice::config::config_flags(path) {
                Ok(flags) => flags,
                Err(e) => {
                    eprintln!("sluice: error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let at = argv
                .iter()
                .position(|a| a == "serve")
                .map_or(argv.len(), |i| i + 1);
            argv.splice(at..at, file_flags.into_iter().map(Into::into));
            cli = Cli::parse_from(argv);
        }
    }
    sluice::logging::init();
    let result = match cli.command {
        Command::Serve(args) => {
            sluice::crash::install_panic_hook();
            sluice::server::serve(*args)
        }
        Command::Admin(args) => sluice::admin::run(&args),
        Command::ScramCredential(args) => scram_credential(&args),
        Command::Wal {
            command: WalCommand::Inspect { dir, frames },
        } => sluice::inspect::inspect(&dir, frames),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sluice: error: {message}");
            ExitCode::FAILURE
        }
    }
}
