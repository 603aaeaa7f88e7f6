//! A user launches the real SREWorks `health` package into the emulator cluster and watches it
//! succeed; an external JetStream subscriber sees every transition in order.

use std::time::Duration;

use sreworks_e2e::world::World;
use sw_testkit::TestEnv;

use sreworks_e2e::fixtures::{HEALTH_DEPLOYMENT as DEPLOYMENT, HEALTH_INGRESS as INGRESS};

fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.executor.health_poll_ms = 200;
    env
}

fn launch_example() -> String {
    std::fs::read_to_string(sreworks_e2e::fixtures::fixture().join("launch-example.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_package_launches_to_success_with_every_transition_as_an_event() {
    let mut w = World::start(env()).await.unwrap();
    let package = w.import_health("health").await.unwrap();
    let (status, launched) = w
        .launch(
            &launch_example(),
            &format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod"),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{launched}");
    let id = launched["deployAppId"].as_u64().unwrap();
    // Nothing held the app instance: the first pass ran with the launch, its command is on its way.
    assert_eq!(launched["state"], "WAITING", "{launched}");
    assert_eq!(launched["queued"], false, "{launched}");

    // The executor applied the component; the workflow waits for it to turn healthy.
    let running = w.wait_component(id, "health", "RUNNING").await.unwrap();
    assert_eq!(running["state"], "WAITING", "{running:#}");
    let health =
        running["components"].as_array().unwrap().iter().find(|c| c["componentName"] == "health").unwrap();
    assert_eq!(health["revision"], 1, "{health}");
    let live = w.emu.get(DEPLOYMENT).await.unwrap().expect("the Deployment is on the cluster");
    assert_eq!(live["metadata"]["labels"]["sreworks.io/app-id"], "health");
    // Addons are not deployed by the executor: recorded as done with the reason.
    let addons: Vec<_> =
        running["components"].as_array().unwrap().iter().filter(|c| !c["skipReason"].is_null()).collect();
    assert!(!addons.is_empty() && addons.iter().all(|c| c["state"] == "SUCCESS"), "{running:#}");

    w.complete_rollout(DEPLOYMENT).await.unwrap();
    w.give_address(INGRESS).await.unwrap();
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["state"], "SUCCESS", "{done:#}");
    assert_eq!(done["workflow"]["tasks"][0]["state"], "SUCCESS", "{done:#}");
    assert!(done["finishedAt"].is_string());

    let names = w.events_of(id, Duration::from_millis(1500)).await;
    let expected = sreworks_e2e::fixtures::HEALTH_LAUNCH_EVENTS;
    assert_eq!(names, expected, "events of deployment {id}");
    w.suite.stop().await.unwrap();
}
