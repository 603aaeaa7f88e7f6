//! Rendering a component into the Kubernetes objects to apply — pure, deterministic, no I/O.
//!
//! How a component moves through this module:
//! 1. [`render`] picks the path by `componentType`: `K8S_MICROSERVICE` and `K8S_JOB` parse the
//!    SREWorks workload spec into a small typed model (`workload`), `K8S_MANIFESTS` checks raw objects
//!    (`manifests`); anything else (`HELM`, `ABM_HELM`…) is [`RenderError::UnsupportedComponentType`].
//! 2. Trait names are checked up front ([`RenderError::UnknownTrait`] lists [`SUPPORTED_TRAITS`]);
//!    then each trait adjusts the pod (env, resources, probes, mounts, scheduling, replicas) or adds
//!    an object (ConfigMap, Secret, PVC, Service, Ingress, HPA) — see `traits`.
//! 3. Every problem found on the way is collected; if there is any, the result is
//!    [`RenderError::InvalidComponent`] with all of them.
//! 4. Every object gets the namespace, the ownership labels ([`LABEL_MANAGED_BY`] … [`LABEL_COMPONENT_INSTANCE`])
//!    and the [`ANNOTATION_REVISION`] annotation.
//!
//! The workload is named from the app instance and component instance (see [`names`]); derived
//! objects are `<workload>` (Service, first Ingress, HPA) or `<workload>-<suffix>`.
//!
//! Same input, same bytes: object and key order are fixed (maps built here are sorted; maps passed
//! through keep their given order), and nothing per-delivery — no command id, no time — goes into an
//! object, so a redelivered command applies exactly the same objects and a no-op apply stays a
//! no-op. The revision annotation sits on the objects, not on the pod template, so a new revision
//! that changes nothing in the pod does not restart it.

mod check;
mod error;
mod manifests;
pub mod names;
mod traits;
mod workload;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::{Map, Value, json};
use sw_contracts::executor::{ComponentTarget, ObjectRef, RenderedComponent};

pub use error::{Part, Problem, RenderError, SUPPORTED_COMPONENT_TYPES};
pub use traits::{GATEWAY_AUTH_ANNOTATION, SUPPORTED_TRAITS};

use check::{At, Problems};
use names::{MAX_NAME_LEN, MAX_STATEFULSET_NAME_LEN, is_dns1123_label, label_value, object_name};
use workload::{Workload, WorkloadKind};

/// Marks every object the executor applies; pruning only ever considers objects carrying it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "sreworks";
pub const LABEL_APP_ID: &str = "sreworks.io/app-id";
/// Only set when the target has a stage.
pub const LABEL_STAGE: &str = "sreworks.io/stage";
pub const LABEL_COMPONENT: &str = "sreworks.io/component";
/// The app instance.
pub const LABEL_INSTANCE: &str = "sreworks.io/instance";
pub const LABEL_COMPONENT_INSTANCE: &str = "sreworks.io/component-instance";
/// The revision that last applied the object, as decimal text.
pub const ANNOTATION_REVISION: &str = "sreworks.io/revision";

/// The objects of one revision of a component instance.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    /// Objects in apply order: ConfigMaps, Secrets and PVCs, then the workload, then Service,
    /// Ingresses and HPA (for manifests: see the `manifests` module).
    pub objects: Vec<Value>,
    /// The same objects as references, in the same order.
    pub refs: Vec<ObjectRef>,
}

/// Lists the objects without their content: a Secret's data must not end up in a log line.
impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let refs: Vec<String> =
            self.refs.iter().map(|r| format!("{} {}/{}", r.kind, r.api_version, r.name)).collect();
        f.debug_struct("Rendered").field("objects", &refs).finish()
    }
}

