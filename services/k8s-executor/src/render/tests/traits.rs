//! Each trait: what it renders, and the problems it reports.

use serde_json::json;

use super::*;

#[test]
fn service_and_gateway_traits() {
    let r = ok(&web(&[
        (
            "service.trait.abm.io",
            json!({ "type": "NodePort", "labels": { "tier": "web" },
                    "ports": [{ "port": 80, "targetPort": "http" }, { "port": 9090, "protocol": "UDP", "nodePort": 30090 }] }),
        ),
        (
            "gateway.trait.abm.io",
            json!({ "path": "/api/**", "servicePort": 80, "routeId": "r1", "authEnabled": false }),
        ),
        (
            "ingress",
            json!({ "host": "web.example.com", "path": "/", "pathType": "Exact", "servicePort": "tcp-80",
                            "ingressClassName": "nginx", "tlsSecretName": "web-tls",
                            "annotations": { "nginx.ingress.kubernetes.io/rewrite-target": "/" } }),
        ),
        (
            "gateway.trait.abm.io",
            json!({ "path": "/other/**", "serviceName": "other.apps.svc.cluster.local" }),
        ),
    ]));
    assert_eq!(kinds(&r), ["Deployment", "Service", "Ingress", "Ingress", "Ingress"]);
    let s = find(&r, "Service");
    assert_eq!(s["spec"]["type"], "NodePort");
    assert_eq!(s["metadata"]["labels"]["tier"], "web");
    assert_eq!(
        s["spec"]["ports"],
        json!([
            { "name": "tcp-80", "port": 80, "targetPort": "http", "protocol": "TCP" },
            { "name": "udp-9090", "port": 9090, "targetPort": 9090, "protocol": "UDP", "nodePort": 30090 },
        ])
    );
    let names: Vec<&str> = r.refs.iter().filter(|o| o.kind == "Ingress").map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["prod-health-health", "prod-health-health-2", "prod-health-health-3"]);
    let second = &r.objects[3];
    assert_eq!(second["spec"]["ingressClassName"], "nginx");
    assert_eq!(second["spec"]["tls"], json!([{ "hosts": ["web.example.com"], "secretName": "web-tls" }]));
    assert_eq!(second["spec"]["rules"][0]["host"], "web.example.com");
    let path = &second["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["pathType"], "Exact");
    assert_eq!(path["backend"]["service"]["port"], json!({ "name": "tcp-80" }));
    assert_eq!(r.objects[2]["metadata"]["annotations"][GATEWAY_AUTH_ANNOTATION], "false");
    let third = &r.objects[4]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(third, &json!({ "name": "other", "port": { "number": 80 } }));
}

#[test]
fn gateway_trait_errors_name_the_field() {
    let e = err(&web(&[
        ("service", json!({ "ports": [{ "port": 80, "targetPort": 8080 }] })),
        ("gateway.trait.abm.io", json!({ "path": "/a/**", "serviceName": "x.elsewhere" })),
        ("ingress", json!({ "path": "/b", "servicePort": 81 })),
        ("ingress", json!({ "path": "/c", "servicePort": 0, "colour": "blue" })),
    ]));
    assert_eq!(
        problems(&e),
        [
            "trait 'gateway.trait.abm.io': spec.serviceName: names namespace 'elsewhere', but an Ingress can only route to Services in its own namespace 'apps'",
            "trait 'ingress': spec.servicePort: is not a port of the component's Service",
            "trait 'ingress': spec.colour: unknown field (accepted: host, path, pathType, serviceName, servicePort, ingressClassName, annotations, tlsSecretName, authEnabled, routeId, order)",
            "trait 'ingress': spec.servicePort: must be a port number from 1 to 65535",
        ]
    );
    let e = err(&web(&[("ingress", json!({ "path": "/" }))]));
    assert_eq!(
        problems(&e),
        ["trait 'ingress': spec.serviceName: is required when the component has no service trait"]
    );
}

