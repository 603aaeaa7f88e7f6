//! Streaming a request body of any size to a service over core NATS, with flow control.
//!
//! NATS messages are small (1 MiB by default), and an app package can be gigabytes, so a
//! "streaming" operation is a request/reply conversation instead of one request:
//!
//! 1. **open** — the caller sends the usual [`crate::RpcEnvelope`] request to
//!    `{prefix}.api.{service}.{op}` with header `Sw-Blob: 1`. The service instance that takes it
//!    subscribes to a fresh inbox subject for this upload and answers at once with an empty
//!    message carrying `Sw-Blob-Subject` (where to send the bytes), `Sw-Blob-Chunk` (largest chunk)
//!    and `Sw-Blob-Window` (most chunks in flight).
//! 2. **chunks** — the caller sends the body as requests to that subject, in order, at most
//!    `window` unanswered at a time. The service answers each with an empty `Sw-Blob-Ack` message
//!    *when its handler asks for the next chunk*, so a slow consumer (disk, S3) slows the sender
//!    and neither side buffers more than `window × chunk` bytes.
//! 3. **end** — after the last chunk the caller sends an empty request with `Sw-Blob-End: <total
//!    bytes>`; the handler sees the end of the stream, finishes its work, and its result (an
//!    [`crate::RpcReply`] or a problem, exactly as for a normal call) is the answer to that
//!    request.
//!
//! A handler that fails early (bad token, the first bytes are not a zip, over a size limit) has
//! its result sent as the answer to the chunk it was looking at instead of an ack; the caller
//! stops sending and returns that result. A caller that goes away is noticed by the idle timeout
//! between chunks, and the handler sees [`BlobError::Idle`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use sw_http::ApiError;
use tokio::sync::Mutex;

/// Header on the open request: the caller will stream a body.
pub const HDR_BLOB: &str = "Sw-Blob";
/// Header on the open answer: the subject chunks go to.
pub const HDR_BLOB_SUBJECT: &str = "Sw-Blob-Subject";
/// Header on the open answer: the largest chunk in bytes.
pub const HDR_BLOB_CHUNK: &str = "Sw-Blob-Chunk";
/// Header on the open answer: the most unanswered chunks.
pub const HDR_BLOB_WINDOW: &str = "Sw-Blob-Window";
/// Header on a chunk's answer that means "received, go on".
pub const HDR_BLOB_ACK: &str = "Sw-Blob-Ack";
/// Header on the last, empty, request: the total number of bytes sent.
pub const HDR_BLOB_END: &str = "Sw-Blob-End";

/// Chunk size the services ask for: half the default NATS `max_payload`, leaving room for headers.
pub const DEFAULT_CHUNK: usize = 512 * 1024;
/// Chunks in flight: 4 MiB per upload at most.
pub const DEFAULT_WINDOW: usize = 8;

/// Why a streamed body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No chunk arrived within the idle timeout: the caller stopped sending.
    #[error("the upload stalled: no data for {0:?}")]
    Idle(Duration),
    /// The end marker's byte count differs from what arrived (a lost chunk).
    #[error("the upload is incomplete: {received} bytes arrived, the sender says {declared}")]
    Incomplete { received: u64, declared: u64 },
    /// The subscription closed (NATS connection lost).
    #[error("the upload was interrupted")]
    Closed,
}

impl BlobError {
    /// As a problem: 408 for a stalled upload, 400 for an incomplete one, 503 for a lost connection.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::Idle(_) => ApiError::new(408, "upload_timeout", self.to_string()),
            Self::Incomplete { .. } => ApiError::bad_request("upload_incomplete", self.to_string()),
            Self::Closed => ApiError::unavailable("upload_interrupted", &self),
        }
    }
}

/// What the serve loop and the reader share: where the handler's result must go.
#[derive(Debug)]
pub(crate) struct Conversation {
    sub: async_nats::Subscriber,
    /// Reply subject of the last chunk handed to the handler and not yet acknowledged.
    pending: Option<async_nats::Subject>,
    /// Reply subject of the end marker, once it arrived.
    end: Option<async_nats::Subject>,
    received: u64,
}

