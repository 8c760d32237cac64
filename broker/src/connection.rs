//! One client connection: read size-prefixed requests, handle them
//! concurrently, and write the responses back strictly in request order.
//!
//! The reader spawns a task per request and queues its handle; the writer
//! awaits the handles in queue order. A produce with acks=0 yields no
//! response and so cannot shift the others. The queue is bounded, so a
//! client pipelining without limit is slowed down, not buffered forever.
//!
//! Memory: a request's bytes count against the connection's limit and the
//! shard's budget (`memory`) from the moment it is cut from the stream
//! until its response is written, and the response's bytes count too; a
//! connection over either is not read until some are written. A frame
//! larger than the read buffer is reserved before its body is read. A
//! connection with nothing to read for `--connections-max-idle-ms` is
//! closed.

use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::sync::{Semaphore, StaticPermit};
use glommio::task::JoinHandle;
use sluice_protocol::{frame, header, versions, ProtocolError, Request};

use crate::context::{RequestContext, Session};
use crate::handlers::Reply;
use crate::lifecycle::Lifecycle;
use crate::memory::{MemoryBudget, Reservation};
use crate::metrics::RequestTiming;
use crate::shard::Shard;

/// Requests of one connection being handled at once.
const MAX_PIPELINED: usize = 1024;
/// Smallest read buffer of a connection; a frame larger than this gets a
/// buffer of its own size.
const READ_CHUNK: usize = 256 * 1024;
/// Fewest bytes a read is offered; a buffer with less room left is replaced.
const MIN_READ: usize = 16 * 1024;
/// Read buffers a connection keeps for reuse once their frames are gone,
/// and the largest it keeps (one for a huge frame is dropped after use).
const MAX_RETIRED: usize = 8;
const MAX_RETIRED_SIZE: usize = 4 << 20;
/// Request bytes of one connection being handled at once; past this the
/// connection is not read until some finish (one request is always let in).
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

/// A response on its way, and the memory it holds until written.
type Response = JoinHandle<(Reply, Held)>;

/// What a request holds until its response is written: its bytes against
/// the connection's limit and the shard's budget, and the response's.
struct Held {
    /// Against the connection's limit and against the shard's budget.
    _request: (Reservation, Reservation),
    _response: Option<Reservation>,
    _fetch_slot: Option<StaticPermit>,
    /// Counts the answer (size, latency) once it is written.
    _timing: Option<RequestTiming>,
}

/// Fetches of one connection being read or waiting to be written. A client
/// that pipelines fetches and never reads its answers could otherwise pin
/// its shard's whole memory budget with them; Kafka clients keep one fetch
/// per broker in flight.
const FETCHES_PER_CONNECTION: u64 = 4;
/// A request frame starts with its API key; Fetch is 1.
const FETCH_KEY: [u8; 2] = 1i16.to_be_bytes();

