//! One component of an [`ApplicationConfiguration`] plus its package → what the k8s executor
//! renders: a [`ComponentTarget`] and a [`RenderedComponent`].
//!
//! How a component is resolved ([`resolve`]):
//! 1. Types the executor does not deploy (`RESOURCE_ADDON`, `INTERNAL_ADDON`, `HELM`…) are
//!    [`Outcome::Skip`] with a reason; nothing else is looked at.
//! 2. Placement, each field from the first source that has a non-empty value:
//!    [`Overrides`] > the component's `clusterId`/`namespaceId`/`stageId`, then its
//!    `Cluster`/`Namespace`/`Stage` scopes (names rendered against the app-wide globals) >
//!    `metadata.annotations` > `spec.parameterValues` `CLUSTER_ID`/`NAMESPACE_ID`/`STAGE_ID`. The
//!    app id: override > annotation `appId` > parameter `APP_ID`. The app instance: override >
//!    annotation `appInstanceName` > `<stage>-<appId>` (SREWorks' naming, so a gateway trait's
//!    `{{ Global.STAGE_ID }}-health-health` is the Service the executor names) > `<appId>`.
//!    The component instance is the component name.
//! 3. Globals: the built-ins `Global.CLUSTER_ID`, `NAMESPACE_ID`, `STAGE_ID` (empty without a
//!    stage), `APP_ID` and `APP_INSTANCE_NAME` are the placement and always win; then the
//!    component's `Global.X` parameter values; then `spec.parameterValues`. A parameter value may
//!    itself hold templates, rendered when used against the app-wide globals (a cycle is an error).
//! 4. The package's `spec.workload` loses its `metadata` (the `PLACEHOLDER_*` labels: the executor
//!    labels objects itself); its strings and the traits' specs are rendered; then each component
//!    parameter value is rendered and set at its `toFieldPaths` (`spec.replicas`). Every
//!    unresolved reference of the component is reported at once, with where it is used.
//! 5. The workload's `spec` and the traits become the [`RenderedComponent`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde_json::Value;
use sw_contracts::AppId;
use sw_contracts::executor::{ComponentTarget, EXECUTOR_COMPONENT_TYPES, RenderedComponent, TraitSpec};

use crate::field_path;
use crate::model::{ApplicationConfiguration, Component, ParameterValue};
use crate::revision::{RevisionName, VersionSel};
use crate::template::{Lookup, ProblemKind, TemplateProblem, render, text};

/// The built-in globals, always defined from the placement.
pub const BUILTINS: [&str; 5] = ["CLUSTER_ID", "NAMESPACE_ID", "STAGE_ID", "APP_ID", "APP_INSTANCE_NAME"];

/// Placement given by whoever deploys (CLI flags, a deployment request); each wins over the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub app_id: Option<AppId>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub stage: Option<String>,
    pub app_instance: Option<String>,
}

/// What the app package holds for a component.
#[derive(Debug, Clone, Copy)]
pub struct PackagedComponent<'a> {
    /// The component package's version (`packageVersion`).
    pub package_version: &'a str,
    /// `spec.workload` of the component's `meta.yaml` (apiVersion, kind, metadata, spec).
    pub workload: &'a Value,
}

/// What to do with a component.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Hand it to the executor.
    Deploy(Box<Resolved>),
    /// Not deployed by the k8s executor.
    Skip {
        /// Human explanation.
        reason: String,
    },
}

/// A component ready for the executor.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub target: ComponentTarget,
    pub component: RenderedComponent,
    /// Things ignored on the way that the user may want to know about.
    pub warnings: Vec<String>,
}

