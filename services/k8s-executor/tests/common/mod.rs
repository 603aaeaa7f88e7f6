//! The executor under test: its real commands stream, its real `{id}_executor` database, events
//! read back from its events stream. The cluster is a `tower_test` mock API server that keeps the
//! objects applied to it (server-side apply creates or updates, GET reads, DELETE removes), logs
//! every request, and lets a test set an object's `status` or make reads fail.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sw_bus::{Bus, CloudEvent};
use sw_contracts::AppId;
use sw_contracts::executor::{
    ComponentResult, ComponentTarget, K8sApplyCommand, K8sDeleteCommand, RenderedComponent, TraitSpec,
};
use sw_k8s_executor::kube_apply::Cluster;
use sw_k8s_executor::service::{self, APPLY_COMMAND, DELETE_COMMAND, StaticClusters, WatchSettings};
use sw_k8s_executor::store::{Store, Watch};
use sw_testkit::{EventTap, TestEnv};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long an event may take: the consumer's pull, the handler, the outbox relay's poll (1s).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to watch for an event that must not come.
pub const QUIET: Duration = Duration::from_secs(3);

/// The mock API server's objects by path, and the `METHOD path` of every request, in order.
#[derive(Default)]
pub struct ApiState {
    pub objects: BTreeMap<String, Value>,
    pub requests: Vec<String>,
    /// Status codes to answer the next PATCHes with instead of applying them, first first.
    pub failing_patches: Vec<u16>,
    /// Answer every GET with a 503 while set.
    pub failing_gets: bool,
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Answers like an API server for namespaced built-in kinds: apply creates or updates (uid on
/// create), GET returns the object or 404, DELETE removes it.
fn serve(mut handle: Handle, state: Arc<Mutex<ApiState>>) {
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let path = parts.uri.path().to_owned();
            let method = parts.method.to_string();
            let (code, answer) = {
                let mut s = state.lock().expect("state");
                s.requests.push(format!("{method} {path}"));
                match method.as_str() {
                    "PATCH" if !s.failing_patches.is_empty() => {
                        let code = s.failing_patches.remove(0);
                        (code, failure(code))
                    }
                    "PATCH" => {
                        let mut obj: Value = serde_json::from_slice(&bytes).expect("apply body is JSON");
                        let uid = s.objects.get(&path).map_or_else(
                            || json!(format!("uid-{}", s.requests.len())),
                            |o| o["metadata"]["uid"].clone(),
                        );
                        obj["metadata"]["uid"] = uid;
                        obj["metadata"]["resourceVersion"] = json!(s.requests.len().to_string());
                        s.objects.insert(path, obj.clone());
                        (200, obj)
                    }
                    "GET" if s.failing_gets => (503, failure(503)),
                    "GET" => match s.objects.get(&path) {
                        Some(o) => (200, o.clone()),
                        None => (404, not_found()),
                    },
                    "DELETE" => match s.objects.remove(&path) {
                        Some(_) => {
                            (200, json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" }))
                        }
                        None => (404, not_found()),
                    },
                    other => panic!("unexpected {other} {path}"),
                }
            };
            let response = Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("response");
            send.send_response(response);
        }
    });
}

fn not_found() -> Value {
    failure(404)
}

fn failure(code: u16) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": "Failure", "code": code, "message": format!("answered {code}") })
}

/// One running executor service.
pub struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Cancels its shutdown token and waits for it to drain.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("executor stops in time")
            .expect("executor task");
    }
}

/// A service on `env`'s database and streams with the one cluster `c1`.
pub async fn start(
    env: &TestEnv,
    bus: &Bus,
    cluster: &Cluster,
    max_deliver: i64,
    watch: WatchSettings,
) -> Running {
    let clusters = Arc::new(StaticClusters::new().with("c1", cluster.clone()));
    let mut svc = service::build(&env.cfg, bus.clone(), clusters).await.expect("executor builds");
    let consumer = svc.consumer_config_mut();
    consumer.backoff = vec![Duration::from_millis(100)];
    consumer.ack_wait = Duration::from_secs(10);
    consumer.max_deliver = max_deliver;
    *svc.watch_settings_mut() = watch;
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { svc.run_until_stopped(stop).await.expect("executor runs") }
    });
    Running { stop, task }
}

/// A running executor with one mock cluster `c1`.
pub struct TestExecutor {
    pub env: TestEnv,
    pub bus: Bus,
    pub api: Arc<Mutex<ApiState>>,
    pub cluster: Cluster,
    pub events: EventTap,
    pub watch: WatchSettings,
    running: Option<Running>,
}

impl TestExecutor {
    pub async fn spawn() -> Self {
        Self::spawn_with(5, WatchSettings::default()).await
    }

    pub async fn spawn_with_max_deliver(max_deliver: i64) -> Self {
        Self::spawn_with(max_deliver, WatchSettings::default()).await
    }

