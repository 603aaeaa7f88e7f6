//! HTTP-facing error type and helpers shared by the gateway and every service.
//!
//! [`ApiError`] is the one error type a handler returns, whether it runs behind axum (the gateway)
//! or behind a NATS endpoint (every other service). It becomes an RFC 9457 problem: the status and
//! the stable `code` are chosen where the error is raised; 5xx bodies are opaque and their cause is
//! logged once, here, with the whole chain.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use sw_contracts::problem::PROBLEM_JSON;
use sw_contracts::{FieldError, Problem};

/// An error answer: status, stable code, optional detail and field errors.
#[derive(Debug, Clone)]
pub struct ApiError {
    // Boxed so `Result<T, ApiError>` stays small (clippy::result_large_err) on every handler path.
    problem: Box<Problem>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.problem.status, self.problem.code)?;
        if let Some(d) = &self.problem.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Any status with a stable code and a detail.
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Self {
        Self { problem: Box::new(Problem::new(status, code, Some(detail.into()))) }
    }
    /// 400 with a stable code.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(400, code, detail)
    }
    /// 400 `malformed_json`.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(400, "malformed_json", detail)
    }
    /// 401 with a stable code (`missing_token`, `invalid_token`, `token_expired`, `token_revoked`, ...).
    pub fn unauthorized(code: &str, detail: impl Into<String>) -> Self {
        Self::new(401, code, detail)
    }
    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "forbidden", detail)
    }
    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not_found", detail)
    }
    /// 409 with a stable code (`already_exists`, `version_conflict`, ...).
    pub fn conflict(code: &str, detail: impl Into<String>) -> Self {
        Self::new(409, code, detail)
    }
    /// 413 `payload_too_large`.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", detail)
    }
    /// 422 `validation_failed` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        let mut problem = Problem::new(422, "validation_failed", Some(detail));
        problem.errors = errors;
        Self { problem: Box::new(problem) }
    }
    /// 422 `validation_failed` for one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }
    /// 429 with `Retry-After`.
    pub fn too_many_requests(code: &str, retry_after_secs: u64, detail: impl Into<String>) -> Self {
        let mut e = Self::new(429, code, detail);
        e.problem.retry_after = Some(retry_after_secs.max(1));
        e
    }
    /// 503: a dependency (database, Redis, a service) is unavailable. The cause is logged, not returned.
    pub fn unavailable(code: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(code, cause = %cause, "Dependency unavailable.");
        let mut e = Self::new(503, code, "A dependency is unavailable; retry later.");
        e.problem.retry_after = Some(1);
        e
    }
    /// 500: an unexpected failure. The cause chain is logged; the body says nothing about it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut src = cause.source();
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(cause = %chain, "Internal error.");
        Self::new(500, "internal", "An unexpected error occurred.")
    }
    /// An OAuth 2.0 error (RFC 6749 §5.2), carried as a problem with `error`/`error_description`.
    pub fn oauth(status: u16, error: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        let mut e = Self::new(status, error, description.clone());
        e.problem.error = Some(error.to_owned());
        e.problem.error_description = Some(description);
        e
    }

    pub fn status(&self) -> u16 {
        self.problem.status
    }
    pub fn code(&self) -> &str {
        &self.problem.code
    }
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
    pub fn into_problem(self) -> Problem {
        *self.problem
    }
    /// Attaches the request id.
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.problem.request_id = id;
        self
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self { problem: Box::new(problem) }
    }
}

/// Writes a problem as an HTTP response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(secs) = problem.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if problem.status == 401 {
        let v = if problem.code == "invalid_client" {
            "Basic realm=\"sreworks\""
        } else {
            "Bearer realm=\"sreworks\""
        };
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    if problem.error.is_some() {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem)
    }
}

/// Deserialises a JSON value into a request DTO, mapping serde's complaint to a 422 naming the field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: Option<serde_json::Value>) -> Result<T, ApiError> {
    let Some(body) = body else {
        return Err(ApiError::bad_request("missing_body", "This operation needs a JSON body."));
    };
    serde_path_to_error::deserialize(body).map_err(|e: serde_path_to_error::Error<serde_json::Error>| {
        let msg = e.inner().to_string();
        // serde names unknown/missing fields in its message; for type errors the path says where.
        let path = e.path().to_string();
        let top = path == "." || path.is_empty();
        let field = match extract_field(&msg) {
            Some(f) if top => f,
            Some(f) if path == f || path.ends_with(&format!(".{f}")) => path,
            Some(f) => format!("{path}.{f}"),
            None if top => "body".to_owned(),
            None => path,
        };
        ApiError::invalid_field(&field, msg)
    })
}

/// Parses a query string into a typed query, mapping errors to 422 `validation_failed`.
pub fn parse_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query).map_err(|e| {
        let msg = e.to_string();
        let field = extract_field(&msg).unwrap_or_else(|| "query".to_owned());
        ApiError::invalid_field(&field, msg)
    })
}

/// `page`/`pageSize` checked into a [`sw_contracts::PageQuery`]; out of range is a 422.
pub fn page_query(page: Option<u64>, page_size: Option<u64>) -> Result<sw_contracts::PageQuery, ApiError> {
    sw_contracts::PageQuery::checked(page, page_size).map_err(ApiError::validation)
}

/// Picks the field name out of serde's messages like "unknown field `foo`" or "missing field `bar`".
fn extract_field(msg: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = msg.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct In {
        app_id: String,
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse_body::<In>(Some(serde_json::json!({"appId": "a", "bogus": 1}))).unwrap_err();
        assert_eq!(e.status(), 422);
        assert_eq!(e.problem().errors[0].field, "bogus");
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse_body::<In>(Some(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "appId");
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        production: bool,
    }

    #[test]
    fn type_errors_name_the_path() {
        let e = parse_body::<Outer>(Some(serde_json::json!({"inner": {"production": "yes"}}))).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "inner.production");
    }

    #[test]
    fn missing_body_is_400() {
        assert_eq!(parse_body::<In>(None).unwrap_err().status(), 400);
    }

    #[test]
    fn problem_response_has_media_type_and_retry_after() {
        let r = ApiError::too_many_requests("rate_limited", 7, "slow down").into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Q {
        page: Option<u64>,
        team: Option<String>,
    }

    #[test]
    fn query_parses_and_rejects() {
        let q: Q = parse_query("page=2&team=a%20b").unwrap();
        assert_eq!(q.page, Some(2));
        assert_eq!(q.team.as_deref(), Some("a b"));
        assert_eq!(parse_query::<Q>("page=x").unwrap_err().status(), 422);
    }
}