/// Why a component could not be resolved. Messages name the component as `TYPE|name`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error("no app id: set metadata.annotations.appId (or pass the app id)")]
    NoAppId,
    #[error("app id '{value}' is not a lowercase DNS label")]
    InvalidAppId { value: String },
    #[error("{component}: not in the app package")]
    NotInPackage { component: String },
    #[error("{component}: the launch file asks for version {wanted}, the package holds {packaged}")]
    VersionMismatch { component: String, wanted: String, packaged: String },
    #[error(
        "{component}: no {} (pass it, or set the component's {}, a matching scope, or metadata.annotations)",
        missing.join(" and no "),
        missing.iter().map(|m| format!("{m}Id")).collect::<Vec<_>>().join("/")
    )]
    MissingPlacement { component: String, missing: Vec<&'static str> },
    #[error("{component}: unresolved references: {}", describe(problems))]
    Unresolved { component: String, problems: Vec<TemplateProblem> },
    #[error("{component}: the package's meta.yaml has no spec.workload.spec mapping")]
    NoWorkload { component: String },
    #[error("{component}: parameter '{parameter}': {message}")]
    FieldPath { component: String, parameter: String, message: String },
}

/// `Global.X (undefined; used at a, b), …`: one entry per reference and kind, in first-use order.
fn describe(problems: &[TemplateProblem]) -> String {
    let mut groups: Vec<(&str, ProblemKind, Vec<&str>)> = Vec::new();
    for p in problems {
        match groups.iter_mut().find(|(r, k, _)| *r == p.reference && *k == p.kind) {
            Some((_, _, at)) => {
                if !at.contains(&p.at.as_str()) {
                    at.push(&p.at);
                }
            }
            None => groups.push((&p.reference, p.kind, vec![&p.at])),
        }
    }
    groups
        .iter()
        .map(|(r, k, at)| format!("{r} ({k}; used at {})", at.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why the executor does not deploy a component type, or `None` when it does.
pub fn skip_reason(revision: &RevisionName) -> Option<String> {
    let ty = revision.component_type();
    if EXECUTOR_COMPONENT_TYPES.contains(&ty) {
        return None;
    }
    let why = match ty {
        "RESOURCE_ADDON" => {
            "resource addons are provided by SREWorks' addon services, not applied to a cluster"
        }
        "INTERNAL_ADDON" => {
            "internal addons configure SREWorks itself (productops, appmeta, developmentmeta)"
        }
        "TRAIT_ADDON" => "trait addons extend SREWorks' trait set and have no objects of their own",
        "HELM" | "ABM_HELM" => "Helm charts are not deployed by the k8s executor",
        _ => {
            return Some(format!(
                "{ty}: the k8s executor deploys only {}",
                EXECUTOR_COMPONENT_TYPES.join(", ")
            ));
        }
    };
    Some(format!("{ty}: {why}"))
}

/// Resolves `component` (one of `ac.spec.components`) with what the package holds for it.
/// `package` may be `None` for a component that is skipped; for any other it is an error.
pub fn resolve(
    ac: &ApplicationConfiguration,
    component: &Component,
    package: Option<PackagedComponent<'_>>,
    overrides: &Overrides,
) -> Result<Outcome, ResolveError> {
    let rev = &component.revision_name;
    if let Some(reason) = skip_reason(rev) {
        return Ok(Outcome::Skip { reason });
    }
    let label = rev.label();
    let package = package.ok_or_else(|| ResolveError::NotInPackage { component: label.clone() })?;
    if let VersionSel::Exact(wanted) = rev.version()
        && wanted != package.package_version
    {
        return Err(ResolveError::VersionMismatch {
            component: label,
            wanted: wanted.clone(),
            packaged: package.package_version.to_owned(),
        });
    }
    let app = AppLevel::new(ac, overrides)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let target = placement(&app, component, overrides, &label, &mut problems)?;
    let mut builtins = BTreeMap::new();
    builtins.insert("CLUSTER_ID", target.cluster_id.clone());
    builtins.insert("NAMESPACE_ID", target.namespace.clone());
    builtins.insert("STAGE_ID", target.stage_id.clone().unwrap_or_default());
    builtins.insert("APP_ID", target.app_id.as_str().to_owned());
    builtins.insert("APP_INSTANCE_NAME", target.app_instance.clone());
    let globals =
        Globals::new(builtins, &ac.spec.parameter_values, &component.parameter_values, &mut warnings);
    let lookup_component = |name: &str| globals.lookup(name, Layer::Component);

    let mut workload = package.workload.clone();
    if let Value::Object(m) = &mut workload {
        m.shift_remove("metadata");
    }
    let mut workload = render(&workload, "workload ", &lookup_component, &mut problems);
    let traits: Vec<TraitSpec> = component
        .traits
        .iter()
        .map(|t| TraitSpec {
            name: t.name.clone(),
            runtime: t.runtime.clone(),
            spec: render(&t.spec, &format!("trait '{}' spec", t.name), &lookup_component, &mut problems),
        })
        .collect();
    let mut sets = Vec::new();
    for pv in &component.parameter_values {
        if pv.to_field_paths.is_empty() {
            if pv.name.strip_prefix("Global.").is_none() {
                warnings.push(format!(
                    "{label}: parameter '{}' has no toFieldPaths and is not a Global: unused",
                    pv.name
                ));
            }
            continue;
        }
        let value = match pv.name.strip_prefix("Global.") {
            Some(name) => match globals.lookup(name, Layer::Component) {
                Lookup::Found(v) => v,
                // Its problems are in `globals.nested` already.
                _ => continue,
            },
            None => render(&pv.value, &format!("parameter '{}'", pv.name), &lookup_component, &mut problems),
        };
        sets.push((pv, value));
    }
    problems.extend(globals.nested.into_inner());
    if !problems.is_empty() {
        return Err(ResolveError::Unresolved { component: label, problems });
    }
    for (pv, value) in sets {
        for path in &pv.to_field_paths {
            if !path.starts_with("spec.") {
                warnings.push(format!(
                    "{label}: parameter '{}': toFieldPath '{path}' is outside spec and is ignored",
                    pv.name
                ));
                continue;
            }
            field_path::set(&mut workload, path, value.clone()).map_err(|e| ResolveError::FieldPath {
                component: label.clone(),
                parameter: pv.name.clone(),
                message: e.to_string(),
            })?;
        }
    }
    if !component.data_inputs.is_empty() {
        warnings.push(format!(
            "{label}: dataInputs are not applied (they come from other components at deploy time)"
        ));
    }
    let spec = match workload {
        Value::Object(mut m) => match m.shift_remove("spec") {
            Some(spec @ Value::Object(_)) => spec,
            _ => return Err(ResolveError::NoWorkload { component: label }),
        },
        _ => return Err(ResolveError::NoWorkload { component: label }),
    };
    let component = RenderedComponent {
        component_type: rev.component_type().to_owned(),
        component_name: rev.name().to_owned(),
        package_version: Some(package.package_version.to_owned()),
        workload: spec,
        traits,
    };
    Ok(Outcome::Deploy(Box::new(Resolved { target, component, warnings })))
}

/// The app-wide placement and identity.
struct AppLevel<'a> {
    ac: &'a ApplicationConfiguration,
    app_id: AppId,
    cluster: Option<String>,
    namespace: Option<String>,
    stage: Option<String>,
    app_instance: String,
}

impl<'a> AppLevel<'a> {
    fn new(ac: &'a ApplicationConfiguration, o: &Overrides) -> Result<Self, ResolveError> {
        let a = &ac.metadata.annotations;
        let app_id = match &o.app_id {
            Some(id) => id.clone(),
            None => {
                let raw = first([a.app_id.clone(), param(ac, "APP_ID")]).ok_or(ResolveError::NoAppId)?;
                AppId::parse(&raw).map_err(|_| ResolveError::InvalidAppId { value: raw })?
            }
        };
        let cluster = first([o.cluster.clone(), a.cluster_id.clone(), param(ac, "CLUSTER_ID")]);
        let namespace = first([o.namespace.clone(), a.namespace_id.clone(), param(ac, "NAMESPACE_ID")]);
        let stage = first([o.stage.clone(), a.stage_id.clone(), param(ac, "STAGE_ID")]);
        let app_instance =
            first([o.app_instance.clone(), a.app_instance_name.clone()]).unwrap_or_else(|| match &stage {
                Some(s) => format!("{s}-{app_id}"),
                None => app_id.to_string(),
            });
        Ok(Self { ac, app_id, cluster, namespace, stage, app_instance })
    }
}

/// A plain, non-empty string parameter of `spec.parameterValues` (templates are not placement).
fn param(ac: &ApplicationConfiguration, name: &str) -> Option<String> {
    let pv = ac.spec.parameter_values.iter().rev().find(|p| global_name(&p.name) == name)?;
    match &pv.value {
        Value::String(s) if !s.contains("{{") => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first non-empty value.
fn first<const N: usize>(candidates: [Option<String>; N]) -> Option<String> {
    candidates.into_iter().flatten().map(|s| s.trim().to_owned()).find(|s| !s.is_empty())
}

/// `Global.X` and `X` name the same app-wide parameter.
fn global_name(name: &str) -> &str {
    name.strip_prefix("Global.").unwrap_or(name)
}

fn placement(
    app: &AppLevel<'_>,
    c: &Component,
    o: &Overrides,
    label: &str,
    problems: &mut Vec<TemplateProblem>,
) -> Result<ComponentTarget, ResolveError> {
    // Scope names may use the app-wide globals (`{{ Global.NAMESPACE_ID }}`).
    let mut builtins = BTreeMap::new();
    for (k, v) in [("CLUSTER_ID", &app.cluster), ("NAMESPACE_ID", &app.namespace), ("STAGE_ID", &app.stage)] {
        if let Some(v) = v {
            builtins.insert(k, v.clone());
        }
    }
    builtins.insert("APP_ID", app.app_id.to_string());
    builtins.insert("APP_INSTANCE_NAME", app.app_instance.clone());
    let mut ignored = Vec::new();
    let globals = Globals::new(builtins, &app.ac.spec.parameter_values, &[], &mut ignored);
    let mut scope = |kind: &str| -> Option<String> {
        let s = c.scopes.iter().find(|s| s.scope_ref.kind == kind)?;
        let name = s.scope_ref.name.as_ref()?;
        let mut found = Vec::new();
        let lookup = |n: &str| globals.lookup(n, Layer::App);
        let v = render(&Value::String(name.clone()), &format!("scope {kind}"), &lookup, &mut found);
        found.extend(globals.nested.borrow_mut().drain(..));
        // An undefined built-in here is the placement that is missing: reported as such below.
        let (builtin, other): (Vec<_>, Vec<_>) = found.into_iter().partition(|p| {
            p.kind == ProblemKind::Undefined && BUILTINS.iter().any(|b| p.reference == format!("Global.{b}"))
        });
        let clean = other.is_empty() && builtin.is_empty();
        problems.extend(other);
        clean.then(|| text(&v))
    };
    let cluster = first([o.cluster.clone(), c.cluster_id.clone()])
        .or_else(|| first([scope("Cluster")]))
        .or_else(|| app.cluster.clone());
    let namespace = first([o.namespace.clone(), c.namespace_id.clone()])
        .or_else(|| first([scope("Namespace")]))
        .or_else(|| app.namespace.clone());
    let stage = first([o.stage.clone(), c.stage_id.clone()])
        .or_else(|| first([scope("Stage")]))
        .or_else(|| app.stage.clone());
    let mut missing = Vec::new();
    if cluster.is_none() {
        missing.push("cluster");
    }
    if namespace.is_none() {
        missing.push("namespace");
    }
    let (Some(cluster_id), Some(namespace)) = (cluster, namespace) else {
        return Err(ResolveError::MissingPlacement { component: label.to_owned(), missing });
    };
    Ok(ComponentTarget {
        cluster_id,
        namespace,
        app_id: app.app_id.clone(),
        stage_id: stage,
        app_instance: app.app_instance.clone(),
        component_instance: c.revision_name.name().to_owned(),
    })
}

/// Which globals a lookup sees: a component's (its `Global.X` overrides on top) or the app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Component,
    App,
}

/// The globals of one component, rendered lazily (only what is used is checked) and once.
struct Globals<'a> {
    builtins: BTreeMap<&'static str, String>,
    app: BTreeMap<&'a str, &'a ParameterValue>,
    component: BTreeMap<&'a str, &'a ParameterValue>,
    memo: RefCell<BTreeMap<(Layer, String), Lookup>>,
    /// Globals being rendered (and their parameters' names as written), to catch cycles.
    stack: RefCell<Vec<((Layer, String), String)>>,
    /// Problems found inside parameter values, reported once each.
    nested: RefCell<Vec<TemplateProblem>>,
}

impl<'a> Globals<'a> {
    fn new(
        builtins: BTreeMap<&'static str, String>,
        app_params: &'a [ParameterValue],
        component_params: &'a [ParameterValue],
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut app = BTreeMap::new();
        for p in app_params {
            app.insert(global_name(&p.name), p);
        }
        let mut component = BTreeMap::new();
        for p in component_params {
            if let Some(name) = p.name.strip_prefix("Global.") {
                component.insert(name, p);
            }
        }
        for (name, p) in app.iter().chain(component.iter()) {
            let Some(b) = builtins.get(name) else { continue };
            let given = text(&p.value);
            if !given.is_empty() && &given != b {
                warnings.push(format!(
                    "parameter '{}' = '{given}' is ignored: Global.{name} is the deployment's '{b}'",
                    p.name
                ));
            }
        }
        Self {
            builtins,
            app,
            component,
            memo: RefCell::default(),
            stack: RefCell::default(),
            nested: RefCell::default(),
        }
    }

    fn lookup(&self, name: &str, layer: Layer) -> Lookup {
        if let Some(b) = self.builtins.get(name) {
            return Lookup::Found(Value::String(b.clone()));
        }
        let own = match layer {
            Layer::Component => self.component.get(name).or_else(|| self.app.get(name)),
            Layer::App => self.app.get(name),
        };
        let Some(pv) = own.copied() else { return Lookup::Undefined };
        // A component's `Global.X` is rendered against the app-wide globals, so it may extend
        // the app-wide X (`{{ Global.X }}-suffix`).
        let key = (if self.component.contains_key(name) { layer } else { Layer::App }, name.to_owned());
        if let Some(hit) = self.memo.borrow().get(&key) {
            return hit.clone();
        }
        if self.stack.borrow().iter().any(|(k, _)| *k == key) {
            // Reported where the loop closes: in the parameter being rendered.
            let at = self.stack.borrow().last().map_or_else(|| pv.name.clone(), |(_, n)| n.clone());
            self.nested.borrow_mut().push(TemplateProblem {
                reference: format!("Global.{name}"),
                at: format!("parameter '{at}'"),
                kind: ProblemKind::Cycle,
            });
            return Lookup::Failed;
        }
        self.stack.borrow_mut().push((key.clone(), pv.name.clone()));
        let mut found = Vec::new();
        let failed = Cell::new(false);
        let lookup = |n: &str| {
            let r = self.lookup(n, Layer::App);
            if r == Lookup::Failed {
                failed.set(true);
            }
            r
        };
        let value = render(&pv.value, &format!("parameter '{}'", pv.name), &lookup, &mut found);
        self.stack.borrow_mut().pop();
        let result = if found.is_empty() && !failed.get() { Lookup::Found(value) } else { Lookup::Failed };
        self.nested.borrow_mut().extend(found);
        self.memo.borrow_mut().insert(key, result.clone());
        result
    }
}
