//! Request/reply over NATS with the services API.
//!
//! A service builds a [`Router`] of operations and hands it to [`serve`], which registers
//! `{prefix}-{service}` with the NATS services API (so `nats micro ls` finds it), one endpoint per
//! operation on `{prefix}.api.{service}.{op}` in the default queue group, and runs each request
//! under the request deadline inside an `rpc.server` span that continues the caller's W3C trace
//! (the `traceparent` header); the handler sees that span's own `traceparent` in
//! [`CallMeta::traceparent`], so the events it publishes belong to the same trace. The gateway
//! (or any caller) uses [`Bus::call`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use sw_contracts::Problem;
use sw_contracts::rpc::{
    HDR_AUTHORIZATION, HDR_CLIENT_IP, HDR_REQUEST_ID, HDR_SERVICE_ERROR, HDR_SERVICE_ERROR_CODE,
    HDR_TRACEPARENT,
};
use sw_http::ApiError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::blob::BlobReader;
use crate::{Bus, BusError, RpcEnvelope, RpcReply};

/// Requests handled at once per service instance; more wait in the subscription buffer.
const MAX_IN_FLIGHT: usize = 256;

/// One incoming request.
#[derive(Debug, Clone, Default)]
pub struct RpcCall {
    /// The operation (`apps.get`).
    pub op: String,
    pub envelope: RpcEnvelope,
    pub meta: CallMeta,
}

/// What travels in headers beside the envelope.
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    /// The caller's `Authorization` header value.
    pub authorization: Option<String>,
    pub request_id: Option<String>,
    /// The W3C trace context. Inside a handler it names the service's `rpc.server` span (when
    /// tracing is installed), so copying it onto published events links them to this request.
    pub traceparent: Option<String>,
    pub client_ip: Option<String>,
}

impl CallMeta {
    /// The bearer token, if the caller sent one.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.authorization.as_deref()?;
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
    }

    fn to_headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        for (k, v) in [
            (HDR_AUTHORIZATION, &self.authorization),
            (HDR_REQUEST_ID, &self.request_id),
            (HDR_TRACEPARENT, &self.traceparent),
            (HDR_CLIENT_IP, &self.client_ip),
        ] {
            if let Some(v) = v {
                h.insert(k, v.as_str());
            }
        }
        h
    }

    fn from_headers(h: Option<&async_nats::HeaderMap>) -> Self {
        let get = |k: &str| h.and_then(|h| h.get(k)).map(|v| v.as_str().to_owned());
        Self {
            authorization: get(HDR_AUTHORIZATION),
            request_id: get(HDR_REQUEST_ID),
            traceparent: get(HDR_TRACEPARENT),
            client_ip: get(HDR_CLIENT_IP),
        }
    }
}

type PlainFn = Arc<dyn Fn(RpcCall) -> BoxFuture<'static, Result<RpcReply, ApiError>> + Send + Sync>;
type StreamFn =
    Arc<dyn Fn(RpcCall, BlobReader) -> BoxFuture<'static, Result<RpcReply, ApiError>> + Send + Sync>;

/// An operation: a plain request/reply, or one that takes a streamed body ([`crate::blob`]).
#[derive(Clone)]
enum Handler {
    Plain(PlainFn),
    Stream {
        f: StreamFn,
        /// How long the caller may pause between chunks.
        idle: Duration,
        /// Deadline of the whole call, body included.
        deadline: Duration,
    },
}

/// The operations of one service.
#[derive(Clone)]
pub struct Router {
    service: String,
    description: String,
    routes: BTreeMap<String, Handler>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("service", &self.service).field("ops", &self.ops()).finish()
    }
}

impl Router {
    pub fn new(service: &str, description: &str) -> Self {
        Self { service: service.to_owned(), description: description.to_owned(), routes: BTreeMap::new() }
    }

