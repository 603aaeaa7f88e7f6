//! The `webhook` step's HTTP sender.
//!
//! A workflow's `webhook` task POSTs a JSON message to a URL the user configured and waits for the
//! answer. Messages are signed the [Standard Webhooks](https://www.standardwebhooks.com) way so a
//! receiver can check that they come from this workflow service and were not altered or replayed:
//!
//! ```text
//! webhook-id:        <message id, the same on every retry of one task>
//! webhook-timestamp: <unix seconds at this attempt>
//! webhook-signature: v1,<base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>"))>
//! ```
//!
//! [`WebhookSender::send`] makes one attempt and classifies the answer as a [`WebhookOutcome`]; the
//! caller owns the retry loop ([`backoff`] gives the delays) and the launch-time check of the URL
//! ([`validate_url`]). [`verify`] is the receiver's side of the signature.
//!
//! Redirects are never followed: the signed message (and whatever the step put in it) would go to a
//! host the user did not configure, and the receiver would see a different URL than the one it
//! signed up for. A 3xx answer is therefore [`WebhookOutcome::Rejected`]: retrying the same URL gets
//! the same redirect, and the fix is to configure the final URL.
//!
//! Private addresses are refused unless `workflow.webhook_allow_private` is set: a launch file
//! must not make the workflow service POST to loopback, link-local (cloud metadata), or the
//! cluster's private networks. The URL's host is checked at launch ([`validate_url`]) and, for a
//! name, every address it resolves to is checked again when the call is made (the client's
//! resolver drops private ones), so a name that later resolves to a private address is refused too.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, USER_AGENT};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How much of an answer is read: enough for a `context` object, small enough that a receiver
/// streaming a large page back cannot hold the task.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a failed answer's body goes into the outcome message.
const MESSAGE_SNIPPET_CHARS: usize = 200;
const SENDER_USER_AGENT: &str = "sreworks-workflow";
const SIGNATURE_VERSION: &str = "v1";

/// Sends signed webhook messages. Cheap to share: one connection pool for every webhook task.
pub struct WebhookSender {
    client: reqwest::Client,
    key: Vec<u8>,
    timeout: Duration,
    allow_private: bool,
}

// The key must never reach a log line, so no derived Debug.
impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender").field("key", &"<redacted>").field("timeout", &self.timeout).finish()
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// The receiver answered 2xx. `context` is the answer's `context` field when the answer is a JSON
    /// object holding an object there (a hook sets `continueRollout` / `rollback` this way).
    Delivered { status: u16, context: Option<Map<String, Value>> },
    /// Worth another attempt after [`backoff`]: a timeout, a connection error, or 408, 425, 429, 5xx.
    Retry { message: String },
    /// Final: the receiver refused the message (other 4xx, a redirect, or a 2xx answer
    /// `{"approved": false}`). `status` is 0 when no request was made because the URL is invalid.
    Rejected { status: u16, message: String },
}

impl WebhookSender {
    /// A sender signing with `key`; each attempt (connect, answer and reading up to 64 KiB of its
    /// body) is cut off after `timeout`. Fails only if the TLS backend cannot be set up.
    pub fn new(key: &[u8], timeout: Duration, allow_private: bool) -> reqwest::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self { client: builder.build()?, key: key.to_vec(), timeout, allow_private })
    }

    /// POSTs `body` to `url` once, signed with `msg_id` and the current time, and classifies the answer.
    /// Use the same `msg_id` for every attempt of one task so receivers can drop duplicates.
    pub async fn send(&self, url: &str, msg_id: &str, body: &Value) -> WebhookOutcome {
        if let Err(message) = validate_url(url, self.allow_private) {
            return WebhookOutcome::Rejected { status: 0, message };
        }
        // Sign exactly the bytes that go on the wire: the receiver verifies the raw body.
        let payload = body.to_string().into_bytes();
        let timestamp = unix_now().to_string();
        let signature = sign(&self.key, msg_id, &timestamp, &payload);
        let request = self
            .client
            .post(url)
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, SENDER_USER_AGENT)
            .body(payload);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return self.failed(err),
        };
        let status = response.status();
        let body = match read_limited(&mut response).await {
            Ok(body) => body,
            // The answer started but did not finish: we cannot tell whether the hook approved.
            Err(err) => return self.failed(err),
        };
        classify(status, response.headers().get(LOCATION), &body)
    }

    fn failed(&self, err: reqwest::Error) -> WebhookOutcome {
        // Without the URL: it may carry a token in its query or user info.
        let err = err.without_url();
        let chain = cause_chain(&err);
        if chain.contains(PRIVATE_ONLY) {
            // The name resolves to private addresses only: the same on every attempt.
            return WebhookOutcome::Rejected { status: 0, message: chain };
        }
        let message = if err.is_timeout() {
            format!("the webhook did not answer within {} ms", self.timeout.as_millis())
        } else if err.is_connect() {
            format!("could not connect to the webhook: {}", cause_chain(&err))
        } else {
            format!("the request to the webhook failed: {}", cause_chain(&err))
        };
        WebhookOutcome::Retry { message }
    }
}

