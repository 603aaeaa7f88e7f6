//! Turning one HTTP request into one service call and the answer back into HTTP.
//!
//! Order of checks: request id and trace context → token (for authenticated routes) → rate limit
//! → body (size, media type, syntax) → idempotency → NATS call → answer. Every failure along the
//! way is a problem+json with the request id. Streamed uploads ([`crate::streaming`]) and package
//! downloads ([`crate::download`]) branch off once the caller is admitted and the path is parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use sw_bus::{CallMeta, RpcEnvelope, RpcReply};
use sw_http::{ApiError, problem_response};

use crate::idempotency::{self, Begin, Stored};
use crate::routes::{BodyKind, Route};
use crate::state::{AppState, Inner};

/// The request id of the current request, set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// How long a client may take to send its body.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// Handles one forwarded route.
pub async fn forward(state: AppState, route: std::sync::Arc<Route>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let resp = match handle(&state, &route, req, request_id.clone()).await {
        Ok(r) => r,
        Err(e) => problem_response(&e.with_request_id(request_id).into_problem()),
    };
    let status = resp.status().as_u16().to_string();
    metrics::counter!("sw_http_requests_total", "route" => route.path, "method" => route.method.to_string(), "status" => status)
        .increment(1);
    metrics::histogram!("sw_http_request_duration_seconds", "route" => route.path, "method" => route.method.to_string())
        .record(started.elapsed().as_secs_f64());
    resp
}

