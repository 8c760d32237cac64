//! Field-level mutation: every field a request builder fills goes through a
//! [`Knobs`] call that returns the plausible value, or, when field mutation
//! is on and the dice say so, a hostile one (negative, zero, extreme,
//! duplicated, empty, 32 KB, unknown).
//!
//! Each hostile choice has a class, `<api>.<field>-<kind>` in lower case
//! (`createpartitions.count-negative`), recorded on the request so a failure
//! names what was done, and skippable by prefix (`--skip`) when a known bug
//! would otherwise stop a long run.

use bytes::Bytes;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::rng::Rng;

/// Interesting 32-bit values: the boundaries parsers and arithmetic get
/// wrong.
pub const I32S: &[i32] = &[
    -1,
    0,
    1,
    i32::MIN,
    i32::MAX,
    0x7fff_fff0,
    -2,
    65_536,
    1 << 24,
    1_000_000,
];
pub const I64S: &[i64] = &[
    -1,
    0,
    1,
    i64::MIN,
    i64::MAX,
    0x7fff_ffff_ffff_fff0,
    -2,
    -3,
    i32::MAX as i64,
    1 << 40,
];
pub const I16S: &[i16] = &[-1, 0, 1, i16::MIN, i16::MAX, 0x7ff0, -2, 255];

/// Length of the long strings: past any name limit, still a small request.
pub const LONG_STRING: usize = 32 * 1024;

/// The field mutator of one request.
pub struct Knobs<'a> {
    rng: &'a mut Rng,
    /// Field mutation on for this request.
    active: bool,
    /// Per-field chance, in 1/1000, that an active knob mutates.
    rate: u64,
    api: &'a str,
    skip: &'a [String],
    /// Classes of the mutations applied, in order.
    pub applied: Vec<String>,
}

/// The kind of a hostile integer, for its class name.
fn int_kind(v: i128, valid: i128) -> &'static str {
    if v == valid {
        "same"
    } else if v < 0 {
        "negative"
    } else if v == 0 {
        "zero"
    } else if v >= 1 << 20 {
        "huge"
    } else {
        "other"
    }
}

