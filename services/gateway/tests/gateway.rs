//! The gateway against real NATS and Redis, with stand-in services on the bus, so that what is
//! tested here is the gateway's own behaviour: authentication, problems, limits, idempotency,
//! request ids, readiness, and recovery when Redis comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sw_bus::{Router, RpcCall, RpcReply};
use sw_contracts::auth::{Role, RoleBinding};
use sw_gateway::ReadinessCheck;
use sw_http::ApiError;
use sw_testkit::{TestEnv, TestKeys};
use tokio_util::sync::CancellationToken;

struct App {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
    token: String,
    creates: Arc<AtomicUsize>,
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
        let creates = Arc::new(AtomicUsize::new(0));
        let counter = creates.clone();
        let router = Router::new("appmeta", "stand-in")
            .route("apps.get", |c: RpcCall| async move {
                Ok(RpcReply::ok(json!({"params": c.envelope.params, "query": c.envelope.query, "traceparent": c.meta.traceparent})))
            })
            .route("apps.list", |c: RpcCall| async move { Ok(RpcReply::ok(json!({"query": c.envelope.query}))) })
            .route("apps.create", move |c: RpcCall| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = c.envelope.body.unwrap_or_default();
                    if body.get("fail").is_some() {
                        return Err(ApiError::invalid_field("fail", "asked to fail"));
                    }
                    Ok(RpcReply::created(json!({"n": n, "body": body})).header("Location", "/v1/apps/x"))
                }
            });
        tokio::spawn(sw_bus::rpc::serve(bus.clone(), router, stop.clone(), Duration::from_secs(1)));
        let gw = sw_gateway::build(
            &env.cfg,
            bus,
            redis,
            verifier,
            sw_telemetry::metrics_only(),
            vec![ReadinessCheck::new("stand-in", || async { Ok(()) })],
        )
        .await
        .unwrap();
        let base = format!("http://{}", gw.local_addr());
        tokio::spawn(gw.run_until_stopped(stop.clone()));
        let token = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        App { env, base, http: reqwest::Client::new(), token, creates, stop }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    async fn stop(self) {
        self.stop.cancel();
        self.env.cleanup().await;
    }
}

async fn problem(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    body
}

