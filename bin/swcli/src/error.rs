//! The one error type of the CLI and its mapping to exit codes.

use sw_contracts::problem::Problem;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: anything not covered below (local I/O, unexpected replies, other 4xx).
pub const EXIT_OTHER: i32 = 1;
/// Exit code: the command line is wrong (what clap uses).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: not logged in, bad credentials, or not allowed (401/403, OAuth grant errors).
pub const EXIT_AUTH: i32 = 3;
/// Exit code: no such resource (404).
pub const EXIT_NOT_FOUND: i32 = 4;
/// Exit code: state conflict (409).
pub const EXIT_CONFLICT: i32 = 5;
/// Exit code: the input was rejected (400/422, or caught before sending).
pub const EXIT_INVALID: i32 = 6;
/// Exit code: the platform is unreachable, timed out, or failed (429/5xx).
pub const EXIT_UNAVAILABLE: i32 = 7;
/// Exit code: what the command waited for ended unsuccessfully: a build task in `FAILURE`, a
/// deployment in `FAILURE`, `EXCEPTION`, `TERMINATED` or `WAIT_FOR_OP`.
pub const EXIT_TASK_FAILED: i32 = 8;

/// What went wrong; `Display` is the `<code>: <detail>` part of the one-line message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error; `code` and `detail` come from the problem body.
    #[error("{code}: {detail}")]
    Api { status: u16, code: String, detail: String },
    /// No usable token and no credentials to get one (or they were refused before asking).
    #[error("{code}: {detail}")]
    Auth { code: String, detail: String },
    /// The input was rejected before it was sent.
    #[error("validation_failed: {0}")]
    Invalid(String),
    /// The gateway could not be reached or did not answer in time.
    #[error("unavailable: {0}")]
    Unreachable(String),
    /// The configuration file could not be read or written.
    #[error("config: {0}")]
    Config(String),
    /// A reply that is not what the API documents.
    #[error("unexpected_reply: {0}")]
    Unexpected(String),
    /// A local file could not be read or written.
    #[error("file: {0}")]
    File(String),
    /// Downloaded bytes do not hash to the checksum the gateway announced.
    #[error("checksum_mismatch: {0}")]
    Checksum(String),
    /// A build task ended in `FAILURE`; the detail is its `errorMessage`.
    #[error("build_failed: {0}")]
    TaskFailed(String),
    /// `--wait` gave up before the task ended, or a transfer stalled.
    #[error("{code}: {detail}")]
    TimedOut { code: &'static str, detail: String },
    /// A deployment waited for did not succeed: `code` is `deployment_<state>` (e.g.
    /// `deployment_failure`, `deployment_wait_for_op`), `detail` its reason and message.
    #[error("{code}: {detail}")]
    DeploymentEnded { code: String, detail: String },
    /// `error`, after which stdout still gets `stdout` (the last state a `--wait` saw, so a script
    /// has it whatever the outcome).
    #[error("{error}")]
    WithOutput { stdout: String, error: Box<CliError> },
}

impl CliError {
    /// Builds the error for a non-2xx answer from its status and (possibly non-problem) body.
    pub fn from_reply(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<Problem>(body) {
            Ok(p) => {
                let detail = p.detail.or(p.error_description).unwrap_or(p.title);
                CliError::Api { status, code: p.code, detail }
            }
            // Something in front of the gateway (a proxy) may answer without a problem body.
            Err(_) => CliError::Api {
                status,
                code: format!("http_{status}"),
                detail: String::from_utf8_lossy(body).trim().chars().take(200).collect(),
            },
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { status, code, .. } => match (*status, code.as_str()) {
                // OAuth refuses a bad password or refresh token with 400 invalid_grant: an auth failure.
                (_, "invalid_grant" | "invalid_client" | "unauthorized_client") => EXIT_AUTH,
                (401 | 403, _) => EXIT_AUTH,
                (404, _) => EXIT_NOT_FOUND,
                (409, _) => EXIT_CONFLICT,
                (400 | 422, _) => EXIT_INVALID,
                (429, _) | (500..=599, _) => EXIT_UNAVAILABLE,
                _ => EXIT_OTHER,
            },
            CliError::Auth { .. } => EXIT_AUTH,
            CliError::Invalid(_) => EXIT_INVALID,
            CliError::Unreachable(_) | CliError::TimedOut { .. } => EXIT_UNAVAILABLE,
            CliError::TaskFailed(_) | CliError::DeploymentEnded { .. } => EXIT_TASK_FAILED,
            CliError::WithOutput { error, .. } => error.exit_code(),
            CliError::Config(_) | CliError::Unexpected(_) | CliError::File(_) | CliError::Checksum(_) => {
                EXIT_OTHER
            }
        }
    }
}

