//! The `core.oam.dev/v1alpha2` `ApplicationConfiguration` as SREWorks writes it, parsed tolerantly.
//!
//! SREWorks' files carry many fields this project does not use yet (`dataInputs`, policies of
//! every type, workflow step inputs…): those are accepted and kept — typed where a later step
//! will need them, as raw values in `extra` otherwise — so nothing in a real launch file makes
//! parsing fail. Two YAML quirks of real files are smoothed over before the typed parse (see
//! [`normalize`]): an unquoted `{{ x }}` (which YAML reads as a nested flow mapping) is read back as
//! the template text it was meant to be, and non-string mapping keys become text.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::revision::RevisionName;

/// Why a launch YAML could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not YAML. (The cause is in the message, not `source()`, so it is not printed twice.)
    #[error("not valid YAML: {0}")]
    Yaml(serde_yaml::Error),
    /// YAML, but not an `ApplicationConfiguration`.
    #[error("kind is {found:?}, expected ApplicationConfiguration")]
    WrongKind {
        /// The `kind` found (`None` when absent).
        found: Option<String>,
    },
    /// A field has the wrong shape; `path` is where (`spec.components[0].revisionName`).
    #[error("{path}: {message}")]
    Shape {
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// An SREWorks launch file: which components of an app package to deploy, where, and with which
/// parameters and traits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationConfiguration {
    #[serde(default, deserialize_with = "lenient_string")]
    pub api_version: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub metadata: Metadata,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: Spec,
}

impl ApplicationConfiguration {
    /// Parses one YAML document, which must be of kind `ApplicationConfiguration`.
    pub fn from_yaml(text: &str) -> Result<Self, ParseError> {
        let raw: serde_yaml::Value = serde_yaml::from_str(text).map_err(ParseError::Yaml)?;
        Self::from_value(raw)
    }

    /// Parses an already-read YAML value (see [`ApplicationConfiguration::from_yaml`]).
    pub fn from_value(raw: serde_yaml::Value) -> Result<Self, ParseError> {
        let value = normalize(raw).map_err(|(path, message)| ParseError::Shape { path, message })?;
        let ac: ApplicationConfiguration = serde_path_to_error::deserialize(value)
            .map_err(|e| ParseError::Shape { path: e.path().to_string(), message: e.inner().to_string() })?;
        if ac.kind.as_deref() != Some("ApplicationConfiguration") {
            return Err(ParseError::WrongKind { found: ac.kind });
        }
        Ok(ac)
    }
}

/// `metadata`: the name and the annotations that place the deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub annotations: Annotations,
    #[serde(default, deserialize_with = "or_default")]
    pub labels: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The annotations SREWorks reads; each may be absent, numbers are read as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    #[serde(default, deserialize_with = "lenient_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cluster_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub namespace_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub stage_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub app_instance_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub app_package_id: Option<String>,
    /// Every other annotation.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// App-wide parameters, referenced as `{{ Global.NAME }}` (names are written without the
    /// `Global.` prefix here; one given with it is read the same).
    #[serde(default, deserialize_with = "or_default")]
    pub parameter_values: Vec<ParameterValue>,
    /// The components, in launch order.
    #[serde(default, deserialize_with = "or_default")]
    pub components: Vec<Component>,
    /// Kept as data (topology, override…); not applied by the resolver.
    #[serde(default, deserialize_with = "or_default")]
    pub policies: Vec<Policy>,
    /// Kept as data for the workflow service.
    #[serde(default, deserialize_with = "or_default")]
    pub workflow: Option<Workflow>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A `parameterValues[]` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterValue {
    /// `NAME`, or `Global.NAME` in a component to override the app-wide value for it.
    pub name: String,
    /// Any YAML value; strings may hold `{{ Global.X }}` templates.
    #[serde(default)]
    pub value: Value,
    /// Paths in the component's workload (`spec.replicas`) that receive the value.
    #[serde(default, deserialize_with = "or_default")]
    pub to_field_paths: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A `spec.components[]` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub revision_name: RevisionName,
    #[serde(default, deserialize_with = "or_default")]
    pub scopes: Vec<Scope>,
    /// Placement of this component; empty means "not set".
    #[serde(default, deserialize_with = "lenient_string")]
    pub cluster_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub namespace_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub stage_id: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub parameter_values: Vec<ParameterValue>,
    #[serde(default, deserialize_with = "or_default")]
    pub traits: Vec<Trait>,
    #[serde(default, deserialize_with = "or_default")]
    pub dependencies: Vec<Dependency>,
    /// Kept, not used by the resolver (data passing between components is the workflow's).
    #[serde(default, deserialize_with = "or_default")]
    pub data_inputs: Vec<Value>,
    /// Kept, not used by the resolver.
    #[serde(default, deserialize_with = "or_default")]
    pub data_outputs: Vec<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A `scopes[]` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub scope_ref: ScopeRef,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Which cluster, namespace or stage a component goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRef {
    #[serde(default, deserialize_with = "lenient_string")]
    pub api_version: Option<String>,
    /// `Cluster`, `Namespace` or `Stage` (others are kept and ignored).
    pub kind: String,
    /// The cluster id, namespace or stage; may be a `{{ Global.X }}` template.
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default)]
    pub spec: Value,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A trait of a component (`service.trait.abm.io`, `gateway.trait.abm.io`…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trait {
    pub name: String,
    /// `pre`, `post` or absent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub runtime: Option<String>,
    #[serde(default)]
    pub spec: Value,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A `dependencies[]` item: `TYPE|name` of a component deployed before this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub component: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A `spec.policies[]` item (`topology`, `override`…), kept as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub policy_type: String,
    #[serde(default)]
    pub properties: Value,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `spec.workflow`, kept as data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    #[serde(default, deserialize_with = "or_default")]
    pub steps: Vec<WorkflowStep>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A workflow step (`deploy`, `apply-components`, `suspend`…); `inputs`, `outputs` and the rest
/// stay in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStep {
    #[serde(rename = "type")]
    pub step_type: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default)]
    pub properties: Value,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A field written `key:` with nothing after it is YAML null: read it as the default.
fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string, or a number or boolean read as its text (YAML reads `appPackageId: 42` as a number).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, found {}",
                if other.is_array() { "a list" } else { "a mapping" }
            )));
        }
    })
}

/// Makes a YAML value readable as JSON-like data. Returns `(path, message)` on failure.
///
/// - `{{ x }}` written without quotes is, to YAML, a mapping whose only key is the mapping
///   `{x: null}`, with a null value; it is turned back into the string `{{ x }}` (SREWorks renders
///   its launch files as text before parsing them, so such files are common, e.g. `test_ac.yaml`);
/// - keys that are numbers or booleans become their text; a null key becomes `""`;
/// - tags are dropped.
pub fn normalize(v: serde_yaml::Value) -> Result<serde_yaml::Value, (String, String)> {
    normalize_at(v, "")
}

fn normalize_at(v: serde_yaml::Value, path: &str) -> Result<serde_yaml::Value, (String, String)> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Mapping(m) => {
            if let Some(t) = unquoted_template(&m) {
                return Ok(Y::String(t));
            }
            let mut out = serde_yaml::Mapping::with_capacity(m.len());
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => String::new(),
                    Y::Mapping(km) => match unquoted_template(&km) {
                        Some(t) => t,
                        None => return Err((path.to_owned(), "a mapping is used as a key".into())),
                    },
                    Y::Sequence(_) | Y::Tagged(_) => {
                        return Err((path.to_owned(), "a list or tagged value is used as a key".into()));
                    }
                };
                let child = normalize_at(v, &join(path, &key))?;
                out.insert(Y::String(key), child);
            }
            Y::Mapping(out)
        }
        Y::Sequence(items) => Y::Sequence(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| normalize_at(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Tagged(t) => normalize_at(t.value, path)?,
        other => other,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// `{{ x }}` as YAML reads it unquoted: `{ {x: null}: null }`.
fn unquoted_template(m: &serde_yaml::Mapping) -> Option<String> {
    use serde_yaml::Value as Y;
    let (k, v) = single(m)?;
    let (Y::Mapping(inner), Y::Null) = (k, v) else { return None };
    let (ik, iv) = single(inner)?;
    let (Y::String(name), Y::Null) = (ik, iv) else { return None };
    Some(format!("{{{{ {name} }}}}"))
}

fn single(m: &serde_yaml::Mapping) -> Option<(&serde_yaml::Value, &serde_yaml::Value)> {
    let mut it = m.iter();
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_templates_are_read_back_as_text() {
        let ac = ApplicationConfiguration::from_yaml(
            "kind: ApplicationConfiguration\nmetadata:\n  annotations:\n    appPackageId: {{ options.appPackageId }}\n    stageId: 42\n",
        )
        .unwrap();
        assert_eq!(ac.metadata.annotations.app_package_id.as_deref(), Some("{{ options.appPackageId }}"));
        assert_eq!(ac.metadata.annotations.stage_id.as_deref(), Some("42"));
    }

    #[test]
    fn nulls_and_unknown_fields_are_tolerated() {
        let ac = ApplicationConfiguration::from_yaml(
            "kind: ApplicationConfiguration\nfoo: 1\nspec:\n  parameterValues:\n  components:\n  - revisionName: K8S_JOB|job|_\n    traits:\n    somethingNew: {a: 1}\n",
        )
        .unwrap();
        assert!(ac.spec.parameter_values.is_empty());
        let c = &ac.spec.components[0];
        assert!(c.traits.is_empty());
        assert_eq!(c.extra["somethingNew"]["a"], 1);
    }

    #[test]
    fn errors_say_where() {
        let e = ApplicationConfiguration::from_yaml(
            "kind: ApplicationConfiguration\nspec:\n  components:\n  - revisionName: nope\n",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("spec.components[0].revisionName"), "{msg}");
        assert!(msg.contains("'nope'"), "{msg}");
        let e = ApplicationConfiguration::from_yaml("kind: Component\n").unwrap_err();
        assert!(matches!(e, ParseError::WrongKind { .. }), "{e}");
        let e = ApplicationConfiguration::from_yaml("kind: [").unwrap_err();
        assert!(matches!(e, ParseError::Yaml(_)), "{e}");
    }
}