#[tokio::test]
async fn forwards_authenticated_requests_and_echoes_request_ids() {
    let app = App::spawn(|_| {}).await;
    let resp = app
        .http
        .get(app.url("/v1/apps/my%2Dapp?page=2&team=a%20b"))
        .bearer_auth(&app.token)
        .header("x-request-id", "req-123")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["params"]["appId"], "my-app");
    assert_eq!(body["query"], "page=2&team=a%20b");
    assert_eq!(body["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

    // A request id is made up when the client sends none.
    let resp = app.http.get(app.url("/v1/apps")).bearer_auth(&app.token).send().await.unwrap();
    assert!(!resp.headers()["x-request-id"].is_empty());
    app.stop().await;
}

#[tokio::test]
async fn rejects_missing_bad_and_wrong_tokens() {
    let app = App::spawn(|_| {}).await;
    let resp = app.http.get(app.url("/v1/apps/x")).header("x-request-id", "r1").send().await.unwrap();
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let body = problem(resp, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert_eq!(body["requestId"], "r1");
    let resp = app.http.get(app.url("/v1/apps/x")).bearer_auth("not.a.jwt").send().await.unwrap();
    problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Signed by a key the platform does not know.
    let stranger = TestKeys::new().token(&app.env.cfg, vec![RoleBinding::global(Role::Admin)]);
    let resp = app.http.get(app.url("/v1/apps/x")).bearer_auth(stranger).send().await.unwrap();
    problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn bodies_are_checked_before_forwarding() {
    let app = App::spawn(|env| env.cfg.gateway.body_limit_bytes = 2048).await;
    let post = |body: Vec<u8>, ct: &str| {
        app.http
            .post(app.url("/v1/apps"))
            .bearer_auth(&app.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(
        post(b"{\"appId\":".to_vec(), "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    problem(
        post(b"appId=x".to_vec(), "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(4096)).into_bytes();
    problem(post(big, "application/json").await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        .await;
    assert_eq!(app.creates.load(Ordering::SeqCst), 0, "nothing reached the service");
    let ok = post(b"{\"appId\":\"x\"}".to_vec(), "application/json").await.unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(ok.headers()["location"], "/v1/apps/x");
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = App::spawn(|_| {}).await;
    let send = |key: &str, body: Value| {
        app.http
            .post(app.url("/v1/apps"))
            .bearer_auth(&app.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("k1", json!({"appId": "a"})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first_body: Value = first.json().await.unwrap();
    let again = send("k1", json!({"appId": "a"})).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], "/v1/apps/x");
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.creates.load(Ordering::SeqCst), 1, "the service ran once");

    problem(
        send("k1", json!({"appId": "b"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    // A 4xx answer is replayed too.
    let e1 = send("k2", json!({"fail": true})).await.unwrap();
    problem(e1, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let e2 = send("k2", json!({"fail": true})).await.unwrap();
    assert_eq!(e2.headers()["idempotent-replayed"], "true");
    problem(e2, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(app.creates.load(Ordering::SeqCst), 2);

    // Without a key every POST runs.
    let _ = app
        .http
        .post(app.url("/v1/apps"))
        .bearer_auth(&app.token)
        .json(&json!({"appId": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.creates.load(Ordering::SeqCst), 3);
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = App::spawn(|env| env.cfg.gateway.rate_limit_per_minute = 3).await;
    // The window is a fixed minute: the first 3 always pass; within 7 requests one window must
    // see a 4th, even if the requests straddle a minute boundary.
    let mut limited = None;
    for i in 0..7 {
        let r = app.http.get(app.url("/v1/apps")).bearer_auth(&app.token).send().await.unwrap();
        if i < 3 {
            assert_eq!(r.status(), 200, "request {i}");
        } else if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a 429 within 7 requests at 3 per minute");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_absent_services_are_problems() {
    let app = App::spawn(|_| {}).await;
    problem(app.http.get(app.url("/nope")).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    let r = app.http.put(app.url("/v1/apps")).bearer_auth(&app.token).send().await.unwrap();
    assert!(r.headers().contains_key("allow"));
    problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // No auth service runs in this test: its routes answer 503 quickly, not a hang or a 500.
    let r = app.http.get(app.url("/v1/users")).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    app.stop().await;
}

#[tokio::test]
async fn health_docs_and_metrics_are_open() {
    let app = App::spawn(|_| {}).await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let ready: Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["stand-in"]["status"], "up");
    let doc: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let ui = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "Swagger UI is served from the binary");
    // Its scripts and styles come from the binary too: the UI works with no internet.
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/swagger-initializer.js"] {
        let r = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 100, "{asset}");
    }
    let _ = app.http.get(app.url("/v1/apps")).bearer_auth(&app.token).send().await.unwrap();
    let m = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("sw_http_requests_total"), "{m}");
    app.stop().await;
}

/// A private Redis the test can stop and start again.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start(port: u16, dir: std::path::PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        let me = Self { port, dir, child: Some(child) };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        *self = Self::start(self.port, self.dir.clone());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn redis_outage_gives_503_and_recovers_without_restart() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port, std::env::temp_dir().join(format!("sw-redis-{port}")));
    let app =
        App::spawn(|env| env.cfg.redis.url = sw_config::Secret::new(format!("redis://127.0.0.1:{port}")))
            .await;
    let get =
        || app.http.get(app.url("/v1/apps")).bearer_auth(&app.token).timeout(Duration::from_secs(10)).send();
    assert_eq!(get().await.unwrap().status(), 200);

    redis.kill();
    let started = std::time::Instant::now();
    let r = get().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "answered, not hung");
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable").await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    redis.restart();
    let mut recovered = false;
    for _ in 0..40 {
        if get().await.unwrap().status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "the gateway works again once Redis is back");
    app.stop().await;
}
