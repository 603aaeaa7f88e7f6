//! Pods as the kubelet reports them: starting, ready, crash-looping, failing to pull, finished.

use serde_json::{Value, json};

use crate::health::Health;
use crate::health::tests::check;

fn pod(restart_policy: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "health-0", "namespace": "sreworks", "uid": "9e1d2c3b-4a5f-4e6d-8c7b-0a1b2c3d4e5f"},
        "spec": {
            "restartPolicy": restart_policy,
            "initContainers": [{"name": "wait-db", "image": "busybox:1.36"}],
            "containers": [{"name": "health", "image": "sreworks/health:1.5.0"}]
        },
        "status": status
    })
}

fn ready(status: &str) -> Value {
    json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2025-11-03T09:12:50Z"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "2025-11-03T09:12:52Z"},
        {"type": "Ready", "status": status, "lastTransitionTime": "2025-11-03T09:13:01Z"},
        {"type": "ContainersReady", "status": status, "lastTransitionTime": "2025-11-03T09:13:01Z"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-11-03T09:12:45Z"}
    ])
}

fn init_done() -> Value {
    json!([{"name": "wait-db", "ready": true, "restartCount": 0, "image": "busybox:1.36",
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2025-11-03T09:12:50Z", "finishedAt": "2025-11-03T09:12:52Z"}}}])
}

fn container(ready: bool, restarts: i64, state: Value, last_state: Value) -> Value {
    json!([{"name": "health", "ready": ready, "started": ready, "restartCount": restarts,
        "image": "sreworks/health:1.5.0", "imageID": "", "state": state, "lastState": last_state}])
}

#[test]
fn pod_states() {
    let crash = "back-off 5m0s restarting failed container=health pod=health-0_sreworks(9e1d2c3b-4a5f-4e6d-8c7b-0a1b2c3d4e5f)";
    let pull = "Back-off pulling image \"sreworks/health:1.5.0\"";
    let running = json!({"running": {"startedAt": "2025-11-03T09:12:53Z"}});
    let crash_message = format!("container \"health\" is waiting: CrashLoopBackOff: {crash}");
    let pull_message = format!("container \"health\" is waiting: ImagePullBackOff: {pull}");
    let crashed_before = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2025-11-03T09:12:53Z", "finishedAt": "2025-11-03T09:12:58Z"}});
    check(vec![
        (
            "running and ready",
            pod(
                "Always",
                json!({"phase": "Running", "conditions": ready("True"), "initContainerStatuses": init_done(),
                "containerStatuses": container(true, 0, running.clone(), json!({})), "podIP": "10.42.0.17"}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "running, readiness probe not yet passing",
            pod(
                "Always",
                json!({"phase": "Running", "conditions": ready("False"), "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 0, running.clone(), json!({}))}),
            ),
            Health::Progressing,
            None,
        ),
        (
            "running again after a crash, not ready",
            pod(
                "Always",
                json!({"phase": "Running", "conditions": ready("False"), "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 1, running.clone(), crashed_before.clone())}),
            ),
            Health::Degraded,
            None,
        ),
        (
            "CrashLoopBackOff",
            pod(
                "Always",
                json!({"phase": "Running", "conditions": ready("False"), "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 5, json!({"waiting": {"reason": "CrashLoopBackOff", "message": crash}}), crashed_before.clone())}),
            ),
            Health::Degraded,
            Some(crash_message.as_str()),
        ),
        (
            "ImagePullBackOff while Pending",
            pod(
                "Always",
                json!({"phase": "Pending", "conditions": ready("False"), "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 0, json!({"waiting": {"reason": "ImagePullBackOff", "message": pull}}), json!({}))}),
            ),
            Health::Degraded,
            Some(pull_message.as_str()),
        ),
        (
            "CreateContainerConfigError without a message",
            pod(
                "Always",
                json!({"phase": "Pending", "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 0, json!({"waiting": {"reason": "CreateContainerConfigError"}}), json!({}))}),
            ),
            Health::Degraded,
            Some("container \"health\" is waiting: CreateContainerConfigError"),
        ),
        (
            "init container crash-looping",
            pod(
                "Always",
                json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "wait-db", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=wait-db"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                "containerStatuses": container(false, 0, json!({"waiting": {"reason": "PodInitializing"}}), json!({}))}),
            ),
            Health::Degraded,
            Some(
                "container \"wait-db\" is waiting: CrashLoopBackOff: back-off 1m20s restarting failed container=wait-db",
            ),
        ),
        (
            "pending: containers creating",
            pod(
                "Always",
                json!({"phase": "Pending", "initContainerStatuses": init_done(),
                "containerStatuses": container(false, 0, json!({"waiting": {"reason": "ContainerCreating"}}), json!({}))}),
            ),
            Health::Progressing,
            None,
        ),
        (
            "pending: unschedulable",
            pod(
                "Always",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
            ),
            Health::Progressing,
            None,
        ),
        (
            "finite pod running",
            pod(
                "Never",
                json!({"phase": "Running", "conditions": ready("True"), "containerStatuses": container(true, 0, running, json!({}))}),
            ),
            Health::Progressing,
            None,
        ),
        (
            "finite pod with a pull back-off is judged by its phase",
            pod(
                "OnFailure",
                json!({"phase": "Pending",
                "containerStatuses": container(false, 0, json!({"waiting": {"reason": "ImagePullBackOff", "message": pull}}), json!({}))}),
            ),
            Health::Progressing,
            None,
        ),
        (
            "succeeded",
            pod(
                "Never",
                json!({"phase": "Succeeded", "containerStatuses": container(false, 0,
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), json!({}))}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "failed with an exit code",
            pod(
                "Never",
                json!({"phase": "Failed", "initContainerStatuses": init_done(), "containerStatuses": container(false, 0,
                json!({"terminated": {"exitCode": 2, "reason": "Error"}}), json!({}))}),
            ),
            Health::Degraded,
            Some("container \"health\" failed with exit code 2"),
        ),
        (
            "failed: OOMKilled",
            pod(
                "Never",
                json!({"phase": "Failed", "containerStatuses": container(false, 0,
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}), json!({}))}),
            ),
            Health::Degraded,
            Some("OOMKilled"),
        ),
        (
            "failed: evicted, the pod's own message wins",
            pod(
                "Always",
                json!({"phase": "Failed", "reason": "Evicted",
                "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi."}),
            ),
            Health::Degraded,
            Some("The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi."),
        ),
        ("phase Unknown: node lost", pod("Always", json!({"phase": "Unknown"})), Health::Unknown, None),
        (
            "no restartPolicy: the API server's default, Always",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": ready("True")}}),
            Health::Healthy,
            None,
        ),
    ]);
}
