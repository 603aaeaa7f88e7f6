//! How a failed API call is reported: one variant per `ComponentResult` reason the service sends.

use std::time::Duration;

use sw_contracts::executor::ObjectRef;

/// Why applying, pruning or reading a component's objects failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another field manager owns a field this apply sets. Never forced: an operator (or a
    /// `kubectl apply --server-side --force-conflicts`) has to hand the field over.
    #[error("{} {}: conflict with another field manager: {message}", object.kind, object.name)]
    Conflict { object: ObjectRef, message: String },
    /// The cluster could not be reached or answered with a server-side failure (5xx, 429, a
    /// dropped connection, an unreadable answer).
    #[error("{} {}: cluster unavailable: {message}", object.kind, object.name)]
    ClusterUnavailable { object: ObjectRef, message: String },
    /// The cluster's credentials may not do this (401/403).
    #[error("{} {}: forbidden: {message}", object.kind, object.name)]
    Forbidden { object: ObjectRef, message: String },
    /// The API server refused the object (422, 400, 404 on apply: a missing namespace or a kind it
    /// does not serve), or the object cannot be sent at all (no name, an unknown kind).
    #[error("{} {}: invalid: {message}", object.kind, object.name)]
    Invalid { object: ObjectRef, message: String },
    /// One call took longer than the per-call timeout.
    #[error("{} {}: no answer from the API server within {after:?}", object.kind, object.name)]
    Timeout { object: ObjectRef, after: Duration },
    /// Any other answer from the API server.
    #[error("{} {}: API server answered {code}: {message}", object.kind, object.name)]
    Rejected { object: ObjectRef, code: u16, message: String },
}

impl ApplyError {
    /// The `ComponentResult::reason` this failure is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflict { .. } => "ApplyConflict",
            ApplyError::ClusterUnavailable { .. } => "ClusterUnavailable",
            ApplyError::Forbidden { .. } => "Forbidden",
            ApplyError::Invalid { .. } => "InvalidComponent",
            ApplyError::Timeout { .. } => crate::health::TIMEOUT_REASON,
            ApplyError::Rejected { .. } => "ApiRejected",
        }
    }

    /// Whether the same command may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, ApplyError::ClusterUnavailable { .. } | ApplyError::Timeout { .. })
    }

    /// Maps a kube-rs error from a call about `object`.
    pub(crate) fn from_kube(object: &ObjectRef, e: kube::Error) -> Self {
        let object = object.clone();
        match e {
            kube::Error::Api(status) => {
                let message =
                    if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
                match status.code {
                    409 => ApplyError::Conflict { object, message },
                    401 | 403 => ApplyError::Forbidden { object, message },
                    400 | 404 | 422 => ApplyError::Invalid { object, message },
                    429 | 500..=599 => ApplyError::ClusterUnavailable {
                        object,
                        message: format!("{}: {message}", status.code),
                    },
                    code => ApplyError::Rejected { object, code, message },
                }
            }
            kube::Error::BuildRequest(e) => ApplyError::Invalid { object, message: e.to_string() },
            kube::Error::Discovery(e) => ApplyError::Invalid { object, message: e.to_string() },
            // Connection refused/reset, TLS and auth-plugin failures, a body that is not JSON: the
            // request may or may not have reached the cluster, and retrying later is the answer.
            other => ApplyError::ClusterUnavailable { object, message: error_chain(&other) },
        }
    }
}

/// The error and its sources on one line: kube-rs wraps the io error that says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
