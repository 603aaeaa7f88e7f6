//! When a deployment goes wrong and an operator steps in: a conflicting field manager fails the
//! component and a retry deploys it again; a component that never turns healthy (or a step that
//! never ends) fails at its deadline; a rollback after a bad release stays pinned; a terminated
//! deployment ignores late results and restarts cleanly when retried; a workflow re-runs from an
//! earlier task with that task's context; terminating a task ends the deployment.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sreworks_e2e::world::{WAIT, World};
use sw_contracts::workflow::{DeployComponentChanged, TaskOut};
use sw_testkit::TestEnv;

use sreworks_e2e::fixtures::{HEALTH_DEPLOYMENT as DEPLOYMENT, HEALTH_INGRESS as INGRESS};
const SERVICES: &str = "/api/v1/namespaces/sreworks/services";
const SERVICE: &str = "/api/v1/namespaces/sreworks/services/prod-health-health";
const QUERY: &str = "clusterId=emu&namespaceId=sreworks&stageId=prod";

fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.executor.health_poll_ms = 200;
    env
}

/// The health fixture's launch file, with `steps` (YAML list items indented by four spaces) as
/// its workflow; empty = the default single deploy step.
fn launch_file(steps: &str) -> String {
    let file =
        std::fs::read_to_string(sreworks_e2e::fixtures::fixture().join("launch-example.yaml")).unwrap();
    assert!(file.contains("    steps: []"), "the fixture's workflow changed");
    if steps.is_empty() { file } else { file.replace("    steps: []", &format!("    steps:\n{steps}")) }
}

/// Imports the health package and launches `yaml` into the emulator; returns the deployment id.
async fn launch(w: &World, yaml: &str) -> u64 {
    let package = w.import_health("health").await.unwrap();
    launch_package(w, yaml, package).await
}

/// Launches `yaml` from the imported `package`; returns the deployment id.
async fn launch_package(w: &World, yaml: &str, package: u64) -> u64 {
    let (status, launched) = w.launch(yaml, &format!("appPackageId={package}&{QUERY}")).await.unwrap();
    assert_eq!(status, 201, "{launched}");
    launched["deployAppId"].as_u64().unwrap()
}

/// The `health` microservice component of deployment detail `d` (of task `task` when given).
fn health(d: &Value, task: Option<u64>) -> Value {
    d["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["componentName"] == "health" && task.is_none_or(|t| c["taskId"] == t))
        .cloned()
        .unwrap_or_else(|| panic!("no health component in {d:#}"))
}

fn task_ids(d: &Value) -> Vec<u64> {
    d["workflow"]["tasks"].as_array().unwrap().iter().map(|t| t["taskId"].as_u64().unwrap()).collect()
}

/// Waits until the health component (of `task`) was applied at `revision` (`RUNNING`, or already
/// `SUCCESS` when the cluster's status from an earlier rollout still holds).
async fn wait_applied(w: &World, id: u64, task: Option<u64>, revision: u64) -> Value {
    w.wait_for(id, &format!("health applied at revision {revision}"), |d| {
        let c = health(d, task);
        c["revision"] == revision && (c["state"] == "RUNNING" || c["state"] == "SUCCESS")
    })
    .await
    .unwrap()
}

/// Plays the cluster's controllers: the Deployment rolled out and the Ingress given an address.
async fn roll_out(w: &World) {
    w.complete_rollout(DEPLOYMENT).await.unwrap();
    w.give_address(INGRESS).await.unwrap();
}

/// A Service named as the one the health component renders, created by another field manager
/// with other ports: the executor's server-side apply of `spec.ports` conflicts with it.
async fn foreign_service(w: &World) {
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "prod-health-health", "namespace": "sreworks" },
        "spec": { "ports": [{ "port": 8080, "protocol": "TCP", "targetPort": 9999 }] },
    });
    let (status, body) =
        w.emu.call("POST", &format!("{SERVICES}?fieldManager=someone-else"), Some(&svc)).await.unwrap();
    assert_eq!(status, 201, "{body}");
}

