//! The broker's one error type. Domain code (the log, idempotent producers,
//! groups, the controller) says what went wrong in Kafka's words; the
//! mapping to a wire error code is [`BrokerError::code`], and nowhere else.
//! Its `Display` is the message a client may be shown (produce v8+,
//! CreateTopics, ...) and what the logs say.

use std::fmt;

use sluice_protocol::kafka_protocol::ResponseError;
use sluice_protocol::BatchError;

/// Why a request, or one partition or group of it, was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerError {
    /// A record batch failed validation (its own Kafka code: corrupt,
    /// invalid record, ...).
    Batch(BatchError),
    /// The topic, or the partition, does not exist (here).
    UnknownTopicOrPartition(String),
    /// No topic has the id asked for.
    UnknownTopicId,
    /// A produce's `acks` is not -1, 0 or 1.
    InvalidRequiredAcks(i16),
    /// A batch is larger than the topic's `max.message.bytes`.
    MessageTooLarge {
        /// The batch's size.
        size: usize,
        /// The topic's limit.
        max: usize,
    },
    /// A fetch offset outside `[log start, high watermark]`.
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// High watermark.
        high_watermark: i64,
    },
    /// A producer epoch older than the one the partition knows.
    InvalidProducerEpoch(String),
    /// A producer sequence that does not follow the last one.
    OutOfOrderSequence(String),
    /// A transaction operation its transaction's state does not allow.
    InvalidTxnState(String),
    /// A newer producer with the same transactional id took over
    /// (answered as INVALID_PRODUCER_EPOCH to versions that predate it).
    ProducerFenced,
    /// The producer id is not the transactional id's.
    InvalidProducerIdMapping,
    /// Another operation on the transaction is in progress; retry.
    ConcurrentTransactions,
    /// A transaction timeout above `transaction.max.timeout.ms` or below 1.
    InvalidTransactionTimeout,
    /// No transaction state for this transactional id.
    TransactionalIdNotFound,
    /// An error of another partition of the request stopped this one.
    OperationNotAttempted,
    /// Transactional offsets of the partition are not yet committed or
    /// aborted (OffsetFetch with `require_stable`).
    UnstableOffsetCommit,
    /// The WAL (or a metadata file) failed to store or read something.
    Storage(String),
    /// The broker is shutting down, or the shard that owns this stopped.
    ShuttingDown,
    /// The request is malformed in a way its schema cannot say.
    InvalidRequest(String),
    /// A topic name Kafka does not allow.
    InvalidTopic(String),
    /// CreateTopics for a name that exists.
    TopicAlreadyExists(String),
    /// A partition count out of range, or not larger than before.
    InvalidPartitions(String),
    /// A replication factor other than 1.
    InvalidReplicationFactor(String),
    /// An unknown topic config or a bad value.
    InvalidConfig(String),
    /// The coordinator asked for is not available (transaction keys).
    CoordinatorNotAvailable(String),
    /// The group's coordinator is not this shard any more (shutdown).
    NotCoordinator,
    /// A group id that is empty or too long.
    InvalidGroupId,
    /// A session timeout outside the broker's range.
    InvalidSessionTimeout,
    /// The member is not in the group.
    UnknownMemberId,
    /// The generation is not the group's current one.
    IllegalGeneration,
    /// The group is rebalancing; rejoin.
    RebalanceInProgress,
    /// Another member took this static member's place.
    FencedInstanceId,
    /// A new member must rejoin with the id it was given (JoinGroup v4+).
    MemberIdRequired,
    /// The member's protocols do not fit the group's.
    InconsistentGroupProtocol,
    /// No such group.
    GroupIdNotFound,
    /// The group still has members.
    NonEmptyGroup,
    /// OffsetDelete of a topic the group consumes.
    GroupSubscribedToTopic,
    /// Offset metadata longer than the broker keeps.
    OffsetMetadataTooLarge,
    /// The group has `--group-max-size` members already.
    GroupMaxSizeReached,
    /// A credential, ACL or other resource that does not exist.
    ResourceNotFound(String),
    /// The same resource twice in one request.
    DuplicateResource(String),
    /// A credential the broker does not accept (iterations, empty user).
    UnacceptableCredential(String),
    /// A SASL mechanism the broker does not offer.
    UnsupportedSaslMechanism(String),
    /// A SASL request at a moment the exchange does not expect it.
    IllegalSaslState(String),
    /// Wrong credentials, unknown user or a broken exchange.
    SaslAuthenticationFailed(String),
    /// The principal may not do this to the cluster.
    ClusterAuthorizationFailed(String),
    /// The principal may not do this to the topic.
    TopicAuthorizationFailed(String),
    /// The principal may not do this to the group.
    GroupAuthorizationFailed(String),
    /// The principal may not use the transactional id.
    TransactionalIdAuthorizationFailed(String),
}

