//! The gateway's package-store routes against real NATS and Redis, with a stand-in package-store
//! on the bus (our own streaming bus code, registered with `Router::route_streaming`) and a small
//! HTTP server standing in for the storage a presigned URL points at. What is tested is the
//! gateway's part: uploads streamed through whatever their size, refusals before the service,
//! early problems from the service, raw YAML answers, and downloads streamed from storage with
//! `Range`, `If-None-Match` and failures mapped to problems.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sw_bus::{BlobReader, Router, RpcCall, RpcReply};
use sw_contracts::auth::{Role, RoleBinding};
use sw_contracts::packages::DownloadSourceOut;
use sw_http::ApiError;
use sw_testkit::{TestEnv, TestKeys};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;

/// Bytes that are not all alike, so a lost or reordered chunk changes the hash.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(seed) % 32) as u8).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// What the stand-in package-store saw.
#[derive(Default)]
struct Seen {
    /// Streaming calls that reached it.
    calls: AtomicUsize,
    /// Bytes it read in the last streaming call.
    received: AtomicU64,
}

/// The stand-in storage: one package with `Range`/`If-None-Match` support, plus misbehaving objects.
struct Storage {
    file: Bytes,
    /// Released by the test once it has seen the first bytes of `gated.zip`.
    gate: Notify,
}

const ETAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";
const FILENAME: &str = "health-1.0.0+20231013224500845346.zip";

struct App {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
    token: String,
    seen: Arc<Seen>,
    storage: Arc<Storage>,
    stop: CancellationToken,
}

impl App {
    async fn spawn(tweak: impl FnOnce(&mut TestEnv)) -> App {
        let mut env = TestEnv::new();
        tweak(&mut env);
        let bus = env.bus().await;
        let redis = env.redis().await;
        let keys = TestKeys::new();
        let verifier = keys.verifier(&env).await;
        let stop = CancellationToken::new();
        let seen = Arc::new(Seen::default());
        let storage = Arc::new(Storage { file: Bytes::from(pattern(3 * MIB + 123, 7)), gate: Notify::new() });
        let storage_addr = serve_storage(storage.clone(), stop.clone()).await;
        let dead_port = free_port();

        let upload = {
            let seen = seen.clone();
            move |c: RpcCall, body: BlobReader| {
                let seen = seen.clone();
                async move { hash_upload(c, body, &seen).await }
            }
        };
        let idle = Duration::from_secs(10);
        let deadline = Duration::from_secs(60);
        let file_sha = sha256_hex(&storage.file);
        let file_size = storage.file.len() as u64;
        let router = Router::new("package-store", "stand-in")
            .route_streaming("packages.import", idle, deadline, upload.clone())
            .route_streaming("package-tasks.create", idle, deadline, upload)
            .route("packages.launch-yaml", |c: RpcCall| async move {
                let id = c.envelope.params.get("appPackageId").cloned().unwrap_or_default();
                Ok(RpcReply::ok(format!(
                    "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\n# {id}\n"
                ))
                .header("content-type", "application/yaml"))
            })
            .route("packages.download", move |c: RpcCall| {
                let sha256 = file_sha.clone();
                async move {
                    let object = match c.envelope.params.get("appPackageId").map(String::as_str) {
                        Some("1") => format!("http://{storage_addr}/bucket/pkg.zip"),
                        Some("2") => format!("http://127.0.0.1:{dead_port}/bucket/pkg.zip"),
                        Some("3") => format!("http://{storage_addr}/bucket/missing.zip"),
                        Some("4") => format!("http://{storage_addr}/bucket/gated.zip"),
                        Some("5") => format!("http://{storage_addr}/bucket/stalled.zip"),
                        Some("6") => format!("http://{storage_addr}/bucket/broken.zip"),
                        _ => return Err(ApiError::new(404, "package_not_found", "No such package.")),
                    };
                    let out = DownloadSourceOut {
                        url: format!("{object}?X-Amz-Signature=abc"),
                        size: file_size,
                        sha256,
                        filename: FILENAME.into(),
                    };
                    Ok(RpcReply::ok(out))
                }
            });
        tokio::spawn(sw_bus::rpc::serve(bus.clone(), router, stop.clone(), Duration::from_secs(1)));
        let gw = sw_gateway::build(&env.cfg, bus, redis, verifier, sw_telemetry::metrics_only(), vec![])
            .await
            .unwrap();
        let base = format!("http://{}", gw.local_addr());
        tokio::spawn(gw.run_until_stopped(stop.clone()));
        let token = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        App { env, base, http, token, seen, storage, stop }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
    }

