//! The status page at `/` of the metrics listener: one self-contained HTML
//! page (no external assets, refreshed every 5 s) with the shards and
//! their WAL, the topics and partitions with sizes and rates, and the
//! consumer groups with their lag. Rates are the change since the page was
//! last loaded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use crate::metrics::{Histogram, PartitionReport, ShardReport};

/// Most partition rows shown (the topics table counts them all).
const PARTITION_ROWS: usize = 1000;

/// Per topic: records and bytes in and out, when the page was last made.
pub type Totals = (Instant, BTreeMap<String, [u64; 4]>);

/// `s` with the characters HTML gives a meaning escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A byte count for people.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The upper bound of the bucket holding the `q` quantile, in ms.
fn quantile_ms(h: &Histogram, q: f64) -> String {
    if h.count() == 0 {
        return "-".into();
    }
    let want = (q * h.count() as f64).ceil() as u64;
    let (mut seen, mut below) = (0, 0.0);
    for (bound, n) in h.buckets() {
        seen += n;
        if seen >= want {
            return if bound.is_infinite() {
                format!("> {} ms", below * 1000.0)
            } else {
                format!("≤ {} ms", bound * 1000.0)
            };
        }
        below = bound;
    }
    "-".into()
}

/// The page for `reports` (`None`: a shard that did not answer).
pub fn render(
    reports: &[Option<ShardReport>],
    connections: usize,
    ready: bool,
    last: &mut Option<Totals>,
) -> String {
    let answered: Vec<&ShardReport> = reports.iter().flatten().collect();
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sluice</title>\
         <meta http-equiv=\"refresh\" content=\"5\"><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin-bottom:1.5em}}\
         th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}\
         th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}\
         .bad{{color:#b00;font-weight:bold}}</style></head><body>\
         <h1>Sluice</h1><p id=\"summary\">{} of {} shards answering, {} connections open, {}</p>",
        answered.len(),
        reports.len(),
        connections,
        if ready { "ready" } else { "recovering" }
    );
    shards(&mut page, reports);
    let partitions = crate::metrics::sorted_partitions(answered.iter().copied());
    topics(&mut page, &partitions, last);
    partition_rows(&mut page, &partitions);
    groups(&mut page, &answered, &partitions);
    page.push_str("</body></html>\n");
    page
}

fn shards(page: &mut String, reports: &[Option<ShardReport>]) {
    page.push_str(
        "<h2>Shards</h2><table id=\"shards\"><tr><th>shard</th><th>WAL</th><th>segments</th>\
         <th>on disk</th><th>appended</th><th>flushes</th><th>fdatasync p50</th>\
         <th>fdatasync p99</th><th>frames per flush</th><th>fetch buffer</th>\
         <th>memory in use</th></tr>",
    );
    for (i, report) in reports.iter().enumerate() {
        let Some(r) = report else {
            let _ = write!(
                page,
                "<tr><td>{i}</td><td class=\"bad\" colspan=\"10\">not answering</td></tr>"
            );
            continue;
        };
        let (sync, frames) = (&r.wal.sync_seconds, &r.wal.flush_frames);
        let per_flush = frames.sum() / frames.count().max(1) as f64;
        let _ = write!(
            page,
            "<tr><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{per_flush:.1}</td><td>{}</td><td>{}</td></tr>",
            r.shard,
            if r.wal.failed { " class=\"bad\"" } else { "" },
            if r.wal.failed { "FAILED" } else { "ok" },
            r.wal.segments,
            bytes(r.wal.disk_bytes),
            bytes(r.wal.payload_bytes),
            r.wal.flushes,
            quantile_ms(sync, 0.5),
            quantile_ms(sync, 0.99),
            bytes(r.fetch_buffer_bytes),
            bytes(r.memory_used),
        );
    }
    page.push_str("</table>");
}

