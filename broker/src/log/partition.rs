//! One partition's log on its owning shard: offsets, and the index from
//! offset to WAL position.
//!
//! Offsets are assigned when a batch is handed to the WAL (log end offset);
//! the high watermark moves only once the batch is durable, and never back.

use std::collections::BTreeMap;

pub use crate::metadata::PartitionKey;

/// A partition's index gets a new chunk once the last one holds this many
/// bytes of batches (as Kafka's `index.interval.bytes`, larger: a fetch
/// reads whole chunks).
pub const CHUNK_BYTES: u32 = 64 << 10;

/// A chunk spans at most this many WAL bytes (its batches and the other
/// partitions' frames between them), which bounds the read that finds a
/// batch in it.
pub const CHUNK_SPAN: u64 = 1 << 20;

/// Chunks replay looks back at for one a relocated batch continues.
const REPLAY_LOOKBACK: usize = 8;

/// One batch: appended, replayed, or found in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// WAL position of the frame holding it.
    pub position: u64,
    /// Batch size in bytes.
    pub size: u32,
    /// Largest timestamp in the batch (for ListOffsets by time).
    pub max_timestamp: i64,
}

impl BatchEntry {
    /// WAL position just past its frame.
    fn frame_end(&self) -> u64 {
        self.position
            + sluice_wal_core::format::frame_disk_len(
                super::frame::BATCH_FRAME_HEADER + self.size as usize,
            )
    }
}

/// An entry of the sparse index: batches of consecutive offsets, stored in
/// position order in one WAL segment within [`CHUNK_SPAN`] bytes. A batch
/// in it is found by reading the span and skipping the other partitions'
/// frames (`Log::read_chunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First offset of its first batch.
    pub base_offset: i64,
    /// Last offset of its last batch.
    pub last_offset: i64,
    /// WAL position of its first batch's frame.
    pub position: u64,
    /// Base position of the segment it is in.
    pub segment: u64,
    /// WAL bytes from `position` to the end of its last frame.
    pub span: u32,
    /// Bytes of its batches.
    pub bytes: u32,
    /// Its batches.
    pub batches: u32,
    /// Largest timestamp of its batches.
    pub max_timestamp: i64,
}

impl Chunk {
    /// A chunk of one batch.
    pub fn of(entry: &BatchEntry, segment: u64) -> Chunk {
        Chunk {
            base_offset: entry.base_offset,
            last_offset: entry.last_offset,
            position: entry.position,
            segment,
            span: (entry.frame_end() - entry.position) as u32,
            bytes: entry.size,
            batches: 1,
            max_timestamp: entry.max_timestamp,
        }
    }

    /// WAL position just past its last frame.
    pub fn end(&self) -> u64 {
        self.position + u64::from(self.span)
    }

    /// Whether `entry` (in `segment`) continues it.
    fn takes(&self, entry: &BatchEntry, segment: u64) -> bool {
        entry.base_offset == self.last_offset + 1
            && segment == self.segment
            && entry.position >= self.end()
            && entry.frame_end() - self.position <= CHUNK_SPAN
            && self.bytes < CHUNK_BYTES
    }

    fn add(&mut self, entry: &BatchEntry) {
        self.last_offset = entry.last_offset;
        self.span = (entry.frame_end() - self.position) as u32;
        self.bytes += entry.size;
        self.batches += 1;
        self.max_timestamp = self.max_timestamp.max(entry.max_timestamp);
    }
}

/// Records and bytes through a partition since the process started.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// Records appended (offsets given out).
    pub records_in: u64,
    /// Bytes of the batches appended.
    pub bytes_in: u64,
    /// Records served to fetches (offsets of the batches returned).
    pub records_out: u64,
    /// Bytes served to fetches.
    pub bytes_out: u64,
}

