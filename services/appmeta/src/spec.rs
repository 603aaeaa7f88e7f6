//! Component bodies: parsing and spec checks.
//!
//! `ComponentIn` flattens its typed spec (`{"componentName", "componentType", "spec"}`), and serde
//! cannot deny unknown fields through `#[serde(flatten)]`. So component bodies are taken apart
//! here by hand: the top-level keys are checked against the allowed ones, each member is parsed
//! on its own (so a bad name and a bad spec are reported together), and the spec is parsed into
//! the struct of its type, whose `deny_unknown_fields` catches typos inside it.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sw_contracts::Name;
use sw_contracts::appmeta::{ComponentIn, ComponentSpec, ComponentType, ContainerSpec, HelmSpec};
use sw_http::ApiError;

use crate::validate::{self, Errors};

/// Top-level keys of a component create body.
const CREATE_KEYS: [&str; 4] = ["componentName", "description", "componentType", "spec"];
/// Top-level keys of a component patch body.
const PATCH_KEYS: [&str; 3] = ["description", "componentType", "spec"];

/// Most replicas a microservice may ask for.
pub const REPLICAS_MAX: u32 = 1000;
/// Most retries of a job.
pub const BACKOFF_LIMIT_MAX: u32 = 100;
/// Longest image reference.
pub const IMAGE_MAX: usize = 512;

/// A validated component patch.
#[derive(Debug, Clone, Default)]
pub struct ComponentChange {
    pub description: Option<String>,
    pub spec: Option<ComponentSpec>,
}

fn object(body: Option<Value>) -> Result<Map<String, Value>, ApiError> {
    match body {
        None => Err(ApiError::bad_request("missing_body", "This operation needs a JSON body.")),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ApiError::invalid_field("body", "must be a JSON object")),
    }
}

fn unknown_keys(errs: &mut Errors, body: &Map<String, Value>, allowed: &[&str]) {
    for k in body.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errs.push(k.clone(), "unknown field");
    }
}

fn optional_string(errs: &mut Errors, body: &Map<String, Value>, key: &str) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(key, "must be a string");
            None
        }
    }
}

fn component_type(errs: &mut Errors, v: &Value) -> Option<ComponentType> {
    let t = v.as_str().and_then(ComponentType::parse);
    if t.is_none() {
        errs.push("componentType", "must be one of K8S_MICROSERVICE, K8S_JOB, HELM");
    }
    t
}

/// Parses `spec` as the spec of `ty` and checks it.
fn typed_spec(errs: &mut Errors, ty: ComponentType, spec: &Value) -> Option<ComponentSpec> {
    let mut spec = spec.clone();
    // serde would reject an invalid container name without saying which; name it here and let
    // the rest of the spec be parsed and checked around a stand-in.
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for (i, c) in containers.iter_mut().enumerate() {
            let Some(Value::String(name)) = c.get("name") else { continue };
            if let Err(e) = Name::parse(name) {
                errs.push(format!("spec.containers[{i}].name"), e.to_string());
                c["name"] = Value::String(format!("invalid-name-{i}"));
            }
        }
    }
    let tagged = serde_json::json!({ "componentType": ty.as_str(), "spec": spec });
    match serde_json::from_value::<ComponentSpec>(tagged) {
        Ok(s) => {
            check_spec(errs, &s);
            Some(s)
        }
        Err(e) => {
            errs.push("spec", e.to_string());
            None
        }
    }
}

/// Parses a `components.create` body, listing every problem in one 422.
pub fn parse_component_in(body: Option<Value>) -> Result<ComponentIn, ApiError> {
    let body = object(body)?;
    let mut errs = Errors::new();
    unknown_keys(&mut errs, &body, &CREATE_KEYS);
    let name = match body.get("componentName") {
        None | Some(Value::Null) => {
            errs.push("componentName", "is required");
            None
        }
        Some(Value::String(s)) => Name::parse(s).map_err(|e| errs.push("componentName", e.to_string())).ok(),
        Some(_) => {
            errs.push("componentName", "must be a string");
            None
        }
    };
    let description = optional_string(&mut errs, &body, "description");
    validate::description(&mut errs, "description", description.as_deref());
    let ty = match body.get("componentType") {
        None | Some(Value::Null) => {
            errs.push("componentType", "is required");
            None
        }
        Some(v) => component_type(&mut errs, v),
    };
    let spec = match (ty, body.get("spec")) {
        (_, None | Some(Value::Null)) => {
            errs.push("spec", "is required");
            None
        }
        (Some(ty), Some(v)) => typed_spec(&mut errs, ty, v),
        (None, Some(_)) => None,
    };
    errs.finish()?;
    match (name, spec) {
        (Some(component_name), Some(spec)) => Ok(ComponentIn { component_name, description, spec }),
        // Unreachable: a missing member has pushed an error above.
        _ => Err(ApiError::invalid_field("body", "is incomplete")),
    }
}

