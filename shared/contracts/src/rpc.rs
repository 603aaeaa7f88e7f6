//! The request/reply envelope between the gateway and the services over NATS.
//!
//! A request is published to `{prefix}.api.{service}.{operation}` with the caller's credentials and
//! trace context in NATS headers and an [`RpcEnvelope`] as JSON payload. A success comes back as an
//! [`RpcReply`]; a failure comes back with the NATS service-error headers
//! (`Nats-Service-Error`, `Nats-Service-Error-Code`) and a [`crate::Problem`] as payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Header carrying the caller's `Authorization` value (`Bearer <jwt>` or `Basic ...`).
pub const HDR_AUTHORIZATION: &str = "Authorization";
/// Header carrying the request id, echoed as `x-request-id` over HTTP.
pub const HDR_REQUEST_ID: &str = "X-Request-Id";
/// W3C trace context.
pub const HDR_TRACEPARENT: &str = "traceparent";
/// The client IP as seen by the gateway, used for login throttling.
pub const HDR_CLIENT_IP: &str = "Sw-Client-Ip";
/// Set on error replies: the HTTP status as a number (mirrors `Nats-Service-Error-Code`).
pub const HDR_SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
/// Set on error replies: a short description.
pub const HDR_SERVICE_ERROR: &str = "Nats-Service-Error";

/// What the gateway forwards of one HTTP request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RpcEnvelope {
    /// Path parameters by name (`appId`, `componentName`, ...), already percent-decoded.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The raw query string (without `?`), parsed by the service into its own typed query.
    #[serde(default)]
    pub query: String,
    /// The request body: JSON, or for form posts the form fields as a JSON object.
    #[serde(default)]
    pub body: Option<Value>,
}

impl RpcEnvelope {
    pub fn with_body(body: Value) -> Self {
        Self { body: Some(body), ..Self::default() }
    }
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcReply {
    /// HTTP status to answer with (200, 201, 204 ...).
    pub status: u16,
    /// Extra response headers (`Location`, `Cache-Control`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body; `None` for 204.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl RpcReply {
    pub fn ok(body: impl Serialize) -> Self {
        Self::with_status(200, body)
    }
    pub fn created(body: impl Serialize) -> Self {
        Self::with_status(201, body)
    }
    pub fn no_content() -> Self {
        Self { status: 204, headers: BTreeMap::new(), body: None }
    }
    pub fn with_status(status: u16, body: impl Serialize) -> Self {
        // Serialising our own DTOs into a Value cannot fail (no non-string map keys).
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        Self { status, headers: BTreeMap::new(), body: Some(body) }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_owned(), value.into());
        self
    }
}
