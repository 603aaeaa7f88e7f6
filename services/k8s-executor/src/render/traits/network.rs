//! `service.trait.abm.io` / `service` → a Service; `gateway.trait.abm.io` / `ingress` → an Ingress.
//!
//! SREWorks' gateway trait registers a route in its own API gateway: `path: /health/**`,
//! `serviceName: prod-health-health.<namespace>`, `servicePort: 80`, `authEnabled`, `routeId`. We
//! express the same route as a standard Ingress: a trailing `/**` becomes a `Prefix` path, the
//! service may carry its namespace suffix only when it is the target namespace (an Ingress cannot
//! route across namespaces), and `authEnabled` is kept as the annotation `sreworks.io/gateway-auth`
//! for the gateway in front of the ingress controller to enforce — never silently dropped.
//! `routeId` and `order` only order SREWorks' own route table and are ignored.

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::render::check::{At, Obj, PortRef, Problems, annotation_map, label_map, object, port, port_ref};
use crate::render::names::{MAX_NAME_LEN, is_dns1123_label, is_dns1123_subdomain, object_name};
use crate::render::workload::{Workload, protocol};

/// The annotation carrying a gateway trait's `authEnabled`.
pub const GATEWAY_AUTH_ANNOTATION: &str = "sreworks.io/gateway-auth";

/// The Service the service trait renders, and what an Ingress needs to route to it.
#[derive(Debug)]
pub(super) struct ServiceOut {
    pub(super) object: Value,
    /// `(port, name)` in order.
    ports: Vec<(u16, Option<String>)>,
}

struct ServicePort {
    port: u16,
    target: PortRef,
    protocol: String,
    name: Option<String>,
    node_port: Option<u16>,
}

/// `ports` (default: the containers' ports), `type`, `labels`, `annotations`.
pub(super) fn service(
    spec: &Value,
    at: &At,
    w: &Workload,
    ctx: &Ctx<'_>,
    p: &mut Problems,
) -> Option<ServiceOut> {
    let map = object(p, at, spec)?;
    let o = Obj { map, at };
    o.only(p, &["ports", "type", "labels", "annotations"]);
    let ty = match o.string(p, "type").as_deref() {
        None => "ClusterIP",
        Some("NodePort") => "NodePort",
        Some("LoadBalancer") => "LoadBalancer",
        Some("ClusterIP") => "ClusterIP",
        Some(_) => {
            p.add(&at.key("type"), "must be ClusterIP, NodePort or LoadBalancer");
            "ClusterIP"
        }
    };
    let mut ports = Vec::new();
    if let Some(items) = o.array(p, "ports") {
        for (i, v) in items.iter().enumerate() {
            let at = at.key("ports").index(i);
            let Some(map) = object(p, &at, v) else { continue };
            let po = Obj { map, at: &at };
            po.only(p, &["port", "targetPort", "protocol", "name", "nodePort"]);
            let number = po.required(p, "port").and_then(|v| port(p, &at.key("port"), v));
            let target = po.get("targetPort").and_then(|v| port_ref(p, &at.key("targetPort"), v));
            let name = po.string(p, "name").filter(|n| !n.is_empty());
            if let Some(n) = &name
                && !is_dns1123_label(n)
            {
                p.add(&at.key("name"), "must be a DNS-1123 label");
            }
            let node_port = po.get("nodePort").and_then(|v| port(p, &at.key("nodePort"), v));
            if node_port.is_some() && ty == "ClusterIP" {
                p.add(&at.key("nodePort"), "needs type NodePort or LoadBalancer");
            }
            if let (Some(number), Some(protocol)) = (number, protocol(p, po)) {
                let target = target.unwrap_or(PortRef::Number(number));
                ports.push(ServicePort { port: number, target, protocol, name, node_port });
            }
        }
    } else {
        for c in &w.pod.containers {
            for cp in &c.ports {
                ports.push(ServicePort {
                    port: cp.container_port,
                    target: PortRef::Number(cp.container_port),
                    protocol: cp.protocol.clone(),
                    name: cp.name.clone(),
                    node_port: None,
                });
            }
        }
        if ports.is_empty() && !w.pod.containers.is_empty() {
            p.add(&at.key("ports"), "is required (the containers declare no ports)");
        }
    }
    // Kubernetes needs a name on every port of a multi-port Service.
    if ports.len() > 1 {
        for sp in ports.iter_mut().filter(|sp| sp.name.is_none()) {
            sp.name = Some(format!("{}-{}", sp.protocol.to_ascii_lowercase(), sp.port));
        }
    }
    for (i, sp) in ports.iter().enumerate() {
        let earlier = &ports[..i];
        if earlier.iter().any(|q| q.port == sp.port && q.protocol == sp.protocol) {
            p.add(&at.key("ports"), format!("port {}/{} is listed twice", sp.port, sp.protocol));
        } else if sp.name.is_some() && earlier.iter().any(|q| q.name == sp.name) {
            p.add(
                &at.key("ports"),
                format!("port name '{}' is used twice", sp.name.as_deref().unwrap_or_default()),
            );
        }
    }
    let mut meta = Map::new();
    meta.insert("name".into(), ctx.base.into());
    for key in ["labels", "annotations"] {
        let Some(v) = o.get(key) else { continue };
        let m =
            if key == "labels" { label_map(p, &at.key(key), v) } else { annotation_map(p, &at.key(key), v) };
        if let Some(m) = m {
            meta.insert(key.into(), m.into_iter().map(|(k, v)| (k, Value::from(v))).collect());
        }
    }
    let port_values: Vec<Value> = ports
        .iter()
        .map(|sp| {
            let mut m = Map::new();
            if let Some(n) = &sp.name {
                m.insert("name".into(), n.clone().into());
            }
            m.insert("port".into(), sp.port.into());
            m.insert("targetPort".into(), sp.target.to_value());
            m.insert("protocol".into(), sp.protocol.clone().into());
            if let Some(np) = sp.node_port {
                m.insert("nodePort".into(), np.into());
            }
            Value::Object(m)
        })
        .collect();
    let object = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": { "type": ty, "selector": ctx.selector, "ports": port_values },
    });
    Some(ServiceOut { object, ports: ports.into_iter().map(|sp| (sp.port, sp.name)).collect() })
}

