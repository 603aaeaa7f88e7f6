//! `--wait`: polls `GET /v1/deployments/{id}` until the deployment ends, printing on stderr a
//! line per change ([`super::progress`]).

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use sw_contracts::workflow::DeploymentDetailOut;
use tokio::time::Instant;

use super::progress::{self, Verdict};
use super::{details, path};
use crate::client::Client;
use crate::error::{CliError, EXIT_UNAVAILABLE};
use crate::output::{self, Output, decode};

/// Time a poll gets even when the deadline is nearer.
const LAST_POLL_GRACE: Duration = Duration::from_secs(5);

/// Prints a progress line on stderr (unless `--json` or `--quiet`).
pub(super) fn note(out: Output, line: &str) {
    if out.notes {
        // A closed stderr is no reason to stop following the deployment.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Follows deployment `id` for at most `max`. Returns what stdout gets when it succeeds (the final
/// deployment: its JSON, or its details); when it ends otherwise or `max` passes, the error carries
/// that output too. Unavailability while polling (a restarting gateway) is retried until `max`.
pub(super) async fn follow(
    client: &mut Client,
    id: u64,
    max: Duration,
    out: Output,
) -> Result<String, CliError> {
    let path = path(id);
    let deadline = Instant::now() + max;
    let mut seen: Option<(DeploymentDetailOut, Value)> = None;
    let mut last_error: Option<CliError> = None;
    let mut polls: u32 = 0;
    loop {
        // The last poll may overrun the deadline a little rather than be cut off as it starts.
        let remaining = deadline.saturating_duration_since(Instant::now()).max(LAST_POLL_GRACE);
        match tokio::time::timeout(remaining, client.call(Method::GET, &path, None::<&()>, None)).await {
            Err(_) => {}
            Ok(Ok(Some(v))) => {
                let detail: DeploymentDetailOut = decode(v.clone())?;
                for line in progress::changes(seen.as_ref().map(|(d, _)| d), &detail) {
                    note(out, &line);
                }
                let verdict = progress::verdict(&detail.deployment);
                match verdict {
                    Verdict::Running => {}
                    Verdict::Succeeded => return Ok(final_text(&detail, &v, out)),
                    Verdict::Ended(e) => return Err(e.with_output(final_text(&detail, &v, out))),
                }
                seen = Some((detail, v));
                last_error = None;
            }
            Ok(Ok(None)) => return Err(CliError::Unexpected("the reply has no body".into())),
            Ok(Err(e)) if e.exit_code() == EXIT_UNAVAILABLE => last_error = Some(e),
            Ok(Err(e)) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(id, max, seen.as_ref(), last_error, out));
        }
        tokio::time::sleep(progress::poll_interval(polls).min(deadline - now)).await;
        polls = polls.saturating_add(1);
    }
}

/// What stdout gets at the end: the deployment's JSON with `--json`, else its details.
fn final_text(d: &DeploymentDetailOut, v: &Value, out: Output) -> String {
    if out.json { output::json(v) } else { details(d) }
}

/// `wait_timeout`, naming the state it is still in, with the last view on stdout.
fn timed_out(
    id: u64,
    max: Duration,
    seen: Option<&(DeploymentDetailOut, Value)>,
    last_error: Option<CliError>,
    out: Output,
) -> CliError {
    let state = match seen {
        Some((d, _)) if d.workflow.state == "SUSPEND" => {
            format!("{} ({})", d.deployment.state, progress::suspended_hint(&d.workflow))
        }
        Some((d, _)) => d.deployment.state.clone(),
        None => "unknown".into(),
    };
    let last = last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default();
    let e = CliError::TimedOut {
        code: "wait_timeout",
        detail: format!(
            "deployment {id} is still {state} after {} s{last}; it keeps running: see `swcli deployment get {id}`",
            max.as_secs()
        ),
    };
    match seen {
        Some((d, v)) => e.with_output(final_text(d, v, out)),
        None => e,
    }
}
