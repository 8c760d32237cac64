//! Recovery: read every frame of every segment in position order, verify
//! lengths and checksums, and say exactly where and why a segment ends.
//!
//! A torn tail can only exist in the last segment, because the writer makes a
//! segment fully durable before it writes the first byte of the next one.
//! An invalid frame in the last segment ends the log there, unless a valid
//! durable mark after it (see `format`) says its bytes were acknowledged:
//! then, as for an invalid frame anywhere else, it is corruption, reported
//! with file and byte offset, or skipped and listed when the caller asked
//! for [`RecoveryMode::SkipCorruption`]. So are a damaged segment header
//! with frames behind it and a segment missing from the sequence.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use glommio::io::{DmaFile, ReadResult};
use glommio::task::JoinHandle;

use crate::error::{Result, WalError};
use crate::format::{
    align_up, decode_segment_header, durable_mark, FrameHeader, BLOCK, DURABLE_MARK_LEN,
    FRAME_ALIGN, FRAME_HEADER_LEN, FRAME_TYPE_PADDING, SEGMENT_HEADER_LEN,
};
use crate::segment::{absolute, list_segments, open_segment_read, probe_device, SegmentFile};

/// How recovery treats an invalid frame outside the last segment's tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Stop with [`WalError::Corruption`] naming file and offset.
    #[default]
    Strict,
    /// Skip forward to the next valid frame and list every skipped range in
    /// the report. Data in skipped ranges is lost: an operator's choice.
    SkipCorruption,
}

/// A frame found by recovery, borrowed from the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct RecoveredFrame<'a> {
    /// WAL position of the frame (what [`crate::Wal::read`] takes).
    pub position: u64,
    /// Base position of the segment it is in.
    pub segment: u64,
    /// Frame type given at append.
    pub frame_type: u8,
    /// The payload as appended.
    pub payload: &'a [u8],
}

/// A range of bytes recovery skipped as corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    /// Byte offset in the file where invalid data starts.
    pub offset: u64,
    /// Bytes skipped until the next valid frame (or the end of the file).
    pub len: u64,
    /// Why the first frame there was invalid.
    pub reason: String,
}

/// Where and why the last segment's valid data ends before its file does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset in the file of the first invalid byte.
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub dropped_bytes: u64,
    /// Why the frame there was invalid.
    pub reason: String,
}

/// What recovery found in one segment.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// WAL position of the segment's first byte.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    /// File length as found.
    pub file_len: u64,
    /// Whether the segment header is valid (only the last segment may have a
    /// torn header: it was being created when the process died).
    pub header_valid: bool,
    /// Frames recovered (padding not counted).
    pub frames: u64,
    /// Payload bytes recovered.
    pub payload_bytes: u64,
    /// Position of the first and last frame recovered, if any.
    pub first_position: Option<u64>,
    /// Position of the last frame recovered, if any.
    pub last_position: Option<u64>,
    /// File offset where valid data ends (the log continues from here).
    pub valid_end: u64,
    /// Set when the segment ends in a torn tail (only ever the last segment).
    pub torn_tail: Option<TornTail>,
    /// Corrupt ranges skipped under [`RecoveryMode::SkipCorruption`].
    pub skipped: Vec<SkippedRange>,
}

/// Totals of a recovery scan, and each segment's report.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// One report per segment, in position order.
    pub segments: Vec<SegmentReport>,
    /// Frames recovered (padding not counted).
    pub frames: u64,
    /// Payload bytes recovered.
    pub payload_bytes: u64,
    /// Bytes read from disk.
    pub bytes_scanned: u64,
    /// Wall time of the scan.
    pub seconds: f64,
}

impl RecoveryReport {
    /// Bytes in ranges skipped as corrupt (zero in strict mode).
    pub fn skipped_bytes(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| &s.skipped)
            .map(|r| r.len)
            .sum()
    }
}

