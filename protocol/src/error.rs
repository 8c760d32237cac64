//! Errors of the wire protocol, and the one place a bad batch becomes a Kafka
//! error code.
//!
//! Two kinds, because the broker treats them differently: a [`ProtocolError`]
//! means the connection's byte stream can no longer be trusted (close it and
//! log the error), while a [`BatchError`] rejects one partition's records with
//! a Kafka error code ([`BatchError::response_error`]) and leaves the
//! connection up.

use std::fmt;

use kafka_protocol::ResponseError;

/// Why a frame, header or request body could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The size prefix exceeds the configured maximum; reported from the
    /// prefix alone so the caller can close without buffering the body.
    FrameTooLarge {
        /// Size the peer announced (or the response would need).
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The size prefix is negative: the stream is not Kafka or is corrupt.
    NegativeFrameSize(i32),
    /// The frame is too short to hold api key, version and correlation id,
    /// so there is no one to answer.
    TruncatedHeader {
        /// Length of the frame body.
        len: usize,
    },
    /// The fixed part of the header was read but the rest (client id, tagged
    /// fields) is malformed.
    MalformedHeader {
        /// Api key from the header.
        api_key: i16,
        /// Api version from the header.
        api_version: i16,
        /// Correlation id from the header, for the log line.
        correlation_id: i32,
        /// What the decoder said.
        reason: String,
    },
    /// The API or version is not in the version table; the broker answers
    /// UNSUPPORTED_VERSION (see `versions::write_unsupported`).
    UnsupportedVersion {
        /// Api key from the header.
        api_key: i16,
        /// Api version from the header.
        api_version: i16,
    },
    /// A supported API's body did not decode at its version.
    Decode {
        /// Api key from the header.
        api_key: i16,
        /// Api version from the header.
        api_version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// A response could not be encoded at the requested version (a broker
    /// bug, such as a field set that the version cannot carry).
    Encode {
        /// The response version.
        api_version: i16,
        /// What the encoder said.
        reason: String,
    },
    /// A record batch failed validation.
    Batch(BatchError),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the maximum of {max}")
            }
            Self::NegativeFrameSize(size) => write!(f, "negative frame size {size}"),
            Self::TruncatedHeader { len } => {
                write!(f, "request of {len} bytes is too short for a header")
            }
            Self::MalformedHeader {
                api_key,
                api_version,
                correlation_id,
                reason,
            } => write!(
                f,
                "malformed header (api key {api_key} v{api_version}, correlation id \
                 {correlation_id}): {reason}"
            ),
            Self::UnsupportedVersion {
                api_key,
                api_version,
            } => write!(f, "unsupported api key {api_key} v{api_version}"),
            Self::Decode {
                api_key,
                api_version,
                reason,
            } => write!(
                f,
                "cannot decode api key {api_key} v{api_version}: {reason}"
            ),
            Self::Encode {
                api_version,
                reason,
            } => write!(f, "cannot encode response v{api_version}: {reason}"),
            Self::Batch(e) => write!(f, "record batch: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Batch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BatchError> for ProtocolError {
    fn from(e: BatchError) -> Self {
        Self::Batch(e)
    }
}

/// Which check a record batch failed; each maps to the code Kafka answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the batch length announces.
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The batch length is below the 61-byte v2 header (Kafka: corrupt).
    TooSmall {
        /// The batch length field (bytes after the length field itself).
        batch_length: i32,
    },
    /// Magic other than 2. Kafka rejects v0/v1 message sets in produce v3+
    /// with INVALID_RECORD; Sluice stores v2 only.
    Magic(i8),
    /// The CRC-32C over attributes..end does not match the stored one.
    Crc {
        /// CRC in the batch header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Compression codec id 5-7, which no Kafka version defines.
    Compression(u8),
    /// Record count negative (any batch) or zero (a produced batch).
    Count(i32),
    /// Last offset delta impossible for the record count (a produced batch
    /// needs exactly `count - 1`).
    OffsetDelta {
        /// The last offset delta field.
        last_offset_delta: i32,
        /// The record count field.
        count: i32,
    },
    /// A produce partition with no records at all.
    NoBatch,
    /// A produce partition with more than one batch (Kafka allows exactly
    /// one from produce v3).
    MultipleBatches,
    /// A client tried to write a control batch (only brokers write those).
    ControlBatch,
    /// An idempotent producer id with a negative base sequence.
    Sequence {
        /// The producer id field.
        producer_id: i64,
        /// The base sequence field.
        base_sequence: i32,
    },
}

impl BatchError {
    /// The Kafka error a produce response carries for this batch, following
    /// Kafka's broker: structural damage (CorruptRecordException) is
    /// CORRUPT_MESSAGE, a well-formed batch that breaks a rule
    /// (InvalidRecordException) is INVALID_RECORD.
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::Truncated { .. } | Self::TooSmall { .. } | Self::Crc { .. } => {
                ResponseError::CorruptMessage
            }
            Self::Compression(_) => ResponseError::CorruptMessage,
            Self::Magic(_)
            | Self::Count(_)
            | Self::OffsetDelta { .. }
            | Self::NoBatch
            | Self::MultipleBatches
            | Self::ControlBatch
            | Self::Sequence { .. } => ResponseError::InvalidRecord,
        }
    }

    /// [`Self::response_error`] as the i16 that goes on the wire.
    pub fn error_code(&self) -> i16 {
        self.response_error().code()
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} bytes, has {available}")
            }
            Self::TooSmall { batch_length } => {
                write!(f, "batch length {batch_length} is below the v2 header size")
            }
            Self::Magic(magic) => write!(f, "magic {magic} is not 2"),
            Self::Crc { stored, computed } => {
                write!(
                    f,
                    "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            Self::Compression(codec) => write!(f, "unknown compression codec {codec}"),
            Self::Count(count) => write!(f, "invalid record count {count}"),
            Self::OffsetDelta {
                last_offset_delta,
                count,
            } => write!(
                f,
                "last offset delta {last_offset_delta} inconsistent with {count} records"
            ),
            Self::NoBatch => write!(f, "no record batch"),
            Self::MultipleBatches => write!(f, "more than one record batch"),
            Self::ControlBatch => write!(f, "clients may not write control batches"),
            Self::Sequence {
                producer_id,
                base_sequence,
            } => write!(
                f,
                "producer id {producer_id} with invalid base sequence {base_sequence}"
            ),
        }
    }
}

impl std::error::Error for BatchError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_corrupt_message_and_rule_breaking_is_invalid_record() {
        let corrupt = [
            BatchError::Truncated {
                needed: 61,
                available: 3,
            },
            BatchError::TooSmall { batch_length: 4 },
            BatchError::Crc {
                stored: 1,
                computed: 2,
            },
            BatchError::Compression(7),
        ];
        for e in corrupt {
            assert_eq!(e.error_code(), 2, "{e}");
        }
        let invalid = [
            BatchError::Magic(1),
            BatchError::Count(0),
            BatchError::OffsetDelta {
                last_offset_delta: 0,
                count: 2,
            },
            BatchError::NoBatch,
            BatchError::MultipleBatches,
            BatchError::ControlBatch,
            BatchError::Sequence {
                producer_id: 1,
                base_sequence: -1,
            },
        ];
        for e in invalid {
            assert_eq!(e.error_code(), 87, "{e}");
        }
    }

    #[test]
    fn batch_error_converts_and_displays() {
        let e: ProtocolError = BatchError::Magic(0).into();
        assert_eq!(e.to_string(), "record batch: magic 0 is not 2");
    }
}
