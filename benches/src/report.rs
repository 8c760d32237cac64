//! What a run prints: a human summary, and with `--json` one JSON object as
//! the last line of stdout (written by hand: no serde dependency).

use crate::stats::{Percentiles, Throughput};

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// produce, consume or e2e.
    pub mode: &'static str,
    pub throughput: Throughput,
    /// What the latency measures ("send to delivery report", ...); `None`
    /// for consume, which measures none.
    pub latency_kind: Option<&'static str>,
    pub latency: Percentiles,
    /// e2e also reports the produce side's latency.
    pub produce_latency: Option<Percentiles>,
    /// Offered load in open-loop mode.
    pub rate: Option<f64>,
    /// consume/e2e: the verification verdict, and whether it passed.
    pub verification: Option<(bool, String)>,
}

impl Report {
    pub fn text(&self) -> String {
        let t = &self.throughput;
        let mut out = format!(
            "{}: {} messages, {} errors in {:.2} s: {:.0} msgs/s, {:.2} MB/s",
            self.mode,
            t.messages,
            t.errors,
            t.elapsed.as_secs_f64(),
            t.msgs_per_sec(),
            t.mb_per_sec()
        );
        if let Some(r) = self.rate {
            out.push_str(&format!(" (offered {r:.0} msgs/s, open loop)"));
        }
        if let Some(kind) = self.latency_kind {
            out.push_str(&format!(
                "\n  latency, {kind}: {}",
                fmt_percentiles(&self.latency)
            ));
        }
        if let Some(p) = &self.produce_latency {
            out.push_str(&format!(
                "\n  latency, send to delivery report: {}",
                fmt_percentiles(p)
            ));
        }
        if let Some((_, verdict)) = &self.verification {
            out.push_str(&format!("\n  {verdict}"));
        }
        out
    }

    pub fn json(&self) -> String {
        let t = &self.throughput;
        let mut j = JsonObject::default();
        j.string("mode", self.mode);
        j.uint("messages", t.messages);
        j.uint("errors", t.errors);
        j.uint("bytes", t.bytes);
        j.float("elapsed_s", t.elapsed.as_secs_f64());
        j.float("msgs_per_sec", t.msgs_per_sec());
        j.float("mb_per_sec", t.mb_per_sec());
        percentiles_json(&mut j, "", &self.latency);
        if let Some(p) = &self.produce_latency {
            percentiles_json(&mut j, "produce_", p);
        }
        if let Some(r) = self.rate {
            j.float("rate", r);
        }
        if let Some((ok, verdict)) = &self.verification {
            j.bool("verified", *ok);
            j.string("verification", verdict);
        }
        j.finish()
    }
}

/// "p50 1.500 ms, p90 ..., max 9.000 ms", as every report prints latency.
pub fn fmt_percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    )
}

/// The percentiles as `{prefix}p50_ms` ... `{prefix}max_ms` fields.
pub fn percentiles_json(j: &mut JsonObject, prefix: &str, p: &Percentiles) {
    j.float(&format!("{prefix}p50_ms"), p.p50_ms);
    j.float(&format!("{prefix}p90_ms"), p.p90_ms);
    j.float(&format!("{prefix}p99_ms"), p.p99_ms);
    j.float(&format!("{prefix}p999_ms"), p.p999_ms);
    j.float(&format!("{prefix}max_ms"), p.max_ms);
}

/// A flat JSON object built field by field.
#[derive(Default)]
pub struct JsonObject {
    body: String,
}

impl JsonObject {
    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_json_string(&mut self.body, key);
        self.body.push(':');
    }

    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(&mut self.body, value);
    }

    pub fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        self.body.push_str(&value.to_string());
    }

    /// Non-finite values (never produced by `stats`) are written as null:
    /// JSON has no NaN.
    pub fn float(&mut self, key: &str, value: f64) {
        self.key(key);
        if value.is_finite() {
            self.body
                .push_str(&format!("{}", (value * 1000.0).round() / 1000.0));
        } else {
            self.body.push_str("null");
        }
    }

    pub fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.body.push_str(if value { "true" } else { "false" });
    }

    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        Report {
            mode: "produce",
            throughput: Throughput {
                messages: 1000,
                bytes: 1000 * 1024,
                errors: 2,
                elapsed: Duration::from_secs(2),
            },
            latency_kind: Some("send to delivery report"),
            latency: Percentiles {
                p50_ms: 1.5,
                p90_ms: 2.0,
                p99_ms: 3.25,
                p999_ms: 4.0,
                max_ms: 9.0,
            },
            produce_latency: None,
            rate: None,
            verification: None,
        }
    }

    #[test]
    fn json_has_the_required_fields() {
        let j = report().json();
        assert!(
            j.starts_with('{') && j.ends_with('}') && !j.contains('\n'),
            "{j}"
        );
        for field in [
            "\"mode\":\"produce\"",
            "\"messages\":1000",
            "\"errors\":2",
            "\"msgs_per_sec\":500",
            "\"mb_per_sec\":0.488",
            "\"p50_ms\":1.5",
            "\"p99_ms\":3.25",
            "\"p999_ms\":4",
            "\"max_ms\":9",
        ] {
            assert!(j.contains(field), "{field} missing from {j}");
        }
    }

    #[test]
    fn json_escapes_and_nan() {
        let mut j = JsonObject::default();
        j.string("v", "a\"b\\c\nd\u{1}");
        j.float("x", f64::NAN);
        j.bool("ok", true);
        assert_eq!(j.finish(), r#"{"v":"a\"b\\c\nd\u0001","x":null,"ok":true}"#);
    }

    #[test]
    fn text_mentions_rates_latency_and_verdict() {
        let mut r = report();
        r.verification = Some((
            true,
            "verified: 1000 messages, per-partition order intact".into(),
        ));
        let t = r.text();
        assert!(
            t.starts_with("produce: 1000 messages, 2 errors in 2.00 s: 500 msgs/s, 0.49 MB/s"),
            "{t}"
        );
        assert!(t.contains("p99 3.250 ms"), "{t}");
        assert!(t.contains("verified: 1000"), "{t}");
    }
}
