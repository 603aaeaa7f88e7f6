//! Kill -9 the workflow process (or the k8s-executor's) at any point of a deployment: after a restart
//! the deployment goes on to its correct end, and no component is applied twice for one revision.
//!
//! Each scenario runs the suite in this process except the service it kills, which runs in a child
//! process (see `kill/mod.rs`), launches the health package into the emulator, SIGKILLs the child at
//! one point of the deployment, lets the world move on while it is down, starts it again and checks
//! the end: the deployment `SUCCESS` with the same transitions as an undisturbed run, its component
//! sent once (revision 1, one command), the executor's results all about that one command, and the
//! live Deployment annotated with that revision. One more kills the workflow with a second
//! deployment queued for the same app instance (both finish in turn, revisions 1 and 2 applied once
//! each), and one kills the k8s-executor mid-apply instead.

mod kill;

use std::time::Duration;

use kill::World;
use serde_json::Value;
use sw_testkit::TestEnv;

use sreworks_e2e::fixtures::{
    HEALTH_DEPLOYMENT as DEPLOYMENT, HEALTH_INGRESS as INGRESS, HEALTH_LAUNCH_EVENTS as UNDISTURBED,
};
const REVISION_ANNOTATION: &str = "sreworks.io/revision";

/// Where in a deployment the workflow process is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as the launch was answered: the deployment `CREATED` with its wake-up row (or its
    /// first pass just done, its command maybe still in the outbox).
    Launched,
    /// The component `RUNNING`: applied, the workflow waiting for it to turn healthy. The rollout
    /// completes while the workflow is down.
    Running,
    /// The workflow `SUSPEND`ed at a `suspend` step after the deploy step; resumed after the restart.
    Suspended,
    /// Right after the executor reported the component healthy: its event in flight to the
    /// workflow, usually pulled and not yet acknowledged by the killed process, so JetStream
    /// redelivers it after the consumer's ack wait (`workflow.results_ack_wait_secs`, 2 s here).
    RolledOut,
}

/// In-process poll and lease times short enough for a scenario; the workflow's wake-up rows the
/// killed process held are free again after `lease_secs`.
fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.workflow.lease_secs = 2;
    env.cfg.workflow.results_ack_wait_secs = 2;
    env.cfg.executor.health_poll_ms = 200;
    env.cfg.executor.health_lease_secs = 2;
    env.cfg.executor.ack_wait_secs = 5;
    env
}

fn launch_example() -> String {
    std::fs::read_to_string(sreworks_e2e::fixtures::fixture().join("launch-example.yaml")).unwrap()
}

/// The example with a `deploy` step followed by a `suspend` step.
fn launch_with_suspend() -> String {
    let yaml = launch_example();
    assert!(yaml.contains("    steps: []\n"), "the fixture's workflow has no steps");
    yaml.replace(
        "    steps: []\n",
        "    steps:\n    - type: deploy\n      name: deploy\n    - type: suspend\n      name: approve\n",
    )
}

/// Launches package `package` (the health package) into the emulator; the launch's answer.
async fn launch_answer(w: &World, yaml: &str, package: u64) -> Value {
    w.launch(yaml, &format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod"))
        .await
        .unwrap()
}

/// Imports the health package and launches it; the deployment's id.
async fn launch(w: &World, yaml: &str) -> u64 {
    let package = w.import_health("health").await.unwrap();
    launch_answer(w, yaml, package).await["deployAppId"].as_u64().unwrap()
}

/// The rollout completes and the Ingress gets an address, as the cluster's controllers would do.
async fn roll_out(w: &World) {
    w.complete_rollout(DEPLOYMENT).await.unwrap();
    w.give_address(INGRESS).await.unwrap();
}

async fn kill_workflow_at(point: KillPoint) {
    let mut w = World::start(env(), "workflow").await.unwrap();
    let yaml = match point {
        KillPoint::Suspended => launch_with_suspend(),
        _ => launch_example(),
    };
    let id = launch(&w, &yaml).await;
    match point {
        KillPoint::Launched => {
            w.apart.kill9().unwrap();
            w.apart.restart().await.unwrap();
            w.wait_component(id, "health", "RUNNING").await.unwrap();
            roll_out(&w).await;
        }
        KillPoint::Running => {
            w.wait_component(id, "health", "RUNNING").await.unwrap();
            w.apart.kill9().unwrap();
            roll_out(&w).await;
            // The executor reports it while the workflow is down: the event waits in the stream.
            w.wait_event("executor.component.healthy", |_| true).await.unwrap();
            w.apart.restart().await.unwrap();
        }
        KillPoint::Suspended => {
            w.wait_component(id, "health", "RUNNING").await.unwrap();
            roll_out(&w).await;
            let suspended =
                w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
            assert_eq!(suspended["workflow"]["tasks"][1]["state"], "WAITING_SUSPEND", "{suspended:#}");
            w.apart.kill9().unwrap();
            w.apart.restart().await.unwrap();
            // Still suspended after the restart: only the operator moves it on.
            let d = w.deployment(id).await.unwrap();
            assert_eq!(d["workflow"]["state"], "SUSPEND", "{d:#}");
            let (status, body) = w
                .send_when_up(reqwest::Method::PUT, &format!("/v1/workflows/{id}/resume"), None)
                .await
                .unwrap();
            assert!((200..300).contains(&status), "resume: {status} {body}");
        }
        KillPoint::RolledOut => {
            w.wait_component(id, "health", "RUNNING").await.unwrap();
            roll_out(&w).await;
            w.wait_event("executor.component.healthy", |_| true).await.unwrap();
            w.apart.kill9().unwrap();
            w.apart.restart().await.unwrap();
        }
    }
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["state"], "SUCCESS", "{done:#}");
    applied_once(&mut w, &done, 1, ApplyPatches::Exactly(1)).await;
    live_at(&w, 1).await;
    if !matches!(point, KillPoint::Suspended) {
        assert_eq!(w.events_of(id), UNDISTURBED, "events of deployment {id} killed at {point:?}");
    } else {
        let names = w.events_of(id);
        for expected in ["workflow.instance.suspend", "deployment.app.succeeded"] {
            assert_eq!(names.iter().filter(|n| *n == expected).count(), 1, "{expected} once: {names:?}");
        }
    }
    w.stop().await.unwrap();
}

