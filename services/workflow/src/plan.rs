//! What a launch becomes before anything runs: the [`Plan`] of a deployment — its steps in the
//! order they run and, for each step that deploys, every component already resolved into the
//! executor's [`RenderedComponent`] at its placement.
//!
//! Everything that can be wrong with a launch is found here, at once, while the user still waits
//! for the answer (a 422 listing every problem), never later in the background: refused component
//! types, cycles, unknown policies or step components, unresolved templates, data inputs naming no
//! output, a `webhook` step without a signing key or with a bad URL, durations that do not parse.
//! Rendering is deterministic, so resolving at launch gives what resolving at deploy time would;
//! only the `PLACEHOLDER_*` tokens that name ids known after the insert (the deployment id, the
//! component row id) are filled when a command is built ([`crate::placeholders`]).
//!
//! Placement of a step's components, each field from the first that sets it: the step's
//! `topology` policy > the launch query (`clusterId`…) > the file (see [`sw_appconf::resolve`]).
//! An `override` policy of a step replaces or adds the named components' `parameterValues`,
//! `traits` and `dataInputs` for that step.
//!
//! Data passing: a component's `dataOutputs` (`name`, `fieldPath` such as `spec.env.DB_HOST`, with
//! or without `{{ }}`) are read from its rendered workload; a later component's `dataInputs`
//! (`valueFrom.dataOutputName`, `toFieldPaths`) receive them. The outputs also go into the workflow
//! context under `dataOutputs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sw_appconf::{
    ApplicationConfiguration, Component, LaunchError, Outcome, Overrides, PackagedComponent, StepType,
    validate_launch,
};
use sw_contracts::FieldError;
use sw_contracts::executor::{ComponentTarget, RenderedComponent};
use sw_contracts::packages::ComponentWorkloadOut;

/// A deployment's plan, stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `STEP_BY_STEP` or `DAG`.
    pub mode: String,
    /// The steps as listed; `order` says when each runs.
    pub steps: Vec<StepPlan>,
    /// Component data outputs by name, for the workflow context.
    #[serde(default)]
    pub data_outputs: BTreeMap<String, Value>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    pub index: u32,
    /// Its position in the run order (listed order, or topological in `DAG`).
    pub order: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// `deploy`, `apply-components`, `suspend`, `rollout-promotion`, `webhook`.
    pub step_type: String,
    /// Steps (indexes) whose outputs it reads: in `DAG` it starts once they succeeded.
    #[serde(default)]
    pub waits_for: Vec<u32>,
    /// Deadline from its start; `None` = the configured default for its type.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `suspend` with `properties.duration`: resumes by itself after this long.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub inputs: Vec<StepInput>,
    #[serde(default)]
    pub outputs: Vec<StepOutput>,
    /// `webhook`: where to POST.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The step's `properties` as written.
    #[serde(default)]
    pub properties: Value,
    /// `deploy` / `apply-components`: the components, in dependency order.
    #[serde(default)]
    pub units: Vec<Unit>,
}

/// `inputs[]`: a context value handed to the step as `parameterKey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInput {
    pub from: String,
    pub parameter_key: String,
}

/// `outputs[]`: when the step succeeds, context `name` is set to context value `valueFrom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutput {
    pub name: String,
    pub value_from: String,
}

/// A component deployed (or skipped) by a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unit {
    pub component_type: String,
    pub component_name: String,
    /// Units of the same step (indexes) that must succeed first.
    #[serde(default)]
    pub depends_on: Vec<u32>,
    /// `None` for a skipped unit.
    #[serde(default)]
    pub target: Option<ComponentTarget>,
    #[serde(default)]
    pub component: Option<RenderedComponent>,
    #[serde(default)]
    pub skip_reason: Option<String>,
}

