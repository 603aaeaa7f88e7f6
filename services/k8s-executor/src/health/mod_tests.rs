//! The dispatch of [`assess`] (missing, unreadable, deleting, kinds without a check), the smaller
//! kinds (Service, Ingress, PVC, HPA) and [`aggregate`]'s ordering.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// Runs table cases `(name, object, expected health, expected message)`.
pub(crate) fn check(cases: Vec<(&str, Value, Health, Option<&str>)>) {
    for (name, obj, health, message) in cases {
        let expected = Assessment { health, message: message.map(str::to_owned) };
        assert_eq!(assess(&obj), expected, "case {name:?}");
    }
}

/// Merges `patch` into `base` as a JSON merge patch does, except that `null` is kept (reading
/// treats it as absent, which is what the API server's omission means).
pub(crate) fn merged(mut base: Value, patch: Value) -> Value {
    if let (Value::Object(b), Value::Object(p)) = (&mut base, &patch) {
        for (k, v) in p {
            let slot = b.entry(k.clone()).or_insert(Value::Null);
            *slot = merged(slot.take(), v.clone());
        }
        return base;
    }
    patch
}

#[test]
fn assess_dispatch() {
    check(vec![
        ("not found", Value::Null, Health::Missing, Some("object not found")),
        (
            "a list, not an object",
            json!([]),
            Health::Unknown,
            Some("not a Kubernetes object: expected a JSON object"),
        ),
        (
            "no kind",
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
            Health::Unknown,
            Some("object has no apiVersion or kind"),
        ),
        (
            "metadata of the wrong type",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}),
            Health::Unknown,
            Some("cannot read object: metadata: expected an object, found a string"),
        ),
        (
            "a kind without a check exists, so it is healthy",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health-config", "namespace": "sreworks"},
                "data": {"LOG_LEVEL": "info"}}),
            Health::Healthy,
            None,
        ),
        (
            "a custom resource",
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "health-tls"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            Health::Healthy,
            None,
        ),
        (
            "a Deployment of another group is not a Deployment",
            json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "x", "generation": 2}}),
            Health::Healthy,
            None,
        ),
        (
            "being deleted, whatever its status says",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "old", "generation": 3, "deletionTimestamp": "2025-11-03T11:00:00Z",
                    "finalizers": ["foregroundDeletion"]},
                "spec": {"replicas": 2}, "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
            Health::Progressing,
            Some("Pending deletion"),
        ),
    ]);
}

fn service(kind: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "health", "namespace": "sreworks"},
        "spec": {"type": kind, "clusterIP": "10.43.12.7", "ports": [{"name": "http", "port": 80, "targetPort": 7001, "protocol": "TCP"}],
            "selector": {"sreworks.io/component": "health"}},
        "status": status
    })
}

fn ingress(api_version: &str, status: Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": "Ingress",
        "metadata": {"name": "health", "namespace": "sreworks", "generation": 1},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "health.sreworks.local", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "health", "port": {"number": 80}}}}]}}]},
        "status": status
    })
}

#[test]
fn service_and_ingress_states() {
    check(vec![
        ("ClusterIP", service("ClusterIP", json!({"loadBalancer": {}})), Health::Healthy, None),
        ("NodePort", service("NodePort", json!({"loadBalancer": {}})), Health::Healthy, None),
        (
            "LoadBalancer being provisioned",
            service("LoadBalancer", json!({"loadBalancer": {}})),
            Health::Progressing,
            Some("Waiting for the load balancer of service \"health\""),
        ),
        (
            "LoadBalancer with an address",
            service(
                "LoadBalancer",
                json!({"loadBalancer": {"ingress": [{"ip": "192.168.5.20", "ipMode": "VIP"}]}}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "Ingress not yet admitted",
            ingress("networking.k8s.io/v1", json!({"loadBalancer": {}})),
            Health::Progressing,
            Some("Waiting for an address for ingress \"health\""),
        ),
        (
            "Ingress admitted",
            ingress(
                "networking.k8s.io/v1",
                json!({"loadBalancer": {"ingress": [{"hostname": "lb.sreworks.local"}]}}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "old extensions/v1beta1 Ingress",
            ingress("extensions/v1beta1", json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}})),
            Health::Healthy,
            None,
        ),
        (
            "unreadable load balancer status",
            ingress("networking.k8s.io/v1", json!({"loadBalancer": {"ingress": "10.0.0.9"}})),
            Health::Unknown,
            Some(
                "cannot read the status of Ingress \"health\": status.loadBalancer.ingress: expected an array, found a string",
            ),
        ),
    ]);
}

fn pvc(status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-health-db-0", "namespace": "sreworks",
            "annotations": {"volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
            "storageClassName": "local-path", "volumeMode": "Filesystem"},
        "status": status
    })
}

#[test]
fn pvc_states() {
    check(vec![
        (
            "bound",
            pvc(json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}})),
            Health::Healthy,
            None,
        ),
        (
            "pending",
            pvc(json!({"phase": "Pending"})),
            Health::Progressing,
            Some("Waiting for the claim to be bound"),
        ),
        (
            "lost",
            pvc(json!({"phase": "Lost"})),
            Health::Degraded,
            Some("The claim lost its persistent volume"),
        ),
        ("no phase", pvc(json!({})), Health::Unknown, Some("The claim has no phase yet")),
        (
            "unknown phase",
            pvc(json!({"phase": "Resizing"})),
            Health::Unknown,
            Some("Unexpected claim phase \"Resizing\""),
        ),
    ]);
}

fn hpa_v2(conditions: Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "health", "namespace": "sreworks"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "health"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, "conditions": conditions}
    })
}

