//! ComponentBinders: the documents of a SREWorks `build.yaml`, parsed and checked.
//!
//! A binder says what one component of the app is: `componentType`, `componentName` and
//! `options`. We accept the SREWorks shape with one deliberate difference: SREWorks builds images
//! from git (`containers[].build`) and clones charts from git (`HELM` `options.repo`), we do
//! neither. Images are built in the user's CI and named by `image`; charts are uploaded with the
//! build (`chart.<componentName>` parts) or named by `repoUrl`/`chartName`/`chartVersion`.
//!
//! Validation walks the raw JSON value instead of deserialising it, so it can report every problem
//! with its field path in one answer rather than stopping at the first.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sw_contracts::FieldError;

use super::error::BuildError;
use super::limits::BuildLimits;

/// Multipart parts carrying a chart archive are named `chart.<componentName>`.
pub const CHART_PART_PREFIX: &str = "chart.";
/// Longest `componentName`.
pub const MAX_COMPONENT_NAME_LEN: usize = 128;

/// The component types a build can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComponentType {
    #[serde(rename = "K8S_MICROSERVICE")]
    K8sMicroservice,
    #[serde(rename = "K8S_JOB")]
    K8sJob,
    #[serde(rename = "HELM")]
    Helm,
}

impl ComponentType {
    /// Every supported type, in the order messages list them.
    pub const SUPPORTED: [ComponentType; 3] = [Self::K8sMicroservice, Self::K8sJob, Self::Helm];

    /// The SREWorks spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::K8sMicroservice => "K8S_MICROSERVICE",
            Self::K8sJob => "K8S_JOB",
            Self::Helm => "HELM",
        }
    }

    /// The type for its SREWorks spelling (exact, upper case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for ComponentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated ComponentBinder. Serialises to the SREWorks document shape
/// (`componentType`, `componentName`, `options`), so a stored binder reads back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentBinder {
    pub component_name: String,
    #[serde(flatten)]
    pub spec: ComponentSpec,
}

/// What the component is, by type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "componentType", content = "options")]
pub enum ComponentSpec {
    #[serde(rename = "K8S_MICROSERVICE")]
    Microservice(WorkloadOptions),
    #[serde(rename = "K8S_JOB")]
    Job(WorkloadOptions),
    #[serde(rename = "HELM")]
    Helm(HelmOptions),
}

impl ComponentBinder {
    pub fn component_type(&self) -> ComponentType {
        match self.spec {
            ComponentSpec::Microservice(_) => ComponentType::K8sMicroservice,
            ComponentSpec::Job(_) => ComponentType::K8sJob,
            ComponentSpec::Helm(_) => ComponentType::Helm,
        }
    }

    /// Where the component zip sits in the app package: `<TYPE>_<name>.zip`.
    pub fn relative_path(&self) -> String {
        format!("{}_{}.zip", self.component_type(), self.component_name)
    }

    /// `TYPE|name`, as SREWorks names components.
    pub fn label(&self) -> String {
        format!("{}|{}", self.component_type(), self.component_name)
    }
}

/// Options of `K8S_MICROSERVICE` and `K8S_JOB` binders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadOptions {
    /// Workload controller (microservices only; default `Deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Replica count (microservices only; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// The SREWorks single-container form of a job (`options.job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// The controllers SREWorks' Microservice workload knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    CloneSet,
    AdvancedStatefulSet,
}

impl WorkloadKind {
    pub(super) const ALL: [WorkloadKind; 4] =
        [Self::Deployment, Self::StatefulSet, Self::CloneSet, Self::AdvancedStatefulSet];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::CloneSet => "CloneSet",
            Self::AdvancedStatefulSet => "AdvancedStatefulSet",
        }
    }
}

/// A container of a workload. `image` is always set: images are never built here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
}

/// A port a container listens on (Kubernetes `ContainerPort` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An environment variable of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvVar {
    /// SREWorks form: a bare name, valued at deploy time from `{{ Global.NAME }}`.
    Global(String),
    /// A fixed value.
    Literal { name: String, value: String },
}

impl EnvVar {
    pub fn name(&self) -> &str {
        match self {
            Self::Global(name) | Self::Literal { name, .. } => name,
        }
    }

    /// The value written into the component: the literal, or the SREWorks global reference.
    pub fn rendered_value(&self) -> String {
        match self {
            Self::Global(name) => format!("{{{{ Global.{name} }}}}"),
            Self::Literal { value, .. } => value.clone(),
        }
    }
}

/// Options of a `HELM` binder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmOptions {
    /// Where the chart comes from; `None` means it was uploaded as `chart.<componentName>`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<ChartRepository>,
    /// Helm values for the release.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
}

