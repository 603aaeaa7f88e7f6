//! Talking to a cluster: server-side apply of a rendered component, the ownership-checked prune of
//! what it no longer renders, and reading its objects back for [`crate::health`].
//!
//! How a command's objects move through here:
//! 1. [`Cluster::apply_all`] sends each object of a [`Rendered`] in render's order (config before the
//!    workload that mounts it, the workload before the Service and Ingress that point at it) as a
//!    server-side apply PATCH with field manager [`FIELD_MANAGER`] and *without* `force`: a field
//!    another manager owns comes back as [`ApplyError::Conflict`] for an operator to settle, never
//!    taken over silently. The first failure stops the apply; a redelivered command applies everything
//!    again, which server-side apply makes harmless.
//! 2. [`Cluster::prune`] is handed the refs the planner ([`crate::plan`]) says may go. Each is read
//!    first and deleted only if it carries every label of the component instance's
//!    [`crate::render::owner_selector`], with the read uid as a precondition so an object recreated
//!    by someone else in between is not the one deleted. Anything else is skipped and reported.
//! 3. [`Cluster::read_all`] reads the objects as the API server has them; a missing one is `Null`,
//!    which [`crate::health::assess`] reads as `Missing`.
//!
//! Every call runs under [`Cluster`]'s per-call timeout on top of the client's own connect/read
//! timeouts, so one slow cluster cannot hold a command forever. Kinds come from a built-in table for
//! what `render` writes and from discovery for anything else a raw manifest holds.

mod error;
mod resource;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::Value;
use sw_contracts::executor::ObjectRef;

pub use error::ApplyError;

use crate::render::Rendered;
use resource::Resolver;

/// The field manager of every apply: the owner Kubernetes records for the fields we set.
pub const FIELD_MANAGER: &str = "sreworks";

/// How long one API call may take unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One cluster's client and the timeout of each call made through it.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    call_timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("call_timeout", &self.call_timeout).finish_non_exhaustive()
    }
}

/// What a prune did with each ref it was given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    /// Deleted now, or found already gone (404): no longer in the cluster as ours.
    pub gone: Vec<ObjectRef>,
    /// Left alone: the object exists but is not this component instance's.
    pub skipped: Vec<Skipped>,
}

impl Pruned {
    /// Everything this prune settled for the inventory: the objects gone, and those found to be
    /// someone else's (left in place, but no longer this instance's to own).
    pub fn released(&self) -> Vec<ObjectRef> {
        self.gone.iter().cloned().chain(self.skipped.iter().map(|s| s.object.clone())).collect()
    }
}

/// An object a prune refused to delete, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub object: ObjectRef,
    pub why: String,
}

impl Cluster {
    /// A client for the cluster `config` describes (http, or https with rustls and the ring
    /// provider); each call made through it gives up after `call_timeout`. Connects lazily: a
    /// cluster that is down fails the first call with [`ApplyError::ClusterUnavailable`].
    pub fn connect(config: kube::Config, call_timeout: Duration) -> Result<Self, kube::Error> {
        Ok(Self::new(Client::try_from(config)?, call_timeout))
    }

    /// Wraps `client`; each call made through it gives up after `call_timeout`.
    pub fn new(client: Client, call_timeout: Duration) -> Self {
        Self { client, call_timeout }
    }

    /// The client, for calls this module does not make (the cluster probe's `GET /version`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How long one call made through this cluster may take.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Server-side applies every object of `rendered` into `namespace`, in order, and returns them
    /// as the API server answered (with uid, resourceVersion, generation and status).
    pub async fn apply_all(&self, namespace: &str, rendered: &Rendered) -> Result<Vec<Value>, ApplyError> {
        let params = PatchParams::apply(FIELD_MANAGER);
        let mut resolver = Resolver::default();
        let mut applied = Vec::with_capacity(rendered.objects.len());
        for (object, r) in rendered.objects.iter().zip(&rendered.refs) {
            if r.name.is_empty() {
                return Err(ApplyError::Invalid {
                    object: r.clone(),
                    message: "the object has no name".into(),
                });
            }
            let endpoint = resolver.endpoint(&self.client, r).await?;
            let api = endpoint.api(&self.client, namespace);
            let answer = self.call(r, api.patch(&r.name, &params, &Patch::Apply(object))).await?;
            applied.push(to_value(r, answer)?);
        }
        Ok(applied)
    }

