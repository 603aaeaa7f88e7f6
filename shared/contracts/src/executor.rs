//! Commands to the k8s-executor and the results it reports.
//!
//! The workflow service puts a [`K8sApplyCommand`] or [`K8sDeleteCommand`] on
//! `{prefix}.cmd.k8s.apply|delete` (stream `{PREFIX}_COMMANDS`, work-queue retention); an executor
//! replica takes it, renders the component into Kubernetes objects, applies them and reports
//! `executor.component.*` events with a [`ComponentResult`]. A command is identified by its
//! `commandId` (redeliveries carry the same one) and ordered per component instance by `revision`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ids::AppId;

/// Component types the executor deploys.
pub const EXECUTOR_COMPONENT_TYPES: [&str; 3] = ["K8S_MICROSERVICE", "K8S_JOB", "K8S_MANIFESTS"];

/// Where a component instance lives and which one it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentTarget {
    /// The appmeta cluster id.
    pub cluster_id: String,
    /// The Kubernetes namespace objects go to.
    pub namespace: String,
    pub app_id: AppId,
    /// The appmeta stage (e.g. `prod`), recorded in labels.
    #[serde(default)]
    pub stage_id: Option<String>,
    /// The app instance name (one deployed copy of the app).
    pub app_instance: String,
    /// The component instance name, unique within the app instance (usually the component name).
    pub component_instance: String,
}

/// A trait attached to a component, as SREWorks writes them (`name` such as `service.trait.abm.io`,
/// `gateway.trait.abm.io`, `ingress`, `env`, `resources`…, and its `spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraitSpec {
    pub name: String,
    /// `pre`, `post` or absent, as in SREWorks; the executor applies every trait with the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub spec: Value,
}

/// A component with its parameters already rendered (no templates left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderedComponent {
    /// `K8S_MICROSERVICE`, `K8S_JOB`, `K8S_MANIFESTS` (a list of raw objects), or a type the
    /// executor refuses (`HELM`, …) with reason `unsupported_component_type`.
    pub component_type: String,
    pub component_name: String,
    #[serde(default)]
    pub package_version: Option<String>,
    /// For `K8S_MICROSERVICE` / `K8S_JOB`: the SREWorks workload `spec` (kind, replicas,
    /// containers, initContainers, env, ports…); for `K8S_MANIFESTS`: `{"manifests": [...]}`.
    #[schema(value_type = Object)]
    pub workload: Value,
    #[serde(default)]
    pub traits: Vec<TraitSpec>,
}

/// `sw.cmd.k8s.apply`: make the cluster hold this revision of the component instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
// No `deny_unknown_fields`: serde does not support it together with `flatten`.
#[serde(rename_all = "camelCase")]
pub struct K8sApplyCommand {
    /// Idempotency key: a redelivered command carries the same id.
    pub command_id: String,
    #[serde(flatten)]
    pub target: ComponentTarget,
    /// Increases with every change of the component instance; an older revision than the last
    /// applied one is refused.
    pub revision: u64,
    /// How long to wait for the objects to become healthy before reporting `failed` (`Timeout`).
    pub health_deadline_secs: u64,
    pub component: RenderedComponent,
}

/// `sw.cmd.k8s.delete`: remove every object the component instance owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K8sDeleteCommand {
    pub command_id: String,
    #[serde(flatten)]
    pub target: ComponentTarget,
    pub revision: u64,
}

/// Health in Argo CD's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
pub enum Health {
    Healthy,
    Progressing,
    Degraded,
    Suspended,
    Missing,
    Unknown,
}

/// One Kubernetes object the executor applied, pruned or watched.
// Ordered (apiVersion, kind, namespace, name) so the executor's inventory keeps sets of them in a
// stable order; a plain comment so the published schemas do not change.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// The payload of every `executor.component.*` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentResult {
    /// The command this result answers.
    pub command_id: String,
    #[serde(flatten)]
    pub target: ComponentTarget,
    pub revision: u64,
    /// The aggregated health of the component's objects (for `applied`: as first seen).
    pub health: Health,
    /// Machine reason for `failed`/`degraded`: `Timeout`, `StaleRevision`, `InvalidComponent`,
    /// `unsupported_component_type`, `ApplyConflict`, `ClusterUnavailable`, `Forbidden`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The objects of this revision.
    #[serde(default)]
    pub objects: Vec<ObjectRef>,
    /// Objects of the previous revision deleted because this one no longer renders them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<ObjectRef>,
}

/// The answer of `POST /v1/clusters/{clusterId}/probe` (the executor's `clusters.probe`): whether
/// the k8s-executor reaches the cluster's API server with the stored credentials right now.
///
/// `reachable: false` is still a successful probe: the API server is down, refused the
/// credentials or failed TLS, and `message` says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProbe {
    /// The appmeta cluster id.
    pub cluster_id: String,
    /// Whether the API server answered `GET /version`.
    pub reachable: bool,
    /// The API server's `gitVersion` (e.g. `v1.31.2`) when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// How long the probe took, in milliseconds (connecting included).
    pub latency_ms: u64,
    /// Why the cluster is not reachable (or a note on an odd answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
