//! Deployment, StatefulSet, DaemonSet and ReplicaSet objects as the API server returns them in the
//! states a rollout goes through.

use serde_json::{Value, json};

use crate::health::Health;
use crate::health::tests::{check, merged};

/// The `health` Deployment of the SREWorks fixture app, at `generation`, with `spec` merged over
/// what the API server defaults and `status` as given.
fn deployment(generation: i64, spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "health",
            "namespace": "sreworks",
            "uid": "0b6f4d0e-3f5c-4d3e-9a57-8f6f1c1d2a11",
            "resourceVersion": "184467",
            "generation": generation,
            "creationTimestamp": "2025-11-03T09:12:44Z",
            "labels": {"app.kubernetes.io/managed-by": "sreworks", "sreworks.io/component": "health"},
            "annotations": {"deployment.kubernetes.io/revision": "2", "sreworks.io/revision": "7"}
        },
        "spec": merged(json!({
            "replicas": 3,
            "selector": {"matchLabels": {"sreworks.io/component": "health"}},
            "template": {
                "metadata": {"labels": {"sreworks.io/component": "health"}},
                "spec": {"containers": [{"name": "health", "image": "sreworks/health:1.5.0"}]}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        }), spec),
        "status": status
    })
}

fn available(status: &str, reason: &str) -> Value {
    json!({
        "type": "Available", "status": status, "reason": reason,
        "message": if status == "True" { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
        "lastUpdateTime": "2025-11-03T09:13:02Z", "lastTransitionTime": "2025-11-03T09:13:02Z"
    })
}

fn progressing(status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": "Progressing", "status": status, "reason": reason, "message": message,
        "lastUpdateTime": "2025-11-03T09:14:10Z", "lastTransitionTime": "2025-11-03T09:12:44Z"
    })
}

#[test]
fn deployment_rollout_states() {
    let done = progressing(
        "True",
        "NewReplicaSetAvailable",
        "ReplicaSet \"health-7d9c8b6f5\" has successfully progressed.",
    );
    let rolling = progressing("True", "ReplicaSetUpdated", "ReplicaSet \"health-7d9c8b6f5\" is progressing.");
    check(vec![
        (
            "rolled out",
            deployment(
                2,
                json!({}),
                json!({
                    "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                    "availableReplicas": 3, "conditions": [available("True", "MinimumReplicasAvailable"), done]
                }),
            ),
            Health::Healthy,
            None,
        ),
        (
            "created, controller has not written a status yet",
            deployment(1, json!({}), json!({})),
            Health::Progressing,
            Some(
                "Waiting for rollout to finish: observed deployment generation less than desired generation",
            ),
        ),
        (
            "new template not yet observed, old status complete",
            deployment(
                5,
                json!({}),
                json!({
                    "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                    "availableReplicas": 3, "conditions": [available("True", "MinimumReplicasAvailable"), done]
                }),
            ),
            Health::Progressing,
            Some(
                "Waiting for rollout to finish: observed deployment generation less than desired generation",
            ),
        ),
        (
            "rollout in progress: new replica set scaling up",
            deployment(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3,
                    "availableReplicas": 3, "unavailableReplicas": 1,
                    "conditions": [available("True", "MinimumReplicasAvailable"), rolling]
                }),
            ),
            Health::Progressing,
            Some(
                "Waiting for deployment \"health\" rollout to finish: 1 out of 3 new replicas have been updated...",
            ),
        ),
        (
            "rollout in progress: old replicas terminating",
            deployment(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 4,
                    "availableReplicas": 4, "conditions": [available("True", "MinimumReplicasAvailable"), rolling]
                }),
            ),
            Health::Progressing,
            Some(
                "Waiting for deployment \"health\" rollout to finish: 1 old replicas are pending termination...",
            ),
        ),
        (
            "rollout in progress: updated replicas not yet available",
            deployment(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 1,
                    "availableReplicas": 1, "unavailableReplicas": 2,
                    "conditions": [available("False", "MinimumReplicasUnavailable"), rolling]
                }),
            ),
            Health::Progressing,
            Some(
                "Waiting for deployment \"health\" rollout to finish: 1 of 3 updated replicas are available...",
            ),
        ),
        (
            "stuck: progress deadline exceeded",
            deployment(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3,
                    "availableReplicas": 3, "unavailableReplicas": 1,
                    "conditions": [
                        available("True", "MinimumReplicasAvailable"),
                        progressing("False", "ProgressDeadlineExceeded", "ReplicaSet \"health-7d9c8b6f5\" has timed out progressing.")
                    ]
                }),
            ),
            Health::Degraded,
            Some("deployment \"health\" exceeded its progress deadline"),
        ),
        (
            "paused mid-rollout, even with a newer generation",
            deployment(
                4,
                json!({"paused": true}),
                json!({
                    "observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 4,
                    "availableReplicas": 4,
                    "conditions": [available("True", "MinimumReplicasAvailable"),
                        progressing("Unknown", "DeploymentPaused", "Deployment is paused")]
                }),
            ),
            Health::Suspended,
            Some("Deployment is paused"),
        ),
        (
            "scaled down from 3 to 1, settled",
            deployment(
                6,
                json!({"replicas": 1}),
                json!({
                    "observedGeneration": 6, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                    "availableReplicas": 1, "conditions": [available("True", "MinimumReplicasAvailable"), done]
                }),
            ),
            Health::Healthy,
            None,
        ),
        (
            "scaled down from 1 to 0: the API server omits the zero counts",
            deployment(
                7,
                json!({"replicas": 0}),
                json!({
                    "observedGeneration": 7, "conditions": [available("True", "MinimumReplicasAvailable"), done]
                }),
            ),
            Health::Healthy,
            None,
        ),
        (
            "no spec.replicas: the API server's default of 1",
            merged(
                deployment(1, json!({}), json!({"observedGeneration": 1})),
                json!({"spec": {"replicas": null}}),
            ),
            Health::Progressing,
            Some(
                "Waiting for deployment \"health\" rollout to finish: 0 out of 1 new replicas have been updated...",
            ),
        ),
        (
            "a count of the wrong type",
            deployment(2, json!({}), json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": "3"})),
            Health::Unknown,
            Some(
                "cannot read the status of Deployment \"health\": status.updatedReplicas: expected an integer, found a string",
            ),
        ),
        (
            "a condition of the wrong shape",
            deployment(
                2,
                json!({}),
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "reason": 7}]}),
            ),
            Health::Unknown,
            Some(
                "cannot read the status of Deployment \"health\": status.conditions[0].reason: expected a string, found an integer",
            ),
        ),
    ]);
}