/// How many server-side applies of the Deployment at one revision the emulator may have seen.
#[derive(Debug, Clone, Copy)]
enum ApplyPatches {
    Exactly(usize),
    /// A command redelivered after its executor was killed mid-apply applies its revision again.
    AtLeast(usize),
}

/// The health component of deployment `done` succeeded, was sent once, as `revision`, in one
/// command the executor alone answered for that revision, and the emulator saw `patches` applies
/// of the Deployment at that revision.
async fn applied_once(w: &mut World, done: &Value, revision: u64, patches: ApplyPatches) {
    let id = done["deployAppId"].as_u64().unwrap();
    let health =
        done["components"].as_array().unwrap().iter().find(|c| c["componentName"] == "health").unwrap();
    assert_eq!(health["state"], "SUCCESS", "{done:#}");
    assert_eq!(health["revision"], revision, "sent once: {health}");
    assert_eq!(health["attempt"], 1, "sent once: {health}");
    let command = health["commandId"].as_str().unwrap();
    let instance = health["componentInstance"].as_str().unwrap();

    w.drain_events(Duration::from_millis(1000)).await;
    let subject = id.to_string();
    let processing: std::collections::BTreeSet<_> = w
        .seen
        .iter()
        .filter(|s| s.name == "deployment.component.processing" && s.subject.as_deref() == Some(&*subject))
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(processing.len(), 1, "one command issued for deployment {id}");
    // Every result of the executor about this command is for this revision, and every result for
    // this revision answers this command: the executor got no second command for it.
    let results: Vec<_> = w
        .seen
        .iter()
        .filter(|s| s.name.starts_with("executor.component.") && s.data["componentInstance"] == instance)
        .filter(|s| s.data["commandId"] == command || s.data["revision"] == revision)
        .collect();
    assert!(results.iter().any(|s| s.name == "executor.component.healthy"), "{results:#?}");
    for r in &results {
        assert_eq!(r.data["commandId"], command, "{r:#?}");
        assert_eq!(r.data["revision"], revision, "{r:#?}");
    }

    let applies: Vec<_> = w
        .emu
        .requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r["method"] == "PATCH"
                && r["path"] == DEPLOYMENT
                && r["body"]["metadata"]["annotations"][REVISION_ANNOTATION].as_str()
                    == Some(&*revision.to_string())
        })
        .collect();
    match patches {
        ApplyPatches::Exactly(n) => {
            assert_eq!(applies.len(), n, "applies of revision {revision}: {applies:#?}")
        }
        ApplyPatches::AtLeast(n) => {
            assert!(applies.len() >= n, "applies of revision {revision}: {applies:#?}")
        }
    }
}