/// A partition's log state.
#[derive(Debug, Default)]
pub struct Partition {
    /// First offset still in the log.
    pub log_start: i64,
    /// Offset the next batch gets (includes batches not yet durable).
    pub log_end: i64,
    /// Every offset below it is durable and visible to consumers.
    pub high_watermark: i64,
    /// The sparse index: chunks in offset order.
    pub chunks: Vec<Chunk>,
    /// For each chunk of `chunks`, the largest timestamp up to and
    /// including it: never decreasing, so a time is found by binary search,
    /// as in Kafka's time index (a scan per lookup made one ListOffsets
    /// with a thousand times stall its shard for seconds).
    times: Vec<i64>,
    /// Records appended, for the counts in logs.
    pub records: u64,
    /// Bytes of the batches in `chunks` (retention.bytes); the chunk
    /// holding the log start counts whole.
    pub bytes: u64,
    /// Batches in `chunks`.
    pub batches: u64,
    /// Records and bytes appended and fetched since the process started
    /// (metrics).
    pub traffic: Traffic,
    /// WAL position of the log-start frame that set `log_start`, if one did.
    pub log_start_position: Option<u64>,
    /// During replay: the log start the log-start frames set (the largest),
    /// applied once every frame is in.
    replayed_log_start: Option<i64>,
}

impl Partition {
    /// Index of the first chunk holding an offset at or after `offset`.
    pub fn chunk_at(&self, offset: i64) -> usize {
        self.chunks.partition_point(|c| c.last_offset < offset)
    }

    /// Appends a batch produced now, in WAL segment `segment`.
    pub fn append(&mut self, entry: BatchEntry, segment: u64) {
        self.traffic.records_in += (entry.last_offset - entry.base_offset + 1) as u64;
        self.traffic.bytes_in += u64::from(entry.size);
        self.push(entry, segment);
    }

    /// Records a new batch at the log end, in WAL segment `segment`.
    pub fn push(&mut self, entry: BatchEntry, segment: u64) {
        self.log_end = entry.last_offset + 1;
        self.records += (entry.last_offset - entry.base_offset + 1) as u64;
        self.bytes += u64::from(entry.size);
        self.batches += 1;
        match self.chunks.last_mut() {
            Some(last) if last.takes(&entry, segment) => {
                last.add(&entry);
                let t = self.times.last_mut().expect("a time per chunk");
                *t = (*t).max(entry.max_timestamp);
            }
            _ => self.push_chunk(Chunk::of(&entry, segment)),
        }
    }

    /// Appends a whole chunk at the end (offsets after every chunk's).
    fn push_chunk(&mut self, chunk: Chunk) {
        let so_far = self
            .times
            .last()
            .map_or(chunk.max_timestamp, |t| (*t).max(chunk.max_timestamp));
        self.times.push(so_far);
        self.chunks.push(chunk);
    }

    /// Moves the log start up to `offset` (never down, never past the log
    /// end) and forgets the chunks wholly below it.
    pub fn trim(&mut self, offset: i64) {
        if offset <= self.log_start {
            return;
        }
        self.log_start = offset;
        self.log_end = self.log_end.max(offset);
        self.high_watermark = self.high_watermark.max(offset);
        let below = self.chunk_at(offset);
        for c in self.chunks.drain(..below) {
            self.bytes -= u64::from(c.bytes);
            self.batches -= u64::from(c.batches);
        }
        self.times.drain(..below);
    }

    /// Replay: a batch (or a copy the cleaner made of one) in WAL order,
    /// which is not offset order once batches are relocated: it continues
    /// one of the last chunks, or starts one.
    pub fn replay_batch(&mut self, entry: BatchEntry, segment: u64) {
        self.log_end = self.log_end.max(entry.last_offset + 1);
        let from = self.chunks.len().saturating_sub(REPLAY_LOOKBACK);
        match self.chunks[from..]
            .iter_mut()
            .rev()
            .find(|c| c.takes(&entry, segment))
        {
            Some(chunk) => chunk.add(&entry),
            None => self.chunks.push(Chunk::of(&entry, segment)),
        }
    }