/// Checks a webhook URL at launch: absolute, `http` or `https`, with a host.
pub fn validate_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|err| format!("the webhook URL is not a valid URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("the webhook URL must use http or https, not `{}`", parsed.scheme()));
    }
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("the webhook URL has no host".to_owned());
    }
    // An IPv6 host comes in brackets; a name ending in `localhost` is loopback by definition.
    let private = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => !is_public(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(format!(
            "the webhook URL's host `{}` is a private or loopback address; the server refuses those \
             unless workflow.webhook_allow_private is set",
            host
        ));
    }
    Ok(())
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, IPv6
/// unique-local), link-local (incl. cloud metadata at 169.254.169.254), carrier-grade NAT,
/// unspecified, broadcast, multicast or documentation; IPv4-mapped IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The resolver's refusal, recognised in the connect error's causes.
const PRIVATE_ONLY: &str = "resolves only to private or loopback addresses";

/// The webhook client's resolver when private addresses are refused: the system's answer without
/// them, and an error when nothing public is left.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let message = format!(
                    "{host} {PRIVATE_ONLY}, which webhooks may not call unless \
                     workflow.webhook_allow_private is set"
                );
                return Err(message.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delay before the next attempt after `attempt` failed ones (1 after the first failure):
/// 1 s, 5 s, 25 s, then 60 s.
pub fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1);
    let secs = 5u64.checked_pow(exponent).unwrap_or(u64::MAX).min(60);
    Duration::from_secs(secs)
}

/// Whether `signature_header` (the `webhook-signature` value: space-separated `v1,<base64>` entries)
/// holds a valid signature of `body` under `key` for this `id` and `timestamp` (both exactly as
/// received in `webhook-id` and `webhook-timestamp`). Entries of other versions are skipped; the
/// comparison takes constant time. Receivers must also reject timestamps far from their clock
/// (Standard Webhooks suggests five minutes) to stop replays; this function does not look at time.
pub fn verify(key: &[u8], id: &str, timestamp: &str, body: &[u8], signature_header: &str) -> bool {
    let expected = mac(key, id, timestamp, body);
    signature_header.split(' ').filter_map(|entry| entry.split_once(',')).any(|(version, signature)| {
        version == SIGNATURE_VERSION
            && BASE64.decode(signature).is_ok_and(|bytes| expected.clone().verify_slice(&bytes).is_ok())
    })
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!("{SIGNATURE_VERSION},{}", BASE64.encode(tag))
}

fn unix_now() -> u64 {
    // A clock before 1970 would be a broken host; 0 then makes receivers reject the message as stale.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// The answer's body, up to [`MAX_RESPONSE_BYTES`]; `None` when it is longer (the rest is not read).
async fn read_limited(response: &mut reqwest::Response) -> reqwest::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn classify(
    status: StatusCode,
    location: Option<&reqwest::header::HeaderValue>,
    body: &Option<Vec<u8>>,
) -> WebhookOutcome {
    let code = status.as_u16();
    if status.is_success() {
        // A body that is not a JSON object (or is too long to read) is a plain acknowledgement.
        let Some(Value::Object(mut answer)) = body.as_deref().and_then(|b| serde_json::from_slice(b).ok())
        else {
            return WebhookOutcome::Delivered { status: code, context: None };
        };
        if answer.get("approved") == Some(&Value::Bool(false)) {
            return WebhookOutcome::Rejected {
                status: code,
                message: "the webhook did not approve".to_owned(),
            };
        }
        let context = match answer.remove("context") {
            Some(Value::Object(context)) => Some(context),
            _ => None,
        };
        return WebhookOutcome::Delivered { status: code, context };
    }
    let answered = format!("the webhook answered {}{}", status_text(status), snippet(body));
    let retryable = matches!(code, 408 | 425 | 429) || status.is_server_error();
    if retryable {
        WebhookOutcome::Retry { message: answered }
    } else if status.is_redirection() {
        let target = location
            .and_then(|l| l.to_str().ok())
            .map(|l| format!(" to {}", truncate(l)))
            .unwrap_or_default();
        let message = format!(
            "the webhook answered {} (a redirect{target}); redirects are not followed, configure the final URL",
            status_text(status)
        );
        WebhookOutcome::Rejected { status: code, message }
    } else {
        WebhookOutcome::Rejected { status: code, message: answered }
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `": <start of the body>"` for messages, or nothing when the body is empty or unread.
fn snippet(body: &Option<Vec<u8>>) -> String {
    let Some(body) = body else { return String::new() };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() { String::new() } else { format!(": {}", truncate(text)) }
}

/// At most [`MESSAGE_SNIPPET_CHARS`] characters, with control characters (newlines) as spaces so
/// the message stays one line in the task's status.
fn truncate(text: &str) -> String {
    let mut out: String =
        text.chars().take(MESSAGE_SNIPPET_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MESSAGE_SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest often repeat the inner message in the outer one.
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests;
