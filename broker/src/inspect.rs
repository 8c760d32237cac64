//! `sluice wal inspect DIR`: reads WAL segments directly and prints each
//! segment (frames, byte range, checksum verdict, and, given a data
//! directory, how much of it is still live: what the cleaner would have to
//! copy before deleting it), the spare segment, the partitions and offset
//! ranges found, and totals. Read-only: nothing is repaired.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_protocol::record_batch::{ControlType, RecordBatch};
use sluice_wal_core::{scan, RecoveryMode};

use crate::frames::FrameOwner;
use crate::groups::records::{GroupRecord, GROUP_RECORD};
use crate::groups::Coordinator;
use crate::layout;
use crate::log::frame::{
    parse_batch_frame, parse_log_start, LOG_START, RECORD_BATCH, RELOCATED_BATCH,
};
use crate::log::LogState;
use crate::log::PartitionKey;
use crate::metadata::Metadata;
use crate::shard_id::ShardId;
use crate::transactions::state::TXN_RECORD;
use crate::transactions::TxnCoordinator;

/// Inspects a WAL directory, or every shard's WAL under a data directory.
pub fn inspect(dir: &Path, frames: bool) -> Result<(), String> {
    let dirs = wal_dirs(dir)?;
    // Liveness needs the topics (which shard owns what): a data directory.
    let metadata = layout::is_data_dir(dir)
        .then(|| crate::metadata::load(dir, usize::MAX).ok())
        .flatten();
    let names: BTreeMap<[u8; 16], String> = metadata
        .iter()
        .flat_map(|m| m.topics.values())
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let ex = glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| format!("starting the I/O executor: {e}"))?;
    ex.run(async move {
        for d in dirs {
            inspect_one(&d, frames, &names, metadata.as_ref()).await?;
        }
        Ok(())
    })
}

/// The shard of a `shard-N/wal` directory.
fn shard_of(wal_dir: &Path) -> Option<ShardId> {
    let name = wal_dir.parent()?.file_name()?.to_str()?;
    Some(ShardId::new(name.strip_prefix("shard-")?.parse().ok()?))
}

/// What replay rebuilds of one shard, to tell live frames from dead ones.
struct Liveness {
    log: LogState,
    groups: Coordinator,
    txns: TxnCoordinator,
}

impl Liveness {
    /// Live (bytes, frames) per segment base.
    fn per_segment(&self, bases: &[u64]) -> BTreeMap<u64, (u64, u64)> {
        let mut live: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut add = |position: u64, bytes: u64, frames: u64| {
            let at = bases.partition_point(|b| *b <= position);
            if let Some(base) = at.checked_sub(1).map(|i| bases[i]) {
                let e = live.entry(base).or_default();
                e.0 += bytes;
                e.1 += frames;
            }
        };
        for p in self.log.partitions.values() {
            for c in &p.chunks {
                add(
                    c.position,
                    u64::from(c.bytes) + 20 * u64::from(c.batches),
                    u64::from(c.batches),
                );
            }
            if let Some(at) = p.log_start_position {
                add(at, 28, 1);
            }
        }
        for (_, at) in self.txns.txns.values() {
            add(*at, 0, 1);
        }
        for g in self.groups.groups.values() {
            for c in g
                .offsets
                .values()
                .chain(g.txn_offsets.values().flat_map(|h| h.values()))
            {
                add(c.position, 0, 1);
            }
            if let Some(at) = g.generation_position {
                add(at, 0, 1);
            }
        }
        live
    }
}

