//! Memory budgets (DESIGN.md, contracts): a Fetch holds no more than its
//! byte limits while it reads (KIP-74: the request's `max_bytes`, each
//! partition's limit and the broker's `--fetch-max-bytes`; only the first
//! batch of the first non-empty partition may pass them), a partition named
//! many times is read once, and a consumer whose `fetch.max.bytes` is
//! smaller than its `max.partition.fetch.bytes` still reads everything
//! (librdkafka's test 0082). ListOffsets by time reads a batch's records
//! as a stream under a cap, so a decompression bomb costs nothing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiVersionsRequest, FetchResponse};
use kafka_protocol::records::Compression;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::{consumer, create_topic, Broker, DataDir};
use crate::raw::{
    batch, fetch_request, hand_made_batch, put_varint, split_batches, topic_name, RawClient, Rec,
    FETCH_V, NONE,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Produces `count` single-record batches of `size` bytes to one partition.
fn fill(client: &mut RawClient, topic: &str, partition: i32, count: usize, size: usize) {
    let value = vec![b'x'; size];
    for _ in 0..count {
        let records = batch(
            &[Rec {
                key: None,
                value: Some(&value),
                timestamp: 1,
            }],
            Compression::None,
        );
        let answer = client.produce(topic, partition, records);
        assert_eq!(answer.error_code, NONE, "produce to {topic}/{partition}");
    }
}

/// One partition of a Fetch, from offset 0, up to `partition_max` bytes.
fn from_start(partition: i32, partition_max: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(0)
        .with_current_leader_epoch(-1)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(partition_max)
}

/// A Fetch from offset 0 of `partitions` (in this order, repeats allowed),
/// each with `partition_max` bytes, and `max_bytes` for the request.
fn fetch(
    client: &mut RawClient,
    topic: &str,
    partitions: &[i32],
    partition_max: i32,
    max_bytes: i32,
) -> FetchResponse {
    let parts = partitions
        .iter()
        .map(|&p| from_start(p, partition_max))
        .collect();
    let request = fetch_request(topic, 0, 0)
        .with_max_bytes(max_bytes)
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(parts)]);
    client.call(FETCH_V, &request)
}

fn records_of(response: &FetchResponse) -> Vec<(i32, Bytes)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.records.clone().unwrap_or_default()))
        .collect()
}

/// The broker's resident memory (0 once it is gone).
fn rss_bytes(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * KIB
}

/// The review's finding: one small Fetch naming a 30 MB partition 60 times
/// took the broker from 169 MB to 2.98 GB of RSS.
#[test]
fn a_partition_named_sixty_times_is_read_once_within_the_budget() {
    let dir = DataDir::new("fetch-repeat");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "big", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    fill(&mut client, "big", 0, 24, 1000 * KIB);
    let before = rss_bytes(broker.pid());
    let response = fetch(
        &mut client,
        "big",
        &[0; 60],
        30 * MIB as i32,
        4 * MIB as i32,
    );
    let after = rss_bytes(broker.pid());
    let records = records_of(&response);
    assert_eq!(records.len(), 1, "the partition is answered once");
    assert!(!records[0].1.is_empty() && records[0].1.len() <= 4 * MIB);
    assert!(
        after < before + 64 * MIB,
        "RSS grew from {before} to {after} bytes for one fetch"
    );
}

#[test]
fn later_partitions_are_cut_to_what_is_left_not_dropped() {
    let dir = DataDir::new("fetch-kip74");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "pair", 2, &[]);
    let mut client = RawClient::connect(broker.addr());
    fill(&mut client, "pair", 0, 3, 1000 * KIB);
    fill(&mut client, "pair", 1, 20, 100 * KIB);
    let max = (3 * MIB + 256 * KIB) as i32;
    let response = fetch(&mut client, "pair", &[0, 1], 8 * MIB as i32, max);
    let records = records_of(&response);
    assert_eq!(
        split_batches(&records[0].1).len(),
        3,
        "partition 0 fits whole"
    );
    let second = split_batches(&records[1].1).len();
    assert!(
        (1..20).contains(&second),
        "partition 1 cut to what is left, got {second} batches"
    );
    let total: usize = records.iter().map(|(_, r)| r.len()).sum();
    assert!(total <= max as usize, "{total} bytes for max_bytes {max}");

    // The first batch of the first non-empty partition may pass the
    // limits, and nothing else may join it.
    let response = fetch(&mut client, "pair", &[0, 1], 100, 100);
    let records = records_of(&response);
    assert_eq!(split_batches(&records[0].1).len(), 1);
    assert!(records[1].1.is_empty());
}