    fn download(&self, id: u32) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(&format!("/v1/apps/health/app-packages/{id}/download")))
            .bearer_auth(&self.token)
    }

    async fn stop(self) {
        self.stop.cancel();
        self.env.cleanup().await;
    }
}

/// The stand-in import: hashes what arrives. With `reject` in the query it refuses the body after
/// its first chunk, as the real service does with bytes that are not a zip.
async fn hash_upload(c: RpcCall, mut body: BlobReader, seen: &Seen) -> Result<RpcReply, ApiError> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = body.next_chunk().await.map_err(|e| e.to_api_error())? {
        h.update(&chunk);
        size += chunk.len() as u64;
        chunks += 1;
        seen.received.store(size, Ordering::SeqCst);
        if c.envelope.query.contains("reject") {
            return Err(ApiError::new(422, "zip_not_a_zip", "The body is not a zip archive."));
        }
    }
    let out = json!({
        "sha256": hex::encode(h.finalize()),
        "size": size,
        "chunks": chunks,
        "params": c.envelope.params,
        "query": c.envelope.query,
        "body": c.envelope.body,
    });
    let status = if c.op == "package-tasks.create" { 202 } else { 201 };
    Ok(RpcReply::with_status(status, out).header("Location", "/v1/apps/health/app-packages/42"))
}

async fn serve_storage(storage: Arc<Storage>, stop: CancellationToken) -> std::net::SocketAddr {
    let app = axum::Router::new().route("/bucket/{name}", axum::routing::get(object)).with_state(storage);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
    });
    addr
}