/// What the launch asks beside the file.
#[derive(Debug, Clone, Default)]
pub struct LaunchInput<'a> {
    pub overrides: Overrides,
    /// The app package's version and what it holds per component.
    pub package_version: &'a str,
    pub workloads: &'a [ComponentWorkloadOut],
    /// Whether `webhook` steps can be signed (`workflow.webhook_signing_key` set).
    pub webhooks_enabled: bool,
    /// Whether webhook URLs may point at private or loopback addresses
    /// (`workflow.webhook_allow_private`).
    pub webhooks_private: bool,
}

/// The plan, with the warnings met on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub plan: Plan,
    pub warnings: Vec<String>,
}

/// Every problem of a launch, as field errors of a 422 (`field` names where, `code` what).
pub fn build(ac: &ApplicationConfiguration, input: &LaunchInput<'_>) -> Result<Planned, Vec<FieldError>> {
    let launch = validate_launch(ac).map_err(|errs| errs.iter().map(launch_error).collect::<Vec<_>>())?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut data_outputs = BTreeMap::new();
    let policies = policies_by_name(ac);
    let order_of: BTreeMap<usize, u32> =
        launch.workflow.order.iter().enumerate().map(|(pos, idx)| (*idx, pos as u32)).collect();
    let mut steps = Vec::new();
    for planned in &launch.workflow.steps {
        let raw = ac.spec.workflow.as_ref().and_then(|w| w.steps.get(planned.index));
        let properties = raw.map(|s| s.properties.clone()).unwrap_or(Value::Null);
        let field = |what: &str| format!("spec.workflow.steps[{}]{what}", planned.index);
        let mut step = StepPlan {
            index: planned.index as u32,
            order: order_of.get(&planned.index).copied().unwrap_or(planned.index as u32),
            name: planned.name.clone(),
            step_type: planned.step_type.as_str().to_owned(),
            waits_for: planned.waits_for.iter().map(|i| *i as u32).collect(),
            timeout_secs: None,
            duration_secs: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            webhook_url: None,
            properties: properties.clone(),
            units: Vec::new(),
        };
        if let Some(raw) = raw {
            step.inputs = io_list(raw.extra.get("inputs"), "from", "parameterKey")
                .into_iter()
                .map(|(from, parameter_key)| StepInput { from, parameter_key })
                .collect();
            step.outputs = io_list(raw.extra.get("outputs"), "name", "valueFrom")
                .into_iter()
                .map(|(name, value_from)| StepOutput { name, value_from })
                .collect();
        }
        match properties.get("timeout").map(parse_duration) {
            Some(Ok(d)) => step.timeout_secs = Some(d.as_secs().max(1)),
            Some(Err(e)) => errors.push(fe(&field(".properties.timeout"), "invalid_duration", e)),
            None => {}
        }
        match planned.step_type {
            StepType::Deploy | StepType::ApplyComponents => {
                if properties.get("rollout").is_some_and(|r| !r.is_null()) {
                    errors.push(fe(
                        &field(".properties.rollout"),
                        "unsupported_rollout",
                        "partition rollouts are not supported: deploy the step without `rollout`, and gate the rest with a suspend / rollout-promotion step",
                    ));
                }
                let step_overrides = match step_policies(&properties, &policies, &input.overrides) {
                    Ok(o) => o,
                    Err(e) => {
                        errors.push(fe(&field(".properties.policies"), "unknown_policy", e));
                        continue;
                    }
                };
                let wanted = if planned.step_type == StepType::ApplyComponents {
                    match step_components(&properties, ac) {
                        Ok(w) => w,
                        Err(e) => {
                            errors.push(fe(&field(".properties.components"), "unknown_step_component", e));
                            continue;
                        }
                    }
                } else {
                    None
                };
                step.units = plan_units(
                    ac,
                    &launch.components,
                    wanted.as_deref(),
                    &step_overrides,
                    input,
                    &mut data_outputs,
                    &mut errors,
                    &mut warnings,
                );
            }
            StepType::Suspend => match properties.get("duration").map(parse_duration) {
                Some(Ok(d)) => step.duration_secs = Some(d.as_secs().max(1)),
                Some(Err(e)) => errors.push(fe(&field(".properties.duration"), "invalid_duration", e)),
                None => {}
            },
            StepType::RolloutPromotion => {}
            StepType::Webhook => {
                let url = properties.get("url").and_then(Value::as_str).unwrap_or_default();
                if !input.webhooks_enabled {
                    errors.push(fe(
                        &field(".type"),
                        "webhook_not_configured",
                        "webhook steps need workflow.webhook_signing_key in the server's configuration",
                    ));
                } else if let Err(e) = crate::webhook::validate_url(url, input.webhooks_private) {
                    errors.push(fe(&field(".properties.url"), "invalid_webhook_url", e));
                } else {
                    step.webhook_url = Some(url.to_owned());
                }
            }
        }
        steps.push(step);
    }
    if errors.is_empty() {
        Ok(Planned {
            plan: Plan { mode: launch.workflow.mode.as_str().to_owned(), steps, data_outputs },
            warnings,
        })
    } else {
        Err(errors)
    }
}

