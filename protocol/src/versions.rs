//! The APIs Sluice answers, the versions it accepts, and the decoding of
//! their request bodies.
//!
//! One invocation of `supported_apis!` below is the single place to add an
//! API: its line gives the API a row in [`SUPPORTED_APIS`] (and so in the
//! ApiVersions answer), a variant in [`Request`] and a decoder, so what is
//! advertised and what is implemented cannot drift apart. Each row accepts
//! kafka-protocol's full range for the message, from an optional floor up.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest,
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, DescribeTransactionsRequest, DescribeUserScramCredentialsRequest,
    EndTxnRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, ListTransactionsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest, SyncGroupRequest, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message};
use kafka_protocol::ResponseError;

use crate::error::ProtocolError;
use crate::frame;
use crate::header::RequestHeader;

/// One row of the version table: an API and the inclusive version range
/// Sluice accepts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest accepted version.
    pub min: i16,
    /// Highest accepted version.
    pub max: i16,
}

impl ApiRange {
    /// The range kafka-protocol can decode for `R`, raised to `floor`, so the
    /// table never advertises a version the codec cannot read.
    const fn of<R: Message>(api_key: ApiKey, floor: i16) -> Self {
        let min = if R::VERSIONS.min > floor {
            R::VERSIONS.min
        } else {
            floor
        };
        ApiRange {
            api_key,
            min,
            max: R::VERSIONS.max,
        }
    }

    /// The range cut at `ceiling`: versions above it change what the
    /// API means (the transaction APIs' KIP-890 part 2), not only how it
    /// is encoded.
    const fn up_to(self, ceiling: i16) -> Self {
        let max = if self.max < ceiling {
            self.max
        } else {
            ceiling
        };
        ApiRange { max, ..self }
    }

