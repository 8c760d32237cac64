//! Order and count verification of consumed messages: within a partition,
//! each producer's sequence numbers must strictly increase (gaps are fine,
//! since a producer spreads its messages over partitions).

use std::collections::HashMap;

use crate::payload;

/// Running verification state of one consumer.
#[derive(Debug, Default)]
pub struct OrderCheck {
    /// Last sequence seen per (partition, producer id).
    last: HashMap<(i32, u64), u64>,
    pub messages: u64,
    /// Messages whose sequence did not exceed the previous one of the same
    /// producer in the same partition (reordered or duplicated).
    pub out_of_order: u64,
    /// Payloads too short to carry a header.
    pub malformed: u64,
    /// The first problem seen, said where it is.
    pub first_problem: Option<String>,
}

impl OrderCheck {
    /// Checks one message and returns its header if it had one.
    pub fn observe(
        &mut self,
        partition: i32,
        offset: i64,
        payload: &[u8],
    ) -> Option<payload::Header> {
        self.messages += 1;
        let Some(h) = payload::decode(payload) else {
            self.malformed += 1;
            self.first_problem.get_or_insert_with(|| {
                format!(
                    "partition {partition} offset {offset}: payload of {} bytes has no header",
                    payload.len()
                )
            });
            return None;
        };
        match self.last.insert((partition, h.producer), h.sequence) {
            Some(prev) if h.sequence <= prev => {
                self.out_of_order += 1;
                self.first_problem.get_or_insert_with(|| {
                    format!(
                        "partition {partition} offset {offset}: producer {:#x} sequence {} after {prev}",
                        h.producer, h.sequence
                    )
                });
            }
            _ => {}
        }
        Some(h)
    }

    /// True when order holds and, if `expected` is known, the count matches.
    pub fn ok(&self, expected: Option<u64>) -> bool {
        self.out_of_order == 0 && self.malformed == 0 && expected.is_none_or(|e| e == self.messages)
    }

    /// One line for the report: "verified: ..." or what is wrong.
    pub fn verdict(&self, expected: Option<u64>) -> String {
        if self.ok(expected) {
            return format!(
                "verified: {} messages, per-partition order intact",
                self.messages
            );
        }
        let mut problems = Vec::new();
        if let Some(e) = expected {
            if e != self.messages {
                problems.push(format!("expected {e} messages, got {}", self.messages));
            }
        }
        if self.out_of_order > 0 {
            problems.push(format!("{} out of order or duplicated", self.out_of_order));
        }
        if self.malformed > 0 {
            problems.push(format!("{} without a sluice-bench header", self.malformed));
        }
        if let Some(p) = &self.first_problem {
            problems.push(format!("first: {p}"));
        }
        format!("verification FAILED: {}", problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{encode, new_buffer, Header};

    fn msg(producer: u64, sequence: u64) -> Vec<u8> {
        let mut b = new_buffer(32);
        encode(
            &mut b,
            Header {
                producer,
                sequence,
                sent_unix_nanos: 0,
            },
        );
        b
    }

    #[test]
    fn interleaved_producers_with_gaps_are_in_order() {
        let mut c = OrderCheck::default();
        // producer 1 spreads over partitions 0 and 1; producer 2 on 0 only
        for (i, (p, prod, seq)) in [
            (0, 1, 0),
            (1, 1, 1),
            (0, 2, 0),
            (0, 1, 2),
            (1, 1, 5),
            (0, 2, 1),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(c.observe(p, i as i64, &msg(prod, seq)).is_some());
        }
        assert!(c.ok(Some(6)));
        assert!(c.ok(None));
        assert_eq!(
            c.verdict(Some(6)),
            "verified: 6 messages, per-partition order intact"
        );
    }

    #[test]
    fn reorder_duplicate_and_count_are_reported() {
        let mut c = OrderCheck::default();
        c.observe(0, 0, &msg(7, 3));
        c.observe(0, 1, &msg(7, 2)); // backwards
        c.observe(0, 2, &msg(7, 2)); // duplicate
        c.observe(3, 9, b"short");
        assert_eq!((c.messages, c.out_of_order, c.malformed), (4, 2, 1));
        assert!(!c.ok(None));
        let v = c.verdict(Some(5));
        assert!(
            v.starts_with("verification FAILED: expected 5 messages, got 4"),
            "{v}"
        );
        assert!(v.contains("2 out of order"), "{v}");
        assert!(v.contains("1 without a sluice-bench header"), "{v}");
        assert!(
            v.contains("first: partition 0 offset 1: producer 0x7 sequence 2 after 3"),
            "{v}"
        );
    }

    #[test]
    fn count_mismatch_alone_fails() {
        let mut c = OrderCheck::default();
        c.observe(0, 0, &msg(1, 0));
        assert!(c.ok(Some(1)));
        assert!(!c.ok(Some(2)));
        assert_eq!(
            c.verdict(Some(2)),
            "verification FAILED: expected 2 messages, got 1"
        );
    }
}
