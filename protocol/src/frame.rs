//! Kafka's framing: every request and response is a big-endian `i32` size
//! followed by that many bytes.
//!
//! Reading is two steps, as in mini-redis: [`check`] looks only at the size
//! prefix and says "complete", "not yet" or "never" (too large, negative), so
//! a hostile size is refused before a byte of its body is buffered; [`split`]
//! then detaches the body without copying. Writing goes through
//! [`write_response`], which patches the size prefix after encoding so a
//! response is never measured twice.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::error::ProtocolError;

/// Bytes of the size prefix in front of every frame.
pub const SIZE_PREFIX: usize = 4;

/// Default cap on a request body, Kafka's `socket.request.max.bytes`
/// (100 MiB): large enough for any produce request a client sends by default.
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Says whether `buf` starts with a complete frame: `Ok(Some(n))` when the
/// first `n` bytes (prefix included) are one, `Ok(None)` to read more, and an
/// error for a size no valid peer sends, so the caller closes the connection
/// without buffering the body.
pub fn check(buf: &[u8], max_frame: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(prefix) = buf.first_chunk::<SIZE_PREFIX>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    let Ok(size) = usize::try_from(size) else {
        return Err(ProtocolError::NegativeFrameSize(size));
    };
    if size > max_frame {
        return Err(ProtocolError::FrameTooLarge {
            size,
            max: max_frame,
        });
    }
    let total = SIZE_PREFIX + size;
    Ok((buf.len() >= total).then_some(total))
}

/// Detaches the first complete frame's body (the bytes after the size
/// prefix) from `buf` without copying, so decoded requests can hold slices of
/// it (produce records stay in the buffer the socket filled).
pub fn split(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Bytes>, ProtocolError> {
    let filled = buf.len();
    split_filled(buf, filled, max_frame)
}

/// [`split`] for a buffer of which only the first `filled` bytes were read
/// (the rest is space for the next read); the frame comes off the front, so
/// `filled` shrinks by the frame's length plus [`SIZE_PREFIX`].
pub fn split_filled(
    buf: &mut BytesMut,
    filled: usize,
    max_frame: usize,
) -> Result<Option<Bytes>, ProtocolError> {
    let Some(total) = check(&buf[..filled], max_frame)? else {
        return Ok(None);
    };
    let mut frame = buf.split_to(total).freeze();
    frame.advance(SIZE_PREFIX);
    Ok(Some(frame))
}

/// Appends one response frame (size prefix, response header, body) to `dst`.
/// The header version comes from the response type, so ApiVersions responses
/// get header v0 at every version, as Kafka clients expect.
pub fn write_response<R: Encodable + HeaderVersion>(
    dst: &mut BytesMut,
    correlation_id: i32,
    api_version: i16,
    response: &R,
) -> Result<(), ProtocolError> {
    let header_version = R::header_version(api_version);
    write_frame(dst, |buf| {
        let encode_error = |e: &dyn std::fmt::Display| ProtocolError::Encode {
            api_version,
            reason: e.to_string(),
        };
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, header_version)
            .map_err(|e| encode_error(&e))?;
        response
            .encode(buf, api_version)
            .map_err(|e| encode_error(&e))
    })
}

