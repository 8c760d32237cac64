//! Checks a consumed log against what was produced and acknowledged.
//!
//! The loss report behind Sluice counted recovered messages per scenario
//! (9000/10000, 46000/50000); [`check_log`] reports the same numbers and
//! every kind of damage at once, so a failure says what was lost, where,
//! duplicated or reordered, not merely that two counts differ.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::harness::{id_of, Record};

/// Every message sent: id → partition it was sent to.
pub type Produced = BTreeMap<u64, i32>;
/// Acknowledged messages: id → (partition, offset) from the ack.
pub type Acked = BTreeMap<u64, (i32, i64)>;

/// What the consumed log must satisfy.
pub struct Expect<'a> {
    pub produced: &'a Produced,
    pub acked: &'a Acked,
    /// Ids were sent to each partition in increasing order, so the log of a
    /// partition must list them in increasing order.
    pub ordered: bool,
    /// Duplicates are a failure (false only when the client retried).
    pub exactly_once: bool,
}

/// Panics with every violation found (first few of each kind); returns the
/// number of records consumed:
/// - a record that was never produced, or on another partition;
/// - a message present twice (when `exactly_once`);
/// - offsets of a partition not contiguous from 0;
/// - ids of a partition out of produce order (when `ordered`);
/// - an acknowledged message missing, or at another offset than acked.
pub fn check_log(label: &str, consumed: &[Record], expect: &Expect<'_>) -> usize {
    let mut problems: Vec<String> = Vec::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    let mut seen: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();

    for r in consumed {
        let Some(id) = r.value.as_deref().and_then(id_of) else {
            problems.push(format!(
                "foreign record at {}/{}: value {:?}",
                r.partition,
                r.offset,
                r.value.as_deref().map(String::from_utf8_lossy)
            ));
            continue;
        };
        match expect.produced.get(&id) {
            None => problems.push(format!(
                "record {id} at {}/{} was never produced",
                r.partition, r.offset
            )),
            Some(p) if *p != r.partition => problems.push(format!(
                "record {id} sent to partition {p}, found in {} at offset {}",
                r.partition, r.offset
            )),
            Some(_) => {}
        }
        seen.entry(id).or_default().push((r.partition, r.offset));
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.offset, id));
    }

    if expect.exactly_once {
        let mut dups: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
        dups.sort();
        if !dups.is_empty() {
            problems.push(format!(
                "{} messages present more than once, e.g. {:?}",
                dups.len(),
                &dups[..dups.len().min(5)]
            ));
        }
    }

    for (partition, entries) in &mut by_partition {
        entries.sort();
        let gaps: Vec<String> = entries
            .iter()
            .enumerate()
            .filter(|(i, (offset, _))| *offset != *i as i64)
            .take(5)
            .map(|(i, (offset, _))| format!("position {i} has offset {offset}"))
            .collect();
        if !gaps.is_empty() {
            problems.push(format!(
                "partition {partition}: offsets not contiguous from 0 ({} records, last offset {}): {}",
                entries.len(),
                entries.last().map_or(-1, |e| e.0),
                gaps.join(", ")
            ));
        }
        if expect.ordered {
            let reordered: Vec<String> = entries
                .windows(2)
                .filter(|w| w[1].1 <= w[0].1)
                .take(5)
                .map(|w| {
                    format!(
                        "id {} at offset {} after id {} at {}",
                        w[1].1, w[1].0, w[0].1, w[0].0
                    )
                })
                .collect();
            if !reordered.is_empty() {
                problems.push(format!(
                    "partition {partition}: produce order broken: {}",
                    reordered.join("; ")
                ));
            }
        }
    }

    let mut missing: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    let mut moved = Vec::new();
    for (id, (partition, offset)) in expect.acked {
        match seen.get(id) {
            None => missing.entry(*partition).or_default().push(*id),
            Some(at) if !at.contains(&(*partition, *offset)) => moved.push(format!(
                "{id}: acked at {partition}/{offset}, found at {at:?}"
            )),
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        let total: usize = missing.values().map(Vec::len).sum();
        let mut text = format!(
            "LOST {total} of {} acknowledged messages ({} of {} recovered):",
            expect.acked.len(),
            expect.acked.len() - total,
            expect.acked.len()
        );
        for (partition, ids) in &missing {
            let _ = write!(
                text,
                " partition {partition}: {} missing, first {:?};",
                ids.len(),
                &ids[..ids.len().min(8)]
            );
        }
        problems.push(text);
    }
    if !moved.is_empty() {
        problems.push(format!(
            "{} acknowledged messages at another offset than acked: {}",
            moved.len(),
            moved[..moved.len().min(5)].join("; ")
        ));
    }

    assert!(
        problems.is_empty(),
        "{label}: {} consumed, {} acked, {} produced:\n  - {}",
        consumed.len(),
        expect.acked.len(),
        expect.produced.len(),
        problems.join("\n  - ")
    );
    let unacked_present = seen
        .keys()
        .filter(|id| !expect.acked.contains_key(id))
        .count();
    eprintln!(
        "[blackbox] {label}: {} consumed, {} acknowledged (all present), {unacked_present} unacknowledged present",
        consumed.len(),
        expect.acked.len()
    );
    consumed.len()
}

