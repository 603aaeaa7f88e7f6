//! Jobs as the Job controller leaves them: running, complete, failed, suspended, resumed.

use serde_json::{Value, json};

use crate::health::Health;
use crate::health::tests::check;

fn job(suspend: bool, status: Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "health-migrate", "namespace": "sreworks", "generation": 1,
            "uid": "a4d8e0f2-1b7c-4c55-9f0e-6a2b3c4d5e6f", "resourceVersion": "200113",
            "labels": {"app.kubernetes.io/managed-by": "sreworks"}
        },
        "spec": {
            "parallelism": 1, "completions": 1, "backoffLimit": 3, "completionMode": "NonIndexed",
            "suspend": suspend, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "sreworks/health-migrate:1.5.0"}]}}
        },
        "status": status
    })
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastProbeTime": "2025-11-03T10:02:11Z", "lastTransitionTime": "2025-11-03T10:02:11Z"
    })
}

#[test]
fn job_states() {
    let backoff = "Job has reached the specified backoff limit";
    check(vec![
        (
            "running",
            job(
                false,
                json!({"startTime": "2025-11-03T10:01:40Z", "active": 1, "ready": 1, "terminating": 0,
                "uncountedTerminatedPods": {}}),
            ),
            Health::Progressing,
            Some("Waiting for job \"health-migrate\" to complete: 1 active, 0 succeeded, 0 failed pods"),
        ),
        (
            "retrying after a failed pod",
            job(false, json!({"startTime": "2025-11-03T10:01:40Z", "active": 1, "failed": 1, "ready": 0})),
            Health::Progressing,
            Some("Waiting for job \"health-migrate\" to complete: 1 active, 0 succeeded, 1 failed pods"),
        ),
        (
            "complete (1.31+: SuccessCriteriaMet comes first)",
            job(
                false,
                json!({
                    "startTime": "2025-11-03T10:01:40Z", "completionTime": "2025-11-03T10:02:11Z",
                    "succeeded": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                    "conditions": [
                        condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                        condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
                    ]
                }),
            ),
            Health::Healthy,
            Some("Reached expected number of succeeded pods"),
        ),
        (
            "complete (older clusters: no reason or message)",
            job(
                false,
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
                "lastProbeTime": "2025-11-03T10:02:11Z", "lastTransitionTime": "2025-11-03T10:02:11Z"}]}),
            ),
            Health::Healthy,
            None,
        ),
        (
            "failed: backoff limit",
            job(
                false,
                json!({
                    "startTime": "2025-11-03T10:01:40Z", "failed": 4, "ready": 0, "terminating": 0,
                    "conditions": [
                        condition("FailureTarget", "True", "BackoffLimitExceeded", backoff),
                        condition("Failed", "True", "BackoffLimitExceeded", backoff)
                    ]
                }),
            ),
            Health::Degraded,
            Some(backoff),
        ),
        (
            "failing: pods still terminating, only FailureTarget yet",
            job(
                false,
                json!({"active": 0, "failed": 4, "terminating": 1,
                "conditions": [condition("FailureTarget", "True", "BackoffLimitExceeded", backoff)]}),
            ),
            Health::Degraded,
            Some(backoff),
        ),
        (
            "failed: deadline, reason without message",
            job(
                false,
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
            ),
            Health::Degraded,
            Some("DeadlineExceeded"),
        ),
        (
            "suspended",
            job(
                true,
                json!({"conditions": [condition("Suspended", "True", "JobSuspended", "Job suspended")]}),
            ),
            Health::Suspended,
            Some("Job suspended"),
        ),
        (
            "suspended in spec, controller not caught up",
            job(true, json!({})),
            Health::Suspended,
            Some("job is suspended"),
        ),
        (
            "resumed: Suspended False while the job runs again",
            job(
                false,
                json!({"active": 1, "startTime": "2025-11-03T10:05:00Z",
                "conditions": [condition("Suspended", "False", "JobResumed", "Job resumed")]}),
            ),
            Health::Progressing,
            Some("Waiting for job \"health-migrate\" to complete: 1 active, 0 succeeded, 0 failed pods"),
        ),
        (
            "an unreadable count",
            job(false, json!({"active": true})),
            Health::Unknown,
            Some(
                "cannot read the status of Job \"health-migrate\": status.active: expected an integer, found a boolean",
            ),
        ),
    ]);
}
