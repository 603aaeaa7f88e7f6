//! A deployment world for workflow scenarios: the whole suite, a Kubernetes API emulator registered
//! as cluster `emu` through the gateway, an admin token, and an external subscriber of every event.

use std::time::Duration;

use serde_json::{Value, json};
use sw_testkit::{EventTap, TestEnv};

use crate::Suite;
use crate::k8s_emulator::K8sEmulator;

/// How long a scenario waits for a deployment to reach a state.
pub const WAIT: Duration = Duration::from_secs(40);

/// The Kubernetes API emulator with namespace `sreworks`, where the scenarios deploy.
pub async fn start_emulator() -> anyhow::Result<K8sEmulator> {
    let emu = K8sEmulator::start().await?;
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "sreworks" } });
    let (status, body) = emu.call("POST", "/api/v1/namespaces", Some(&ns)).await?;
    anyhow::ensure!(status == 201, "create namespace: {body}");
    Ok(emu)
}

/// The `POST /v1/clusters` body registering the emulator at `api_url` as cluster `emu`.
pub fn emulator_cluster(api_url: &str) -> Value {
    json!({
        "clusterId": "emu",
        "name": "the emulator",
        "apiUrl": api_url,
        "credentials": { "kind": "token", "token": "emu-token-0123456789" },
    })
}

/// The suite, the emulator as cluster `emu`, and a subscriber.
pub struct World {
    pub suite: Suite,
    pub emu: K8sEmulator,
    pub token: String,
    pub events: EventTap,
    /// Every event read so far: `(name, data)`.
    pub seen: Vec<(String, Value)>,
}

impl World {
    /// Starts the suite with `env` (tests tune `env.cfg.workflow` / `env.cfg.executor` first), the
    /// emulator with namespace `sreworks`, registers it as cluster `emu`, and subscribes to every
    /// event.
    pub async fn start(env: TestEnv) -> anyhow::Result<World> {
        let suite = Suite::start(env).await?;
        let bus = suite.env.bus().await;
        let events = suite.env.events(&bus, &format!("{}.events.>", suite.env.cfg.nats.prefix)).await;
        let emu = start_emulator().await?;
        let token = suite.admin_token().await?;
        let world = World { suite, emu, token, events, seen: Vec::new() };
        let (status, body) =
            world.send(reqwest::Method::POST, "/v1/clusters", Some(emulator_cluster(&world.emu.url))).await?;
        anyhow::ensure!(status == 201, "register cluster: {body}");
        Ok(world)
    }

