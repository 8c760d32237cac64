//! The on-disk format of the WAL, in one place: segment naming, the segment
//! header, the frame layout and its checksum.
//!
//! A segment file is named by the WAL position of its first byte
//! (`00000000000000004096.wal`), so a position maps to a file and an offset
//! without an index. Its first [`BLOCK`] bytes are the header; frames follow.
//!
//! Frame layout (all integers little-endian), 16-byte aligned on disk:
//!
//! ```text
//! 0..4   payload length (u32)
//! 4..8   crc32 of (position as u64, bytes 8..16, payload)
//! 8      frame type (0 is never valid, 1 is padding)
//! 9..16  reserved, zero
//! 16..   payload, then zeros up to the next multiple of 16
//! ```
//!
//! The checksum covers the frame's own position, so a stale frame left at
//! another place (an older incarnation of the file) can never pass as valid.
//! Every flush is padded with a padding frame up to the next [`BLOCK`]
//! boundary, so acknowledged bytes are never rewritten by a later flush.
//!
//! A padding frame's payload, when it has room ([`DURABLE_MARK_LEN`]
//! bytes), is a durable mark: `DURABLE\0` and the WAL position (u64) below
//! which every byte was durable, so acknowledged, when its flush was
//! sealed. Recovery uses it to tell a torn tail from damage: an invalid
//! frame below a valid later mark was acknowledged.

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SLUICEWL";
/// Version of the segment and frame layout.
pub const FORMAT_VERSION: u16 = 1;
/// Direct-I/O block: writes start and end on it; the segment header fills one.
pub const BLOCK: u64 = 4096;
/// Bytes of the segment header (one block).
pub const SEGMENT_HEADER_LEN: u64 = BLOCK;
/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 16;
/// Frames start at multiples of this, so a padding frame always fits a gap.
pub const FRAME_ALIGN: u64 = 16;
/// Frame type 0 never appears in a valid frame (zeroed blocks fail on it).
pub const FRAME_TYPE_INVALID: u8 = 0;
/// Frame type of the padding written at the end of a flush.
pub const FRAME_TYPE_PADDING: u8 = 1;
/// The first frame type left to the WAL's user.
pub const FIRST_USER_FRAME_TYPE: u8 = 2;
/// Extension of segment files.
pub const SEGMENT_SUFFIX: &str = ".wal";

// A flush pads to a block boundary with one padding frame.
const _: () = assert!(BLOCK.is_multiple_of(FRAME_ALIGN) && FRAME_HEADER_LEN as u64 <= FRAME_ALIGN);

/// Rounds `v` up to a multiple of `align` (a power of two).
pub const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

/// Bytes a frame with `payload_len` bytes of payload occupies on disk.
pub const fn frame_disk_len(payload_len: usize) -> u64 {
    align_up((FRAME_HEADER_LEN + payload_len) as u64, FRAME_ALIGN)
}

