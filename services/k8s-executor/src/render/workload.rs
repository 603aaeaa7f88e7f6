//! SREWorks workload specs (`K8S_MICROSERVICE`, `K8S_JOB`) → a small typed model of the workload
//! and its pod, which traits then adjust, → the Deployment, StatefulSet or Job object.
//!
//! The Microservice spec is the one AppManager writes (see the health fixture and
//! `package-store`'s `build/oam.rs`): `kind` (Deployment or StatefulSet), `replicas`,
//! `containers`, `initContainers`, `env` as a name → value map, plus `name`/`serviceName` which
//! AppManager leaves empty. The Job spec has the single container `job` and/or `containers`. The
//! `env` map goes to every container, init containers included (the health app's `db-migration`
//! init container needs the same database settings as the service); a container's own `env`
//! entries override it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::check::{At, Obj, Problems, object, quantity, scalar, scalar_map, strings};
use super::error::Part;
use super::names::{is_dns1123_label, is_port_name};

/// Which controller runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WorkloadKind {
    Deployment,
    StatefulSet,
    Job,
}

impl WorkloadKind {
    pub(super) fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet => "apps/v1",
            WorkloadKind::Job => "batch/v1",
        }
    }

    pub(super) fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContainerPort {
    pub(super) container_port: u16,
    pub(super) name: Option<String>,
    pub(super) protocol: String,
}

#[derive(Debug, Clone)]
pub(super) struct Container {
    pub(super) name: String,
    pub(super) image: String,
    pub(super) command: Option<Vec<String>>,
    pub(super) args: Option<Vec<String>>,
    pub(super) ports: Vec<ContainerPort>,
    /// `EnvVar` objects, unique by name, in order.
    pub(super) env: Vec<Value>,
    /// Other container fields, emitted in key order after the ones above.
    pub(super) extra: BTreeMap<String, Value>,
}

impl Container {
    /// Sets an env var, replacing one of the same name in place (a duplicate name would make the
    /// server-side apply of the list fail).
    pub(super) fn set_env(&mut self, entry: Value) {
        let name = entry.get("name").cloned();
        match self.env.iter_mut().find(|e| e.get("name") == name.as_ref()) {
            Some(slot) => *slot = entry,
            None => self.env.push(entry),
        }
    }