/// Serves one connection until the client closes it, sends garbage or
/// stays idle too long. `stream` is the socket or its TLS session; the
/// socket's options (no delay, the idle timeout) are set already.
///
/// Until the session is authenticated (SASL listeners), only ApiVersions
/// and the SASL requests are served, one at a time, each at most
/// [`MAX_UNAUTHENTICATED_FRAME`] bytes; anything else closes the
/// connection. SASL requests are always handled one at a time, so a
/// re-authentication (KIP-368) sees the requests before it answered.
pub async fn serve<S>(shard: Rc<Shard>, stream: S, session: Rc<Session>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let peer = session.peer_text();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let (queue, responses) = local_channel::new_bounded::<Response>(MAX_PIPELINED);
    let writer = glommio::spawn_local(write_responses(responses, writer)).detach();
    let mut buf = ReadBuffer::new();
    // The connection's own limit works as the shard's budget does.
    let in_flight = MemoryBudget::new(MAX_IN_FLIGHT_BYTES);
    let fetch_slots = Rc::new(Semaphore::new(FETCHES_PER_CONNECTION));
    let stop = shard.lifecycle().shutdown.generation();
    // The budget taken for a frame too large for the read buffer, before
    // its body was read.
    let mut reserved_frame: Option<Reservation> = None;
    'conn: loop {
        let mut authenticated = session.auth.borrow().authenticated(Instant::now());
        loop {
            let max_frame = max_frame(&shard, authenticated);
            let frame = match buf.split_frame(max_frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer, error = %e, "closing connection: bad frame");
                    break 'conn;
                }
            };
            let key = frame
                .get(..2)
                .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
            let sasl = key == SASL_HANDSHAKE || key == SASL_AUTHENTICATE;
            if !authenticated && !sasl && key != API_VERSIONS {
                let expired = session.auth.borrow().principal().is_some();
                tracing::warn!(
                    peer,
                    listener = session.listener.name,
                    api_key = key,
                    "closing connection: {}",
                    if expired {
                        "the SASL session expired without re-authentication"
                    } else {
                        "a request other than ApiVersions or SASL before authentication"
                    }
                );
                break 'conn;
            }
            let held = in_flight.reserve(frame.len()).await;
            let budget = match reserved_frame.take() {
                Some(reserved) => reserved,
                None => shard.memory().reserve_request(frame.len()).await,
            };
            // Taken here, in request order: answers are written in that
            // order, so a later fetch holding a slot must never make an
            // earlier one wait for it.
            let fetch_slot = if frame.get(..2) == Some(&FETCH_KEY[..]) {
                fetch_slots.acquire_static_permit(1).await.ok()
            } else {
                None
            };
            let request = (held, budget);
            let dispatched = dispatch(&shard, &session, &peer, frame, request, fetch_slot);
            let Some(mut response) = dispatched.await else {
                break 'conn;
            };
            let one_at_a_time = sasl || !authenticated;
            if one_at_a_time {
                // Answered before the next request is even read.
                let Some(answer) = response.await else {
                    break 'conn;
                };
                response = glommio::spawn_local(async move { answer }).detach();
            }
            if queue.send(response).await.is_err() {
                break 'conn;
            }
            if one_at_a_time {
                if session.auth.borrow().failed {
                    // The failure's answer is the last one written.
                    linger(&mut reader).await;
                    break 'conn;
                }
                authenticated = session.auth.borrow().authenticated(Instant::now());
            }
        }
        // Room for at least what the pending frame still needs, in one read.
        let data = buf.data();
        let want = match frame::check(data, max_frame(&shard, authenticated)) {
            Ok(None) if data.len() >= frame::SIZE_PREFIX => {
                let size = i32::from_be_bytes([data[0], data[1], data[2], data[3]]).max(0) as usize;
                if size > READ_CHUNK && reserved_frame.is_none() {
                    reserved_frame = Some(shard.memory().reserve(size).await);
                }
                size + frame::SIZE_PREFIX - data.len()
            }
            _ => 1,
        };
        let space = buf.space(want);
        // On shutdown no new request is read; those in flight are answered.
        let read = futures_lite::future::or(async { Some(reader.read(space).await) }, async {
            shard.lifecycle().shutdown.changed(stop).await;
            None
        })
        .await;
        match read {
            Some(Ok(n)) if n > 0 => buf.filled(n),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::debug!(peer, "closing idle connection");
                break;
            }
            _ => break,
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// How long a connection whose authentication failed is kept open for the
/// client to read the answer and close it first.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops what the client still sends until it closes, for at
/// most [`LINGER`]: the failure's answer is being written meanwhile, and a
/// client that sees the connection end before it reads the answer (some
/// do when the answer and the end arrive together) would only report a
/// lost connection, not SASL_AUTHENTICATION_FAILED.
async fn linger<R: futures_lite::AsyncRead + Unpin>(reader: &mut R) {
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    futures_lite::future::or(drain, glommio::timer::sleep(LINGER)).await;
}

/// The largest request frame of a connection: `--max-request-bytes` once
/// authenticated, Kafka's 512 KiB SASL limit before.
fn max_frame(shard: &Shard, authenticated: bool) -> usize {
    let max = shard.config().max_request_bytes;
    if authenticated {
        max
    } else {
        max.min(MAX_UNAUTHENTICATED_FRAME)
    }
}

/// Largest request before authentication (Kafka's sasl.server.max.receive.size).
pub const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;
const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;

