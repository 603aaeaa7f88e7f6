//! Traits: the SREWorks names (`service.trait.abm.io`, `gateway.trait.abm.io`) and our own short
//! ones, each adjusting the workload's pod or adding objects next to it.
//!
//! | trait | effect |
//! |---|---|
//! | `service.trait.abm.io`, `service` | a Service selecting the pods (`ports`, `type`, `labels`, `annotations`) |
//! | `gateway.trait.abm.io`, `ingress` | a networking.k8s.io/v1 Ingress to the Service (`host`, `path`, `serviceName`, `servicePort`…) |
//! | `env` | extra env vars (`env` map, optional `containerName`) |
//! | `resources` | `requests`/`limits` (every main container, or `containerName`) |
//! | `probes` | `liveness`/`readiness`/`startup` (the first main container, or `containerName`) |
//! | `configmap`, `secret` | a ConfigMap / Secret, mounted at `mountPath` and/or loaded with `envFrom` |
//! | `volume`, `pvc` | a PersistentVolumeClaim mounted at `mountPath` |
//! | `tolerations`, `affinity`, `nodeSelector`, `node-selector` | pod scheduling |
//! | `replicas` | the replica count |
//! | `hpa` | an autoscaling/v2 HorizontalPodAutoscaler (the workload then leaves `replicas` to it) |
//!
//! Mounts and `envFrom` go to every container, init containers included, like the workload's `env`
//! map. The `runtime` (`pre`/`post`) SREWorks gives a trait does not matter here: everything is
//! applied together, in the order [`super::Rendered`] documents.

mod config;
mod network;
mod pod;

use serde_json::{Map, Value};
use sw_contracts::executor::TraitSpec;

pub use network::GATEWAY_AUTH_ANNOTATION;

use super::check::{At, Obj, Problems};
use super::error::Part;
use super::workload::{Container, Pod, Workload, WorkloadKind};

/// Every trait name accepted, as listed in the `UnknownTrait` message.
pub const SUPPORTED_TRAITS: &[&str] = &[
    "service.trait.abm.io",
    "service",
    "gateway.trait.abm.io",
    "ingress",
    "env",
    "resources",
    "probes",
    "configmap",
    "secret",
    "volume",
    "pvc",
    "tolerations",
    "affinity",
    "nodeSelector",
    "node-selector",
    "replicas",
    "hpa",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Ingress,
    Env,
    Resources,
    Probes,
    ConfigMap,
    Secret,
    Volume,
    Tolerations,
    Affinity,
    NodeSelector,
    Replicas,
    Hpa,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "service.trait.abm.io" | "service" => Kind::Service,
            "gateway.trait.abm.io" | "ingress" => Kind::Ingress,
            "env" => Kind::Env,
            "resources" => Kind::Resources,
            "probes" => Kind::Probes,
            "configmap" => Kind::ConfigMap,
            "secret" => Kind::Secret,
            "volume" | "pvc" => Kind::Volume,
            "tolerations" => Kind::Tolerations,
            "affinity" => Kind::Affinity,
            "nodeSelector" | "node-selector" => Kind::NodeSelector,
            "replicas" => Kind::Replicas,
            "hpa" => Kind::Hpa,
            _ => return None,
        })
    }

    /// Traits that may appear once: a second one would silently override the first.
    fn single(self) -> bool {
        matches!(
            self,
            Kind::Service
                | Kind::Tolerations
                | Kind::Affinity
                | Kind::NodeSelector
                | Kind::Replicas
                | Kind::Hpa
        )
    }

    /// Traits meaningless for a Job, whose pods run to completion.
    fn long_running_only(self) -> bool {
        matches!(self, Kind::Service | Kind::Ingress | Kind::Replicas | Kind::Hpa)
    }
}

/// Names given that are not traits we know, in order, without repeats.
pub(super) fn unknown(traits: &[TraitSpec]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in traits {
        if Kind::of(&t.name).is_none() && !out.contains(&t.name) {
            out.push(t.name.clone());
        }
    }
    out
}

/// What the traits need to know about the component.
pub(super) struct Ctx<'a> {
    /// The workload's name; derived object names start with it, the Service has exactly it.
    pub(super) base: &'a str,
    pub(super) namespace: &'a str,
    /// Labels selecting the workload's pods.
    pub(super) selector: &'a Map<String, Value>,
}