#[test]
fn container_traits_reach_the_right_containers() {
    let probe = json!({ "httpGet": { "path": "/health", "port": 8080 }, "periodSeconds": 5 });
    let r = ok(&web(&[
        ("resources", json!({ "requests": { "cpu": "250m", "memory": 268435456 }, "limits": { "cpu": 1 } })),
        ("resources", json!({ "containerName": "sidecar", "limits": { "cpu": "100m" } })),
        ("probes", json!({ "liveness": probe, "readiness": { "tcpSocket": { "port": 8080 } } })),
        ("env", json!({ "env": { "MODE": "prod" }, "containerName": "init" })),
    ]));
    let pod = &find(&r, "Deployment")["spec"]["template"]["spec"];
    let (main, side, init) = (&pod["containers"][0], &pod["containers"][1], &pod["initContainers"][0]);
    assert_eq!(
        main["resources"],
        json!({ "limits": { "cpu": "1" }, "requests": { "cpu": "250m", "memory": "268435456" } })
    );
    assert_eq!(
        side["resources"],
        json!({ "limits": { "cpu": "100m" }, "requests": { "cpu": "250m", "memory": "268435456" } })
    );
    assert!(init.get("resources").is_none());
    assert_eq!(main["livenessProbe"], probe);
    assert_eq!(main["readinessProbe"], json!({ "tcpSocket": { "port": 8080 } }));
    assert!(side.get("livenessProbe").is_none(), "probes default to the first container only");
    assert_eq!(env_names(init), ["MODE"]);
    assert!(main.get("env").is_none());

    let e = err(&web(&[
        ("resources", json!({ "requests": { "cpu": "lots" } })),
        ("probes", json!({ "liveness": { "periodSeconds": 5 }, "containerName": "nope" })),
        ("env", json!({ "env": ["A"] })),
    ]));
    assert_eq!(
        problems(&e),
        [
            "trait 'resources': spec.requests.cpu: must be a quantity such as 500m, 1, 256Mi or 2Gi",
            "trait 'probes': spec.liveness: needs exactly one of httpGet, tcpSocket, exec or grpc",
            "trait 'probes': spec.containerName: no container named 'nope'",
            "trait 'env': spec.env: must be an object",
        ]
    );
}

#[test]
fn configmap_secret_and_volume_traits() {
    let r = ok(&web(&[
        (
            "configmap",
            json!({ "data": { "b.yaml": "x: 1", "a": 2 }, "mountPath": "/etc/web", "envFrom": true }),
        ),
        (
            "secret",
            json!({ "name": "creds", "data": { "TOKEN": "c2VjcmV0" }, "stringData": { "USER": "admin" }, "envFrom": true }),
        ),
        (
            "pvc",
            json!({ "size": "10Gi", "mountPath": "/data", "storageClassName": "fast", "containerName": "web" }),
        ),
        (
            "volume",
            json!({ "name": "cache", "size": 1_000_000, "mountPath": "/cache", "accessModes": ["ReadWriteMany"], "readOnly": true }),
        ),
    ]));
    assert_eq!(
        kinds(&r),
        ["ConfigMap", "Secret", "PersistentVolumeClaim", "PersistentVolumeClaim", "Deployment"]
    );
    let names: Vec<&str> = r.refs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "prod-health-health-config",
            "prod-health-health-creds",
            "prod-health-health-data",
            "prod-health-health-cache"
        ]
    );
    assert_eq!(find(&r, "ConfigMap")["data"], json!({ "a": "2", "b.yaml": "x: 1" }));
    let secret = find(&r, "Secret");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"], json!({ "TOKEN": "c2VjcmV0", "USER": "YWRtaW4=" }));
    assert!(secret.get("stringData").is_none());
    let pvc = &r.objects[2]["spec"];
    assert_eq!(
        pvc,
        &json!({ "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "10Gi" } }, "storageClassName": "fast" })
    );
    let pod = &find(&r, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([
            { "name": "prod-health-health-config", "configMap": { "name": "prod-health-health-config" } },
            { "name": "prod-health-health-data", "persistentVolumeClaim": { "claimName": "prod-health-health-data" } },
            { "name": "prod-health-health-cache", "persistentVolumeClaim": { "claimName": "prod-health-health-cache" } },
        ])
    );
    let main = &pod["containers"][0];
    assert_eq!(
        main["volumeMounts"],
        json!([
            { "name": "prod-health-health-config", "mountPath": "/etc/web", "readOnly": true },
            { "name": "prod-health-health-data", "mountPath": "/data" },
            { "name": "prod-health-health-cache", "mountPath": "/cache", "readOnly": true },
        ])
    );
    assert_eq!(
        main["envFrom"],
        json!([{ "configMapRef": { "name": "prod-health-health-config" } }, { "secretRef": { "name": "prod-health-health-creds" } }])
    );
    // Init containers get the config too, but the pvc trait named one container.
    assert_eq!(pod["initContainers"][0]["volumeMounts"].as_array().unwrap().len(), 2);
    assert!(!format!("{r:?}").contains("c2VjcmV0"), "Debug must not print Secret data");
}

#[test]
fn secret_problems_never_quote_the_value() {
    let e = err(&web(&[
        ("secret", json!({ "data": { "PASSWORD": "hunter2!!" }, "stringData": { "PASSWORD": "hunter2!!" } })),
        ("configmap", json!({ "name": "secret", "data": {} })),
        ("volume", json!({ "mountPath": "data" })),
    ]));
    let text = e.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(
        problems(&e),
        [
            "trait 'secret': spec.data.PASSWORD: is not valid base64 (use stringData for plain text)",
            "trait 'configmap': spec.name: 'secret' is already used by another configmap, secret or volume trait",
            "trait 'volume': spec.mountPath: must be an absolute path",
            "trait 'volume': spec.size: is required",
        ]
    );
}

#[test]
fn scheduling_traits() {
    let toleration =
        json!({ "key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule" });
    let affinity = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [] } } });
    let r = ok(&web(&[
        ("tolerations", json!([toleration])),
        ("affinity", affinity.clone()),
        ("node-selector", json!({ "disktype": "ssd", "kubernetes.io/os": "linux" })),
    ]));
    let pod = &find(&r, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["tolerations"], json!([toleration]));
    assert_eq!(pod["affinity"], affinity);
    assert_eq!(pod["nodeSelector"], json!({ "disktype": "ssd", "kubernetes.io/os": "linux" }));
    let r = ok(&web(&[
        ("tolerations", json!({ "tolerations": [{ "operator": "Exists" }] })),
        ("nodeSelector", json!({ "a": "b" })),
    ]));
    assert_eq!(
        find(&r, "Deployment")["spec"]["template"]["spec"]["tolerations"],
        json!([{ "operator": "Exists" }])
    );

    let e = err(&web(&[
        ("tolerations", json!([{ "operator": "Exists", "value": "x", "effect": "Sometimes" }])),
        ("affinity", json!({})),
        ("nodeSelector", json!({ "bad key!": "x" })),
        ("node-selector", json!({ "a": "b" })),
    ]));
    assert_eq!(
        problems(&e),
        [
            "trait 'tolerations': spec[0].value: must be empty with operator Exists",
            "trait 'tolerations': spec[0].effect: must be NoSchedule, PreferNoSchedule or NoExecute",
            "trait 'affinity': spec: needs nodeAffinity, podAffinity or podAntiAffinity",
            "trait 'nodeSelector': spec.bad key!: is not a valid label key",
            "trait 'node-selector': is given more than once (also as 'nodeSelector')",
        ]
    );
}