/// The body of a streaming call, chunk by chunk (see the module docs).
#[derive(Debug)]
pub struct BlobReader {
    client: async_nats::Client,
    conv: Option<Arc<Mutex<Conversation>>>,
    idle: Duration,
    done: bool,
}

impl BlobReader {
    /// A body with no bytes (the operation was called without streaming).
    pub(crate) fn empty(client: &async_nats::Client) -> Self {
        Self { client: client.clone(), conv: None, idle: Duration::ZERO, done: true }
    }

    /// The next chunk, or `None` at the end of the body. Acknowledges the previous chunk first, so
    /// the sender only gets ahead by its window.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BlobError> {
        let Some(conv) = self.conv.as_ref().filter(|_| !self.done) else { return Ok(None) };
        let mut conv = conv.lock().await;
        if let Some(reply) = conv.pending.take() {
            let mut h = async_nats::HeaderMap::new();
            h.insert(HDR_BLOB_ACK, "1");
            self.client.publish_with_headers(reply, h, Bytes::new()).await.map_err(|_| BlobError::Closed)?;
        }
        let msg = match tokio::time::timeout(self.idle, conv.sub.next()).await {
            Err(_) => return Err(BlobError::Idle(self.idle)),
            Ok(None) => return Err(BlobError::Closed),
            Ok(Some(m)) => m,
        };
        if let Some(total) = msg.headers.as_ref().and_then(|h| h.get(HDR_BLOB_END)) {
            self.done = true;
            conv.end = msg.reply.clone();
            let declared = total.as_str().parse::<u64>().unwrap_or(u64::MAX);
            if declared != conv.received {
                return Err(BlobError::Incomplete { received: conv.received, declared });
            }
            return Ok(None);
        }
        conv.received += msg.payload.len() as u64;
        conv.pending = msg.reply.clone();
        Ok(Some(msg.payload))
    }

    /// Bytes handed out so far.
    pub async fn received(&self) -> u64 {
        match &self.conv {
            Some(c) => c.lock().await.received,
            None => 0,
        }
    }

    /// The body as a stream (for parsers that take one, such as `multer`).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, BlobError>> + Send + 'static {
        futures::stream::unfold(Some(self), |state| async move {
            let mut reader = state?;
            match reader.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), Some(reader))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

/// Server side: subscribes to a fresh subject for one upload and answers the open request.
pub(crate) async fn open(
    client: &async_nats::Client,
    open_reply: async_nats::Subject,
    idle: Duration,
) -> Result<(BlobReader, Arc<Mutex<Conversation>>), String> {
    let subject = client.new_inbox();
    let sub = client.subscribe(subject.clone()).await.map_err(|e| e.to_string())?;
    let mut h = async_nats::HeaderMap::new();
    h.insert(HDR_BLOB_SUBJECT, subject.as_str());
    h.insert(HDR_BLOB_CHUNK, DEFAULT_CHUNK.to_string().as_str());
    h.insert(HDR_BLOB_WINDOW, DEFAULT_WINDOW.to_string().as_str());
    client.publish_with_headers(open_reply, h, Bytes::new()).await.map_err(|e| e.to_string())?;
    let conv = Arc::new(Mutex::new(Conversation { sub, pending: None, end: None, received: 0 }));
    let reader = BlobReader { client: client.clone(), conv: Some(conv.clone()), idle, done: false };
    Ok((reader, conv))
}

/// Server side, after the handler returned: where its result goes — the end marker, else the chunk
/// the handler stopped at, else the next message the caller sends (waiting at most `idle`).
/// `None` when the caller is gone. Unsubscribes.
pub(crate) async fn result_subject(
    conv: &Arc<Mutex<Conversation>>,
    idle: Duration,
) -> Option<async_nats::Subject> {
    let mut conv = conv.lock().await;
    let target = match (conv.end.take(), conv.pending.take()) {
        (Some(end), _) => Some(end),
        (None, Some(pending)) => Some(pending),
        (None, None) => match tokio::time::timeout(idle, conv.sub.next()).await {
            Ok(Some(m)) => m.reply,
            _ => None,
        },
    };
    conv.sub.unsubscribe().await.ok();
    target
}