impl<'a> Knobs<'a> {
    pub fn new(rng: &'a mut Rng, active: bool, api: &'a str, skip: &'a [String]) -> Knobs<'a> {
        // Aim for one or two mutated fields per request: builders call a
        // dozen knobs or so.
        let rate = 60 + rng.below(140);
        Knobs {
            rng,
            active,
            rate,
            api,
            skip,
            applied: Vec::new(),
        }
    }

    /// The request's random generator, for choices that are not mutations.
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// Whether this knob mutates (before the class is known).
    fn roll(&mut self) -> bool {
        self.active && self.rng.below(1000) < self.rate
    }

    /// Records the class unless it is skipped; false means "use the valid
    /// value".
    fn accept(&mut self, site: &str, kind: &str) -> bool {
        let class = format!("{}.{}-{}", self.api, site, kind).to_lowercase();
        if self.skip.iter().any(|s| class.starts_with(s.as_str())) {
            return false;
        }
        // Each class once: a list of 500 mutated entries names it once.
        if !self.applied.contains(&class) {
            self.applied.push(class);
        }
        true
    }

    fn int(&mut self, site: &str, valid: i128, table: &[i128], lo: i128, hi: i128) -> i128 {
        if !self.roll() {
            return valid;
        }
        let v = match self.rng.below(4) {
            0 | 1 => *self.rng.pick(table),
            2 => (valid + self.rng.between(-3, 3) as i128).clamp(lo, hi),
            _ => self.rng.between(
                lo.max(i64::MIN as i128) as i64,
                hi.min(i64::MAX as i128) as i64,
            ) as i128,
        };
        let kind = int_kind(v, valid);
        if kind == "same" || !self.accept(site, kind) {
            return valid;
        }
        v
    }

    pub fn i32(&mut self, site: &str, valid: i32) -> i32 {
        let table: Vec<i128> = I32S.iter().map(|&v| v as i128).collect();
        self.int(
            site,
            valid as i128,
            &table,
            i32::MIN as i128,
            i32::MAX as i128,
        ) as i32
    }

    pub fn i64(&mut self, site: &str, valid: i64) -> i64 {
        let table: Vec<i128> = I64S.iter().map(|&v| v as i128).collect();
        self.int(
            site,
            valid as i128,
            &table,
            i64::MIN as i128,
            i64::MAX as i128,
        ) as i64
    }

    pub fn i16(&mut self, site: &str, valid: i16) -> i16 {
        let table: Vec<i128> = I16S.iter().map(|&v| v as i128).collect();
        self.int(
            site,
            valid as i128,
            &table,
            i16::MIN as i128,
            i16::MAX as i128,
        ) as i16
    }

    pub fn i8(&mut self, site: &str, valid: i8) -> i8 {
        let table = [-1i128, 0, 1, 2, 3, 127, -128];
        self.int(site, valid as i128, &table, -128, 127) as i8
    }

    /// A wait the broker honours (Fetch max_wait_ms, rebalance timeouts):
    /// hostile values stay small, so no request legitimately blocks long.
    pub fn wait_ms(&mut self, site: &str, valid: i32) -> i32 {
        if !self.roll() {
            return valid;
        }
        let v = *self.rng.pick(&[-1, 0, 1, i32::MIN, -1000, 50]);
        if v == valid || !self.accept(site, int_kind(v as i128, valid as i128)) {
            return valid;
        }
        v
    }

    pub fn bool(&mut self, site: &str, valid: bool) -> bool {
        if self.roll() && self.accept(site, "flip") {
            !valid
        } else {
            valid
        }
    }

    /// How many entries a list gets: `valid`, or none, or many.
    pub fn count(&mut self, site: &str, valid: usize) -> usize {
        if !self.roll() {
            return valid;
        }
        let (v, kind) = match self.rng.below(3) {
            0 => (0, "empty"),
            1 => (valid + 1 + self.rng.below(8) as usize, "more"),
            // Lists nest (topics of partitions): a few hundred each keeps
            // a request within a few MB.
            _ => (64 + self.rng.below(448) as usize, "many"),
        };
        if v == valid || !self.accept(site, kind) {
            return valid;
        }
        v
    }

    /// `items` as given, or with entries repeated (the same topic, partition
    /// or member twice in one request).
    pub fn dup<T: Clone>(&mut self, site: &str, mut items: Vec<T>) -> Vec<T> {
        if items.is_empty() || !self.roll() || !self.accept(site, "duplicate") {
            return items;
        }
        let n = 1 + self.rng.below(4);
        for _ in 0..n {
            let i = self.rng.below(items.len() as u64) as usize;
            let copy = items[i].clone();
            let at = self.rng.below(items.len() as u64 + 1) as usize;
            items.insert(at, copy);
        }
        items
    }

    /// A hostile string: empty, 32 KB, odd characters, or random text.
    fn hostile_string(&mut self) -> (String, &'static str) {
        match self.rng.below(7) {
            0 => (String::new(), "empty"),
            1 => ("x".repeat(LONG_STRING), "long"),
            2 => (
                "é☃\u{0}\u{7f}".repeat(1 + self.rng.below(64) as usize),
                "unicode",
            ),
            3 => ("../..".to_string(), "dots"),
            4 => ("a".repeat(250 + self.rng.below(10) as usize), "over-249"),
            5 => (" \t\n".to_string(), "space"),
            _ => {
                let len = 1 + self.rng.below(40) as usize;
                let s: String = (0..len)
                    .map(|_| (b'!' + self.rng.below(94) as u8) as char)
                    .collect();
                (s, "random")
            }
        }
    }

    pub fn string(&mut self, site: &str, valid: &str) -> StrBytes {
        if self.roll() {
            let (s, kind) = self.hostile_string();
            if self.accept(site, kind) {
                return StrBytes::from_string(s);
            }
        }
        StrBytes::from_string(valid.to_string())
    }

    /// A nullable string: the valid one, null, or hostile.
    pub fn opt_string(&mut self, site: &str, valid: Option<&str>) -> Option<StrBytes> {
        if self.roll() && self.rng.chance(1, 3) {
            let flipped = if valid.is_some() {
                None
            } else {
                Some(StrBytes::from_static_str("fz-instance"))
            };
            if self.accept(site, "null-flip") {
                return flipped;
            }
        }
        valid.map(|v| self.string(site, v))
    }

    /// A topic name: `valid` (an existing topic), or an unknown or hostile
    /// name. Unknown names come from a bounded set so auto-creation cannot
    /// grow the broker without limit.
    pub fn topic(&mut self, site: &str, valid: &str) -> TopicName {
        if self.roll() && self.rng.chance(1, 2) {
            let unknown = format!("fz-unknown-{}", self.rng.below(64));
            if self.accept(site, "unknown") {
                return TopicName(StrBytes::from_string(unknown));
            }
        }
        TopicName(self.string(site, valid))
    }

    /// An opaque byte field (group protocol metadata, assignments).
    pub fn bytes(&mut self, site: &str, valid: &[u8]) -> Bytes {
        if self.roll() {
            let (v, kind) = match self.rng.below(3) {
                0 => (Vec::new(), "empty"),
                1 => (vec![0xff; LONG_STRING], "long"),
                _ => {
                    let mut v = vec![0; 1 + self.rng.below(64) as usize];
                    self.rng.fill(&mut v);
                    (v, "random")
                }
            };
            if self.accept(site, kind) {
                return Bytes::from(v);
            }
        }
        Bytes::copy_from_slice(valid)
    }

    /// A class recorded by a builder that chose a hostile variant itself
    /// (a hostile record batch); false when skipped.
    pub fn custom(&mut self, site: &str, kind: &str) -> bool {
        self.roll() && self.accept(site, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_knobs_return_the_valid_values() {
        let mut rng = Rng::new(3);
        let mut k = Knobs::new(&mut rng, false, "Fetch", &[]);
        for _ in 0..1000 {
            assert_eq!(k.i32("max_bytes", 7), 7);
            assert_eq!(k.count("topics", 2), 2);
            assert_eq!(k.topic("topic", "t").0.as_str(), "t");
        }
        assert!(k.applied.is_empty());
    }

    #[test]
    fn active_knobs_mutate_and_name_the_class_and_skips_hold() {
        let mut rng = Rng::new(4);
        let mut k = Knobs::new(&mut rng, true, "CreatePartitions", &[]);
        let values: Vec<i32> = (0..2000).map(|_| k.i32("count", 3)).collect();
        assert!(values.iter().any(|&v| v < 0));
        assert!(k
            .applied
            .iter()
            .any(|c| c == "createpartitions.count-negative"));

        let skip = vec!["createpartitions.count-negative".to_string()];
        let mut rng = Rng::new(4);
        let mut k = Knobs::new(&mut rng, true, "CreatePartitions", &skip);
        for _ in 0..2000 {
            assert!(k.i32("count", 3) >= 0);
        }
    }

    #[test]
    fn waits_stay_small() {
        let mut rng = Rng::new(5);
        let mut k = Knobs::new(&mut rng, true, "Fetch", &[]);
        for _ in 0..2000 {
            assert!(k.wait_ms("max_wait_ms", 20) <= 50);
        }
    }
}