fn stateful_set(generation: i64, spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "health-db", "namespace": "sreworks", "generation": generation,
            "uid": "3c1f7e55-8a1e-4d8b-b7a4-0f9e1b9c0d42", "resourceVersion": "99120"
        },
        "spec": merged(json!({
            "replicas": 3,
            "serviceName": "health-db",
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"sreworks.io/component": "health-db"}},
            "template": {"spec": {"containers": [{"name": "db", "image": "mariadb:11.4"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}
        }), spec),
        "status": status
    })
}

#[test]
fn stateful_set_rollout_states() {
    let settled = json!({
        "observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
        "updatedReplicas": 3, "availableReplicas": 3, "currentRevision": "health-db-6d5f8c7b9",
        "updateRevision": "health-db-6d5f8c7b9", "collisionCount": 0
    });
    check(vec![
        ("rolled out", stateful_set(2, json!({}), settled.clone()), Health::Healthy, None),
        (
            "observedGeneration not yet written",
            stateful_set(1, json!({}), json!({"replicas": 0, "availableReplicas": 0})),
            Health::Progressing,
            Some("Waiting for statefulset spec update to be observed..."),
        ),
        (
            "new generation not yet observed",
            stateful_set(3, json!({}), settled.clone()),
            Health::Progressing,
            Some("Waiting for statefulset spec update to be observed..."),
        ),
        (
            "pods not ready",
            stateful_set(
                2,
                json!({}),
                merged(settled.clone(), json!({"readyReplicas": 1, "availableReplicas": 1})),
            ),
            Health::Progressing,
            Some("Waiting for 2 pods to be ready..."),
        ),
        (
            "rolling update, 2 of 3 pods updated",
            stateful_set(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "currentReplicas": 1,
                    "updatedReplicas": 2, "availableReplicas": 3, "currentRevision": "health-db-6d5f8c7b9",
                    "updateRevision": "health-db-58b4c9d7f"
                }),
            ),
            Health::Progressing,
            Some("Waiting for partitioned roll out to finish: 2 out of 3 new pods have been updated..."),
        ),
        (
            "rolling update, every pod updated but the current revision not yet moved",
            stateful_set(
                3,
                json!({}),
                json!({
                    "observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "currentReplicas": 0,
                    "updatedReplicas": 3, "availableReplicas": 3, "currentRevision": "health-db-6d5f8c7b9",
                    "updateRevision": "health-db-58b4c9d7f"
                }),
            ),
            Health::Progressing,
            Some(
                "waiting for statefulset rolling update to complete 3 pods at revision health-db-58b4c9d7f...",
            ),
        ),
        (
            "partitioned rollout (canary of the top 3 of 5) in progress",
            stateful_set(
                4,
                json!({"replicas": 5, "updateStrategy": {"rollingUpdate": {"partition": 2}}}),
                json!({
                    "observedGeneration": 4, "replicas": 5, "readyReplicas": 5, "currentReplicas": 4,
                    "updatedReplicas": 1, "availableReplicas": 5, "currentRevision": "health-db-6d5f8c7b9",
                    "updateRevision": "health-db-58b4c9d7f"
                }),
            ),
            Health::Progressing,
            Some("Waiting for partitioned roll out to finish: 1 out of 3 new pods have been updated..."),
        ),
        (
            "partitioned rollout complete: pods below the partition stay at the old revision",
            stateful_set(
                4,
                json!({"replicas": 5, "updateStrategy": {"rollingUpdate": {"partition": 2}}}),
                json!({
                    "observedGeneration": 4, "replicas": 5, "readyReplicas": 5, "currentReplicas": 2,
                    "updatedReplicas": 3, "availableReplicas": 5, "currentRevision": "health-db-6d5f8c7b9",
                    "updateRevision": "health-db-58b4c9d7f"
                }),
            ),
            Health::Healthy,
            Some("partitioned roll out complete: 3 new pods have been updated..."),
        ),
        (
            "partition above the replica count: nothing to update",
            stateful_set(
                4,
                json!({"updateStrategy": {"rollingUpdate": {"partition": 10}}}),
                merged(settled.clone(), json!({"observedGeneration": 4, "updatedReplicas": 0})),
            ),
            Health::Healthy,
            Some("partitioned roll out complete: 0 new pods have been updated..."),
        ),
        (
            "OnDelete: revisions differ until someone deletes the pods, which is the point",
            stateful_set(
                5,
                json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
                json!({
                    "observedGeneration": 5, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
                    "updatedReplicas": 0, "currentRevision": "health-db-6d5f8c7b9", "updateRevision": "health-db-58b4c9d7f"
                }),
            ),
            Health::Healthy,
            None,
        ),
        (
            "OnDelete with pods not ready",
            stateful_set(
                5,
                json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
                json!({
                    "observedGeneration": 5, "replicas": 3, "readyReplicas": 2, "currentReplicas": 3
                }),
            ),
            Health::Progressing,
            Some("Waiting for 1 pods to be ready..."),
        ),
    ]);
}

