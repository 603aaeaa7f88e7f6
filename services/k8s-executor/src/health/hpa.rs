//! HorizontalPodAutoscaler: judged by its conditions.
//!
//! `autoscaling/v2` keeps them in `status.conditions`; `autoscaling/v1` has no such field and the
//! API server carries them in the `autoscaling.alpha.kubernetes.io/conditions` annotation as a
//! JSON string.

use serde_json::Value;

use super::fields::{Condition, Fields};
use super::{Assessment, FieldError, Health, Object};

const V1_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// Reasons that mean the autoscaler cannot do its job: it cannot read or update the scale of its
/// target, cannot read the metric it scales on, or its target's selector is invalid.
const DEGRADED: [(&str, &str); 4] = [
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];

/// Walks the conditions in the order the controller writes them (`AbleToScale`, `ScalingActive`,
/// `ScalingLimited`), as gitops-engine does: the first one that decides wins — a degraded reason
/// above → Degraded with its message; `AbleToScale` or `ScalingLimited` true → Healthy. No
/// deciding condition (a new autoscaler) → Progressing.
///
/// The order matters on purpose: a working `AbleToScale` makes the autoscaler healthy even while
/// `ScalingActive` reports missing metrics, which is the normal state for the first minute of new
/// pods and must not fail a rollout.
pub(super) fn hpa(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let parsed: Value;
    let conditions = if obj.version == "v1" {
        let annotation = obj.fields.at(&["metadata", "annotations"])?.str(V1_CONDITIONS_ANNOTATION)?;
        let Some(annotation) = annotation else {
            return Ok(waiting());
        };
        parsed = match serde_json::from_str::<Value>(annotation) {
            Ok(value) => serde_json::json!({ "conditions": value }),
            Err(e) => {
                let message = format!("cannot read the {V1_CONDITIONS_ANNOTATION} annotation: {e}");
                return Ok(Assessment::new(Health::Unknown, message));
            }
        };
        Fields::root(&parsed).conditions()?
    } else {
        obj.fields.object("status")?.conditions()?
    };
    Ok(judge(&conditions))
}

fn judge(conditions: &[Condition<'_>]) -> Assessment {
    for condition in conditions {
        if DEGRADED.contains(&(condition.kind, condition.reason)) {
            return Assessment::new(Health::Degraded, condition.message);
        }
        if matches!(condition.kind, "AbleToScale" | "ScalingLimited") && condition.is_true() {
            return Assessment::new(Health::Healthy, condition.message);
        }
    }
    waiting()
}

fn waiting() -> Assessment {
    Assessment::new(Health::Progressing, "Waiting to Autoscale")
}