impl BrokerError {
    /// The Kafka error code this error is answered with.
    pub fn code(&self) -> i16 {
        use BrokerError as E;
        let e = match self {
            E::Batch(b) => return b.error_code(),
            E::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            E::UnknownTopicId => ResponseError::UnknownTopicId,
            E::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            E::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            E::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            E::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            E::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            E::ProducerFenced => ResponseError::ProducerFenced,
            E::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            E::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            E::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            E::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
            E::OperationNotAttempted => ResponseError::OperationNotAttempted,
            E::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
            E::Storage(_) | E::ShuttingDown => ResponseError::KafkaStorageError,
            E::InvalidRequest(_) => ResponseError::InvalidRequest,
            E::InvalidTopic(_) => ResponseError::InvalidTopicException,
            E::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            E::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            E::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            E::InvalidConfig(_) => ResponseError::InvalidConfig,
            E::CoordinatorNotAvailable(_) => ResponseError::CoordinatorNotAvailable,
            E::NotCoordinator => ResponseError::NotCoordinator,
            E::InvalidGroupId => ResponseError::InvalidGroupId,
            E::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            E::UnknownMemberId => ResponseError::UnknownMemberId,
            E::IllegalGeneration => ResponseError::IllegalGeneration,
            E::RebalanceInProgress => ResponseError::RebalanceInProgress,
            E::FencedInstanceId => ResponseError::FencedInstanceId,
            E::MemberIdRequired => ResponseError::MemberIdRequired,
            E::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            E::GroupIdNotFound => ResponseError::GroupIdNotFound,
            E::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            E::NonEmptyGroup => ResponseError::NonEmptyGroup,
            E::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            E::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            E::ResourceNotFound(_) => ResponseError::ResourceNotFound,
            E::DuplicateResource(_) => ResponseError::DuplicateResource,
            E::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
            E::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
            E::IllegalSaslState(_) => ResponseError::IllegalSaslState,
            E::SaslAuthenticationFailed(_) => ResponseError::SaslAuthenticationFailed,
            E::ClusterAuthorizationFailed(_) => ResponseError::ClusterAuthorizationFailed,
            E::TopicAuthorizationFailed(_) => ResponseError::TopicAuthorizationFailed,
            E::GroupAuthorizationFailed(_) => ResponseError::GroupAuthorizationFailed,
            E::TransactionalIdAuthorizationFailed(_) => {
                ResponseError::TransactionalIdAuthorizationFailed
            }
        };
        e.code()
    }