#[test]
fn the_broker_caps_every_fetch() {
    let dir = DataDir::new("fetch-cap");
    let cap = (2 * MIB).to_string();
    let broker = Broker::start(dir.path(), 1, &["--fetch-max-bytes", &cap]);
    create_topic(&broker, "capped", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    fill(&mut client, "capped", 0, 8, 700 * KIB);
    let response = fetch(
        &mut client,
        "capped",
        &[0],
        64 * MIB as i32,
        64 * MIB as i32,
    );
    let records = records_of(&response);
    assert_eq!(
        split_batches(&records[0].1).len(),
        2,
        "2 of 8 batches fit 2 MiB"
    );
}

/// librdkafka's test 0082: 30 messages of 900 KiB in each of 3 partitions,
/// `fetch.max.bytes` 1,000,000 and `max.partition.fetch.bytes` 20,000,000.
/// An answer larger than the client can take makes it disconnect and retry
/// forever; the broker must keep each answer within `fetch.max.bytes`.
#[test]
fn a_consumer_with_a_small_fetch_max_bytes_reads_everything() {
    const TOPIC: &str = "fetch-max";
    let dir = DataDir::new("fetch-0082");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 3, &[]);
    let mut client = RawClient::connect(broker.addr());
    for p in 0..3 {
        fill(&mut client, TOPIC, p, 30, 900 * KIB);
    }
    let consumer = consumer(
        &broker,
        &[
            ("fetch.max.bytes", "1000000"),
            ("max.partition.fetch.bytes", "20000000"),
            ("receive.message.max.bytes", "1000512"),
        ],
    );
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < 90 && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    assert_eq!(read, 90, "messages read within 60 s");
}

/// The review's finding: a 40 KB zstd batch holding a 1.3 GB record took
/// the broker's RSS to 2.17 GB when ListOffsets looked for a time in it.
/// Here: a 1 GiB record of zeros at time 1000, then a small one at 2000.
#[test]
fn list_offsets_by_time_does_not_decompress_a_bomb() {
    const HUGE: usize = 1 << 30;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
    let record = |out: &mut Vec<u8>, ts_delta: i64, offset_delta: i64, value_len: usize| {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, ts_delta);
        put_varint(&mut body, offset_delta);
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, value_len as i64);
        let mut head = Vec::new();
        // Record length: the body so far, the value, one byte of headers.
        put_varint(&mut head, (body.len() + value_len + 1) as i64);
        out.extend_from_slice(&head);
        out.extend_from_slice(&body);
    };
    let mut head = Vec::new();
    record(&mut head, 0, 0, HUGE);
    std::io::Write::write_all(&mut encoder, &head).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..HUGE / MIB {
        std::io::Write::write_all(&mut encoder, &zeros).unwrap();
    }
    let mut tail = vec![0u8]; // no headers, end of the first record
    record(&mut tail, 1000, 1, 1);
    tail.extend_from_slice(&[b'v', 0]); // the value, then no headers
    std::io::Write::write_all(&mut encoder, &tail).unwrap();
    let compressed = encoder.finish().expect("zstd");
    let bomb = hand_made_batch(4, 2, (1000, 2000), &compressed);
    assert!(
        bomb.len() < 256 * KIB,
        "premise: a small batch ({} bytes)",
        bomb.len()
    );

    let dir = DataDir::new("list-offsets-bomb");
    let broker = Broker::start(dir.path(), 1, &[]);
    create_topic(&broker, "bomb", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    assert_eq!(client.produce("bomb", 0, bomb).error_code, NONE);
    let before = rss_bytes(broker.pid());
    assert_eq!(
        client.list_offset("bomb", 0, 1000),
        (NONE, 0),
        "the first record"
    );
    // The second record is behind 1 GiB of zeros: past the cap, the answer
    // is the batch itself (offset 0), never a later record.
    assert_eq!(client.list_offset("bomb", 0, 1500), (NONE, 0));
    let after = rss_bytes(broker.pid());
    assert!(
        after < before + 64 * MIB,
        "RSS grew from {before} to {after} bytes for ListOffsets"
    );
}