/// [`check_log`] after crashes of a producer that does not retry: every
/// acknowledged message there, exactly once, in produce order.
pub fn check_acked(label: &str, consumed: &[Record], produced: &Produced, acked: &Acked) -> usize {
    check_log(
        label,
        consumed,
        &Expect {
            produced,
            acked,
            ordered: true,
            exactly_once: true,
        },
    )
}

/// [`check_log`] for a run where every message must have been acknowledged
/// and must come back exactly once, in order.
pub fn check_complete(label: &str, consumed: &[Record], produced: &Produced, acked: &Acked) {
    assert_eq!(
        acked.len(),
        produced.len(),
        "{label}: only {} of {} messages were acknowledged",
        acked.len(),
        produced.len()
    );
    let consumed_count = check_acked(label, consumed, produced, acked);
    assert_eq!(consumed_count, produced.len(), "{label}: record count");
}

/// The checker itself, on hand-made logs: it must catch each kind of damage
/// (a checker that passes everything would make every test above green).
mod self_check {
    use super::*;
    use crate::harness::value_for;
    use rdkafka::Timestamp;

    fn record(partition: i32, offset: i64, id: u64) -> Record {
        Record {
            partition,
            offset,
            key: None,
            value: Some(value_for(id, 20)),
            headers: Vec::new(),
            timestamp: Timestamp::NotAvailable,
        }
    }

    /// Ids 0..6 over 2 partitions, all acked at offsets id / 2.
    fn expected() -> (Produced, Acked, Vec<Record>) {
        let produced: Produced = (0..6).map(|id| (id, (id % 2) as i32)).collect();
        let acked = produced
            .iter()
            .map(|(id, p)| (*id, (*p, (*id / 2) as i64)))
            .collect();
        let log = produced
            .iter()
            .map(|(id, p)| record(*p, (*id / 2) as i64, *id))
            .collect();
        (produced, acked, log)
    }

    fn check(log: &[Record]) {
        let (produced, acked, _) = expected();
        check_complete("self-check", log, &produced, &acked);
    }

    #[test]
    fn intact_log_passes() {
        check(&expected().2);
    }

    #[test]
    #[should_panic(expected = "LOST 1 of 6")]
    fn lost_tail_is_caught() {
        let mut log = expected().2;
        log.pop();
        check(&log);
    }

    #[test]
    #[should_panic(expected = "not contiguous")]
    fn gap_is_caught() {
        let mut log = expected().2;
        log.remove(2); // partition 0, offset 1
        check(&log);
    }

    #[test]
    #[should_panic(expected = "more than once")]
    fn duplicate_is_caught() {
        let mut log = expected().2;
        log.push(record(0, 3, 0));
        check(&log);
    }

    #[test]
    #[should_panic(expected = "produce order broken")]
    fn reorder_is_caught() {
        let mut log = expected().2;
        // Swap the ids at partition 0 offsets 0 and 1.
        log[0].value = Some(value_for(2, 20));
        log[2].value = Some(value_for(0, 20));
        check(&log);
    }
}
