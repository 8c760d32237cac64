//! Reads of durable frames by position, through direct I/O. The checksum is
//! verified on every read, not only at recovery.

use glommio::io::ReadResult;

use crate::error::{Result, WalError};
use crate::format::{segment_file_name, FrameHeader, FRAME_HEADER_LEN, FRAME_TYPE_PADDING};
use crate::writer::Wal;

/// Bytes read with the header in one go; larger frames need a second read.
const FIRST_READ: usize = 16 << 10;

/// A frame read back from disk. The payload stays in the DMA read buffer.
pub struct ReadFrame {
    /// WAL position of the frame.
    pub position: u64,
    /// Frame type given at append.
    pub frame_type: u8,
    payload: ReadResult,
}

impl ReadFrame {
    /// The payload as appended.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The durable frames of a span of one segment, read in one go (a
/// partition's run of batches among other frames).
pub struct FrameSpan {
    /// WAL position of the first byte.
    start: u64,
    /// The segment file and its base position (for errors).
    file: std::path::PathBuf,
    base: u64,
    bytes: Option<ReadResult>,
}

/// One frame of a [`FrameSpan`]; its checksum is verified by
/// [`SpanFrame::payload`].
pub struct SpanFrame<'a> {
    /// WAL position of the frame.
    pub position: u64,
    /// Frame type given at append.
    pub frame_type: u8,
    header: FrameHeader,
    bytes: &'a [u8],
    span: &'a FrameSpan,
}

impl SpanFrame<'_> {
    /// Up to the first `n` bytes of the payload, not verified: to tell
    /// whether the frame is wanted before paying for its checksum.
    pub fn peek(&self, n: usize) -> &[u8] {
        &self.bytes[FRAME_HEADER_LEN..self.bytes.len().min(FRAME_HEADER_LEN + n)]
    }

    /// The payload as appended, once its checksum is verified.
    pub fn payload(&self) -> Result<&[u8]> {
        self.header
            .verify(self.position, self.bytes)
            .map_err(|reason| self.span.corrupt(self.position, reason))?;
        Ok(&self.bytes[FRAME_HEADER_LEN..])
    }
}

impl FrameSpan {
    fn corrupt(&self, position: u64, reason: String) -> WalError {
        WalError::Corruption {
            file: self.file.clone(),
            offset: position - self.base,
            reason,
        }
    }

    /// The frames in the span, in position order (padding skipped); an
    /// `Err` ends it where a header does not parse.
    pub fn frames(&self) -> impl Iterator<Item = Result<SpanFrame<'_>>> {
        let buf: &[u8] = self.bytes.as_deref().unwrap_or(&[]);
        let mut at = 0usize;
        let mut failed = false;
        std::iter::from_fn(move || loop {
            if failed || at + FRAME_HEADER_LEN > buf.len() {
                return None;
            }
            let position = self.start + at as u64;
            let rest = &buf[at..];
            let header = match FrameHeader::parse(rest, (rest.len() - FRAME_HEADER_LEN) as u64) {
                Ok(h) => h,
                Err(reason) => {
                    failed = true;
                    return Some(Err(self.corrupt(position, reason)));
                }
            };
            let len = FRAME_HEADER_LEN + header.payload_len as usize;
            at += header.disk_len() as usize;
            if header.frame_type == FRAME_TYPE_PADDING {
                continue;
            }
            return Some(Ok(SpanFrame {
                position,
                frame_type: header.frame_type,
                header,
                bytes: &rest[..len],
                span: self,
            }));
        })
    }
}

impl Wal {
    /// Reads the durable frames from `position` (a frame's start) up to
    /// `end` (a frame's end) or the durable position, whichever is lower;
    /// the span lies in one segment.
    pub async fn read_span(&self, position: u64, end: u64) -> Result<FrameSpan> {
        let end = end.min(self.durable_position());
        if end <= position {
            return Ok(FrameSpan {
                start: position,
                file: std::path::PathBuf::new(),
                base: position,
                bytes: None,
            });
        }
        let (base, file) = self.segment_for(position).await?;
        let path = self.dir().join(segment_file_name(base));
        let bytes = file
            .read_at(position - base, (end - position) as usize)
            .await
            .map_err(|e| WalError::io(format!("reading {}", path.display()), e))?;
        Ok(FrameSpan {
            start: position,
            file: path,
            base,
            bytes: Some(bytes),
        })
    }

    /// Reads the durable frame at `position` (as returned by append or
    /// recovery) and verifies its checksum.
    pub async fn read(&self, position: u64) -> Result<ReadFrame> {
        let (base, file) = self.segment_for(position).await?;
        let offset = position - base;
        let path = || self.dir().join(segment_file_name(base));
        let read = |len: usize| {
            let file = file.clone();
            async move { file.read_at(offset, len).await }
        };
        let corrupt = |reason: String| WalError::Corruption {
            file: path(),
            offset,
            reason,
        };
        let mut bytes = read(FIRST_READ)
            .await
            .map_err(|e| WalError::io(format!("reading {}", path().display()), e))?;
        let header = FrameHeader::parse(&bytes, u64::from(u32::MAX)).map_err(corrupt)?;
        let frame_len = FRAME_HEADER_LEN + header.payload_len as usize;
        if bytes.len() < frame_len {
            bytes = read(frame_len)
                .await
                .map_err(|e| WalError::io(format!("reading {}", path().display()), e))?;
            if bytes.len() < frame_len {
                return Err(corrupt(format!(
                    "frame of {frame_len} bytes but only {} bytes in the file",
                    bytes.len()
                )));
            }
        }
        header.verify(position, &bytes).map_err(corrupt)?;
        if header.frame_type == FRAME_TYPE_PADDING {
            return Err(WalError::Invalid(format!(
                "position {position} holds padding, not a frame"
            )));
        }
        let payload = ReadResult::slice(&bytes, FRAME_HEADER_LEN, header.payload_len as usize)
            .ok_or_else(|| corrupt("frame payload outside the read buffer".into()))?;
        Ok(ReadFrame {
            position,
            frame_type: header.frame_type,
            payload,
        })
    }
}