/// An Ingress for one `gateway.trait.abm.io` / `ingress` trait (the `index`-th of them), and the
/// `(host, path)` it routes so duplicates can be refused.
pub(super) fn ingress(
    spec: &Value,
    at: &At,
    index: usize,
    service: Option<&ServiceOut>,
    ctx: &Ctx<'_>,
    p: &mut Problems,
) -> Option<(Value, (String, String))> {
    let map = object(p, at, spec)?;
    let o = Obj { map, at };
    o.only(
        p,
        &[
            "host",
            "path",
            "pathType",
            "serviceName",
            "servicePort",
            "ingressClassName",
            "annotations",
            "tlsSecretName",
            "authEnabled",
            "routeId",
            "order",
        ],
    );
    let host = o.string(p, "host").filter(|h| !h.is_empty());
    if let Some(h) = &host
        && !is_dns1123_subdomain(h.strip_prefix("*.").unwrap_or(h))
    {
        p.add(&at.key("host"), "must be a lowercase DNS name, optionally starting with '*.'");
    }
    let (path, path_type) = path(o, p)?;
    let backend = backend_service(o, service, ctx, p)?;
    let own = backend == ctx.base;
    let port = match o.get("servicePort").and_then(|v| port_ref(p, &at.key("servicePort"), v)) {
        Some(given) => {
            if let (true, Some(s)) = (own, service) {
                let known = match &given {
                    PortRef::Number(n) => s.ports.iter().any(|(q, _)| q == n),
                    PortRef::Name(n) => s.ports.iter().any(|(_, q)| q.as_deref() == Some(n)),
                };
                if !known {
                    p.add(&at.key("servicePort"), "is not a port of the component's Service");
                }
            }
            given
        }
        None if o.get("servicePort").is_some() => return None,
        // SREWorks' gateway routes to port 80 unless told otherwise.
        None => match (own, service) {
            (true, Some(s)) => s.ports.first().map_or(PortRef::Number(80), |(n, _)| PortRef::Number(*n)),
            _ => PortRef::Number(80),
        },
    };
    let port_value = match &port {
        PortRef::Number(n) => json!({ "number": n }),
        PortRef::Name(n) => json!({ "name": n }),
    };
    let mut rule = Map::new();
    if let Some(h) = &host {
        rule.insert("host".into(), h.clone().into());
    }
    rule.insert(
        "http".into(),
        json!({ "paths": [{
            "path": path,
            "pathType": path_type,
            "backend": { "service": { "name": backend, "port": port_value } },
        }] }),
    );
    let mut spec = Map::new();
    if let Some(class) = o.string(p, "ingressClassName") {
        if !is_dns1123_subdomain(&class) {
            p.add(&at.key("ingressClassName"), "must be a DNS-1123 subdomain");
        }
        spec.insert("ingressClassName".into(), class.into());
    }
    if let Some(secret) = o.string(p, "tlsSecretName") {
        if !is_dns1123_subdomain(&secret) {
            p.add(&at.key("tlsSecretName"), "must be a DNS-1123 subdomain");
        }
        match &host {
            Some(h) => {
                spec.insert("tls".into(), json!([{ "hosts": [h], "secretName": secret }]));
            }
            None => p.add(&at.key("tlsSecretName"), "needs a host"),
        }
    }
    spec.insert("rules".into(), json!([rule]));
    let mut annotations: Map<String, Value> = match o.get("annotations") {
        Some(v) => {
            annotation_map(p, &at.key("annotations"), v)?.into_iter().map(|(k, v)| (k, v.into())).collect()
        }
        None => Map::new(),
    };
    if let Some(auth) = o.boolean(p, "authEnabled") {
        annotations.insert(GATEWAY_AUTH_ANNOTATION.into(), auth.to_string().into());
    }
    o.string(p, "routeId");
    let name = if index == 0 {
        ctx.base.to_owned()
    } else {
        object_name(&[ctx.base, &(index + 1).to_string()], MAX_NAME_LEN)
    };
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": spec,
    });
    Some((object, (host.unwrap_or_default(), path)))
}