    /// Adds an operation. `op` is dot-separated lowercase words (`apps.get`).
    pub fn route<F, Fut>(mut self, op: &str, f: F) -> Self
    where
        F: Fn(RpcCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<RpcReply, ApiError>> + Send + 'static,
    {
        check_op(op);
        let prev = self.routes.insert(op.to_owned(), Handler::Plain(Arc::new(move |c| Box::pin(f(c)))));
        assert!(prev.is_none(), "op {op} routed twice");
        self
    }

    /// Adds an operation whose caller streams a body ([`Bus::call_streaming`]). The handler reads
    /// it with [`BlobReader::next_chunk`]; `idle` bounds the pause between two chunks and
    /// `deadline` the whole call. Called without a body (plain [`Bus::call`]), the handler sees an
    /// empty stream.
    pub fn route_streaming<F, Fut>(mut self, op: &str, idle: Duration, deadline: Duration, f: F) -> Self
    where
        F: Fn(RpcCall, BlobReader) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<RpcReply, ApiError>> + Send + 'static,
    {
        check_op(op);
        let f: StreamFn = Arc::new(move |c, b| Box::pin(f(c, b)));
        let prev = self.routes.insert(op.to_owned(), Handler::Stream { f, idle, deadline });
        assert!(prev.is_none(), "op {op} routed twice");
        self
    }

    pub fn ops(&self) -> Vec<&str> {
        self.routes.keys().map(String::as_str).collect()
    }
}

fn check_op(op: &str) {
    assert!(
        !op.is_empty()
            && op.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')),
        "bad op name {op}"
    );
}

/// Registers `router` with the NATS services API and answers requests until `shutdown` fires,
/// then stops taking requests and waits (up to `grace`) for the ones in flight.
pub async fn serve(
    bus: Bus,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), BusError> {
    let names = bus.names().clone();
    let service = bus
        .client()
        .service_builder()
        .description(router.description.clone())
        .start(names.service_name(&router.service), env!("CARGO_PKG_VERSION").to_owned())
        .await
        .map_err(|e| BusError::Service(e.to_string()))?;
    let group = service.group(names.api_group(&router.service));
    let mut streams = Vec::new();
    for op in router.routes.keys() {
        let ep = group
            .endpoint_builder()
            .name(op.replace('.', "_"))
            .add(op.clone())
            .await
            .map_err(|e| BusError::Service(e.to_string()))?;
        let op = op.clone();
        streams.push(ep.map(move |req| (op.clone(), req)).boxed());
    }
    let mut incoming = futures::stream::select_all(streams);
    let tracker = TaskTracker::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let deadline = bus.config().request_timeout();
    tracing::info!(service = %router.service, ops = router.routes.len(), "Service answering on NATS.");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = incoming.next() => n,
        };
        let Some((op, request)) = next else { break };
        let Ok(permit) = limit.clone().acquire_owned().await else { break };
        let handler = router.routes[&op].clone();
        let bus = bus.clone();
        let service_name = router.service.clone();
        let mut meta = CallMeta::from_headers(request.message.headers.as_ref());
        let span = server_span(&service_name, &op, &meta);
        // What the handler passes on (CloudEvents, further calls) names this span as the parent.
        if let Some(tp) = sw_telemetry::traceparent_of(&span) {
            meta.traceparent = Some(tp);
        }
        let task = async move {
            let _permit = permit;
            let envelope = serde_json::from_slice::<RpcEnvelope>(&request.message.payload).map_err(|e| {
                ApiError::bad_request("malformed_request", format!("Invalid request envelope: {e}"))
            });
            let wants_stream =
                request.message.headers.as_ref().and_then(|h| h.get(crate::blob::HDR_BLOB)).is_some();
            // Where the result goes when it is not the answer to the request itself (streamed calls).
            let mut conversation = None;
            let result = match (envelope, handler) {
                (Err(e), _) => Err(e),
                (Ok(envelope), Handler::Plain(f)) => {
                    let call = RpcCall { op: op.clone(), envelope, meta: meta.clone() };
                    match tokio::time::timeout(deadline, f(call)).await {
                        Ok(r) => r,
                        Err(_) => Err(timed_out(&service_name, &op)),
                    }
                }
                (Ok(envelope), Handler::Stream { f, idle, deadline }) => {
                    let call = RpcCall { op: op.clone(), envelope, meta: meta.clone() };
                    let opened = match (wants_stream, request.message.reply.clone()) {
                        (true, Some(reply)) => {
                            crate::blob::open(bus.client(), reply, idle).await.map(|(r, c)| (r, Some(c)))
                        }
                        _ => Ok((crate::blob::BlobReader::empty(bus.client()), None)),
                    };
                    match opened {
                        Err(e) => Err(ApiError::unavailable("bus_unavailable", &e)),
                        Ok((reader, conv)) => {
                            let r = match tokio::time::timeout(deadline, f(call, reader)).await {
                                Ok(r) => r,
                                Err(_) => Err(timed_out(&service_name, &op)),
                            };
                            conversation = conv.map(|c| (c, idle));
                            r
                        }
                    }
                }
            };
            let status = match &result {
                Ok(r) => r.status,
                Err(e) => e.status(),
            };
            let span = tracing::Span::current();
            span.record("status", status);
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
            metrics::counter!("sw_rpc_requests_total", "service" => service_name.clone(), "op" => op.clone(), "status" => status.to_string()).increment(1);
            let sent = match conversation {
                None => reply(&bus, &request, result, meta.request_id).await,
                Some((conv, idle)) => match crate::blob::result_subject(&conv, idle).await {
                    Some(to) => reply_to(&bus, to, result, meta.request_id).await,
                    None => Err("the caller left before the answer".to_owned()),
                },
            };
            if let Err(e) = sent {
                tracing::warn!(service = %service_name, op = %op, error = %e, "Could not send reply.");
            }
        };
        tracker.spawn(task.instrument(span));
    }
    // Unsubscribe first so queued requests go to other replicas, then drain. `stop` signals the
    // endpoints, so it must run while they still exist.
    if let Err(e) = service.stop().await {
        tracing::warn!(service = %router.service, error = %e, "Service did not stop cleanly.");
    }
    drop(incoming);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(service = %router.service, "In-flight requests still running at the end of the grace period.");
    }
    tracing::info!(service = %router.service, "Service stopped.");
    Ok(())
}