/// A chart in a Helm repository (`helm pull --repo <repoUrl> <chartName> --version <chartVersion>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartRepository {
    pub repo_url: String,
    pub chart_name: String,
    pub chart_version: String,
}

/// The component a multipart part named `chart.<componentName>` is for.
pub fn chart_part_component(part_name: &str) -> Option<&str> {
    part_name.strip_prefix(CHART_PART_PREFIX).filter(|n| !n.is_empty())
}

/// SREWorks componentName rules: letters, digits, `@`, `-`, `.`, `_`; no `..`; at most
/// [`MAX_COMPONENT_NAME_LEN`] characters. The name becomes part of file names and S3 keys.
pub fn check_component_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_COMPONENT_NAME_LEN {
        return Err(format!("must be at most {MAX_COMPONENT_NAME_LEN} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'-' | b'.' | b'_')) {
        return Err("may only hold letters, digits, '@', '-', '.' and '_'".into());
    }
    if name.contains("..") {
        return Err("must not contain '..'".into());
    }
    Ok(())
}

/// Splits a multi-document `build.yaml` into its documents as JSON values, skipping empty ones.
/// Each value is paired with its index among all documents, so messages point at the right one.
/// Guards: the text size, the document count, and YAML alias expansion.
pub fn parse_build_yaml(bytes: &[u8], limits: &BuildLimits) -> Result<Vec<(usize, Value)>, BuildError> {
    if bytes.len() as u64 > limits.max_spec_bytes {
        return Err(BuildError::TooLarge { what: "the build spec".into(), limit: limits.max_spec_bytes });
    }
    let invalid = |field: String, message: String| BuildError::Invalid {
        errors: vec![FieldError::new(field, message)],
    };
    let text =
        std::str::from_utf8(bytes).map_err(|_| invalid("build.yaml".into(), "is not UTF-8 text".into()))?;
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let at = format!("documents[{i}]");
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|e| invalid(at.clone(), format!("is not valid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        if docs.len() >= limits.max_components {
            return Err(BuildError::TooLarge {
                what: "the number of components".into(),
                limit: limits.max_components as u64,
            });
        }
        // Aliases let a few bytes stand for a huge tree; every node of an alias-free document costs
        // at least one byte of text.
        let budget = 2 * bytes.len() as u64 + 1024;
        if weigh(&value, budget).is_none() {
            return Err(invalid(at, "expands far beyond its size (YAML aliases)".into()));
        }
        let json =
            serde_json::to_value(&value).map_err(|e| invalid(at, format!("cannot be read as data: {e}")))?;
        docs.push((i, json));
    }
    Ok(docs)
}

/// Nodes plus string bytes of `value`, or `None` once over `budget`.
pub(super) fn weigh(value: &serde_yaml::Value, budget: u64) -> Option<u64> {
    use serde_yaml::Value as Y;
    let mut total = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += 1;
        match v {
            Y::String(s) => total += s.len() as u64,
            Y::Sequence(items) => stack.extend(items),
            Y::Mapping(map) => map.iter().for_each(|(k, v)| stack.extend([k, v])),
            Y::Tagged(t) => stack.push(&t.value),
            Y::Null | Y::Bool(_) | Y::Number(_) => {}
        }
        if total > budget {
            return None;
        }
    }
    Some(total)
}

/// Parses and validates a `build.yaml`; field paths read `documents[i].…`.
pub fn binders_from_yaml(
    bytes: &[u8],
    uploaded_charts: &HashSet<String>,
    limits: &BuildLimits,
) -> Result<Vec<ComponentBinder>, BuildError> {
    let docs = parse_build_yaml(bytes, limits)?;
    super::validate::validate(
        docs.iter().map(|(i, v)| (format!("documents[{i}]"), v)),
        "documents",
        uploaded_charts,
    )
}

/// Validates the binders of a JSON body (`AppPackageTaskIn.components`); paths read
/// `components[i].…`.
pub fn binders_from_json(
    components: &[Value],
    uploaded_charts: &HashSet<String>,
    limits: &BuildLimits,
) -> Result<Vec<ComponentBinder>, BuildError> {
    if components.len() > limits.max_components {
        return Err(BuildError::TooLarge {
            what: "the number of components".into(),
            limit: limits.max_components as u64,
        });
    }
    super::validate::validate(
        components.iter().enumerate().map(|(i, v)| (format!("components[{i}]"), v)),
        "components",
        uploaded_charts,
    )
}

#[cfg(test)]
#[path = "binder_tests.rs"]
mod tests;
