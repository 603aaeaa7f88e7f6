//! The gateway: the platform's only HTTP server.
//!
//! A request enters [`forward::forward`] through the route of [`routes::table`] it matches; the
//! gateway authenticates it, rate-limits it per principal, reads and checks the body, honours
//! `Idempotency-Key`, and forwards it over NATS to the owning service's operation. The service
//! verifies the token again and answers with a reply or a problem, which goes back to the client
//! unchanged. Uploads of any size ([`streaming`]) are streamed to the service instead of read
//! whole, and package downloads ([`download`]) are streamed from storage. The gateway also serves
//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and the Swagger UI at `/docs` (bundled in the
//! binary, so it works offline).

pub mod download;
pub mod forward;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod streaming;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use sw_authz::Verifier;
use sw_bus::Bus;
use sw_config::Config;
use sw_http::{ApiError, problem_response};
use sw_redis::Redis;
use sw_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use crate::forward::RequestId;
pub use crate::state::{AppState, ReadinessCheck};

/// A bound, ready-to-run gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
}

impl Gateway {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown`, then stops accepting and lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "Gateway listening.");
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

/// Binds the listener and builds the router.
pub async fn build(
    cfg: &Config,
    bus: Bus,
    redis: Redis,
    verifier: Verifier,
    telemetry: Telemetry,
    readiness: Vec<ReadinessCheck>,
) -> std::io::Result<Gateway> {
    let listener = TcpListener::bind(cfg.gateway.listen).await?;
    let addr = listener.local_addr()?;
    let ops = Arc::new(ops::Ops { bus: bus.clone(), redis: redis.clone(), telemetry, readiness });
    let storage = download::storage_client(
        std::time::Duration::from_millis(cfg.s3.timeout_ms),
        std::time::Duration::from_secs(cfg.gateway.body_idle_timeout_secs),
    )
    .map_err(std::io::Error::other)?;
    let state = AppState(Arc::new(state::Inner {
        cfg: cfg.clone(),
        bus,
        redis,
        verifier,
        openapi_json: openapi::json().into(),
        storage,
    }));
    Ok(Gateway { listener, router: router(state, ops), addr })
}

/// The whole HTTP surface.
pub fn router(state: AppState, ops: Arc<ops::Ops>) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes::table() {
        let route = Arc::new(route);
        let filter = MethodFilter::try_from(route.method.clone()).expect("standard method");
        let path = route.path;
        let handler =
            move |State(st): State<AppState>, req: Request| forward::forward(st, route.clone(), req);
        let entry = by_path.remove(path).unwrap_or_default();
        by_path.insert(path, entry.on(filter, handler));
    }
    let mut app: Router<AppState> = Router::new();
    for (path, mr) in by_path {
        app = app.route(path, mr);
    }
    let docs: Router<AppState> =
        SwaggerUi::new("/docs").url("/openapi-ui.json", openapi::ApiDoc::openapi()).into();
    app.route("/openapi.json", get(openapi_json))
        .merge(docs)
        .with_state(state)
        .merge(ops::router(ops))
        .fallback(not_found)
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            problem_response(&ApiError::new(500, "internal", "An unexpected error occurred.").into_problem())
        }))
}

/// Takes `x-request-id` from the client when it is sane, or makes one; echoes it on the answer.
/// Runs the request inside an `http.request` span that continues the caller's W3C trace.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The route template, not the raw path, so span names and attributes stay low-cardinality.
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        otel.name = %format!("{} {route}", req.method()),
        method = %req.method(),
        route = %route,
        request_id = %id,
        status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    sw_telemetry::set_parent(&span, req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// axum answers some errors itself (405, and extractor rejections) with plain text; turn them into problems.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let resp = next.run(req).await;
    let status = resp.status();
    // Only bodies axum wrote itself (plain text or none); our own JSON answers stay as they are.
    let bare =
        resp.headers().get(header::CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if (status.is_client_error() || status.is_server_error()) && bare {
        let code = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::NOT_FOUND => "not_found",
            _ => "request_rejected",
        };
        let allow = resp.headers().get(header::ALLOW).cloned();
        let mut out = problem_response(
            &ApiError::new(status.as_u16(), code, status.canonical_reason().unwrap_or("Error"))
                .with_request_id(id)
                .into_problem(),
        );
        if let Some(a) = allow {
            out.headers_mut().insert(header::ALLOW, a);
        }
        return out;
    }
    resp
}

async fn not_found(req: Request) -> Response {
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    ApiError::not_found(format!("No endpoint at {} {}.", req.method(), req.uri().path()))
        .with_request_id(id)
        .into_response()
}

async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut resp = st.0.openapi_json.clone().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::Method;

    use super::*;

    /// Every routed endpoint is documented, and nothing is documented that is not routed.
    #[test]
    fn openapi_matches_the_route_table() {
        let doc = openapi::ApiDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (m, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if op.is_some() {
                    documented.insert((m.to_string(), path.clone()));
                }
            }
        }
        let mut routed: BTreeSet<(String, String)> =
            routes::table().iter().map(|r| (r.method.to_string(), r.path.to_owned())).collect();
        routed.insert(("GET".into(), "/healthz".into()));
        routed.insert(("GET".into(), "/readyz".into()));
        assert_eq!(documented, routed);
    }

    /// Every `$ref` in the document points at a schema the document defines.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        if k == "$ref" {
                            out.push(v.as_str().unwrap_or_default().to_owned());
                        }
                        walk(v, out);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let doc = serde_json::to_value(openapi::ApiDoc::openapi()).unwrap();
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name =
                r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "unresolvable reference {r}");
        }
    }

    /// Anonymous routes are exactly the anonymous operations of the document.
    #[test]
    fn anonymous_routes_are_documented_as_such() {
        let doc = serde_json::to_value(openapi::ApiDoc::openapi()).unwrap();
        for r in routes::table() {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            let anon = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x.as_object().is_some_and(|o| o.is_empty())));
            assert_eq!(anon, !r.authenticated, "{} {}", r.method, r.path);
        }
    }

    /// The committed copy of the document is what the code generates (`sreworks generate-openapi`).
    #[test]
    fn committed_openapi_has_not_drifted() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if std::env::var_os("SREWORKS_BLESS").is_some() {
            std::fs::write(&path, openapi::json() + "\n").unwrap();
            return;
        }
        assert!(
            committed.trim_end() == openapi::json().trim_end(),
            "docs/openapi.json is stale: run `make schemas` (sreworks generate-openapi) and commit the result"
        );
    }
}