/// The span of one request: a root of its own (the serve loop's context is not the caller's),
/// continuing the caller's trace from the `traceparent` header.
fn server_span(service: &str, op: &str, meta: &CallMeta) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "rpc.server",
        otel.kind = "server",
        service = %service,
        op = %op,
        request_id = meta.request_id.as_deref(),
        status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    sw_telemetry::set_parent(&span, meta.traceparent.as_deref());
    span
}

fn timed_out(service: &str, op: &str) -> ApiError {
    ApiError::unavailable("timeout", &format!("{service}.{op} exceeded its deadline"))
}

/// Sends a result to an explicit subject (the answer of a streamed call).
async fn reply_to(
    bus: &Bus,
    to: async_nats::Subject,
    result: Result<RpcReply, ApiError>,
    request_id: Option<String>,
) -> Result<(), String> {
    match result {
        Ok(r) => {
            let body = serde_json::to_vec(&r).map_err(|e| e.to_string())?;
            bus.client().publish(to, body.into()).await.map_err(|e| e.to_string())
        }
        Err(e) => publish_problem(bus, to, e, request_id).await,
    }
}

async fn publish_problem(
    bus: &Bus,
    to: async_nats::Subject,
    e: ApiError,
    request_id: Option<String>,
) -> Result<(), String> {
    if e.status() >= 500 {
        tracing::debug!(code = e.code(), "Answering with a server error.");
    }
    let problem = e.with_request_id(request_id).into_problem();
    let mut h = async_nats::HeaderMap::new();
    h.insert(HDR_SERVICE_ERROR, problem.title.as_str());
    h.insert(HDR_SERVICE_ERROR_CODE, problem.status.to_string().as_str());
    let body = serde_json::to_vec(&problem).map_err(|e| e.to_string())?;
    bus.client().publish_with_headers(to, h, body.into()).await.map_err(|e| e.to_string())
}

async fn reply(
    bus: &Bus,
    request: &async_nats::service::Request,
    result: Result<RpcReply, ApiError>,
    request_id: Option<String>,
) -> Result<(), String> {
    match result {
        Ok(r) => {
            let body = serde_json::to_vec(&r).map_err(|e| e.to_string())?;
            request.respond(Ok(Bytes::from(body))).await.map_err(|e| e.to_string())
        }
        Err(e) => {
            let Some(reply) = request.message.reply.clone() else { return Ok(()) };
            publish_problem(bus, reply, e, request_id).await
        }
    }
}

impl Bus {
    /// Calls `service`'s `op` and waits at most `timeout` (default: the configured request timeout).
    /// A problem answered by the service comes back as that `ApiError`; no responder or no answer in
    /// time is a 503.
    pub async fn call(
        &self,
        service: &str,
        op: &str,
        meta: &CallMeta,
        envelope: &RpcEnvelope,
        timeout: Option<Duration>,
    ) -> Result<RpcReply, ApiError> {
        let subject = self.names().api_subject(service, op);
        let payload = serde_json::to_vec(envelope).map_err(|e| ApiError::internal(&e))?;
        let timeout = timeout.unwrap_or_else(|| self.config().request_timeout());
        let req = async_nats::Request::new()
            .headers(meta.to_headers())
            .payload(payload.into())
            .timeout(Some(timeout));
        let msg = self.send(service, subject, req, timeout).await?;
        decode_reply(service, msg)
    }