/// A small S3 stand-in: single byte ranges (`a-b`, `a-`, `-n`), `If-None-Match`, 416 and 404.
async fn object(State(s): State<Arc<Storage>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let len = s.file.len();
    let first = s.file.slice(..64 * 1024);
    let rest = s.file.slice(64 * 1024..);
    match name.as_str() {
        "pkg.zip" => {}
        "gated.zip" => {
            // The rest only comes once the client has the first part: a gateway that buffered
            // the whole object would never pass anything on.
            let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
                futures::stream::once(async move {
                    match tokio::time::timeout(Duration::from_secs(10), s.gate.notified()).await {
                        Ok(()) => Ok(rest),
                        Err(_) => Err(std::io::Error::other("the client never saw the first bytes")),
                    }
                }),
            );
            return ([(header::CONTENT_LENGTH, len.to_string())], axum::body::Body::from_stream(stream))
                .into_response();
        }
        "stalled.zip" => {
            let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
                futures::stream::once(async move {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    Ok(rest)
                }),
            );
            return ([(header::CONTENT_LENGTH, len.to_string())], axum::body::Body::from_stream(stream))
                .into_response();
        }
        "broken.zip" => return AxumStatus::FORBIDDEN.into_response(),
        _ => return AxumStatus::NOT_FOUND.into_response(),
    }
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == ETAG) {
        return (AxumStatus::NOT_MODIFIED, [(header::ETAG, ETAG)]).into_response();
    }
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return (
            [(header::ETAG, ETAG.to_owned()), (header::CONTENT_LENGTH, len.to_string())],
            s.file.clone(),
        )
            .into_response();
    };
    let spec = range.strip_prefix("bytes=").unwrap_or_default();
    let (a, b) = spec.split_once('-').unwrap_or_default();
    let (start, end) = match (a.parse::<usize>().ok(), b.parse::<usize>().ok()) {
        (Some(a), Some(b)) => (a, b.min(len - 1)),
        (Some(a), None) => (a, len - 1),
        (None, Some(n)) => (len.saturating_sub(n), len - 1),
        (None, None) => (len, 0),
    };
    if start >= len || start > end {
        return (AxumStatus::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{len}"))])
            .into_response();
    }
    (
        AxumStatus::PARTIAL_CONTENT,
        [(header::ETAG, ETAG.to_owned()), (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
        s.file.slice(start..=end),
    )
        .into_response()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn problem(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

#[tokio::test]
async fn uploads_stream_through_to_the_service_whatever_their_size() {
    // A body limit far below the upload: it applies to JSON bodies, not to streamed ones.
    let app = App::spawn(|env| env.cfg.gateway.body_limit_bytes = 2048).await;
    let zip = pattern(20 * MIB + 17, 1);
    let resp = app
        .upload("/v1/apps/health/app-packages/import?force=true", "application/zip", zip.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["location"], "/v1/apps/health/app-packages/42");
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["sha256"], sha256_hex(&zip), "the service got exactly the bytes sent");
    assert_eq!(out["size"], zip.len() as u64);
    assert!(out["chunks"].as_u64().unwrap() >= 20, "sent in flow-controlled chunks: {}", out["chunks"]);
    assert_eq!(out["params"]["appId"], "health");
    assert_eq!(out["query"], "force=true");
    assert_eq!(out["body"], json!({"contentType": "application/zip", "contentLength": zip.len() as u64}));

    // A chunked form upload (no Content-Length) to the route without an app id; the boundary
    // reaches the service, which parses the form.
    let form = pattern(5 * MIB + 3, 2);
    let parts: Vec<Result<Bytes, std::io::Error>> =
        form.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let ct = "multipart/form-data; boundary=----sw";
    let resp = app
        .upload("/v1/app-packages/import", ct, reqwest::Body::wrap_stream(futures::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["sha256"], sha256_hex(&form));
    assert_eq!(out["body"], json!({"contentType": ct, "contentLength": null}));
    assert_eq!(out["params"], json!({}));

    // A build task as YAML.
    let yaml = "componentType: K8S_MICROSERVICE\ncomponentName: web\n";
    let resp =
        app.upload("/v1/apps/health/app-package-tasks?version=1.2.3", "application/yaml", yaml).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 202);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["sha256"], sha256_hex(yaml.as_bytes()));
    assert_eq!(out["body"]["contentType"], "application/yaml");
    assert_eq!(app.seen.calls.load(Ordering::SeqCst), 3);
    app.stop().await;
}

#[tokio::test]
async fn uploads_are_refused_before_the_service_when_the_gateway_can_tell() {
    let app = App::spawn(|_| {}).await;
    let big = pattern(20 * MIB, 3);
    // A large body is refused with a readable problem, not a connection reset.
    let r =
        app.upload("/v1/apps/health/app-packages/import", "text/plain", big.clone()).send().await.unwrap();
    let p = problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    assert!(p["detail"].as_str().unwrap().contains("application/zip"), "{p}");
    let r = app
        .upload("/v1/apps/health/app-packages/import", "multipart/form-data; boundary=x", "--x--")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let r = app.upload("/v1/app-packages/import", "application/zip", "PK").send().await.unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let r = app.upload("/v1/apps/health/app-package-tasks", "application/zip", "PK").send().await.unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let r = app
        .http
        .post(app.url("/v1/apps/health/app-packages/import"))
        .bearer_auth(&app.token)
        .body("PK")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let r = app
        .upload("/v1/apps/health/app-packages/import", "application/zip", big.clone())
        .header("idempotency-key", "k1")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_not_supported").await;
    let r = app
        .http
        .post(app.url("/v1/apps/health/app-packages/import"))
        .header("content-type", "application/zip")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert_eq!(app.seen.calls.load(Ordering::SeqCst), 0, "nothing reached the service");
    app.stop().await;
}

#[tokio::test]
async fn an_early_problem_from_the_service_is_the_answer() {
    let app = App::spawn(|_| {}).await;
    let big = pattern(20 * MIB, 4);
    let started = Instant::now();
    let r = app
        .upload("/v1/apps/health/app-packages/import?reject=1", "application/octet-stream", big)
        .header("x-request-id", "early-1")
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "zip_not_a_zip").await;
    assert_eq!(p["requestId"], "early-1");
    assert!(started.elapsed() < Duration::from_secs(20), "answered without waiting for a timeout");
    let received = app.seen.received.load(Ordering::SeqCst);
    assert!(received > 0 && received <= MIB as u64, "the service stopped after its first chunk: {received}");
    assert_eq!(app.seen.calls.load(Ordering::SeqCst), 1);
    // The gateway is fine afterwards.
    let r = app.upload("/v1/apps/health/app-packages/import", "application/zip", "PK").send().await.unwrap();
    assert_eq!(r.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn launch_yaml_is_served_as_yaml() {
    let app = App::spawn(|_| {}).await;
    let r = app
        .http
        .get(app.url("/v1/apps/health/app-packages/7/launch-yaml"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/yaml");
    assert_eq!(
        r.text().await.unwrap(),
        "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\n# 7\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn downloads_come_from_storage_with_ranges_and_checksums() {
    let app = App::spawn(|_| {}).await;
    let file = app.storage.file.clone();
    let len = file.len();

    let r = app.download(1).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/zip");
    assert_eq!(h["content-length"], len.to_string().as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["etag"], ETAG);
    assert_eq!(h["content-disposition"], format!("attachment; filename=\"{FILENAME}\"").as_str());
    let hex_sha = sha256_hex(&file);
    assert_eq!(h["x-checksum-sha256"], hex_sha.as_str());
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&file));
    assert_eq!(h["digest"], format!("SHA-256={b64}").as_str());
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), hex_sha, "the whole package, intact");

    let r = app.download(1).header("range", "bytes=100-1048675").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-1048675/{len}").as_str());
    assert_eq!(r.headers()["content-length"], "1048576");
    assert_eq!(r.headers()["x-checksum-sha256"], hex_sha.as_str(), "the digest is of the whole package");
    assert_eq!(r.bytes().await.unwrap(), file.slice(100..=1_048_675));

    let r = app.download(1).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), file.slice(len - 10..));

    let r = app.download(1).header("if-none-match", ETAG).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], ETAG);
    assert!(r.bytes().await.unwrap().is_empty());

    let r = app.download(1).header("range", format!("bytes={len}-")).send().await.unwrap();
    assert_eq!(r.headers()["content-range"], format!("bytes */{len}").as_str());
    problem(r, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
    app.stop().await;
}