/// Starts handling one request frame, which keeps `holding` until its
/// response is written; `None` closes the connection. An answer that can
/// outgrow its request first waits here, in the read loop, for budget to
/// build it in: in request order, since answers are written in that
/// order (granted out of order, later answers could fill the budget while
/// an earlier one, which must be written first, waits for it for good).
async fn dispatch(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    peer: &str,
    frame: Bytes,
    holding: (Reservation, Reservation),
    fetch_slot: Option<StaticPermit>,
) -> Option<Response> {
    let started = std::time::Instant::now();
    let frame_len = frame.len();
    let (header, body) = match header::parse(frame) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(peer, error = %e, "closing connection: bad request header");
            return None;
        }
    };
    match Request::decode(&header, body) {
        Ok(request) => {
            let metrics = shard.metrics();
            metrics.request(header.api_key, frame_len);
            let mut timing = RequestTiming::new(metrics.clone(), header.api_key, started);
            let lifecycle = shard.lifecycle().clone();
            Lifecycle::started(&lifecycle.active_requests);
            let ctx = RequestContext {
                shard: shard.clone(),
                header,
                session: session.clone(),
            };
            let held = holding;
            // At most half the budget: an estimate larger than the budget
            // could never be met while other requests hold theirs.
            let memory = shard.memory();
            let estimate =
                crate::handlers::response_estimate(&ctx, &request).min(memory.limit() / 2);
            let building = match estimate {
                0 => None,
                // Small ones (a Metadata of a few topics) may use the
                // headroom steering requests have.
                bytes => Some(memory.reserve_request(bytes).await),
            };
            Some(
                glommio::spawn_local(async move {
                    let response = crate::handlers::handle(&ctx, request).await;
                    lifecycle.done(&lifecycle.active_requests);
                    let written = match &response {
                        Reply::Frame(bytes) => {
                            timing.set_response_bytes(bytes.len());
                            Some(ctx.shard.memory().force(bytes.len()))
                        }
                        _ => None,
                    };
                    drop(building);
                    let held = Held {
                        _request: held,
                        _response: written,
                        _fetch_slot: fetch_slot,
                        _timing: Some(timing),
                    };
                    (response, held)
                })
                .detach(),
            )
        }
        Err(ProtocolError::UnsupportedVersion {
            api_key,
            api_version,
        }) => {
            tracing::debug!(peer, api_key, api_version, "unsupported API version");
            let mut out = BytesMut::new();
            if let Err(e) = versions::write_unsupported(&mut out, &header) {
                tracing::warn!(peer, error = %e, "closing connection: cannot answer");
                return None;
            }
            let held = Held {
                _request: holding,
                _response: None,
                _fetch_slot: fetch_slot,
                _timing: None,
            };
            Some(glommio::spawn_local(async move { (Reply::Frame(out), held) }).detach())
        }
        Err(e) => {
            tracing::warn!(
                peer,
                api_key = header.api_key,
                api_version = header.api_version,
                correlation_id = header.correlation_id,
                error = %e,
                "closing connection: malformed request"
            );
            None
        }
    }
}