    /// Appends to a list field (`volumeMounts`, `envFrom`).
    pub(super) fn push(&mut self, key: &str, item: Value) {
        let slot = self.extra.entry(key.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = slot {
            items.push(item);
        }
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("image".into(), self.image.clone().into());
        if let Some(c) = &self.command {
            m.insert("command".into(), c.clone().into());
        }
        if let Some(a) = &self.args {
            m.insert("args".into(), a.clone().into());
        }
        if !self.ports.is_empty() {
            let ports = self
                .ports
                .iter()
                .map(|p| {
                    let mut pm = Map::new();
                    pm.insert("containerPort".into(), p.container_port.into());
                    if let Some(n) = &p.name {
                        pm.insert("name".into(), n.clone().into());
                    }
                    pm.insert("protocol".into(), p.protocol.clone().into());
                    Value::Object(pm)
                })
                .collect();
            m.insert("ports".into(), Value::Array(ports));
        }
        if !self.env.is_empty() {
            m.insert("env".into(), Value::Array(self.env.clone()));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Pod {
    pub(super) init_containers: Vec<Container>,
    pub(super) containers: Vec<Container>,
    pub(super) volumes: Vec<Value>,
    pub(super) node_selector: Option<BTreeMap<String, String>>,
    pub(super) affinity: Option<Value>,
    pub(super) tolerations: Option<Vec<Value>>,
}

impl Pod {
    /// Every container, init containers first.
    pub(super) fn all_containers_mut(&mut self) -> impl Iterator<Item = &mut Container> {
        self.init_containers.iter_mut().chain(self.containers.iter_mut())
    }

    pub(super) fn has_container(&self, name: &str) -> bool {
        self.init_containers.iter().chain(&self.containers).any(|c| c.name == name)
    }

    fn to_value(&self, restart_policy: Option<&str>) -> Value {
        let mut m = Map::new();
        if !self.init_containers.is_empty() {
            m.insert("initContainers".into(), self.init_containers.iter().map(Container::to_value).collect());
        }
        m.insert("containers".into(), self.containers.iter().map(Container::to_value).collect());
        if !self.volumes.is_empty() {
            m.insert("volumes".into(), Value::Array(self.volumes.clone()));
        }
        if let Some(ns) = &self.node_selector {
            m.insert(
                "nodeSelector".into(),
                ns.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect(),
            );
        }
        if let Some(a) = &self.affinity {
            m.insert("affinity".into(), a.clone());
        }
        if let Some(t) = &self.tolerations {
            m.insert("tolerations".into(), Value::Array(t.clone()));
        }
        if let Some(r) = restart_policy {
            m.insert("restartPolicy".into(), r.into());
        }
        Value::Object(m)
    }
}

/// A parsed workload; traits adjust it before [`Workload::to_object`].
#[derive(Debug, Clone)]
pub(super) struct Workload {
    pub(super) kind: WorkloadKind,
    /// `None`: leave it to Kubernetes' default or to an HPA.
    pub(super) replicas: Option<u64>,
    /// A StatefulSet's governing Service, when the spec names one.
    pub(super) service_name: Option<String>,
    pub(super) backoff_limit: Option<u64>,
    pub(super) active_deadline_seconds: Option<u64>,
    pub(super) restart_policy: &'static str,
    pub(super) pod: Pod,
}

const MAX_I32: u64 = i32::MAX as u64;

const MICROSERVICE_FIELDS: &[&str] =
    &["kind", "replicas", "name", "serviceName", "containers", "initContainers", "env", "ports"];
const JOB_FIELDS: &[&str] = &[
    "name",
    "job",
    "containers",
    "initContainers",
    "env",
    "backoffLimit",
    "activeDeadlineSeconds",
    "restartPolicy",
];
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "ports",
    "env",
    "envFrom",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "imagePullPolicy",
    "workingDir",
    "securityContext",
    "lifecycle",
    "volumeMounts",
    // Build settings of the image (SREWorks packageOptions); nothing to deploy.
    "build",
];

impl Workload {
    fn empty(kind: WorkloadKind) -> Self {
        Workload {
            kind,
            replicas: None,
            service_name: None,
            backoff_limit: None,
            active_deadline_seconds: None,
            restart_policy: "Never",
            pod: Pod::default(),
        }
    }

    /// Parses a `K8S_MICROSERVICE` spec. Always returns a workload (possibly incomplete) so traits
    /// can still be checked against it; problems go to `p`.
    pub(super) fn microservice(spec: &Value, p: &mut Problems) -> Workload {
        let at = At::new(Part::Workload, "");
        let mut w = Workload::empty(WorkloadKind::Deployment);
        let Some(map) = object(p, &at, spec) else { return w };
        let o = Obj { map, at: &at };
        o.only(p, MICROSERVICE_FIELDS);
        match o.string(p, "kind").as_deref() {
            None | Some("Deployment") => {}
            Some("StatefulSet") => w.kind = WorkloadKind::StatefulSet,
            Some(_) => p.add(&at.key("kind"), "must be Deployment or StatefulSet"),
        }
        w.replicas = o.uint(p, "replicas", MAX_I32);
        w.service_name = o.string(p, "serviceName").filter(|s| !s.is_empty());
        if let Some(s) = &w.service_name
            && !is_dns1123_label(s)
        {
            p.add(&at.key("serviceName"), "must be a DNS-1123 label");
        }
        w.pod = pod(o, p, true);
        check_unique_names(&w.pod, p, &at);
        if let Some(ports) = o.array(p, "ports") {
            let at_ports = at.key("ports");
            let parsed = container_ports(p, &at_ports, ports);
            if let Some(first) = w.pod.containers.first_mut() {
                for port in parsed {
                    if first
                        .ports
                        .iter()
                        .any(|q| q.container_port == port.container_port && q.protocol == port.protocol)
                    {
                        p.add(
                            &at_ports,
                            format!("port {} is already declared by the container", port.container_port),
                        );
                    } else {
                        first.ports.push(port);
                    }
                }
            }
        }
        w
    }

    /// Parses a `K8S_JOB` spec (see [`Workload::microservice`]).
    pub(super) fn job(spec: &Value, p: &mut Problems) -> Workload {
        let at = At::new(Part::Workload, "");
        let mut w = Workload::empty(WorkloadKind::Job);
        let Some(map) = object(p, &at, spec) else { return w };
        let o = Obj { map, at: &at };
        o.only(p, JOB_FIELDS);
        w.backoff_limit = o.uint(p, "backoffLimit", MAX_I32);
        w.active_deadline_seconds = o.uint(p, "activeDeadlineSeconds", MAX_I32);
        if w.active_deadline_seconds == Some(0) {
            p.add(&at.key("activeDeadlineSeconds"), "must be at least 1");
        }
        match o.string(p, "restartPolicy").as_deref() {
            None | Some("Never") => {}
            Some("OnFailure") => w.restart_policy = "OnFailure",
            Some(_) => {
                p.add(&at.key("restartPolicy"), "must be Never or OnFailure (a Job's pods cannot be Always)")
            }
        }
        w.pod = pod(o, p, o.get("job").is_none());
        if let Some(mut job) = o.get("job").and_then(|v| container(p, &at.key("job"), v)) {
            let own = std::mem::replace(&mut job.env, env_map(o, &mut Problems::default()));
            own.into_iter().for_each(|e| job.set_env(e));
            w.pod.containers.insert(0, job);
        }
        check_unique_names(&w.pod, p, &at);
        w
    }

    /// The workload object. `meta` is its finished `metadata`; `pod_labels` go on the pod
    /// template, `selector` (a subset of them) selects its pods.
    pub(super) fn to_object(
        &self,
        meta: Value,
        pod_labels: &Map<String, Value>,
        selector: &Map<String, Value>,
        service_name: &str,
    ) -> Value {
        let template = json!({
            "metadata": { "labels": pod_labels },
            "spec": self.pod.to_value((self.kind == WorkloadKind::Job).then_some(self.restart_policy)),
        });
        let mut spec = Map::new();
        match self.kind {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet => {
                if let Some(r) = self.replicas {
                    spec.insert("replicas".into(), r.into());
                }
                if self.kind == WorkloadKind::StatefulSet {
                    spec.insert(
                        "serviceName".into(),
                        self.service_name.as_deref().unwrap_or(service_name).into(),
                    );
                }
                spec.insert("selector".into(), json!({ "matchLabels": selector }));
            }
            // The Job controller generates its own selector; setting one needs `manualSelector`.
            WorkloadKind::Job => {
                if let Some(b) = self.backoff_limit {
                    spec.insert("backoffLimit".into(), b.into());
                }
                if let Some(d) = self.active_deadline_seconds {
                    spec.insert("activeDeadlineSeconds".into(), d.into());
                }
            }
        }
        spec.insert("template".into(), template);
        json!({
            "apiVersion": self.kind.api_version(),
            "kind": self.kind.kind(),
            "metadata": meta,
            "spec": spec,
        })
    }
}

/// The `env` map as `EnvVar`s sorted by name.
fn env_map(o: Obj<'_, '_>, p: &mut Problems) -> Vec<Value> {
    match o.get("env") {
        Some(v) => scalar_map(p, &o.at.key("env"), v)
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| env_name_ok(p, &o.at.key("env").key(name), name))
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
        None => Vec::new(),
    }
}

/// The pod part shared by both specs: `env`, `initContainers`, `containers`. `containers_required`:
/// `containers` must list at least one container.
fn pod(o: Obj<'_, '_>, p: &mut Problems, containers_required: bool) -> Pod {
    let mut pod = Pod::default();
    let env = env_map(o, p);
    let mut list = |key: &str| -> Vec<Container> {
        let at = o.at.key(key);
        let items = o.array(p, key).map(Vec::as_slice).unwrap_or_default();
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let mut c = container(p, &at.index(i), v)?;
                // The map first, then the container's own entries on top of it.
                let own = std::mem::replace(&mut c.env, env.clone());
                own.into_iter().for_each(|e| c.set_env(e));
                Some(c)
            })
            .collect()
    };
    pod.init_containers = list("initContainers");
    pod.containers = list("containers");
    if containers_required {
        match o.get("containers").and_then(Value::as_array) {
            None if o.get("containers").is_none() => {
                p.add(&o.at.key("containers"), "is required (at least one container)")
            }
            Some(items) if items.is_empty() => {
                p.add(&o.at.key("containers"), "must list at least one container")
            }
            _ => {}
        }
    }
    pod
}

