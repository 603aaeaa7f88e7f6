//! Rendering whole components: the real SREWorks health fixture, each workload type, manifests,
//! and the errors an operator sees; traits in [`traits`].

mod traits;

use proptest::prelude::*;
use serde_json::{Value, json};
use sw_contracts::executor::{ComponentTarget, RenderedComponent, TraitSpec};
use sw_contracts::ids::AppId;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_label_value};
use super::*;

fn target() -> ComponentTarget {
    ComponentTarget {
        cluster_id: "c1".into(),
        namespace: "apps".into(),
        app_id: AppId::parse("health").unwrap(),
        stage_id: Some("prod".into()),
        app_instance: "prod-health".into(),
        component_instance: "health".into(),
    }
}

fn component(ty: &str, workload: Value, traits: &[(&str, Value)]) -> RenderedComponent {
    RenderedComponent {
        component_type: ty.into(),
        component_name: "health".into(),
        package_version: Some("22.5.1".into()),
        workload,
        traits: traits
            .iter()
            .map(|(n, s)| TraitSpec { name: (*n).into(), runtime: None, spec: s.clone() })
            .collect(),
    }
}

fn web(traits: &[(&str, Value)]) -> RenderedComponent {
    component(
        "K8S_MICROSERVICE",
        json!({
            "kind": "Deployment",
            "replicas": 2,
            "containers": [
                { "name": "web", "image": "web:1", "ports": [{ "containerPort": 8080, "name": "http" }] },
                { "name": "sidecar", "image": "side:1" },
            ],
            "initContainers": [{ "name": "init", "image": "init:1" }],
        }),
        traits,
    )
}

fn ok(c: &RenderedComponent) -> Rendered {
    let t = target();
    let r = render(&t, 7, c).unwrap_or_else(|e| panic!("{e}"));
    assert_owned(&r, &t, 7);
    r
}

fn err(c: &RenderedComponent) -> RenderError {
    render(&target(), 7, c).expect_err("should be refused")
}

/// The problems of an error, as displayed.
fn problems(e: &RenderError) -> Vec<String> {
    e.problems().iter().map(ToString::to_string).collect()
}

fn kinds(r: &Rendered) -> Vec<&str> {
    r.refs.iter().map(|r| r.kind.as_str()).collect()
}