#[test]
fn replicas_and_hpa_traits() {
    let r = ok(&web(&[("replicas", json!(5))]));
    assert_eq!(find(&r, "Deployment")["spec"]["replicas"], 5);
    let r = ok(&web(&[("replicas", json!({ "replicas": "4" }))]));
    assert_eq!(find(&r, "Deployment")["spec"]["replicas"], 4);

    let r = ok(&web(&[("hpa", json!({ "minReplicas": 2, "maxReplicas": 10, "memoryUtilization": 70 }))]));
    assert_eq!(kinds(&r), ["Deployment", "HorizontalPodAutoscaler"]);
    assert!(find(&r, "Deployment")["spec"].get("replicas").is_none(), "the HPA owns the count");
    let hpa = find(&r, "HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"],
        json!({
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-health-health" },
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{ "type": "Resource", "resource": { "name": "memory", "target": { "type": "Utilization", "averageUtilization": 70 } } }],
        })
    );
    let r = ok(&web(&[("hpa", json!({ "maxReplicas": 3 }))]));
    assert_eq!(find(&r, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["name"], "cpu");

    let e = err(&web(&[("replicas", json!(2)), ("hpa", json!({ "minReplicas": 5, "maxReplicas": 3 }))]));
    assert_eq!(
        problems(&e),
        [
            "trait 'hpa': spec.maxReplicas: must be at least minReplicas",
            "trait 'hpa': cannot be combined with the replicas trait (the HPA owns the count)",
        ]
    );
}

#[test]
fn unknown_traits_list_every_supported_name() {
    let e = err(&web(&[
        ("timezoneSync.trait.abm.io", json!({})),
        ("service", json!({})),
        ("sidecar", json!({})),
    ]));
    assert_eq!(e.reason(), "UnknownTrait");
    let msg = e.to_string();
    assert!(
        msg.starts_with("unknown trait 'timezoneSync.trait.abm.io', 'sidecar'; supported traits: "),
        "{msg}"
    );
    for name in SUPPORTED_TRAITS {
        assert!(msg.contains(name), "{name} missing from {msg}");
    }
}

#[test]
fn duplicate_single_traits_are_refused() {
    let e = err(&web(&[("service", json!({})), ("service.trait.abm.io", json!({}))]));
    assert_eq!(problems(&e), ["trait 'service.trait.abm.io': is given more than once (also as 'service')"]);
}
