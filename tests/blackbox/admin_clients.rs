//! Independent admin clients against the real broker: `tests/clients/
//! admin_configs.py` drives IncrementalAlterConfigs, AlterConfigs,
//! DescribeConfigs and DeleteRecords through confluent-kafka (librdkafka's
//! admin API) and DescribeLogDirs through kafka-python, then the overrides
//! must survive `kill -9`.
//!
//! The clients live in a virtual environment (`.ci/run` makes it):
//! `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r
//! tests/clients/requirements.txt`; `SLUICE_PYTHON` names another
//! interpreter.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{topic_config, Broker, DataDir};

/// The interpreter with the clients installed.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no {}: python3 -m venv target/pyenv && target/pyenv/bin/pip install -r \
         tests/clients/requirements.txt (or set SLUICE_PYTHON)",
        venv.display()
    );
    venv
}

#[test]
fn topic_configs_delete_records_and_log_dirs_through_admin_clients() {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/admin_configs.py");
    let dir = DataDir::new("admin-clients");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    let out = Command::new(python())
        .arg(&script)
        .arg(broker.addr())
        .output()
        .expect("run the admin client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("admin clients: ok"),
        "admin_configs.py failed ({}):\n{stdout}\n{stderr}\nbroker:\n{}",
        out.status,
        broker.log()
    );
    // What AlterConfigs left is durable.
    broker.kill9();
    broker.restart();
    assert_eq!(
        topic_config(&broker, "cfg", "retention.ms").as_deref(),
        Some("7200000")
    );
    assert_eq!(
        topic_config(&broker, "cfg", "message.format.version").as_deref(),
        Some("0.10.0")
    );
}