fn daemon_set(generation: i64, strategy: &str, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "sreworks", "generation": generation},
        "spec": {
            "selector": {"matchLabels": {"app": "node-agent"}},
            "template": {"spec": {"containers": [{"name": "agent", "image": "sreworks/agent:2"}]}},
            "updateStrategy": {"type": strategy}
        },
        "status": status
    })
}

#[test]
fn daemon_set_rollout_states() {
    let settled = json!({
        "observedGeneration": 2, "currentNumberScheduled": 4, "desiredNumberScheduled": 4,
        "numberMisscheduled": 0, "numberReady": 4, "updatedNumberScheduled": 4, "numberAvailable": 4
    });
    check(vec![
        ("rolled out", daemon_set(2, "RollingUpdate", settled.clone()), Health::Healthy, None),
        (
            "new generation not observed",
            daemon_set(3, "RollingUpdate", settled.clone()),
            Health::Progressing,
            Some(
                "Waiting for rollout to finish: observed daemon set generation less than desired generation",
            ),
        ),
        (
            "2 of 4 nodes updated",
            daemon_set(
                2,
                "RollingUpdate",
                merged(
                    settled.clone(),
                    json!({"updatedNumberScheduled": 2, "numberAvailable": 3, "numberUnavailable": 1}),
                ),
            ),
            Health::Progressing,
            Some(
                "Waiting for daemon set \"node-agent\" rollout to finish: 2 out of 4 new pods have been updated...",
            ),
        ),
        (
            "all updated, one not yet available",
            daemon_set(
                2,
                "RollingUpdate",
                merged(settled.clone(), json!({"numberAvailable": 3, "numberUnavailable": 1})),
            ),
            Health::Progressing,
            Some(
                "Waiting for daemon set \"node-agent\" rollout to finish: 3 of 4 updated pods are available...",
            ),
        ),
        (
            "OnDelete: healthy once observed",
            daemon_set(2, "OnDelete", merged(settled, json!({"updatedNumberScheduled": 0}))),
            Health::Healthy,
            None,
        ),
    ]);
}

fn replica_set(status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "health-7d9c8b6f5", "namespace": "sreworks", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"pod-template-hash": "7d9c8b6f5"}}},
        "status": status
    })
}

#[test]
fn replica_set_states() {
    let quota = "pods \"health-7d9c8b6f5-x2x9q\" is forbidden: exceeded quota: compute, requested: cpu=500m, used: cpu=2, limited: cpu=2";
    check(vec![
        (
            "available",
            replica_set(
                json!({"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "pods starting",
            replica_set(
                json!({"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}),
            ),
            Health::Progressing,
            Some("Waiting for rollout to finish: 1 out of 2 new replicas are available..."),
        ),
        (
            "quota exceeded",
            replica_set(json!({
                "observedGeneration": 1, "replicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": quota,
                    "lastTransitionTime": "2025-11-03T09:20:00Z"}]
            })),
            Health::Degraded,
            Some(quota),
        ),
        (
            "a cleared ReplicaFailure does not count",
            replica_set(json!({
                "observedGeneration": 1, "replicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate", "message": quota}]
            })),
            Health::Healthy,
            None,
        ),
    ]);
}