/// Reads every frame of every segment in `dir` in position order and hands
/// each to `visitor`. Read-only: a torn tail is reported, not repaired
/// ([`crate::Wal::open`] repairs it).
pub async fn scan<F>(dir: &Path, mode: RecoveryMode, visitor: F) -> Result<RecoveryReport>
where
    F: FnMut(RecoveredFrame<'_>),
{
    scan_from(dir, mode, 0, visitor).await
}

/// As [`scan`], from WAL position `from` (a frame's start, or the end of
/// the log: a checkpoint's position): segments wholly below it are not
/// read (their frames are neither checked nor visited); the one holding it
/// is read from there. A position beyond the end of the log is refused.
pub async fn scan_from<F>(
    dir: &Path,
    mode: RecoveryMode,
    from: u64,
    mut visitor: F,
) -> Result<RecoveryReport>
where
    F: FnMut(RecoveredFrame<'_>),
{
    let started = Instant::now();
    let dir = &absolute(dir)?;
    let segments = list_segments(dir)?;
    probe_device(dir).await?;
    let end = segments.last().map_or(0, |s| s.base + s.len);
    if from > end {
        return Err(WalError::Invalid(format!(
            "position {from} is beyond the end of the log ({end})"
        )));
    }
    let mut report = RecoveryReport::default();
    let count = segments.len();
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i + 1 == count;
        if let Some(previous) = report.segments.last() {
            check_contiguous(previous, segment, mode)?;
        }
        if segments.get(i + 1).is_some_and(|next| next.base <= from) {
            report.segments.push(SegmentReport {
                base: segment.base,
                path: segment.path.clone(),
                file_len: segment.len,
                header_valid: true,
                frames: 0,
                payload_bytes: 0,
                first_position: None,
                last_position: None,
                valid_end: segment.len,
                torn_tail: None,
                skipped: Vec::new(),
            });
            continue;
        }
        let skip_to = from.saturating_sub(segment.base);
        let seg = scan_segment(segment, is_last, mode, skip_to, &mut visitor).await?;
        report.frames += seg.frames;
        report.payload_bytes += seg.payload_bytes;
        report.bytes_scanned += seg.file_len.saturating_sub(skip_to);
        report.segments.push(seg);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Each segment starts where the one before it ended (rounded up to a
/// block), so a segment missing from the middle of the log cannot pass
/// unnoticed: the frames in it would silently be skipped.
fn check_contiguous(
    previous: &SegmentReport,
    next: &SegmentFile,
    mode: RecoveryMode,
) -> Result<()> {
    let expected = previous.base + align_up(previous.file_len, BLOCK);
    if next.base == expected {
        return Ok(());
    }
    let reason = if next.base > expected {
        format!(
            "WAL positions {expected}..{} are missing: a segment between {} and this one is gone",
            next.base,
            previous.path.display()
        )
    } else {
        format!(
            "this segment starts at position {} inside the previous one, which ends at {expected}",
            next.base
        )
    };
    if mode == RecoveryMode::Strict {
        return Err(WalError::Corruption {
            file: next.path.clone(),
            offset: 0,
            reason,
        });
    }
    tracing::error!(file = %next.path.display(), reason, "WAL positions skipped");
    Ok(())
}

/// Size of one sequential recovery read.
const READ_CHUNK: usize = 4 << 20;

/// Sequential reads of one file with one read always running ahead.
struct Chunks {
    file: Rc<DmaFile>,
    file_len: u64,
    next_offset: u64,
    ahead: Option<JoinHandle<glommio::Result<ReadResult, ()>>>,
}

impl Chunks {
    fn new(file: Rc<DmaFile>, file_len: u64, start: u64) -> Self {
        let mut chunks = Chunks {
            file,
            file_len,
            next_offset: start,
            ahead: None,
        };
        chunks.read_ahead();
        chunks
    }

    fn read_ahead(&mut self) {
        if self.next_offset >= self.file_len {
            self.ahead = None;
            return;
        }
        let file = self.file.clone();
        let offset = self.next_offset;
        self.ahead = Some(
            glommio::spawn_local(async move { file.read_at_aligned(offset, READ_CHUNK).await })
                .detach(),
        );
        self.next_offset += READ_CHUNK as u64;
    }

    /// The next chunk, or `None` at the end of the file.
    async fn next(&mut self, path: &Path) -> Result<Option<ReadResult>> {
        let Some(task) = self.ahead.take() else {
            return Ok(None);
        };
        let read = task
            .await
            .ok_or_else(|| WalError::Failed(format!("read of {} was cancelled", path.display())))?
            .map_err(|e| WalError::io(format!("reading {}", path.display()), e))?;
        self.read_ahead();
        Ok(Some(read))
    }
}

/// A frame's bytes: borrowed from the current chunk or assembled across chunks.
enum Span {
    Chunk(usize),
    Assembled,
}

/// Sequential access to a segment's bytes by file offset.
struct SegmentBytes {
    chunks: Chunks,
    path: PathBuf,
    cur: Option<ReadResult>,
    cur_offset: u64,
    assembled: Vec<u8>,
    assembled_offset: u64,
}

impl SegmentBytes {
    /// Reads of `file` from `start` (a multiple of [`BLOCK`]) on.
    fn new(file: &Rc<DmaFile>, path: &Path, file_len: u64, start: u64) -> SegmentBytes {
        SegmentBytes {
            chunks: Chunks::new(file.clone(), file_len, start),
            path: path.to_path_buf(),
            cur: None,
            cur_offset: start,
            assembled: Vec::new(),
            assembled_offset: 0,
        }
    }

    fn cur_end(&self) -> u64 {
        self.cur_offset + self.cur.as_ref().map_or(0, |c| c.len() as u64)
    }

    /// Makes `[offset, offset + len)` available (the caller checked it is
    /// inside the file) and says where the bytes are. A later call may ask
    /// for more bytes from the same offset (the header first, then the frame).
    async fn load(&mut self, offset: u64, len: usize) -> Result<Span> {
        if offset >= self.cur_offset {
            while offset >= self.cur_end() {
                self.advance().await?;
            }
            if offset + len as u64 <= self.cur_end() {
                return Ok(Span::Chunk((offset - self.cur_offset) as usize));
            }
            self.assembled.clear();
            self.assembled_offset = offset;
        } else {
            // An assembly from an earlier chunk, started at this offset.
            debug_assert_eq!(self.assembled_offset, offset);
        }
        while self.assembled.len() < len {
            let have_end = offset + self.assembled.len() as u64;
            if have_end >= self.cur_end() {
                self.advance().await?;
                continue;
            }
            let from = (have_end - self.cur_offset) as usize;
            let want = (len - self.assembled.len()).min(self.current().len() - from);
            let cur = self.cur.as_ref().map_or(&[][..], |c| &c[..]);
            self.assembled.extend_from_slice(&cur[from..from + want]);
        }
        Ok(Span::Assembled)
    }

    fn bytes(&self, span: &Span, len: usize) -> &[u8] {
        match span {
            Span::Chunk(at) => &self.current()[*at..*at + len],
            Span::Assembled => &self.assembled[..len],
        }
    }

    fn current(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[][..], |c| &c[..])
    }

    async fn advance(&mut self) -> Result<()> {
        let end = self.cur_end();
        match self.chunks.next(&self.path).await? {
            Some(chunk) if !chunk.is_empty() => {
                self.cur_offset = end;
                self.cur = Some(chunk);
                Ok(())
            }
            _ => Err(WalError::Corruption {
                file: self.path.clone(),
                offset: end,
                reason: "file is shorter than its length said while reading".into(),
            }),
        }
    }
}

async fn scan_segment<F>(
    segment: &SegmentFile,
    is_last: bool,
    mode: RecoveryMode,
    skip_to: u64,
    visitor: &mut F,
) -> Result<SegmentReport>
where
    F: FnMut(RecoveredFrame<'_>),
{
    let file = open_segment_read(&segment.path).await?;
    let file_len = file
        .file_size()
        .await
        .map_err(|e| WalError::io(format!("stat {}", segment.path.display()), e))?;
    let mut report = SegmentReport {
        base: segment.base,
        path: segment.path.clone(),
        file_len,
        header_valid: false,
        frames: 0,
        payload_bytes: 0,
        first_position: None,
        last_position: None,
        valid_end: 0,
        torn_tail: None,
        skipped: Vec::new(),
    };
    let header_problem = if file_len < SEGMENT_HEADER_LEN {
        Some(format!(
            "file is {file_len} bytes, shorter than the segment header"
        ))
    } else {
        let block = file
            .read_at_aligned(0, SEGMENT_HEADER_LEN as usize)
            .await
            .map_err(|e| WalError::io(format!("reading {}", segment.path.display()), e))?;
        decode_segment_header(&block, segment.base).err()
    };
    let mut bytes = SegmentBytes::new(&file, &segment.path, file_len, SEGMENT_HEADER_LEN);
    if let Some(reason) = header_problem {
        // A segment is created and its header synced before any frame is
        // written to it: frames behind a bad header prove it was damaged
        // after the fact, not torn while the segment was being created.
        let holds_frames =
            first_valid_frame(&mut bytes, segment.base, SEGMENT_HEADER_LEN, file_len)
                .await?
                .is_some();
        if is_last && !holds_frames {
            tracing::warn!(file = %segment.path.display(), reason, "last segment has a torn header; it holds no frame");
            report.torn_tail = Some(TornTail {
                offset: 0,
                dropped_bytes: file_len,
                reason,
            });
            return Ok(report);
        }
        if mode == RecoveryMode::Strict || is_last {
            let advice = if is_last {
                "; to start without it, move the file out of the WAL directory"
            } else {
                ""
            };
            return Err(WalError::Corruption {
                file: segment.path.clone(),
                offset: 0,
                reason: format!(
                    "damaged segment header ({reason}) of a segment holding frames{advice}"
                ),
            });
        }
        tracing::error!(file = %segment.path.display(), reason, "skipping a damaged segment header");
        report.skipped.push(SkippedRange {
            offset: 0,
            len: SEGMENT_HEADER_LEN,
            reason,
        });
        // The search read ahead; start again after the header.
        bytes = SegmentBytes::new(&file, &segment.path, file_len, SEGMENT_HEADER_LEN);
    } else {
        report.header_valid = true;
    }
    let mut offset = SEGMENT_HEADER_LEN;
    if skip_to > offset {
        // Frames before `skip_to` are a checkpoint's: reading starts at
        // the block holding it.
        offset = skip_to.min(file_len);
        bytes = SegmentBytes::new(&file, &segment.path, file_len, offset / BLOCK * BLOCK);
    }
    // Start of a corrupt range being skipped, with the first reason.
    let mut skipping: Option<(u64, String)> = None;
    while offset < file_len {
        let position = segment.base + offset;
        let verdict = check_frame(&mut bytes, offset, file_len, position).await?;
        match verdict {
            Ok((header, span)) => {
                if let Some((start, reason)) = skipping.take() {
                    report.skipped.push(SkippedRange {
                        offset: start,
                        len: offset - start,
                        reason,
                    });
                }
                if header.frame_type != FRAME_TYPE_PADDING {
                    let frame = bytes.bytes(&span, FRAME_HEADER_LEN + header.payload_len as usize);
                    visitor(RecoveredFrame {
                        position,
                        segment: segment.base,
                        frame_type: header.frame_type,
                        payload: &frame[FRAME_HEADER_LEN..],
                    });
                    report.frames += 1;
                    report.payload_bytes += u64::from(header.payload_len);
                    report.first_position.get_or_insert(position);
                    report.last_position = Some(position);
                }
                offset += header.disk_len();
            }
            Err(reason) => {
                if skipping.is_some() {
                    offset += FRAME_ALIGN;
                    continue;
                }
                let acked = if is_last {
                    let found =
                        acknowledged_beyond(&mut bytes, segment.base, offset, file_len).await?;
                    // The search read ahead; go on reading from here.
                    let block = offset / BLOCK * BLOCK;
                    bytes = SegmentBytes::new(&file, &segment.path, file_len, block);
                    found
                } else {
                    None
                };
                let reason = match acked {
                    Some((mark_offset, durable)) => format!(
                        "{reason}; these bytes were acknowledged (the durable mark at byte \
                         offset {mark_offset} says every byte below WAL position {durable} was)"
                    ),
                    None => reason,
                };
                if is_last && acked.is_none() {
                    tracing::warn!(
                        file = %segment.path.display(),
                        offset,
                        dropped_bytes = file_len - offset,
                        reason,
                        "truncating torn tail of the last segment"
                    );
                    report.torn_tail = Some(TornTail {
                        offset,
                        dropped_bytes: file_len - offset,
                        reason,
                    });
                    break;
                }
                if mode == RecoveryMode::Strict {
                    return Err(WalError::Corruption {
                        file: segment.path.clone(),
                        offset,
                        reason,
                    });
                }
                tracing::error!(file = %segment.path.display(), offset, reason, "skipping corrupt bytes");
                skipping = Some((offset, reason));
                offset += FRAME_ALIGN;
            }
        }
    }
    if let Some((start, reason)) = skipping.take() {
        report.skipped.push(SkippedRange {
            offset: start,
            len: file_len - start,
            reason,
        });
    }
    report.valid_end = match &report.torn_tail {
        Some(t) => t.offset,
        None => offset.min(file_len),
    };
    Ok(report)
}

/// The file offset of the first valid frame at or after `from` (frames are
/// bound to their position, so only a frame written at that very place
/// passes), searching every [`FRAME_ALIGN`] bytes.
async fn first_valid_frame(
    bytes: &mut SegmentBytes,
    base: u64,
    from: u64,
    file_len: u64,
) -> Result<Option<u64>> {
    let mut offset = from;
    while offset + FRAME_HEADER_LEN as u64 <= file_len {
        if check_frame(bytes, offset, file_len, base + offset)
            .await?
            .is_ok()
        {
            return Ok(Some(offset));
        }
        offset += FRAME_ALIGN;
    }
    Ok(None)
}

/// Looks past an invalid frame at `from` for a valid durable mark saying
/// the invalid bytes were acknowledged: `(mark's file offset, durable
/// position)`. Without one, the bytes may be a flush that never completed.
async fn acknowledged_beyond(
    bytes: &mut SegmentBytes,
    base: u64,
    from: u64,
    file_len: u64,
) -> Result<Option<(u64, u64)>> {
    let mut offset = from + FRAME_ALIGN;
    while offset + (FRAME_HEADER_LEN + DURABLE_MARK_LEN) as u64 <= file_len {
        // Cheap test first: only padding frames carry marks.
        let span = bytes.load(offset, FRAME_HEADER_LEN).await?;
        let header = bytes.bytes(&span, FRAME_HEADER_LEN);
        if header[8] == FRAME_TYPE_PADDING && header[9..16].iter().all(|&b| b == 0) {
            if let Ok((header, span)) = check_frame(bytes, offset, file_len, base + offset).await? {
                let frame = bytes.bytes(&span, FRAME_HEADER_LEN + header.payload_len as usize);
                if let Some(durable) = durable_mark(&frame[FRAME_HEADER_LEN..]) {
                    if durable > base + from {
                        return Ok(Some((offset, durable)));
                    }
                }
            }
        }
        offset += FRAME_ALIGN;
    }
    Ok(None)
}

/// Checks the frame at `offset`: `Ok(Ok(..))` for a valid frame, `Ok(Err(reason))`
/// for bytes that are not one, `Err` for an I/O failure.
async fn check_frame(
    bytes: &mut SegmentBytes,
    offset: u64,
    file_len: u64,
    position: u64,
) -> Result<std::result::Result<(FrameHeader, Span), String>> {
    let left = file_len - offset;
    if left < FRAME_HEADER_LEN as u64 {
        return Ok(Err(format!("{left} bytes left, a frame header needs 16")));
    }
    let span = bytes.load(offset, FRAME_HEADER_LEN).await?;
    let max_payload = left - FRAME_HEADER_LEN as u64;
    let header = match FrameHeader::parse(bytes.bytes(&span, FRAME_HEADER_LEN), max_payload) {
        Ok(h) => h,
        Err(reason) => return Ok(Err(reason)),
    };
    if header.disk_len() > left {
        return Ok(Err(format!(
            "frame of {} bytes extends past the end of the file",
            header.disk_len()
        )));
    }
    let frame_len = FRAME_HEADER_LEN + header.payload_len as usize;
    let span = bytes.load(offset, frame_len).await?;
    if let Err(reason) = header.verify(position, bytes.bytes(&span, frame_len)) {
        return Ok(Err(reason));
    }
    Ok(Ok((header, span)))
}
