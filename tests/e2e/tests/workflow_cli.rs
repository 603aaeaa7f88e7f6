//! `swcli deployment` and `swcli workflow` against the whole platform and the emulator cluster: a
//! launch of the health package followed with `--wait` to the end, the deployment read back as
//! JSON, a context value set, and the exit codes of a deployment that does not succeed. swcli runs
//! in-process through its library entry point with its own config file and HOME.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sreworks_e2e::world::World;
use sw_testkit::TestEnv;

/// A swcli "installation": a temp HOME holding the config file, logging in as the suite's admin.
struct Swcli {
    home: PathBuf,
    config: PathBuf,
    endpoint: String,
    password: String,
}

/// What one invocation printed, or the error line and exit code it failed with.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    error: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Swcli {
    fn new(w: &World) -> Swcli {
        let home = std::env::temp_dir().join(format!("swcli-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        Swcli {
            config: home.join("swcli.yaml"),
            home,
            endpoint: w.suite.base.clone(),
            password: w.suite.admin_password(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        let cli = swcli::parse_args(std::iter::once("swcli").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
        let env = |k: &str| match k {
            "SWCLI_CONFIG" => Some(self.config.display().to_string()),
            "HOME" => Some(self.home.display().to_string()),
            "SWCLI_ENDPOINT" => Some(self.endpoint.clone()),
            "SWCLI_USERNAME" => Some("admin".to_owned()),
            "SWCLI_PASSWORD" => Some(self.password.clone()),
            _ => None,
        };
        match tokio::time::timeout(Duration::from_secs(90), swcli::run(cli, env))
            .await
            .expect("swcli did not finish in 90 s")
        {
            Ok(stdout) => Out { code: 0, stdout, error: String::new() },
            Err(e) => Out { code: e.exit_code(), stdout: String::new(), error: e.to_string() },
        }
    }
}

impl Drop for Swcli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

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
    let sw = Swcli::new(&w);
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
    let sw = Swcli::new(&w);
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