/// What a batch is in a transaction, for the frame list: a marker
/// (control batch) or a transactional producer's records.
fn transaction_note(b: &RecordBatch<'_>) -> String {
    match b.control_type() {
        Some(control) => format!(
            " {} marker of producer {} epoch {}",
            match control {
                ControlType::Commit => "COMMIT",
                ControlType::Abort => "ABORT",
            },
            b.producer_id(),
            b.producer_epoch()
        ),
        None if b.is_control() => " control batch (unknown type)".to_string(),
        None if b.is_transactional() => format!(" transactional, producer {}", b.producer_id()),
        None => String::new(),
    }
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
    metadata: Option<&Metadata>,
) -> Result<(), String> {
    println!("WAL {}", dir.display());
    let mut partitions: BTreeMap<PartitionKey, Range> = BTreeMap::new();
    let mut unparsed = 0u64;
    let mut liveness = metadata.zip(shard_of(dir)).map(|(m, shard)| {
        (
            m,
            Liveness {
                log: LogState::new(shard),
                groups: Coordinator::default(),
                txns: TxnCoordinator::default(),
            },
        )
    });
    let report = scan(dir, RecoveryMode::SkipCorruption, |f| {
        if let Some((metadata, live)) = liveness.as_mut() {
            if f.frame_type == GROUP_RECORD.id {
                live.groups.replay(&f, metadata);
            } else if f.frame_type == TXN_RECORD.id {
                live.txns.replay(&f, metadata);
            } else {
                live.log.replay(&f, metadata);
            }
        }
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
                        "  frame @{} type {}{} len {} topic {} partition {} offsets {}..={} records {}{}",
                        f.position,
                        f.frame_type,
                        if relocated { " (relocated)" } else { "" },
                        f.payload.len(),
                        topic_name(names, &key.topic_id),
                        key.partition,
                        b.base_offset(),
                        b.last_offset(),
                        b.record_count(),
                        transaction_note(&b)
                    );
                }
            }
            None => {
                unparsed += 1;
                if list_frames && f.frame_type == TXN_RECORD.id {
                    match crate::transactions::state::Txn::decode(f.payload) {
                        Ok(t) => println!(
                            "  frame @{} type {} len {} transaction {} producer {} epoch {} {} partitions {} groups {}",
                            f.position, f.frame_type, f.payload.len(), t.id, t.producer_id, t.epoch,
                            t.state.name(), t.partitions.len(), t.groups.len()
                        ),
                        Err(e) => println!("  frame @{} type {} len {} (transaction record: {e})", f.position, f.frame_type, f.payload.len()),
                    }
                } else if list_frames && f.frame_type == GROUP_RECORD.id {
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
    let live = liveness.as_mut().map(|(_, live)| {
        live.log.finish_replay();
        let bases: Vec<u64> = report.segments.iter().map(|s| s.base).collect();
        live.per_segment(&bases)
    });
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
        if let Some(live) = &live {
            let (bytes, frames) = live.get(&s.base).copied().unwrap_or_default();
            println!(
                "    live: {bytes} bytes in {frames} frames ({:.1}% of {}): {}",
                100.0 * bytes as f64 / s.valid_end.max(1) as f64,
                s.valid_end,
                if frames == 0 {
                    "nothing needs it, the cleaner deletes it"
                } else {
                    "copied forward before it is deleted"
                }
            );
        }
    }
    let reserved: Vec<u64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(sluice_wal_core::segment::is_spare)
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.blocks() * 512
                })
                .collect()
        })
        .unwrap_or_default();
    if reserved.is_empty() {
        println!("  spare segment: none (the disk may be full, or the broker never ran here)");
    } else {
        let bytes: u64 = reserved.iter().sum();
        println!("  spare segment: {bytes} bytes reserved for the next roll");
    }
    if live.is_none() {
        println!("  live: unknown (give the data directory, which holds the topics, to see it)");
    }
    let end = report.segments.last().map_or(0, |s| s.base + s.valid_end);
    print_checkpoints(dir, end, metadata);
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

/// The shard's checkpoints (beside its WAL directory), newest first, each
/// with its verdict; the first valid one is where the next start replays
/// from.
fn print_checkpoints(wal_dir: &Path, log_end: u64, metadata: Option<&Metadata>) {
    let (Some(shard), Some(shard_dir)) = (shard_of(wal_dir), wal_dir.parent()) else {
        return;
    };
    let dir = shard_dir.join("checkpoints");
    let found = crate::checkpoint::list(&dir);
    if found.is_empty() {
        println!("  checkpoints: none (the next start replays the whole WAL)");
        return;
    }
    let mut chosen = false;
    for (position, path) in found {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let read = crate::checkpoint::read(&path, shard).and_then(|c| {
            if c.position > log_end {
                return Err(format!("beyond the end of the log ({log_end})"));
            }
            Ok(c)
        });
        let verdict = match (&read, metadata) {
            (Err(why), _) => format!("NOT USABLE: {why}"),
            (Ok(c), Some(metadata)) => match crate::recovery::restore(c, shard, metadata) {
                Ok((_, log, groups, txns)) => format!(
                    "ok: {} partitions, {} index chunks, {} groups, {} transactional ids",
                    log.partitions.len(),
                    log.partitions
                        .values()
                        .map(|p| p.chunks.len())
                        .sum::<usize>(),
                    groups.groups.len(),
                    txns.txns.len()
                ),
                Err(why) => format!("NOT USABLE: {why}"),
            },
            (Ok(_), None) => "checksum ok".to_string(),
        };
        let usable = !verdict.starts_with("NOT");
        let next = if usable && !std::mem::replace(&mut chosen, true) {
            format!(
                "; the next start replays the {} bytes after it",
                log_end.saturating_sub(position)
            )
        } else {
            String::new()
        };
        println!(
            "  checkpoint {} at position {position}, {size} bytes: {verdict}{next}",
            name.unwrap_or_default()
        );
    }
    if !chosen {
        println!("  checkpoints: none usable (the next start replays the whole WAL)");
    }
}

fn topic_name(names: &BTreeMap<[u8; 16], String>, id: &[u8; 16]) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.iter().map(|b| format!("{b:02x}")).collect())
}
