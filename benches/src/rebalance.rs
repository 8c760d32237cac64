//! `rebalance`: how long a consumer group over the topic takes to settle.
//! `--members` consumers (librdkafka, range assignor, eager protocol) join
//! one group; the time is from the first subscribe until their assignments
//! are all non-empty and together cover every partition. Then the last
//! member leaves (a clean close: LeaveGroup) and the time until the others
//! cover every partition again is measured the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::args::Opts;
use crate::client::{self, Result};

/// A group that has not settled by then is an error.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Partitions assigned to each member, by member index.
type Assigned = Arc<Mutex<HashMap<usize, usize>>>;

struct MemberContext {
    member: usize,
    assigned: Assigned,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::log_to_stderr(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("rdkafka consumer error: {error}: {reason}");
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let count = match rebalance {
            Rebalance::Assign(tpl) => tpl.count(),
            Rebalance::Revoke(_) | Rebalance::Error(_) => 0,
        };
        if let Ok(mut a) = self.assigned.lock() {
            a.insert(self.member, count);
        }
    }
}

/// Seconds for the group to form, then to recover from one member leaving.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub partitions: usize,
    pub join: Duration,
    pub leave: Duration,
}

fn settled(assigned: &Assigned, members: usize, partitions: usize) -> bool {
    let a = assigned.lock().expect("assignment lock");
    a.values().filter(|&&n| n > 0).count() == members && a.values().sum::<usize>() == partitions
}

/// Polls every consumer on its own thread until `settled` holds; the time
/// it took from `start`.
fn wait_settled(
    consumers: &[BaseConsumer<MemberContext>],
    assigned: &Assigned,
    partitions: usize,
    start: Instant,
) -> Result<Duration> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for c in consumers {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Err(e)) = c.poll(Duration::from_millis(50)) {
                        eprintln!("rebalance: poll: {e}");
                    }
                }
            });
        }
        let result = loop {
            if settled(assigned, consumers.len(), partitions) {
                break Ok(start.elapsed());
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                break Err(format!(
                    "{} members did not cover {partitions} partitions in {} s",
                    consumers.len(),
                    SETTLE_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stop.store(true, Ordering::Relaxed);
        result
    })
}

impl Outcome {
    pub fn text(&self, members: usize) -> String {
        format!(
            "rebalance: {members} members cover {} partitions after {:.2} s; \
             after one leaves, {} cover them after {:.2} s",
            self.partitions,
            self.join.as_secs_f64(),
            members - 1,
            self.leave.as_secs_f64()
        )
    }

    pub fn json(&self, members: usize) -> String {
        let mut j = crate::report::JsonObject::default();
        j.string("mode", "rebalance");
        j.uint("members", members as u64);
        j.uint("partitions", self.partitions as u64);
        j.float("join_s", self.join.as_secs_f64());
        j.float("leave_s", self.leave.as_secs_f64());
        j.finish()
    }
}

/// Runs the join and the leave with `members` consumers (at least 2).
pub fn measure(o: &Opts, run_id: u64, members: usize) -> Result<Outcome> {
    if members < 2 {
        return Err("rebalance needs at least 2 members".into());
    }
    let partitions = {
        let probe = client::consumer(o, &format!("sluice-bench-probe-{run_id:x}"))?;
        client::partitions(&probe, &o.topic)?.len()
    };
    let group = format!("sluice-bench-rebalance-{run_id:x}");
    let assigned: Assigned = Arc::default();
    let start = Instant::now();
    let mut consumers = Vec::with_capacity(members);
    for member in 0..members {
        let mut config = client::consumer_config(o, &group);
        config
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "10000");
        let c: BaseConsumer<MemberContext> = config
            .create_with_context(MemberContext {
                member,
                assigned: assigned.clone(),
            })
            .map_err(|e| format!("cannot create consumer for {}: {e}", o.bootstrap))?;
        c.subscribe(&[&o.topic])
            .map_err(|e| format!("subscribe to {}: {e}", o.topic))?;
        consumers.push(c);
    }
    let join = wait_settled(&consumers, &assigned, partitions, start)?;
    let leaving = consumers.pop().expect("at least two members");
    assigned
        .lock()
        .expect("assignment lock")
        .remove(&(members - 1));
    let start = Instant::now();
    let leave = std::thread::scope(|s| {
        // close() leaves the group; the others learn of it while polling.
        s.spawn(move || drop(leaving));
        wait_settled(&consumers, &assigned, partitions, start)
    });
    // All close at once: closed one after another, each close waits on a
    // rebalance that the members not yet closed (and not polled) hold up.
    std::thread::scope(|s| {
        for c in consumers {
            s.spawn(move || drop(c));
        }
    });
    leave.map(|leave| Outcome {
        partitions,
        join,
        leave,
    })
}
