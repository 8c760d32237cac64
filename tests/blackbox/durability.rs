//! Acknowledged means durable: the three scenarios of the loss report that
//! Sluice exists for, SIGKILL at random moments while producing (also
//! around segment rolls, and many times with many flushes in flight, for
//! prefix-ordered acks), a SIGTERM/SIGINT shutdown that drains and exits 0,
//! and a restart right after a crash.
//!
//! Producers use acks=all and no client retries, so every message is sent
//! once: a duplicate in the log is the broker's, and per-partition order must
//! hold exactly. Random kill moments come from a printed seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;

use crate::harness::{
    consume_to_end, consumer, create_topic, produce_range, produce_until, producer, seed,
    wait_until, Broker, DataDir, Rng,
};
use crate::raw::RawClient;
use crate::verify::{check_acked, check_complete};

/// One scenario of the original loss report: `messages` with acks=all over
/// `partitions`, SIGKILL once the last ack is in, restart, read everything
/// back from the beginning.
fn loss_report_scenario(name: &str, messages: u64, partitions: i32, shards: usize) {
    let dir = DataDir::new(name);
    let mut broker = Broker::start(dir.path(), shards, &[]);
    create_topic(&broker, name, partitions, &[]);

    let producer = producer(&broker, &[]);
    let produced = produce_range(&producer, name, partitions, 0..messages, 100);
    assert!(
        producer.flush(Duration::from_secs(90)),
        "{name}: {} messages without a delivery report",
        producer.outstanding()
    );
    let failures = producer.failures();
    assert!(
        failures.is_empty(),
        "{name}: {} produce failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let acked = producer.acked();
    drop(producer);

    broker.kill9();
    broker.restart();
    let consumed = consume_to_end(&broker, name, Duration::from_secs(60));
    check_complete(name, &consumed, &produced, &acked);
}

#[test]
fn loss_report_5000_messages_1_partition() {
    loss_report_scenario("loss-5000x1", 5_000, 1, 1);
}

/// One shard for all three partitions: their appends share one WAL and one
/// group commit, where the original lost 1000 of 10000.
#[test]
fn loss_report_10000_messages_3_partitions() {
    loss_report_scenario("loss-10000x3", 10_000, 3, 1);
}

#[test]
fn loss_report_50000_messages_6_partitions_2_shards() {
    loss_report_scenario("loss-50000x6", 50_000, 6, 2);
}

/// SIGKILL at a random moment (a random number of acks in) while a producer
/// streams into 4 partitions on 2 shards, three times on the same data
/// directory (each restart recovers
/// a log that already went through crashes, then takes new appends after a
/// possibly torn tail): after every restart each acknowledged message of
/// every trial is there, at its acked offset, once, in order, with offsets
/// contiguous from 0.
#[test]
fn kill9_in_the_middle_of_producing_keeps_every_ack() {
    kill9_trials("midkill", &KillTrials::default(), &[]);
}

/// The same with 1 MiB WAL segments, so kills also land around segment
/// rolls (a torn tail may only ever be in the last segment).
#[test]
fn kill9_in_the_middle_of_producing_across_segment_rolls() {
    kill9_trials(
        "midkill-segments",
        &KillTrials::default(),
        &["--wal-segment-mib", "1"],
    );
}

/// Acknowledgement must be prefix-ordered (DESIGN.md, durability contract
/// 3): with 8 flushes in flight per shard a later flush can finish first,
/// and acking it then lets a crash leave a hole that recovery truncates at.
/// Ten quick kills into 12 partitions with unbatched produces (many small
/// flushes racing each other).
#[test]
fn acks_are_prefix_ordered_across_many_random_kills() {
    let trials = KillTrials {
        trials: 10,
        per_trial: 30_000,
        partitions: 12,
        linger_ms: "0",
    };
    kill9_trials("prefix-acks", &trials, &["--wal-flushes-in-flight", "8"]);
}

/// Shape of a [`kill9_trials`] run.
struct KillTrials {
    trials: u64,
    per_trial: u64,
    partitions: i32,
    linger_ms: &'static str,
}

impl Default for KillTrials {
    fn default() -> Self {
        KillTrials {
            trials: 3,
            per_trial: 150_000,
            partitions: 4,
            linger_ms: "1",
        }
    }
}

fn kill9_trials(name: &'static str, shape: &KillTrials, extra: &[&str]) {
    const TOPIC: &str = "midkill";
    let seed = seed();
    eprintln!("[blackbox] {name} seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = DataDir::new(name);
    let mut broker = Broker::start(dir.path(), 2, extra);
    create_topic(&broker, TOPIC, shape.partitions, &[]);
    let mut produced = BTreeMap::new();
    let mut acked = BTreeMap::new();
    let mut interrupted = 0;
    for trial in 0..shape.trials {
        let producer = Arc::new(producer(&broker, &[("linger.ms", shape.linger_ms)]));
        // The random moment: the delivery callback of a random ack (the
        // producer outruns any fixed delay, and a polling thread can be
        // late by thousands of acks on a busy machine), well before the end.
        let at_acks = rng.range(1_000, shape.per_trial * 4 / 5) as usize;
        let (pid, reports) = (broker.pid(), AtomicUsize::new(0));
        producer.on_report(move |_| {
            if reports.fetch_add(1, Ordering::SeqCst) + 1 == at_acks {
                // SAFETY: kill(2) on the broker's pid.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let ids = trial * shape.per_trial..(trial + 1) * shape.per_trial;
        let sender = produce_until(
            producer.clone(),
            TOPIC,
            shape.partitions,
            stop.clone(),
            ids,
            100,
        );
        assert!(
            wait_until(Duration::from_secs(60), || !broker.is_running()),
            "trial {trial}: no SIGKILL at report {at_acks} within 60 s ({} reports)",
            producer.report_count()
        );
        broker.kill9(); // reap
        stop.store(true, Ordering::SeqCst);
        let sent = sender.join().expect("producer thread");
        // A dead broker acknowledges nothing more: fail what is left now
        // instead of waiting for message.timeout.ms.
        producer.purge();
        assert!(
            producer.flush(Duration::from_secs(10)),
            "reports after purge"
        );
        let trial_acked = producer.acked();
        eprintln!(
            "[blackbox] {name} trial {trial}: killed at {at_acks} reports; {} sent, {} acked",
            sent.len(),
            trial_acked.len()
        );
        // Acks already on the wire when the kill lands still arrive, so a
        // trial can end fully acked; most must be cut short (checked below).
        if trial_acked.len() < sent.len() {
            interrupted += 1;
        }
        produced.extend(sent);
        acked.extend(trial_acked);

        broker.restart();
        let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
        check_acked(
            &format!("{name}: after kill -9 number {}", trial + 1),
            &consumed,
            &produced,
            &acked,
        );
    }
    assert!(
        interrupted * 2 > shape.trials,
        "premise: only {interrupted} of {} kills interrupted the stream",
        shape.trials
    );
}

/// SIGTERM (then SIGINT) on an idle broker: exit status 0 within the
/// timeout, and after each restart everything is there.
#[test]
fn sigterm_and_sigint_drain_and_exit_zero() {
    const TOPIC: &str = "sigterm";
    let dir = DataDir::new("sigterm");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 3, &[]);
    let producer = producer(&broker, &[]);
    let produced = produce_range(&producer, TOPIC, 3, 0..5_000, 100);
    assert!(producer.flush(Duration::from_secs(60)), "delivery reports");
    let acked = producer.acked();
    drop(producer);

    let status = broker.sigterm();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    broker.restart();
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_complete("after SIGTERM", &consumed, &produced, &acked);

    let status = broker.signal(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    broker.restart();
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_complete("after SIGINT", &consumed, &produced, &acked);
}

/// SIGTERM while a producer streams: the broker drains what it accepted,
/// exits 0, and every acknowledged message survives the restart.
#[test]
fn sigterm_while_producing_exits_zero_and_keeps_every_ack() {
    const TOPIC: &str = "sigterm-load";
    let dir = DataDir::new("sigterm-load");
    let mut broker = Broker::start(dir.path(), 2, &[]);
    create_topic(&broker, TOPIC, 4, &[]);
    let producer = Arc::new(producer(&broker, &[("linger.ms", "1")]));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = produce_until(producer.clone(), TOPIC, 4, stop.clone(), 0..2_000_000, 200);
    assert!(
        wait_until(Duration::from_secs(30), || producer.report_count() > 2_000),
        "no steady stream of acks"
    );

    let status = broker.sigterm();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM under load: {status}"
    );
    let produced = sender.join().expect("producer thread");
    producer.purge();
    assert!(
        producer.flush(Duration::from_secs(10)),
        "reports after purge"
    );
    let acked = producer.acked();

    broker.restart();
    let consumed = consume_to_end(&broker, TOPIC, Duration::from_secs(60));
    check_acked("SIGTERM under load", &consumed, &produced, &acked);
}

/// A client that is connected but idle when the broker is SIGKILLed closes
/// its side after the broker's FIN, which leaves the broker's end of that
/// connection in TIME_WAIT on the listen port for up to a minute. The
/// restarted broker must still bind its address at once (a crash restart
/// by systemd must not fail on "Address already in use").
#[test]
fn restart_right_after_kill9_with_an_idle_client_connected() {
    let dir = DataDir::new("idle-client");
    let mut broker = Broker::start(dir.path(), 1, &[]);
    let mut client = RawClient::connect(broker.addr());
    let versions = client.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);

    broker.kill9();
    // The client sees the close and closes too, as librdkafka does.
    assert!(
        client.try_read_frame().is_err(),
        "connection should be closed"
    );
    drop(client);

    if let Err(e) = broker.try_restart() {
        panic!(
            "restart after kill -9 failed (exit {:?}):\n{}",
            e.status, e.stderr
        );
    }
}

/// A tailing consumer keeps long-polling fetches in flight, some of them
/// waiting on the other shard. SIGTERM must still end the broker promptly:
/// connections stop taking new requests, waits end on shutdown, and a
/// shard does not stop while calls from another shard run on it (a task
/// left on a stopped executor would never answer, holding the other shard's
/// drain until its 10 s limit).
#[test]
fn sigterm_with_tailing_consumers_exits_promptly() {
    const TOPIC: &str = "tailing";
    for round in 0..3 {
        let dir = DataDir::new("sigterm-tail");
        let mut broker = Broker::start(dir.path(), 2, &[]);
        create_topic(&broker, TOPIC, 4, &[]);
        let p = producer(&broker, &[]);
        produce_range(&p, TOPIC, 4, 0..400, 100);
        assert!(p.flush(Duration::from_secs(30)), "produce");
        let stop = Arc::new(AtomicBool::new(false));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let c = consumer(&broker, &[("fetch.wait.max.ms", "500")]);
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut tpl = rdkafka::TopicPartitionList::new();
                    for p in 0..4 {
                        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
                            .expect("tpl");
                    }
                    rdkafka::consumer::Consumer::assign(&c, &tpl).expect("assign");
                    while !stop.load(Ordering::SeqCst) {
                        let _ = c.poll(Duration::from_millis(50));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let started = std::time::Instant::now();
        let status = broker.sigterm();
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        for c in consumers {
            c.join().expect("consumer thread");
        }
        assert!(
            status.success(),
            "round {round}: exit status {status:?}\n{}",
            broker.log()
        );
        assert!(
            took < Duration::from_secs(5),
            "round {round}: SIGTERM took {took:?} with consumers tailing\n{}",
            broker.log()
        );
    }
}
