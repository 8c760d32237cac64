//! The Kafka wire protocol by hand, over a blocking `TcpStream`: for what a
//! real client will not send (corrupt batches, undecodable lz4, duplicate
//! retries, fifty requests written before one response is read).
//!
//! Requests are kafka-protocol messages behind a size prefix and a request
//! header whose version (v1 or v2) `sluice_protocol::header::header_version`
//! picks for the API and version; responses are cut from the stream with
//! `sluice_protocol::frame::split`. Record batches are built with
//! kafka-protocol's `RecordBatchEncoder`, or byte by byte when the test needs
//! a batch no encoder would make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

/// Versions the raw tests speak: Produce v9 and ListOffsets v7 are flexible
/// (request header v2), Fetch v12 is the last by topic name, Metadata v12.
pub const PRODUCE_V: i16 = 9;
pub const FETCH_V: i16 = 12;
pub const LIST_OFFSETS_V: i16 = 7;
pub const METADATA_V: i16 = 12;

/// ListOffsets timestamps for "earliest" and "latest" (the high watermark).
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// No single read may block longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE: usize = 256 << 20;

/// Kafka error codes the tests name.
pub const NONE: i16 = 0;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One connection to the broker.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    next_correlation_id: i32,
}

impl RawClient {
    pub fn connect(addr: &str) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
            next_correlation_id: 1,
        }
    }

    /// A whole request frame: size prefix, header, body.
    pub fn frame<R: Request>(version: i16, correlation_id: i32, request: &R) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-blackbox")))
            .encode(
                &mut buf,
                sluice_protocol::header::header_version(R::KEY, version),
            )
            .expect("encode request header");
        request.encode(&mut buf, version).expect("encode request");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.freeze()
    }

    /// Writes a request without waiting for its answer; returns its
    /// correlation id (consecutive from 1 on each connection).
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        self.write_raw(&Self::frame(version, id, request));
        id
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// [`RawClient::write_raw`] for bytes the broker may stop reading
    /// (it closes the connection) before they are all written.
    pub fn try_write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next response frame's body (header included); panics if the
    /// broker closes the connection or says nothing for [`IO_TIMEOUT`].
    pub fn read_frame(&mut self) -> Bytes {
        self.try_read_frame()
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// [`RawClient::read_frame`] returning I/O errors (a closed connection
    /// is `UnexpectedEof`).
    pub fn try_read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            if let Some(frame) = sluice_protocol::frame::split(&mut self.buf, MAX_RESPONSE)
                .map_err(|e| std::io::Error::other(format!("response frame: {e:?}")))?
            {
                return Ok(frame);
            }
            match self.stream.read(&mut chunk)? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "broker closed the connection",
                    ))
                }
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads the next response as `R`'s response: (correlation id, body).
    pub fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let mut frame = self.read_frame();
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("decode response header");
        let response = R::Response::decode(&mut frame, version).expect("decode response");
        assert!(
            frame.is_empty(),
            "{} bytes left after the response",
            frame.len()
        );
        (header.correlation_id, response)
    }

    /// Request and response, checking the correlation id.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let id = self.send(version, request);
        let (got, response) = self.recv::<R>(version);
        assert_eq!(got, id, "response to the wrong request");
        response
    }

    /// Produces `batch` to one partition; returns that partition's answer.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> PartitionProduceResponse {
        let response = self.call(PRODUCE_V, &produce_request(topic, partition, batch, -1));
        single_produce_result(response)
    }

    /// ListOffsets for one partition: (error code, offset).
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let request = list_offsets_request(topic, partition, timestamp);
        let response = self.call(LIST_OFFSETS_V, &request);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset)
    }

    /// The high watermark (ListOffsets latest); panics on an error code.
    pub fn high_watermark(&mut self, topic: &str, partition: i32) -> i64 {
        let (code, offset) = self.list_offset(topic, partition, LATEST);
        assert_eq!(code, NONE, "ListOffsets latest of {topic}/{partition}");
        offset
    }

    /// One Fetch of one partition from `offset`.
    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> PartitionData {
        let response = self.call(FETCH_V, &fetch_request(topic, partition, offset));
        assert_eq!(response.error_code, NONE, "fetch top-level error");
        let mut topics = response.responses;
        assert_eq!(topics.len(), 1, "one topic asked, got {}", topics.len());
        let mut partitions = topics.remove(0).partitions;
        assert_eq!(partitions.len(), 1, "one partition asked");
        partitions.remove(0)
    }
}

/// ListOffsets of one partition at `timestamp` ([`EARLIEST`], [`LATEST`] or
/// a time).
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])])
}

