//! sluice-bench: `produce | consume | e2e | metadata | rebalance` against any Kafka-compatible
//! broker, `baseline` for this machine's own limits, and `suite` for the
//! whole benchmark table against brokers it starts. See
//! `sluice-bench --help`; the logic lives in the library
//! (`benches/src/lib.rs`).

use clap::Parser;
use sluice_bench::args::{Cli, Command, Opts};
use sluice_bench::client::Result;
use sluice_bench::report::Report;
use sluice_bench::{baseline, client, consume, e2e, metadata, payload, produce, rebalance, suite};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Produce(o) => against_broker(o, produce::report),
        Command::Consume(o) => against_broker(o, consume::run),
        Command::E2e(o) => against_broker(o, e2e::run),
        Command::Metadata(o) => against_broker(o, metadata::run),
        Command::Rebalance(o) => {
            let members = o.members as usize;
            rebalance::measure(o, payload::new_run_id(), members).map(|r| Output {
                text: r.text(members),
                json: o.json.then(|| r.json(members)),
                passed: true,
            })
        }
        Command::Suite(o) => suite::run(o).map(|table| Output {
            passed: true,
            text: table,
            json: None,
        }),
        Command::Baseline(o) => baseline::run(o).map(|report| Output {
            text: report.text(),
            json: o.json.then(|| report.json()),
            passed: true,
        }),
    };
    match result {
        Ok(out) => {
            println!("{}", out.text);
            if let Some(json) = out.json {
                println!("{json}");
            }
            if !out.passed {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("sluice-bench {}: {e}", cli.command.name());
            std::process::exit(1);
        }
    }
}

/// What a run prints; a run that did not pass (failed verification) exits 1.
struct Output {
    text: String,
    json: Option<String>,
    passed: bool,
}

/// Runs a subcommand that talks to a broker: flags checked first (exit 2),
/// then the topic created if `--create` asks for it.
fn against_broker(o: &Opts, run: fn(&Opts, u64) -> Result<Report>) -> Result<Output> {
    if let Err(e) = o.validate() {
        eprintln!("sluice-bench: {e}");
        std::process::exit(2);
    }
    let run_id = payload::new_run_id();
    if o.create {
        client::create_topic(o)?;
    }
    let report = run(o, run_id)?;
    Ok(Output {
        text: report.text(),
        json: o.json.then(|| report.json()),
        passed: report.verification.as_ref().is_none_or(|(ok, _)| *ok),
    })
}