fn find<'r>(r: &'r Rendered, kind: &str) -> &'r Value {
    r.objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(r)))
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .map(|e| e.iter().map(|v| v["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Every object is in the target namespace with valid name, the ownership labels and the revision.
fn assert_owned(r: &Rendered, t: &ComponentTarget, revision: u64) {
    assert_eq!(r.objects.len(), r.refs.len());
    for (obj, rf) in r.objects.iter().zip(&r.refs) {
        let meta = &obj["metadata"];
        assert_eq!(meta["namespace"], t.namespace.as_str(), "{rf:?}");
        assert_eq!(rf.namespace.as_deref(), Some(t.namespace.as_str()));
        assert_eq!(meta["name"], rf.name.as_str());
        assert!(is_dns1123_subdomain(&rf.name), "{rf:?}");
        let labels = meta["labels"].as_object().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels[LABEL_APP_ID], t.app_id.as_str());
        for key in [LABEL_COMPONENT, LABEL_INSTANCE, LABEL_COMPONENT_INSTANCE] {
            assert!(labels.contains_key(key), "{key} missing on {rf:?}");
        }
        assert_eq!(labels.contains_key(LABEL_STAGE), t.stage_id.as_deref().is_some_and(|s| !s.is_empty()));
        for (k, v) in labels {
            assert!(names::is_label_key(k) && is_label_value(v.as_str().unwrap()), "{k}={v} on {rf:?}");
        }
        assert_eq!(meta["annotations"][ANNOTATION_REVISION], revision.to_string());
    }
}

fn health_fixture_workload() -> Value {
    let path = sw_testkit::fixtures_dir()
        .join("sreworks/apps/health/build/K8S_MICROSERVICE_health.zip.dir/meta.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["spec"]["workload"]["spec"].clone()
}

/// The health component's traits as the example launch file writes them, templates filled in.
fn health_fixture_traits() -> Vec<TraitSpec> {
    let path = sw_testkit::fixtures_dir().join("sreworks/apps/health/build/launch-example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace("{{ Global.STAGE_ID }}", "prod").replace("{{ Global.NAMESPACE_ID }}", "apps");
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    serde_json::from_value(doc["spec"]["components"][0]["traits"].clone()).unwrap()
}

#[test]
fn health_fixture_renders_a_deployment_service_and_ingress() {
    let mut c = component("K8S_MICROSERVICE", health_fixture_workload(), &[]);
    c.traits = health_fixture_traits();
    assert_eq!(c.traits.len(), 2);
    let r = ok(&c);
    assert_eq!(kinds(&r), ["Deployment", "Service", "Ingress"]);
    // SREWorks' own naming, which the gateway trait's serviceName relies on.
    assert!(r.refs.iter().all(|o| o.name == "prod-health-health"));

    let d = find(&r, "Deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["name"], "health");
    assert_eq!(
        pod["containers"][0]["image"],
        "sreworks-registry.cn-beijing.cr.aliyuncs.com/hub/health-health-health:1697237100891"
    );
    assert_eq!(pod["initContainers"][0]["name"], "db-migration");
    assert_eq!(
        pod["initContainers"][0]["image"],
        "sreworks-registry.cn-beijing.cr.aliyuncs.com/hub/health-health-db-migration:1697237100891"
    );
    let expected_env = [
        "DATA_DB_HEALTH_NAME",
        "DATA_DB_HOST",
        "DATA_DB_NAME",
        "DATA_DB_PASSWORD",
        "DATA_DB_PORT",
        "DATA_DB_USER",
        "KAFKA_ENDPOINT",
    ];
    assert_eq!(env_names(&pod["containers"][0]), expected_env);
    assert_eq!(env_names(&pod["initContainers"][0]), expected_env);
    assert_eq!(
        pod["containers"][0]["env"][6],
        json!({ "name": "KAFKA_ENDPOINT", "value": "{{ Global.KAFKA_ENDPOINT }}" })
    );
    let selector = json!({ LABEL_INSTANCE: "prod-health", LABEL_COMPONENT_INSTANCE: "health" });
    assert_eq!(d["spec"]["selector"]["matchLabels"], selector);
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels[LABEL_INSTANCE], "prod-health");
    assert!(
        d["spec"]["template"]["metadata"].get("annotations").is_none(),
        "a new revision alone must not restart pods"
    );

    let s = find(&r, "Service");
    assert_eq!(s["spec"]["selector"], selector);
    assert_eq!(s["spec"]["ports"], json!([{ "port": 80, "targetPort": 7001, "protocol": "TCP" }]));

    let i = find(&r, "Ingress");
    assert_eq!(i["metadata"]["annotations"][GATEWAY_AUTH_ANNOTATION], "true");
    assert_eq!(
        i["spec"]["rules"][0]["http"]["paths"][0],
        json!({
            "path": "/health",
            "pathType": "Prefix",
            "backend": { "service": { "name": "prod-health-health", "port": { "number": 80 } } },
        })
    );
}

#[test]
fn rendering_is_byte_identical_across_redeliveries() {
    let mut c = component("K8S_MICROSERVICE", health_fixture_workload(), &[]);
    c.traits = health_fixture_traits();
    c.traits.push(TraitSpec {
        name: "secret".into(),
        runtime: None,
        spec: json!({ "stringData": { "B": "2", "A": "1" }, "envFrom": true }),
    });
    let first = serde_json::to_vec(&render(&target(), 3, &c).unwrap().objects).unwrap();
    // A redelivery is decoded afresh from the wire.
    let again: RenderedComponent = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
    let second = serde_json::to_vec(&render(&target(), 3, &again).unwrap().objects).unwrap();
    assert_eq!(first, second);
    assert_ne!(first, serde_json::to_vec(&render(&target(), 4, &c).unwrap().objects).unwrap());
}

#[test]
fn statefulset_gets_its_governing_service() {
    let spec = |service_name: &str| {
        json!({
            "kind": "StatefulSet", "replicas": "3", "serviceName": service_name,
            "containers": [{ "name": "db", "image": "db:1", "ports": [{ "containerPort": "5432" }] }],
        })
    };
    let r = ok(&component("K8S_MICROSERVICE", spec(""), &[("service", json!({}))]));
    assert_eq!(kinds(&r), ["StatefulSet", "Service"]);
    let sts = find(&r, "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["serviceName"], "prod-health-health");
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 5432);
    // Without service ports the Service takes the container's.
    assert_eq!(find(&r, "Service")["spec"]["ports"][0]["targetPort"], 5432);
    let r = ok(&component("K8S_MICROSERVICE", spec("db-headless"), &[]));
    assert_eq!(find(&r, "StatefulSet")["spec"]["serviceName"], "db-headless");
}

#[test]
fn top_level_ports_belong_to_the_first_container() {
    let spec = |ports: Value| {
        json!({
            "containers": [
                { "name": "web", "image": "web:1", "ports": [{ "containerPort": 8080, "name": "http" }] },
                { "name": "side", "image": "side:1" },
            ],
            "ports": ports,
        })
    };
    let r =
        ok(&component("K8S_MICROSERVICE", spec(json!([{ "containerPort": 9090, "protocol": "UDP" }])), &[]));
    let pod = &find(&r, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["ports"],
        json!([
            { "containerPort": 8080, "name": "http", "protocol": "TCP" },
            { "containerPort": 9090, "protocol": "UDP" },
        ])
    );
    assert!(pod["containers"][1].get("ports").is_none());
    let e = err(&component("K8S_MICROSERVICE", spec(json!([{ "containerPort": 8080 }])), &[]));
    assert_eq!(problems(&e), ["workload: ports: port 8080 is already declared by the container"]);
}

#[test]
fn job_renders_with_its_limits() {
    let r = ok(&component(
        "K8S_JOB",
        json!({
            "name": "",
            "job": { "name": "migrate", "image": "migrate:1", "command": ["/bin/migrate"], "args": ["--all", 3] },
            "containers": [{ "name": "logs", "image": "logs:1" }],
            "env": { "DB": "mysql" },
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
            "restartPolicy": "OnFailure",
        }),
        &[("resources", json!({ "limits": { "memory": "256Mi" } }))],
    ));
    assert_eq!(kinds(&r), ["Job"]);
    let job = find(&r, "Job");
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["spec"]["backoffLimit"], 2);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    assert!(job["spec"].get("selector").is_none(), "the Job controller owns the selector");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(pod["containers"][0]["name"], "migrate");
    assert_eq!(pod["containers"][0]["args"], json!(["--all", "3"]));
    assert_eq!(pod["containers"][0]["env"], json!([{ "name": "DB", "value": "mysql" }]));
    assert_eq!(pod["containers"][1]["resources"]["limits"]["memory"], "256Mi");

    let default = ok(&component("K8S_JOB", json!({ "containers": [{ "name": "x", "image": "x:1" }] }), &[]));
    assert_eq!(find(&default, "Job")["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let e = err(&component(
        "K8S_JOB",
        json!({ "job": { "name": "x", "image": "x" }, "restartPolicy": "Always" }),
        &[("service", json!({})), ("hpa", json!({ "maxReplicas": 2 }))],
    ));
    let p = problems(&e);
    assert!(p.iter().any(|m| m.contains("restartPolicy")), "{p:?}");
    assert!(p.contains(&"trait 'service': does not apply to a K8S_JOB component".to_owned()), "{p:?}");
    assert!(p.contains(&"trait 'hpa': does not apply to a K8S_JOB component".to_owned()), "{p:?}");
}

#[test]
fn container_env_overrides_the_env_map() {
    let r = ok(&component(
        "K8S_MICROSERVICE",
        json!({
            "env": { "B": 2, "A": "map" },
            "containers": [{
                "name": "web", "image": "web:1",
                "env": [
                    { "name": "A", "value": "own" },
                    { "name": "C", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                ],
            }],
        }),
        &[("env", json!({ "env": { "B": "trait", "D": "x" } }))],
    ));
    let env = &find(&r, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([
            { "name": "A", "value": "own" },
            { "name": "B", "value": "trait" },
            { "name": "C", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
            { "name": "D", "value": "x" },
        ])
    );
}

#[test]
fn manifests_are_namespaced_ordered_and_cleaned() {
    let r = ok(&component(
        "K8S_MANIFESTS",
        json!({ "manifests": [
            { "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" }, "spec": { "ports": [{ "port": 80 }] } },
            {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "web", "namespace": "apps", "resourceVersion": "42", "uid": "u",
                              "labels": { "tier": "front", LABEL_MANAGED_BY: "helm" } },
                "spec": {}, "status": { "replicas": 1 },
            },
            { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "web.conf" }, "data": { "a": "b" } },
            { "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" } },
        ] }),
        &[],
    ));
    assert_eq!(kinds(&r), ["ConfigMap", "Deployment", "Service", "Widget"]);
    let d = find(&r, "Deployment");
    assert!(d.get("status").is_none());
    assert!(d["metadata"].get("resourceVersion").is_none() && d["metadata"].get("uid").is_none());
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["labels"][LABEL_MANAGED_BY], MANAGED_BY);
}

