//! What `--wait` says while it follows a deployment, as pure functions of what it saw: a line per
//! change between two views ([`changes`]), whether the deployment has ended and how ([`verdict`]),
//! and how long to sleep between polls ([`poll_interval`]).

use std::time::Duration;

use sw_contracts::workflow::{DeployComponentOut, DeploymentDetailOut, DeploymentOut, TaskOut, WorkflowOut};

use crate::error::CliError;

/// Where a deployment stands, for `--wait`.
#[derive(Debug)]
pub enum Verdict {
    /// Not ended yet (a suspended workflow counts as running: an operator may resume it).
    Running,
    /// `SUCCESS`.
    Succeeded,
    /// Ended otherwise, or waiting for an operator (`WAIT_FOR_OP`): the error to exit with.
    Ended(CliError),
}

/// Decides from the deployment's state whether `--wait` stops, and with which error.
pub fn verdict(d: &DeploymentOut) -> Verdict {
    let how = match d.state.as_str() {
        "SUCCESS" => return Verdict::Succeeded,
        "FAILURE" | "EXCEPTION" | "TERMINATED" => format!("ended in {}", d.state),
        "WAIT_FOR_OP" => "waits for an operator (WAIT_FOR_OP)".to_owned(),
        _ => return Verdict::Running,
    };
    Verdict::Ended(CliError::DeploymentEnded {
        code: format!("deployment_{}", d.state.to_ascii_lowercase()),
        detail: format!(
            "deployment {} {how}{}; see `swcli deployment get {}`",
            d.deploy_app_id,
            why(d.reason.as_deref(), d.message.as_deref()),
            d.deploy_app_id
        ),
    })
}

/// The lines describing what changed from `prev` (None: nothing seen yet) to `next`: each step
/// and component whose state (or revision, or attempt) changed, in step and component order;
/// then a hint when the workflow has just been suspended; then the deployment's state if it
/// changed.
pub fn changes(prev: Option<&DeploymentDetailOut>, next: &DeploymentDetailOut) -> Vec<String> {
    let mut lines = Vec::new();
    let mut tasks: Vec<&TaskOut> = next.workflow.tasks.iter().collect();
    tasks.sort_by_key(|t| (t.step_index, t.task_id));
    for t in tasks {
        let before = prev.and_then(|p| p.workflow.tasks.iter().find(|o| o.task_id == t.task_id));
        if before.is_none_or(|b| (b.state.as_str(), b.attempt) != (t.state.as_str(), t.attempt)) {
            lines.push(task_line(t));
        }
    }
    let mut components: Vec<&DeployComponentOut> = next.components.iter().collect();
    components.sort_by_key(|c| c.deploy_component_id);
    for c in components {
        let before =
            prev.and_then(|p| p.components.iter().find(|o| o.deploy_component_id == c.deploy_component_id));
        if before.is_none_or(|b| {
            (b.state.as_str(), b.revision, b.attempt) != (c.state.as_str(), c.revision, c.attempt)
        }) {
            lines.push(component_line(c));
        }
    }
    let was_suspended = prev.is_some_and(|p| p.workflow.state == "SUSPEND");
    if next.workflow.state == "SUSPEND" && !was_suspended {
        lines.push(suspended_hint(&next.workflow));
    }
    if prev.is_none_or(|p| p.deployment.state != next.deployment.state) {
        let d = &next.deployment;
        lines.push(format!(
            "[deployment {}] {}{}",
            d.deploy_app_id,
            d.state,
            why(d.reason.as_deref(), d.message.as_deref())
        ));
    }
    lines
}

/// `suspended at step X: swcli workflow resume N`.
pub fn suspended_hint(w: &WorkflowOut) -> String {
    match suspended_step(w) {
        Some(t) => {
            format!("suspended at step {}: swcli workflow resume {}", step_label(t), w.workflow_instance_id)
        }
        None => format!("suspended: swcli workflow resume {}", w.workflow_instance_id),
    }
}

/// The step a suspended workflow stopped at: the one in a `*_SUSPEND` state, else the last one
/// that started.
fn suspended_step(w: &WorkflowOut) -> Option<&TaskOut> {
    w.tasks
        .iter()
        .find(|t| t.state.ends_with("_SUSPEND"))
        .or_else(|| w.tasks.iter().filter(|t| t.state != "PENDING").max_by_key(|t| (t.step_index, t.task_id)))
}

/// A step's name, else its type and index (the implicit `deploy` step may have no name).
pub fn step_label(t: &TaskOut) -> String {
    match &t.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("{}-{}", t.task_type, t.step_index),
    }
}

/// `TYPE|name`, as SREWorks names a component.
pub fn component_label(c: &DeployComponentOut) -> String {
    format!("{}|{}", c.component_type, c.component_name)
}

