//! The operational endpoints every sreworks process serves: `/healthz` (the process is alive),
//! `/readyz` (NATS connected, Redis answering, each local service's database answering) and
//! `/metrics` (Prometheus text). The gateway serves them beside the API; a process running only
//! other services serves them on `telemetry.ops_listen` with [`serve`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sw_bus::Bus;
use sw_redis::Redis;
use sw_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::ReadinessCheck;

/// What the operational endpoints look at.
#[derive(Debug)]
pub struct Ops {
    pub bus: Bus,
    pub redis: Redis,
    pub telemetry: Telemetry,
    pub readiness: Vec<ReadinessCheck>,
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ops)
}

/// Serves only the operational endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, shutdown: CancellationToken) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "Operational endpoints listening.");
    axum::serve(listener, router(ops)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Ready when NATS is connected, Redis answers and every local service's database answers.
async fn readyz(State(st): State<Arc<Ops>>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let nats = st.bus.is_connected();
    ok &= nats;
    checks.insert("nats".into(), status_value(nats, None));
    let redis = tokio::time::timeout(Duration::from_secs(2), st.redis.ping()).await.unwrap_or(false);
    ok &= redis;
    checks.insert("redis".into(), status_value(redis, None));
    for c in &st.readiness {
        let r = tokio::time::timeout(Duration::from_secs(2), (c.check)())
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        ok &= r.is_ok();
        checks.insert(c.name.clone(), status_value(r.is_ok(), r.err()));
    }
    let body = serde_json::json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks});
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut resp = (code, axum::Json(body)).into_response();
    if !ok {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn status_value(ok: bool, err: Option<String>) -> serde_json::Value {
    match (ok, err) {
        (true, _) => serde_json::json!({"status": "up"}),
        (false, Some(e)) => serde_json::json!({"status": "down", "error": e}),
        (false, None) => serde_json::json!({"status": "down"}),
    }
}

async fn metrics_text(State(st): State<Arc<Ops>>) -> Response {
    let mut resp = st.telemetry.render_metrics().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}