    /// A JSON request as the admin; returns the status and the body (`null` when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.suite.http.request(method, self.suite.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, body))
    }

    /// Creates app `app_id` and imports the health fixture package as it; returns the package id.
    pub async fn import_health(&self, app_id: &str) -> anyhow::Result<u64> {
        let (status, body) =
            self.send(reqwest::Method::POST, "/v1/apps", Some(json!({"appId": app_id}))).await?;
        anyhow::ensure!(status == 201 || status == 409, "create app: {body}");
        let (zip, _) = crate::fixtures::health_package();
        let r = self
            .suite
            .http
            .post(self.suite.url(&format!("/v1/apps/{app_id}/app-packages/import")))
            .bearer_auth(&self.token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        anyhow::ensure!(status == 201 || status == 200, "import: {status} {body}");
        body["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no package id in {body}"))
    }

    /// `POST /v1/deployments/launch?{query}` with `yaml` as `application/yaml`.
    pub async fn launch(&self, yaml: &str, query: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .suite
            .http
            .post(self.suite.url(&format!("/v1/deployments/launch?{query}")))
            .bearer_auth(&self.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        Ok((status, body))
    }

    /// `GET /v1/deployments/{id}`.
    pub async fn deployment(&self, id: u64) -> anyhow::Result<Value> {
        let (status, body) = self.send(reqwest::Method::GET, &format!("/v1/deployments/{id}"), None).await?;
        anyhow::ensure!(status == 200, "get deployment {id}: {status} {body}");
        Ok(body)
    }

    /// Polls deployment `id` until `done` holds (at most [`WAIT`]); returns it. A failed read (a
    /// 503 while a dependency is down) is tried again until the deadline.
    pub async fn wait_for(
        &self,
        id: u64,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let read = self.deployment(id).await;
            if let Ok(d) = &read
                && done(d)
            {
                return read;
            }
            if tokio::time::Instant::now() > deadline {
                let d = read?;
                anyhow::bail!("deployment {id}: not {what} within {WAIT:?}: {d:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a component named `component` of deployment `id` to be in `state`; returns the
    /// deployment.
    pub async fn wait_component(&self, id: u64, component: &str, state: &str) -> anyhow::Result<Value> {
        self.wait_for(id, &format!("{component} {state}"), |d| {
            d["components"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["componentName"] == component && c["state"] == state))
        })
        .await
    }

    /// Waits for deployment `id` to be in `state`.
    pub async fn wait_state(&self, id: u64, state: &str) -> anyhow::Result<Value> {
        self.wait_for(id, state, |d| d["state"] == state).await
    }

    /// The emulator's Deployment at `path` reports its current generation rolled out, as a
    /// controller would; waits for it to exist first.
    pub async fn complete_rollout(&self, path: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let live = loop {
            if let Some(v) = self.emu.get(path).await? {
                break v;
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "{path} never appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
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
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.emu.get(path).await?.is_none() {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "{path} never appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.emu.set_status(path, &json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})).await?;
        Ok(())
    }

    /// Reads events until none arrives for `quiet`; returns the names of those about deployment
    /// `id` (subject), in order, among every event read so far.
    pub async fn events_of(&mut self, id: u64, quiet: Duration) -> Vec<String> {
        while let Some((ev, _)) = self.events.next(quiet).await {
            let mut data = ev.data.clone();
            if let Value::Object(m) = &mut data {
                m.insert("_subject".into(), json!(ev.subject));
            }
            self.seen.push((ev.name().to_owned(), data));
        }
        let subject = id.to_string();
        self.seen
            .iter()
            .filter(|(n, d)| {
                (n.starts_with("deployment.") || n.starts_with("workflow."))
                    && d["_subject"] == subject.as_str()
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Stand-ins for the cluster's controllers while they run: every Deployment of a namespace on the
/// emulator reports its current generation rolled out, every Ingress gets an address. Stops when
/// dropped.
pub struct Controllers {
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Controllers {
    /// Stops the loop and waits for it to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl World {
    /// Starts [`Controllers`] for `namespace`: what [`World::complete_rollout`] and
    /// [`World::give_address`] do, for every object and every new generation, every 100 ms.
    pub fn start_controllers(&self, namespace: &str) -> Controllers {
        let stop = tokio_util::sync::CancellationToken::new();
        let base = self.emu.url.clone();
        let ns = namespace.to_owned();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !token.is_cancelled() {
                // A failed round (the emulator busy) is simply tried again on the next tick.
                let _ = controllers_round(&http, &base, &ns).await;
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        Controllers { stop, task: Some(task) }
    }

    /// `PUT /v1/workflows/{id}/{action}` (`resume`, `terminate`, `retry`…); the status and body.
    pub async fn workflow_action(&self, id: u64, action: &str) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, &format!("/v1/workflows/{id}/{action}"), None).await
    }

    /// `PUT /v1/workflows/{id}/context` with `patch`; the status and body.
    pub async fn put_context(&self, id: u64, patch: Value) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, &format!("/v1/workflows/{id}/context"), Some(patch)).await
    }

    /// The deployments whose `GET /v1/deployments?{query}` lists (newest first) and the total.
    pub async fn deployments(&self, query: &str) -> anyhow::Result<(Vec<Value>, u64)> {
        let (status, body) =
            self.send(reqwest::Method::GET, &format!("/v1/deployments?{query}"), None).await?;
        anyhow::ensure!(status == 200, "list deployments: {status} {body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let total = body["total"].as_u64().ok_or_else(|| anyhow::anyhow!("no total in {body}"))?;
        Ok((items, total))
    }
}

async fn controllers_round(http: &reqwest::Client, base: &str, ns: &str) -> anyhow::Result<()> {
    let list = |path: String| async move {
        let v: Value = http.get(format!("{base}{path}")).send().await?.error_for_status()?.json().await?;
        anyhow::Ok(v["items"].as_array().cloned().unwrap_or_default())
    };
    let set = |path: String, status: Value| async move {
        http.put(format!("{base}/_control/status{path}")).json(&status).send().await?.error_for_status()?;
        anyhow::Ok(())
    };
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    for d in list(deployments.clone()).await? {
        let generation = &d["metadata"]["generation"];
        if d["status"]["observedGeneration"] == *generation && d["status"]["readyReplicas"] == 1 {
            continue;
        }
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let status = json!({
            "observedGeneration": generation,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "readyReplicas": 1,
        });
        set(format!("{deployments}/{name}"), status).await?;
    }
    let ingresses = format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses");
    for i in list(ingresses.clone()).await? {
        if i["status"]["loadBalancer"]["ingress"].is_array() {
            continue;
        }
        let name = i["metadata"]["name"].as_str().unwrap_or_default();
        set(format!("{ingresses}/{name}"), json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}))
            .await?;
    }
    Ok(())
}
