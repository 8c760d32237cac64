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

impl Wal {
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
