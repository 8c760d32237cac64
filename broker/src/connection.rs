//! One client connection: read size-prefixed requests, handle them
//! concurrently, and write the responses back strictly in request order.
//!
//! The reader spawns a task per request and queues its handle; the writer
//! awaits the handles in queue order. A produce with acks=0 yields no
//! response and so cannot shift the others. The queue is bounded, so a
//! client pipelining without limit is slowed down, not buffered forever.

use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use sluice_protocol::{frame, header, versions, ProtocolError, Request};

use crate::handlers::Reply;
use crate::shard::Shard;

/// Requests of one connection being handled at once.
const MAX_PIPELINED: usize = 1024;
/// Bytes read from the socket at a time (more when a large frame is pending).
const READ_CHUNK: usize = 64 * 1024;
/// Request bytes of one connection being handled at once; past this the
/// connection is not read until some finish (one request is always let in).
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

type Response = JoinHandle<Reply>;

/// Serves one connection until the client closes it or sends garbage.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = futures_lite::io::split(stream);
    let (queue, responses) = local_channel::new_bounded::<Response>(MAX_PIPELINED);
    let writer = glommio::spawn_local(write_responses(responses, writer)).detach();
    let max_frame = shard.config.max_request_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let in_flight = Rc::new(InFlight::default());
    let stop = shard.shutdown.generation();
    'conn: loop {
        loop {
            let frame = match frame::split(&mut buf, max_frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer, error = %e, "closing connection: bad frame");
                    break 'conn;
                }
            };
            in_flight.admit(frame.len()).await;
            let Some(response) = dispatch(&shard, &peer, frame, &in_flight) else {
                break 'conn;
            };
            if queue.send(response).await.is_err() {
                break 'conn;
            }
        }
        // Read at least what the pending frame still needs, in one go.
        let want = match frame::check(&buf, max_frame) {
            Ok(None) if buf.len() >= frame::SIZE_PREFIX => {
                let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]).max(0) as usize;
                (size + frame::SIZE_PREFIX - buf.len()).max(READ_CHUNK)
            }
            _ => READ_CHUNK,
        };
        let filled = buf.len();
        buf.resize(filled + want, 0);
        // On shutdown no new request is read; those in flight are answered.
        let read = futures_lite::future::or(
            async { Some(reader.read(&mut buf[filled..]).await) },
            async {
                shard.shutdown.changed(stop).await;
                None
            },
        )
        .await;
        match read {
            Some(Ok(n)) if n > 0 => buf.truncate(filled + n),
            _ => break,
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// Starts handling one request frame; `None` closes the connection.
fn dispatch(
    shard: &Rc<Shard>,
    peer: &str,
    frame: bytes::Bytes,
    in_flight: &Rc<InFlight>,
) -> Option<Response> {
    let size = frame.len();
    let release = {
        let in_flight = in_flight.clone();
        move || in_flight.release(size)
    };
    let (header, body) = match header::parse(frame) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(peer, error = %e, "closing connection: bad request header");
            return None;
        }
    };
    match Request::decode(&header, body) {
        Ok(request) => {
            let shard = shard.clone();
            shard.active_requests.set(shard.active_requests.get() + 1);
            Some(
                glommio::spawn_local(async move {
                    let response = crate::handlers::handle(&shard, &header, request).await;
                    shard.active_requests.set(shard.active_requests.get() - 1);
                    shard.request_done.notify();
                    release();
                    response
                })
                .detach(),
            )
        }
        Err(ProtocolError::UnsupportedVersion {
            api_key,
            api_version,
        }) => {
            tracing::debug!(peer, api_key, api_version, "unsupported API version");
            release();
            let mut out = BytesMut::new();
            if let Err(e) = versions::write_unsupported(&mut out, &header) {
                tracing::warn!(peer, error = %e, "closing connection: cannot answer");
                return None;
            }
            Some(glommio::spawn_local(async move { Reply::Frame(out) }).detach())
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

async fn write_responses(
    responses: LocalReceiver<Response>,
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
) {
    while let Some(response) = responses.recv().await {
        match response.await {
            Some(Reply::Frame(bytes)) => {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Some(Reply::Nothing) => {}
            Some(Reply::Close) | None => break,
        }
    }
    let _ = writer.close().await;
}

/// Request bytes of a connection being handled.
#[derive(Default)]
struct InFlight {
    bytes: std::cell::Cell<usize>,
    released: crate::notify::Notify,
}

impl InFlight {
    /// Waits until `size` more bytes fit (or nothing is in flight), then counts them.
    async fn admit(&self, size: usize) {
        while self.bytes.get() > 0 && self.bytes.get() + size > MAX_IN_FLIGHT_BYTES {
            let g = self.released.generation();
            self.released.changed(g).await;
        }
        self.bytes.set(self.bytes.get() + size);
    }

    fn release(&self, size: usize) {
        self.bytes.set(self.bytes.get().saturating_sub(size));
        self.released.notify();
    }
}