async fn delete_service(w: &World) {
    let (status, body) = w.emu.call("DELETE", SERVICE, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
}

async fn post(w: &World, path: &str) -> (u16, Value) {
    w.send(Method::POST, path, None).await.unwrap()
}

async fn put(w: &World, path: &str, body: Option<Value>) -> (u16, Value) {
    w.send(Method::PUT, path, body).await.unwrap()
}

/// The revision annotation of the emulator's Deployment.
async fn live_revision(w: &World) -> Option<String> {
    let live = w.emu.get(DEPLOYMENT).await.unwrap()?;
    live["metadata"]["annotations"]["sreworks.io/revision"].as_str().map(str::to_owned)
}

/// Reads events (keeping them in `w.seen`) until the executor reports `healthy` for `command_id`.
async fn executor_healthy(w: &mut World, command_id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let found = |seen: &[(String, Value)]| {
        seen.iter().any(|(n, d)| n == "executor.component.healthy" && d["commandId"] == command_id)
    };
    while !found(&w.seen) {
        assert!(tokio::time::Instant::now() < deadline, "the executor never reported {command_id} healthy");
        if let Some((ev, _)) = w.events.next(Duration::from_millis(500)).await {
            let mut data = ev.data.clone();
            if let Value::Object(m) = &mut data {
                m.insert("_subject".into(), json!(ev.subject));
            }
            w.seen.push((ev.name().to_owned(), data));
        }
    }
}

/// Data of the `name` events about deployment `id` read so far.
fn event_data(w: &World, id: u64, name: &str) -> Vec<Value> {
    w.seen
        .iter()
        .filter(|(n, d)| n == name && d["_subject"] == id.to_string().as_str())
        .map(|(_, d)| d.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_field_manager_waits_for_an_operator_and_a_retry_deploys_a_new_revision() {
    let w = World::start(env()).await.unwrap();
    foreign_service(&w).await;
    let id = launch(&w, &launch_file("")).await;

    let stuck = w.wait_state(id, "WAIT_FOR_OP").await.unwrap();
    let c = health(&stuck, None);
    assert_eq!(c["state"], "WAIT_FOR_OP", "{c}");
    assert_eq!(c["reason"], "ApplyConflict", "{c}");
    assert_eq!((c["revision"].as_u64(), c["attempt"].as_u64()), (Some(1), Some(1)), "{c}");
    assert_eq!(stuck["workflow"]["state"], "FAILURE", "{stuck:#}");
    assert_eq!(stuck["workflow"]["tasks"][0]["state"], "FAILURE", "{stuck:#}");
    assert_eq!(stuck["workflow"]["tasks"][0]["reason"], "ComponentFailed", "{stuck:#}");
    // Never forced: the other manager's ports stay.
    let svc = w.emu.get(SERVICE).await.unwrap().unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080, "{svc}");

    // The operator hands the Service over, then retries.
    delete_service(&w).await;
    let (status, retried) = post(&w, &format!("/v1/deployments/{id}/retry")).await;
    assert_eq!(status, 200, "{retried}");
    assert!(["PROCESSING", "WAITING"].contains(&retried["state"].as_str().unwrap()), "{retried}");

    let running = w
        .wait_for(id, "health re-sent", |d| {
            let c = health(d, None);
            c["revision"] == 2 && c["state"] == "RUNNING"
        })
        .await
        .unwrap();
    assert_eq!(health(&running, None)["attempt"], 2, "{running:#}");
    assert!(health(&running, None)["reason"].is_null(), "{running:#}");
    roll_out(&w).await;
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["state"], "SUCCESS", "{done:#}");
    assert_eq!(health(&done, None)["state"], "SUCCESS", "{done:#}");
    assert_eq!(live_revision(&w).await.as_deref(), Some("2"));
    let svc = w.emu.get(SERVICE).await.unwrap().unwrap();
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 7001, "{svc}");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_never_turns_healthy_fails_at_its_health_deadline() {
    let mut env = env();
    env.cfg.workflow.health_timeout_secs = 3;
    let mut w = World::start(env).await.unwrap();
    let id = launch(&w, &launch_file("")).await;

    // Nothing plays the controllers: the Deployment never rolls out.
    let failed = w.wait_state(id, "FAILURE").await.unwrap();
    assert_eq!(failed["reason"], "Timeout", "{failed:#}");
    assert_eq!(failed["workflow"]["state"], "FAILURE", "{failed:#}");
    let c = health(&failed, None);
    assert_eq!((c["state"].as_str(), c["reason"].as_str()), (Some("FAILURE"), Some("Timeout")), "{c}");

    // Not before its deadline: from when it was sent to when it failed, at least 3 s.
    let names = w.events_of(id, Duration::from_millis(1000)).await;
    let at = |name: &str| {
        let data = event_data(&w, id, name)
            .into_iter()
            .find(|d| d["componentName"] == "health")
            .unwrap_or_else(|| panic!("no {name} event of the health component in {names:?}"));
        serde_json::from_value::<DeployComponentChanged>(data).unwrap().component.updated_at
    };
    let waited = at("deployment.component.failed") - at("deployment.component.processing");
    assert!(waited.num_milliseconds() >= 3000, "failed after {waited:?}, before the 3 s health deadline");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_step_never_resumed_fails_at_its_step_timeout() {
    let w = World::start(env()).await.unwrap();
    let steps = "    - type: suspend\n      name: hold\n      properties:\n        timeout: 2s\n";
    let id = launch(&w, &launch_file(steps)).await;

    let failed = w.wait_state(id, "FAILURE").await.unwrap();
    assert_eq!(failed["reason"], "Timeout", "{failed:#}");
    assert_eq!(failed["workflow"]["state"], "FAILURE", "{failed:#}");
    let task: TaskOut = serde_json::from_value(failed["workflow"]["tasks"][0].clone()).unwrap();
    assert_eq!((task.state.as_str(), task.reason.as_deref()), ("FAILURE", Some("Timeout")), "{task:?}");
    let waited = task.finished_at.unwrap() - task.started_at.unwrap();
    assert!(waited.num_milliseconds() >= 2000, "timed out after {waited:?}, before its 2 s timeout");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_bad_release_stays_pinned_until_forced() {
    let mut env = env();
    env.cfg.workflow.health_timeout_secs = 5;
    let w = World::start(env).await.unwrap();
    let good = launch_file("");
    let package = w.import_health("health").await.unwrap();

    // Release A succeeds; there is nothing before it to roll back to.
    let a = launch_package(&w, &good, package).await;
    wait_applied(&w, a, None, 1).await;
    roll_out(&w).await;
    w.wait_state(a, "SUCCESS").await.unwrap();
    let (status, body) = post(&w, &format!("/v1/deployments/{a}/rollback")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "no_previous_success", "{body}");

    // Release B asks for two replicas, which never roll out: it fails at its health deadline.
    let bad = good.replacen("      value: 1\n", "      value: 2\n", 1);
    assert_ne!(bad, good);
    let b = launch_package(&w, &bad, package).await;
    let failed = w.wait_state(b, "FAILURE").await.unwrap();
    assert_eq!(health(&failed, None)["revision"], 2, "{failed:#}");
    assert_eq!(live_revision(&w).await.as_deref(), Some("2"));

    // The operator rolls B back to A.
    let (status, launched) = post(&w, &format!("/v1/deployments/{b}/rollback")).await;
    assert_eq!(status, 201, "{launched}");
    let c = launched["deployAppId"].as_u64().unwrap();
    assert!(c > b, "{launched}");
    let back = wait_applied(&w, c, None, 3).await;
    assert_eq!(back["kind"], "ROLLBACK", "{back:#}");
    assert_eq!(back["pinned"], true, "{back:#}");
    assert_eq!(back["sourceDeployAppId"], a, "{back:#}");
    roll_out(&w).await;
    w.wait_state(c, "SUCCESS").await.unwrap();
    let live = w.emu.get(DEPLOYMENT).await.unwrap().unwrap();
    assert_eq!(live["metadata"]["annotations"]["sreworks.io/revision"], "3", "{live}");
    assert_eq!(live["spec"]["replicas"], 1, "A's spec is back: {live}");

    // Nothing re-applies B unless forced.
    let (status, body) = post(&w, &format!("/v1/deployments/{b}/retry")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "rollback_pinned", "{body}");
    let (status, body) = post(&w, &format!("/v1/deployments/{b}/replay")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "rollback_pinned", "{body}");
    assert_eq!(w.deployment(b).await.unwrap()["state"], "FAILURE");
    assert_eq!(live_revision(&w).await.as_deref(), Some("3"));
    let (status, body) = post(&w, &format!("/v1/deployments/{b}/retry?force=true")).await;
    assert_eq!(status, 200, "{body}");
    assert!(["PROCESSING", "WAITING"].contains(&body["state"].as_str().unwrap()), "{body}");
    wait_applied(&w, b, None, 4).await;
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_deployment_ignores_late_results_and_restarts_cleanly_when_retried() {
    let mut w = World::start(env()).await.unwrap();
    let id = launch(&w, &launch_file("")).await;
    let running = w.wait_component(id, "health", "RUNNING").await.unwrap();
    let first_command = health(&running, None)["commandId"].as_str().unwrap().to_owned();

    let (status, body) = post(&w, &format!("/v1/deployments/{id}/terminate")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "TERMINATED", "{body}");
    let stopped = w.deployment(id).await.unwrap();
    assert_eq!(health(&stopped, None)["state"], "TERMINATED", "{stopped:#}");
    assert_eq!(stopped["workflow"]["state"], "TERMINATED", "{stopped:#}");
    let (status, body) = post(&w, &format!("/v1/deployments/{id}/terminate")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("invalid_state")), "{body}");

    // The cluster finishes the rollout anyway: the executor's late `healthy` changes nothing.
    roll_out(&w).await;
    executor_healthy(&mut w, &first_command).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = w.deployment(id).await.unwrap();
    assert_eq!(after["state"], "TERMINATED", "{after:#}");
    assert_eq!(health(&after, None)["state"], "TERMINATED", "{after:#}");

    let (status, body) = post(&w, &format!("/v1/deployments/{id}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert!(["PROCESSING", "WAITING"].contains(&body["state"].as_str().unwrap()), "{body}");
    let resent = w.wait_for(id, "health re-sent", |d| health(d, None)["revision"] == 2).await.unwrap();
    let c = health(&resent, None);
    assert_eq!(c["attempt"], 2, "{c}");
    assert_ne!(c["commandId"].as_str(), Some(first_command.as_str()), "{c}");
    roll_out(&w).await;
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(health(&done, None)["state"], "SUCCESS", "{done:#}");

    let names = w.events_of(id, Duration::from_millis(1000)).await;
    let apps: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix("deployment.app.")).collect::<Vec<_>>();
    let terminated = apps.iter().position(|n| *n == "terminated").expect("a terminated event");
    assert_eq!(&apps[terminated..terminated + 2], ["terminated", "processing"], "{apps:?}");
    assert_eq!(apps.last(), Some(&"succeeded"), "{apps:?}");
    w.suite.stop().await.unwrap();
}

/// A healthy result whose pass cannot be made (here the stored plan is unreadable, as a bad edit by
/// hand would leave it) is still applied: the result is applied alone in its transaction, the
/// component's `SUCCESS` commits with its event and the deployment stays due; the driver keeps
/// retrying it and, once the plan reads again, carries it to `SUCCESS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_pass_cannot_commit_is_applied_alone_and_the_driver_finishes_later() {
    applied_alone_then_finished(
        |id| format!("UPDATE deployment SET plan = CONCAT('broken:', plan) WHERE id = {id}"),
        |id| format!("UPDATE deployment SET plan = SUBSTRING(plan, 8) WHERE id = {id}"),
    )
    .await;
}

/// The pass inside a `healthy` result runs without a savepoint: when its writes fail after some of
/// them went through (here a trigger refuses the deployment's update to SUCCESS, after the
/// component and task were written), the whole message rolls back and is retried, and the
/// redelivery applies the result alone. Nothing of the failed pass may remain: one
/// `component.succeeded`, and the driver finishes once the database takes the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_pass_fails_midway_is_retried_alone_and_nothing_of_the_pass_remains() {
    applied_alone_then_finished(
        |id| {
            format!(
                "CREATE TRIGGER refuse_success_{id} BEFORE UPDATE ON deployment FOR EACH ROW \
                 IF NEW.id = {id} AND NEW.state = 'SUCCESS' THEN \
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; \
                 END IF"
            )
        },
        |id| format!("DROP TRIGGER refuse_success_{id}"),
    )
    .await;
}

/// Runs the health fixture's one-step deployment to its `healthy` result, with `block(id)` run on
/// the workflow's database first so that the pass the result allows cannot commit. Checks that the
/// result is applied alone — the component `SUCCESS` with exactly one `component.succeeded`, the
/// deployment still `WAITING` and on the wake-up list — then runs `unblock(id)` and checks that the
/// driver finishes the deployment, still with one `component.succeeded`.
async fn applied_alone_then_finished(block: impl Fn(u64) -> String, unblock: impl Fn(u64) -> String) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let mut w = World::start(env()).await.unwrap();
    let id = launch(&w, &launch_file("")).await;
    let running = w.wait_component(id, "health", "RUNNING").await.unwrap();
    let command = health(&running, None)["commandId"].as_str().unwrap().to_owned();
    let db = w.suite.env.db("workflow").await;
    db.execute_unprepared(&block(id)).await.unwrap();

    roll_out(&w).await;
    executor_healthy(&mut w, &command).await;
    let applied =
        w.wait_for(id, "health succeeded alone", |d| health(d, None)["state"] == "SUCCESS").await.unwrap();
    assert_eq!(applied["state"], "WAITING", "the deployment cannot go on while blocked: {applied:#}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = w.deployment(id).await.unwrap();
    assert_eq!(still["state"], "WAITING", "{still:#}");
    let names = w.events_of(id, Duration::from_millis(300)).await;
    let succeeded = names.iter().filter(|n| *n == "deployment.component.succeeded").count();
    assert_eq!(succeeded, 1, "the pass that could not commit left nothing behind: {names:?}");
    let due = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM wake WHERE deployment_id = ?",
            [(id as i64).into()],
        ))
        .await
        .unwrap()
        .map(|r| r.try_get::<i64>("", "n").unwrap());
    assert_eq!(due, Some(1), "the deployment must stay on the wake-up list");

    db.execute_unprepared(&unblock(id)).await.unwrap();
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(health(&done, None)["state"], "SUCCESS", "{done:#}");
    let names = w.events_of(id, Duration::from_millis(500)).await;
    let succeeded = names.iter().filter(|n| *n == "deployment.component.succeeded").count();
    assert_eq!(succeeded, 1, "one component.succeeded event: {names:?}");
    assert_eq!(names.last().map(String::as_str), Some("deployment.app.succeeded"), "{names:?}");
    w.suite.stop().await.unwrap();
}

