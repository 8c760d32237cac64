//! `sluice-bench suite` end to end, short: every scenario runs against the
//! real broker it starts (1 s rows, 1% of the data volumes), the suite exits
//! 0 only if every run passed (the consumes verified count and order, the
//! recovery read back every acknowledged message after kill -9), and the
//! table carries a figure for every target. No figure is judged here: the
//! full run and its numbers are in README.md.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_whole_table_is_one_command() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_sluice-bench"));
    let broker = bench.with_file_name("sluice");
    assert!(
        broker.exists(),
        "{} is built by `cargo test --workspace`",
        broker.display()
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suite");
    let out = Command::new(&bench)
        .args([
            "suite",
            "--duration",
            "1",
            "--scale",
            "0.01",
            "--port",
            "19477",
        ])
        .arg("--broker")
        .arg(&broker)
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("run sluice-bench suite");
    let table = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "suite failed:\n{table}\n{log}");
    for row in [
        "machine: O_DIRECT read MB/s",
        "1. broker CPU-s per GB",
        "2. produce p99 / p99.9 ms",
        "2. the same, --shards 1",
        "3. consume from the fetch buffer",
        "3. consume from disk",
        "4. wal-bench 1 MiB appends",
        "5. broker peak RSS MiB under produce",
        "6. produce to 10,000 partitions",
        "6. Metadata of 10,000 partitions",
        "6. 10 members join a group",
        "6. one member leaves",
        "7. 1,000 producers",
        "recovery after kill -9",
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{table}"));
        let median = line.split('|').nth(3).unwrap_or("").trim();
        assert!(
            median
                .split(" / ")
                .all(|m| m.parse::<f64>().is_ok_and(f64::is_finite)),
            "row {row:?} has no figure: {line}"
        );
    }
    assert!(
        !dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none(),
        "the suite leaves no data behind in {}",
        dir.display()
    );
}
