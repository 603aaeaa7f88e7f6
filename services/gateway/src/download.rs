//! Package downloads through the gateway: the bytes come from storage, not from the service.
//!
//! `packages.download` answers where the zip is ([`DownloadSourceOut`]: a short-lived presigned
//! URL, size, SHA-256, file name). The gateway `GET`s that URL with the client's `Range` and
//! `If-None-Match`, and streams the answer back as it arrives — never buffered — keeping storage's
//! status (200, 206, 304; 416 as a problem) and its `Content-Length`, `Content-Range`, `ETag` and
//! `Last-Modified`, and adding `Content-Type: application/zip`, `Content-Disposition`,
//! `Accept-Ranges: bytes` and the SHA-256 (`Digest`, `x-checksum-sha256`) of the whole package.
//! Storage not answering is a 503 `storage_unavailable`; a transfer that stalls for longer than
//! `gateway.body_idle_timeout_secs` is cut off (the client sees a short body and can resume with
//! `Range`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use sw_bus::{CallMeta, RpcEnvelope};
use sw_contracts::packages::DownloadSourceOut;
use sw_http::ApiError;

use crate::routes::Route;
use crate::state::Inner;

/// The one HTTP client the gateway uses to reach storage: a bounded connect, an idle bound on each
/// read, and no total deadline (a large package on a slow link may take as long as it takes while
/// bytes keep flowing). No proxy: the presigned URL names the endpoint the platform reaches
/// directly, as package-store's own S3 client does.
pub fn storage_client(connect_timeout: Duration, idle_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(idle_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}

/// Request headers passed on to storage.
const PASSED_ON: [HeaderName; 2] = [header::RANGE, header::IF_NONE_MATCH];
/// Storage answer headers passed back to the client.
const PASSED_BACK: [HeaderName; 4] =
    [header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG, header::LAST_MODIFIED];

/// Answers one download request.
pub(crate) async fn serve(
    st: &Inner,
    route: &Route,
    headers: &HeaderMap,
    meta: &CallMeta,
    envelope: &RpcEnvelope,
) -> Result<Response, ApiError> {
    let reply = st.bus.call(route.service, route.op, meta, envelope, None).await?;
    let source: DownloadSourceOut =
        reply.body.and_then(|b| serde_json::from_value(b).ok()).ok_or_else(|| {
            ApiError::new(
                502,
                "bad_upstream_reply",
                format!("The {} service sent no download source.", route.service),
            )
        })?;
    let mut req = st.storage.get(&source.url);
    for name in PASSED_ON {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v.clone());
        }
    }
    let upstream = req.send().await.map_err(|e| ApiError::unavailable("storage_unavailable", &e))?;
    let status = upstream.status();
    match status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED => {}
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let mut p = sw_contracts::Problem::new(
                416,
                "range_not_satisfiable",
                Some(format!(
                    "The package is {} bytes long; the requested range is outside it.",
                    source.size
                )),
            );
            p.request_id = meta.request_id.clone();
            let mut resp = sw_http::problem_response(&p);
            let range = HeaderValue::from_str(&format!("bytes */{}", source.size)).ok();
            if let Some(range) = range {
                resp.headers_mut().insert(header::CONTENT_RANGE, range);
            }
            return Ok(resp);
        }
        // Deleted between the service's answer and this request.
        StatusCode::NOT_FOUND => {
            return Err(ApiError::new(404, "package_not_found", "The package no longer exists."));
        }
        other => {
            return Err(ApiError::unavailable(
                "storage_unavailable",
                &format!("storage answered {other} to a presigned GET"),
            ));
        }
    }
    let mut out = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(v) = upstream.headers().get(&name) {
            out.insert(name, v.clone());
        }
    }
    if status != StatusCode::NOT_MODIFIED {
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", safe_filename(&source.filename)))
        {
            out.insert(header::CONTENT_DISPOSITION, v);
        }
        if let Some(raw) = hex::decode(&source.sha256).ok().filter(|r| r.len() == 32) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            if let (Ok(digest), Ok(hex)) =
                (HeaderValue::from_str(&format!("SHA-256={b64}")), HeaderValue::from_str(&source.sha256))
            {
                out.insert("digest", digest);
                out.insert("x-checksum-sha256", hex);
            }
        }
    }
    let body = if status == StatusCode::NOT_MODIFIED {
        Body::empty()
    } else {
        Body::from_stream(upstream.bytes_stream())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = out;
    Ok(resp)
}

/// The file name as a quoted-string safe for any client: ASCII letters, digits and `.-_+@`;
/// anything else becomes `_`.
fn safe_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_+@".contains(c) { c } else { '_' })
        .collect();
    if cleaned.trim_matches('.').is_empty() { "package.zip".to_owned() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_safe_in_a_quoted_string() {
        assert_eq!(
            safe_filename("health-1.0.0+20231013224500845346.zip"),
            "health-1.0.0+20231013224500845346.zip"
        );
        assert_eq!(safe_filename("a\"b\\c\r\nd é.zip"), "a_b_c__d__.zip");
        assert_eq!(safe_filename(".."), "package.zip");
    }
}