#[test]
fn manifests_outside_the_namespace_are_refused_all_at_once() {
    let e = err(&component(
        "K8S_MANIFESTS",
        json!({ "manifests": [
            { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "other" } },
            { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": { "name": "admin" } },
            { "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": { "name": "w.example.com" } },
            { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c", "namespace": "kube-system" } },
            { "kind": "ConfigMap", "metadata": {} },
            { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "ok" } },
        ] }),
        &[("env", json!({ "env": { "A": "1" } }))],
    ));
    assert_eq!(e.reason(), "InvalidComponent");
    let p = problems(&e);
    assert_eq!(
        p,
        [
            "trait 'env': traits do not apply to K8S_MANIFESTS; write the objects into the manifests",
            "manifests[0]: kind: Namespace is cluster-scoped; a component may only create objects in its namespace",
            "manifests[1]: kind: ClusterRole is cluster-scoped; a component may only create objects in its namespace",
            "manifests[2]: kind: CustomResourceDefinition is cluster-scoped; a component may only create objects in its namespace",
            "manifests[3]: metadata.namespace: is 'kube-system', but the component is deployed to namespace 'apps'",
            "manifests[4]: apiVersion: is required",
            "manifests[4]: metadata.name: is required",
        ]
    );
}

#[test]
fn helm_and_other_types_are_unsupported() {
    for ty in ["HELM", "ABM_HELM", "RESOURCE_ADDON", ""] {
        let e = err(&component(ty, json!({}), &[]));
        assert_eq!(e.reason(), "unsupported_component_type");
        assert!(e.to_string().contains(&format!("'{ty}'")), "{e}");
    }
}