    /// Replay: a log-start frame at `position` set the log start.
    pub fn replay_log_start(&mut self, log_start: i64, position: u64) {
        if self.replayed_log_start.is_none_or(|s| log_start >= s) {
            self.replayed_log_start = Some(log_start);
            self.log_start_position = Some(position);
        }
    }

    /// Ends a replay: puts the chunks in offset order (where a batch and
    /// its copy are both there, the copy, written later, wins), applies
    /// the log start, rebuilds what is derived from the chunks, and makes
    /// everything visible. Returns the offset ranges missing between the
    /// log start and the log end, each with the WAL position of the chunk
    /// after it.
    pub fn finish_replay(&mut self) -> Vec<(i64, i64, u64)> {
        let mut chunks = std::mem::take(&mut self.chunks);
        // Relocated batches (or a checkpoint's chunks and what came after)
        // may be out of order or overlap.
        if chunks
            .windows(2)
            .any(|w| w[1].base_offset <= w[0].last_offset)
        {
            chunks = newest_per_offset(chunks);
        }
        let start = match self.replayed_log_start.take() {
            Some(s) => s,
            None => chunks.first().map_or(self.log_start, |c| c.base_offset),
        };
        let below = chunks.partition_point(|c| c.last_offset < start);
        let log_end = self.log_end.max(start);
        self.records = 0;
        self.bytes = 0;
        self.batches = 0;
        self.times.clear();
        let mut gaps = Vec::new();
        let mut expected = start;
        for c in chunks.into_iter().skip(below) {
            if c.base_offset > expected {
                gaps.push((expected, c.base_offset - 1, c.position));
            }
            expected = expected.max(c.last_offset + 1);
            self.records += (c.last_offset - c.base_offset + 1) as u64;
            self.bytes += u64::from(c.bytes);
            self.batches += u64::from(c.batches);
            self.push_chunk(c);
        }
        self.chunks.shrink_to_fit();
        self.times.shrink_to_fit();
        self.log_start = start;
        self.log_end = log_end;
        self.high_watermark = self.log_end;
        gaps
    }