    /// Calls a streaming operation ([`Router::route_streaming`]) with `body` as the streamed body
    /// (see [`crate::blob`]). The open request and every chunk wait at most the configured request
    /// timeout; the final answer waits `opts.final_timeout`.
    pub async fn call_streaming<S, E>(
        &self,
        service: &str,
        op: &str,
        meta: &CallMeta,
        envelope: &RpcEnvelope,
        body: S,
        opts: crate::blob::StreamOptions,
    ) -> Result<RpcReply, ApiError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use crate::blob::{
            DEFAULT_CHUNK, DEFAULT_WINDOW, HDR_BLOB, HDR_BLOB_CHUNK, HDR_BLOB_END, HDR_BLOB_SUBJECT,
            HDR_BLOB_WINDOW,
        };
        let subject = self.names().api_subject(service, op);
        let payload = serde_json::to_vec(envelope).map_err(|e| ApiError::internal(&e))?;
        let timeout = self.config().request_timeout();
        let mut headers = meta.to_headers();
        headers.insert(HDR_BLOB, "1");
        let req = async_nats::Request::new().headers(headers).payload(payload.into()).timeout(Some(timeout));
        let opened = self.send(service, subject, req, timeout).await?;
        let header =
            |name: &str| opened.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let Some(blob_subject) = header(HDR_BLOB_SUBJECT) else {
            // Not a streaming operation (or it failed before opening): its answer is final.
            return decode_reply(service, opened);
        };
        let max_payload = self.client().server_info().max_payload.max(64 * 1024);
        let chunk = header(HDR_BLOB_CHUNK)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_CHUNK)
            .clamp(16 * 1024, max_payload.saturating_sub(4 * 1024).max(16 * 1024));
        let window = header(HDR_BLOB_WINDOW)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_WINDOW)
            .clamp(1, 64);
        let decode = |m: async_nats::Message| decode_reply(service, m);
        let channel = crate::blob::Channel {
            client: self.client(),
            subject: &blob_subject,
            chunk,
            window,
            chunk_timeout: timeout,
        };
        let sent = crate::blob::send_body(channel, opts, body, &decode).await?;
        let total = match sent {
            Ok(total) => total,
            Err(early) => return early,
        };
        let mut h = async_nats::HeaderMap::new();
        h.insert(HDR_BLOB_END, total.to_string().as_str());
        let req =
            async_nats::Request::new().headers(h).payload(Bytes::new()).timeout(Some(opts.final_timeout));
        let answer = self.send(service, blob_subject, req, opts.final_timeout).await?;
        decode_reply(service, answer)
    }

    /// Sends one request and maps transport failures to problems.
    async fn send(
        &self,
        service: &str,
        subject: String,
        req: async_nats::Request,
        timeout: Duration,
    ) -> Result<async_nats::Message, ApiError> {
        match tokio::time::timeout(
            timeout + Duration::from_millis(250),
            self.client().send_request(subject, req),
        )
        .await
        {
            Err(_) => Err(upstream_timeout(service)),
            Ok(Err(e)) => Err(match e.kind() {
                async_nats::RequestErrorKind::TimedOut => upstream_timeout(service),
                async_nats::RequestErrorKind::NoResponders => {
                    let mut p = Problem::new(
                        503,
                        "service_unavailable",
                        Some(format!("The {service} service is not running.")),
                    );
                    p.retry_after = Some(1);
                    ApiError::from(p)
                }
                _ => ApiError::unavailable("bus_unavailable", &e),
            }),
            Ok(Ok(m)) => Ok(m),
        }
    }
}

/// An answer as the handler meant it: a problem (service error headers) or an [`RpcReply`].
fn decode_reply(service: &str, msg: async_nats::Message) -> Result<RpcReply, ApiError> {
    let is_error = msg.headers.as_ref().and_then(|h| h.get(HDR_SERVICE_ERROR_CODE)).is_some();
    if is_error {
        let problem: Problem = serde_json::from_slice(&msg.payload).unwrap_or_else(|_| {
            let code = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(HDR_SERVICE_ERROR_CODE))
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or(502);
            Problem::new(code, "upstream_error", Some(format!("The {service} service failed.")))
        });
        return Err(ApiError::from(problem));
    }
    serde_json::from_slice::<RpcReply>(&msg.payload).map_err(|e| {
        ApiError::new(502, "bad_upstream_reply", format!("The {service} service sent an invalid reply: {e}"))
    })
}

fn upstream_timeout(service: &str) -> ApiError {
    let mut p =
        Problem::new(503, "upstream_timeout", Some(format!("The {service} service did not answer in time.")));
    p.retry_after = Some(1);
    ApiError::from(p)
}