#[test]
fn every_workload_problem_is_reported_at_once() {
    let e = err(&component(
        "K8S_MICROSERVICE",
        json!({
            "kind": "DaemonSet",
            "replicas": -1,
            "containers": [
                { "name": "Web", "image": "" },
                { "name": "web2", "ports": [{ "containerPort": 70000 }], "imagePullPolicy": "Sometimes" },
                { "name": "web2", "image": "x", "env": [{ "value": "no name" }] },
            ],
            "volumes": [],
        }),
        &[("service", json!({ "type": "External" }))],
    ));
    assert_eq!(
        problems(&e),
        [
            "workload: volumes: unknown field (accepted: kind, replicas, name, serviceName, containers, initContainers, env, ports)",
            "workload: kind: must be Deployment or StatefulSet",
            "workload: replicas: must be a whole number from 0 to 2147483647",
            "workload: containers[0].name: must be a DNS-1123 label (lowercase letters, digits, '-', at most 63)",
            "workload: containers[0].image: must not be empty",
            "workload: containers[1].image: is required",
            "workload: containers[1].ports[0].containerPort: must be a port number from 1 to 65535",
            "workload: containers[1].imagePullPolicy: must be Always, IfNotPresent or Never",
            "workload: containers[2].env[0].name: is required",
            "workload: container name 'web2' is used twice",
            "trait 'service': spec.type: must be ClusterIP, NodePort or LoadBalancer",
            // Follows from containers[1]'s port being refused.
            "trait 'service': spec.ports: is required (the containers declare no ports)",
        ]
    );
    assert!(e.to_string().starts_with("invalid component: workload: volumes: unknown field"));
    let e = err(&component("K8S_MICROSERVICE", json!({ "containers": [] }), &[]));
    assert_eq!(problems(&e), ["workload: containers: must list at least one container"]);
    let e = err(&component("K8S_JOB", json!("nope"), &[]));
    assert_eq!(problems(&e), ["workload: must be an object"]);
}