/// Appends a frame whose body `body` writes, patching the size prefix
/// afterwards. On error `dst` is left as it was, so a half-written response
/// never reaches the socket.
pub(crate) fn write_frame(
    dst: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = dst.len();
    dst.put_i32(0);
    if let Err(e) = body(dst) {
        dst.truncate(start);
        return Err(e);
    }
    let size = dst.len() - start - SIZE_PREFIX;
    let Ok(prefix) = i32::try_from(size) else {
        dst.truncate(start);
        return Err(ProtocolError::FrameTooLarge {
            size,
            max: i32::MAX as usize,
        });
    };
    dst[start..start + SIZE_PREFIX].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse};
    use kafka_protocol::protocol::Decodable;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn incomplete_frames_are_not_yet() {
        let frame = framed(b"hello");
        for len in 0..frame.len() {
            assert_eq!(check(&frame[..len], 100), Ok(None), "prefix of {len}");
        }
    }

    #[test]
    fn complete_frame_reports_total_length() {
        let mut buf = framed(b"hello");
        assert_eq!(check(&buf, 100), Ok(Some(9)));
        buf.extend_from_slice(&framed(b"next"));
        assert_eq!(check(&buf, 100), Ok(Some(9)));
        assert_eq!(check(&framed(b""), 100), Ok(Some(4)));
    }

    #[test]
    fn oversized_frame_is_refused_from_the_prefix_alone() {
        assert_eq!(check(&framed(&[0; 10]), 10), Ok(Some(14)));
        let prefix = 11i32.to_be_bytes();
        assert_eq!(
            check(&prefix, 10),
            Err(ProtocolError::FrameTooLarge { size: 11, max: 10 })
        );
        let huge = i32::MAX.to_be_bytes();
        assert!(matches!(
            check(&huge, DEFAULT_MAX_FRAME),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn negative_size_is_refused() {
        for size in [-1i32, i32::MIN] {
            assert_eq!(
                check(&size.to_be_bytes(), DEFAULT_MAX_FRAME),
                Err(ProtocolError::NegativeFrameSize(size))
            );
        }
    }

    #[test]
    fn split_detaches_body_without_copying() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&framed(b"first"));
        buf.extend_from_slice(&framed(b"second")[..6]);
        let body_ptr = buf[SIZE_PREFIX..].as_ptr();

        let frame = split(&mut buf, 100).unwrap().unwrap();
        assert_eq!(&frame[..], b"first");
        assert_eq!(frame.as_ptr(), body_ptr, "body must be a view, not a copy");
        assert_eq!(split(&mut buf, 100), Ok(None));
        assert_eq!(buf.len(), 6, "the partial frame stays buffered");

        buf.extend_from_slice(b"cond");
        assert_eq!(&split(&mut buf, 100).unwrap().unwrap()[..], b"second");
        assert!(buf.is_empty());
    }

    #[test]
    fn response_frame_has_prefix_header_and_body() {
        let mut dst = BytesMut::from(&b"earlier"[..]);
        let response = ApiVersionsResponse::default().with_throttle_time_ms(7);
        write_response(&mut dst, 42, 3, &response).unwrap();

        assert_eq!(&dst[..7], b"earlier");
        let mut frame = split(&mut dst.split_off(7), 1 << 20).unwrap().unwrap();
        // ApiVersions answers with header v0 even at v3: no tagged-field byte.
        let header = ResponseHeader::decode(&mut frame, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        assert_eq!(
            ApiVersionsResponse::decode(&mut frame, 3).unwrap(),
            response
        );
        assert!(frame.is_empty());
    }

    #[test]
    fn flexible_response_gets_header_v1() {
        let mut dst = BytesMut::new();
        write_response(&mut dst, 9, 12, &MetadataResponse::default()).unwrap();
        let mut frame = split(&mut dst, 1 << 20).unwrap().unwrap();
        let header = ResponseHeader::decode(&mut frame, 1).unwrap();
        assert_eq!(header.correlation_id, 9);
        assert_eq!(
            MetadataResponse::decode(&mut frame, 12).unwrap(),
            MetadataResponse::default()
        );
    }

    #[test]
    fn failed_encode_leaves_buffer_untouched() {
        let mut dst = BytesMut::from(&b"keep"[..]);
        // v5 is beyond ApiVersionsResponse's range, so encoding fails.
        let err = write_response(&mut dst, 1, 5, &ApiVersionsResponse::default());
        assert!(matches!(
            err,
            Err(ProtocolError::Encode { api_version: 5, .. })
        ));
        assert_eq!(&dst[..], b"keep");
    }
}