const THREE_STEPS: &str = "    - type: deploy\n      name: first\n    - type: suspend\n      name: hold\n    - type: deploy\n      name: second\n";

/// Runs the three-step workflow of deployment `id` (whose health revisions so far are `base`)
/// through its first deploy step up to the suspension.
async fn run_to_suspend(w: &World, id: u64, tasks: &[u64], base: u64) {
    wait_applied(w, id, Some(tasks[0]), base + 1).await;
    roll_out(w).await;
    w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
}

/// Resumes the suspended workflow and lets its second deploy step succeed.
async fn resume_to_success(w: &World, id: u64, tasks: &[u64], base: u64) -> Value {
    let (status, body) = put(w, &format!("/v1/workflows/{id}/resume"), None).await;
    assert_eq!(status, 200, "{body}");
    w.wait_for(id, "second deploy sent", |d| health(d, Some(tasks[2]))["revision"] == base + 2)
        .await
        .unwrap();
    roll_out(w).await;
    w.wait_state(id, "SUCCESS").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_workflow_reruns_from_its_first_task_with_that_tasks_context() {
    let w = World::start(env()).await.unwrap();
    let id = launch(&w, &launch_file(THREE_STEPS)).await;
    let tasks = task_ids(&w.deployment(id).await.unwrap());
    assert_eq!(tasks.len(), 3);
    run_to_suspend(&w, id, &tasks, 0).await;
    let (status, body) =
        put(&w, &format!("/v1/workflows/{id}/context"), Some(json!({"marker": "after"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["context"]["marker"], "after", "{body}");
    let done = resume_to_success(&w, id, &tasks, 0).await;
    assert_eq!(done["workflow"]["context"]["marker"], "after", "{done:#}");

    let (status, body) =
        put(&w, &format!("/v1/workflows/{id}/retry-from-task?taskId={}", tasks[0]), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["context"].get("marker").is_none(), "the first task's context is back: {body}");
    run_to_suspend(&w, id, &tasks, 2).await;
    let again = resume_to_success(&w, id, &tasks, 2).await;
    assert!(again["workflow"]["context"].get("marker").is_none(), "{again:#}");
    assert_eq!(live_revision(&w).await.as_deref(), Some("4"));
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_workflow_reruns_from_its_first_task_with_that_tasks_context() {
    let w = World::start(env()).await.unwrap();
    let id = launch(&w, &launch_file(THREE_STEPS)).await;
    let tasks = task_ids(&w.deployment(id).await.unwrap());
    run_to_suspend(&w, id, &tasks, 0).await;
    let (status, body) =
        put(&w, &format!("/v1/workflows/{id}/context"), Some(json!({"marker": "after"}))).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) =
        put(&w, &format!("/v1/workflows/{id}/retry-from-task?taskId={}", tasks[0]), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["context"].get("marker").is_none(), "the first task's context is back: {body}");
    run_to_suspend(&w, id, &tasks, 1).await;
    let done = resume_to_success(&w, id, &tasks, 1).await;
    assert!(done["workflow"]["context"].get("marker").is_none(), "{done:#}");
    assert_eq!(live_revision(&w).await.as_deref(), Some("3"));
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_suspended_task_terminates_the_deployment() {
    let w = World::start(env()).await.unwrap();
    let steps = "    - type: suspend\n      name: hold\n";
    let id = launch(&w, &launch_file(steps)).await;
    let suspended = w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
    let task = task_ids(&suspended)[0];

    let (status, body) = put(&w, &format!("/v1/workflows/{id}/tasks/999999999/terminate"), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = put(&w, &format!("/v1/workflows/{id}/tasks/{task}/terminate"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "TERMINATED", "{body}");
    let d = w.deployment(id).await.unwrap();
    assert_eq!(d["state"], "TERMINATED", "{d:#}");
    assert_eq!(d["workflow"]["tasks"][0]["state"], "TERMINATED", "{d:#}");
    w.suite.stop().await.unwrap();
}
