//! `batch/v1` Job: healthy when it completed, degraded when it failed.
//!
//! A Job is a finite run, so "healthy" means the run is over and succeeded; until then it is
//! Progressing, and the executor's deadline bounds how long it may take.

use super::fields::Condition;
use super::{Assessment, FieldError, Health, Object};

/// `Failed` (or `FailureTarget`, which the Job controller sets while it terminates the pods of a
/// Job that has already failed) true → Degraded with the condition's message; `Complete` true →
/// Healthy; `Suspended` true or `spec.suspend` → Suspended; otherwise Progressing.
///
/// Unlike gitops-engine this only counts conditions whose status is `True`: a resumed Job carries
/// `Suspended` with status `False`, which gitops-engine reads as finished and reports Healthy
/// while the Job is still running.
pub(super) fn job(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    let conditions = status.conditions()?;
    let holds = |kind: &str| conditions.iter().find(|c| c.kind == kind && c.is_true());
    if let Some(failed) = holds("Failed").or_else(|| holds("FailureTarget")) {
        return Ok(Assessment::new(Health::Degraded, explain(failed, "job failed")));
    }
    if let Some(complete) = holds("Complete") {
        return Ok(Assessment::new(Health::Healthy, complete.message));
    }
    if let Some(suspended) = holds("Suspended") {
        return Ok(Assessment::new(Health::Suspended, explain(suspended, "job is suspended")));
    }
    if spec.bool("suspend")?.unwrap_or(false) {
        return Ok(Assessment::new(Health::Suspended, "job is suspended"));
    }
    let active = status.int("active")?.unwrap_or(0);
    let succeeded = status.int("succeeded")?.unwrap_or(0);
    let failed = status.int("failed")?.unwrap_or(0);
    Ok(Assessment::new(
        Health::Progressing,
        format!(
            "Waiting for job {:?} to complete: {active} active, {succeeded} succeeded, {failed} failed pods",
            obj.name
        ),
    ))
}

/// The condition's message, else its reason, else `fallback`: the Job controller sets `reason`
/// (`BackoffLimitExceeded`, `DeadlineExceeded`) always but `message` not in every version.
fn explain(condition: &Condition<'_>, fallback: &str) -> String {
    match (condition.reason, condition.message) {
        (_, m) if !m.is_empty() => m.to_owned(),
        (r, _) if !r.is_empty() => r.to_owned(),
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
