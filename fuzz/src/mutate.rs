//! Byte-level mutation of an encoded request, and hostile request headers
//! and frames.
//!
//! Body mutations: overwrite 1, 2, 4 or 8 bytes at a random position with an
//! interesting value (-1, 0, 1, the signed extremes of the width,
//! 0x7fff_fff0), flip a byte, truncate, append garbage, splice a piece of
//! the body (or of an earlier body) into it, delete a range. Each has a
//! class, `<api>.bytes-<op>`. Header and frame mutations (`header-*`,
//! `frame-*`) change what the broker must parse before it even knows the
//! API.

use crate::rng::Rng;

/// An interesting value of `width` bytes, big-endian.
fn interesting(rng: &mut Rng, width: usize) -> Vec<u8> {
    let bits = width * 8;
    let v: i64 = match rng.below(7) {
        0 => -1,
        1 => 0,
        2 => 1,
        3 if bits < 64 => -(1i64 << (bits - 1)),
        3 => i64::MIN,
        4 if bits < 64 => (1i64 << (bits - 1)) - 1,
        4 => i64::MAX,
        5 if width >= 4 => 0x7fff_fff0,
        _ => rng.next_u64() as i64,
    };
    v.to_be_bytes()[8 - width..].to_vec()
}

/// Applies 1 to 4 mutations to `body`; returns their op names.
pub fn body(rng: &mut Rng, body: &mut Vec<u8>, donor: &[u8]) -> Vec<&'static str> {
    let n = 1 + rng.below(4);
    (0..n).map(|_| one(rng, body, donor)).collect()
}

fn one(rng: &mut Rng, b: &mut Vec<u8>, donor: &[u8]) -> &'static str {
    let len = b.len();
    match rng.below(10) {
        0..=3 if len > 0 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let width = width.min(len);
            let at = rng.below((len - width + 1) as u64) as usize;
            let v = interesting(rng, width);
            b[at..at + width].copy_from_slice(&v);
            match width {
                1 => "overwrite1",
                2 => "overwrite2",
                4 => "overwrite4",
                _ => "overwrite8",
            }
        }
        4 if len > 0 => {
            let at = rng.below(len as u64) as usize;
            b[at] ^= 1 << rng.below(8);
            "bitflip"
        }
        5 if len > 0 => {
            b.truncate(rng.below(len as u64) as usize);
            "truncate"
        }
        6 => {
            let mut extra = vec![0; 1 + rng.below(64) as usize];
            rng.fill(&mut extra);
            b.extend_from_slice(&extra);
            "append"
        }
        7 if !donor.is_empty() => {
            // A piece of another request's body, inserted.
            let from = rng.below(donor.len() as u64) as usize;
            let to = from + 1 + rng.below((donor.len() - from) as u64) as usize;
            let at = rng.below(len as u64 + 1) as usize;
            b.splice(at..at, donor[from..to].iter().copied());
            "splice"
        }
        8 if len > 1 => {
            let from = rng.below(len as u64) as usize;
            let to = from + 1 + rng.below((len - from) as u64) as usize;
            let copy = b[from..to].to_vec();
            let at = rng.below(b.len() as u64 + 1) as usize;
            b.splice(at..at, copy);
            "repeat"
        }
        9 if len > 1 => {
            let from = rng.below(len as u64) as usize;
            let to = from + 1 + rng.below(((len - from) as u64).min(16)) as usize;
            b.drain(from..to);
            "delete"
        }
        _ => {
            // A varint that claims a huge compact length or tag count.
            let at = rng.below(len as u64 + 1) as usize;
            b.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            "varint"
        }
    }
}

/// A request header as Kafka writes it: api key, version, correlation id,
/// then (v1+) a nullable client id and (v2) an empty tagged-field section.
pub fn header(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<&[u8]>,
    header_version: i16,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&correlation_id.to_be_bytes());
    if header_version >= 1 {
        match client_id {
            Some(id) => {
                h.extend_from_slice(&(id.len() as i16).to_be_bytes());
                h.extend_from_slice(id);
            }
            None => h.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    if header_version >= 2 {
        h.push(0);
    }
    h
}

/// A size-prefixed frame of `header` and `body`.
pub fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + header.len() + body.len());
    f.extend_from_slice(&((header.len() + body.len()) as i32).to_be_bytes());
    f.extend_from_slice(header);
    f.extend_from_slice(body);
    f
}

/// What a hostile header or frame does, and what the broker may do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// An API key the broker does not implement.
    ApiKey,
    /// A version outside the supported range.
    Version,
    /// The body of one version under the header of another.
    VersionMismatch,
    /// Odd client ids (null, empty, 32 KB, not UTF-8, a lying length).
    ClientId,
    /// A header with garbage tagged fields (header v2).
    Tagged,
    /// A frame that ends inside the header.
    Truncated,
    /// Extreme correlation ids (the request is otherwise valid).
    Correlation,
    /// Size prefix smaller than the frame.
    SizeShort,
    /// Size prefix larger than what is sent: the broker waits for the rest.
    SizeLong,
    /// Negative, zero or above any limit.
    SizeBad,
}

impl Hostile {
    pub const ALL: [Hostile; 10] = [
        Hostile::ApiKey,
        Hostile::Version,
        Hostile::VersionMismatch,
        Hostile::ClientId,
        Hostile::Tagged,
        Hostile::Truncated,
        Hostile::Correlation,
        Hostile::SizeShort,
        Hostile::SizeLong,
        Hostile::SizeBad,
    ];

    pub fn class(self) -> &'static str {
        match self {
            Hostile::ApiKey => "header-api-key",
            Hostile::Version => "header-version",
            Hostile::VersionMismatch => "header-version-mismatch",
            Hostile::ClientId => "header-client-id",
            Hostile::Tagged => "header-tagged",
            Hostile::Truncated => "header-truncated",
            Hostile::Correlation => "header-correlation",
            Hostile::SizeShort => "frame-size-short",
            Hostile::SizeLong => "frame-size-long",
            Hostile::SizeBad => "frame-size-bad",
        }
    }
}

/// A client id for [`Hostile::ClientId`]: the bytes that follow the
/// header's fixed part (length prefix included, so it can lie).
pub fn hostile_client_id(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    match rng.below(5) {
        0 => out.extend_from_slice(&0i16.to_be_bytes()),
        1 => {
            out.extend_from_slice(&((crate::knobs::LONG_STRING - 1) as i16).to_be_bytes());
            out.resize(2 + crate::knobs::LONG_STRING - 1, b'c');
        }
        2 => {
            out.extend_from_slice(&4i16.to_be_bytes());
            out.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
        }
        3 => out.extend_from_slice(&i16::MAX.to_be_bytes()),
        _ => out.extend_from_slice(&(-2i16).to_be_bytes()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_kafka() {
        let h = header(3, 12, 7, Some(b"ab"), 2);
        assert_eq!(h, [0, 3, 0, 12, 0, 0, 0, 7, 0, 2, b'a', b'b', 0]);
        assert_eq!(header(18, 0, 1, None, 1)[8..], [0xff, 0xff]);
        assert_eq!(frame(&[1, 2], &[3])[..4], [0, 0, 0, 3]);
    }

    #[test]
    fn body_mutations_change_something_and_never_panic() {
        let mut rng = Rng::new(11);
        let donor = vec![9u8; 40];
        for len in [0usize, 1, 2, 7, 100] {
            for _ in 0..500 {
                let mut b = vec![0x11; len];
                let ops = body(&mut rng, &mut b, &donor);
                assert!(!ops.is_empty());
            }
        }
    }
}
