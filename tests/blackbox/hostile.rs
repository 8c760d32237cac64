//! Hostile input: a request that claims a huge array must close its
//! connection, not the broker (kafka-protocol reserves memory for the
//! claimed count before checking the bytes are there; the broker maps such
//! reservations lazily); and a second broker must refuse an address a
//! first one listens on (SO_REUSEPORT would otherwise let both share it).

use kafka_protocol::messages::ApiVersionsRequest;

use std::time::Duration;

use crate::harness::{wait_until, Broker, DataDir};
use crate::raw::{RawClient, NONE};

/// A 14-byte request body for `api_key`/`version` with header v1 and a
/// first field that is an array of 2^31 - 1 elements, and nothing after it.
fn huge_array_request(api_key: i16, version: i16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&api_key.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // the array count
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn a_request_claiming_a_huge_array_closes_only_its_connection() {
    let dir = DataDir::new("hostile-array");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    // Metadata v4 (topics), CreateTopics v2 (topics), DeleteTopics v1 (names),
    // ListOffsets v1 (replica id first, then topics: the count lands on the id,
    // so use DescribeConfigs v1 (resources) instead).
    for (api_key, version) in [(3i16, 4i16), (19, 2), (20, 1), (32, 1)] {
        let mut hostile = RawClient::connect(broker.addr());
        hostile.write_raw(&huge_array_request(api_key, version));
        assert!(
            hostile.try_read_frame().is_err(),
            "api {api_key} v{version}: the connection must be closed, not answered"
        );
        assert!(
            broker.is_running(),
            "api {api_key} v{version} brought the broker down:\n{}",
            broker.log()
        );
        let mut client = RawClient::connect(broker.addr());
        let versions = client.call(3, &ApiVersionsRequest::default());
        assert_eq!(
            versions.error_code, NONE,
            "broker still answers after api {api_key}"
        );
    }
}

#[test]
fn a_second_broker_refuses_an_address_in_use() {
    let first_dir = DataDir::new("addr-first");
    let first = Broker::start(first_dir.path(), 1, &[]);
    let second_dir = DataDir::new("addr-second");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            first.addr(),
            "--shards",
            "1",
            "--data-dir",
        ])
        .arg(second_dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sluice");
    let exited = wait_until(Duration::from_secs(20), || {
        matches!(second.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second broker started on {}", first.addr());
    }
    let status = second.wait().expect("exit status");
    assert!(!status.success(), "a second broker exited 0");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(err.contains("already listening"), "unclear error: {err}");
}