fn fe(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), code: Some(code.to_owned()), message: message.into() }
}

fn launch_error(e: &LaunchError) -> FieldError {
    fe("spec", e.code(), e.to_string())
}

/// `[{a: x, b: y}]` → `[(x, y)]`, skipping malformed items (validation reported them).
fn io_list(v: Option<&Value>, a: &str, b: &str) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|i| {
            let x = i.get(a)?.as_str()?.to_owned();
            let y = i.get(b).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
            Some((x, y.unwrap_or_default()))
        })
        .collect()
}

fn policies_by_name(ac: &ApplicationConfiguration) -> BTreeMap<String, &sw_appconf::model::Policy> {
    ac.spec.policies.iter().filter_map(|p| Some((p.name.clone()?, p))).collect()
}

/// The placement and overrides of a step from its `policies` and the launch's.
#[derive(Debug, Clone, Default)]
struct StepOverrides {
    placement: Overrides,
    /// `override` policies' component patches, keyed by `TYPE|name`.
    patches: Vec<Value>,
}

fn step_policies(
    properties: &Value,
    policies: &BTreeMap<String, &sw_appconf::model::Policy>,
    launch: &Overrides,
) -> Result<StepOverrides, String> {
    let mut out = StepOverrides { placement: launch.clone(), patches: Vec::new() };
    let names: Vec<String> = match properties.get("policies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => return Err("policies must be a list of policy names".into()),
    };
    for name in names {
        let p = policies.get(&name).ok_or_else(|| format!("no policy named '{name}' in spec.policies"))?;
        match p.policy_type.as_str() {
            "topology" => {
                let get = |k: &str| p.properties.get(k).and_then(Value::as_str).map(str::to_owned);
                if let Some(c) = get("cluster").or_else(|| get("clusterId")) {
                    out.placement.cluster = Some(c);
                }
                if let Some(n) = get("namespace").or_else(|| get("namespaceId")) {
                    out.placement.namespace = Some(n);
                }
                if let Some(s) = get("stage").or_else(|| get("stageId")) {
                    out.placement.stage = Some(s);
                }
            }
            "override" => {
                if let Some(Value::Array(cs)) = p.properties.get("components") {
                    out.patches.extend(cs.iter().cloned());
                }
            }
            other => {
                return Err(format!("policy '{name}' has type '{other}'; supported: topology, override"));
            }
        }
    }
    Ok(out)
}