    /// The code of an optional error: 0 (none) when there is none.
    pub fn code_of(error: Option<&BrokerError>) -> i16 {
        error.map_or(0, BrokerError::code)
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BrokerError as E;
        match self {
            E::Batch(b) => write!(f, "{b}"),
            E::UnknownTopicOrPartition(why)
            | E::InvalidProducerEpoch(why)
            | E::OutOfOrderSequence(why)
            | E::InvalidTxnState(why)
            | E::Storage(why)
            | E::InvalidRequest(why)
            | E::InvalidTopic(why)
            | E::TopicAlreadyExists(why)
            | E::InvalidPartitions(why)
            | E::InvalidReplicationFactor(why)
            | E::InvalidConfig(why)
            | E::CoordinatorNotAvailable(why)
            | E::ResourceNotFound(why)
            | E::DuplicateResource(why)
            | E::UnacceptableCredential(why)
            | E::UnsupportedSaslMechanism(why)
            | E::IllegalSaslState(why)
            | E::SaslAuthenticationFailed(why)
            | E::ClusterAuthorizationFailed(why)
            | E::TopicAuthorizationFailed(why)
            | E::GroupAuthorizationFailed(why)
            | E::TransactionalIdAuthorizationFailed(why) => f.write_str(why),
            E::UnknownTopicId => f.write_str("unknown topic id"),
            E::InvalidRequiredAcks(acks) => write!(f, "acks must be -1, 0 or 1, got {acks}"),
            E::MessageTooLarge { size, max } => {
                write!(f, "batch of {size} bytes exceeds max.message.bytes {max}")
            }
            E::OffsetOutOfRange {
                offset,
                log_start,
                high_watermark,
            } => write!(f, "offset {offset} outside [{log_start}, {high_watermark}]"),
            E::ShuttingDown => f.write_str("broker is shutting down"),
            E::NotCoordinator => f.write_str("not the coordinator"),
            E::InvalidGroupId => f.write_str("invalid group id"),
            E::InvalidSessionTimeout => f.write_str("session timeout out of range"),
            E::UnknownMemberId => f.write_str("unknown member id"),
            E::IllegalGeneration => f.write_str("illegal generation"),
            E::RebalanceInProgress => f.write_str("rebalance in progress"),
            E::FencedInstanceId => f.write_str("fenced instance id"),
            E::MemberIdRequired => f.write_str("member id required"),
            E::InconsistentGroupProtocol => f.write_str("inconsistent group protocol"),
            E::GroupIdNotFound => f.write_str("group does not exist"),
            E::NonEmptyGroup => f.write_str("group is not empty"),
            E::GroupSubscribedToTopic => f.write_str("group is subscribed to the topic"),
            E::OffsetMetadataTooLarge => f.write_str("offset metadata too large"),
            E::GroupMaxSizeReached => f.write_str("the group has reached its maximum size"),
            E::ProducerFenced => {
                f.write_str("a newer producer with the same transactional id fenced this one")
            }
            E::InvalidProducerIdMapping => {
                f.write_str("the producer id does not belong to the transactional id")
            }
            E::ConcurrentTransactions => {
                f.write_str("another operation on the transaction is in progress")
            }
            E::InvalidTransactionTimeout => {
                f.write_str("transaction timeout above transaction.max.timeout.ms")
            }
            E::TransactionalIdNotFound => f.write_str("unknown transactional id"),
            E::OperationNotAttempted => {
                f.write_str("not attempted: another part of the request failed")
            }
            E::UnstableOffsetCommit => {
                f.write_str("a transactional offset commit of the partition is pending")
            }
        }
    }
}

impl std::error::Error for BrokerError {}

impl From<BatchError> for BrokerError {
    fn from(e: BatchError) -> Self {
        BrokerError::Batch(e)
    }
}

impl From<sluice_wal_core::WalError> for BrokerError {
    fn from(e: sluice_wal_core::WalError) -> Self {
        BrokerError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(BrokerError::Storage("x".into()).code(), 56);
        assert_eq!(BrokerError::ShuttingDown.code(), 56);
        assert_eq!(
            BrokerError::OffsetOutOfRange {
                offset: 9,
                log_start: 0,
                high_watermark: 5
            }
            .code(),
            1
        );
        assert_eq!(BrokerError::Batch(BatchError::Magic(1)).code(), 87);
        assert_eq!(BrokerError::NotCoordinator.code(), 16);
        assert_eq!(BrokerError::code_of(None), 0);
    }
}
