//! DTOs of the appmeta service: apps, components, namespaces, stages and clusters.
//!
//! Identifiers are lowercase DNS labels ([`AppId`], [`Name`]); bodies reject unknown fields so a
//! typo in a field name is an error rather than a silently ignored setting.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::ids::{AppId, Name};

/// Free-form labels: keys up to 63 characters, values up to 255.
pub type Labels = BTreeMap<String, String>;

// ---------------------------------------------------------------- apps

/// Create an application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppIn {
    /// Lowercase DNS label, at most 63 characters; immutable.
    #[schema(example = "health")]
    pub app_id: AppId,
    /// Display name, 1–128 characters. Defaults to the appId.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    /// At most 4096 characters.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// Owning team (a lowercase DNS label); role bindings scoped to the team apply to the app.
    #[serde(default)]
    pub team: Option<Name>,
    #[serde(default)]
    pub labels: Labels,
}

/// Change an application. Absent fields stay as they are; `team: null` clears the team.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Name>)]
    #[schemars(with = "Option<String>")]
    pub team: Option<Option<Name>>,
    /// Replaces all labels.
    #[serde(default)]
    pub labels: Option<Labels>,
}

/// An application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppOut {
    pub app_id: AppId,
    pub name: String,
    pub description: Option<String>,
    pub team: Option<Name>,
    pub labels: Labels,
    /// Incremented on every change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Data of `appmeta.app.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDeleted {
    pub app_id: AppId,
}

/// Filters of `GET /v1/apps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppListQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// Only apps of this team.
    pub team: Option<String>,
    /// Substring of appId or name.
    pub search: Option<String>,
    /// `key=value`: only apps carrying this label.
    pub label: Option<String>,
}

// ---------------------------------------------------------------- components

/// The kinds of component SREWorks knows and sreworks deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComponentType {
    K8sMicroservice,
    K8sJob,
    Helm,
}

impl ComponentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentType::K8sMicroservice => "K8S_MICROSERVICE",
            ComponentType::K8sJob => "K8S_JOB",
            ComponentType::Helm => "HELM",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::K8sMicroservice, Self::K8sJob, Self::Helm].into_iter().find(|t| t.as_str() == s)
    }
}

/// A container of a microservice or job, referencing an image built elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// Container name, a lowercase DNS label.
    pub name: Name,
    /// Image reference, e.g. `registry.example.com/team/api:1.4.2`.
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Kubernetes resource requests/limits, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// 1–65535.
    pub container_port: u32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// Spec of a `K8S_MICROSERVICE` component (a Deployment and a Service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MicroserviceSpec {
    /// At least one container.
    pub containers: Vec<ContainerSpec>,
    /// Default replica count (0–1000, default 1).
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// Spec of a `K8S_JOB` component (a Job run to completion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// At least one container.
    pub containers: Vec<ContainerSpec>,
    /// Retries before the job fails (default 6, at most 100).
    #[serde(default)]
    pub backoff_limit: Option<u32>,
}

/// Spec of a `HELM` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmSpec {
    /// Chart repository URL (`https://...` or `oci://...`); absent when the chart is packaged with the app.
    #[serde(default)]
    pub repo_url: Option<String>,
    pub chart_name: String,
    #[serde(default)]
    pub chart_version: Option<String>,
    /// Default values, an object.
    #[serde(default)]
    pub values: Option<Value>,
}

/// A component's type and its typed spec: `{"componentType": "HELM", "spec": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(tag = "componentType", content = "spec")]
pub enum ComponentSpec {
    #[serde(rename = "K8S_MICROSERVICE")]
    K8sMicroservice(MicroserviceSpec),
    #[serde(rename = "K8S_JOB")]
    K8sJob(JobSpec),
    #[serde(rename = "HELM")]
    Helm(HelmSpec),
}

impl ComponentSpec {
    pub fn component_type(&self) -> ComponentType {
        match self {
            ComponentSpec::K8sMicroservice(_) => ComponentType::K8sMicroservice,
            ComponentSpec::K8sJob(_) => ComponentType::K8sJob,
            ComponentSpec::Helm(_) => ComponentType::Helm,
        }
    }
}

/// Add a component to an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentIn {
    /// Unique within the app; a lowercase DNS label.
    pub component_name: Name,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub spec: ComponentSpec,
}