    /// Deletes each of `refs` that carries every `key=value` label of `owner_selector` (as
    /// [`crate::render::owner_selector`] writes it), with background propagation; a ref already
    /// gone counts as deleted. Refuses to delete anything when the selector is empty or not a list
    /// of `key=value` pairs.
    pub async fn prune(
        &self,
        namespace: &str,
        refs: &[ObjectRef],
        owner_selector: &str,
    ) -> Result<Pruned, ApplyError> {
        let mut out = Pruned::default();
        let Some(first) = refs.first() else { return Ok(out) };
        let owner = parse_selector(owner_selector).ok_or_else(|| ApplyError::Invalid {
            object: first.clone(),
            message: format!("refusing to prune with owner selector {owner_selector:?}: not key=value pairs"),
        })?;
        let mut resolver = Resolver::default();
        for r in refs {
            let api = resolver.endpoint(&self.client, r).await?.api(&self.client, namespace);
            let Some(live) = self.call(r, api.get_opt(&r.name)).await? else {
                out.gone.push(r.clone());
                continue;
            };
            if let Some(why) = not_ours(&live, &owner) {
                out.skipped.push(Skipped { object: r.clone(), why });
                continue;
            }
            let params = DeleteParams {
                preconditions: live
                    .metadata
                    .uid
                    .clone()
                    .map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::background()
            };
            match self.timed(r, api.delete(&r.name, &params)).await? {
                Ok(_) => out.gone.push(r.clone()),
                Err(kube::Error::Api(s)) if s.is_not_found() => out.gone.push(r.clone()),
                // The uid precondition failed: the object was deleted and recreated after the
                // read, by someone whose labels were not checked. Leave it.
                Err(kube::Error::Api(s)) if s.code == 409 => out
                    .skipped
                    .push(Skipped { object: r.clone(), why: format!("changed since read: {}", s.message) }),
                Err(e) => return Err(ApplyError::from_kube(r, e)),
            }
        }
        Ok(out)
    }

    /// Reads each of `refs` from `namespace` as the API server has it; `Null` when it does not exist.
    pub async fn read_all(
        &self,
        namespace: &str,
        refs: &[ObjectRef],
    ) -> Result<Vec<(ObjectRef, Value)>, ApplyError> {
        let mut resolver = Resolver::default();
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let api = resolver.endpoint(&self.client, r).await?.api(&self.client, namespace);
            let value = match self.call(r, api.get_opt(&r.name)).await? {
                Some(live) => to_value(r, live)?,
                None => Value::Null,
            };
            out.push((r.clone(), value));
        }
        Ok(out)
    }

    async fn call<T>(
        &self,
        object: &ObjectRef,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApplyError> {
        self.timed(object, call).await?.map_err(|e| ApplyError::from_kube(object, e))
    }

    /// `call`'s own answer, or [`ApplyError::Timeout`] after the per-call timeout.
    async fn timed<T>(
        &self,
        object: &ObjectRef,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, ApplyError> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .map_err(|_| ApplyError::Timeout { object: object.clone(), after: self.call_timeout })
    }
}

fn to_value(object: &ObjectRef, answer: DynamicObject) -> Result<Value, ApplyError> {
    serde_json::to_value(answer).map_err(|e| ApplyError::ClusterUnavailable {
        object: object.clone(),
        message: format!("unreadable answer: {e}"),
    })
}

/// `k=v,k=v` → pairs; `None` for an empty selector or anything that is not plain equality.
fn parse_selector(selector: &str) -> Option<Vec<(&str, &str)>> {
    let pairs = selector
        .split(',')
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !k.ends_with('!') && !v.starts_with('=')).then_some((k, v))
        })
        .collect::<Option<Vec<_>>>()?;
    (!pairs.is_empty()).then_some(pairs)
}

/// Why `live` is not this component instance's, or `None` when it carries every owner label.
fn not_ours(live: &DynamicObject, owner: &[(&str, &str)]) -> Option<String> {
    let labels = live.metadata.labels.as_ref();
    let missing: Vec<String> = owner
        .iter()
        .filter(|(k, v)| labels.and_then(|l| l.get(*k)).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (!missing.is_empty()).then(|| format!("not labelled {}", missing.join(",")))
}
