//! What the produce path costs per batch before the WAL sees it:
//! `produce_batch` (parse and validate, CRC-32C over the whole batch),
//! `set_base_offset` (8 bytes, no CRC) and `set_log_append_time` (validate,
//! rewrite, CRC again), on Kafka v2 batches of the shapes producers send.
//! Per-op time is the median of several repetitions; GB/s is batch bytes
//! (10^9 bytes) per second at that time. Each batch stays in cache, as a
//! batch just read from the socket does.
//!
//! `cargo bench -p sluice-protocol --bench batch`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_protocol::record_batch::{produce_batch, set_base_offset, set_log_append_time};

/// Repetitions per case; the median is reported. Many short ones, so a
/// repetition the scheduler interrupts (2 shared cores) stays an outlier.
const REPS: usize = 41;
/// Wall time one repetition aims for.
const REP_TIME: Duration = Duration::from_millis(15);
/// Wall time the iteration count is calibrated over.
const CALIBRATION_TIME: Duration = Duration::from_millis(10);
/// Unix milliseconds of 2026-11-26, so timestamps have realistic widths.
const NOW_MS: i64 = 1_795_651_200_000;

/// Batches as producers send them: (label, records, value bytes).
const SHAPES: [(&str, usize, usize); 4] = [
    ("1 x 1 KiB", 1, 1024),
    ("16 x 1 KiB", 16, 1024),
    ("100 x 100 B", 100, 100),
    ("1000 x 1 KiB", 1000, 1024),
];

fn main() {
    println!(
        "batch: Kafka v2 batches, no compression, idempotent producer; median of {REPS} \
         repetitions of ~{} ms; GB = 10^9 bytes",
        REP_TIME.as_millis()
    );
    for (label, records, value) in SHAPES {
        let mut batch = encode(records, value);
        let size = batch.len();
        // Every case measures the success path: the batch must be valid
        // before, and still valid after each rewrite.
        produce_batch(&batch).expect("encoded batch validates");

        let validate = measure(|_| {
            black_box(produce_batch(black_box(&batch))).ok();
        });
        print_case("produce_batch", label, size, &validate);

        let rewrite = measure(|i| {
            black_box(set_base_offset(black_box(&mut batch), i as i64)).ok();
        });
        assert_eq!(
            produce_batch(&batch).map(|b| b.base_offset() >= 0),
            Ok(true)
        );
        print_case("set_base_offset", label, size, &rewrite);

        let stamp = measure(|i| {
            black_box(set_log_append_time(
                black_box(&mut batch),
                NOW_MS + i as i64,
            ))
            .ok();
        });
        assert_eq!(
            produce_batch(&batch).map(|b| b.timestamp_type()),
            Ok(TimestampType::LogAppend)
        );
        print_case("set_log_append_time", label, size, &stamp);
    }
}

/// One batch of `records` records with `value`-byte values and no key.
fn encode(records: usize, value: usize) -> Vec<u8> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 4000,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: NOW_MS + i as i64,
            key: None,
            value: Some(Bytes::from(
                (0..value)
                    .map(|_| {
                        // xorshift64: payload bytes that look like data.
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect::<Vec<u8>>(),
            )),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.to_vec()
}

/// Nanoseconds per op over the repetitions.
struct Sample {
    median: f64,
    min: f64,
    max: f64,
}

/// Runs `op(i)` for i = 0, 1, ...: first to find how many calls fill
/// [`REP_TIME`], then [`REPS`] timed repetitions of that many.
fn measure(mut op: impl FnMut(u64)) -> Sample {
    let mut calls = 1u64;
    let per_call = loop {
        let started = Instant::now();
        for i in 0..calls {
            op(i);
        }
        let elapsed = started.elapsed();
        if elapsed >= CALIBRATION_TIME {
            break elapsed.as_secs_f64() / calls as f64;
        }
        calls *= 2;
    };
    let calls = ((REP_TIME.as_secs_f64() / per_call) as u64).max(1);
    let mut ns: Vec<f64> = (0..REPS)
        .map(|_| {
            let started = Instant::now();
            for i in 0..calls {
                op(i);
            }
            started.elapsed().as_secs_f64() * 1e9 / calls as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    Sample {
        median: ns[REPS / 2],
        min: ns[0],
        max: ns[REPS - 1],
    }
}

fn print_case(op: &str, label: &str, size: usize, s: &Sample) {
    println!(
        "{op:<19} {label:<12} {size:>9} B: {:>10.1} ns/op {:>10.2} GB/s  (repetitions {:.1}-{:.1} ns)",
        s.median,
        size as f64 / s.median,
        s.min,
        s.max
    );
}