fn check_unique_names(pod: &Pod, p: &mut Problems, at: &At) {
    let mut seen = std::collections::BTreeSet::new();
    for c in pod.init_containers.iter().chain(&pod.containers) {
        if !seen.insert(c.name.as_str()) {
            p.add(at, format!("container name '{}' is used twice", c.name));
        }
    }
}

fn env_name_ok(p: &mut Problems, at: &At, name: &str) -> bool {
    let ok = !name.is_empty() && !name.contains('=') && name.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ok {
        p.add(at, "is not a valid environment variable name");
    }
    ok
}

fn container(p: &mut Problems, at: &At, v: &Value) -> Option<Container> {
    let map = object(p, at, v)?;
    let o = Obj { map, at };
    o.only(p, CONTAINER_FIELDS);
    let name = o.required(p, "name").and_then(|_| o.string(p, "name"));
    if let Some(n) = &name
        && !is_dns1123_label(n)
    {
        p.add(&at.key("name"), "must be a DNS-1123 label (lowercase letters, digits, '-', at most 63)");
    }
    let image = o.required(p, "image").and_then(|_| o.string(p, "image"));
    if image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        p.add(&at.key("image"), "must not be empty");
    }
    let command = o.get("command").and_then(|v| strings(p, &at.key("command"), v));
    let args = o.get("args").and_then(|v| strings(p, &at.key("args"), v));
    let ports = o.array(p, "ports").map(|a| container_ports(p, &at.key("ports"), a)).unwrap_or_default();
    let mut c = Container {
        name: name.unwrap_or_default(),
        image: image.unwrap_or_default(),
        command,
        args,
        ports,
        env: Vec::new(),
        extra: BTreeMap::new(),
    };
    for (i, e) in o.array(p, "env").map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        if let Some(e) = env_entry(p, &at.key("env").index(i), e) {
            c.set_env(e);
        }
    }
    for key in ["envFrom", "volumeMounts"] {
        if let Some(items) = o.array(p, key) {
            for (i, item) in items.iter().enumerate() {
                object(p, &at.key(key).index(i), item);
            }
            c.extra.insert(key.into(), Value::Array(items.clone()));
        }
    }
    if let Some(r) = o.get("resources").and_then(|v| resources(p, &at.key("resources"), v)) {
        c.extra.insert("resources".into(), r);
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(v) = o.get(key).and_then(|v| probe(p, &at.key(key), v)) {
            c.extra.insert(key.into(), v);
        }
    }
    match o.string(p, "imagePullPolicy") {
        Some(s) if ["Always", "IfNotPresent", "Never"].contains(&s.as_str()) => {
            c.extra.insert("imagePullPolicy".into(), s.into());
        }
        Some(_) => p.add(&at.key("imagePullPolicy"), "must be Always, IfNotPresent or Never"),
        None => {}
    }
    if let Some(s) = o.string(p, "workingDir") {
        c.extra.insert("workingDir".into(), s.into());
    }
    for key in ["securityContext", "lifecycle"] {
        if let Some(m) = o.object(p, key) {
            c.extra.insert(key.into(), Value::Object(m.clone()));
        }
    }
    Some(c)
}