#[test]
fn connections_past_the_limit_are_closed_and_idle_ones_too() {
    let dir = DataDir::new("conn-limits");
    let broker = Broker::start(
        dir.path(),
        2,
        &["--max-connections", "4", "--connections-max-idle-ms", "500"],
    );
    let answers = |c: &mut RawClient| {
        c.send(3, &ApiVersionsRequest::default());
        c.try_read_frame().is_ok()
    };
    let mut open: Vec<RawClient> = (0..4).map(|_| RawClient::connect(broker.addr())).collect();
    assert!(open.iter_mut().all(answers), "four connections are let in");
    let mut fifth = RawClient::connect(broker.addr());
    assert!(!answers(&mut fifth), "a fifth connection was served");
    // Idle for longer than 500 ms: closed, and their places free again.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!answers(&mut open[0]), "an idle connection was kept");
    let mut again = RawClient::connect(broker.addr());
    assert!(
        answers(&mut again),
        "a connection after the idle ones closed"
    );
}

/// Hostile load, scaled by `SLUICE_HOSTILE_CONNECTIONS` (default 40 here;
/// the README records a run with 1,000): every connection pipelines
/// `SLUICE_HOSTILE_PIPELINE` of the largest Fetch the broker allows and a
/// produce of the largest batch, and never reads its responses. The
/// broker's RSS must stay under its memory budget plus a stated constant
/// per connection, a Metadata request on another connection is answered,
/// and a well-behaved producer keeps making progress.
#[test]
fn hostile_pipelining_stays_within_the_memory_budget() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let connections = env("SLUICE_HOSTILE_CONNECTIONS", 40);
    let pipeline = env("SLUICE_HOSTILE_PIPELINE", 8);
    const BUDGET_MIB: usize = 256;
    let dir = DataDir::new("hostile-load");
    let budget = std::env::var("SLUICE_HOSTILE_BUDGET_MIB").unwrap_or(BUDGET_MIB.to_string());
    let broker = Broker::start(dir.path(), 2, &["--memory-budget-mib", &budget]);
    create_topic(&broker, "hostile", 2, &[]);
    create_topic(&broker, "polite", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    for p in 0..2 {
        fill(&mut client, "hostile", p, 30, 1000 * KIB);
    }
    let baseline = rss_bytes(broker.pid());

    let pid = broker.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let big_batch = batch(
        &[Rec {
            key: None,
            value: Some(&vec![b'h'; 1000 * KIB]),
            timestamp: 1,
        }],
        Compression::None,
    );
    let mut fetch = fetch_request("hostile", 0, 0)
        .with_max_bytes(i32::MAX)
        .with_max_wait_ms(0);
    for t in &mut fetch.topics {
        t.partitions = (0..2).map(|p| from_start(p, i32::MAX)).collect();
    }
    let produce = crate::raw::produce_request("hostile", 1, big_batch, -1);
    let mut stream_bytes = Vec::new();
    for i in 0..pipeline as i32 {
        stream_bytes.extend_from_slice(&RawClient::frame(FETCH_V, 2 * i, &fetch));
        stream_bytes.extend_from_slice(&RawClient::frame(
            crate::raw::PRODUCE_V,
            2 * i + 1,
            &produce,
        ));
    }
    let stream_bytes = std::sync::Arc::new(stream_bytes);
    // Each hostile connection writes everything at once and never reads;
    // the broker's backpressure may leave its writes blocked, as it should.
    let hostile: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, bytes, stop) = (
                broker.addr().to_string(),
                stream_bytes.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
                    return;
                };
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                let mut written = 0;
                while written < bytes.len() && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match std::io::Write::write(&mut stream, &bytes[written..]) {
                        Ok(n) if n > 0 => written += n,
                        Ok(_) => return,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    // Let the hostile requests pile up first.
    std::thread::sleep(Duration::from_secs(2));

    // Meanwhile: Metadata answers, and a polite producer makes progress.
    let started = Instant::now();
    let mut polite = RawClient::connect(broker.addr());
    polite.send(
        crate::raw::METADATA_V,
        &kafka_protocol::messages::MetadataRequest::default(),
    );
    assert!(
        polite.try_read_frame().is_ok(),
        "Metadata unanswered under load"
    );
    let metadata_took = started.elapsed();
    let mut progressed = 0;
    for i in 0..20 {
        let answer = polite.produce("polite", 0, crate::raw::simple_batch(&format!("p{i}"), 1));
        if answer.error_code == NONE {
            progressed += 1;
        }
    }
    let polite_took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    for h in hostile {
        let _ = h.join();
    }
    // Outside the budget, each with a cap of its own: the fetch buffers
    // (64 MiB a shard, partly full at the baseline), the WAL's write
    // buffers and flushes in flight (4 x 4 MiB a shard), and each
    // connection's read buffer (at most 1 MiB here, frames of 1,000 KiB).
    let fixed = 2 * 64 * MIB + 2 * 16 * MIB + connections * MIB;
    let allowed = baseline + BUDGET_MIB * MIB + fixed;
    eprintln!(
        "[blackbox] hostile load: {connections} connections x {pipeline} fetches+produces; \
         RSS baseline {} MiB, peak {} MiB (allowed {} MiB); Metadata answered after {:?}; \
         20 polite produces acked in {:?}",
        baseline / MIB,
        peak / MIB,
        allowed / MIB,
        metadata_took,
        polite_took
    );
    assert_eq!(progressed, 20, "the polite producer was refused");
    assert!(
        peak < allowed,
        "RSS peaked at {} MiB, over the budget's {} MiB",
        peak / MIB,
        allowed / MIB
    );
}