/// `apply-components`' `properties.components` (`[{type, name}]` or `TYPE|name` strings) as
/// indexes into `spec.components`; `None` (all) when absent.
fn step_components(properties: &Value, ac: &ApplicationConfiguration) -> Result<Option<Vec<usize>>, String> {
    let Some(list) = properties.get("components").filter(|v| !v.is_null()) else { return Ok(None) };
    let Value::Array(items) = list else { return Err("components must be a list".into()) };
    let mut out = Vec::new();
    for item in items {
        let (ty, name) = match item {
            Value::String(s) => match s.split_once('|') {
                Some((t, n)) => (t.to_owned(), n.split('|').next().unwrap_or(n).to_owned()),
                None => (String::new(), s.clone()),
            },
            Value::Object(m) => (
                m.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                m.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            ),
            _ => return Err("each component is {type, name} or 'TYPE|name'".into()),
        };
        let found = ac.spec.components.iter().position(|c| {
            c.revision_name.name() == name && (ty.is_empty() || c.revision_name.component_type() == ty)
        });
        match found {
            Some(i) => out.push(i),
            None => return Err(format!("'{ty}|{name}' is not in spec.components")),
        }
    }
    Ok(Some(out))
}

/// The component with a step's `override` patches applied.
fn patched(component: &Component, patches: &[Value]) -> Component {
    let mut c = component.clone();
    let label = c.revision_name.label();
    for p in patches {
        let Some(rn) = p.get("revisionName").and_then(Value::as_str) else { continue };
        let same = sw_appconf::RevisionName::parse(rn).map(|r| r.label() == label).unwrap_or(false);
        if !same {
            continue;
        }
        if let Some(Value::Array(pvs)) = p.get("parameterValues") {
            for pv in pvs {
                let Ok(pv) = serde_json::from_value::<sw_appconf::model::ParameterValue>(pv.clone()) else {
                    continue;
                };
                c.parameter_values.retain(|x| x.name != pv.name);
                c.parameter_values.push(pv);
            }
        }
        if let Some(Value::Array(ts)) = p.get("traits") {
            for t in ts {
                let Ok(t) = serde_json::from_value::<sw_appconf::model::Trait>(t.clone()) else { continue };
                c.traits.retain(|x| x.name != t.name);
                c.traits.push(t);
            }
        }
        if let Some(Value::Array(ds)) = p.get("dataInputs") {
            c.data_inputs.extend(ds.iter().cloned());
        }
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn plan_units(
    ac: &ApplicationConfiguration,
    components: &[sw_appconf::PlannedComponent],
    wanted: Option<&[usize]>,
    step: &StepOverrides,
    input: &LaunchInput<'_>,
    data_outputs: &mut BTreeMap<String, Value>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Vec<Unit> {
    let chosen: Vec<&sw_appconf::PlannedComponent> =
        components.iter().filter(|pc| wanted.is_none_or(|w| w.contains(&pc.index))).collect();
    let mut units = Vec::new();
    for pc in &chosen {
        let component = patched(&ac.spec.components[pc.index], &step.patches);
        let field = format!("spec.components[{}]", pc.index);
        let rev = &component.revision_name;
        let depends_on = pc
            .depends_on
            .iter()
            .filter_map(|d| chosen.iter().position(|c| c.index == *d).map(|p| p as u32))
            .collect();
        let packaged = input
            .workloads
            .iter()
            .find(|w| w.component_type == rev.component_type() && w.component_name == rev.name());
        let package = packaged
            .map(|w| PackagedComponent { package_version: &w.package_version, workload: &w.workload });
        match sw_appconf::resolve(ac, &component, package, &step.placement) {
            Ok(Outcome::Skip { reason }) => units.push(Unit {
                component_type: rev.component_type().to_owned(),
                component_name: rev.name().to_owned(),
                depends_on,
                target: None,
                component: None,
                skip_reason: Some(reason),
            }),
            Ok(Outcome::Deploy(resolved)) => {
                let mut resolved = *resolved;
                for w in resolved.warnings.drain(..) {
                    if !w.contains("dataInputs are not applied") && !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
                apply_data_inputs(&component, &mut resolved.component, data_outputs, &field, errors);
                collect_data_outputs(&component, &resolved.component, data_outputs, &field, errors);
                units.push(Unit {
                    component_type: rev.component_type().to_owned(),
                    component_name: rev.name().to_owned(),
                    depends_on,
                    target: Some(resolved.target),
                    component: Some(resolved.component),
                    skip_reason: None,
                });
            }
            Err(e) => errors.push(fe(&field, "unresolved_component", e.to_string())),
        }
    }
    units
}

/// `dataInputs[]`: `{valueFrom: {dataOutputName}, toFieldPaths: [spec.x]}`.
fn apply_data_inputs(
    component: &Component,
    rendered: &mut RenderedComponent,
    outputs: &BTreeMap<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    for (i, di) in component.data_inputs.iter().enumerate() {
        let name = di.get("valueFrom").and_then(|v| v.get("dataOutputName")).and_then(Value::as_str);
        let Some(name) = name else {
            errors.push(fe(
                &format!("{field}.dataInputs[{i}]"),
                "invalid_data_input",
                "valueFrom.dataOutputName is required",
            ));
            continue;
        };
        let Some(value) = outputs.get(name) else {
            errors.push(fe(
                &format!("{field}.dataInputs[{i}]"),
                "unknown_data_output",
                format!("no component deployed before this one has a data output named '{name}'"),
            ));
            continue;
        };
        let paths: Vec<&str> = match di.get("toFieldPaths") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for path in paths {
            let Some(rel) = path.strip_prefix("spec.") else {
                errors.push(fe(
                    &format!("{field}.dataInputs[{i}]"),
                    "invalid_data_input",
                    format!("toFieldPath '{path}' must start with spec."),
                ));
                continue;
            };
            if let Err(e) = sw_appconf::field_path::set(&mut rendered.workload, rel, value.clone()) {
                errors.push(fe(&format!("{field}.dataInputs[{i}]"), "invalid_data_input", e.to_string()));
            }
        }
    }
}

/// `dataOutputs[]`: `{name, fieldPath: '{{ spec.env.X }}'}` read from the rendered workload.
fn collect_data_outputs(
    component: &Component,
    rendered: &RenderedComponent,
    outputs: &mut BTreeMap<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    let root = Value::Object(Map::from_iter([("spec".to_owned(), rendered.workload.clone())]));
    for (i, out) in component.data_outputs.iter().enumerate() {
        let (Some(name), Some(path)) =
            (out.get("name").and_then(Value::as_str), out.get("fieldPath").and_then(Value::as_str))
        else {
            errors.push(fe(
                &format!("{field}.dataOutputs[{i}]"),
                "invalid_data_output",
                "name and fieldPath are required",
            ));
            continue;
        };
        let path = path.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
        match lookup(&root, path) {
            Some(v) => {
                outputs.insert(name.to_owned(), v.clone());
            }
            None => errors.push(fe(
                &format!("{field}.dataOutputs[{i}]"),
                "invalid_data_output",
                format!("'{path}' is not set in the rendered component"),
            )),
        }
    }
}

/// A dotted path (`a.b[0].c`) into `root`.
pub fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').map_or((part, None), |(k, r)| (k, Some(r)));
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        if let Some(rest) = rest {
            for idx in rest.split('[') {
                cur = cur.get(idx.trim_end_matches(']').parse::<usize>().ok()?)?;
            }
        }
    }
    Some(cur)
}

/// `30`, `"30"`, `"30s"`, `"5m"`, `"1h"`, `"1h30m"` → a duration.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    let bad = || format!("{v} is not a duration (30, \"30s\", \"5m\", \"1h30m\")");
    match v {
        Value::Number(n) => n.as_u64().map(Duration::from_secs).ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<u64>() {
                return Ok(Duration::from_secs(n));
            }
            let mut total = 0u64;
            let mut num = String::new();
            for c in s.chars() {
                if c.is_ascii_digit() {
                    num.push(c);
                    continue;
                }
                let n: u64 = num.parse().map_err(|_| bad())?;
                num.clear();
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86_400,
                    _ => return Err(bad()),
                };
                total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
            }
            if !num.is_empty() || total == 0 {
                return Err(bad());
            }
            Ok(Duration::from_secs(total))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