/// Change a component: replace its spec (the type cannot change) or its description.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPatch {
    #[serde(default)]
    pub description: Option<String>,
    /// Must keep the component's `componentType`.
    #[serde(default, flatten)]
    pub spec: Option<ComponentSpec>,
}

/// A component of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentOut {
    pub app_id: AppId,
    pub component_name: Name,
    pub description: Option<String>,
    #[serde(flatten)]
    pub spec: ComponentSpec,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Data of `appmeta.component.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentDeleted {
    pub app_id: AppId,
    pub component_name: Name,
    pub component_type: ComponentType,
}

/// Filters of `GET /v1/apps/{appId}/components`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ComponentListQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub component_type: Option<ComponentType>,
}

// ---------------------------------------------------------------- namespaces and stages

/// Create a namespace (a deployment target grouping, e.g. `default`, `prod-cn`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceIn {
    pub namespace_id: Name,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Labels,
}

/// Change a namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<Labels>,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceOut {
    pub namespace_id: Name,
    pub name: String,
    pub description: Option<String>,
    pub labels: Labels,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Data of `appmeta.namespace.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceDeleted {
    pub namespace_id: Name,
}

/// Create a stage (e.g. `dev`, `staging`, `prod`) in a namespace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageIn {
    pub stage_id: Name,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Production stages may carry stricter policies.
    #[serde(default)]
    pub production: bool,
    #[serde(default)]
    pub labels: Labels,
}

/// Change a stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StagePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub production: Option<bool>,
    #[serde(default)]
    pub labels: Option<Labels>,
}

/// A stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageOut {
    pub namespace_id: Name,
    pub stage_id: Name,
    pub name: String,
    pub description: Option<String>,
    pub production: bool,
    pub labels: Labels,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Data of `appmeta.stage.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageDeleted {
    pub namespace_id: Name,
    pub stage_id: Name,
}

// ---------------------------------------------------------------- clusters

/// How sreworks authenticates to a cluster. Write-only: never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClusterCredentials {
    /// A bearer token (e.g. a ServiceAccount token), with the API server's CA in PEM.
    #[serde(rename_all = "camelCase")]
    Token {
        token: String,
        #[serde(default)]
        ca_cert: Option<String>,
        #[serde(default)]
        insecure_skip_tls_verify: bool,
    },
    /// A whole kubeconfig document (YAML); its current context is used.
    #[serde(rename_all = "camelCase")]
    Kubeconfig { kubeconfig: String },
}

impl ClusterCredentials {
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterCredentials::Token { .. } => "token",
            ClusterCredentials::Kubeconfig { .. } => "kubeconfig",
        }
    }
}

/// Register a Kubernetes cluster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterIn {
    pub cluster_id: Name,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `https://host:port` of the API server. Required with token credentials.
    #[serde(default)]
    pub api_url: Option<String>,
    pub credentials: ClusterCredentials,
    #[serde(default)]
    pub labels: Labels,
}

/// Change a cluster; `credentials` replaces the stored ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub credentials: Option<ClusterCredentials>,
    #[serde(default)]
    pub labels: Option<Labels>,
}

/// A cluster. Credentials are never returned; `credentialKind` says which kind is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOut {
    pub cluster_id: Name,
    pub name: String,
    pub description: Option<String>,
    pub api_url: Option<String>,
    /// `token` or `kubeconfig`.
    pub credential_kind: String,
    pub labels: Labels,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Data of `appmeta.cluster.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDeleted {
    pub cluster_id: Name,
}

/// What the k8s-executor needs to reach a cluster: the answer of appmeta's internal operation
/// `clusters.connection`, asked over NATS only (no HTTP route, not in the OpenAPI document).
///
/// The credentials stay sealed (see `sw_crypto`): only a holder of `appmeta.encryption_key`, the
/// executor, opens them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConnection {
    pub cluster_id: Name,
    /// The API server URL; `None` for kubeconfig credentials, which carry their own.
    pub api_url: Option<String>,
    /// `token` or `kubeconfig`, as in [`ClusterOut::credential_kind`].
    pub credential_kind: String,
    /// Standard base64 of the sealed credentials blob (`sw_crypto::seal_credentials`).
    pub sealed_credentials: String,
    /// The cluster's version: it changes whenever anything about the cluster does.
    pub version: i64,
}

/// `Option<Option<T>>` that tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