impl CliError {
    /// Attaches what stdout gets even though the command fails.
    pub fn with_output(self, stdout: String) -> CliError {
        CliError::WithOutput { stdout, error: Box::new(self) }
    }

    /// What stdout gets although the command failed.
    pub fn stdout(&self) -> Option<&str> {
        match self {
            CliError::WithOutput { stdout, .. } => Some(stdout),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "the gateway did not answer in time"
        } else if e.is_connect() {
            "cannot connect to the gateway"
        } else {
            "the request failed"
        };
        // reqwest's Display names the URL but never the body or headers, so no secret leaks here;
        // the innermost cause ("connection refused", a broken pipe) is what a user can act on.
        let mut innermost = None;
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            innermost = Some(c);
            cause = c.source();
        }
        match innermost {
            Some(c) => CliError::Unreachable(format!("{what} ({e}: {c})")),
            None => CliError::Unreachable(format!("{what} ({e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_gives_code_and_detail() {
        let body = br#"{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no app x"}"#;
        let e = CliError::from_reply(404, body);
        assert_eq!(e.to_string(), "not_found: no app x");
        assert_eq!(e.exit_code(), EXIT_NOT_FOUND);
    }

    #[test]
    fn exit_codes_by_status() {
        let api = |status, code: &str| CliError::Api { status, code: code.into(), detail: String::new() };
        assert_eq!(api(400, "invalid_grant").exit_code(), EXIT_AUTH);
        assert_eq!(api(401, "token_expired").exit_code(), EXIT_AUTH);
        assert_eq!(api(403, "forbidden").exit_code(), EXIT_AUTH);
        assert_eq!(api(409, "already_exists").exit_code(), EXIT_CONFLICT);
        assert_eq!(api(422, "validation_failed").exit_code(), EXIT_INVALID);
        assert_eq!(api(400, "malformed_json").exit_code(), EXIT_INVALID);
        assert_eq!(api(503, "service_unavailable").exit_code(), EXIT_UNAVAILABLE);
        assert_eq!(api(429, "rate_limited").exit_code(), EXIT_UNAVAILABLE);
        assert_eq!(api(415, "unsupported_media_type").exit_code(), EXIT_OTHER);
        assert_eq!(api(413, "package_too_large").exit_code(), EXIT_OTHER);
        assert_eq!(api(409, "package_version_exists").exit_code(), EXIT_CONFLICT);
        assert_eq!(CliError::TaskFailed("x".into()).exit_code(), EXIT_TASK_FAILED);
        let waited = CliError::TimedOut { code: "wait_timeout", detail: "task 3 is RUNNING".into() };
        assert_eq!(waited.to_string(), "wait_timeout: task 3 is RUNNING");
        assert_eq!(waited.exit_code(), EXIT_UNAVAILABLE);
        let ended = CliError::DeploymentEnded { code: "deployment_failure".into(), detail: "x".into() };
        assert_eq!(ended.exit_code(), EXIT_TASK_FAILED);
    }

    #[test]
    fn an_error_with_output_keeps_its_message_and_code() {
        let e = CliError::TimedOut { code: "wait_timeout", detail: "still RUNNING".into() }
            .with_output("{}\n".into());
        assert_eq!(e.to_string(), "wait_timeout: still RUNNING");
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
        assert_eq!(e.stdout(), Some("{}\n"));
        assert_eq!(CliError::Invalid("x".into()).stdout(), None);
    }

    #[test]
    fn non_problem_body_is_still_one_line() {
        let e = CliError::from_reply(502, b"<html>bad gateway</html>\n");
        assert_eq!(e.to_string(), "http_502: <html>bad gateway</html>");
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
    }
}