/// Renders `component` as revision `revision` of the component instance `target` names.
pub fn render(
    target: &ComponentTarget,
    revision: u64,
    component: &RenderedComponent,
) -> Result<Rendered, RenderError> {
    let ty = component.component_type.as_str();
    if !SUPPORTED_COMPONENT_TYPES.contains(&ty) {
        return Err(RenderError::UnsupportedComponentType { component_type: ty.to_owned() });
    }
    let unknown = traits::unknown(&component.traits);
    if !unknown.is_empty() {
        return Err(RenderError::UnknownTrait { unknown });
    }
    let mut p = Problems::default();
    check_target(target, &mut p);
    let labels = Labels::new(target, &component.component_name);
    let objects: Vec<Value> = if ty == "K8S_MANIFESTS" {
        for t in &component.traits {
            p.add(
                &At::new(Part::Trait(t.name.clone()), ""),
                "traits do not apply to K8S_MANIFESTS; write the objects into the manifests",
            );
        }
        manifests::manifests(&component.workload, &target.namespace, &mut p)
            .into_iter()
            .map(Value::Object)
            .collect()
    } else {
        let mut w = if ty == "K8S_JOB" {
            Workload::job(&component.workload, &mut p)
        } else {
            Workload::microservice(&component.workload, &mut p)
        };
        let max = if w.kind == WorkloadKind::StatefulSet { MAX_STATEFULSET_NAME_LEN } else { MAX_NAME_LEN };
        let base = object_name(&[&target.app_instance, &target.component_instance], max);
        let ctx = traits::Ctx { base: &base, namespace: &target.namespace, selector: &labels.selector };
        let added = traits::apply(&component.traits, &mut w, &ctx, &mut p);
        let workload = w.to_object(json!({ "name": base }), &labels.common, &labels.selector, &base);
        added.config.into_iter().chain([workload]).chain(added.after).collect()
    };
    if !p.is_empty() {
        return Err(RenderError::InvalidComponent { problems: p.into_vec() });
    }
    let revision = revision.to_string();
    let mut rendered =
        Rendered { objects: Vec::with_capacity(objects.len()), refs: Vec::with_capacity(objects.len()) };
    for mut obj in objects {
        stamp(&mut obj, &target.namespace, &labels.common, &revision);
        rendered.refs.push(object_ref(&obj));
        rendered.objects.push(obj);
    }
    Ok(rendered)
}

/// The label selector (`key=value,…`) matching every object the executor applied for this
/// component instance, whatever its revision.
pub fn owner_selector(target: &ComponentTarget) -> String {
    format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={},{LABEL_COMPONENT_INSTANCE}={}",
        label_value(&target.app_instance),
        label_value(&target.component_instance)
    )
}

fn check_target(target: &ComponentTarget, p: &mut Problems) {
    let at = At::new(Part::Target, "");
    if !is_dns1123_label(&target.namespace) {
        p.add(&at.key("namespace"), "must be a DNS-1123 label");
    }
    if target.app_instance.trim().is_empty() {
        p.add(&at.key("appInstance"), "must not be empty");
    }
    if target.component_instance.trim().is_empty() {
        p.add(&at.key("componentInstance"), "must not be empty");
    }
}

/// The ownership labels, and the subset that selects the workload's pods (it must never change:
/// a Deployment's selector is immutable).
struct Labels {
    common: Map<String, Value>,
    selector: Map<String, Value>,
}

impl Labels {
    fn new(target: &ComponentTarget, component_name: &str) -> Self {
        let instance = label_value(&target.app_instance);
        let component_instance = label_value(&target.component_instance);
        let mut common = Map::new();
        common.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
        common.insert(LABEL_APP_ID.into(), target.app_id.as_str().into());
        if let Some(stage) = target.stage_id.as_deref().filter(|s| !s.is_empty()) {
            common.insert(LABEL_STAGE.into(), label_value(stage).into());
        }
        common.insert(LABEL_COMPONENT.into(), label_value(component_name).into());
        common.insert(LABEL_INSTANCE.into(), instance.clone().into());
        common.insert(LABEL_COMPONENT_INSTANCE.into(), component_instance.clone().into());
        let mut selector = Map::new();
        selector.insert(LABEL_INSTANCE.into(), instance.into());
        selector.insert(LABEL_COMPONENT_INSTANCE.into(), component_instance.into());
        Labels { common, selector }
    }
}

/// Puts `metadata` in a fixed shape — name, namespace, labels (ours over any given), annotations
/// (with the revision), then whatever else a manifest carried.
fn stamp(obj: &mut Value, namespace: &str, labels: &Map<String, Value>, revision: &str) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else { return };
    let mut old = std::mem::take(meta);
    let mut take_map = |key: &str| match old.shift_remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut own_labels = take_map("labels");
    let mut annotations = take_map("annotations");
    own_labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    annotations.insert(ANNOTATION_REVISION.into(), revision.into());
    meta.insert("name".into(), old.shift_remove("name").unwrap_or_default());
    old.shift_remove("namespace");
    meta.insert("namespace".into(), namespace.into());
    meta.insert("labels".into(), Value::Object(own_labels));
    meta.insert("annotations".into(), Value::Object(annotations));
    meta.extend(old);
}

fn object_ref(obj: &Value) -> ObjectRef {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let meta = obj.get("metadata");
    ObjectRef {
        api_version: text(obj.get("apiVersion")),
        kind: text(obj.get("kind")),
        namespace: meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_owned),
        name: text(meta.and_then(|m| m.get("name"))),
    }
}