fn hpa_v1(annotation: Option<&str>) -> Value {
    let mut obj = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "health", "namespace": "sreworks", "annotations": {}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "health"},
            "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
        "status": {"currentReplicas": 2, "desiredReplicas": 2}
    });
    if let Some(a) = annotation {
        obj["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"] = a.into();
    }
    obj
}

#[test]
fn hpa_states() {
    let able = json!({"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
        "message": "recommended size matches current size"});
    let metrics_missing = json!({"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
        "message": "the HPA was unable to compute the replica count: failed to get cpu utilization"});
    let v1_conditions =
        json!([{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2025-11-03T09:14:00Z",
        "reason": "ReadyForNewScale", "message": "recommended size matches current size"}])
        .to_string();
    check(vec![
        (
            "v2 able to scale",
            hpa_v2(json!([able.clone()])),
            Health::Healthy,
            Some("recommended size matches current size"),
        ),
        (
            "v2 cannot read its target's scale",
            hpa_v2(json!([{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
                "message": "deployments/scale.apps \"health\" not found"}])),
            Health::Degraded,
            Some("deployments/scale.apps \"health\" not found"),
        ),
        (
            "v2 metrics missing while able to scale (new pods): the first deciding condition wins",
            hpa_v2(json!([able, metrics_missing.clone()])),
            Health::Healthy,
            Some("recommended size matches current size"),
        ),
        (
            "v2 metrics missing and backing off",
            hpa_v2(
                json!([{"type": "AbleToScale", "status": "False", "reason": "BackoffBoth"}, metrics_missing]),
            ),
            Health::Degraded,
            Some("the HPA was unable to compute the replica count: failed to get cpu utilization"),
        ),
        ("v2 no conditions yet", hpa_v2(json!(null)), Health::Progressing, Some("Waiting to Autoscale")),
        (
            "v1 conditions in the annotation",
            hpa_v1(Some(&v1_conditions)),
            Health::Healthy,
            Some("recommended size matches current size"),
        ),
        ("v1 no annotation yet", hpa_v1(None), Health::Progressing, Some("Waiting to Autoscale")),
    ]);
    let broken = assess(&hpa_v1(Some("[{")));
    assert_eq!(broken.health, Health::Unknown);
    let message = broken.message.unwrap();
    assert!(
        message.starts_with("cannot read the autoscaling.alpha.kubernetes.io/conditions annotation: "),
        "{message}"
    );
}

const ALL: [Health; 6] = [
    Health::Healthy,
    Health::Suspended,
    Health::Progressing,
    Health::Unknown,
    Health::Missing,
    Health::Degraded,
];

#[test]
fn severity_orders_degraded_missing_unknown_progressing_suspended_healthy() {
    // ALL is listed from best to worst; every later entry must be worse than every earlier one.
    for (i, better) in ALL.iter().enumerate() {
        for worse in &ALL[i + 1..] {
            assert!(is_worse(*better, *worse), "{worse:?} should be worse than {better:?}");
            assert!(!is_worse(*worse, *better), "{better:?} should not be worse than {worse:?}");
            let pair = [Assessment::new(*better, "b"), Assessment::new(*worse, "w")];
            assert_eq!(aggregate(&pair), Assessment::new(*worse, "w"));
        }
        assert!(!is_worse(*better, *better));
    }
}

#[test]
fn aggregate_of_a_component() {
    assert_eq!(aggregate(&[]), Assessment::healthy());
    assert_eq!(aggregate(&[Assessment::healthy(), Assessment::healthy()]), Assessment::healthy());

    let rolling =
        "Waiting for deployment \"health\" rollout to finish: 1 of 3 updated replicas are available...";
    let component = [
        Assessment::healthy(),
        Assessment::new(Health::Progressing, rolling),
        Assessment::new(Health::Progressing, "Waiting for an address for ingress \"health\""),
        Assessment::new(Health::Progressing, rolling),
        Assessment::new(Health::Suspended, "Deployment is paused"),
    ];
    assert_eq!(
        aggregate(&component),
        Assessment::new(
            Health::Progressing,
            format!("{rolling}; Waiting for an address for ingress \"health\"")
        ),
        "messages of the worst level, each once, in order"
    );

    let with_failure = [
        Assessment::new(
            Health::Unknown,
            "cannot read the status of Deployment \"a\": status.replicas: expected an integer, found a string",
        ),
        Assessment::new(Health::Degraded, "container \"health\" is waiting: CrashLoopBackOff"),
        Assessment::missing(),
    ];
    assert_eq!(
        aggregate(&with_failure),
        Assessment::new(Health::Degraded, "container \"health\" is waiting: CrashLoopBackOff")
    );
    assert_eq!(aggregate(&with_failure[..1]).health, Health::Unknown);
    assert_eq!(aggregate(&[with_failure[0].clone(), Assessment::missing()]), Assessment::missing());
}

fn any_health() -> impl Strategy<Value = Health> {
    proptest::sample::select(ALL.to_vec())
}

fn any_assessment() -> impl Strategy<Value = Assessment> {
    (any_health(), proptest::option::of("[a-z ]{1,12}"))
        .prop_map(|(health, message)| Assessment { health, message })
}

proptest! {
    #[test]
    fn aggregate_is_the_worst_and_ignores_order(
        items in proptest::collection::vec(any_assessment(), 0..8),
        rotation in 0usize..8,
    ) {
        let all = aggregate(&items);
        for item in &items {
            prop_assert!(!is_worse(all.health, item.health), "{:?} is worse than the aggregate {:?}", item.health, all.health);
        }
        if !items.is_empty() {
            prop_assert!(items.iter().any(|i| i.health == all.health));
        }
        let mut rotated = items.clone();
        rotated.rotate_left(rotation % items.len().max(1));
        prop_assert_eq!(aggregate(&rotated).health, all.health);
    }
}
