//! sluice-bench: `produce | consume | e2e` against any Kafka-compatible
//! broker. See `sluice-bench --help`; the logic lives in the library
//! (`benches/src/lib.rs`).

use clap::Parser;
use sluice_bench::args::{Cli, Command};
use sluice_bench::{client, consume, e2e, payload, produce};

fn main() {
    let cli = Cli::parse();
    let o = cli.command.opts();
    if let Err(e) = o.validate() {
        eprintln!("sluice-bench: {e}");
        std::process::exit(2);
    }
    let run_id = payload::new_run_id();
    let result = (|| {
        if o.create {
            client::create_topic(o)?;
        }
        match &cli.command {
            Command::Produce(o) => produce::report(o, run_id),
            Command::Consume(o) => consume::run(o, run_id),
            Command::E2e(o) => e2e::run(o, run_id),
        }
    })();
    match result {
        Ok(report) => {
            println!("{}", report.text());
            if o.json {
                println!("{}", report.json());
            }
            if report.verification.as_ref().is_some_and(|(ok, _)| !ok) {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("sluice-bench {}: {e}", cli.command.name());
            std::process::exit(1);
        }
    }
}
