//! The request header: which API, which version, which correlation id, and
//! where the body starts.
//!
//! The header's own version (v0: no client id, v1: client id, v2: plus
//! tagged fields) depends on the API and its version; kafka-protocol's
//! generated tables decide it. An API key that kafka-protocol does not know is
//! not a broken stream: its header is read as v1 (api key, version,
//! correlation id, client id are what every Kafka client sends first), so the
//! broker can still answer UNSUPPORTED_VERSION to the right correlation id.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader as WireHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::error::ProtocolError;

/// Bytes of api key + api version + correlation id, present in every header.
const FIXED_HEADER: usize = 8;

/// The parts of a request header the broker acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// Raw api key; may be one kafka-protocol does not know (see [`Self::api`]).
    pub api_key: i16,
    /// Version of the request body.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// Client id for logs and metrics; a view into the frame, not a copy.
    pub client_id: Option<StrBytes>,
}

impl RequestHeader {
    /// The API, if kafka-protocol knows the key; `None` must be answered with
    /// UNSUPPORTED_VERSION, not by dropping the connection.
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }
}

/// The request header version for `api_key` at `api_version`, from
/// kafka-protocol's tables; v1 for a key it does not know.
pub fn header_version(api_key: i16, api_version: i16) -> i16 {
    match ApiKey::try_from(api_key) {
        Ok(api) => api.request_header_version(api_version),
        Err(()) => 1,
    }
}

/// Splits a request frame body (as returned by `frame::split`) into its header
/// and the request body, without copying.
pub fn parse(frame: Bytes) -> Result<(RequestHeader, Bytes), ProtocolError> {
    let Some(fixed) = frame.first_chunk::<FIXED_HEADER>() else {
        return Err(ProtocolError::TruncatedHeader { len: frame.len() });
    };
    let api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    parse_versioned(frame, header_version(api_key, api_version))
}

/// [`parse`] with the header version given rather than looked up.
fn parse_versioned(
    mut frame: Bytes,
    header_version: i16,
) -> Result<(RequestHeader, Bytes), ProtocolError> {
    if frame.len() < FIXED_HEADER {
        return Err(ProtocolError::TruncatedHeader { len: frame.len() });
    }
    // The gets below cannot panic: the frame holds FIXED_HEADER bytes.
    if header_version == 0 {
        // kafka-protocol decodes v1 and v2 only; v0 is the fixed part alone.
        let header = RequestHeader {
            api_key: frame.get_i16(),
            api_version: frame.get_i16(),
            correlation_id: frame.get_i32(),
            client_id: None,
        };
        return Ok((header, frame));
    }
    let fixed = frame.slice(..FIXED_HEADER);
    let wire = WireHeader::decode(&mut frame, header_version).map_err(|e| {
        let mut fixed = fixed;
        ProtocolError::MalformedHeader {
            api_key: fixed.get_i16(),
            api_version: fixed.get_i16(),
            correlation_id: fixed.get_i32(),
            reason: e.to_string(),
        }
    })?;
    let header = RequestHeader {
        api_key: wire.request_api_key,
        api_version: wire.request_api_version,
        correlation_id: wire.correlation_id,
        client_id: wire.client_id,
    };
    Ok((header, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable};

    fn request(api_key: ApiKey, api_version: i16, client_id: Option<&'static str>) -> Bytes {
        let header = WireHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(77)
            .with_client_id(client_id.map(StrBytes::from_static_str));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        MetadataRequest::default()
            .encode(&mut buf, api_version)
            .unwrap();
        buf.freeze()
    }

    fn body(api_version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        MetadataRequest::default()
            .encode(&mut buf, api_version)
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn header_v1_has_client_id() {
        assert_eq!(header_version(ApiKey::Metadata as i16, 4), 1);
        let (header, rest) = parse(request(ApiKey::Metadata, 4, Some("rdkafka"))).unwrap();
        assert_eq!(header.api(), Some(ApiKey::Metadata));
        assert_eq!(header.api_version, 4);
        assert_eq!(header.correlation_id, 77);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        assert_eq!(rest, body(4));
    }

    #[test]
    fn header_v2_skips_tagged_fields() {
        assert_eq!(header_version(ApiKey::Metadata as i16, 12), 2);
        let wire = WireHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(5)
            .with_client_id(None)
            .with_unknown_tagged_field(3, Bytes::from_static(b"tag"));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &wire).unwrap();
        buf.extend_from_slice(&body(12));

        let (header, rest) = parse(buf.freeze()).unwrap();
        assert_eq!(header.correlation_id, 5);
        assert_eq!(header.client_id, None);
        assert_eq!(rest, body(12));
    }

    #[test]
    fn header_v0_has_no_client_id() {
        let mut buf = BytesMut::new();
        buf.put_i16(7);
        buf.put_i16(0);
        buf.put_i32(-3);
        buf.put_slice(b"body");
        let (header, rest) = parse_versioned(buf.freeze(), 0).unwrap();
        assert_eq!(
            header,
            RequestHeader {
                api_key: 7,
                api_version: 0,
                correlation_id: -3,
                client_id: None
            }
        );
        assert_eq!(&rest[..], b"body");
    }

    #[test]
    fn unknown_api_key_still_yields_correlation_id() {
        let mut buf = BytesMut::new();
        buf.put_i16(9999);
        buf.put_i16(3);
        buf.put_i32(1234);
        buf.put_i16(2);
        buf.put_slice(b"me");
        buf.put_slice(b"whatever");
        let (header, rest) = parse(buf.freeze()).unwrap();
        assert_eq!(header.api(), None);
        assert_eq!(header.api_key, 9999);
        assert_eq!(header.correlation_id, 1234);
        assert_eq!(header.client_id.as_deref(), Some("me"));
        assert_eq!(&rest[..], b"whatever");
    }

    #[test]
    fn short_header_is_truncated() {
        for len in 0..FIXED_HEADER {
            let frame = Bytes::from(vec![0; len]);
            assert_eq!(
                parse(frame),
                Err(ProtocolError::TruncatedHeader { len }),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_client_id_is_malformed_with_correlation_id() {
        let mut buf = BytesMut::new();
        buf.put_i16(ApiKey::Metadata as i16);
        buf.put_i16(4);
        buf.put_i32(31);
        buf.put_i16(50); // client id claims 50 bytes, 3 follow
        buf.put_slice(b"abc");
        match parse(buf.freeze()) {
            Err(ProtocolError::MalformedHeader {
                api_key: 3,
                api_version: 4,
                correlation_id: 31,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = crate::XorShift(0xD1B5_4A32_D192_ED03);
        for _ in 0..5000 {
            let len = rng.below(64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len >= 4 && rng.below(2) == 0 {
                // Half the time, a plausible size prefix so the body is parsed.
                bytes[..4].copy_from_slice(&((len - 4) as i32).to_be_bytes());
            }
            let mut buf = BytesMut::from(&bytes[..]);
            // Request::decode is left out: kafka-protocol 0.18 preallocates
            // arrays from the wire count, so garbage can abort the process.
            if let Ok(Some(frame)) = crate::frame::split(&mut buf, 1 << 20) {
                if let Ok((header, _body)) = parse(frame) {
                    let mut out = BytesMut::new();
                    // Never returns an error for a parsed header.
                    crate::versions::write_unsupported(&mut out, &header).unwrap();
                }
            }
        }
    }
}