fn topics(page: &mut String, partitions: &[&PartitionReport], last: &mut Option<Totals>) {
    let mut totals: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut sizes: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for p in partitions {
        let t = totals.entry(p.topic.clone()).or_default();
        for (sum, v) in t
            .iter_mut()
            .zip([p.records_in, p.bytes_in, p.records_out, p.bytes_out])
        {
            *sum += v;
        }
        let s = sizes.entry(&p.topic).or_default();
        s.0 += 1;
        s.1 += p.bytes;
    }
    let now = Instant::now();
    let before = last.take();
    page.push_str(
        "<h2>Topics</h2><table id=\"topics\"><tr><th>topic</th><th>partitions</th>\
         <th>size</th><th>records in</th><th>records out</th><th>in</th><th>out</th></tr>",
    );
    for (topic, t) in &totals {
        let rate = |i: usize| match &before {
            Some((at, old)) => {
                let seconds = now.duration_since(*at).as_secs_f64().max(1e-3);
                let delta = t[i].saturating_sub(old.get(topic).map_or(0, |o| o[i]));
                format!("{}/s", bytes((delta as f64 / seconds) as u64))
            }
            None => "-".into(),
        };
        let (count, size) = sizes[topic.as_str()];
        let _ = write!(
            page,
            "<tr data-topic=\"{0}\"><td>{0}</td><td>{count}</td><td>{1}</td><td>{2}</td>\
             <td>{3}</td><td>{4}</td><td>{5}</td></tr>",
            escape(topic),
            bytes(size),
            t[0],
            t[2],
            rate(1),
            rate(3),
        );
    }
    page.push_str("</table>");
    *last = Some((now, totals));
}

fn partition_rows(page: &mut String, partitions: &[&PartitionReport]) {
    let _ = write!(
        page,
        "<h2>Partitions</h2><table id=\"partitions\"><tr><th>topic</th><th>partition</th>\
         <th>log start</th><th>high watermark</th><th>size</th></tr>"
    );
    for p in partitions.iter().take(PARTITION_ROWS) {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.topic),
            p.partition,
            p.log_start,
            p.high_watermark,
            bytes(p.bytes)
        );
    }
    page.push_str("</table>");
    if partitions.len() > PARTITION_ROWS {
        let _ = write!(
            page,
            "<p>{} more partitions not shown.</p>",
            partitions.len() - PARTITION_ROWS
        );
    }
}

fn groups(page: &mut String, answered: &[&ShardReport], partitions: &[&PartitionReport]) {
    page.push_str(
        "<h2>Consumer groups</h2><table id=\"groups\"><tr><th>group</th><th>state</th>\
         <th>members</th><th>topic</th><th>partitions committed</th><th>lag</th></tr>",
    );
    for (g, lags) in crate::metrics::group_lags(answered, partitions) {
        let mut by_topic: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
        for l in lags {
            let t = by_topic.entry(l.topic).or_default();
            t.0 += 1;
            t.1 += l.lag;
        }
        if by_topic.is_empty() {
            by_topic.insert("", (0, 0));
        }
        for (topic, (count, lag)) in by_topic {
            let _ = write!(
                page,
                "<tr data-group=\"{0}\" data-topic=\"{1}\"><td>{0}</td><td>{2}</td><td>{3}</td>\
                 <td>{1}</td><td>{count}</td><td class=\"lag\">{lag}</td></tr>",
                escape(&g.group),
                escape(topic),
                g.state,
                g.members,
            );
        }
    }
    page.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_sizes_read_well() {
        assert_eq!(escape("<a&\"b'>"), "&lt;a&amp;&quot;b&#39;&gt;");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        let mut h = Histogram::new(&[0.001, 0.01]);
        for v in [0.0005, 0.0005, 0.005, 0.5] {
            h.observe(v);
        }
        assert_eq!(quantile_ms(&h, 0.5), "≤ 1 ms");
        assert_eq!(quantile_ms(&h, 0.99), "> 10 ms");
    }
}