/// Objects the traits add, each with `metadata.name` (and possibly trait-given labels and
/// annotations) but not yet the ownership metadata.
#[derive(Debug, Default)]
pub(super) struct Added {
    /// ConfigMaps, Secrets and PVCs, in trait order; applied before the workload.
    pub(super) config: Vec<Value>,
    /// Service, Ingresses, then HPA; applied after the workload.
    pub(super) after: Vec<Value>,
}

/// Applies `traits` (all known, see [`unknown`]) to `w`, returning the objects they add.
pub(super) fn apply(traits: &[TraitSpec], w: &mut Workload, ctx: &Ctx<'_>, p: &mut Problems) -> Added {
    let mut seen: Vec<(Kind, &str)> = Vec::new();
    let mut service: Option<network::ServiceOut> = None;
    let mut ingress_specs = Vec::new();
    let mut hpa = None;
    let mut replicas_trait = false;
    let mut added = Added::default();
    let mut config_names = Vec::new();
    for t in traits {
        let Some(kind) = Kind::of(&t.name) else { continue };
        let at = At::new(Part::Trait(t.name.clone()), "spec");
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kind && kind.single()) {
            p.add(&at.whole(), format!("is given more than once (also as '{first}')"));
            continue;
        }
        seen.push((kind, &t.name));
        if w.kind == WorkloadKind::Job && kind.long_running_only() {
            p.add(&at.whole(), "does not apply to a K8S_JOB component");
            continue;
        }
        match kind {
            Kind::Service => service = network::service(&t.spec, &at, w, ctx, p),
            Kind::Ingress => ingress_specs.push((t, at)),
            Kind::Env => pod::env(&t.spec, &at, &mut w.pod, p),
            Kind::Resources => pod::resources(&t.spec, &at, &mut w.pod, p),
            Kind::Probes => pod::probes(&t.spec, &at, &mut w.pod, p),
            Kind::ConfigMap | Kind::Secret | Kind::Volume => {
                if let Some(obj) = config::config(kind, &t.spec, &at, &mut w.pod, ctx, &mut config_names, p) {
                    added.config.push(obj);
                }
            }
            Kind::Tolerations => w.pod.tolerations = pod::tolerations(&t.spec, &at, p),
            Kind::Affinity => w.pod.affinity = pod::affinity(&t.spec, &at, p),
            Kind::NodeSelector => w.pod.node_selector = pod::node_selector(&t.spec, &at, p),
            Kind::Replicas => {
                replicas_trait = true;
                if let Some(r) = pod::replicas(&t.spec, &at, p) {
                    w.replicas = Some(r);
                }
            }
            Kind::Hpa => hpa = pod::hpa(&t.spec, &at, w.kind, ctx, p).map(|h| (h, at)),
        }
    }
    if let Some((_, at)) = &hpa {
        if replicas_trait {
            p.add(&at.whole(), "cannot be combined with the replicas trait (the HPA owns the count)");
        }
        // Applying a count would reset what the autoscaler chose on every revision.
        w.replicas = None;
    }
    let mut ingresses = Vec::new();
    for (i, (t, at)) in ingress_specs.iter().enumerate() {
        if let Some(ing) = network::ingress(&t.spec, at, i, service.as_ref(), ctx, p) {
            if ingresses.iter().any(|(_, key)| *key == ing.1) {
                p.add(at, "routes the same host and path as an earlier ingress trait");
            } else {
                ingresses.push(ing);
            }
        }
    }
    if let Some(s) = service {
        added.after.push(s.object);
    }
    added.after.extend(ingresses.into_iter().map(|(obj, _)| obj));
    if let Some((h, _)) = hpa {
        added.after.push(h);
    }
    added
}

/// Which containers a container-level trait changes when it names none.
#[derive(Debug, Clone, Copy)]
enum Default {
    /// Init containers and main containers.
    All,
    /// Main containers.
    Main,
    /// The first main container (the service; later ones are sidecars).
    First,
}

/// The containers selected by the optional `containerName` field, or the default set.
fn targets<'w>(
    o: Obj<'_, '_>,
    pod: &'w mut Pod,
    default: Default,
    p: &mut Problems,
) -> Vec<&'w mut Container> {
    if let Some(name) = o.string(p, "containerName") {
        if !pod.has_container(&name) {
            p.add(&o.at.key("containerName"), format!("no container named '{name}'"));
            return Vec::new();
        }
        return pod.all_containers_mut().filter(|c| c.name == name).collect();
    }
    match default {
        Default::All => pod.all_containers_mut().collect(),
        Default::Main => pod.containers.iter_mut().collect(),
        Default::First => pod.containers.iter_mut().take(1).collect(),
    }
}
