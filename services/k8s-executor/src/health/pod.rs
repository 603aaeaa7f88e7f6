//! A bare Pod (raw manifests may contain one; Deployments' pods are judged through the Deployment).
//!
//! A long-running pod (`restartPolicy: Always`, the default) is healthy when it is ready; a pod
//! meant to run to completion (`OnFailure`, `Never`) is healthy when it succeeded and progressing
//! while it runs.

use super::fields::{Fields, find};
use super::{Assessment, FieldError, Health, Object};

/// With `restartPolicy: Always`, a container waiting for a reason that only repeats
/// (`CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`…: prefix
/// `Err`, suffix `Error` or `BackOff`) → Degraded, whatever the phase. Then by phase: `Pending` →
/// Progressing; `Succeeded` → Healthy; `Failed` → Degraded with the best message found; `Running`
/// → Healthy when `Ready` (restart policy Always), Degraded when not ready and a container has
/// terminated before, Progressing otherwise and for finite pods; any other phase → Unknown.
///
/// Init containers are checked for waiting reasons too (gitops-engine looks at regular containers
/// only): an init container in `CrashLoopBackOff` blocks the pod as surely as a regular one.
/// Finite pods are not judged by waiting reasons, as in gitops-engine: their phase says when they
/// failed, and a pull back-off may still resolve before the executor's deadline.
pub(super) fn pod(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    let restart_always = spec.str("restartPolicy")?.unwrap_or("Always") == "Always";
    let init_containers = status.objects("initContainerStatuses")?;
    let containers = status.objects("containerStatuses")?;
    let status_message = status.str("message")?.unwrap_or_default();

    if restart_always {
        let mut stuck = Vec::new();
        for container in init_containers.iter().chain(&containers) {
            let waiting = container.at(&["state", "waiting"])?;
            let reason = waiting.str("reason")?.unwrap_or_default();
            if reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff") {
                let name = container.str("name")?.unwrap_or_default();
                let mut line = format!("container {name:?} is waiting: {reason}");
                if let Some(message) = waiting.str("message")?.filter(|m| !m.is_empty()) {
                    line = format!("{line}: {message}");
                }
                stuck.push(line);
            }
        }
        if !stuck.is_empty() {
            return Ok(Assessment::new(Health::Degraded, stuck.join(", ")));
        }
    }

    let phase = status.str("phase")?.unwrap_or_default();
    Ok(match phase {
        "Pending" => Assessment::new(Health::Progressing, status_message),
        "Succeeded" => Assessment::new(Health::Healthy, status_message),
        "Failed" => {
            Assessment::new(Health::Degraded, failure_message(status_message, &init_containers, &containers)?)
        }
        "Running" if restart_always => {
            let conditions = status.conditions()?;
            if find(&conditions, "Ready").is_some_and(|c| c.is_true()) {
                Assessment::new(Health::Healthy, status_message)
            } else if restarted(&containers)? {
                Assessment::new(Health::Degraded, status_message)
            } else {
                Assessment::new(Health::Progressing, status_message)
            }
        }
        "Running" => Assessment::new(Health::Progressing, status_message),
        _ => Assessment::new(Health::Unknown, status_message),
    })
}

/// The pod's own message, else the first terminated container's message, `OOMKilled`, or exit
/// code.
fn failure_message(
    status_message: &str,
    init_containers: &[Fields<'_>],
    containers: &[Fields<'_>],
) -> Result<String, FieldError> {
    if !status_message.is_empty() {
        return Ok(status_message.to_owned());
    }
    for container in init_containers.iter().chain(containers) {
        let terminated = container.at(&["state", "terminated"])?;
        if let Some(message) = terminated.str("message")?.filter(|m| !m.is_empty()) {
            return Ok(message.to_owned());
        }
        if terminated.str("reason")? == Some("OOMKilled") {
            return Ok("OOMKilled".to_owned());
        }
        let exit_code = terminated.int("exitCode")?.unwrap_or(0);
        if exit_code != 0 {
            let name = container.str("name")?.unwrap_or_default();
            return Ok(format!("container {name:?} failed with exit code {exit_code}"));
        }
    }
    Ok(String::new())
}

/// Whether a container has a previous termination: a running pod that is not ready after one has
/// crashed rather than still starting.
fn restarted(containers: &[Fields<'_>]) -> Result<bool, FieldError> {
    for container in containers {
        if container.at(&["lastState", "terminated"])?.is_present() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