/// File name of the segment whose first byte is at `base`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// The base position encoded in a segment file name, or `None` for files that
/// are not segments.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes the segment header for a segment starting at `base` into the first
/// [`SEGMENT_HEADER_LEN`] bytes of `block` (the rest of the block is zeroed).
pub fn encode_segment_header(base: u64, block: &mut [u8]) {
    let block = &mut block[..SEGMENT_HEADER_LEN as usize];
    block.fill(0);
    block[0..8].copy_from_slice(&SEGMENT_MAGIC);
    block[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    block[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    block[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&block[0..24]);
    block[24..28].copy_from_slice(&crc.to_le_bytes());
}

/// Checks a segment header read from disk; `Err` says what is wrong with it.
pub fn decode_segment_header(block: &[u8], expected_base: u64) -> Result<(), String> {
    if block.len() < 28 {
        return Err(format!("segment header is {} bytes, need 28", block.len()));
    }
    if block[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic".into());
    }
    let stored_crc = u32::from_le_bytes(block[24..28].try_into().expect("4 bytes"));
    if crc32fast::hash(&block[0..24]) != stored_crc {
        return Err("segment header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([block[8], block[9]]);
    if version != FORMAT_VERSION {
        return Err(format!("unsupported segment format version {version}"));
    }
    let block_size = u32::from_le_bytes(block[12..16].try_into().expect("4 bytes"));
    if u64::from(block_size) != BLOCK {
        return Err(format!("unsupported block size {block_size}"));
    }
    let base = u64::from_le_bytes(block[16..24].try_into().expect("8 bytes"));
    if base != expected_base {
        return Err(format!(
            "header says base position {base}, file name says {expected_base}"
        ));
    }
    Ok(())
}

/// Checksum of a frame at `position` with header bytes 8..16 `tail` and the
/// payload given in `parts` (concatenated).
pub fn frame_crc(position: u64, tail: &[u8], parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&position.to_le_bytes());
    h.update(tail);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Encodes a whole frame (header, payload, alignment zeros) into `out`, which
/// must be exactly `frame_disk_len(payload_len)` bytes.
pub fn encode_frame(out: &mut [u8], position: u64, frame_type: u8, parts: &[&[u8]]) {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert_eq!(out.len() as u64, frame_disk_len(payload_len));
    let (header, rest) = out.split_at_mut(FRAME_HEADER_LEN);
    header[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[8] = frame_type;
    header[9..16].fill(0);
    let mut at = 0;
    for p in parts {
        rest[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    rest[at..].fill(0);
    let crc = frame_crc(position, &header[8..16], parts);
    header[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Magic of a durable mark (see the module doc).
pub const DURABLE_MARK: [u8; 8] = *b"DURABLE\0";
/// Payload bytes a durable mark takes: the magic and a position.
pub const DURABLE_MARK_LEN: usize = 16;

/// Encodes a padding frame filling all of `out` (a multiple of
/// [`FRAME_ALIGN`], at least one frame header long), carrying the durable
/// mark `durable` when it has room for it.
pub fn encode_padding(out: &mut [u8], position: u64, durable: u64) {
    debug_assert!(out.len() >= FRAME_HEADER_LEN && (out.len() as u64).is_multiple_of(FRAME_ALIGN));
    out.fill(0);
    let payload_len = out.len() - FRAME_HEADER_LEN;
    out[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[8] = FRAME_TYPE_PADDING;
    if payload_len >= DURABLE_MARK_LEN {
        let mark = &mut out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + DURABLE_MARK_LEN];
        mark[..8].copy_from_slice(&DURABLE_MARK);
        mark[8..].copy_from_slice(&durable.to_le_bytes());
    }
    let crc = frame_crc(position, &out[8..16], &[&out[FRAME_HEADER_LEN..]]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The durable mark in a padding frame's payload, if it carries one.
pub fn durable_mark(padding_payload: &[u8]) -> Option<u64> {
    let mark = padding_payload.get(..DURABLE_MARK_LEN)?;
    (mark[..8] == DURABLE_MARK).then(|| u64::from_le_bytes(mark[8..].try_into().expect("8 bytes")))
}

/// What the first bytes at a position say about the frame there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes.
    pub payload_len: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Frame type.
    pub frame_type: u8,
}

impl FrameHeader {
    /// Parses a frame header; `Err` says why these bytes cannot start a frame.
    pub fn parse(bytes: &[u8], max_payload: u64) -> Result<FrameHeader, String> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Err(format!(
                "{} bytes left, a frame header needs 16",
                bytes.len()
            ));
        }
        let payload_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let frame_type = bytes[8];
        if frame_type == FRAME_TYPE_INVALID {
            return Err("frame type 0 (zeroed or unwritten bytes)".into());
        }
        if bytes[9..16].iter().any(|&b| b != 0) {
            return Err("reserved frame header bytes are not zero".into());
        }
        if u64::from(payload_len) > max_payload {
            return Err(format!(
                "frame length {payload_len} exceeds the {max_payload} bytes that can follow"
            ));
        }
        Ok(FrameHeader {
            payload_len,
            crc,
            frame_type,
        })
    }

    /// Bytes the frame occupies on disk.
    pub fn disk_len(&self) -> u64 {
        frame_disk_len(self.payload_len as usize)
    }

    /// Verifies the checksum of the frame at `position` whose whole header and
    /// payload are in `frame` (at least `16 + payload_len` bytes).
    pub fn verify(&self, position: u64, frame: &[u8]) -> Result<(), String> {
        let end = FRAME_HEADER_LEN + self.payload_len as usize;
        let actual = frame_crc(position, &frame[8..16], &[&frame[FRAME_HEADER_LEN..end]]);
        if actual != self.crc {
            return Err(format!(
                "frame checksum mismatch (stored {:#010x}, computed {actual:#010x})",
                self.crc
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        for base in [0u64, 4096, 1 << 40, u64::MAX / 2] {
            assert_eq!(
                parse_segment_file_name(&segment_file_name(base)),
                Some(base)
            );
        }
        assert_eq!(parse_segment_file_name("123.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000a.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000000000.tmp"), None);
    }

    #[test]
    fn segment_header_round_trip_and_rejects_damage() {
        let mut block = vec![0u8; BLOCK as usize];
        encode_segment_header(8192, &mut block);
        decode_segment_header(&block, 8192).unwrap();
        assert!(decode_segment_header(&block, 0).is_err());
        for byte in 0..28 {
            let mut bad = block.clone();
            bad[byte] ^= 0x10;
            assert!(decode_segment_header(&bad, 8192).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn frame_round_trip_and_position_binding() {
        let payload = b"hello, wal";
        let mut out = vec![0u8; frame_disk_len(payload.len()) as usize];
        encode_frame(&mut out, 4096, 7, &[&payload[..4], &payload[4..]]);
        let header = FrameHeader::parse(&out, 1 << 20).unwrap();
        assert_eq!(header.payload_len as usize, payload.len());
        assert_eq!(header.frame_type, 7);
        assert_eq!(header.disk_len(), out.len() as u64);
        header.verify(4096, &out).unwrap();
        // The same bytes at another position are not a valid frame.
        assert!(header.verify(4096 + 16, &out).is_err());
        assert_eq!(&out[16..16 + payload.len()], payload);
    }

    #[test]
    fn zeroes_and_padding() {
        assert!(FrameHeader::parse(&[0u8; 16], 1 << 20).is_err());
        let mut pad = vec![0u8; 48];
        encode_padding(&mut pad, 64, 4096);
        let header = FrameHeader::parse(&pad, 1 << 20).unwrap();
        assert_eq!(header.frame_type, FRAME_TYPE_PADDING);
        assert_eq!(header.disk_len(), 48);
        header.verify(64, &pad).unwrap();
        assert_eq!(durable_mark(&pad[FRAME_HEADER_LEN..]), Some(4096));
        // No room for a mark in the smallest padding frame.
        let mut short = vec![0u8; 16];
        encode_padding(&mut short, 64, 4096);
        assert_eq!(durable_mark(&short[FRAME_HEADER_LEN..]), None);
    }
}