#[test]
fn a_bad_target_is_reported() {
    let mut t = target();
    t.namespace = "Bad_NS".into();
    t.component_instance = " ".into();
    let e = render(&t, 1, &web(&[])).unwrap_err();
    assert_eq!(
        problems(&e),
        ["target: namespace: must be a DNS-1123 label", "target: componentInstance: must not be empty"]
    );
}

#[test]
fn long_names_stay_within_limits() {
    let mut t = target();
    t.app_instance = "a-very-long-application-instance-name-that-goes-on".into();
    t.component_instance = "and-a-long-component-instance-too".into();
    let sts = component(
        "K8S_MICROSERVICE",
        json!({ "kind": "StatefulSet", "containers": [{ "name": "db", "image": "db:1", "ports": [{ "containerPort": 1 }] }] }),
        &[("service", json!({})), ("configmap", json!({ "data": { "a": "b" } }))],
    );
    let r = render(&t, 1, &sts).unwrap();
    assert_owned(&r, &t, 1);
    assert_eq!(kinds(&r), ["ConfigMap", "StatefulSet", "Service"]);
    let (config, sts, svc) = (&r.refs[0].name, &r.refs[1].name, &r.refs[2].name);
    assert!(config.len() <= 63 && sts.len() <= 52, "{config} {sts}");
    assert!(r.refs.iter().all(|o| is_dns1123_label(&o.name)));
    assert_eq!(svc, sts);
    assert_eq!(find(&r, "StatefulSet")["spec"]["serviceName"], sts.as_str());
    // Cut names keep a readable prefix and end in the 8-digit hash.
    assert!(sts.starts_with("a-very-long-application-instance"), "{sts}");
    assert!(sts.rsplit('-').next().is_some_and(|h| h.len() == 8), "{sts}");
}

#[test]
fn owner_selector_matches_the_labels() {
    let r = ok(&web(&[]));
    let labels = &r.objects[0]["metadata"]["labels"];
    for pair in owner_selector(&target()).split(',') {
        let (k, v) = pair.split_once('=').unwrap();
        assert_eq!(labels[k], v, "{pair}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the instance, component and stage names, every object name is a DNS-1123 label and
    /// every label value is valid, and the objects carry the ownership labels and revision.
    #[test]
    fn names_and_labels_are_always_valid(
        app_instance in "[A-Za-z0-9_.@ /é-]{1,80}",
        component_instance in "\\PC{1,80}",
        component_name in "\\PC{0,80}",
        stage in proptest::option::of("[A-Za-z0-9_.@ -]{0,70}"),
        statefulset in any::<bool>(),
        revision in any::<u64>(),
    ) {
        prop_assume!(!app_instance.trim().is_empty() && !component_instance.trim().is_empty());
        let t = ComponentTarget { app_instance, component_instance, stage_id: stage, ..target() };
        let mut c = web(&[
            ("service", json!({})),
            ("ingress", json!({ "path": "/" })),
            ("ingress", json!({ "path": "/x" })),
            ("configmap", json!({ "data": { "a": "b" }, "mountPath": "/etc/a" })),
            ("secret", json!({ "stringData": { "a": "b" } })),
            ("pvc", json!({ "size": "1Gi", "mountPath": "/data" })),
            ("hpa", json!({ "maxReplicas": 3 })),
        ]);
        c.component_name = component_name;
        if statefulset {
            c.workload["kind"] = "StatefulSet".into();
        }
        let r = render(&t, revision, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_owned(&r, &t, revision);
        for rf in &r.refs {
            prop_assert!(is_dns1123_label(&rf.name), "{:?}", rf);
        }
        let pod_labels = &r.objects[3]["spec"]["template"]["metadata"]["labels"];
        for v in pod_labels.as_object().unwrap().values() {
            prop_assert!(is_label_value(v.as_str().unwrap()));
        }
    }
}
