//! Support for the kill -9 scenarios: the suite in this process except one service, which runs in a
//! child process of its own that a scenario can SIGKILL and start again, the emulator registered as
//! cluster `emu`, and an external subscriber of every event.
//!
//! The child is this test binary run again with [`CHILD_TEST`] as its only test and the service's
//! name and configuration in its environment: it calls `sreworks::start` for that one target, as
//! `sreworks serve --target <name>` does. Running the test binary rather than the `sreworks` binary
//! means the child is always built from the same sources as the test (a `cargo nextest -p
//! sreworks-e2e` run does not rebuild `target/debug/sreworks`, so that one may be stale).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sreworks_e2e::k8s_emulator::K8sEmulator;
use sw_config::Config;
use sw_testkit::{EventTap, TestEnv};
use tokio_util::sync::CancellationToken;

/// How long a scenario waits for something. Generous: a message the killed process had pulled but
/// not acknowledged comes back only after the consumer's ack wait (30 s).
pub const WAIT: Duration = Duration::from_secs(60);

/// The test of `workflow_kill.rs` that is the child process's entry point ([`serve_child`]).
pub const CHILD_TEST: &str = "serve_child";
/// The child's target (`workflow`, `k8s-executor`).
const ENV_TARGET: &str = "SW_E2E_CHILD_TARGET";
/// The child's configuration, as JSON.
const ENV_CONFIG: &str = "SW_E2E_CHILD_CONFIG";
/// A file the child creates once its services started.
const ENV_READY: &str = "SW_E2E_CHILD_READY";

/// The child process's body: runs the target named in its environment until it is killed. Does
/// nothing in a normal test run (the variables are unset).
pub fn serve_child() {
    let (Ok(target), Ok(config), Ok(ready)) =
        (std::env::var(ENV_TARGET), std::env::var(ENV_CONFIG), std::env::var(ENV_READY))
    else {
        return;
    };
    let cfg: Config = serde_json::from_str(&config).expect("the child's configuration");
    let targets: sreworks::Targets = target.parse().expect("the child's target");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let running = sreworks::start(&cfg, &targets, sw_telemetry::metrics_only(), CancellationToken::new())
            .await
            .expect("the child's services start");
        std::fs::write(&ready, "started").expect("the ready file");
        running.wait().await.expect("the child's services run");
    });
}

/// One service in a child process.
pub struct Apart {
    target: &'static str,
    config: String,
    ready: PathBuf,
    child: Option<Child>,
}

impl Apart {
    /// Starts `target` with `cfg` in a child process; returns once its services started.
    pub async fn start(cfg: &Config, target: &'static str) -> anyhow::Result<Apart> {
        let ready = std::env::temp_dir().join(format!("sw-e2e-{}-{target}.ready", cfg.nats.prefix));
        let mut me = Apart { target, config: serde_json::to_string(cfg)?, ready, child: None };
        me.spawn().await?;
        Ok(me)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.ready);
        // Its output goes where this test's goes (nextest shows it when the test fails).
        let child = Command::new(std::env::current_exe()?)
            .args([CHILD_TEST, "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(ENV_TARGET, self.target)
            .env(ENV_CONFIG, &self.config)
            .env(ENV_READY, &self.ready)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} in a child process", self.target))?;
        let child = self.child.insert(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.ready.exists() {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{} exited while starting: {status}", self.target);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not start within 30 s",
                self.target
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGKILLs the child (it must be running) and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().with_context(|| format!("{} is not running", self.target))?;
        anyhow::ensure!(child.try_wait()?.is_none(), "{} had already exited", self.target);
        // std sends SIGKILL on unix: no drain, no shutdown code runs.
        child.kill()?;
        let status = child.wait()?;
        anyhow::ensure!(status.signal() == Some(9), "{} ended with {status}, not SIGKILL", self.target);
        Ok(())
    }

    /// Starts the child again (after [`Apart::kill9`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is still running", self.target);
        self.spawn().await
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.ready);
    }
}

/// An event read by the subscriber.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub id: String,
    pub subject: Option<String>,
    pub data: Value,
}

