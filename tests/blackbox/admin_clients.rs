//! Independent admin clients against the real broker: `tests/clients/
//! admin_configs.py` drives IncrementalAlterConfigs, AlterConfigs,
//! DescribeConfigs, DeleteRecords and authorized operations (KIP-430)
//! through confluent-kafka (librdkafka's admin API) and DescribeLogDirs
//! through kafka-python, then the overrides must survive `kill -9`.
//!
//! The clients live in a virtual environment (`.ci/run` makes it):
//! `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r
//! tests/clients/requirements.txt`; `SLUICE_PYTHON` names another
//! interpreter.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{topic_config, Broker, DataDir};

/// The interpreter with the clients installed.
pub fn python() -> PathBuf {
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

/// Runs `tests/clients/SCRIPT` with `args` against `broker`; it must exit 0
/// having printed `ok_line`.
pub fn run_client_script<A: AsRef<std::ffi::OsStr>>(
    broker: &Broker,
    script: &str,
    args: &[A],
    ok_line: &str,
) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(ok_line),
        "{script} failed ({}):\n{stdout}\n{stderr}\nbroker:\n{}",
        out.status,
        broker.log()
    );
}

#[test]
fn topic_configs_delete_records_and_log_dirs_through_admin_clients() {
    let dir = DataDir::new("admin-clients");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    run_client_script(
        &broker,
        "admin_configs.py",
        &[broker.addr()],
        "admin clients: ok",
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

/// A DescribeConfigs resource with an empty key list asks for every
/// config, as Kafka reads it (and as kafka-protocol's default resource
/// sends); before, it was answered with no config at all.
#[test]
fn an_empty_key_list_describes_every_config() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    let dir = DataDir::new("describe-empty-keys");
    let broker = Broker::start(dir.path(), 1, &[]);
    crate::harness::create_topic(&broker, "t", 1, &[("retention.ms", "1000")]);
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str("t"))
            .with_configuration_keys(Some(vec![]))]);
    let response = crate::raw::RawClient::connect(broker.addr()).call(4, &request);
    let configs = &response.results[0].configs;
    assert!(configs.len() > 10, "{configs:?}");
    let retention = configs.iter().find(|c| c.name.as_str() == "retention.ms");
    assert_eq!(
        retention.and_then(|c| c.value.as_ref()).map(|v| v.as_str()),
        Some("1000")
    );
}

/// Found by the request fuzzer: IncrementalAlterConfigs took a 32 KB
/// config value, and from then on every DescribeConfigs v0-3 of the topic
/// (16-bit string lengths) could not be encoded and closed its
/// connection. Such a value is refused with INVALID_CONFIG.
#[test]
fn a_config_value_old_answers_cannot_carry_is_refused() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
    use kafka_protocol::protocol::StrBytes;
    let dir = DataDir::new("config-value-too-long");
    let broker = Broker::start(dir.path(), 1, &[]);
    crate::harness::create_topic(&broker, "t", 1, &[]);
    let mut client = crate::raw::RawClient::connect(broker.addr());
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("message.format.version"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string("x".repeat(32_768))))]),
    ]);
    let response = client.call(1, &alter);
    assert_eq!(response.responses[0].error_code, 40, "INVALID_CONFIG");
    let describe =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configuration_keys(None)]);
    let described = client.call(1, &describe);
    assert_eq!(described.results[0].error_code, 0);
}