/// A client that pipelines fetches and never reads its answers holds at
/// most four of them: before that limit, a hundred 1 MB answers pinned a
/// 64 MiB shard budget and every other client's fetch on the shard waited
/// for as long as that connection lived.
#[test]
fn a_client_that_never_reads_cannot_pin_the_budget() {
    let dir = DataDir::new("fetch-pin");
    let broker = Broker::start(dir.path(), 1, &["--memory-budget-mib", "64"]);
    create_topic(&broker, "pinned", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    fill(&mut client, "pinned", 0, 40, 1000 * KIB);
    let mut hostile = RawClient::connect(broker.addr());
    for _ in 0..100 {
        let request = fetch_request("pinned", 0, 0)
            .with_max_bytes(MIB as i32)
            .with_max_wait_ms(0)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("pinned"))
                .with_partitions(vec![from_start(0, MIB as i32)])]);
        hostile.send(FETCH_V, &request);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Another client's fetch is answered (the raw client waits 15 s at most).
    let response = fetch(&mut client, "pinned", &[0], MIB as i32, MIB as i32);
    assert!(!records_of(&response)[0].1.is_empty());
    drop(hostile);
}

/// A fetch whose limit is past the shard's memory budget is answered: it
/// held its own request's bytes while it waited for the budget to be
/// wholly free, so with `--memory-budget-mib 64` over two shards every
/// librdkafka consumer (fetch.max.bytes 50 MiB) waited forever.
#[test]
fn a_fetch_larger_than_the_budget_is_answered() {
    let dir = DataDir::new("fetch-past-budget");
    let broker = Broker::start(dir.path(), 2, &["--memory-budget-mib", "64"]);
    create_topic(&broker, "wide-fetch", 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    fill(&mut client, "wide-fetch", 0, 20, 100 * KIB);
    let limit = 50 * MIB as i32;
    let response = fetch(&mut client, "wide-fetch", &[0], limit, limit);
    let records = records_of(&response);
    assert!(
        records[0].1.len() >= 20 * 100 * KIB,
        "a 50 MiB fetch got {} bytes of 2 MB stored",
        records[0].1.len()
    );
}

/// Found by the fuzzer: a Metadata request naming one topic many times got
/// it described as many times (a 110 KB request asked for a 269 MB
/// answer). Kafka answers each topic once; so do Sluice's Metadata and
/// DescribeGroups.
#[test]
fn a_topic_named_many_times_is_described_once() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let dir = DataDir::new("metadata-repeats");
    let broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, "wide", 1_000, &[]);
    let mut client = RawClient::connect(broker.addr());
    let topics = (0..200)
        .map(|_| MetadataRequestTopic::default().with_name(Some(topic_name("wide"))))
        .collect();
    let request = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(topics));
    let response = client.call(crate::raw::METADATA_V, &request);
    assert_eq!(response.topics.len(), 1, "one answer for one topic");
    assert_eq!(response.topics[0].partitions.len(), 1_000);

    // DescribeConfigs of one topic, named 200 times (resource type 2: topic).
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let resources = (0..200)
        .map(|_| {
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str("wide"))
        })
        .collect();
    let request =
        kafka_protocol::messages::DescribeConfigsRequest::default().with_resources(resources);
    let response = client.call(4, &request);
    assert_eq!(response.results.len(), 1, "one answer for one resource");
}

