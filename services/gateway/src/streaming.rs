//! Routes whose body is streamed to the service (package imports, build tasks).
//!
//! A package can be gigabytes, so these bodies are never buffered: after the usual token and rate
//! checks, the media type is checked against the route's list (415 before any byte is read), then
//! the HTTP body is handed chunk by chunk to [`sw_bus::Bus::call_streaming`], which paces it by the
//! service's acknowledgements. The envelope's `body` tells the service how to parse the stream:
//! `{"contentType": <the Content-Type header>, "contentLength": <Content-Length or null>}`.
//!
//! `gateway.body_limit_bytes` does not apply: the service enforces its own package limit and
//! answers 413 as soon as it is crossed, which stops the upload. `Idempotency-Key` is refused with a
//! 422 `idempotency_not_supported` rather than ignored: honouring it would mean buffering the body
//! to fingerprint it, and silently ignoring it would let a client believe a retried build task
//! cannot run twice. (A retried import is safe on its own: the version already exists, a 409.)
//!
//! When the answer comes before the whole body was read (a refusal: wrong media type, a bad token,
//! the service's early problem), the rest of the body is drained for a short while ([`linger`]) so
//! the client reads the problem rather than a connection reset.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sw_bus::{CallMeta, RpcEnvelope, StreamOptions};
use sw_http::ApiError;

use crate::forward::{media_type, reply_response};
use crate::routes::Route;
use crate::state::Inner;

/// Forwards one streaming request; `envelope` carries the path parameters and the query.
pub(crate) async fn forward(
    st: &Inner,
    route: &Route,
    accepts: &[&str],
    headers: &HeaderMap,
    body: Body,
    meta: &CallMeta,
    mut envelope: RpcEnvelope,
) -> Result<Response, ApiError> {
    let content_type = match check_media_type(headers, accepts) {
        Ok(ct) if !headers.contains_key("idempotency-key") => ct,
        Ok(_) => {
            linger(headers, body);
            return Err(ApiError::new(
                422,
                "idempotency_not_supported",
                "Idempotency-Key is not supported on uploads; send the request without it.",
            ));
        }
        Err(e) => {
            linger(headers, body);
            return Err(e);
        }
    };
    let content_length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    envelope.body = Some(serde_json::json!({"contentType": content_type, "contentLength": content_length}));
    let opts = StreamOptions {
        final_timeout: Duration::from_secs(st.cfg.gateway.stream_deadline_secs),
        body_idle_timeout: Duration::from_secs(st.cfg.gateway.body_idle_timeout_secs),
    };
    let mut data = body.into_data_stream().fuse();
    let result = st.bus.call_streaming(route.service, route.op, meta, &envelope, &mut data, opts).await;
    if !data.is_done() {
        // The service answered before the end of the body (a bad zip, over its limit).
        linger_stream(data);
    }
    Ok(reply_response(result?))
}

/// Longest time the rest of a refused upload is read and dropped.
const LINGER_TIME: Duration = Duration::from_secs(10);
/// Most bytes of a refused upload read and dropped.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Reads and drops what is left of a refused upload for a short while (as a web server's
/// "lingering close" does), in the background while the answer goes out. Without it, closing a
/// connection that still has unread upload bytes makes the kernel reset it, and the reset can
/// destroy the answer before the client has read it: the client would see "connection reset"
/// instead of the problem that says what was wrong. Bounded in time and bytes, so a huge refused
/// upload is still cut off soon; nothing depends on this task finishing.
///
/// For refusals before the body was asked for: a client that sent `Expect: 100-continue` has not
/// sent the body and will not once it has the answer, so nothing is read (reading would invite it).
pub(crate) fn linger(headers: &HeaderMap, body: Body) {
    let waits = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if !waits {
        linger_stream(body.into_data_stream().fuse());
    }
}

fn linger_stream<S>(mut rest: S)
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let drain = async {
            while let Some(Ok(b)) = rest.next().await {
                left = left.saturating_sub(b.len());
                if left == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// The whole `Content-Type` value (parameters such as the multipart boundary included) when its
/// media type is one of `accepts`; otherwise a 415 naming them.
fn check_media_type(headers: &HeaderMap, accepts: &[&str]) -> Result<String, ApiError> {
    let full = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match (full, media_type(headers)) {
        (Some(full), Some(m)) if accepts.contains(&m.as_str()) => Ok(full.to_owned()),
        _ => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!("Send the body as one of: {}.", accepts.join(", ")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::routes::{BUILD_BODY, MULTIPART_BODY, ZIP_BODY};

    fn with_type(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn zip_imports_take_raw_zip_types_only() {
        for ok in ["application/octet-stream", "application/zip", "Application/X-Zip-Compressed"] {
            assert_eq!(check_media_type(&with_type(ok), ZIP_BODY).unwrap(), ok);
        }
        for bad in ["multipart/form-data; boundary=x", "application/json", "text/plain", ""] {
            let e = check_media_type(&with_type(bad), ZIP_BODY).unwrap_err();
            assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"), "{bad}");
        }
        assert_eq!(check_media_type(&HeaderMap::new(), ZIP_BODY).unwrap_err().status(), 415);
    }

    #[test]
    fn form_imports_need_multipart_and_keep_the_boundary() {
        let full = "multipart/form-data; boundary=----abc";
        assert_eq!(check_media_type(&with_type(full), MULTIPART_BODY).unwrap(), full);
        assert_eq!(
            check_media_type(&with_type("application/zip"), MULTIPART_BODY).unwrap_err().status(),
            415
        );
    }

    #[test]
    fn build_tasks_take_yaml_json_or_multipart() {
        for ok in [
            "application/yaml",
            "application/x-yaml",
            "text/yaml; charset=utf-8",
            "application/json",
            "multipart/form-data; boundary=b",
        ] {
            assert!(check_media_type(&with_type(ok), BUILD_BODY).is_ok(), "{ok}");
        }
        for bad in ["application/zip", "text/plain", "application/merge-patch+json"] {
            assert_eq!(check_media_type(&with_type(bad), BUILD_BODY).unwrap_err().status(), 415, "{bad}");
        }
    }
}