fn container_ports(p: &mut Problems, at: &At, items: &[Value]) -> Vec<ContainerPort> {
    let mut out: Vec<ContainerPort> = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let at = at.index(i);
        let Some(map) = object(p, &at, v) else { continue };
        let o = Obj { map, at: &at };
        o.only(p, &["containerPort", "name", "protocol"]);
        let port =
            o.required(p, "containerPort").and_then(|v| super::check::port(p, &at.key("containerPort"), v));
        let name = o.string(p, "name").filter(|n| !n.is_empty());
        if let Some(n) = &name
            && !is_port_name(n)
        {
            p.add(&at.key("name"), "must be a port name (at most 15 of a-z, 0-9, '-', with a letter)");
        }
        let protocol = protocol(p, o);
        if let (Some(container_port), Some(protocol)) = (port, protocol) {
            let port = ContainerPort { container_port, name, protocol };
            if out.iter().any(|q| q.container_port == port.container_port && q.protocol == port.protocol) {
                p.add(&at, format!("port {container_port} is listed twice"));
            } else {
                out.push(port);
            }
        }
    }
    out
}

/// `protocol`: TCP (default), UDP or SCTP.
pub(super) fn protocol(p: &mut Problems, o: Obj<'_, '_>) -> Option<String> {
    match o.string(p, "protocol").as_deref() {
        None => Some("TCP".into()),
        Some(s @ ("TCP" | "UDP" | "SCTP")) => Some(s.into()),
        Some(_) => {
            p.add(&o.at.key("protocol"), "must be TCP, UDP or SCTP");
            None
        }
    }
}