/// `path` and `pathType`: a trailing `/**` (SREWorks' gateway pattern) means `Prefix`.
fn path(o: Obj<'_, '_>, p: &mut Problems) -> Option<(String, String)> {
    let raw = o.string(p, "path").unwrap_or_else(|| "/".into());
    let given_type = o.string(p, "pathType");
    if let Some(t) = &given_type
        && !["Prefix", "Exact", "ImplementationSpecific"].contains(&t.as_str())
    {
        p.add(&o.at.key("pathType"), "must be Prefix, Exact or ImplementationSpecific");
        return None;
    }
    if !raw.starts_with('/') {
        p.add(&o.at.key("path"), "must start with '/'");
        return None;
    }
    match raw.strip_suffix("/**") {
        Some(prefix) if !prefix.contains('*') => {
            if given_type.as_deref().is_some_and(|t| t != "Prefix") {
                p.add(&o.at.key("pathType"), "must be Prefix for a path ending in '/**'");
            }
            let prefix = if prefix.is_empty() { "/" } else { prefix };
            Some((prefix.to_owned(), "Prefix".into()))
        }
        _ if raw.contains('*') => {
            p.add(&o.at.key("path"), "may only use '*' as a trailing '/**'");
            None
        }
        _ => Some((raw, given_type.unwrap_or_else(|| "Prefix".into()))),
    }
}

/// The backend Service's name: `serviceName` (`name` or `name.<target namespace>[.svc[.cluster.local]]`),
/// or the component's own Service.
fn backend_service(
    o: Obj<'_, '_>,
    service: Option<&ServiceOut>,
    ctx: &Ctx<'_>,
    p: &mut Problems,
) -> Option<String> {
    let at = o.at.key("serviceName");
    let Some(given) = o.string(p, "serviceName").filter(|s| !s.is_empty()) else {
        if service.is_none() {
            p.add(&at, "is required when the component has no service trait");
            return None;
        }
        return Some(ctx.base.to_owned());
    };
    let (name, qualifier) = given.split_once('.').unwrap_or((&given, ""));
    if !is_dns1123_label(name) {
        p.add(&at, "must be a Service name, optionally followed by '.<namespace>'");
        return None;
    }
    let ns = qualifier
        .strip_suffix(".svc.cluster.local")
        .or_else(|| qualifier.strip_suffix(".svc"))
        .unwrap_or(qualifier);
    if !ns.is_empty() && ns != ctx.namespace {
        p.add(
            &at,
            format!(
                "names namespace '{ns}', but an Ingress can only route to Services in its own namespace '{}'",
                ctx.namespace
            ),
        );
        return None;
    }
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::error::Part;

    fn path_of(spec: Value) -> Result<(String, String), Vec<String>> {
        let at = At::new(Part::Trait("ingress".into()), "spec");
        let mut p = Problems::default();
        let map = spec.as_object().unwrap().clone();
        let out = path(Obj { map: &map, at: &at }, &mut p);
        out.ok_or_else(|| p.into_vec().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn gateway_patterns_become_prefix_paths() {
        assert_eq!(path_of(json!({ "path": "/health/**" })), Ok(("/health".into(), "Prefix".into())));
        assert_eq!(path_of(json!({ "path": "/**" })), Ok(("/".into(), "Prefix".into())));
        assert_eq!(path_of(json!({})), Ok(("/".into(), "Prefix".into())));
        assert_eq!(
            path_of(json!({ "path": "/api", "pathType": "Exact" })),
            Ok(("/api".into(), "Exact".into()))
        );
        assert!(path_of(json!({ "path": "/a/*/b" })).unwrap_err()[0].contains("spec.path"));
        assert!(path_of(json!({ "path": "api" })).is_err());
        assert!(path_of(json!({ "path": "/x", "pathType": "Regex" })).is_err());
    }
}
