//! `K8S_MANIFESTS`: raw objects (`{"manifests": [...]}`), checked and placed in the target namespace.
//!
//! An executor that may only touch its own namespace must not create cluster-wide objects, so
//! cluster-scoped kinds (Namespace, ClusterRole, CRDs…) are refused, as is an explicit namespace
//! other than the target's. The scope of a custom resource kind not listed here is only known from
//! the API server's discovery; the apply step checks it. Fields the server owns
//! (`metadata.resourceVersion`, `uid`, `generation`, `creationTimestamp`, `managedFields`, `status`)
//! are dropped so an object copied out of `kubectl get -o yaml` applies cleanly.

use serde_json::{Map, Value};

use super::check::{At, Obj, Problems, object};
use super::error::Part;
use super::names::is_dns1123_subdomain;

/// `(API group, kind)` of the built-in cluster-scoped kinds, plus common add-ons'.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("policy", "PodSecurityPolicy"),
    ("gateway.networking.k8s.io", "GatewayClass"),
    ("cert-manager.io", "ClusterIssuer"),
];

/// Dropped from `metadata`: the server sets them, and a stale `resourceVersion` would turn the
/// apply into a conflicting update.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// Kinds applied before workloads (what workloads mount, run as or are limited by).
const FIRST_KINDS: &[&str] = &[
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "LimitRange",
    "ResourceQuota",
    "NetworkPolicy",
];
const WORKLOAD_KINDS: &[&str] = &[
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// The manifests with their namespace set and server fields dropped, in apply order: ConfigMaps,
/// Secrets, RBAC… first, workloads next, everything else (Services, Ingresses, custom resources)
/// last; the given order within each group.
pub(super) fn manifests(workload: &Value, namespace: &str, p: &mut Problems) -> Vec<Map<String, Value>> {
    let at = At::new(Part::Workload, "");
    let Some(map) = object(p, &at, workload) else { return Vec::new() };
    let o = Obj { map, at: &at };
    o.only(p, &["manifests"]);
    let Some(items) = o.required(p, "manifests").and_then(|_| o.array(p, "manifests")) else {
        return Vec::new();
    };
    if items.is_empty() {
        p.add(&at.key("manifests"), "must list at least one object");
    }
    let mut out: Vec<(usize, Map<String, Value>)> = Vec::new();
    let mut seen: Vec<Identity> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = At::new(Part::Manifest(i), "");
        let Some(map) = object(p, &at, item) else { continue };
        if let Some((key, obj)) = manifest(map, &at, namespace, p) {
            if seen.contains(&key) {
                p.add(&at, format!("{} '{}' is listed twice", key.1, key.2));
                continue;
            }
            seen.push(key);
            out.push((rank(&obj), obj));
        }
    }
    out.sort_by_key(|(rank, _)| *rank);
    out.into_iter().map(|(_, obj)| obj).collect()
}

/// What makes two manifests the same object: `(API group, kind, name)`.
type Identity = (String, String, String);

/// One checked manifest and its identity.
fn manifest(
    map: &Map<String, Value>,
    at: &At,
    namespace: &str,
    p: &mut Problems,
) -> Option<(Identity, Map<String, Value>)> {
    let o = Obj { map, at };
    let api_version = o.required(p, "apiVersion").and_then(|_| o.string(p, "apiVersion"));
    let kind = o.required(p, "kind").and_then(|_| o.string(p, "kind"));
    let meta = o.required(p, "metadata").and_then(|_| o.object(p, "metadata"));
    let meta_at = at.key("metadata");
    let name = meta.and_then(|m| {
        let mo = Obj { map: m, at: &meta_at };
        mo.required(p, "name")?;
        let s = mo.string(p, "name")?;
        if !is_dns1123_subdomain(&s) {
            p.add(&meta_at.key("name"), "must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')");
            return None;
        }
        Some(s)
    });
    let (api_version, kind, meta, name) = (api_version?, kind?, meta?, name?);
    if api_version.is_empty() || api_version.split('/').count() > 2 {
        p.add(&at.key("apiVersion"), "must be 'version' or 'group/version'");
        return None;
    }
    if kind.is_empty() {
        p.add(&at.key("kind"), "must not be empty");
        return None;
    }
    if kind.ends_with("List") {
        p.add(&at.key("kind"), "lists are not accepted; give their items as separate manifests");
        return None;
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if CLUSTER_SCOPED.contains(&(group, kind.as_str())) {
        p.add(
            &at.key("kind"),
            format!("{kind} is cluster-scoped; a component may only create objects in its namespace"),
        );
        return None;
    }
    let meta_o = Obj { map: meta, at: &meta_at };
    match meta_o.string(p, "namespace") {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            p.add(
                &meta_at.key("namespace"),
                format!("is '{ns}', but the component is deployed to namespace '{namespace}'"),
            );
            return None;
        }
        _ => {}
    }
    for key in ["labels", "annotations"] {
        if let Some(m) = meta_o.object(p, key) {
            for (k, v) in m {
                if !v.is_string() {
                    p.add(&meta_at.key(key).key(k), "must be a string");
                }
            }
        }
    }
    let mut obj = map.clone();
    obj.remove("status");
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.retain(|k, _| !SERVER_METADATA.contains(&k.as_str()));
        m.insert("namespace".into(), namespace.into());
    }
    Some(((group.to_owned(), kind, name), obj))
}

fn rank(obj: &Map<String, Value>) -> usize {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if FIRST_KINDS.contains(&kind) {
        0
    } else if WORKLOAD_KINDS.contains(&kind) {
        1
    } else {
        2
    }
}
