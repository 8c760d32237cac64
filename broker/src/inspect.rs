//! `sluice wal inspect DIR`: reads WAL segments directly and prints each
//! segment (frames, byte range, checksum verdict), the partitions and
//! offset ranges found, and totals. Read-only: nothing is repaired.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_protocol::record_batch::RecordBatch;
use sluice_wal_core::{scan, RecoveryMode};

use crate::groups::records::{GroupRecord, GROUP_RECORD};
use crate::layout;
use crate::log::frame::{
    parse_batch_frame, parse_log_start, LOG_START, RECORD_BATCH, RELOCATED_BATCH,
};
use crate::log::PartitionKey;

/// Inspects a WAL directory, or every shard's WAL under a data directory.
pub fn inspect(dir: &Path, frames: bool) -> Result<(), String> {
    let dirs = wal_dirs(dir)?;
    let names = crate::metadata::load(dir, usize::MAX).unwrap_or_default();
    let names: BTreeMap<[u8; 16], String> = names
        .topics
        .values()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let ex = glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| format!("starting the I/O executor: {e}"))?;
    ex.run(async move {
        for d in dirs {
            inspect_one(&d, frames, &names).await?;
        }
        Ok(())
    })
}

fn wal_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if layout::is_data_dir(dir) {
        return layout::wal_dirs(dir);
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    Ok(vec![dir.to_path_buf()])
}

#[derive(Default)]
struct Range {
    batches: u64,
    records: i64,
    first: i64,
    last: i64,
}

async fn inspect_one(
    dir: &Path,
    list_frames: bool,
    names: &BTreeMap<[u8; 16], String>,
) -> Result<(), String> {
    println!("WAL {}", dir.display());
    let mut partitions: BTreeMap<PartitionKey, Range> = BTreeMap::new();
    let mut unparsed = 0u64;
    let report = scan(dir, RecoveryMode::SkipCorruption, |f| {
        // A relocated batch is a copy the cleaner wrote forward: older
        // than the frames before it.
        let relocated = f.frame_type == RELOCATED_BATCH.id;
        let batch = (f.frame_type == RECORD_BATCH.id || relocated)
            .then(|| parse_batch_frame(f.payload))
            .flatten()
            .and_then(|(key, bytes)| Some((key, RecordBatch::parse(bytes).ok()?)));
        match batch {
            Some((key, b)) => {
                let r = partitions.entry(key).or_insert(Range {
                    first: b.base_offset(),
                    ..Range::default()
                });
                r.batches += 1;
                r.records += i64::from(b.record_count());
                r.first = r.first.min(b.base_offset());
                r.last = r.last.max(b.last_offset());
                if list_frames {
                    println!(
                        "  frame @{} type {}{} len {} topic {} partition {} offsets {}..={} records {}",
                        f.position,
                        f.frame_type,
                        if relocated { " (relocated)" } else { "" },
                        f.payload.len(),
                        topic_name(names, &key.topic_id),
                        key.partition,
                        b.base_offset(),
                        b.last_offset(),
                        b.record_count()
                    );
                }
            }
            None => {
                unparsed += 1;
                if list_frames && f.frame_type == GROUP_RECORD.id {
                    let record = GroupRecord::decode(f.payload);
                    println!("  frame @{} type {} len {} group record {record:?}", f.position, f.frame_type, f.payload.len());
                } else if list_frames && f.frame_type == LOG_START.id {
                    match parse_log_start(f.payload) {
                        Some((key, offset)) => println!(
                            "  frame @{} type {} len {} topic {} partition {} log start {offset}",
                            f.position, f.frame_type, f.payload.len(), topic_name(names, &key.topic_id), key.partition
                        ),
                        None => println!("  frame @{} type {} len {} (short log-start frame)", f.position, f.frame_type, f.payload.len()),
                    }
                } else if list_frames {
                    println!("  frame @{} type {} len {} (not a record batch)", f.position, f.frame_type, f.payload.len());
                }
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    for s in &report.segments {
        let verdict = if !s.header_valid {
            "TORN HEADER (last segment, nothing acknowledged in it)".to_string()
        } else if let Some(t) = &s.torn_tail {
            format!(
                "ok, torn tail at offset {} ({} bytes dropped on open: {})",
                t.offset, t.dropped_bytes, t.reason
            )
        } else if !s.skipped.is_empty() {
            let ranges: Vec<String> = s
                .skipped
                .iter()
                .map(|r| format!("offset {} (+{} bytes): {}", r.offset, r.len, r.reason))
                .collect();
            format!("CORRUPT at {}", ranges.join("; "))
        } else {
            "ok".to_string()
        };
        println!(
            "  segment {} frames {} bytes {}..{} of {} checksums {}",
            s.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            s.frames,
            s.base,
            s.base + s.valid_end,
            s.file_len,
            verdict
        );
    }
    for (key, r) in &partitions {
        println!(
            "  partition {}/{}: {} batches, {} records, offsets {}..={}",
            topic_name(names, &key.topic_id),
            key.partition,
            r.batches,
            r.records,
            r.first,
            r.last
        );
    }
    println!(
        "  total: {} segments, {} frames ({} not record batches), {} payload bytes, {} corrupt bytes skipped, {:.3} s",
        report.segments.len(),
        report.frames,
        unparsed,
        report.payload_bytes,
        report.skipped_bytes(),
        report.seconds
    );
    Ok(())
}

fn topic_name(names: &BTreeMap<[u8; 16], String>, id: &[u8; 16]) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.iter().map(|b| format!("{b:02x}")).collect())
}
