//! The metrics listener: `/metrics` agrees with what the test did (records
//! in = records acknowledged, lag = what the test left uncommitted) and
//! passes `promtool check metrics`; OpenMetrics when asked; the status page
//! shows the same in a headless Chromium; `/health` and `/ready` answer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{
    consume_to_end, create_topic, free_port, produce_range, producer, watermarks, Broker, DataDir,
};
use crate::retention::commit;

/// GETs `path` with `accept` (if any); (status, body).
fn get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: sluice\r\n{accept}\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

/// Samples of a Prometheus text page: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn metrics_and_the_status_page_agree_with_what_clients_did() {
    let dir = DataDir::new("metrics");
    let metrics = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(dir.path(), 2, &["--metrics-listen", &metrics]);
    assert_eq!(get(&metrics, "/ready", None), (200, "ready\n".into()));
    assert_eq!(get(&metrics, "/health", None), (200, "ok\n".into()));
    assert_eq!(get(&metrics, "/nothing", None).0, 404);

    create_topic(&broker, "mt", 3, &[]);
    let p = producer(&broker, &[("linger.ms", "2")]);
    produce_range(&p, "mt", 3, 0..3_000, 100);
    // Scraped while the producer still has messages in flight.
    let (status, during) = get(&metrics, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        during.contains("sluice_topic_records_in_total{topic=\"mt\"}"),
        "{during}"
    );
    assert!(p.flush(Duration::from_secs(30)));
    let acked = p.acked().len() as f64;
    assert_eq!(acked, 3_000.0);
    let consumed = consume_to_end(&broker, "mt", Duration::from_secs(30));
    assert_eq!(consumed.len(), 3_000);
    commit(&broker, "mg", "mt", &[(0, 100), (1, 200)]);
    let hw: Vec<i64> = (0..2).map(|p| watermarks(&broker, "mt", p).1).collect();

    // One answer with an error code: a fetch past the end.
    let mut raw = crate::raw::RawClient::connect(broker.addr());
    assert_eq!(
        raw.fetch("mt", 0, 1_000_000).error_code,
        1,
        "OFFSET_OUT_OF_RANGE"
    );

    let (status, text) = get(&metrics, "/metrics", None);
    assert_eq!(status, 200);
    let s = samples(&text);
    let value = |key: &str| {
        *s.get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    };
    assert_eq!(value(r#"sluice_topic_records_in_total{topic="mt"}"#), acked);
    assert!(value(r#"sluice_topic_records_out_total{topic="mt"}"#) >= acked);
    assert_eq!(value(r#"sluice_topic_partitions{topic="mt"}"#), 3.0);
    assert_eq!(
        value(r#"sluice_partition_high_watermark{topic="mt",partition="0"}"#),
        hw[0] as f64
    );
    assert_eq!(
        value(r#"sluice_group_lag{group="mg",topic="mt",partition="0"}"#),
        (hw[0] - 100) as f64
    );
    assert_eq!(
        value(r#"sluice_group_lag{group="mg",topic="mt",partition="1"}"#),
        (hw[1] - 200) as f64
    );
    assert_eq!(
        value(r#"sluice_group_topic_lag{group="mg",topic="mt"}"#),
        (hw[0] + hw[1] - 300) as f64
    );
    assert_eq!(value("sluice_shards"), 2.0);
    let produces = value(r#"sluice_requests_total{api="Produce"}"#);
    assert!(produces > 0.0);
    assert_eq!(
        value(r#"sluice_request_duration_seconds_count{api="Produce"}"#),
        produces,
        "every produce answered and timed"
    );
    assert!(
        value(r#"sluice_wal_appends_total{shard="0"}"#)
            + value(r#"sluice_wal_appends_total{shard="1"}"#)
            >= 1.0
    );
    assert!(value("sluice_connections_accepted_total") >= 1.0);
    assert_eq!(
        value(r#"sluice_errors_total{api="Fetch",error="OffsetOutOfRange"}"#),
        1.0
    );
    assert!(value(r#"sluice_shard_busy_seconds_total{shard="0"}"#) > 0.0);
    // Produce to 3 partitions over 2 shards hops from the receiving shard.
    let hops = s
        .iter()
        .filter(|(k, _)| k.starts_with("sluice_shard_calls_total{"))
        .map(|(_, v)| v)
        .sum::<f64>();
    assert!(hops >= 1.0, "no cross-shard calls counted:\n{text}");

    // The page is valid for Prometheus' own checker.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The status page, as a real browser shows it.
    let page = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &format!("http://{metrics}/"),
        ])
        .output()
        .expect("chromium (Debian's chromium package; .ci/run installs it)");
    let dom = String::from_utf8_lossy(&page.stdout);
    assert!(dom.contains("2 of 2 shards answering"), "{dom}");
    assert!(
        dom.contains(r#"<tr data-topic="mt"><td>mt</td><td>3</td>"#),
        "{dom}"
    );
    let lag = format!(
        r#"<tr data-group="mg" data-topic="mt"><td>mg</td><td>Empty</td><td>0</td><td>mt</td><td>2</td><td class="lag">{}</td></tr>"#,
        hw[0] + hw[1] - 300
    );
    assert!(dom.contains(&lag), "no {lag} in:\n{dom}");

    // deploy/: the scrape config is valid, and every metric the dashboard
    // asks for is on the page.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus.yml");
    let checked = std::process::Command::new("promtool")
        .args(["check", "config", config])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json")).unwrap();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("sluice_") {
                    asked += 1;
                    assert!(
                        text.lines().any(|l| l.starts_with(word)),
                        "the dashboard asks for {word}, which /metrics does not have"
                    );
                }
            }
        }
    }
    assert!(asked >= 12, "the dashboard asks for {asked} metrics");

    // OpenMetrics when the scraper asks for it.
    let (status, open) = get(
        &metrics,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    );
    assert_eq!(status, 200);
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE sluice_requests counter"), "{open}");
}

/// `/ready` answers 503 `recovering` while a shard recovers (a fail point
/// makes shard 1 wait 3 s first), and 200 once the broker is ready;
/// `/health` fails meanwhile too (the shard does not answer).
#[test]
fn ready_says_recovering_until_every_shard_has_recovered() {
    let dir = DataDir::new("metrics-ready");
    let metrics = format!("127.0.0.1:{}", free_port());
    let (path, listen) = (dir.path().to_path_buf(), metrics.clone());
    let starting = std::thread::spawn(move || {
        Broker::try_start_env(
            &path,
            2,
            &["--metrics-listen", &listen],
            &[("SLUICE_FAIL_POINT", "recovery-delay:1:3000")],
        )
    });
    let (mut recovering, mut unhealthy) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !starting.is_finished() && std::time::Instant::now() < deadline {
        if TcpStream::connect(&metrics).is_ok() {
            recovering |= get(&metrics, "/ready", None) == (503, "recovering\n".into());
            unhealthy |= get(&metrics, "/health", None).0 == 503;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let broker = starting.join().unwrap().expect("the broker starts");
    assert!(recovering, "/ready never said recovering");
    assert!(unhealthy, "/health never failed while a shard recovered");
    assert_eq!(get(&metrics, "/ready", None), (200, "ready\n".into()));
    assert_eq!(get(&metrics, "/health", None), (200, "ok\n".into()));
    drop(broker);
}