/// Caller side options of [`crate::Bus::call_streaming`].
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// How long to wait for the answer to the end marker (the service's own processing time).
    pub final_timeout: Duration,
    /// How long the body source may pause before the call is abandoned.
    pub body_idle_timeout: Duration,
}

/// What went wrong reading the body source (the HTTP client's upload).
pub(crate) fn body_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("body_read_failed", format!("The request body could not be read: {e}"))
}

/// Where and how the caller sends the chunks (from the open answer).
pub(crate) struct Channel<'a> {
    pub client: &'a async_nats::Client,
    pub subject: &'a str,
    pub chunk: usize,
    pub window: usize,
    pub chunk_timeout: Duration,
}

/// Caller side: sends `body` in chunks with at most `window` unanswered; returns `Ok(Ok(total))`
/// when every chunk was acknowledged and the end marker may be sent, or `Ok(Err(answer))` with the
/// service's early answer.
pub(crate) async fn send_body<S, E>(
    ch: Channel<'_>,
    opts: StreamOptions,
    mut body: S,
    decode: &(dyn Fn(async_nats::Message) -> Result<crate::RpcReply, ApiError> + Sync),
) -> Result<Result<u64, Result<crate::RpcReply, ApiError>>, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let Channel { client, subject, chunk, window, chunk_timeout } = ch;
    let mut in_flight = FuturesOrdered::new();
    let mut buf = BytesMut::with_capacity(chunk);
    let mut total = 0u64;
    let send = |payload: Bytes| {
        let req = async_nats::Request::new().payload(payload).timeout(Some(chunk_timeout));
        let client = client.clone();
        let subject = subject.to_owned();
        async move { client.send_request(subject, req).await }
    };
    // Checks one answered chunk: an ack lets the upload go on, anything else is the final answer.
    let settle = |answer: Result<async_nats::Message, async_nats::RequestError>| -> Option<
        Result<crate::RpcReply, ApiError>,
    > {
        match answer {
            Ok(m) if m.headers.as_ref().and_then(|h| h.get(HDR_BLOB_ACK)).is_some() => None,
            Ok(m) => Some(decode(m)),
            Err(e) => Some(Err(ApiError::unavailable("upload_interrupted", &e))),
        }
    };
    let mut finished = false;
    loop {
        if finished && in_flight.is_empty() {
            break;
        }
        let can_read = !finished && in_flight.len() < window;
        // Answers are checked as they come, so an early answer stops the upload even while the
        // client pauses; the body is read only while the window has room.
        tokio::select! {
            biased;
            answer = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(answer) = answer
                    && let Some(result) = settle(answer)
                {
                    return Ok(Err(result));
                }
            }
            next = tokio::time::timeout(opts.body_idle_timeout, body.next()), if can_read => {
                match next {
                    Err(_) => {
                        return Err(ApiError::new(408, "body_timeout", "The request body stopped arriving."));
                    }
                    Ok(Some(Err(e))) => return Err(body_error(e)),
                    Ok(Some(Ok(mut bytes))) => {
                        total += bytes.len() as u64;
                        while !bytes.is_empty() {
                            let take = (chunk - buf.len()).min(bytes.len());
                            buf.extend_from_slice(&bytes.split_to(take));
                            if buf.len() == chunk {
                                in_flight.push_back(send(buf.split().freeze()));
                            }
                        }
                    }
                    Ok(None) => {
                        if !buf.is_empty() {
                            in_flight.push_back(send(buf.split().freeze()));
                        }
                        finished = true;
                    }
                }
            }
        }
    }
    Ok(Ok(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_errors_map_to_problems() {
        assert_eq!(BlobError::Idle(Duration::from_secs(1)).to_api_error().status(), 408);
        assert_eq!(BlobError::Incomplete { received: 1, declared: 2 }.to_api_error().status(), 400);
        assert_eq!(BlobError::Closed.to_api_error().status(), 503);
    }
}
