//! Traits that change the pod or its count: `env`, `resources`, `probes`, `tolerations`,
//! `affinity`, `nodeSelector`, `replicas`, `hpa`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Ctx, Default, targets};
use crate::render::check::{At, Obj, Problems, label_map, object, scalar_map, uint};
use crate::render::workload::{Pod, WorkloadKind, probe, quantities};

const MAX_I32: u64 = i32::MAX as u64;

/// `env: {NAME: value}`, `containerName`: sets (or overrides) env vars in every container.
pub(super) fn env(spec: &Value, at: &At, pod: &mut Pod, p: &mut Problems) {
    let Some(map) = object(p, at, spec) else { return };
    let o = Obj { map, at };
    o.only(p, &["env", "containerName"]);
    let Some(env) = o.required(p, "env").and_then(|v| scalar_map(p, &at.key("env"), v)) else { return };
    if env.is_empty() {
        p.add(&at.key("env"), "must set at least one variable");
    }
    let entries: Vec<Value> = env
        .into_iter()
        .filter(|(name, _)| {
            let ok = !name.is_empty() && !name.contains('=');
            if !ok {
                p.add(&at.key("env").key(name), "is not a valid environment variable name");
            }
            ok
        })
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    for c in targets(o, pod, Default::All, p) {
        entries.iter().for_each(|e| c.set_env(e.clone()));
    }
}

/// `requests`, `limits`, `containerName`: merged over the containers' own resources.
pub(super) fn resources(spec: &Value, at: &At, pod: &mut Pod, p: &mut Problems) {
    let Some(map) = object(p, at, spec) else { return };
    let o = Obj { map, at };
    o.only(p, &["requests", "limits", "containerName"]);
    let mut given = Vec::new();
    for key in ["limits", "requests"] {
        if let Some(m) = o.object(p, key) {
            given.push((key, quantities(p, &at.key(key), m)));
        }
    }
    if given.is_empty() {
        p.add(at, "needs requests or limits");
        return;
    }
    for c in targets(o, pod, Default::Main, p) {
        let res = c.extra.entry("resources".into()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(res) = res else { continue };
        for (key, values) in &given {
            let mut merged: BTreeMap<String, Value> = res
                .get(*key)
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            if let Value::Object(values) = values {
                merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            res.insert((*key).into(), merged.into_iter().collect());
        }
    }
}

/// `liveness`, `readiness`, `startup` probes, `containerName` (default: the first container).
pub(super) fn probes(spec: &Value, at: &At, pod: &mut Pod, p: &mut Problems) {
    let Some(map) = object(p, at, spec) else { return };
    let o = Obj { map, at };
    o.only(p, &["liveness", "readiness", "startup", "containerName"]);
    let mut given = Vec::new();
    for (key, field) in
        [("liveness", "livenessProbe"), ("readiness", "readinessProbe"), ("startup", "startupProbe")]
    {
        if let Some(v) = o.get(key).and_then(|v| probe(p, &at.key(key), v)) {
            given.push((field, v));
        }
    }
    if given.is_empty() && ["liveness", "readiness", "startup"].iter().all(|k| o.get(k).is_none()) {
        p.add(at, "needs liveness, readiness or startup");
    }
    for c in targets(o, pod, Default::First, p) {
        for (field, v) in &given {
            c.extra.insert((*field).into(), v.clone());
        }
    }
}

/// A list of tolerations, bare or as `tolerations: [...]`.
pub(super) fn tolerations(spec: &Value, at: &At, p: &mut Problems) -> Option<Vec<Value>> {
    let (items, at) = match spec {
        Value::Array(items) => (items, at.clone()),
        Value::Object(m) => {
            let o = Obj { map: m, at };
            o.only(p, &["tolerations"]);
            (o.required(p, "tolerations").and_then(|_| o.array(p, "tolerations"))?, at.key("tolerations"))
        }
        _ => {
            p.add(at, "must be a list of tolerations");
            return None;
        }
    };
    let mut out = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let at = at.index(i);
        let Some(map) = object(p, &at, t) else { continue };
        let o = Obj { map, at: &at };
        o.only(p, &["key", "operator", "value", "effect", "tolerationSeconds"]);
        let operator = o.string(p, "operator");
        match operator.as_deref() {
            None | Some("Equal") => {}
            Some("Exists") if o.get("value").is_some() => {
                p.add(&at.key("value"), "must be empty with operator Exists")
            }
            Some("Exists") => {}
            Some(_) => p.add(&at.key("operator"), "must be Equal or Exists"),
        }
        if let Some(e) = o.string(p, "effect")
            && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e.as_str())
        {
            p.add(&at.key("effect"), "must be NoSchedule, PreferNoSchedule or NoExecute");
        }
        o.string(p, "key");
        o.string(p, "value");
        o.uint(p, "tolerationSeconds", u64::MAX >> 1);
        out.push(Value::Object(map.clone()));
    }
    Some(out)
}