/// The live Deployment is at `revision`, and every apply of it the emulator saw carried a revision
/// up to that one.
async fn live_at(w: &World, revision: u64) {
    let live = w.emu.get(DEPLOYMENT).await.unwrap().expect("the Deployment is on the cluster");
    assert_eq!(live["metadata"]["annotations"][REVISION_ANNOTATION], revision.to_string(), "{live:#}");
    for r in w.emu.requests().await.unwrap() {
        if r["method"] == "PATCH" && r["path"] == DEPLOYMENT {
            let seen = r["body"]["metadata"]["annotations"][REVISION_ANNOTATION].as_str().unwrap_or_default();
            assert!((1..=revision).any(|n| seen == n.to_string()), "an apply of another revision: {r:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_killed_right_after_the_launch_answered_deploys_once_to_success() {
    kill_workflow_at(KillPoint::Launched).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_killed_while_its_component_runs_deploys_once_to_success() {
    kill_workflow_at(KillPoint::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_killed_while_suspended_stays_suspended_until_resumed_then_succeeds() {
    kill_workflow_at(KillPoint::Suspended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_killed_as_the_healthy_result_arrives_deploys_once_to_success() {
    kill_workflow_at(KillPoint::RolledOut).await;
}

/// The workflow killed with one deployment running and a second one of the same app instance
/// queued behind it: after the restart the first finishes, then the second starts, and each
/// revision is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_killed_with_a_deployment_queued_runs_both_in_turn_each_revision_once() {
    let mut w = World::start(env(), "workflow").await.unwrap();
    let package = w.import_health("health").await.unwrap();
    let first = launch_answer(&w, &launch_example(), package).await["deployAppId"].as_u64().unwrap();
    w.wait_component(first, "health", "RUNNING").await.unwrap();
    let answer = launch_answer(&w, &launch_example(), package).await;
    assert_eq!(answer["queued"], true, "{answer}");
    let second = answer["deployAppId"].as_u64().unwrap();
    w.apart.kill9().unwrap();
    w.apart.restart().await.unwrap();
    let waiting = w.deployment(second).await.unwrap();
    assert_eq!(waiting["state"], "CREATED", "queued behind {first}: {waiting:#}");
    roll_out(&w).await;
    let done = w.wait_state(first, "SUCCESS").await.unwrap();
    applied_once(&mut w, &done, 1, ApplyPatches::Exactly(1)).await;
    assert_eq!(w.events_of(first), UNDISTURBED, "events of deployment {first}");

    // The second one applies revision 2. Its spec is the same, so the generation the rollout
    // completed stays current and it may be healthy at once; otherwise its rollout completes too.
    let sent = w
        .wait_for(second, "sent", |d| {
            d["components"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["componentName"] == "health" && (c["state"] == "RUNNING" || c["state"] == "SUCCESS")
                })
            })
        })
        .await
        .unwrap();
    let health =
        sent["components"].as_array().unwrap().iter().find(|c| c["componentName"] == "health").unwrap();
    assert_eq!(health["revision"], 2, "{health}");
    if health["state"] == "RUNNING" {
        roll_out(&w).await;
    }
    let done = w.wait_state(second, "SUCCESS").await.unwrap();
    applied_once(&mut w, &done, 2, ApplyPatches::Exactly(1)).await;
    assert_eq!(w.events_of(second), UNDISTURBED, "events of deployment {second}");
    live_at(&w, 2).await;
    w.stop().await.unwrap();
}

/// The k8s-executor killed while its apply of the Deployment hangs on the API server: the
/// workflow waits, the command is redelivered to the restarted executor (after the consumer's ack
/// wait), which finishes the same revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_killed_mid_apply_finishes_the_same_revision_to_success() {
    let mut w = World::start(env(), "k8s-executor").await.unwrap();
    let delay = serde_json::json!({"method": "PATCH", "path": format!("^{DEPLOYMENT}$"), "seconds": 300});
    let (status, body) = w.emu.call("PUT", "/_control/delay", Some(&delay)).await.unwrap();
    assert!((200..300).contains(&status), "{status} {body}");
    let id = launch(&w, &launch_example()).await;
    let deadline = tokio::time::Instant::now() + kill::WAIT;
    while !w.emu.requests().await.unwrap().iter().any(|r| r["method"] == "PATCH" && r["path"] == DEPLOYMENT) {
        assert!(tokio::time::Instant::now() < deadline, "the executor never applied the Deployment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = w.deployment(id).await.unwrap();
    let health = d["components"].as_array().unwrap().iter().find(|c| c["componentName"] == "health").unwrap();
    assert_eq!(health["state"], "PROCESSING", "{d:#}");
    w.apart.kill9().unwrap();
    // The held write still lands, as on a real API server whose client went away.
    let (status, body) = w.emu.call("DELETE", "/_control/delay", None).await.unwrap();
    assert!((200..300).contains(&status), "{status} {body}");
    w.apart.restart().await.unwrap();
    w.wait_component(id, "health", "RUNNING").await.unwrap();
    roll_out(&w).await;
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    applied_once(&mut w, &done, 1, ApplyPatches::AtLeast(1)).await;
    live_at(&w, 1).await;
    assert_eq!(w.events_of(id), UNDISTURBED, "events of deployment {id}");
    w.stop().await.unwrap();
}

/// Not a scenario: the body of the child process the scenarios start (`kill::serve_child`); a
/// normal run skips it, and run without the child's environment it does nothing.
#[test]
#[ignore = "the child process of the kill scenarios, started by them"]
fn serve_child() {
    kill::serve_child();
}