fn task_line(t: &TaskOut) -> String {
    let attempt = if t.attempt > 1 { format!(" attempt {}", t.attempt) } else { String::new() };
    format!("[step {}] {}{attempt}{}", step_label(t), t.state, why(t.reason.as_deref(), t.message.as_deref()))
}

fn component_line(c: &DeployComponentOut) -> String {
    let rev = c.revision.map(|r| format!(" rev {r}")).unwrap_or_default();
    let attempt = if c.attempt > 1 { format!(" attempt {}", c.attempt) } else { String::new() };
    let note = match &c.skip_reason {
        Some(s) => format!(" (skipped: {s})"),
        None => why(c.reason.as_deref(), c.message.as_deref()),
    };
    format!("[component {}] {}{rev}{attempt}{note}", component_label(c), c.state)
}

/// ` (reason: message)`, ` (reason)`, ` (message)` or nothing; on one line.
pub fn why(reason: Option<&str>, message: Option<&str>) -> String {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let reason = reason.map(one_line).filter(|s| !s.is_empty());
    let message = message.map(one_line).filter(|s| !s.is_empty());
    match (reason, message) {
        (Some(r), Some(m)) => format!(" ({r}: {m})"),
        (Some(x), None) | (None, Some(x)) => format!(" ({x})"),
        (None, None) => String::new(),
    }
}

