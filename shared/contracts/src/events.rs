//! CloudEvents 1.0 (JSON structured mode) and the catalogue of every event the platform publishes.
//!
//! An event named `appmeta.app.created` is published on subject `{prefix}.events.appmeta.app.created`
//! (stream `{PREFIX}_EVENTS`) with CloudEvent `type` `sreworks.appmeta.app.created`, and its JSON
//! Schema is `proto-schemas/events/appmeta.app.created.json`. The catalogue below is the single list
//! those files and the AsyncAPI document are generated from.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prefix of every CloudEvent `type`.
pub const TYPE_PREFIX: &str = "sreworks.";

/// A CloudEvent in JSON structured mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEvent<T = Value> {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique id (UUIDv7); also the `Nats-Msg-Id`, so JetStream drops duplicates.
    pub id: String,
    /// The producing service, e.g. `/sreworks/appmeta`.
    pub source: String,
    /// `sreworks.<service>.<entity>.<action>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The id of the resource the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the change happened.
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// W3C trace context of the request that caused the event (CloudEvents distributed tracing extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The event payload.
    pub data: T,
}

impl CloudEvent<Value> {
    /// A new event named `name` (e.g. `appmeta.app.created`) from `service`.
    pub fn new(service: &str, name: &str, subject: Option<String>, data: impl Serialize) -> Self {
        Self {
            specversion: "1.0".into(),
            id: uuid::Uuid::now_v7().to_string(),
            source: format!("/sreworks/{service}"),
            type_: format!("{TYPE_PREFIX}{name}"),
            subject,
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            traceparent: None,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }

    /// The event name (`type` without the `sreworks.` prefix), which is also the subject suffix.
    pub fn name(&self) -> &str {
        self.type_.strip_prefix(TYPE_PREFIX).unwrap_or(&self.type_)
    }
}

/// One entry of the event catalogue.
#[derive(Debug, Clone)]
pub struct EventSpec {
    /// `service.entity.action`, the subject suffix after `{prefix}.events.`.
    pub name: &'static str,
    /// What it announces.
    pub description: &'static str,
    /// Schema of the `data` member.
    pub data_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

fn schema_of<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

macro_rules! ev {
    ($name:literal, $desc:literal, $ty:ty) => {
        EventSpec { name: $name, description: $desc, data_schema: schema_of::<$ty> }
    };
}

/// Every event type the platform publishes.
pub fn catalogue() -> Vec<EventSpec> {
    use crate::appmeta::*;
    use crate::{auth, packages, workflow};
    vec![
        ev!("appmeta.app.created", "An application was created.", AppOut),
        ev!("appmeta.app.updated", "An application's fields changed.", AppOut),
        ev!("appmeta.app.deleted", "An application (and its components) was deleted.", AppDeleted),
        ev!("appmeta.component.created", "A component was added to an application.", ComponentOut),
        ev!("appmeta.component.updated", "A component changed.", ComponentOut),
        ev!("appmeta.component.deleted", "A component was removed.", ComponentDeleted),
        ev!("appmeta.namespace.created", "A namespace was created.", NamespaceOut),
        ev!("appmeta.namespace.updated", "A namespace changed.", NamespaceOut),
        ev!("appmeta.namespace.deleted", "A namespace was deleted.", NamespaceDeleted),
        ev!("appmeta.stage.created", "A stage was created in a namespace.", StageOut),
        ev!("appmeta.stage.updated", "A stage changed.", StageOut),
        ev!("appmeta.stage.deleted", "A stage was deleted.", StageDeleted),
        ev!(
            "appmeta.cluster.created",
            "A cluster was registered (credentials are never in events).",
            ClusterOut
        ),
        ev!("appmeta.cluster.updated", "A cluster changed.", ClusterOut),
        ev!("appmeta.cluster.deleted", "A cluster was removed.", ClusterDeleted),
        ev!(
            "auth.user.created",
            "A user was created (never carries the password or its hash).",
            auth::UserOut
        ),
        ev!(
            "auth.user.updated",
            "A user's fields, password, disabled flag or role bindings changed.",
            auth::UserOut
        ),
        ev!("auth.user.deleted", "A user was deleted and their refresh tokens revoked.", auth::UserDeleted),
        ev!(
            "auth.client.created",
            "An OAuth client was registered (never carries the secret or its hash).",
            auth::ClientOut
        ),
        ev!("auth.client.updated", "An OAuth client's role bindings or secret changed.", auth::ClientOut),
        ev!(
            "auth.client.deleted",
            "An OAuth client was deleted and its refresh tokens revoked.",
            auth::ClientDeleted
        ),
        ev!(
            "auth.key.rotated",
            "A new signing key became active; the old one still verifies until its tokens expire.",
            auth::SigningKeyOut
        ),
        ev!(
            "package.app.imported",
            "An app package was imported (uploaded as a zip), or re-imported over the same version with `force`.",
            packages::AppPackageOut
        ),
        ev!("package.app.built", "A build task assembled a new app package.", packages::AppPackageOut),
        ev!("package.app.deleted", "An app package and its zip were deleted.", packages::AppPackageDeleted),
        ev!(
            "package.task.created",
            "A build task was accepted; it runs asynchronously.",
            packages::AppPackageTaskOut
        ),
        ev!(
            "package.task.running",
            "A worker started (or, after a crash, restarted) a build task.",
            packages::AppPackageTaskOut
        ),
        ev!(
            "package.task.succeeded",
            "A build task finished; `appPackageId` names the package.",
            packages::AppPackageTaskOut
        ),
        ev!(
            "package.task.failed",
            "A build task failed; `errorMessage` says why.",
            packages::AppPackageTaskOut
        ),
        ev!(
            "executor.component.applied",
            "The k8s-executor applied a revision of a component instance (server-side apply); health follows.",
            crate::executor::ComponentResult
        ),
        ev!(
            "executor.component.healthy",
            "Every object of the component instance's revision is healthy.",
            crate::executor::ComponentResult
        ),
        ev!(
            "executor.component.degraded",
            "An object of the component instance turned Degraded after it had been applied.",
            crate::executor::ComponentResult
        ),
        ev!(
            "executor.component.failed",
            "A command could not be carried out (`reason`: Timeout, StaleRevision, InvalidComponent, unsupported_component_type, ApplyConflict, ClusterUnavailable, …).",
            crate::executor::ComponentResult
        ),
        ev!(
            "executor.component.deleted",
            "Every object the component instance owned was deleted.",
            crate::executor::ComponentResult
        ),
        ev!(
            "deployment.app.created",
            "A deployment was created (state CREATED).",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.component-checking",
            "A deployment entered state COMPONENT_CHECKING.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.processing-component",
            "A deployment entered state PROCESSING_COMPONENT.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.waiting-component",
            "A deployment entered state WAITING_COMPONENT.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.backup-checking",
            "A deployment entered state BACKUP_CHECKING.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.backing-up",
            "A deployment entered state BACKING_UP.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.app.processing",
            "A deployment entered state PROCESSING.",
            workflow::DeploymentChanged
        ),
        ev!("deployment.app.waiting", "A deployment entered state WAITING.", workflow::DeploymentChanged),
        ev!(
            "deployment.app.wait-for-op",
            "A deployment entered state WAIT_FOR_OP.",
            workflow::DeploymentChanged
        ),
        ev!("deployment.app.succeeded", "A deployment entered state SUCCESS.", workflow::DeploymentChanged),
        ev!("deployment.app.failed", "A deployment entered state FAILURE.", workflow::DeploymentChanged),
        ev!("deployment.app.exception", "A deployment entered state EXCEPTION.", workflow::DeploymentChanged),
        ev!(
            "deployment.app.terminated",
            "A deployment entered state TERMINATED.",
            workflow::DeploymentChanged
        ),
        ev!(
            "deployment.component.created",
            "A component of a deployment was created (state CREATED).",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.processing",
            "A component of a deployment entered state PROCESSING.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.running",
            "A component of a deployment entered state RUNNING.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.wait-for-op",
            "A component of a deployment entered state WAIT_FOR_OP.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.succeeded",
            "A component of a deployment entered state SUCCESS.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.failed",
            "A component of a deployment entered state FAILURE.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.exception",
            "A component of a deployment entered state EXCEPTION.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "deployment.component.terminated",
            "A component of a deployment entered state TERMINATED.",
            workflow::DeployComponentChanged
        ),
        ev!(
            "workflow.instance.pending",
            "A workflow instance was created (state PENDING).",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.preprocessing",
            "A workflow instance entered state PREPROCESSING.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.running",
            "A workflow instance entered state RUNNING.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.suspend",
            "A workflow instance entered state SUSPEND.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.succeeded",
            "A workflow instance entered state SUCCESS.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.failed",
            "A workflow instance entered state FAILURE.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.exception",
            "A workflow instance entered state EXCEPTION.",
            workflow::WorkflowChanged
        ),
        ev!(
            "workflow.instance.terminated",
            "A workflow instance entered state TERMINATED.",
            workflow::WorkflowChanged
        ),
        ev!("workflow.task.pending", "A workflow task was created (state PENDING).", workflow::TaskChanged),
        ev!("workflow.task.running", "A workflow task entered state RUNNING.", workflow::TaskChanged),
        ev!("workflow.task.waiting", "A workflow task entered state WAITING.", workflow::TaskChanged),
        ev!(
            "workflow.task.running-suspend",
            "A workflow task entered state RUNNING_SUSPEND.",
            workflow::TaskChanged
        ),
        ev!(
            "workflow.task.waiting-suspend",
            "A workflow task entered state WAITING_SUSPEND.",
            workflow::TaskChanged
        ),
        ev!("workflow.task.succeeded", "A workflow task entered state SUCCESS.", workflow::TaskChanged),
        ev!("workflow.task.failed", "A workflow task entered state FAILURE.", workflow::TaskChanged),
        ev!("workflow.task.exception", "A workflow task entered state EXCEPTION.", workflow::TaskChanged),
        ev!("workflow.task.terminated", "A workflow task entered state TERMINATED.", workflow::TaskChanged),
        ev!(
            "bus.message.dead-lettered",
            "A consumer gave up on a message (retry limit reached or a permanent error) and moved it to the stream's dead-letter subject `sw.dlq.<stream>`.",
            crate::bus::DeadLettered
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let cat = catalogue();
        let mut names: Vec<_> = cat.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cat.len(), "duplicate event names");
        for n in names {
            let parts: Vec<_> = n.split('.').collect();
            assert_eq!(parts.len(), 3, "{n} must be service.entity.action");
            assert!(
                parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')),
                "{n}"
            );
        }
    }

    #[test]
    fn event_round_trips_in_structured_mode() {
        let ev = CloudEvent::new(
            "appmeta",
            "appmeta.app.deleted",
            Some("x".into()),
            serde_json::json!({"appId": "x"}),
        );
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "sreworks.appmeta.app.deleted");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(ev.name(), "appmeta.app.deleted");
        let back: CloudEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }
}