async fn handle(
    state: &AppState,
    route: &Route,
    req: Request,
    request_id: Option<String>,
) -> Result<Response, ApiError> {
    let st = &state.0;
    let (mut parts, body) = req.into_parts();
    let client_ip = client_ip(
        &parts.headers,
        parts.extensions.get::<ConnectInfo<SocketAddr>>(),
        st.cfg.gateway.trust_forwarded_for,
    );
    let authorization =
        parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let meta = CallMeta {
        authorization,
        request_id: request_id.clone(),
        // The request span's context, so the service span becomes its child; without an
        // OpenTelemetry layer (tests, tools) the caller's trace is still passed along as is.
        traceparent: sw_telemetry::traceparent_of(&tracing::Span::current())
            .or_else(|| Some(traceparent(&parts.headers))),
        client_ip: Some(client_ip.clone()),
    };

    // Authenticate early so bad tokens cost no body read and no service call; the service checks again.
    let admitted = async {
        let subject = authenticate(st, route, &meta, &client_ip).await?;
        let params: BTreeMap<String, String> = RawPathParams::from_request_parts(&mut parts, &())
            .await
            .map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
            .map_err(|_| {
                ApiError::bad_request("malformed_path", "The path contains invalid percent-encoding.")
            })?;
        Ok::<_, ApiError>((subject, params))
    }
    .await;
    let (subject, params) = match admitted {
        Ok(a) => a,
        Err(e) => {
            if matches!(route.body, BodyKind::Stream { .. }) {
                crate::streaming::linger(&parts.headers, body);
            }
            return Err(e);
        }
    };
    let query = parts.uri.query().unwrap_or("").to_owned();

    let limit = st.cfg.gateway.body_limit_bytes;
    let (raw, body) = match route.body {
        BodyKind::Stream { accepts } => {
            let envelope = RpcEnvelope { params, query, body: None };
            return crate::streaming::forward(st, route, accepts, &parts.headers, body, &meta, envelope)
                .await;
        }
        BodyKind::Download => {
            let envelope = RpcEnvelope { params, query, body: None };
            return crate::download::serve(st, route, &parts.headers, &meta, &envelope).await;
        }
        BodyKind::None => (Bytes::new(), None),
        BodyKind::Json => {
            let raw = read_body(&parts.headers, body, limit).await?;
            let parsed = parse_json(&parts.headers, &raw)?;
            (raw, parsed)
        }
        BodyKind::Form => {
            let raw = read_body(&parts.headers, body, limit).await?;
            let parsed = parse_form(&parts.headers, &raw)?;
            (raw, Some(parsed))
        }
        BodyKind::Document => {
            let raw = read_body(&parts.headers, body, limit).await?;
            let parsed = parse_document(&parts.headers, &raw)?;
            (raw, parsed)
        }
    };
    let envelope = RpcEnvelope { params, query: query.clone(), body };

    let idem_key = parts.headers.get("idempotency-key").map(|v| v.to_str().map(str::to_owned));
    let idem = match (route.method == axum::http::Method::POST, idem_key) {
        (true, Some(Err(_))) => {
            return Err(ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"));
        }
        (true, Some(Ok(key))) => {
            let fp = idempotency::fingerprint(route.method.as_str(), parts.uri.path(), &query, &raw);
            let pending_ttl = st.cfg.nats.request_timeout_ms / 1000 + 30;
            match idempotency::begin(&st.redis, &subject, &key, &fp, pending_ttl).await? {
                Begin::Replay(stored) => return Ok(replayed(stored)),
                Begin::Fresh { redis_key } => Some((redis_key, fp)),
            }
        }
        _ => None,
    };

    let result = st.bus.call(route.service, route.op, &meta, &envelope, None).await;
    if let Some((redis_key, fp)) = idem {
        let stored = match &result {
            Ok(r) => Some(Stored {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.clone(),
                problem: false,
            }),
            Err(e) => Some(Stored {
                status: e.status(),
                headers: BTreeMap::new(),
                body: serde_json::to_value(e.problem()).ok(),
                problem: true,
            }),
        };
        idempotency::finish(&st.redis, &redis_key, &fp, stored, st.cfg.gateway.idempotency_ttl_secs).await;
    }
    let reply = result?;
    Ok(reply_response(reply))
}

/// Checks the token (or, on anonymous routes, the client IP) against the rate limit; the subject
/// idempotency keys are scoped to.
async fn authenticate(
    st: &Inner,
    route: &Route,
    meta: &CallMeta,
    client_ip: &str,
) -> Result<String, ApiError> {
    let limit = st.cfg.gateway.rate_limit_per_minute;
    if route.authenticated {
        let token = meta.bearer().ok_or_else(sw_authz::missing_token)?;
        let key_of = |subject: &str| crate::ratelimit::window_key(&st.redis, subject);
        let (principal, count) =
            st.verifier.verify_counting(token, Some((&key_of, crate::ratelimit::WINDOW_TTL_SECS))).await?;
        crate::ratelimit::enforce(count.unwrap_or(0), limit)?;
        Ok(principal.subject)
    } else {
        let subject = format!("ip:{client_ip}");
        crate::ratelimit::check(&st.redis, &subject, limit).await?;
        Ok(subject)
    }
}

/// A service's answer as HTTP: its status, its headers, and its body as JSON — or, when the
/// service names a non-JSON `content-type` and the body is a JSON string (launch YAML), that string
/// as it is.
pub(crate) fn reply_response(reply: RpcReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let raw_type = reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .filter(|v| !is_json_media_type(v))
        .and_then(|v| HeaderValue::from_str(v).ok());
    let mut resp = match reply.body {
        Some(serde_json::Value::String(text)) if status != StatusCode::NO_CONTENT && raw_type.is_some() => {
            let mut r = (status, text).into_response();
            if let Some(ct) = raw_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        Some(body) if status != StatusCode::NO_CONTENT => {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        _ => status.into_response(),
    };
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            // The body's type was settled above; a service's `content-type` cannot relabel JSON.
            if k != header::CONTENT_TYPE {
                resp.headers_mut().insert(k, v);
            }
        }
    }
    resp
}

fn replayed(stored: Stored) -> Response {
    let mut resp = if stored.problem {
        let problem = stored
            .body
            .and_then(|b| serde_json::from_value(b).ok())
            .unwrap_or_else(|| sw_contracts::Problem::new(stored.status, "replayed", None));
        problem_response(&problem)
    } else {
        reply_response(RpcReply { status: stored.status, headers: stored.headers, body: stored.body })
    };
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("The request body is larger than {limit} bytes."));
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(BODY_DEADLINE, limited.collect()).await {
        Err(_) => Err(ApiError::new(408, "body_timeout", "The request body did not arrive in time.")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request("body_read_failed", "The request body could not be read.")),
    }
}

/// The media type of the request body (lowercase, without parameters).
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(essence)
}

/// `Text/YAML; charset=utf-8` → `text/yaml`.
fn essence(v: &str) -> String {
    v.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn is_json_media_type(v: &str) -> bool {
    let m = essence(v);
    m == "application/json" || m.ends_with("+json")
}

fn parse_json(headers: &HeaderMap, raw: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match media_type(headers) {
        Some(m) if m == "application/json" || m.ends_with("+json") => {}
        _ => {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                "Send the body as 'Content-Type: application/json'.",
            ));
        }
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| ApiError::malformed_json(format!("The body is not valid JSON: {e}")))
}

