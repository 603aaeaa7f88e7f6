//! Workloads of the `apps` group: Deployment, StatefulSet, DaemonSet, ReplicaSet.
//!
//! Each is healthy once its controller has observed the latest generation (`metadata.generation`
//! against `status.observedGeneration`) and every replica it wants runs the new template and is
//! available — what `kubectl rollout status` waits for, with its messages. Counts the API server
//! omits are zero; `spec.replicas` absent is the API server's default of 1.

use super::fields::{Fields, find};
use super::{Assessment, FieldError, Health, Object};

/// A Deployment: paused → Suspended; generation not yet observed → Progressing; the `Progressing`
/// condition with reason `ProgressDeadlineExceeded` → Degraded (the controller gave up on the
/// rollout); replicas not yet updated, old replicas still terminating, updated replicas not yet
/// available → Progressing; otherwise Healthy.
pub(super) fn deployment(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    if spec.bool("paused")?.unwrap_or(false) {
        return Ok(Assessment::new(Health::Suspended, "Deployment is paused"));
    }
    if count(&status, "observedGeneration")? < generation(&obj.fields)? {
        return Ok(progressing(
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        ));
    }
    let conditions = status.conditions()?;
    if find(&conditions, "Progressing").is_some_and(|c| c.reason == "ProgressDeadlineExceeded") {
        let message = format!("deployment {:?} exceeded its progress deadline", obj.name);
        return Ok(Assessment::new(Health::Degraded, message));
    }
    let desired = desired_replicas(&spec)?;
    let replicas = count(&status, "replicas")?;
    let updated = count(&status, "updatedReplicas")?;
    let available = count(&status, "availableReplicas")?;
    let waiting = |what: String| {
        progressing(format!("Waiting for deployment {:?} rollout to finish: {what}", obj.name))
    };
    Ok(if updated < desired {
        waiting(format!("{updated} out of {desired} new replicas have been updated..."))
    } else if replicas > updated {
        waiting(format!("{} old replicas are pending termination...", replicas - updated))
    } else if available < updated {
        waiting(format!("{available} of {updated} updated replicas are available..."))
    } else {
        Assessment::healthy()
    })
}

/// A StatefulSet: generation not yet observed (an `observedGeneration` of 0 included, as kubectl
/// does) → Progressing; fewer ready pods than wanted → Progressing; with `RollingUpdate` (the
/// default), fewer updated pods than the ones at or above the partition → Progressing, and
/// without a partition the current revision must have caught up with the update revision;
/// `OnDelete` → Healthy once every pod is ready, since pods only change when someone deletes them.
///
/// gitops-engine returns Healthy for any RollingUpdate set whose `rollingUpdate` block is present
/// — and the API server always defaults it to `{partition: 0}` — so it never compares revisions.
/// Here the revisions are compared when the partition is 0, where they must converge; with a
/// partition above 0 the pods below it stay at the old revision by design.
pub(super) fn stateful_set(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    let observed = count(&status, "observedGeneration")?;
    if observed == 0 || observed < generation(&obj.fields)? {
        return Ok(progressing("Waiting for statefulset spec update to be observed..."));
    }
    let desired = desired_replicas(&spec)?;
    let ready = count(&status, "readyReplicas")?;
    if ready < desired {
        return Ok(progressing(format!("Waiting for {} pods to be ready...", desired - ready)));
    }
    let strategy = spec.object("updateStrategy")?;
    if strategy.str("type")? == Some("OnDelete") {
        return Ok(Assessment::healthy());
    }
    let partition = strategy.object("rollingUpdate")?.int("partition")?.unwrap_or(0);
    let updated = count(&status, "updatedReplicas")?;
    let wanted_updated = desired.saturating_sub(partition).max(0);
    if updated < wanted_updated {
        return Ok(progressing(format!(
            "Waiting for partitioned roll out to finish: {updated} out of {wanted_updated} new pods have been updated..."
        )));
    }
    if partition > 0 {
        return Ok(Assessment::new(
            Health::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        ));
    }
    let current_revision = status.str("currentRevision")?.unwrap_or_default();
    let update_revision = status.str("updateRevision")?.unwrap_or_default();
    if current_revision != update_revision {
        return Ok(progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
        )));
    }
    Ok(Assessment::healthy())
}

/// A DaemonSet: generation not yet observed → Progressing; `OnDelete` → Healthy once observed
/// (pods change only when deleted); pods on the nodes that should run one not all updated or
/// available → Progressing; otherwise Healthy.
pub(super) fn daemon_set(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    if count(&status, "observedGeneration")? < generation(&obj.fields)? {
        return Ok(progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        ));
    }
    if spec.object("updateStrategy")?.str("type")? == Some("OnDelete") {
        return Ok(Assessment::healthy());
    }
    let desired = count(&status, "desiredNumberScheduled")?;
    let updated = count(&status, "updatedNumberScheduled")?;
    let available = count(&status, "numberAvailable")?;
    let waiting = |what: String| {
        progressing(format!("Waiting for daemon set {:?} rollout to finish: {what}", obj.name))
    };
    Ok(if updated < desired {
        waiting(format!("{updated} out of {desired} new pods have been updated..."))
    } else if available < desired {
        waiting(format!("{available} of {desired} updated pods are available..."))
    } else {
        Assessment::healthy()
    })
}

/// A ReplicaSet: generation not yet observed → Progressing; the `ReplicaFailure` condition true
/// (pods cannot be created: quota, admission) → Degraded with its message; fewer available
/// replicas than wanted → Progressing; otherwise Healthy.
pub(super) fn replica_set(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let spec = obj.fields.object("spec")?;
    let status = obj.fields.object("status")?;
    if count(&status, "observedGeneration")? < generation(&obj.fields)? {
        return Ok(progressing(
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        ));
    }
    let conditions = status.conditions()?;
    if let Some(failure) = find(&conditions, "ReplicaFailure").filter(|c| c.is_true()) {
        return Ok(Assessment::new(Health::Degraded, failure.message));
    }
    let desired = desired_replicas(&spec)?;
    let available = count(&status, "availableReplicas")?;
    if available < desired {
        return Ok(progressing(format!(
            "Waiting for rollout to finish: {available} out of {desired} new replicas are available..."
        )));
    }
    Ok(Assessment::healthy())
}

fn progressing(message: impl Into<String>) -> Assessment {
    Assessment::new(Health::Progressing, message)
}

fn generation(fields: &Fields<'_>) -> Result<i64, FieldError> {
    Ok(fields.object("metadata")?.int("generation")?.unwrap_or(0))
}

fn desired_replicas(spec: &Fields<'_>) -> Result<i64, FieldError> {
    Ok(spec.int("replicas")?.unwrap_or(1))
}

fn count(fields: &Fields<'_>, key: &str) -> Result<i64, FieldError> {
    Ok(fields.int(key)?.unwrap_or(0))
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;
