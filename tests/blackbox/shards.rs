//! The shard count is fixed when the data directory is created: a restart
//! with another `--shards` must stop with a clear error (no silent
//! re-mapping of partitions to shards), and must leave the data usable by a
//! restart with the right count.

use std::time::Duration;

use crate::harness::{consume_to_end, create_topic, produce_range, producer, Broker, DataDir};
use crate::verify::check_complete;

#[test]
fn restart_with_another_shard_count_is_refused() {
    const TOPIC: &str = "shards";
    let dir = DataDir::new("shards");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 4, &[]);
    let producer = producer(&broker, &[]);
    let produced = produce_range(&producer, TOPIC, 4, 0..400, 100);
    assert!(producer.flush(Duration::from_secs(30)), "reports");
    let acked = producer.acked();
    drop(producer);
    let status = broker.sigterm();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status");

    for other in [1, 3] {
        match broker.try_restart_with(other, &[]) {
            Ok(()) => panic!(
                "broker started with --shards {other} on a data dir made with 2:\n{}",
                broker.log()
            ),
            Err(e) => {
                let status = e.status.expect("broker should exit, not hang");
                assert!(
                    !status.success(),
                    "--shards {other}: exit status {status}\n{}",
                    e.stderr
                );
                assert!(
                    e.stderr.to_lowercase().contains("shard"),
                    "--shards {other}: stderr does not mention shards:\n{}",
                    e.stderr
                );
                eprintln!("[blackbox] --shards {other} refused: {}", e.stderr.trim());
            }
        }
    }

    broker
        .try_restart_with(2, &[])
        .unwrap_or_else(|e| panic!("restart with the right count failed: {e:?}"));
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(30));
    check_complete("after refused restarts", &consumed, &produced, &acked);
}
