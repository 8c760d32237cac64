//! The records inside one stored batch, read as a stream: decompressed a
//! piece at a time, never more than a cap in all, and stopped as soon as the
//! answer is found. The broker looks inside a batch only for ListOffsets by
//! timestamp; a batch of 40 KB can decompress to gigabytes, so nothing here
//! holds more than one small buffer and one snappy block.

use std::io::{self, BufReader, Read};

use sluice_protocol::kafka_protocol::records::{Compression, TimestampType};
use sluice_protocol::record_batch::RECORD_BATCH_OVERHEAD;
use sluice_protocol::RecordBatch;

/// Most decompressed bytes looked at for one answer.
pub const MAX_DECOMPRESSED: u64 = 16 << 20;

/// Offset and timestamp of the first record of `batch` stamped at or after
/// `ts`: `Ok(None)` if it holds none. `Err` says why the records could not
/// be read to the answer (damaged, or more than `cap` bytes decompressed);
/// the caller then answers with the batch itself, which is never later
/// than the right record.
pub fn first_record_at(batch: &[u8], ts: i64, cap: u64) -> Result<Option<(i64, i64)>, String> {
    let header = RecordBatch::parse(batch).map_err(|e| e.to_string())?;
    if header.timestamp_type() == TimestampType::LogAppend {
        // Every record carries the batch's time.
        return Ok(
            (header.max_timestamp() >= ts).then(|| (header.base_offset(), header.max_timestamp()))
        );
    }
    let records = &batch[RECORD_BATCH_OVERHEAD..];
    let stream: Box<dyn Read + '_> = match header.compression() {
        Compression::None => Box::new(records),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(records)),
        Compression::Snappy => Box::new(SnappyBlocks::new(records, cap)),
        Compression::Lz4 => Box::new(lz4::Decoder::new(records).map_err(|e| e.to_string())?),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(records).map_err(|e| e.to_string())?)
        }
    };
    let mut stream = BufReader::with_capacity(
        8 << 10,
        Capped {
            inner: stream,
            left: cap,
        },
    );
    let failed = |e: io::Error| e.to_string();
    for _ in 0..header.record_count() {
        let length = read_varint(&mut stream).map_err(failed)?;
        let mut counted = Counted {
            inner: &mut stream,
            read: 0,
        };
        let _attributes = read_byte(&mut counted).map_err(failed)?;
        let timestamp_delta = read_varint(&mut counted).map_err(failed)?;
        let offset_delta = read_varint(&mut counted).map_err(failed)?;
        let timestamp = header.base_timestamp().saturating_add(timestamp_delta);
        if timestamp >= ts {
            let offset = header.base_offset().saturating_add(offset_delta);
            return Ok(Some((offset, timestamp)));
        }
        let rest = u64::try_from(length)
            .ok()
            .and_then(|l| l.checked_sub(counted.read))
            .ok_or_else(|| format!("record length {length} is too short"))?;
        let skipped = io::copy(&mut (&mut stream).take(rest), &mut io::sink()).map_err(failed)?;
        if skipped < rest {
            return Err("the records end inside a record".into());
        }
    }
    Ok(None)
}

/// A reader that fails (rather than ending) once `left` bytes were read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("stopped at the decompression cap"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Counts the bytes read through it (a record's fields against its length).
struct Counted<'a, R> {
    inner: &'a mut R,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn read_byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// A zigzag varint (Kafka's varint and varlong: at most 10 bytes).
fn read_varint(r: &mut impl Read) -> io::Result<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = read_byte(r)?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(io::Error::other("a varint longer than 10 bytes"))
}

/// Kafka's snappy: xerial framing (a magic header, then blocks each behind
/// its 4-byte length) or, without the header, one raw block. One block is
/// decompressed at a time, and only if its stated length fits the cap.
struct SnappyBlocks<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    at: usize,
    cap: u64,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> SnappyBlocks<'a> {
    fn new(compressed: &'a [u8], cap: u64) -> SnappyBlocks<'a> {
        let framed = compressed.starts_with(XERIAL_MAGIC) && compressed.len() >= XERIAL_HEADER_LEN;
        SnappyBlocks {
            rest: if framed {
                &compressed[XERIAL_HEADER_LEN..]
            } else {
                compressed
            },
            framed,
            block: Vec::new(),
            at: 0,
            cap,
        }
    }

    /// Decompresses the next block; false at the end.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let block = if self.framed {
            let cut = || io::Error::other("a snappy block cut short");
            let len = self.rest.get(..4).ok_or_else(cut)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let block = self.rest.get(4..4 + len).ok_or_else(cut)?;
            self.rest = &self.rest[4 + len..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let len = snap::raw::decompress_len(block).map_err(io::Error::other)?;
        if len as u64 > self.cap {
            return Err(io::Error::other(
                "a snappy block larger than the decompression cap",
            ));
        }
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(io::Error::other)?;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyBlocks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Records at offsets 0.. with timestamps 100, 200, ... and `value_len`
    /// byte values.
    fn encode(n: i64, value_len: usize, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                // One batch needs consecutive sequences of one producer.
                producer_id: 4000,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 100 * (i + 1),
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![i as u8; value_len])),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn every_codec_finds_the_first_record_at_a_time() {
        for codec in CODECS {
            let batch = encode(5, 300, codec);
            let find = |ts| first_record_at(&batch, ts, MAX_DECOMPRESSED);
            assert_eq!(find(0), Ok(Some((0, 100))), "{codec:?}");
            assert_eq!(find(250), Ok(Some((2, 300))), "{codec:?}");
            assert_eq!(find(500), Ok(Some((4, 500))), "{codec:?}");
            assert_eq!(find(501), Ok(None), "{codec:?}");
        }
    }

    #[test]
    fn reading_stops_at_the_cap_and_at_the_answer() {
        for codec in CODECS {
            // 5 records of 1 MiB: the last lies 4 MiB in.
            let batch = encode(5, 1 << 20, codec);
            assert!(first_record_at(&batch, 500, 1 << 20).is_err(), "{codec:?}");
            // The first record is found without reading past it.
            assert_eq!(first_record_at(&batch, 100, 64 << 10), Ok(Some((0, 100))));
            assert_eq!(first_record_at(&batch, 500, 8 << 20), Ok(Some((4, 500))));
        }
    }

    #[test]
    fn damaged_records_are_an_error_not_a_panic() {
        let batch = encode(3, 100, Compression::None);
        // A record length of -1, and records cut short (CRCs re-signed so
        // only the records are wrong).
        for edit in [0usize, 1] {
            let mut bad = batch.clone();
            if edit == 0 {
                bad[RECORD_BATCH_OVERHEAD] = 1; // zigzag -1
            } else {
                bad[57..61].copy_from_slice(&9i32.to_be_bytes()); // 9 records claimed
            }
            let crc = crc32c::crc32c(&bad[21..]);
            bad[17..21].copy_from_slice(&crc.to_be_bytes());
            assert!(first_record_at(&bad, 10_000, MAX_DECOMPRESSED).is_err());
        }
    }
}
