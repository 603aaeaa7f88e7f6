//! The executor in-process against a [`Backend`]: commands published on this test's real commands
//! stream as the workflow publishes them, events read from its events stream as any subscriber
//! would, the inventory in its own `{id}_executor` database.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sw_bus::Bus;
use sw_contracts::AppId;
use sw_contracts::executor::{
    ComponentResult, ComponentTarget, K8sApplyCommand, K8sDeleteCommand, ObjectRef, RenderedComponent,
    TraitSpec,
};
use sw_k8s_executor::service::{self, APPLY_COMMAND, DELETE_COMMAND, StaticClusters};
use sw_testkit::{EventTap, TestEnv};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::Backend;

/// How long an event may take: the consumer's pull, the handler, the outbox relay's poll — and, after
/// a killed executor, the commands stream's redelivery of the unacked command.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to watch for an event that must not come.
pub const QUIET: Duration = Duration::from_secs(3);
/// The executor's per-call timeout towards the API.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A small image that really runs on a real cluster (and is only a string to the emulator).
pub const IMAGE: &str = "registry.k8s.io/pause:3.10";

/// One test's environment, API backend and namespace, and the executor running on them.
pub struct Executor {
    pub env: TestEnv,
    pub bus: Bus,
    pub backend: Backend,
    pub namespace: String,
    events: EventTap,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// The consumer's timings: short backoff, and how long an unacked command waits for redelivery.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ack_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { ack_wait: Duration::from_secs(10) }
    }
}

impl Executor {
    /// A fresh environment with its own namespace in `backend`, and a running executor whose cluster
    /// `c1` is `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        let mut x = Self::prepare(backend).await;
        x.start(Timing::default()).await;
        x
    }

    /// The environment and namespace without an executor yet ([`Executor::start`] starts one).
    pub async fn prepare(backend: Backend) -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let namespace = format!("{}-shop", env.id);
        backend.create_namespace(&namespace).await;
        let filter = format!("{}.events.executor.>", env.cfg.nats.prefix);
        let events = env.events(&bus, &filter).await;
        Self { env, bus, backend, namespace, events, stop: CancellationToken::new(), task: None }
    }

    /// Starts an executor (the same database and durable consumer as any before it).
    pub async fn start(&mut self, timing: Timing) {
        assert!(self.task.is_none(), "an executor is already running");
        let svc = build(&self.env, self.bus.clone(), self.backend.kube_config(), timing).await;
        self.stop = CancellationToken::new();
        let stop = self.stop.clone();
        self.task =
            Some(tokio::spawn(async move { svc.run_until_stopped(stop).await.expect("executor runs") }));
    }

    /// Starts an executor on a runtime of its own, so that [`Killable::kill`] can end it as a killed
    /// process ends: every task it started — consumer and its transaction, health watch, outbox
    /// relay, HTTP connections — is dropped at once, nothing is acked or rolled back by it.
    pub fn start_killable(&self, timing: Timing) -> Killable {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("killable-executor")
            .enable_all()
            .build()
            .expect("a runtime for the executor to kill");
        let (env, config) = (self.env.clone(), self.backend.kube_config());
        runtime.spawn(async move {
            let bus = env.bus().await;
            let svc = build(&env, bus, config, timing).await;
            svc.run_until_stopped(CancellationToken::new()).await.expect("executor runs");
        });
        Killable { runtime: Some(runtime) }
    }

    /// The target every command of this test is for: component instance `web` of `shop-prod`.
    pub fn target(&self) -> ComponentTarget {
        ComponentTarget {
            cluster_id: "c1".into(),
            namespace: self.namespace.clone(),
            app_id: AppId::parse("shop").expect("app id"),
            stage_id: Some("prod".into()),
            app_instance: "shop-prod".into(),
            component_instance: "web".into(),
        }
    }

    pub fn apply(&self, command_id: &str, revision: u64, component: RenderedComponent) -> K8sApplyCommand {
        K8sApplyCommand {
            command_id: command_id.into(),
            target: self.target(),
            revision,
            health_deadline_secs: 60,
            component,
        }
    }

    pub async fn send_apply(&self, cmd: &K8sApplyCommand) {
        self.bus.publish_command(APPLY_COMMAND, &cmd.command_id, None, cmd).await.expect("publish apply");
    }

    pub async fn send_delete(&self, command_id: &str, revision: u64) {
        let cmd = K8sDeleteCommand { command_id: command_id.into(), target: self.target(), revision };
        self.bus.publish_command(DELETE_COMMAND, command_id, None, &cmd).await.expect("publish delete");
    }

    /// The next executor event's name (without `sreworks.`) and result.
    pub async fn next_event(&mut self) -> (String, ComponentResult) {
        self.next_event_within(EVENT_TIMEOUT).await
    }

    /// The next executor event, waiting up to `within`.
    pub async fn next_event_within(&mut self, within: Duration) -> (String, ComponentResult) {
        let (ev, _) =
            self.events.next(within).await.unwrap_or_else(|| panic!("no executor event within {within:?}"));
        let data = serde_json::from_value(ev.data.clone()).expect("a ComponentResult");
        (ev.name().to_owned(), data)
    }

    /// The next result of a command (`applied`, `failed`, `deleted`), passing over the health
    /// watch's `healthy` / `degraded` reports (a real cluster's controllers make those come soon).
    pub async fn next_result(&mut self) -> (String, ComponentResult) {
        loop {
            let (name, result) = self.next_event().await;
            if !is_watch_report(&name) {
                return (name, result);
            }
        }
    }

    /// Fails on any command result within [`QUIET`] (health watch reports pass).
    pub async fn no_more_results(&mut self) {
        let until = tokio::time::Instant::now() + QUIET;
        while let Some((ev, _)) =
            self.events.next(until.saturating_duration_since(tokio::time::Instant::now())).await
        {
            assert!(is_watch_report(ev.name()), "unexpected event {} {}", ev.type_, ev.data);
        }
    }

    /// Fails on any executor event at all within [`QUIET`].
    pub async fn no_more_events(&mut self) {
        if let Some((ev, _)) = self.events.next(QUIET).await {
            panic!("unexpected event {} {}", ev.type_, ev.data);
        }
    }

    /// The object `r` as the API has it now.
    pub async fn live(&self, r: &ObjectRef) -> Option<Value> {
        self.backend.get(&crate::harness::api_path(r)).await
    }

    /// Stops the executor gracefully, deletes a real cluster's test namespace, drops the test's
    /// databases and streams.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("executor stops in time")
                .expect("executor task");
        }
        self.backend.delete_namespace(&self.namespace).await;
        self.env.cleanup().await;
    }
}

