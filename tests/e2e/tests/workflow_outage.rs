//! A deployment in flight through an outage of the platform's own infrastructure: the database
//! (MariaDB) or the bus (NATS JetStream) goes away while the component rolls out, and comes back.
//! Nothing is lost and nothing is done twice: the executor's `healthy` result waits in its outbox
//! (NATS down) or is redelivered until the workflow can commit it (database down), and the
//! deployment ends `SUCCESS` with exactly one apply of its one revision — without restarting
//! sreworks.

use std::time::Duration;

use serde_json::Value;
use sreworks_e2e::private::{PrivateMariaDb, PrivateNats};
use sreworks_e2e::world::World;
use sw_testkit::TestEnv;

use sreworks_e2e::fixtures::{HEALTH_DEPLOYMENT as DEPLOYMENT, HEALTH_INGRESS as INGRESS};

fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.executor.health_poll_ms = 200;
    env.cfg.database.acquire_timeout_ms = 1500;
    env.cfg.nats.request_timeout_ms = 1500;
    env
}

/// The health component of deployment detail `d`.
fn health(d: &Value) -> Value {
    d["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["componentName"] == "health")
        .cloned()
        .unwrap_or_else(|| panic!("no health component in {d:#}"))
}

/// Imports the health package, launches its launch file into the emulator and waits for the
/// component to be applied (`RUNNING`, waiting to turn healthy); the deployment id.
async fn launch_and_apply(w: &World) -> u64 {
    let package = w.import_health("health").await.unwrap();
    let file =
        std::fs::read_to_string(sreworks_e2e::fixtures::fixture().join("launch-example.yaml")).unwrap();
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let (status, launched) = w.launch(&file, &query).await.unwrap();
    assert_eq!(status, 201, "{launched}");
    let id = launched["deployAppId"].as_u64().unwrap();
    w.wait_component(id, "health", "RUNNING").await.unwrap();
    id
}

/// The cluster finishes the rollout (what a controller would do), while the outage lasts.
async fn roll_out(w: &World) {
    w.complete_rollout(DEPLOYMENT).await.unwrap();
    w.give_address(INGRESS).await.unwrap();
}

/// The deployment ended `SUCCESS` once, its component at revision 1, and the emulator saw one
/// server-side apply of the Deployment.
async fn finished_once(w: &mut World, id: u64) {
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    let c = health(&done);
    assert_eq!((c["state"].as_str(), c["revision"].as_u64()), (Some("SUCCESS"), Some(1)), "{c}");
    let names = w.events_of(id, Duration::from_millis(500)).await;
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!(count("deployment.app.succeeded"), 1, "{names:?}");
    assert_eq!(count("deployment.component.succeeded"), 1, "{names:?}");
    assert_eq!(count("deployment.component.processing"), 1, "{names:?}");
    let patches = w
        .emu
        .requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r["method"] == "PATCH" && r["path"] == DEPLOYMENT)
        .count();
    assert_eq!(patches, 1, "one server-side apply of revision 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_in_flight_survives_a_database_outage() {
    let mut db = PrivateMariaDb::init();
    let mut env = env();
    env.cfg.database.url = sw_config::Secret::new(format!("mysql://root@127.0.0.1:{}", db.port));
    let mut w = World::start(env).await.unwrap();
    let id = launch_and_apply(&w).await;

    db.kill();
    roll_out(&w).await;
    // The executor's health watch and the workflow's results consumer fail against the database
    // meanwhile, and retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.start();

    finished_once(&mut w, id).await;
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_in_flight_survives_a_nats_outage() {
    let mut nats = PrivateNats::start_new();
    let mut env = env();
    env.cfg.nats.url = format!("nats://127.0.0.1:{}", nats.port);
    let mut w = World::start(env).await.unwrap();
    let id = launch_and_apply(&w).await;

    nats.kill();
    roll_out(&w).await;
    // The executor sees the rollout complete and writes `healthy` to its outbox; the relay cannot
    // publish it until NATS is back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.start();

    // A new tap (from the stream's start) in case the old one's pull did not survive the outage.
    let bus = w.suite.env.bus().await;
    let filter = format!("{}.events.>", w.suite.env.cfg.nats.prefix);
    w.wait_state(id, "SUCCESS").await.unwrap();
    w.events = w.suite.env.events(&bus, &filter).await;
    w.seen.clear();
    finished_once(&mut w, id).await;
    w.suite.stop().await.unwrap();
}