    /// Appends the partition (as replay would rebuild it) to a checkpoint
    /// section.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.log_start.to_le_bytes());
        out.extend_from_slice(&self.log_end.to_le_bytes());
        let at = self.log_start_position.unwrap_or(u64::MAX);
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.base_offset.to_le_bytes());
            out.extend_from_slice(&c.last_offset.to_le_bytes());
            out.extend_from_slice(&c.position.to_le_bytes());
            out.extend_from_slice(&c.segment.to_le_bytes());
            out.extend_from_slice(&c.span.to_le_bytes());
            out.extend_from_slice(&c.bytes.to_le_bytes());
            out.extend_from_slice(&c.batches.to_le_bytes());
            out.extend_from_slice(&c.max_timestamp.to_le_bytes());
        }
    }

    /// Reads what [`Partition::snapshot`] wrote, as replay's starting
    /// point: the frames after the checkpoint are replayed on top, and
    /// [`Partition::finish_replay`] ends it as usual.
    pub fn restore(r: &mut crate::checkpoint::Reader<'_>) -> Result<Partition, String> {
        let log_start = r.i64()?;
        let log_end = r.i64()?;
        let log_start_position = Some(r.u64()?).filter(|at| *at != u64::MAX);
        let n = r.count(52)?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            chunks.push(Chunk {
                base_offset: r.i64()?,
                last_offset: r.i64()?,
                position: r.u64()?,
                segment: r.u64()?,
                span: r.u32()?,
                bytes: r.u32()?,
                batches: r.u32()?,
                max_timestamp: r.i64()?,
            });
        }
        Ok(Partition {
            log_start,
            log_end,
            chunks,
            log_start_position,
            replayed_log_start: Some(log_start),
            ..Partition::default()
        })
    }

    /// Bytes of memory its index takes.
    pub fn index_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.times.capacity() * std::mem::size_of::<i64>()
    }

    /// The chunks the cleaner copied forward in place of `old` (if it is
    /// still there: the log start may have passed it meanwhile), built
    /// from the copies' batches in offset order with their segments.
    pub fn replace_chunk(&mut self, old: &Chunk, copies: &[(BatchEntry, u64)]) -> bool {
        let at = self.chunk_at(old.base_offset);
        if self.chunks.get(at) != Some(old) {
            return false;
        }
        let mut new: Vec<Chunk> = Vec::new();
        for (entry, segment) in copies {
            if entry.last_offset < self.log_start {
                continue;
            }
            match new.last_mut() {
                Some(last) if last.takes(entry, *segment) => last.add(entry),
                _ => new.push(Chunk::of(entry, *segment)),
            }
        }
        self.bytes -= u64::from(old.bytes);
        self.batches -= u64::from(old.batches);
        self.bytes += new.iter().map(|c| u64::from(c.bytes)).sum::<u64>();
        self.batches += new.iter().map(|c| u64::from(c.batches)).sum::<u64>();
        let n = new.len();
        self.chunks.splice(at..=at, new);
        // The running maxima are unchanged past the new chunks and each is
        // at least their own: only the new ones need theirs.
        let before = at.checked_sub(1).map(|i| self.times[i]);
        let time = self.times[at];
        let times = self.chunks[at..at + n].iter().scan(before, |max, c| {
            let t = max.map_or(c.max_timestamp, |m| m.max(c.max_timestamp));
            *max = Some(t);
            Some(t.min(time))
        });
        let times: Vec<i64> = times.collect();
        self.times.splice(at..=at, times);
        true
    }

    /// Chunks wholly in segments below `position`, with their partitions
    /// (what the cleaner copies before deleting those segments).
    pub fn chunks_below(&self, position: u64) -> impl Iterator<Item = &Chunk> {
        self.chunks.iter().filter(move |c| c.segment < position)
    }

    /// The log start that retention asks for: past every leading chunk
    /// whose newest timestamp is older than `min_timestamp` (retention.ms),
    /// and past the oldest chunks for as long as what stays is at least
    /// `max_bytes` (retention.bytes, as Kafka keeps at least that much).
    /// Whole chunks go, as Kafka deletes whole segments, and only durable
    /// ones. `None` when nothing is due.
    pub fn retention_log_start(
        &self,
        min_timestamp: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Option<i64> {
        let mut kept = self.bytes;
        let mut drop = 0;
        for c in &self.chunks {
            let expired = min_timestamp.is_some_and(|t| c.max_timestamp < t);
            let too_big = max_bytes.is_some_and(|m| kept - u64::from(c.bytes) >= m);
            if c.last_offset >= self.high_watermark || (!expired && !too_big) {
                break;
            }
            kept -= u64::from(c.bytes);
            drop += 1;
        }
        if drop == 0 {
            return None;
        }
        Some(
            self.chunks
                .get(drop)
                .map_or(self.high_watermark, |c| c.base_offset)
                .min(self.high_watermark),
        )
    }

    /// The lowest WAL position of a batch still served. Batches copied
    /// forward by the cleaner are no longer in position order.
    pub fn lowest_position(&self) -> Option<u64> {
        self.chunks.iter().map(|c| c.position).min()
    }

    /// Moves the high watermark up to `offset` (never down).
    pub fn advance_high_watermark(&mut self, offset: i64) -> bool {
        if offset > self.high_watermark {
            self.high_watermark = offset.min(self.log_end);
            return true;
        }
        false
    }

    /// The first visible chunk holding a batch whose max timestamp is at
    /// or after `ts`, if any.
    pub fn chunk_for_time(&self, ts: i64) -> Option<Chunk> {
        let visible = self.visible_chunks();
        let at = self.times[..visible].partition_point(|t| *t < ts);
        self.chunks[at..visible]
            .iter()
            .find(|c| c.max_timestamp >= ts)
            .copied()
    }

    /// The first chunk below the high watermark holding the largest
    /// timestamp of those, and the chunk the high watermark falls in (its
    /// visible batches must be read to know theirs).
    pub fn max_timestamp_chunks(&self) -> (Option<Chunk>, Option<Chunk>) {
        let whole = self
            .chunks
            .partition_point(|c| c.last_offset < self.high_watermark);
        let mut best: Option<Chunk> = None;
        for c in &self.chunks[..whole] {
            if best.is_none_or(|b| c.max_timestamp > b.max_timestamp) {
                best = Some(*c);
            }
        }
        let partial = self
            .chunks
            .get(whole)
            .filter(|c| c.base_offset < self.high_watermark)
            .copied();
        (best, partial)
    }

    /// Chunks holding an offset below the high watermark.
    fn visible_chunks(&self) -> usize {
        self.chunks
            .partition_point(|c| c.base_offset < self.high_watermark)
    }
}

