//! Which API endpoint serves an object: a built-in table for the kinds `render` produces, discovery
//! for the rest (raw manifests may hold any kind, custom resources included).

use std::collections::HashMap;

use kube::Client;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{self, Scope};
use sw_contracts::executor::ObjectRef;

use super::ApplyError;

/// `(apiVersion, kind, plural)` of every kind `render` writes. These are served by every
/// Kubernetes version we support, so they need no discovery round trip.
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "Service", "services"),
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("batch/v1", "Job", "jobs"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
];

/// Where to send calls about one kind.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Endpoint {
    /// The typed handle for calls about objects of this kind in `namespace`.
    pub fn api(&self, client: &Client, namespace: &str) -> kube::Api<DynamicObject> {
        if self.namespaced {
            kube::Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            kube::Api::all_with(client.clone(), &self.resource)
        }
    }
}

/// Resolves kinds, asking the cluster at most once per kind for those outside [`BUILT_IN`].
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    discovered: HashMap<(String, String), Endpoint>,
}

impl Resolver {
    pub async fn endpoint(&mut self, client: &Client, object: &ObjectRef) -> Result<Endpoint, ApplyError> {
        if let Some(e) = built_in(&object.api_version, &object.kind) {
            return Ok(e);
        }
        let key = (object.api_version.clone(), object.kind.clone());
        if let Some(e) = self.discovered.get(&key) {
            return Ok(e.clone());
        }
        let gvk = gvk(object)?;
        let (resource, caps) =
            discovery::pinned_kind(client, &gvk).await.map_err(|e| ApplyError::from_kube(object, e))?;
        let e = Endpoint { resource, namespaced: caps.scope == Scope::Namespaced };
        self.discovered.insert(key, e.clone());
        Ok(e)
    }
}

fn built_in(api_version: &str, kind: &str) -> Option<Endpoint> {
    let (_, _, plural) = BUILT_IN.iter().find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = split_api_version(api_version);
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some(Endpoint { resource: ApiResource::from_gvk_with_plural(&gvk, plural), namespaced: true })
}

fn gvk(object: &ObjectRef) -> Result<GroupVersionKind, ApplyError> {
    let (group, version) = split_api_version(&object.api_version);
    if version.is_empty() || object.kind.is_empty() || version.contains('/') {
        return Err(ApplyError::Invalid {
            object: object.clone(),
            message: format!("not a Kubernetes apiVersion/kind: {:?}/{:?}", object.api_version, object.kind),
        });
    }
    Ok(GroupVersionKind::gvk(group, version, &object.kind))
}

/// `apps/v1` → (`apps`, `v1`); the core group has no prefix: `v1` → (``, `v1`).
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}