/// A [`BodyKind::Document`]: JSON as [`parse_json`] reads it, or one YAML document turned into the
/// same JSON (unquoted `{{ x }}` read back as text, keys made strings: [`sw_appconf::model::normalize`]).
fn parse_document(headers: &HeaderMap, raw: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match media_type(headers) {
        Some(m) if is_json_media_type(&m) => parse_json(headers, raw),
        Some(m) if is_yaml_media_type(&m) => parse_yaml(raw).map(Some),
        _ => Err(ApiError::new(
            415,
            "unsupported_media_type",
            "Send the body as 'Content-Type: application/yaml' or 'Content-Type: application/json'.",
        )),
    }
}

fn is_yaml_media_type(m: &str) -> bool {
    crate::routes::DOCUMENT_BODY.contains(&m) || m.ends_with("+yaml")
}

fn malformed_yaml(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("malformed_yaml", format!("The body is not valid YAML: {detail}"))
}

fn parse_yaml(raw: &[u8]) -> Result<serde_json::Value, ApiError> {
    use serde::de::DeserializeSeed;
    // serde_yaml refuses a stream of several documents itself ("more than one document").
    let de = serde_yaml::Deserializer::from_slice(raw);
    let budget = YamlBudget::for_text(raw.len());
    let value = YamlNode(&budget).deserialize(de).map_err(|e| {
        // serde_yaml's message ends with "at line L column C" when it knows where; say where
        // even when the error is ours (the budget, a duplicate key).
        match e.location() {
            Some(l) if !e.to_string().contains(" at line ") => {
                malformed_yaml(format_args!("{e} (at line {} column {})", l.line(), l.column()))
            }
            _ => malformed_yaml(e),
        }
    })?;
    let value = sw_appconf::model::normalize(value).map_err(|(path, msg)| {
        let at = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
        ApiError::bad_request("malformed_yaml", format!("The YAML cannot be read as JSON{at}: {msg}."))
    })?;
    serde_json::to_value(value).map_err(|e| {
        ApiError::bad_request("malformed_yaml", format!("The YAML cannot be read as JSON: {e}."))
    })
}

/// Bounds what anchors and aliases can make of a YAML text (the "billion laughs").
///
/// serde_yaml expands an alias by replaying the anchored node, and its own cap (100 replays per
/// event of the text) still lets a 1 MiB body grow to gigabytes: a large anchored node aliased
/// many times. Aliases are allowed (people repeat blocks with them), but their expansion is
/// counted: every node the document expands to costs one unit and every byte of a string one more,
/// and the whole document may cost [`YamlBudget::PER_BYTE`] units per byte of its text. A text
/// without aliases stays near 1.5 units per byte at worst (flow shorthand like `[:, :]`, escapes
/// like `\L` that make 3 bytes of 2), so only an expansion is refused — while it is being built,
/// before it takes the memory — as `malformed_yaml`.
struct YamlBudget(std::cell::Cell<usize>);

impl YamlBudget {
    const PER_BYTE: usize = 3;
    const FLOOR: usize = 4096;

    fn for_text(len: usize) -> Self {
        Self(std::cell::Cell::new(len.saturating_mul(Self::PER_BYTE).saturating_add(Self::FLOOR)))
    }

    fn spend<E: serde::de::Error>(&self, units: usize) -> Result<(), E> {
        match self.0.get().checked_sub(units) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "its aliases expand to far more than the text itself (refused as a possible alias bomb)",
            )),
        }
    }
}

/// One YAML node read into a [`serde_yaml::Value`] as serde_yaml's own reader would, but paying
/// for itself from the [`YamlBudget`]. Tags are dropped (as `normalize` would).
struct YamlNode<'a>(&'a YamlBudget);