/// An answer far larger than its question waits for the memory budget
/// before it is built: a 52 KB DescribeConfigs naming 4,000 topics asks
/// for 8 MB, and a client pipelining 60 of them without reading made the
/// broker build all 60 at once (480 MB past a 32 MiB budget, and every
/// other client of the shard waited until that one read). Now they are
/// built as the budget allows, in request order.
#[test]
fn answers_larger_than_their_requests_wait_for_the_budget() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{CreateTopicsRequest, DescribeConfigsRequest};
    let dir = DataDir::new("amplified-answers");
    let broker = Broker::start(dir.path(), 1, &["--memory-budget-mib", "32"]);
    let names: Vec<String> = (0..4_000).map(|i| format!("cfg-{i:05}")).collect();
    let mut client = RawClient::connect(broker.addr());
    let create = CreateTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(topic_name(n))
                        .with_num_partitions(1)
                        .with_replication_factor(1)
                })
                .collect(),
        )
        .with_timeout_ms(30_000);
    let created = client.call(5, &create);
    assert!(created.topics.iter().all(|t| t.error_code == NONE));
    let describe = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(
            names
                .iter()
                .map(|n| {
                    // No keys named: every config, as clients ask.
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(kafka_protocol::protocol::StrBytes::from_string(
                            n.clone(),
                        ))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
    let one = RawClient::frame(4, 1, &describe);
    client.write_raw(&one);
    let answer = client.read_frame();
    eprintln!(
        "[amplified] a {} byte request, a {} byte answer",
        one.len(),
        answer.len()
    );
    let before = rss_bytes(broker.pid());
    let mut hostile = RawClient::connect(broker.addr());
    for _ in 0..60 {
        hostile.send(4, &describe);
    }
    std::thread::sleep(Duration::from_secs(3));
    let during = rss_bytes(broker.pid());
    // Others are still answered (small requests use the headroom).
    let versions = client.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE);
    // And the answers all come, in order, once read.
    for _ in 0..60 {
        let (_, response) = hostile.recv::<DescribeConfigsRequest>(4);
        assert_eq!(response.results.len(), 4_000);
    }
    eprintln!(
        "[amplified] RSS {} MiB before, {} MiB with 60 answers pending",
        before >> 20,
        during >> 20
    );
    assert!(
        during < before + 128 * MIB,
        "RSS grew from {before} to {during} bytes for 60 pending DescribeConfigs answers"
    );
}