/// Parses a `components.update` body for a component of type `current`. `componentType` may be
/// given but must equal `current`; `spec` is parsed as a spec of `current`.
pub fn parse_component_patch(
    body: Option<Value>,
    current: ComponentType,
) -> Result<ComponentChange, ApiError> {
    let body = object(body)?;
    let mut errs = Errors::new();
    unknown_keys(&mut errs, &body, &PATCH_KEYS);
    let description = optional_string(&mut errs, &body, "description");
    validate::description(&mut errs, "description", description.as_deref());
    if let Some(v) = body.get("componentType").filter(|v| !v.is_null())
        && let Some(ty) = component_type(&mut errs, v)
        && ty != current
    {
        errs.push("componentType", format!("cannot change: this component is {}", current.as_str()));
    }
    let spec = match body.get("spec") {
        None | Some(Value::Null) => None,
        Some(v) => typed_spec(&mut errs, current, v),
    };
    errs.finish()?;
    Ok(ComponentChange { description, spec })
}

/// Checks a parsed spec; fields are named `spec.containers[0].image` and so on.
pub fn check_spec(errs: &mut Errors, spec: &ComponentSpec) {
    match spec {
        ComponentSpec::K8sMicroservice(s) => {
            containers(errs, &s.containers);
            if s.replicas.is_some_and(|r| r > REPLICAS_MAX) {
                errs.push("spec.replicas", format!("must be at most {REPLICAS_MAX}"));
            }
        }
        ComponentSpec::K8sJob(s) => {
            containers(errs, &s.containers);
            if s.backoff_limit.is_some_and(|b| b > BACKOFF_LIMIT_MAX) {
                errs.push("spec.backoffLimit", format!("must be at most {BACKOFF_LIMIT_MAX}"));
            }
        }
        ComponentSpec::Helm(h) => helm(errs, h),
    }
}

fn containers(errs: &mut Errors, containers: &[ContainerSpec]) {
    if containers.is_empty() {
        errs.push("spec.containers", "must have at least one container");
    }
    let mut seen = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("spec.containers[{i}]");
        if !seen.insert(c.name.as_str()) {
            errs.push(format!("{at}.name"), format!("duplicate container name {}", c.name));
        }
        if c.image.is_empty() {
            errs.push(format!("{at}.image"), "must not be empty");
        } else if c.image.chars().count() > IMAGE_MAX {
            errs.push(format!("{at}.image"), format!("must be at most {IMAGE_MAX} characters"));
        } else if c.image.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            errs.push(format!("{at}.image"), "must not contain whitespace");
        }
        for (j, p) in c.ports.iter().enumerate() {
            if !(1..=65535).contains(&p.container_port) {
                errs.push(format!("{at}.ports[{j}].containerPort"), "must be between 1 and 65535");
            }
            if let Some(proto) = &p.protocol
                && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
            {
                errs.push(format!("{at}.ports[{j}].protocol"), "must be TCP, UDP or SCTP");
            }
        }
        if c.resources.as_ref().is_some_and(|r| !r.is_object()) {
            errs.push(format!("{at}.resources"), "must be an object");
        }
    }
}

