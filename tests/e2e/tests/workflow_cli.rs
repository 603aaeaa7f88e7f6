//! `swcli deployment` and `swcli workflow` against the whole platform and the emulator cluster: a
//! launch of the health package followed with `--wait` to the end, the deployment read back as
//! JSON, a context value set, and the exit codes of a deployment that does not succeed. swcli runs
//! in-process through its library entry point with its own config file and HOME.

use std::path::PathBuf;

use sreworks_e2e::swcli::Swcli;
use sreworks_e2e::world::World;
use sw_testkit::TestEnv;

fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.executor.health_poll_ms = 200;
    env
}

fn launch_example() -> PathBuf {
    sreworks_e2e::fixtures::fixture().join("launch-example.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swcli_launches_and_waits_for_the_health_package_then_reads_it_back() {
    let w = World::start(env()).await.unwrap();
    let package = w.import_health("health").await.unwrap().to_string();
    let sw = Swcli::new(&w.suite);
    // The cluster's controllers roll the Deployment out and give the Ingress an address while swcli
    // waits.
    let controllers = w.start_controllers("sreworks");
    let path = launch_example();
    let out = sw
        .run(&[
            "deployment",
            "launch",
            "--app-id",
            "health",
            "--app-package-id",
            &package,
            "--path",
            path.to_str().unwrap(),
            "--cluster",
            "emu",
            "--namespace",
            "sreworks",
            "--stage",
            "prod",
            "--wait",
            "--wait-max-seconds",
            "60",
            "--json",
        ])
        .await
        .ok();
    controllers.stop().await;
    let waited = out.json();
    assert_eq!(waited["state"], "SUCCESS", "{waited:#}");
    let id = waited["deployAppId"].as_u64().unwrap();

    let got = sw.run(&["deployment", "get", &id.to_string(), "--json"]).await.ok().json();
    assert_eq!(got["state"], "SUCCESS", "{got:#}");
    assert_eq!(got["appInstanceName"], "prod-health", "{got:#}");
    assert_eq!(got["workflow"]["state"], "SUCCESS", "{got:#}");

    let workflow = got["workflowInstanceId"].as_u64().unwrap().to_string();
    let set =
        sw.run(&["workflow", "context", &workflow, "--set", "a=1", "--set", "who=ci", "--json"]).await.ok();
    let context = &set.json()["context"];
    assert_eq!(context["a"], 1, "{context}");
    assert_eq!(context["who"], "ci", "{context}");
    assert_eq!(w.deployment(id).await.unwrap()["workflow"]["context"]["a"], 1);

    // Not found and already-ended answers keep their exit codes.
    let missing = sw.run(&["deployment", "get", "999999"]).await;
    assert_eq!(missing.code, swcli::error::EXIT_NOT_FOUND, "{missing:?}");
    let ended = sw.run(&["deployment", "terminate", &id.to_string()]).await;
    assert_eq!(ended.code, swcli::error::EXIT_CONFLICT, "{ended:?}");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swcli_wait_exits_with_task_failed_when_the_deployment_times_out() {
    let mut env = env();
    // Nobody rolls the Deployment out: the executor gives up on its health after 2 s.
    env.cfg.workflow.health_timeout_secs = 2;
    let w = World::start(env).await.unwrap();
    let package = w.import_health("health").await.unwrap().to_string();
    let sw = Swcli::new(&w.suite);
    let path = launch_example();
    let out = sw
        .run(&[
            "deployment",
            "launch",
            "--app-package-id",
            &package,
            "--path",
            path.to_str().unwrap(),
            "--cluster",
            "emu",
            "--namespace",
            "sreworks",
            "--stage",
            "prod",
            "--wait",
            "--wait-max-seconds",
            "60",
        ])
        .await;
    assert_eq!(out.code, swcli::error::EXIT_TASK_FAILED, "{out:?}");
    assert!(out.error.starts_with("deployment_failure"), "{out:?}");
    w.suite.stop().await.unwrap();
}