impl<'de> serde::de::DeserializeSeed<'de> for YamlNode<'_> {
    type Value = serde_yaml::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for YamlNode<'_> {
    type Value = serde_yaml::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
        self.0.spend(1)?;
        Ok(serde_yaml::Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
        self.0.spend(1)?;
        Ok(serde_yaml::Value::Number(n.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
        self.0.spend(1)?;
        Ok(serde_yaml::Value::Number(n.into()))
    }

    // Integers past 64 bits become floats, as they do in JSON bodies.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i128<E: serde::de::Error>(self, n: i128) -> Result<Self::Value, E> {
        self.visit_f64(n as f64)
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u128<E: serde::de::Error>(self, n: u128) -> Result<Self::Value, E> {
        self.visit_f64(n as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
        self.0.spend(1)?;
        Ok(serde_yaml::Value::Number(n.into()))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        self.visit_string(s.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        self.0.spend(1 + s.len())?;
        Ok(serde_yaml::Value::String(s))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.0.spend(1)?;
        Ok(serde_yaml::Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        use serde::de::DeserializeSeed;
        self.deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.0.spend(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(YamlNode(self.0))? {
            items.push(item);
        }
        Ok(serde_yaml::Value::Sequence(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        self.0.spend(1)?;
        let mut out = serde_yaml::Mapping::new();
        while let Some(key) = map.next_key_seed(YamlNode(self.0))? {
            let value = map.next_value_seed(YamlNode(self.0))?;
            // As serde_yaml's own reader: YAML does not allow a key twice.
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {}", key_text(&key))));
            }
            out.insert(key, value);
        }
        Ok(serde_yaml::Value::Mapping(out))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        // A tagged node (`!Ref x`): the tag is dropped.
        let (_tag, node) = data.variant::<serde::de::IgnoredAny>()?;
        node.newtype_variant_seed(YamlNode(self.0))
    }
}

fn key_text(key: &serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => format!("'{s}'"),
        other => serde_yaml::to_string(other).map(|s| s.trim_end().to_owned()).unwrap_or_default(),
    }
}

fn parse_form(headers: &HeaderMap, raw: &[u8]) -> Result<serde_json::Value, ApiError> {
    if !raw.is_empty() && media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::oauth(
            400,
            "invalid_request",
            "Send the parameters as 'Content-Type: application/x-www-form-urlencoded'.",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
        .map_err(|_| ApiError::oauth(400, "invalid_request", "The form body is malformed."))?;
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        // RFC 6749 §3.2: parameters must not be included more than once.
        if map.insert(k.clone(), serde_json::Value::String(v)).is_some() {
            return Err(ApiError::oauth(400, "invalid_request", format!("Parameter '{k}' is repeated.")));
        }
    }
    Ok(serde_json::Value::Object(map))
}

fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>, trust_forwarded: bool) -> String {
    if trust_forwarded
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
    {
        return first.to_owned();
    }
    peer.map(|p| p.0.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Continues the caller's W3C trace context, or starts a new trace (used when no OpenTelemetry
/// layer is installed to do it).
fn traceparent(headers: &HeaderMap) -> String {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok())
        && valid_traceparent(tp)
    {
        return tp.to_owned();
    }
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

fn valid_traceparent(tp: &str) -> bool {
    let p: Vec<&str> = tp.split('-').collect();
    p.len() == 4
        && p[0].len() == 2
        && p[1].len() == 32
        && p[2].len() == 16
        && p[3].len() == 2
        && p.iter().all(|s| s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        && p[0] != "ff"
        && p[1].bytes().any(|b| b != b'0')
        && p[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_or_started() {
        let mut h = HeaderMap::new();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        h.insert("traceparent", HeaderValue::from_static(tp));
        assert_eq!(traceparent(&h), tp);
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        let new = traceparent(&h);
        assert_ne!(new, tp);
        assert!(valid_traceparent(&new), "{new}");
    }

    #[test]
    fn forms_reject_repeats_and_wrong_media_type() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert_eq!(parse_form(&h, b"grant_type=password&username=a").unwrap()["username"], "a");
        assert_eq!(parse_form(&h, b"a=1&a=2").unwrap_err().status(), 400);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(parse_form(&h, b"a=1").unwrap_err().status(), 400);
    }

    async fn body_of(resp: Response) -> (String, String) {
        let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (ct, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_string_with_a_non_json_type_is_written_raw() {
        let yaml = "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\n";
        let reply = RpcReply::ok(yaml).header("Content-Type", "application/yaml");
        assert_eq!(body_of(reply_response(reply)).await, ("application/yaml".into(), yaml.into()));
        // JSON stays JSON: a string body without a type, or with a JSON type, is a JSON string.
        let plain = RpcReply::ok("a\nb");
        assert_eq!(body_of(reply_response(plain)).await, ("application/json".into(), "\"a\\nb\"".into()));
        let json = RpcReply::ok("x").header("content-type", "application/problem+json");
        assert_eq!(body_of(reply_response(json)).await.1, "\"x\"");
        // A non-string body cannot be relabelled by the service.
        let obj = RpcReply::ok(serde_json::json!({"a": 1})).header("content-type", "application/yaml");
        assert_eq!(body_of(reply_response(obj)).await, ("application/json".into(), "{\"a\":1}".into()));
    }

    #[test]
    fn json_needs_its_media_type_and_syntax() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_json(&h, b"{}").unwrap_err().status(), 415);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert!(parse_json(&h, b"{\"a\":1}").unwrap().is_some());
        assert_eq!(parse_json(&h, b"{\"a\":").unwrap_err().code(), "malformed_json");
        assert!(parse_json(&h, b"").unwrap().is_none());
    }

    fn yaml_headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn documents_are_yaml_or_json() {
        let yaml = yaml_headers("application/yaml");
        let doc = parse_document(&yaml, b"a: 1\nb: [x, 'y']\nname: {{ options.name }}\n").unwrap().unwrap();
        assert_eq!(doc, serde_json::json!({"a": 1, "b": ["x", "y"], "name": "{{ options.name }}"}));
        for ct in ["application/x-yaml", "text/yaml; charset=utf-8", "application/vnd.oam+yaml"] {
            assert_eq!(parse_document(&yaml_headers(ct), b"a: 1").unwrap().unwrap()["a"], 1, "{ct}");
        }
        // Tags are dropped; keys that are numbers become text.
        let doc = parse_document(&yaml, b"x: !Ref y\n1: one\n").unwrap().unwrap();
        assert_eq!(doc, serde_json::json!({"x": "y", "1": "one"}));
        let json = yaml_headers("application/json");
        assert_eq!(parse_document(&json, b"{\"a\":1}").unwrap().unwrap()["a"], 1);
        assert_eq!(parse_document(&json, b"a: 1").unwrap_err().code(), "malformed_json");
        assert_eq!(parse_document(&yaml_headers("text/plain"), b"a: 1").unwrap_err().status(), 415);
        assert_eq!(parse_document(&HeaderMap::new(), b"a: 1").unwrap_err().status(), 415);
        assert!(parse_document(&HeaderMap::new(), b"").unwrap().is_none());
    }

    #[test]
    fn malformed_yaml_says_where() {
        let h = yaml_headers("application/yaml");
        let e = parse_document(&h, b"a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "malformed_yaml"));
        let detail = e.problem().detail.clone().unwrap_or_default();
        assert!(detail.contains("line") && detail.contains("column"), "{detail}");
        let e = parse_document(&h, b"a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.code(), "malformed_yaml");
        assert!(e.problem().detail.clone().unwrap_or_default().contains("duplicate"), "{e:?}");
        // One document only.
        assert_eq!(parse_document(&h, b"a: 1\n---\nb: 2\n").unwrap_err().code(), "malformed_yaml");
        // A mapping used as a key cannot be JSON.
        assert_eq!(parse_document(&h, b"? {a: 1, b: 2}\n: x\n").unwrap_err().code(), "malformed_yaml");
    }

    #[test]
    fn aliases_may_repeat_but_not_explode() {
        let h = yaml_headers("application/yaml");
        let doc = parse_document(&h, b"base: &b {image: nginx, port: 80}\nfirst: *b\nsecond: *b\n")
            .unwrap()
            .unwrap();
        assert_eq!(doc["second"], serde_json::json!({"image": "nginx", "port": 80}));
        // Nine levels of nine aliases each: 9^9 nodes from a few hundred bytes.
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        let e = parse_document(&h, bomb.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "malformed_yaml");
        assert!(e.problem().detail.clone().unwrap_or_default().contains("alias"), "{e:?}");
        // One big string repeated is an expansion too, even below serde_yaml's own repetition cap.
        let big = format!("s: &s '{}'\nl: [{}]\n", "a".repeat(64 * 1024), vec!["*s"; 200].join(", "));
        assert_eq!(parse_document(&h, big.as_bytes()).unwrap_err().code(), "malformed_yaml");
    }
}