fn helm(errs: &mut Errors, h: &HelmSpec) {
    if h.chart_name.trim().is_empty() {
        errs.push("spec.chartName", "must not be empty");
    }
    if let Some(url) = &h.repo_url
        && !["https://", "http://", "oci://"].iter().any(|p| url.starts_with(p) && url.len() > p.len())
    {
        errs.push("spec.repoUrl", "must start with https://, http:// or oci://");
    }
    if h.values.as_ref().is_some_and(|v| !v.is_object()) {
        errs.push("spec.values", "must be a JSON object");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(e: ApiError) -> Vec<String> {
        assert_eq!(e.status(), 422, "{e}");
        e.problem().errors.iter().map(|f| f.field.clone()).collect()
    }

    fn micro(containers: Value) -> Value {
        json!({"componentName": "api", "componentType": "K8S_MICROSERVICE", "spec": {"containers": containers}})
    }

    #[test]
    fn parses_each_type() {
        let c = parse_component_in(Some(micro(
            json!([{"name": "api", "image": "r/api:1", "ports": [{"containerPort": 80}]}]),
        )))
        .unwrap();
        assert_eq!(c.component_name.as_str(), "api");
        assert_eq!(c.spec.component_type(), ComponentType::K8sMicroservice);
        let j = json!({"componentName": "mig", "componentType": "K8S_JOB", "spec": {"containers": [{"name": "m", "image": "r/m"}], "backoffLimit": 3}});
        assert_eq!(parse_component_in(Some(j)).unwrap().spec.component_type(), ComponentType::K8sJob);
        let h = json!({"componentName": "db", "componentType": "HELM", "spec": {"chartName": "mysql", "repoUrl": "oci://r/charts", "values": {"a": 1}}});
        assert_eq!(parse_component_in(Some(h)).unwrap().spec.component_type(), ComponentType::Helm);
    }

    #[test]
    fn unknown_top_level_keys_are_named() {
        let mut body = micro(json!([{"name": "api", "image": "r/api"}]));
        body["bogus"] = json!(1);
        body["replicas"] = json!(2);
        assert_eq!(fields(parse_component_in(Some(body)).unwrap_err()), ["bogus", "replicas"]);
    }

    #[test]
    fn every_bad_field_is_listed() {
        let body = json!({
            "componentName": "Bad_Name",
            "description": "x".repeat(4097),
            "componentType": "K8S_MICROSERVICE",
            "spec": {
                "replicas": 1001,
                "containers": [
                    {"name": "a", "image": "", "ports": [{"containerPort": 0}, {"containerPort": 80, "protocol": "HTTP"}]},
                    {"name": "a", "image": "has space"},
                    {"name": "b", "image": "x".repeat(513)}
                ]
            }
        });
        assert_eq!(
            fields(parse_component_in(Some(body)).unwrap_err()),
            [
                "componentName",
                "description",
                "spec.containers[0].image",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].ports[1].protocol",
                "spec.containers[1].name",
                "spec.containers[1].image",
                "spec.containers[2].image",
                "spec.replicas",
            ]
        );
    }

    #[test]
    fn invalid_container_names_are_named_with_the_other_errors() {
        let body = micro(
            json!([{"name": "Bad_Name", "image": ""}, {"name": "ok", "image": "r/ok", "ports": [{"containerPort": 70000}]}]),
        );
        assert_eq!(
            fields(parse_component_in(Some(body)).unwrap_err()),
            [
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[1].ports[0].containerPort"
            ]
        );
    }

    #[test]
    fn job_and_helm_rules() {
        let j = json!({"componentName": "j", "componentType": "K8S_JOB", "spec": {"containers": [], "backoffLimit": 101}});
        assert_eq!(
            fields(parse_component_in(Some(j)).unwrap_err()),
            ["spec.containers", "spec.backoffLimit"]
        );
        let h = json!({"componentName": "h", "componentType": "HELM", "spec": {"chartName": " ", "repoUrl": "ftp://x", "values": [1]}});
        assert_eq!(
            fields(parse_component_in(Some(h)).unwrap_err()),
            ["spec.chartName", "spec.repoUrl", "spec.values"]
        );
    }

    #[test]
    fn missing_and_mistyped_members() {
        assert_eq!(
            fields(parse_component_in(Some(json!({}))).unwrap_err()),
            ["componentName", "componentType", "spec"]
        );
        let body = json!({"componentName": "a", "componentType": "LAMBDA", "spec": {}});
        assert_eq!(fields(parse_component_in(Some(body)).unwrap_err()), ["componentType"]);
        let body =
            json!({"componentName": "a", "componentType": "HELM", "spec": {"chartName": "c", "typo": 1}});
        let e = parse_component_in(Some(body)).unwrap_err();
        assert!(e.problem().errors[0].message.contains("typo"), "{e}");
        assert_eq!(parse_component_in(None).unwrap_err().status(), 400);
        assert_eq!(fields(parse_component_in(Some(json!([]))).unwrap_err()), ["body"]);
    }

    #[test]
    fn patch_keeps_the_type() {
        let p = parse_component_patch(Some(json!({"description": "d"})), ComponentType::Helm).unwrap();
        assert_eq!(p.description.as_deref(), Some("d"));
        assert!(p.spec.is_none());
        let p = parse_component_patch(
            Some(json!({"componentType": "HELM", "spec": {"chartName": "x"}})),
            ComponentType::Helm,
        )
        .unwrap();
        assert!(matches!(p.spec, Some(ComponentSpec::Helm(_))));
        let e = parse_component_patch(Some(json!({"componentType": "K8S_JOB"})), ComponentType::Helm)
            .unwrap_err();
        assert_eq!(fields(e), ["componentType"]);
        let e = parse_component_patch(Some(json!({"componentName": "x"})), ComponentType::Helm).unwrap_err();
        assert_eq!(fields(e), ["componentName"]);
    }
}