#[tokio::test]
async fn download_failures_are_problems() {
    let app = App::spawn(|_| {}).await;
    let r = app.download(2).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable").await;
    problem(app.download(6).send().await.unwrap(), StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
        .await;
    problem(app.download(3).send().await.unwrap(), StatusCode::NOT_FOUND, "package_not_found").await;
    // The service's own problem passes through, and storage is never asked.
    problem(app.download(99).send().await.unwrap(), StatusCode::NOT_FOUND, "package_not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn downloads_are_streamed_and_a_stalled_storage_is_cut_off() {
    let app = App::spawn(|env| env.cfg.gateway.body_idle_timeout_secs = 2).await;
    let file = app.storage.file.clone();

    // The storage sends the rest only after the client has the first bytes.
    let r = app.download(4).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = Vec::new();
    while got.len() < 64 * 1024 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the first bytes arrive before storage has sent the whole object")
            .expect("more bytes")
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    app.storage.gate.notify_one();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(sha256_hex(&got), sha256_hex(&file));

    // Storage stops sending: the transfer is cut off after the idle timeout, not held open.
    let started = Instant::now();
    let r = app.download(5).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let res = tokio::time::timeout(Duration::from_secs(20), r.bytes()).await.expect("ended, not hung");
    assert!(res.is_err(), "a short body is an error for the client, never a silently truncated file");
    assert!(started.elapsed() < Duration::from_secs(15));
    app.stop().await;
}

/// Posts like the simplest HTTP clients do (Python's `requests`, for one): the whole body first,
/// and only then the answer is read. Returns the status and the body.
async fn send_all_then_read(base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.expect("the gateway reads the whole body before it closes");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_refused_upload_is_drained_so_simple_clients_read_the_problem() {
    let app = App::spawn(|_| {}).await;
    let big = pattern(20 * MIB, 5);
    let bearer = format!("Bearer {}", app.token);
    let auth = ("Authorization", bearer.as_str());
    let run = |path: &'static str, ct: &'static str| {
        let (base, big, auth) = (app.base.clone(), big.clone(), auth);
        async move {
            let headers = [("Content-Type", ct), auth];
            // A path with `anonymous` sends no token.
            let headers = if path.contains("anonymous") { &headers[..1] } else { &headers[..] };
            tokio::time::timeout(Duration::from_secs(30), send_all_then_read(&base, path, headers, &big))
                .await
                .expect("answered in time")
        }
    };
    // Refused by the service after its first chunk.
    let (status, body) = run("/v1/apps/health/app-packages/import?reject=1", "application/zip").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("zip_not_a_zip"), "{body}");
    // Refused by the gateway before any byte went on.
    let (status, body) = run("/v1/apps/health/app-packages/import", "text/plain").await;
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("unsupported_media_type"), "{body}");
    // Refused before the media type is even looked at: no token.
    let (status, body) = run("/v1/apps/health/app-packages/import?anonymous", "application/zip").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing_token"), "{body}");
    assert_eq!(app.seen.calls.load(Ordering::SeqCst), 1, "only the first upload reached the service");
    app.stop().await;
}

#[tokio::test]
async fn a_client_waiting_for_100_continue_gets_the_refusal_instead() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = App::spawn(|_| {}).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/apps/health/app-packages/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.token,
        20 * MIB
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The body is never sent: the answer must come without it, and must not invite it.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 415 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    app.stop().await;
}