    /// Whether `version` is accepted.
    pub fn contains(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

macro_rules! supported_apis {
    ($( $(#[$doc:meta])* $variant:ident($request:ty) from $floor:literal $(to $ceiling:literal)?, )*) => {
        /// Every API Sluice implements, one row each; ApiVersions advertises
        /// exactly this.
        pub const SUPPORTED_APIS: &[ApiRange] = &[
            $( ApiRange::of::<$request>(ApiKey::$variant, $floor)$(.up_to($ceiling))?, )*
        ];

        // Each variant must carry the request type of its own api key.
        $( const _: () = assert!(
            <$request as kafka_protocol::protocol::Request>::KEY == ApiKey::$variant as i16
        ); )*

        /// A decoded request body of a supported API, ready for its handler.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[$doc])* $variant($request), )*
        }

        impl Request {
            /// The API this request belongs to, for routing and logs.
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $( Request::$variant(_) => ApiKey::$variant, )*
                }
            }

            /// Decodes `body` for the API and version in `header`. An API or
            /// version outside the table is [`ProtocolError::UnsupportedVersion`]
            /// (answer with [`write_unsupported`]); a body that does not decode
            /// is [`ProtocolError::Decode`] (close the connection).
            pub fn decode(header: &RequestHeader, mut body: Bytes) -> Result<Request, ProtocolError> {
                let (api_key, api_version) = (header.api_key, header.api_version);
                let unsupported = ProtocolError::UnsupportedVersion { api_key, api_version };
                if !supported(api_key, api_version) {
                    return Err(unsupported);
                }
                let decoded = match header.api() {
                    $( Some(ApiKey::$variant) => {
                        <$request>::decode(&mut body, api_version).map(Request::$variant)
                    } )*
                    _ => return Err(unsupported),
                };
                decoded.map_err(|e| ProtocolError::Decode {
                    api_key,
                    api_version,
                    reason: e.to_string(),
                })
            }
        }
    };
}

supported_apis! {
    /// Version negotiation, the first request on every connection.
    ApiVersions(ApiVersionsRequest) from 0,
    /// Brokers, topics and partitions (and topic auto-creation).
    Metadata(MetadataRequest) from 0,
    /// Appends; from v3, the first version that carries magic v2 batches.
    Produce(ProduceRequest) from 3,
    /// Reads; from v4, the first version that returns magic v2 batches.
    Fetch(FetchRequest) from 4,
    /// Offset lookup by time (earliest, latest, timestamp).
    ListOffsets(ListOffsetsRequest) from 0,
    /// Admin: create topics.
    CreateTopics(CreateTopicsRequest) from 0,
    /// Admin: delete topics.
    DeleteTopics(DeleteTopicsRequest) from 0,
    /// Admin: add partitions to a topic.
    CreatePartitions(CreatePartitionsRequest) from 0,
    /// Admin: topic and broker configuration.
    DescribeConfigs(DescribeConfigsRequest) from 0,
    /// Admin: cluster id, controller and brokers.
    DescribeCluster(DescribeClusterRequest) from 0,
    /// Admin: move partitions' log starts (delete records below an offset).
    DeleteRecords(DeleteRecordsRequest) from 0,
    /// Admin: replace a topic's config overrides.
    AlterConfigs(AlterConfigsRequest) from 0,
    /// Admin: set, delete, append to and subtract from topic configs.
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest) from 0,
    /// Admin: the log directory's space and each partition's size.
    DescribeLogDirs(DescribeLogDirsRequest) from 1,
    /// Producer ids and epochs: idempotent and transactional producers.
    InitProducerId(InitProducerIdRequest) from 0,
    /// Groups: which broker coordinates a group (always this one).
    FindCoordinator(FindCoordinatorRequest) from 0,
    /// Groups: join (or rejoin) and wait for the rebalance.
    JoinGroup(JoinGroupRequest) from 0,
    /// Groups: the leader hands out assignments; members receive theirs.
    SyncGroup(SyncGroupRequest) from 0,
    /// Groups: keep a member's session alive.
    Heartbeat(HeartbeatRequest) from 0,
    /// Groups: members leave (batched from v3).
    LeaveGroup(LeaveGroupRequest) from 0,
    /// Groups: commit offsets durably.
    OffsetCommit(OffsetCommitRequest) from 0,
    /// Groups: committed offsets (batched groups from v8).
    OffsetFetch(OffsetFetchRequest) from 0,
    /// Groups: every group of the broker.
    ListGroups(ListGroupsRequest) from 0,
    /// Groups: state, members and assignments.
    DescribeGroups(DescribeGroupsRequest) from 0,
    /// Groups: delete empty groups with their offsets.
    DeleteGroups(DeleteGroupsRequest) from 0,
    /// Groups: delete a group's offsets of some partitions.
    OffsetDelete(OffsetDeleteRequest) from 0,
    /// Transactions: partitions join a transaction (v4+ is between brokers).
    AddPartitionsToTxn(AddPartitionsToTxnRequest) from 0 to 3,
    /// Transactions: a group's offsets join a transaction.
    AddOffsetsToTxn(AddOffsetsToTxnRequest) from 0 to 3,
    /// Transactions: commit or abort (v5 is KIP-890's epoch bump per
    /// transaction, not offered).
    EndTxn(EndTxnRequest) from 0 to 4,
    /// Transactions: offsets committed with the transaction.
    TxnOffsetCommit(TxnOffsetCommitRequest) from 0 to 4,
    /// Admin: transactions by id.
    DescribeTransactions(DescribeTransactionsRequest) from 0,
    /// Admin: every transaction, filtered (v2's id pattern, a Java
    /// regular expression, is not offered).
    ListTransactions(ListTransactionsRequest) from 0 to 1,
    /// Admin: the producers of partitions and their open transactions.
    DescribeProducers(DescribeProducersRequest) from 0,
    /// Security: pick a SASL mechanism (v0, after which raw tokens
    /// followed without Kafka framing, is not offered; clients since
    /// Kafka 1.0 use v1 and SaslAuthenticate).
    SaslHandshake(SaslHandshakeRequest) from 1,
    /// Security: one SASL token (v1+ carries the session lifetime).
    SaslAuthenticate(SaslAuthenticateRequest) from 0,
    /// Security: which users have SCRAM credentials (KIP-554).
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest) from 0,
    /// Security: set and delete SCRAM credentials (KIP-554).
    AlterUserScramCredentials(AlterUserScramCredentialsRequest) from 0,
    /// Security: add ACLs (v0, before pattern types, is not offered).
    CreateAcls(CreateAclsRequest) from 1,
    /// Security: list the ACLs a filter matches.
    DescribeAcls(DescribeAclsRequest) from 1,
    /// Security: remove the ACLs filters match.
    DeleteAcls(DeleteAclsRequest) from 1,
}