/// The suite with one service apart, the emulator as cluster `emu`, and a subscriber.
pub struct World {
    pub env: TestEnv,
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The service in its own process.
    pub apart: Apart,
    pub emu: K8sEmulator,
    token: String,
    events: EventTap,
    /// Every event read so far, in stream order.
    pub seen: Vec<Seen>,
}

impl World {
    /// Starts every service but `apart` in this process and `apart` in a child process, the
    /// emulator with namespace `sreworks`, registers it as cluster `emu`, and subscribes to every
    /// event.
    pub async fn start(env: TestEnv, apart: &'static str) -> anyhow::Result<World> {
        let here: Vec<_> = sreworks::Target::ALL.iter().map(|t| t.name()).filter(|n| *n != apart).collect();
        anyhow::ensure!(here.len() + 1 == sreworks::Target::ALL.len(), "unknown target {apart}");
        let targets: sreworks::Targets = here.join(",").parse().map_err(anyhow::Error::msg)?;
        let stop = CancellationToken::new();
        let running = sreworks::start(&env.cfg, &targets, sw_telemetry::metrics_only(), stop.clone()).await?;
        let addr = running.gateway.context("no gateway")?;
        let running = Some(tokio::spawn(running.wait()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
        let base = format!("http://{addr}");
        let apart = Apart::start(&env.cfg, apart).await?;
        let bus = env.bus().await;
        let events = env.events(&bus, &format!("{}.events.>", env.cfg.nats.prefix)).await;
        let emu = sreworks_e2e::world::start_emulator().await?;
        let mut w = World {
            env,
            base,
            http,
            stop,
            running,
            apart,
            emu,
            token: String::new(),
            events,
            seen: Vec::new(),
        };
        w.token = w.admin_token().await?;
        let cluster = sreworks_e2e::world::emulator_cluster(&w.emu.url);
        let (status, body) = w.send(reqwest::Method::POST, "/v1/clusters", Some(cluster)).await?;
        anyhow::ensure!(status == 201, "register cluster: {body}");
        Ok(w)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn admin_token(&self) -> anyhow::Result<String> {
        let pw = self.env.cfg.auth.admin_password.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // The gateway may not have found auth on NATS yet.
            let r = self
                .http
                .post(self.url("/oauth/token"))
                .form(&[
                    ("grant_type", "password"),
                    ("username", "admin"),
                    ("password", pw.as_str()),
                    ("client_id", "swcli"),
                ])
                .send()
                .await?;
            let status = r.status();
            let body: Value = r.json().await?;
            if status == 200 {
                return body["access_token"].as_str().map(str::to_owned).context("no access_token");
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "login: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A JSON request as the admin; returns the status and the body (`null` when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, body))
    }

    /// [`World::send`] again while the answer is 503 (the service is down or still starting), for
    /// at most [`WAIT`].
    pub async fn send_when_up(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, answer) = self.send(method.clone(), path, body.clone()).await?;
            if status != 503 || tokio::time::Instant::now() > deadline {
                return Ok((status, answer));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates app `app_id` and imports the health fixture package as it; returns the package id.
    pub async fn import_health(&self, app_id: &str) -> anyhow::Result<u64> {
        let (status, body) =
            self.send(reqwest::Method::POST, "/v1/apps", Some(json!({"appId": app_id}))).await?;
        anyhow::ensure!(status == 201 || status == 409, "create app: {body}");
        let (zip, _) = sreworks_e2e::fixtures::health_package();
        let r = self
            .http
            .post(self.url(&format!("/v1/apps/{app_id}/app-packages/import")))
            .bearer_auth(&self.token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        anyhow::ensure!(status == 201 || status == 200, "import: {status} {body}");
        body["id"].as_u64().with_context(|| format!("no package id in {body}"))
    }

    /// `POST /v1/deployments/launch?{query}` with `yaml`; the answer (201 expected).
    pub async fn launch(&self, yaml: &str, query: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(self.url(&format!("/v1/deployments/launch?{query}")))
            .bearer_auth(&self.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        anyhow::ensure!(
            // `CREATED` exactly when queued behind another deployment of the instance; otherwise
            // the first pass ran with the launch.
            status == 201
                && body["deployAppId"].is_u64()
                && (body["state"] == "CREATED") == (body["queued"] == true),
            "launch: {status} {body}"
        );
        Ok(body)
    }

    /// `GET /v1/deployments/{id}` (waiting out a 503 while the workflow is down).
    pub async fn deployment(&self, id: u64) -> anyhow::Result<Value> {
        let (status, body) =
            self.send_when_up(reqwest::Method::GET, &format!("/v1/deployments/{id}"), None).await?;
        anyhow::ensure!(status == 200, "get deployment {id}: {status} {body}");
        Ok(body)
    }

    /// Polls deployment `id` until `done` holds (at most [`WAIT`]); returns it.
    pub async fn wait_for(
        &self,
        id: u64,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let d = self.deployment(id).await?;
            if done(&d) {
                return Ok(d);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("deployment {id}: not {what} within {WAIT:?}: {d:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for deployment `id` to be in `state`.
    pub async fn wait_state(&self, id: u64, state: &str) -> anyhow::Result<Value> {
        self.wait_for(id, state, |d| d["state"] == state).await
    }

    /// Waits for component `name` of deployment `id` to be in `state`.
    pub async fn wait_component(&self, id: u64, name: &str, state: &str) -> anyhow::Result<Value> {
        self.wait_for(id, &format!("component {name} {state}"), |d| {
            d["components"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["componentName"] == name && c["state"] == state))
        })
        .await
    }

    /// The emulator's Deployment at `path` reports its current generation rolled out, as a
    /// controller would.
    pub async fn complete_rollout(&self, path: &str) -> anyhow::Result<()> {
        let live = self.emu.get(path).await?.with_context(|| format!("{path} is not on the cluster"))?;
        let status = json!({
            "observedGeneration": live["metadata"]["generation"],
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "readyReplicas": 1,
        });
        self.emu.set_status(path, &status).await?;
        Ok(())
    }

    /// The emulator's Ingress at `path` gets a load-balancer address, as an ingress controller would.
    pub async fn give_address(&self, path: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.emu.get(path).await?.is_some(), "{path} is not on the cluster");
        self.emu.set_status(path, &json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})).await?;
        Ok(())
    }

    /// Reads events until none arrives for `quiet`.
    pub async fn drain_events(&mut self, quiet: Duration) {
        while let Some((ev, _)) = self.events.next(quiet).await {
            self.record(ev);
        }
    }

    /// Reads events until one named `name` whose data satisfies `matches` arrives (at most [`WAIT`]).
    pub async fn wait_event(&mut self, name: &str, matches: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
        if self.seen.iter().any(|s| s.name == name && matches(&s.data)) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (ev, _) =
                self.events.next(left).await.with_context(|| format!("no {name} within {WAIT:?}"))?;
            let hit = ev.name() == name && matches(&ev.data);
            self.record(ev);
            if hit {
                return Ok(());
            }
        }
    }

    fn record(&mut self, ev: sw_contracts::events::CloudEvent) {
        self.seen.push(Seen { name: ev.name().to_owned(), id: ev.id, subject: ev.subject, data: ev.data });
    }

    /// The deployment and workflow events about deployment `id` read so far, each once (a
    /// republished copy has the same id), in order.
    pub fn events_of(&self, id: u64) -> Vec<String> {
        let subject = id.to_string();
        let mut ids = std::collections::BTreeSet::new();
        self.seen
            .iter()
            .filter(|s| {
                (s.name.starts_with("deployment.") || s.name.starts_with("workflow."))
                    && s.subject.as_deref() == Some(subject.as_str())
            })
            .filter(|s| ids.insert(s.id.clone()))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Kills the child, stops the suite, waits for it to drain, and drops this test's databases,
    /// streams and keys.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.apart.child.take() {
            c.kill()?;
            c.wait()?;
        }
        self.stop.cancel();
        if let Some(h) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), h).await???;
        }
        self.env.cleanup().await;
        Ok(())
    }
}
