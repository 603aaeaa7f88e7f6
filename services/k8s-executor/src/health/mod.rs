//! Health of Kubernetes objects in Argo CD's vocabulary.
//!
//! The executor watches the objects it applied and reports the component's health. This module is
//! the pure half of that: [`assess`] reads one object as the API server returns it (`metadata`,
//! `spec`, `status`) and answers a [`Health`] with a message; [`aggregate`] folds the objects of a
//! component into one answer, worst first; [`Deadline`] decides when a component that is still
//! not healthy has waited long enough to be reported `failed` with reason `Timeout`.
//!
//! The checks follow the semantics of Argo CD's gitops-engine (`pkg/health`), which in turn follow
//! `kubectl rollout status`: a workload is healthy when its controller has observed the latest
//! generation and every replica is updated and available. Kinds without a check (ConfigMap,
//! Secret, ServiceAccount, custom resources…) are healthy as soon as they exist. Where this module
//! departs from gitops-engine the check says so and why.
//!
//! Reading is strict about types, as Argo CD's conversion to typed structs is: a status field of
//! the wrong JSON type makes the object `Unknown` with a message naming the field, never a silent
//! zero.

mod apps;
mod deadline;
mod fields;
mod hpa;
mod job;
mod network;
mod pod;
mod storage;

use serde_json::Value;
pub use sw_contracts::executor::Health;

pub use self::deadline::{Deadline, TIMEOUT_REASON, Verdict};
use self::fields::{FieldError, Fields};

/// The health of one object or of a whole component, with a human explanation when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub health: Health,
    /// What the object is waiting for or why it failed, in the words `kubectl` or the object's own
    /// status uses. `None` when there is nothing to add (most healthy objects).
    pub message: Option<String>,
}

impl Assessment {
    /// An assessment with `message`; an empty message is stored as `None`.
    pub fn new(health: Health, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { health, message: (!message.is_empty()).then_some(message) }
    }

    /// Healthy with nothing to say.
    pub fn healthy() -> Self {
        Self { health: Health::Healthy, message: None }
    }

    /// The object does not exist in the cluster (the API server answered 404).
    pub fn missing() -> Self {
        Self::new(Health::Missing, "object not found")
    }
}

/// The health of `obj`, an object as the API server returns it. `Value::Null` stands for an object
/// the API server does not have, which is [`Health::Missing`].
pub fn assess(obj: &Value) -> Assessment {
    match obj {
        Value::Null => Assessment::missing(),
        Value::Object(_) => assess_object(obj),
        _ => Assessment::new(Health::Unknown, "not a Kubernetes object: expected a JSON object"),
    }
}

/// The health of a component made of `items`: the worst of them by [`severity`], with the
/// messages of every item at that level joined by `"; "`. No items is healthy (a component that
/// renders nothing has nothing to wait for, as an Argo CD application without resources).
pub fn aggregate(items: &[Assessment]) -> Assessment {
    let Some(worst) = items.iter().map(|a| a.health).max_by_key(|h| severity(*h)) else {
        return Assessment::healthy();
    };
    let mut messages: Vec<&str> = Vec::new();
    for message in items.iter().filter(|a| a.health == worst).filter_map(|a| a.message.as_deref()) {
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    Assessment::new(worst, messages.join("; "))
}

/// How bad `health` is, for [`aggregate`]: Healthy 0 < Suspended 1 < Progressing 2 < Unknown 3 <
/// Missing 4 < Degraded 5.
///
/// This is Argo CD's `IsWorse` order (`Healthy < Suspended < Progressing < Missing < Degraded <
/// Unknown`) with one deliberate change: Argo CD ranks `Unknown` worst because its UI headline
/// should be the most cautious one for a human. For the executor the aggregate decides which event
/// is sent, and a definite failure (a crash loop, an exceeded progress deadline) carries an
/// actionable message that must not be hidden behind a sibling whose status could not be read at
/// that moment (a CRD mid-upgrade, a field of an unexpected type). `Missing` outranks `Unknown`
/// for the same reason: an object that should exist and does not is a fact, `Unknown` is the
/// absence of one. `Unknown` still outranks `Progressing` and `Suspended`: an object we cannot
/// read cannot be said to be making progress. `Suspended` sits just above `Healthy`: the object is
/// as its spec asks (paused, suspended) but not running.
pub fn severity(health: Health) -> u8 {
    match health {
        Health::Healthy => 0,
        Health::Suspended => 1,
        Health::Progressing => 2,
        Health::Unknown => 3,
        Health::Missing => 4,
        Health::Degraded => 5,
    }
}

/// Whether `new` is worse than `current` by [`severity`].
pub fn is_worse(current: Health, new: Health) -> bool {
    severity(new) > severity(current)
}

/// What a kind's check gets: the object's fields plus the identity it is reported by.
struct Object<'a> {
    fields: Fields<'a>,
    name: &'a str,
    version: &'a str,
}

type Check = fn(&Object<'_>) -> Result<Assessment, FieldError>;

fn assess_object(obj: &Value) -> Assessment {
    let root = Fields::root(obj);
    let identity = (|| {
        let api_version = root.str("apiVersion")?;
        let kind = root.str("kind")?;
        let metadata = root.object("metadata")?;
        let name = metadata.str("name")?.unwrap_or_default();
        let deleting = metadata.str("deletionTimestamp")?.is_some();
        Ok::<_, FieldError>((api_version, kind, name, deleting))
    })();
    let (api_version, kind, name, deleting) = match identity {
        Ok((Some(api_version), Some(kind), name, deleting)) => (api_version, kind, name, deleting),
        Ok(_) => return Assessment::new(Health::Unknown, "object has no apiVersion or kind"),
        Err(e) => return Assessment::new(Health::Unknown, format!("cannot read object: {e}")),
    };
    // Being deleted outranks whatever the status says: the object is on its way out, and the
    // executor only deletes what it prunes, so this is the end of a prune or someone else's hand.
    if deleting {
        return Assessment::new(Health::Progressing, "Pending deletion");
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(check) = check_for(group, kind) else {
        return Assessment::healthy();
    };
    check(&Object { fields: root, name, version }).unwrap_or_else(|e| {
        Assessment::new(Health::Unknown, format!("cannot read the status of {kind} {name:?}: {e}"))
    })
}

fn check_for(group: &str, kind: &str) -> Option<Check> {
    let check: Check = match (group, kind) {
        ("apps", "Deployment") => apps::deployment,
        ("apps", "StatefulSet") => apps::stateful_set,
        ("apps", "DaemonSet") => apps::daemon_set,
        ("apps", "ReplicaSet") => apps::replica_set,
        ("batch", "Job") => job::job,
        ("", "Pod") => pod::pod,
        ("", "Service") => network::service,
        ("networking.k8s.io" | "extensions", "Ingress") => network::ingress,
        ("", "PersistentVolumeClaim") => storage::pvc,
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::hpa,
        _ => return None,
    };
    Some(check)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
