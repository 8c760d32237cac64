//! Group members driven by real rdkafka consumers, each polled by its own
//! thread: what it consumed, its current assignment and how many
//! rebalances (revoke or assign callbacks) it has been through.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::ClientContext;

use crate::harness::{id_of, Broker};

/// Counts rebalance callbacks.
pub struct Watch {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for Watch {}

impl ConsumerContext for Watch {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

/// One consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub id: u64,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    assignment: Mutex<BTreeSet<i32>>,
    errors: Mutex<Vec<String>>,
}

/// A consumer in a group, polled by a thread of its own until stopped.
pub struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    rebalances: Arc<AtomicUsize>,
}

/// The settings every member starts from: short sessions and heartbeats so
/// the suite stays fast, manual commits.
pub const MEMBER_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "300"),
    ("enable.auto.commit", "false"),
    ("auto.offset.reset", "earliest"),
    ("fetch.wait.max.ms", "100"),
    ("enable.partition.eof", "false"),
    ("topic.metadata.refresh.interval.ms", "2000"),
];

impl Member {
    /// Subscribes to `topic` in `group`; `commit_each` commits every
    /// message synchronously right after it is consumed.
    pub fn start(
        broker: &Broker,
        group: &str,
        topic: &str,
        commit_each: bool,
        extra: &[(&str, &str)],
    ) -> Member {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", broker.addr());
        config.set("group.id", group);
        for (k, v) in MEMBER_DEFAULTS.iter().chain(extra) {
            config.set(*k, *v);
        }
        let rebalances = Arc::new(AtomicUsize::new(0));
        let consumer: BaseConsumer<Watch> = config
            .create_with_context(Watch {
                rebalances: rebalances.clone(),
            })
            .expect("create group consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let thread = {
            let (stop, shared, topic) = (stop.clone(), shared.clone(), topic.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(50)) {
                        None => {}
                        Some(Err(e)) => shared.errors.lock().unwrap().push(e.to_string()),
                        Some(Ok(m)) => {
                            let id = m.payload().and_then(id_of).unwrap_or(u64::MAX);
                            shared.seen.lock().unwrap().push(Seen {
                                partition: m.partition(),
                                offset: m.offset(),
                                id,
                            });
                            if commit_each {
                                if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                                    shared.errors.lock().unwrap().push(format!("commit: {e}"));
                                }
                            }
                        }
                    }
                    if let Ok(tpl) = consumer.assignment() {
                        let now: BTreeSet<i32> = tpl
                            .elements()
                            .iter()
                            .filter(|e| e.topic() == topic)
                            .map(|e| e.partition())
                            .collect();
                        *shared.assignment.lock().unwrap() = now;
                    }
                }
                // Dropping closes the consumer: a dynamic member leaves the
                // group, a static one does not.
                drop(consumer);
            })
        };
        Member {
            stop,
            thread: Some(thread),
            shared,
            rebalances,
        }
    }

    pub fn assignment(&self) -> BTreeSet<i32> {
        self.shared.assignment.lock().unwrap().clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().clone()
    }

    pub fn rebalances(&self) -> usize {
        self.rebalances.load(Ordering::SeqCst)
    }

    /// Stops polling and closes the consumer; returns what it consumed.
    pub fn stop(mut self) -> Vec<Seen> {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.halt();
    }
}
