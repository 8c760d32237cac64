//! Latency histogram (HDR, microsecond precision) and the run summary with
//! its rates. All the arithmetic the report prints lives here so it can be
//! tested without a broker.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency recorded exactly: one hour, in microseconds. Longer
/// latencies saturate to it rather than being dropped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Bytes per MB in every rate printed (2^20, as kafka-producer-perf-test).
pub const MB: f64 = (1u64 << 20) as f64;

/// Latencies in microseconds, 3 significant digits.
#[derive(Clone)]
pub struct LatencyHistogram {
    h: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LatencyHistogram({} values)", self.h.len())
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // Cannot fail: 1 <= low, high >= 2 * low and sigfig <= 5.
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        Self { h }
    }

    /// Records one latency (below 1 µs counts as 1 µs, above an hour as an hour).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.h.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Adds another histogram's values (one per producer thread).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Cannot fail: both have the same bounds, so nothing is out of range.
        self.h.add(&other.h).expect("histograms with equal bounds");
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The latency at quantile `q` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.h.is_empty() {
            return 0.0;
        }
        self.h.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        if self.h.is_empty() {
            return 0.0;
        }
        self.h.max() as f64 / 1000.0
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50_ms: self.quantile_ms(0.50),
            p90_ms: self.quantile_ms(0.90),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.max_ms(),
        }
    }
}

/// The percentiles every report prints, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Messages, bytes and errors over a measured interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.messages as f64, self.elapsed)
    }

    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / MB, self.elapsed)
    }
}

/// `amount / elapsed`, 0 for an empty interval (never NaN or infinite).
pub fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        amount / s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-9)
    }

    #[test]
    fn percentiles_of_one_to_ten_thousand_micros() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 10_000);
        let p = h.percentiles();
        // 3 significant digits: within 0.1%.
        assert!(approx(p.p50_ms, 5.0, 0.001), "{p:?}");
        assert!(approx(p.p90_ms, 9.0, 0.001), "{p:?}");
        assert!(approx(p.p99_ms, 9.9, 0.001), "{p:?}");
        assert!(approx(p.p999_ms, 9.99, 0.001), "{p:?}");
        assert!(approx(p.max_ms, 10.0, 0.001), "{p:?}");
    }

    #[test]
    fn tail_is_not_hidden() {
        // 999 fast messages and one stalled one: p99.9 and max see it.
        let mut h = LatencyHistogram::new();
        for _ in 0..999 {
            h.record(Duration::from_micros(500));
        }
        h.record(Duration::from_millis(250));
        let p = h.percentiles();
        assert!(approx(p.p50_ms, 0.5, 0.001));
        assert!(approx(p.p99_ms, 0.5, 0.001));
        assert!(approx(p.p999_ms, 0.5, 0.001));
        assert!(approx(p.max_ms, 250.0, 0.001));
        h.record(Duration::from_millis(250));
        assert!(approx(h.quantile_ms(0.999), 250.0, 0.001));
    }

    #[test]
    fn merge_and_saturation() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_micros(100));
        b.record(Duration::from_micros(300));
        b.record(Duration::from_nanos(10)); // below 1 µs counts as 1 µs
        b.record(Duration::from_secs(10 * 3600)); // beyond an hour saturates
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert!(approx(a.quantile_ms(0.0), 0.001, 0.001));
        assert!(approx(a.max_ms(), 3_600_000.0, 0.001));
    }

    #[test]
    fn empty_histogram_reports_zero() {
        assert_eq!(
            LatencyHistogram::new().percentiles(),
            Percentiles::default()
        );
    }

    #[test]
    fn rates() {
        let t = Throughput {
            messages: 50_000,
            bytes: 50_000 * 1024,
            errors: 0,
            elapsed: Duration::from_millis(2500),
        };
        assert!(approx(t.msgs_per_sec(), 20_000.0, 1e-12));
        assert!(approx(t.mb_per_sec(), 50_000.0 * 1024.0 / MB / 2.5, 1e-12));
        assert!(approx(t.mb_per_sec(), 19.53125, 1e-12));
        let zero = Throughput {
            elapsed: Duration::ZERO,
            ..t
        };
        assert_eq!(zero.msgs_per_sec(), 0.0);
        assert_eq!(zero.mb_per_sec(), 0.0);
    }
}
