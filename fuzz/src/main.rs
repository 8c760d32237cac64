//! `sluice-fuzz`: fuzz a running broker from the command line and print a
//! summary (requests sent, APIs and versions covered, closed connections,
//! anomalies, crashes). Exits 1 when the broker stopped answering, 2 when
//! the run could not start.

use std::time::Duration;

use clap::Parser;

/// Sends mutated requests of every supported API and version to a broker
/// and checks it keeps answering.
#[derive(Parser, Debug)]
#[command(name = "sluice-fuzz")]
struct Args {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Seed (default: the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Requests to send (default: unlimited with --duration, else 10000).
    #[arg(long)]
    requests: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// First request index; with --requests 1, replays one request.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Parallel connections.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Mutation class (prefix) not to generate, e.g.
    /// `createpartitions.count-negative`, `produce.records-zstd-bomb`,
    /// `fetch.bytes`, `frame-`. Repeatable.
    #[arg(long)]
    skip: Vec<String>,
    /// The broker's pid: a dead process is reported as such.
    #[arg(long)]
    pid: Option<u32>,
    /// Milliseconds a fuzzed request may take to be answered.
    #[arg(long, default_value_t = 3000)]
    response_timeout_ms: u64,
    /// Seconds between progress lines (0: none).
    #[arg(long, default_value_t = 10)]
    progress: u64,
    /// Print the requests (index, api, version, classes, frame in hex)
    /// instead of sending them; set-up still runs, for the topic ids.
    #[arg(long)]
    dump: bool,
}

fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut cfg = sluice_fuzz::Config::new(&args.bootstrap, seed);
    cfg.requests = match (args.requests, args.duration) {
        (None, None) => Some(10_000),
        (r, _) => r,
    };
    cfg.duration = args.duration.map(Duration::from_secs);
    cfg.from = args.from;
    cfg.workers = args.workers;
    cfg.skip = args.skip.iter().map(|s| s.to_lowercase()).collect();
    cfg.pid = args.pid;
    cfg.response_timeout = Duration::from_millis(args.response_timeout_ms);
    cfg.progress = (args.progress > 0).then(|| Duration::from_secs(args.progress));
    eprintln!(
        "[sluice-fuzz] seed {seed}, broker {}, skip {:?}",
        args.bootstrap, cfg.skip
    );
    if args.dump {
        match sluice_fuzz::run::dump(&cfg) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("[sluice-fuzz] could not start: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    match sluice_fuzz::run(&cfg) {
        Ok(report) => {
            print!("{}", report.summary());
            if let Some(f) = &report.failure {
                println!(
                    "replay: sluice-fuzz --bootstrap {} --seed {seed} --from {} --requests 1 --workers 1",
                    args.bootstrap, f.index
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("[sluice-fuzz] could not start: {e}");
            std::process::exit(2);
        }
    }
}