async fn write_responses<S: futures_lite::AsyncWrite + Unpin>(
    responses: LocalReceiver<Response>,
    mut writer: futures_lite::io::WriteHalf<S>,
) {
    while let Some(response) = responses.recv().await {
        // `_held` goes once the response is written.
        match response.await {
            Some((Reply::Frame(bytes), _held)) => {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Some((Reply::Nothing, _held)) => {}
            Some((Reply::Close, _)) | None => break,
        }
    }
    let _ = writer.close().await;
}

/// A connection's read buffer. `buf[..filled]` holds bytes read and not yet
/// split off as frames; the rest of `buf` is space for the next read.
///
/// Reads never zero memory: a buffer is zeroed once when it is allocated,
/// and when it runs out it is retired rather than dropped. Its frames live
/// on in the requests that hold them; once they are all gone the retired
/// buffer is taken back whole (zeroing the space before every read, or
/// allocating fresh memory each time, cost an eighth of the broker's CPU
/// under load).
struct ReadBuffer {
    buf: Chunk,
    filled: usize,
    retired: std::collections::VecDeque<Chunk>,
}

/// One allocation of a read buffer: `bytes` is a view into it, which
/// starts wherever the frames split off so far end.
struct Chunk {
    bytes: BytesMut,
    /// Address and size of the whole allocation, every byte of which was
    /// zeroed when it was made.
    base: usize,
    size: usize,
}

impl Chunk {
    fn new(size: usize) -> Chunk {
        let bytes = BytesMut::zeroed(size);
        Chunk {
            base: bytes.as_ptr() as usize,
            size,
            bytes,
        }
    }

    /// Takes the whole allocation back once no frame of it is alive, and
    /// only if it has room for `want` bytes.
    fn reclaim(&mut self, want: usize) -> bool {
        self.bytes.clear();
        if want > self.size || !self.bytes.try_reclaim(want) {
            return false;
        }
        let start = self.bytes.as_ptr() as usize;
        let initialized = (self.base + self.size).saturating_sub(start);
        let len = self.bytes.capacity().min(initialized);
        if start < self.base || len < want {
            return false;
        }
        // SAFETY: `try_reclaim` never allocates, so `bytes` still points into
        // the allocation made by `Chunk::new`, at or after `base`; all of
        // `base..base + size` was initialized (zeroed) there and has only
        // been written since, and `len` stays within both it and capacity.
        unsafe { self.bytes.set_len(len) };
        true
    }
}

impl ReadBuffer {
    fn new() -> ReadBuffer {
        ReadBuffer {
            buf: Chunk::new(READ_CHUNK),
            filled: 0,
            retired: std::collections::VecDeque::new(),
        }
    }

    /// The bytes read and not yet split off.
    fn data(&self) -> &[u8] {
        &self.buf.bytes[..self.filled]
    }

    /// Detaches the first complete frame's body (after its size prefix)
    /// without copying; `None` until it is all here.
    fn split_frame(&mut self, max_frame: usize) -> Result<Option<Bytes>, ProtocolError> {
        let frame = frame::split_filled(&mut self.buf.bytes, self.filled, max_frame)?;
        if let Some(body) = &frame {
            self.filled -= frame::SIZE_PREFIX + body.len();
        }
        Ok(frame)
    }

    /// Space for the next read, at least `want` bytes. When this buffer has
    /// too little left, the unsplit bytes move to a retired buffer whose
    /// frames are all gone, or to a new one.
    fn space(&mut self, want: usize) -> &mut [u8] {
        let want = want.max(MIN_READ);
        if self.buf.bytes.len() - self.filled < want {
            let need = self.filled + want;
            let reused = (0..self.retired.len())
                .find(|&i| self.retired[i].reclaim(need))
                .and_then(|i| self.retired.remove(i));
            let mut next = reused.unwrap_or_else(|| Chunk::new(need.max(READ_CHUNK)));
            next.bytes[..self.filled].copy_from_slice(&self.buf.bytes[..self.filled]);
            let old = std::mem::replace(&mut self.buf, next);
            if old.size <= MAX_RETIRED_SIZE {
                if self.retired.len() == MAX_RETIRED {
                    self.retired.pop_front();
                }
                self.retired.push_back(old);
            }
        }
        &mut self.buf.bytes[self.filled..]
    }

    /// Counts `n` bytes the last read put into [`ReadBuffer::space`].
    fn filled(&mut self, n: usize) {
        self.filled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// Feeds `bytes` in reads of at most `step`, as a socket would.
    fn feed(rb: &mut ReadBuffer, bytes: &[u8], step: usize, max: usize) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            while let Some(f) = rb.split_frame(max).unwrap() {
                frames.push(f);
            }
            let space = rb.space(1);
            let n = space.len().min(step).min(bytes.len() - at);
            space[..n].copy_from_slice(&bytes[at..at + n]);
            rb.filled(n);
            at += n;
        }
        while let Some(f) = rb.split_frame(max).unwrap() {
            frames.push(f);
        }
        frames
    }

    #[test]
    fn frames_survive_buffer_replacement() {
        // Small frames, then one larger than a whole buffer, then small
        // again: partial frames move to the new buffer intact.
        let bodies: Vec<Vec<u8>> = (0..200u32)
            .map(|i| {
                let len = if i == 100 {
                    3 * READ_CHUNK
                } else {
                    1000 + i as usize * 37
                };
                (0..len).map(|b| (b as u32 ^ i) as u8).collect()
            })
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame_of(b)).collect();
        for step in [7, 4096, 100_000] {
            let mut rb = ReadBuffer::new();
            let frames = feed(&mut rb, &stream, step, 1 << 30);
            assert_eq!(frames.len(), bodies.len(), "step {step}");
            for (f, b) in frames.iter().zip(&bodies) {
                assert_eq!(&f[..], &b[..], "step {step}");
            }
            assert!(rb.data().is_empty());
        }
    }

    #[test]
    fn buffers_are_reused_once_their_frames_are_gone() {
        let body = vec![7u8; READ_CHUNK / 2];
        let stream: Vec<u8> = (0..4).flat_map(|_| frame_of(&body)).collect();
        let mut rb = ReadBuffer::new();
        let first = rb.buf.base;
        let held = feed(&mut rb, &stream, usize::MAX, 1 << 30);
        assert_eq!(held.len(), 4);
        assert_ne!(rb.buf.base, first, "the first buffer ran out");
        // While its frames live, the first buffer cannot come back.
        let again = feed(&mut rb, &stream, usize::MAX, 1 << 30);
        assert!(rb.retired.iter().any(|c| c.base == first));
        assert_ne!(rb.buf.base, first);
        drop(held);
        drop(again);
        // Now every buffer switch takes a retired buffer back: no new ones.
        let known: Vec<usize> = std::iter::once(rb.buf.base)
            .chain(rb.retired.iter().map(|c| c.base))
            .collect();
        for _ in 0..4 {
            let frames = feed(&mut rb, &stream, usize::MAX, 1 << 30);
            assert!(frames.iter().all(|f| f[..] == body[..]));
            assert!(known.contains(&rb.buf.base), "a new buffer was allocated");
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_its_body() {
        let mut rb = ReadBuffer::new();
        let space = rb.space(1);
        space[..4].copy_from_slice(&(1i32 << 20).to_be_bytes());
        rb.filled(4);
        assert!(rb.split_frame(1024).is_err());
    }
}