/// Chunks in offset order, each offset covered once: by the chunk written
/// last (a batch's copy is always written after it), an older chunk
/// narrowed to the pieces no newer one covers. A narrowed chunk's first
/// piece keeps its counts (only a crash while cleaning leaves both).
fn newest_per_offset(mut chunks: Vec<Chunk>) -> Vec<Chunk> {
    chunks.sort_by_key(|c| std::cmp::Reverse(c.position));
    // Offset ranges taken so far (first -> last), disjoint.
    let mut covered: BTreeMap<i64, i64> = BTreeMap::new();
    let mut out = Vec::with_capacity(chunks.len());
    for c in chunks {
        let mut taken: Vec<(i64, i64)> = covered
            .range(..=c.last_offset)
            .rev()
            .take_while(|(_, last)| **last >= c.base_offset)
            .map(|(b, l)| (*b, *l))
            .collect();
        taken.reverse();
        let mut pieces = Vec::new();
        let mut from = c.base_offset;
        for (first, last) in taken {
            if first > from {
                pieces.push((from, first - 1));
            }
            from = from.max(last + 1);
        }
        if from <= c.last_offset {
            pieces.push((from, c.last_offset));
        }
        for (i, (first, last)) in pieces.into_iter().enumerate() {
            covered.insert(first, last);
            let (bytes, batches) = if i == 0 { (c.bytes, c.batches) } else { (0, 0) };
            out.push(Chunk {
                base_offset: first,
                last_offset: last,
                bytes,
                batches,
                ..c
            });
        }
    }
    out.sort_by_key(|c| c.base_offset);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of 100 bytes at WAL position `base * 200`.
    fn entry(base: i64, last: i64, ts: i64) -> BatchEntry {
        BatchEntry {
            base_offset: base,
            last_offset: last,
            position: base as u64 * 200,
            size: 100,
            max_timestamp: ts,
        }
    }

    fn ranges(p: &Partition) -> Vec<(i64, i64)> {
        p.chunks
            .iter()
            .map(|c| (c.base_offset, c.last_offset))
            .collect()
    }

    #[test]
    fn batches_gather_in_chunks_of_one_segment_and_bounded_size() {
        let mut p = Partition::default();
        p.push(entry(0, 4, 10), 0);
        p.push(entry(5, 5, 30), 0);
        p.push(entry(6, 9, 20), 7); // another segment
        assert_eq!(ranges(&p), [(0, 5), (6, 9)]);
        assert_eq!((p.log_end, p.batches, p.bytes), (10, 3, 300));
        assert_eq!(p.chunks[0].span, 5 * 200 + 144);
        assert_eq!(
            (p.chunk_at(0), p.chunk_at(5), p.chunk_at(6), p.chunk_at(10)),
            (0, 0, 1, 2)
        );
        // Far from the chunk's start in the WAL: a new chunk.
        let far = BatchEntry {
            position: CHUNK_SPAN * 4,
            ..entry(10, 10, 0)
        };
        p.push(far, 7);
        assert_eq!(p.chunks.len(), 3);
        // Full chunks take no more.
        let mut big = Partition::default();
        let n = i64::from(CHUNK_BYTES / 100) + 5;
        for i in 0..n {
            big.push(entry(i, i, 0), 0);
        }
        assert_eq!(big.chunks.len(), 2);
        assert!((CHUNK_BYTES..CHUNK_BYTES + 100).contains(&big.chunks[0].bytes));
        assert!(big.advance_high_watermark(6));
        assert!(!big.advance_high_watermark(5), "never backwards");
    }

    #[test]
    fn trimming_drops_whole_chunks() {
        let mut p = Partition::default();
        for i in 0..6 {
            p.push(entry(i, i, 0), (i / 2) as u64);
        }
        p.advance_high_watermark(6);
        p.trim(3);
        assert_eq!((p.log_start, ranges(&p)), (3, vec![(2, 3), (4, 5)]));
        assert_eq!(
            (p.bytes, p.batches),
            (400, 4),
            "the chunk holding the log start counts whole"
        );
        p.trim(1);
        assert_eq!(p.log_start, 3, "never backwards");
        assert_eq!(p.lowest_position(), Some(400));
    }

    #[test]
    fn retention_drops_expired_and_oversized_chunks_oldest_first() {
        let mut p = Partition::default();
        // A segment each: a chunk each.
        for (i, ts) in [10, 20, 15, 40, 50].into_iter().enumerate() {
            p.push(entry(i as i64, i as i64, ts), i as u64);
        }
        p.advance_high_watermark(4);
        assert_eq!(p.bytes, 500);
        assert_eq!(p.retention_log_start(None, None), None);
        // retention.ms: the leading chunks whose newest timestamp is
        // older than 21 (10, 20, 15) go; at 11 only the first.
        assert_eq!(p.retention_log_start(Some(21), None), Some(3));
        assert_eq!(p.retention_log_start(Some(11), None), Some(1));
        // retention.bytes: at least 250 bytes stay.
        assert_eq!(p.retention_log_start(None, Some(250)), Some(2));
        assert_eq!(p.retention_log_start(None, Some(300)), Some(2));
        assert_eq!(p.retention_log_start(None, Some(301)), Some(1));
        // Batch 4 is not durable yet: it never goes, and the log start
        // stops at the high watermark.
        assert_eq!(p.retention_log_start(Some(1_000), None), Some(4));
        assert_eq!(p.retention_log_start(None, Some(0)), Some(4));
        p.trim(2);
        assert_eq!(p.bytes, 300);
        // Two batches in one chunk go together or not at all.
        let mut q = Partition::default();
        q.push(entry(0, 0, 10), 0);
        q.push(entry(1, 1, 30), 0);
        q.push(entry(2, 2, 40), 1);
        q.advance_high_watermark(3);
        assert_eq!(q.retention_log_start(Some(20), None), None);
        assert_eq!(q.retention_log_start(Some(35), None), Some(2));
    }

    /// The chunk found for a time holds the first visible batch a scan of
    /// every batch finds, however the batches fall in chunks.
    #[test]
    fn time_lookups_match_a_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut p = Partition::default();
            let n = next() % 40;
            let mut all = Vec::new();
            let mut segment = 0;
            for i in 0..n as i64 {
                segment += u64::from(next() % 3 == 0);
                let e = entry(i, i, (next() % 100) as i64);
                p.push(e, segment);
                all.push(e);
            }
            p.advance_high_watermark((next() % (n + 1)) as i64);
            let hw = p.high_watermark;
            // What `Log::first_in_chunk` does with the chunk found.
            let first_in = |c: Option<Chunk>, wanted: &dyn Fn(&BatchEntry) -> bool| {
                let c = c?;
                all.iter()
                    .filter(|b| b.base_offset >= c.base_offset && b.last_offset <= c.last_offset)
                    .take_while(|b| b.base_offset < hw)
                    .find(|b| wanted(b))
                    .copied()
            };
            let visible: Vec<BatchEntry> = all
                .iter()
                .take_while(|b| b.base_offset < hw)
                .copied()
                .collect();
            for ts in -1..=101 {
                let scan = visible.iter().find(|b| b.max_timestamp >= ts).copied();
                let found = first_in(p.chunk_for_time(ts), &|b| b.max_timestamp >= ts);
                assert_eq!(found, scan, "ts {ts}");
            }
            let max = visible.iter().map(|b| b.max_timestamp).max();
            let scan_max = visible
                .iter()
                .find(|b| Some(b.max_timestamp) == max)
                .copied();
            // What `Log::max_timestamp` does with the chunks found.
            let (best, partial) = p.max_timestamp_chunks();
            let whole = first_in(best, &|b| {
                Some(b.max_timestamp) == best.map(|c| c.max_timestamp)
            });
            let tail_max = partial.and_then(|c| {
                all.iter()
                    .filter(|b| b.base_offset >= c.base_offset && b.base_offset < hw)
                    .map(|b| b.max_timestamp)
                    .max()
            });
            let tail = first_in(partial, &|b| Some(b.max_timestamp) == tail_max);
            let found = match (whole, tail) {
                (Some(w), Some(t)) if t.max_timestamp > w.max_timestamp => Some(t),
                (None, t) => t,
                (w, _) => w,
            };
            assert_eq!(found, scan_max);
        }
    }

    fn chunk(base: i64, last: i64, position: u64) -> Chunk {
        Chunk {
            base_offset: base,
            last_offset: last,
            position,
            segment: position,
            span: 100,
            bytes: 100,
            batches: (last - base + 1) as u32,
            max_timestamp: 0,
        }
    }

    /// A crash while cleaning leaves originals and their copies: each
    /// offset is served from the copy, written later.
    #[test]
    fn the_newest_chunk_wins_each_offset() {
        let pieces = |chunks: Vec<Chunk>| -> Vec<(i64, i64, u64)> {
            newest_per_offset(chunks)
                .iter()
                .map(|c| (c.base_offset, c.last_offset, c.position))
                .collect()
        };
        // Originals in two chunks, copied into one.
        let got = pieces(vec![
            chunk(0, 50, 10),
            chunk(51, 100, 20),
            chunk(0, 100, 90),
        ]);
        assert_eq!(got, [(0, 100, 90)]);
        // Copies of a part: the original keeps the rest, on both sides.
        let got = pieces(vec![
            chunk(0, 100, 10),
            chunk(20, 30, 90),
            chunk(101, 110, 30),
        ]);
        assert_eq!(
            got,
            [(0, 19, 10), (20, 30, 90), (31, 100, 10), (101, 110, 30)]
        );
        // Three generations.
        let got = pieces(vec![chunk(0, 9, 10), chunk(0, 9, 50), chunk(5, 9, 70)]);
        assert_eq!(got, [(0, 4, 50), (5, 9, 70)]);
    }

    #[test]
    fn a_chunk_is_replaced_by_its_copies() {
        let mut p = Partition::default();
        for i in 0..4 {
            p.push(entry(i, i, i * 10), (i / 2) as u64);
        }
        let old = p.chunks[0];
        let copies: Vec<(BatchEntry, u64)> = (0..2)
            .map(|i| {
                let e = BatchEntry {
                    position: 10_000 + i as u64 * 200,
                    ..entry(i, i, i * 10)
                };
                (e, 9 + i as u64) // the WAL rolled between the two
            })
            .collect();
        assert!(p.replace_chunk(&old, &copies));
        assert_eq!(ranges(&p), [(0, 0), (1, 1), (2, 3)]);
        assert_eq!(p.chunks[0].position, 10_000);
        assert_eq!((p.bytes, p.batches), (400, 4));
        assert!(!p.replace_chunk(&old, &copies), "only once");
        p.advance_high_watermark(4);
        assert_eq!(p.chunk_for_time(15).map(|c| c.base_offset), Some(2));
    }
}