/// An `Affinity`: `nodeAffinity`, `podAffinity` and/or `podAntiAffinity`.
pub(super) fn affinity(spec: &Value, at: &At, p: &mut Problems) -> Option<Value> {
    let map = object(p, at, spec)?;
    let o = Obj { map, at };
    let kinds = ["nodeAffinity", "podAffinity", "podAntiAffinity"];
    o.only(p, &kinds);
    for k in kinds {
        o.object(p, k);
    }
    if !kinds.iter().any(|k| o.get(k).is_some()) {
        p.add(at, "needs nodeAffinity, podAffinity or podAntiAffinity");
        return None;
    }
    Some(Value::Object(map.clone()))
}

/// A map of node labels.
pub(super) fn node_selector(spec: &Value, at: &At, p: &mut Problems) -> Option<BTreeMap<String, String>> {
    let m = label_map(p, at, spec)?;
    if m.is_empty() {
        p.add(at, "must name at least one node label");
        return None;
    }
    Some(m)
}

/// A count, bare or as `replicas: n`.
pub(super) fn replicas(spec: &Value, at: &At, p: &mut Problems) -> Option<u64> {
    match spec {
        Value::Object(m) => {
            let o = Obj { map: m, at };
            o.only(p, &["replicas"]);
            o.required(p, "replicas").and_then(|_| o.uint(p, "replicas", MAX_I32))
        }
        v => uint(p, at, v, MAX_I32),
    }
}

/// `minReplicas` (1), `maxReplicas`, `cpuUtilization` / `memoryUtilization` (average percent of the
/// request) or raw autoscaling/v2 `metrics`; CPU at 80% when none is given.
pub(super) fn hpa(
    spec: &Value,
    at: &At,
    kind: WorkloadKind,
    ctx: &Ctx<'_>,
    p: &mut Problems,
) -> Option<Value> {
    let map = object(p, at, spec)?;
    let o = Obj { map, at };
    o.only(p, &["minReplicas", "maxReplicas", "cpuUtilization", "memoryUtilization", "metrics"]);
    let min = o.uint(p, "minReplicas", MAX_I32).unwrap_or(1);
    let max = o.required(p, "maxReplicas").and_then(|_| o.uint(p, "maxReplicas", MAX_I32));
    if min == 0 {
        p.add(&at.key("minReplicas"), "must be at least 1");
    }
    if let Some(max) = max
        && max < min
    {
        p.add(&at.key("maxReplicas"), "must be at least minReplicas");
    }
    let mut metrics = Vec::new();
    for (key, resource) in [("cpuUtilization", "cpu"), ("memoryUtilization", "memory")] {
        if let Some(pct) = o.uint(p, key, 1000) {
            if pct == 0 {
                p.add(&at.key(key), "must be at least 1");
            }
            metrics.push(resource_metric(resource, pct));
        }
    }
    if let Some(raw) = o.array(p, "metrics") {
        for (i, m) in raw.iter().enumerate() {
            if let Some(m) = object(p, &at.key("metrics").index(i), m) {
                if m.get("type").and_then(Value::as_str).is_none() {
                    p.add(&at.key("metrics").index(i).key("type"), "is required");
                }
                metrics.push(Value::Object(m.clone()));
            }
        }
    }
    if metrics.is_empty() {
        metrics.push(resource_metric("cpu", 80));
    }
    Some(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": ctx.base },
        "spec": {
            "scaleTargetRef": { "apiVersion": kind.api_version(), "kind": kind.kind(), "name": ctx.base },
            "minReplicas": min,
            "maxReplicas": max?,
            "metrics": metrics,
        },
    }))
}

fn resource_metric(name: &str, pct: u64) -> Value {
    json!({
        "type": "Resource",
        "resource": { "name": name, "target": { "type": "Utilization", "averageUtilization": pct } },
    })
}
