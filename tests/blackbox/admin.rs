//! `sluice admin` against a running broker: topics created, listed,
//! described (offsets and config overrides), altered and deleted; groups
//! listed and described with their committed offsets and lag; errors by
//! name; `--json` for scripts.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{produce_range, producer, watermarks, Broker, DataDir};
use crate::retention::commit;

/// Runs `sluice admin --bootstrap <broker> ARGS`: (success, stdout, stderr).
fn admin(broker: &Broker, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["admin", "--bootstrap", broker.addr()])
        .args(args)
        .output()
        .expect("run sluice admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice admin --json ARGS`, parsed; panics unless it succeeds.
fn admin_json(broker: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = admin(broker, &all);
    assert!(ok, "sluice admin {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn admin_manages_topics_and_shows_groups_with_their_lag() {
    let dir = DataDir::new("admin");
    let broker = Broker::start(dir.path(), 2, &[]);

    let (ok, out, err) = admin(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "created orders (2 partitions)\n");
    let (ok, _, err) = admin(&broker, &["topic", "create", "orders", "--partitions", "2"]);
    assert!(!ok);
    assert!(err.contains("TopicAlreadyExists (36)"), "{err}");
    let (ok, _, err) = admin(
        &broker,
        &["topic", "create", "bad", "--config", "retention.ms=soon"],
    );
    assert!(!ok);
    assert!(err.contains("InvalidConfig (40)"), "{err}");

    let (ok, out, _) = admin(&broker, &["topic", "list"]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.split_whitespace().eq(["orders", "2"])),
        "{out}"
    );
    assert_eq!(
        admin_json(&broker, &["topic", "list"]),
        serde_json::json!([{"topic": "orders", "partitions": 2}])
    );

    let p = producer(&broker, &[]);
    produce_range(&p, "orders", 2, 0..20, 50);
    assert!(p.flush(Duration::from_secs(30)));
    let hw: Vec<i64> = (0..2).map(|i| watermarks(&broker, "orders", i).1).collect();
    assert_eq!(hw, [10, 10]);

    let (ok, err) = {
        let (ok, _, err) = admin(
            &broker,
            &[
                "topic",
                "alter-config",
                "orders",
                "cleanup.policy=delete",
                "--delete",
                "retention.ms",
            ],
        );
        (ok, err)
    };
    assert!(ok, "{err}");
    let described = admin_json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(
        described["partitions"][1]["high_watermark"], 10,
        "{described}"
    );
    assert_eq!(described["partitions"][0]["log_start"], 0, "{described}");
    assert_eq!(
        described["config_overrides"],
        serde_json::json!({"cleanup.policy": "delete"}),
        "{described}"
    );

    commit(&broker, "billing", "orders", &[(0, 4), (1, 10)]);
    let (ok, out, _) = admin(&broker, &["group", "list"]);
    assert!(ok && out.contains("billing"), "{out}");
    let (ok, out, err) = admin(&broker, &["group", "describe", "billing"]);
    assert!(ok, "{err}");
    assert!(out.contains("total lag: 6"), "{out}");
    let group = admin_json(&broker, &["group", "describe", "billing"]);
    assert_eq!(group["lag"], 6, "{group}");
    assert_eq!(group["offsets"][0]["lag"], 6, "{group}");
    assert_eq!(group["offsets"][1]["lag"], 0, "{group}");

    let info = admin_json(&broker, &["cluster", "info"]);
    assert_eq!(info["brokers"].as_array().map(Vec::len), Some(1), "{info}");

    let (ok, out, err) = admin(&broker, &["topic", "delete", "orders"]);
    assert!(ok, "{err}");
    assert_eq!(out, "deleted orders\n");
    assert_eq!(
        admin_json(&broker, &["topic", "list"]),
        serde_json::json!([])
    );
    let (ok, _, err) = admin(&broker, &["topic", "describe", "orders"]);
    assert!(!ok);
    assert!(err.contains("UnknownTopicOrPartition (3)"), "{err}");
}