/// An `EnvVar`: `name` plus `value` (made text) or `valueFrom`.
pub(super) fn env_entry(p: &mut Problems, at: &At, v: &Value) -> Option<Value> {
    let map = object(p, at, v)?;
    let o = Obj { map, at };
    o.only(p, &["name", "value", "valueFrom"]);
    let name = o.required(p, "name").and_then(|_| o.string(p, "name"))?;
    if !env_name_ok(p, &at.key("name"), &name) {
        return None;
    }
    let mut out = Map::new();
    out.insert("name".into(), name.into());
    match (o.get("value"), o.object(p, "valueFrom")) {
        (Some(_), Some(_)) => {
            p.add(at, "give either value or valueFrom, not both");
            return None;
        }
        (Some(v), None) => {
            out.insert("value".into(), scalar(p, &at.key("value"), v)?.into());
        }
        (None, Some(from)) => {
            out.insert("valueFrom".into(), Value::Object(from.clone()));
        }
        (None, None) => {
            out.insert("value".into(), "".into());
        }
    }
    Some(Value::Object(out))
}

/// `ResourceRequirements` with `requests`/`limits` quantities made text, keys sorted.
pub(super) fn resources(p: &mut Problems, at: &At, v: &Value) -> Option<Value> {
    let map = object(p, at, v)?;
    let o = Obj { map, at };
    o.only(p, &["requests", "limits"]);
    let mut out = Map::new();
    for key in ["limits", "requests"] {
        if let Some(m) = o.object(p, key) {
            out.insert(key.into(), quantities(p, &at.key(key), m));
        }
    }
    Some(Value::Object(out))
}

pub(super) fn quantities(p: &mut Problems, at: &At, m: &Map<String, Value>) -> Value {
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    sorted
        .into_iter()
        .filter_map(|(k, v)| quantity(p, &at.key(k), v).map(|q| (k.clone(), Value::from(q))))
        .collect()
}

/// A `Probe`, passed through after checking it has exactly one handler.
pub(super) fn probe(p: &mut Problems, at: &At, v: &Value) -> Option<Value> {
    let map = object(p, at, v)?;
    let handlers = ["httpGet", "tcpSocket", "exec", "grpc"].iter().filter(|h| map.contains_key(**h)).count();
    if handlers != 1 {
        p.add(at, "needs exactly one of httpGet, tcpSocket, exec or grpc");
        return None;
    }
    Some(Value::Object(map.clone()))
}