/// An executor started by [`Executor::start_killable`].
pub struct Killable {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Killable {
    /// Drops every task of the executor without letting any of them finish.
    pub fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        // A runtime must not be dropped inside another one (a test that panicked before `kill`).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The health watch's own reports, as opposed to a command's result.
fn is_watch_report(name: &str) -> bool {
    matches!(name, "executor.component.healthy" | "executor.component.degraded")
}

/// `service::build` as the binary calls it, with cluster `c1` = `config` and test timings.
pub async fn build(env: &TestEnv, bus: Bus, config: kube::Config, timing: Timing) -> service::Service {
    let clusters =
        StaticClusters::new().with_config("c1", config, CALL_TIMEOUT).expect("a client for cluster c1");
    let mut svc = service::build(&env.cfg, bus, Arc::new(clusters)).await.expect("executor builds");
    let consumer = svc.consumer_config_mut();
    consumer.backoff = vec![Duration::from_millis(200)];
    consumer.ack_wait = timing.ack_wait;
    consumer.max_deliver = 5;
    svc.watch_settings_mut().poll = Duration::from_millis(250);
    svc
}

/// What a [`component`] renders besides the Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// `service.trait.abm.io`: a Service named like the Deployment.
    pub service: bool,
    /// `configmap`: a ConfigMap `<deployment>-config` (not mounted, so dropping it does not change
    /// the pod).
    pub configmap: bool,
}

/// A `K8S_MICROSERVICE` running [`IMAGE`] with `replicas`, plus `parts`.
pub fn component(parts: Parts, replicas: u32) -> RenderedComponent {
    let mut traits = Vec::new();
    if parts.service {
        traits.push(TraitSpec {
            name: "service.trait.abm.io".into(),
            runtime: None,
            spec: json!({ "ports": [{ "port": 80, "targetPort": 8080 }] }),
        });
    }
    if parts.configmap {
        traits.push(TraitSpec {
            name: "configmap".into(),
            runtime: None,
            spec: json!({ "data": { "greeting": "hello" } }),
        });
    }
    RenderedComponent {
        component_type: "K8S_MICROSERVICE".into(),
        component_name: "web".into(),
        package_version: Some("1.0.0".into()),
        workload: json!({
            "kind": "Deployment",
            "replicas": replicas,
            "containers": [{ "name": "web", "image": IMAGE, "ports": [{ "containerPort": 8080 }] }],
        }),
        traits,
    }
}

pub const ALL: Parts = Parts { service: true, configmap: true };
pub const NO_CONFIGMAP: Parts = Parts { service: true, configmap: false };

/// The refs of the objects `parts` renders in `namespace`, in apply order.
pub fn refs(namespace: &str, parts: Parts) -> Vec<ObjectRef> {
    let r = |api_version: &str, kind: &str, name: &str| ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(namespace.into()),
        name: name.into(),
    };
    let mut out = Vec::new();
    if parts.configmap {
        out.push(r("v1", "ConfigMap", "shop-prod-web-config"));
    }
    out.push(r("apps/v1", "Deployment", "shop-prod-web"));
    if parts.service {
        out.push(r("v1", "Service", "shop-prod-web"));
    }
    out
}