    pub async fn spawn_with(max_deliver: i64, watch: WatchSettings) -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Arc::new(Mutex::new(ApiState::default()));
        serve(handle, api.clone());
        let cluster = Cluster::new(Client::new(mock, "default"), Duration::from_secs(2));
        let filter = format!("{}.events.executor.>", env.cfg.nats.prefix);
        let events = env.events(&bus, &filter).await;
        let running = start(&env, &bus, &cluster, max_deliver, watch).await;
        Self { env, bus, api, cluster, events, watch, running: Some(running) }
    }

    /// Another replica on the same database, streams and cluster.
    pub async fn another(&self) -> Running {
        start(&self.env, &self.bus, &self.cluster, 5, self.watch).await
    }

    /// Stops the service (cancelling its token) and starts a new one on the same database.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.running = Some(start(&self.env, &self.bus, &self.cluster, 5, self.watch).await);
    }

    pub async fn send_apply(&self, cmd: &K8sApplyCommand) {
        self.bus.publish_command(APPLY_COMMAND, &cmd.command_id, None, cmd).await.expect("publish apply");
    }

    /// The same command again under another message id: what a redelivery past the inbox looks like
    /// (the inbox would otherwise drop it before the handler sees it).
    pub async fn resend_apply(&self, cmd: &K8sApplyCommand, msg_id: &str) {
        let subject = self.bus.names().command_subject(APPLY_COMMAND);
        let payload = serde_json::to_vec(cmd).expect("json");
        self.bus.publish_raw(&subject, msg_id, None, payload.into()).await.expect("republish");
    }

    pub async fn send_delete(&self, cmd: &K8sDeleteCommand) {
        self.bus.publish_command(DELETE_COMMAND, &cmd.command_id, None, cmd).await.expect("publish delete");
    }

    /// The next executor event's name (without `sreworks.`) and result.
    pub async fn next_event(&mut self) -> (String, ComponentResult) {
        let (ev, result) = self.next_cloud_event().await;
        (ev.name().to_owned(), result)
    }

    /// The next executor event and its result.
    pub async fn next_cloud_event(&mut self) -> (CloudEvent, ComponentResult) {
        let (ev, _) = self.events.next(EVENT_TIMEOUT).await.expect("an executor event in time");
        let data = serde_json::from_value(ev.data.clone()).expect("a ComponentResult");
        (ev, data)
    }

    pub async fn no_more_events(&mut self) {
        self.no_events_for(QUIET).await;
    }

    pub async fn no_events_for(&mut self, quiet: Duration) {
        if let Some((ev, _)) = self.events.next(quiet).await {
            panic!("unexpected event {} {}", ev.type_, ev.data);
        }
    }

    pub fn requests(&self, method: &str) -> Vec<String> {
        let s = self.api.lock().expect("state");
        s.requests.iter().filter(|r| r.starts_with(method)).cloned().collect()
    }

    pub fn fail_next_patches(&self, codes: &[u16]) {
        self.api.lock().expect("state").failing_patches = codes.to_vec();
    }

    pub fn fail_gets(&self, failing: bool) {
        self.api.lock().expect("state").failing_gets = failing;
    }

    /// Sets the `status` of the live object at `path`, as its controller would.
    pub fn set_status(&self, path: &str, status: Value) {
        let mut s = self.api.lock().expect("state");
        let obj = s.objects.get_mut(path).expect("the object is live");
        obj["status"] = status;
    }

    pub fn live(&self) -> Vec<String> {
        self.api.lock().expect("state").objects.keys().cloned().collect()
    }

    /// The store on this executor's database.
    pub async fn store(&self) -> Store {
        Store::open(&self.env.cfg.database).await.expect("executor database")
    }

    /// The instance's watch as stored now.
    pub async fn watch_of(&self, target: &ComponentTarget) -> Option<Watch> {
        self.store().await.watch_of(target).await.expect("watch reads")
    }

    /// Waits until the instance's watch satisfies `done` (the watcher has got to it), or panics.
    pub async fn wait_for_watch(&self, target: &ComponentTarget, done: impl Fn(&Watch) -> bool) -> Watch {
        let store = self.store().await;
        let until = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            if let Some(w) = store.watch_of(target).await.expect("watch reads")
                && done(&w)
            {
                return w;
            }
            assert!(tokio::time::Instant::now() < until, "the watch of {target:?} never got there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.env.cleanup().await;
    }
}

pub fn target() -> ComponentTarget {
    target_of("web")
}

pub fn target_of(component_instance: &str) -> ComponentTarget {
    ComponentTarget {
        cluster_id: "c1".into(),
        namespace: "shop".into(),
        app_id: AppId::parse("shop").expect("app id"),
        stage_id: Some("prod".into()),
        app_instance: "shop-prod".into(),
        component_instance: component_instance.into(),
    }
}

/// A Deployment, plus a Service when `with_service`.
pub fn web(with_service: bool) -> RenderedComponent {
    let traits = if with_service {
        vec![TraitSpec {
            name: "service.trait.abm.io".into(),
            runtime: None,
            spec: json!({ "ports": [{ "port": 80, "targetPort": 8080 }] }),
        }]
    } else {
        Vec::new()
    };
    RenderedComponent {
        component_type: "K8S_MICROSERVICE".into(),
        component_name: "web".into(),
        package_version: Some("1.0.0".into()),
        workload: json!({
            "kind": "Deployment",
            "replicas": 1,
            "containers": [{ "name": "web", "image": "web:1", "ports": [{ "containerPort": 8080 }] }],
        }),
        traits,
    }
}

pub fn apply(command_id: &str, revision: u64, component: RenderedComponent) -> K8sApplyCommand {
    K8sApplyCommand {
        command_id: command_id.into(),
        target: target(),
        revision,
        health_deadline_secs: 60,
        component,
    }
}

pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/shop-prod-web";
pub const SERVICE: &str = "/api/v1/namespaces/shop/services/shop-prod-web";