pub fn produce_request(topic: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

pub fn single_produce_result(
    response: kafka_protocol::messages::ProduceResponse,
) -> PartitionProduceResponse {
    let mut topics = response.responses;
    assert_eq!(topics.len(), 1, "one topic produced, got {}", topics.len());
    let mut partitions = topics.remove(0).partition_responses;
    assert_eq!(partitions.len(), 1, "one partition produced");
    partitions.remove(0)
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(16 << 20)])])
}

/// A record for [`batch`]: key, value, timestamp.
pub struct Rec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
}

/// One magic v2 batch (base offset 0, no producer id, base sequence -1) of
/// `records`.
pub fn batch(records: &[Rec<'_>], compression: Compression) -> Bytes {
    producer_batch(records, compression, -1, -1, -1)
}

/// One magic v2 batch of `records` from producer `producer_id`/`epoch`
/// whose first record has sequence `first_seq` (-1 and -1, -1: none).
pub fn producer_batch(
    records: &[Rec<'_>],
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    first_seq: i32,
) -> Bytes {
    let records: Vec<KRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; consecutive sequences keep it constant.
            sequence: first_seq + i as i32,
            timestamp: r.timestamp,
            key: r.key.map(Bytes::copy_from_slice),
            value: r.value.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// `count` uncompressed records with values `<prefix>-<i>`.
pub fn simple_batch(prefix: &str, count: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect();
    let recs: Vec<Rec<'_>> = values
        .iter()
        .map(|v| Rec {
            key: None,
            value: Some(v),
            timestamp: 1_700_000_000_000,
        })
        .collect();
    batch(&recs, Compression::None)
}

/// Values of every record in a fetch response's `records` (decompressing).
pub fn decode_values(records: &Bytes) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode fetched batches");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| (r.offset, r.value.map(|v| v.to_vec())))
        .collect()
}

/// A batch byte by byte: lz4 codec bit set, `count` records claimed, and a
/// payload that is not lz4 at all, with a *valid* CRC-32C over it.
pub fn lz4_garbage_batch(count: i32, payload: &[u8]) -> Bytes {
    const TS: i64 = 1_700_000_000_000;
    hand_made_batch(3, count, (TS, TS), payload)
}

/// A batch byte by byte (no producer id): `attributes` (codec bits, timestamp
/// type), `count` records claimed, (base, max) timestamps and the records
/// section as given, with a valid CRC-32C over it.
pub fn hand_made_batch(
    attributes: i16,
    count: i32,
    timestamps: (i64, i64),
    records: &[u8],
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0); // base offset
    b.put_i32((49 + records.len()) as i32); // batch length: bytes after this field
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, patched below
    b.put_i16(attributes);
    b.put_i32(count - 1); // last offset delta
    b.put_i64(timestamps.0); // base timestamp
    b.put_i64(timestamps.1); // max timestamp
    b.put_i64(-1); // producer id
    b.put_i16(-1); // producer epoch
    b.put_i32(-1); // base sequence
    b.put_i32(count); // record count
    b.put_slice(records);
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Kafka's zigzag varint, appended to `out`.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// CRC-32C (Castagnoli), bitwise: an implementation independent of the
/// broker's, for building batches and checking fetched ones.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Splits fetched `records` into whole batches (a trailing partial batch,
/// which Kafka allows in a fetch, is dropped).
pub fn split_batches(records: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = records;
    while rest.len() >= 12 {
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap());
        let size = 12 + len.max(0) as usize;
        if len <= 0 || rest.len() < size {
            break;
        }
        out.push(&rest[..size]);
        rest = &rest[size..];
    }
    out
}

/// Whether a stored batch's CRC-32C matches its bytes.
pub fn crc_ok(batch: &[u8]) -> bool {
    batch.len() >= 61
        && u32::from_be_bytes(batch[17..21].try_into().unwrap()) == crc32c(&batch[21..])
}

/// Every record of one partition from offset 0 to the high watermark, by
/// raw Fetch: (offset, value). Panics on a fetch error or a batch whose CRC
/// does not match.
pub fn fetch_all(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..100_000 {
        let data = client.fetch(topic, partition, offset);
        assert_eq!(
            data.error_code, NONE,
            "fetch {topic}/{partition} at {offset}"
        );
        if offset >= data.high_watermark {
            return out;
        }
        let records = data.records.unwrap_or_default();
        let batches = split_batches(&records);
        assert!(
            !batches.is_empty(),
            "empty fetch below the high watermark at {offset}"
        );
        let before = offset;
        for b in batches {
            assert!(crc_ok(b), "fetched batch at {offset} fails its CRC");
            for (o, v) in decode_values(&Bytes::copy_from_slice(b)) {
                if o >= offset {
                    out.push((o, v));
                    offset = o + 1;
                }
            }
        }
        assert!(offset > before, "fetch at {before} returned nothing new");
    }
    panic!("fetch_all of {topic}/{partition} did not reach the high watermark")
}