/// The pause before poll number `polls` (from 0): every second for the first half minute, then
/// every two seconds.
pub fn poll_interval(polls: u32) -> Duration {
    if polls < 30 { Duration::from_secs(1) } else { Duration::from_secs(2) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::EXIT_TASK_FAILED;

    /// A deployment of `health` with a `deploy` step and one component, as the API returns it.
    fn fixture() -> DeploymentDetailOut {
        serde_json::from_value(json!({
            "deployAppId": 12, "appId": "health", "appPackageId": 7, "packageVersion": "1.0.0+1",
            "clusterId": "master", "namespaceId": "default", "stageId": "prod",
            "appInstanceName": "health-prod", "state": "CREATED", "kind": "LAUNCH", "pinned": false,
            "workflowInstanceId": 30, "createdBy": "admin",
            "createdAt": "2026-11-26T10:00:00Z", "updatedAt": "2026-11-26T10:00:00Z",
            "components": [{
                "deployComponentId": 5, "deployAppId": 12, "taskId": 40,
                "componentType": "K8S_MICROSERVICE", "componentName": "server",
                "componentInstance": "server", "clusterId": "master", "namespaceId": "default",
                "state": "CREATED", "attempt": 1, "updatedAt": "2026-11-26T10:00:00Z"
            }],
            "workflow": {
                "workflowInstanceId": 30, "deployAppId": 12, "appId": "health", "state": "PENDING",
                "mode": "STEP_BY_STEP", "context": {},
                "createdAt": "2026-11-26T10:00:00Z", "updatedAt": "2026-11-26T10:00:00Z",
                "tasks": [
                    {"taskId": 40, "stepIndex": 0, "name": "deploy-local-1", "taskType": "apply-components",
                     "state": "PENDING", "attempt": 0},
                    {"taskId": 41, "stepIndex": 1, "name": "approve", "taskType": "suspend",
                     "state": "PENDING", "attempt": 0}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_first_view_shows_everything() {
        let d = fixture();
        assert_eq!(
            changes(None, &d),
            [
                "[step deploy-local-1] PENDING",
                "[step approve] PENDING",
                "[component K8S_MICROSERVICE|server] CREATED",
                "[deployment 12] CREATED",
            ]
        );
    }

    #[test]
    fn only_changes_are_printed() {
        let before = fixture();
        assert!(changes(Some(&before), &before).is_empty());

        let mut after = before.clone();
        after.deployment.state = "PROCESSING".into();
        after.workflow.state = "RUNNING".into();
        after.workflow.tasks[0].state = "RUNNING".into();
        after.workflow.tasks[0].attempt = 1;
        after.components[0].state = "RUNNING".into();
        after.components[0].revision = Some(3);
        assert_eq!(
            changes(Some(&before), &after),
            [
                "[step deploy-local-1] RUNNING",
                "[component K8S_MICROSERVICE|server] RUNNING rev 3",
                "[deployment 12] PROCESSING",
            ]
        );

        // A new revision alone is a change; so is a retry of a step.
        let mut again = after.clone();
        again.components[0].revision = Some(4);
        again.workflow.tasks[0].attempt = 2;
        assert_eq!(
            changes(Some(&after), &again),
            ["[step deploy-local-1] RUNNING attempt 2", "[component K8S_MICROSERVICE|server] RUNNING rev 4"]
        );
    }

    #[test]
    fn failures_carry_their_reason_on_one_line() {
        let before = fixture();
        let mut after = before.clone();
        after.workflow.tasks[0].state = "FAILURE".into();
        after.workflow.tasks[0].attempt = 1;
        after.workflow.tasks[0].reason = Some("ComponentFailed".into());
        after.workflow.tasks[0].message = Some("server:\n  ImagePullBackOff".into());
        after.components[0].state = "FAILURE".into();
        after.components[0].message = Some("ImagePullBackOff".into());
        after.deployment.state = "FAILURE".into();
        after.deployment.reason = Some("ComponentFailed".into());
        assert_eq!(
            changes(Some(&before), &after),
            [
                "[step deploy-local-1] FAILURE (ComponentFailed: server: ImagePullBackOff)",
                "[component K8S_MICROSERVICE|server] FAILURE (ImagePullBackOff)",
                "[deployment 12] FAILURE (ComponentFailed)",
            ]
        );
    }

    #[test]
    fn a_skipped_component_says_why() {
        let before = fixture();
        let mut after = before.clone();
        after.components[0].state = "SUCCESS".into();
        after.components[0].skip_reason = Some("addon components are not deployed".into());
        assert_eq!(
            changes(Some(&before), &after),
            ["[component K8S_MICROSERVICE|server] SUCCESS (skipped: addon components are not deployed)"]
        );
    }

    #[test]
    fn a_suspension_gets_one_hint() {
        let mut before = fixture();
        before.workflow.state = "RUNNING".into();
        before.workflow.tasks[0].state = "SUCCESS".into();
        let mut after = before.clone();
        after.workflow.state = "SUSPEND".into();
        after.workflow.tasks[1].state = "RUNNING_SUSPEND".into();
        assert_eq!(
            changes(Some(&before), &after),
            ["[step approve] RUNNING_SUSPEND", "suspended at step approve: swcli workflow resume 30"]
        );
        // Still suspended: nothing new.
        assert!(changes(Some(&after), &after).is_empty());

        // Without a step in a *_SUSPEND state, the last step that started is named.
        let mut w = after.workflow.clone();
        w.tasks[1].state = "PENDING".into();
        w.tasks[1].name = None;
        assert_eq!(suspended_hint(&w), "suspended at step deploy-local-1: swcli workflow resume 30");
        w.tasks[0].state = "PENDING".into();
        assert_eq!(suspended_hint(&w), "suspended: swcli workflow resume 30");
    }

    #[test]
    fn unnamed_steps_are_labelled_by_type_and_index() {
        let mut t = fixture().workflow.tasks[1].clone();
        t.name = None;
        assert_eq!(step_label(&t), "suspend-1");
        t.name = Some(String::new());
        assert_eq!(step_label(&t), "suspend-1");
    }

    #[test]
    fn verdicts_and_exit_codes() {
        let mut d = fixture().deployment;
        for running in ["CREATED", "COMPONENT_CHECKING", "PROCESSING", "WAITING", "BACKING_UP"] {
            d.state = running.into();
            assert!(matches!(verdict(&d), Verdict::Running), "{running}");
        }
        d.state = "SUCCESS".into();
        assert!(matches!(verdict(&d), Verdict::Succeeded));
        for (state, code) in [
            ("FAILURE", "deployment_failure"),
            ("EXCEPTION", "deployment_exception"),
            ("TERMINATED", "deployment_terminated"),
            ("WAIT_FOR_OP", "deployment_wait_for_op"),
        ] {
            d.state = state.into();
            let Verdict::Ended(e) = verdict(&d) else { panic!("{state} should end the wait") };
            assert_eq!(e.exit_code(), EXIT_TASK_FAILED, "{state}");
            assert!(e.to_string().starts_with(&format!("{code}: deployment 12 ")), "{e}");
        }
        d.state = "FAILURE".into();
        d.reason = Some("Timeout".into());
        d.message = Some("the deployment did not end in 1800 s".into());
        let Verdict::Ended(e) = verdict(&d) else { panic!() };
        assert_eq!(
            e.to_string(),
            "deployment_failure: deployment 12 ended in FAILURE (Timeout: the deployment did not end in \
             1800 s); see `swcli deployment get 12`"
        );
    }

    #[test]
    fn polling_backs_off_to_two_seconds() {
        assert_eq!(poll_interval(0), Duration::from_secs(1));
        assert_eq!(poll_interval(29), Duration::from_secs(1));
        assert_eq!(poll_interval(30), Duration::from_secs(2));
        assert_eq!(poll_interval(u32::MAX), Duration::from_secs(2));
    }
}