/// The accepted range for `api_key`, if Sluice implements it.
pub fn range(api_key: i16) -> Option<&'static ApiRange> {
    SUPPORTED_APIS.iter().find(|r| r.api_key as i16 == api_key)
}

/// Whether Sluice implements `api_key` at `version`; anything else gets
/// UNSUPPORTED_VERSION.
pub fn supported(api_key: i16, version: i16) -> bool {
    range(api_key).is_some_and(|r| r.contains(version))
}

/// The ApiVersions answer: the whole table, so clients only ever pick
/// versions Sluice can decode.
pub fn api_versions_response() -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// Appends the answer to a request whose API or version is not in the table.
///
/// ApiVersions is answered as Kafka does: v0 (header v0) with
/// UNSUPPORTED_VERSION and the table, so the client retries at a version
/// listed there. Any other API has no body schema at that version, so the
/// response is its header and the UNSUPPORTED_VERSION code alone; clients
/// negotiate first, so only a broken or probing client sees this.
pub fn write_unsupported(dst: &mut BytesMut, header: &RequestHeader) -> Result<(), ProtocolError> {
    let code = ResponseError::UnsupportedVersion.code();
    if header.api_key == ApiKey::ApiVersions as i16 {
        let response = api_versions_response().with_error_code(code);
        return frame::write_response(dst, header.correlation_id, 0, &response);
    }
    let header_version = header
        .api()
        .map_or(0, |api| api.response_header_version(header.api_version));
    frame::write_frame(dst, |buf| {
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(buf, header_version)
            .map_err(|e| ProtocolError::Encode {
                api_version: header.api_version,
                reason: e.to_string(),
            })?;
        buf.put_i16(code);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame, header};
    use bytes::Buf;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{RequestHeader as WireHeader, TopicName};
    use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};

    fn header(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 11,
            client_id: None,
        }
    }

    #[test]
    fn table_matches_the_issue() {
        let expect = [
            (ApiKey::ApiVersions, 0, 4),
            (ApiKey::Metadata, 0, 13),
            (ApiKey::Produce, 3, 13),
            (ApiKey::Fetch, 4, 18),
            (ApiKey::ListOffsets, 1, 10),
            (ApiKey::CreateTopics, 2, 7),
            (ApiKey::DeleteTopics, 1, 6),
            (ApiKey::CreatePartitions, 0, 3),
            (ApiKey::DescribeConfigs, 1, 4),
            (ApiKey::DescribeCluster, 0, 2),
            (ApiKey::DeleteRecords, 0, 2),
            (ApiKey::AlterConfigs, 0, 2),
            (ApiKey::IncrementalAlterConfigs, 0, 1),
            (ApiKey::DescribeLogDirs, 1, 4),
            (ApiKey::InitProducerId, 0, 5),
            (ApiKey::FindCoordinator, 0, 6),
            (ApiKey::JoinGroup, 0, 9),
            (ApiKey::SyncGroup, 0, 5),
            (ApiKey::Heartbeat, 0, 4),
            (ApiKey::LeaveGroup, 0, 5),
            (ApiKey::OffsetCommit, 2, 9),
            (ApiKey::OffsetFetch, 1, 9),
            (ApiKey::ListGroups, 0, 5),
            (ApiKey::DescribeGroups, 0, 6),
            (ApiKey::DeleteGroups, 0, 2),
            (ApiKey::OffsetDelete, 0, 0),
            (ApiKey::AddPartitionsToTxn, 0, 3),
            (ApiKey::AddOffsetsToTxn, 0, 3),
            (ApiKey::EndTxn, 0, 4),
            (ApiKey::TxnOffsetCommit, 0, 4),
            (ApiKey::DescribeTransactions, 0, 0),
            (ApiKey::ListTransactions, 0, 1),
            (ApiKey::DescribeProducers, 0, 0),
            (ApiKey::SaslHandshake, 1, 1),
            (ApiKey::SaslAuthenticate, 0, 2),
            (ApiKey::DescribeUserScramCredentials, 0, 0),
            (ApiKey::AlterUserScramCredentials, 0, 0),
            (ApiKey::CreateAcls, 1, 3),
            (ApiKey::DescribeAcls, 1, 3),
            (ApiKey::DeleteAcls, 1, 3),
        ];
        let table: Vec<_> = SUPPORTED_APIS
            .iter()
            .map(|r| (r.api_key, r.min, r.max))
            .collect();
        assert_eq!(table, expect);
        for r in SUPPORTED_APIS {
            // The table never claims more than kafka-protocol's own range.
            let valid = r.api_key.valid_versions();
            assert!(valid.min <= r.min && r.max <= valid.max, "{r:?}");
        }
    }

    #[test]
    fn supported_checks_key_and_version() {
        let produce = ApiKey::Produce as i16;
        assert!(!supported(produce, 2));
        assert!(supported(produce, 3));
        assert!(supported(produce, 13));
        assert!(!supported(produce, 14));
        assert!(!supported(ApiKey::Fetch as i16, 3));
        assert!(supported(ApiKey::Fetch as i16, 4));
        assert!(supported(ApiKey::JoinGroup as i16, 0));
        assert!(!supported(ApiKey::JoinGroup as i16, 10));
        assert!(supported(ApiKey::EndTxn as i16, 4));
        // KIP-890 part 2 changes what EndTxn v5 means: not offered.
        assert!(!supported(ApiKey::EndTxn as i16, 5));
        assert!(!supported(ApiKey::WriteTxnMarkers as i16, 1));
        assert!(!supported(9999, 0));
        assert!(!supported(-1, 0));
    }

    #[test]
    fn api_versions_response_round_trips_at_every_version() {
        for version in 0..=4 {
            let mut dst = BytesMut::new();
            frame::write_response(&mut dst, 3, version, &api_versions_response()).unwrap();
            let mut body = frame::split(&mut dst, 1 << 20).unwrap().unwrap();
            assert_eq!(
                ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
                3
            );
            let decoded = ApiVersionsResponse::decode(&mut body, version).unwrap();
            assert!(body.is_empty());
            assert_eq!(decoded.error_code, 0);
            let ranges: Vec<_> = decoded
                .api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version))
                .collect();
            let table: Vec<_> = SUPPORTED_APIS
                .iter()
                .map(|r| (r.api_key as i16, r.min, r.max))
                .collect();
            assert_eq!(ranges, table, "v{version}");
        }
    }

    #[test]
    fn unsupported_api_versions_falls_back_to_v0() {
        let mut dst = BytesMut::new();
        write_unsupported(&mut dst, &header(ApiKey::ApiVersions as i16, 9)).unwrap();
        let mut body = frame::split(&mut dst, 1 << 20).unwrap().unwrap();
        assert_eq!(
            ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
            11
        );
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert!(body.is_empty());
        assert_eq!(decoded.error_code, 35);
        assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len());
    }

    #[test]
    fn unsupported_other_api_carries_correlation_id_and_code() {
        for (api_key, api_version, header_len) in [(9999, 0, 4), (0, 2, 4), (3, 99, 5)] {
            let mut dst = BytesMut::new();
            write_unsupported(&mut dst, &header(api_key, api_version)).unwrap();
            let mut body = frame::split(&mut dst, 1 << 20).unwrap().unwrap();
            assert_eq!(body.len(), header_len + 2, "key {api_key} v{api_version}");
            assert_eq!(body.get_i32(), 11);
            body.advance(header_len - 4);
            assert_eq!(body.get_i16(), 35);
        }
    }

    #[test]
    fn request_decodes_a_supported_body() {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))]))
            .with_allow_auto_topic_creation(true);
        let wire = WireHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(8);
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &wire).unwrap();
        request.encode(&mut buf, 12).unwrap();

        let (header, body) = header::parse(buf.freeze()).unwrap();
        let decoded = Request::decode(&header, body).unwrap();
        assert_eq!(decoded.api_key(), ApiKey::Metadata);
        assert_eq!(decoded, Request::Metadata(request));
    }

    #[test]
    fn request_refuses_unsupported_and_malformed() {
        assert_eq!(
            Request::decode(&header(ApiKey::Produce as i16, 2), Bytes::new()),
            Err(ProtocolError::UnsupportedVersion {
                api_key: 0,
                api_version: 2
            })
        );
        assert!(matches!(
            Request::decode(&header(ApiKey::JoinGroup as i16, 10), Bytes::new()),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            Request::decode(
                &header(ApiKey::Metadata as i16, 4),
                Bytes::from_static(&[0, 0])
            ),
            Err(ProtocolError::Decode {
                api_key: 3,
                api_version: 4,
                ..
            })
        ));
    }
}
