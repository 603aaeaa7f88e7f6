//! The executor service end to end: commands on this test's real commands stream, the inventory,
//! results and outbox in its real `{id}_executor` database, events read back from its events stream.
//! The cluster is a `tower_test` mock API server that keeps the objects applied to it (server-side
//! apply creates or updates, GET reads, DELETE removes) and logs every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sw_bus::Bus;
use sw_contracts::AppId;
use sw_contracts::executor::{
    ComponentResult, ComponentTarget, K8sApplyCommand, K8sDeleteCommand, RenderedComponent, TraitSpec,
};
use sw_k8s_executor::kube_apply::Cluster;
use sw_k8s_executor::service::{self, APPLY_COMMAND, DELETE_COMMAND, StaticClusters};
use sw_testkit::{EventTap, TestEnv};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long an event may take: the consumer's pull, the handler, the outbox relay's poll (1s).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to watch for an event that must not come.
const QUIET: Duration = Duration::from_secs(3);

/// The mock API server's objects by path, and the `METHOD path` of every request, in order.
#[derive(Default)]
struct ApiState {
    objects: BTreeMap<String, Value>,
    requests: Vec<String>,
    /// Status codes to answer the next PATCHes with instead of applying them, first first.
    failing_patches: Vec<u16>,
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

/// A running executor with one mock cluster `c1`.
struct TestExecutor {
    env: TestEnv,
    bus: Bus,
    api: Arc<Mutex<ApiState>>,
    events: EventTap,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TestExecutor {
    async fn spawn() -> Self {
        Self::spawn_with_max_deliver(5).await
    }

    async fn spawn_with_max_deliver(max_deliver: i64) -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Arc::new(Mutex::new(ApiState::default()));
        serve(handle, api.clone());
        let cluster = Cluster::new(Client::new(mock, "default"), Duration::from_secs(2));
        let clusters = Arc::new(StaticClusters::new().with("c1", cluster));
        let mut svc = service::build(&env.cfg, bus.clone(), clusters).await.expect("executor builds");
        let consumer = svc.consumer_config_mut();
        consumer.backoff = vec![Duration::from_millis(100)];
        consumer.ack_wait = Duration::from_secs(10);
        consumer.max_deliver = max_deliver;
        let filter = format!("{}.events.executor.>", env.cfg.nats.prefix);
        let events = env.events(&bus, &filter).await;
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { svc.run_until_stopped(stop).await.expect("executor runs") }
        });
        Self { env, bus, api, events, stop, task }
    }

    async fn send_apply(&self, cmd: &K8sApplyCommand) {
        self.bus.publish_command(APPLY_COMMAND, &cmd.command_id, None, cmd).await.expect("publish apply");
    }

    /// The same command again under another message id: what a redelivery past the inbox looks like
    /// (the inbox would otherwise drop it before the handler sees it).
    async fn resend_apply(&self, cmd: &K8sApplyCommand, msg_id: &str) {
        let subject = self.bus.names().command_subject(APPLY_COMMAND);
        let payload = serde_json::to_vec(cmd).expect("json");
        self.bus.publish_raw(&subject, msg_id, None, payload.into()).await.expect("republish");
    }

    async fn send_delete(&self, cmd: &K8sDeleteCommand) {
        self.bus.publish_command(DELETE_COMMAND, &cmd.command_id, None, cmd).await.expect("publish delete");
    }

    /// The next executor event's name (without `sreworks.`) and result.
    async fn next_event(&mut self) -> (String, ComponentResult) {
        let (ev, _) = self.events.next(EVENT_TIMEOUT).await.expect("an executor event in time");
        let data = serde_json::from_value(ev.data.clone()).expect("a ComponentResult");
        (ev.name().to_owned(), data)
    }

    async fn no_more_events(&mut self) {
        if let Some((ev, _)) = self.events.next(QUIET).await {
            panic!("unexpected event {} {}", ev.type_, ev.data);
        }
    }

    fn requests(&self, method: &str) -> Vec<String> {
        let s = self.api.lock().expect("state");
        s.requests.iter().filter(|r| r.starts_with(method)).cloned().collect()
    }

    fn fail_next_patches(&self, codes: &[u16]) {
        self.api.lock().expect("state").failing_patches = codes.to_vec();
    }

    fn live(&self) -> Vec<String> {
        self.api.lock().expect("state").objects.keys().cloned().collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("executor stops in time")
            .expect("executor task");
        self.env.cleanup().await;
    }
}

fn target() -> ComponentTarget {
    ComponentTarget {
        cluster_id: "c1".into(),
        namespace: "shop".into(),
        app_id: AppId::parse("shop").expect("app id"),
        stage_id: Some("prod".into()),
        app_instance: "shop-prod".into(),
        component_instance: "web".into(),
    }
}

/// A Deployment, plus a Service when `with_service`.
fn web(with_service: bool) -> RenderedComponent {
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

fn apply(command_id: &str, revision: u64, component: RenderedComponent) -> K8sApplyCommand {
    K8sApplyCommand {
        command_id: command_id.into(),
        target: target(),
        revision,
        health_deadline_secs: 60,
        component,
    }
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/shop-prod-web";
const SERVICE: &str = "/api/v1/namespaces/shop/services/shop-prod-web";

#[tokio::test]
async fn an_apply_command_is_applied_and_its_redelivery_replays_the_result_without_a_second_patch() {
    let mut x = TestExecutor::spawn().await;
    let cmd = apply("cmd-1", 1, web(true));
    x.send_apply(&cmd).await;

    let (name, first) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{first:?}");
    assert_eq!(first.command_id, "cmd-1");
    assert_eq!(first.revision, 1);
    let objects: Vec<(&str, &str)> =
        first.objects.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect();
    assert_eq!(objects, [("Deployment", "shop-prod-web"), ("Service", "shop-prod-web")]);
    assert!(first.pruned.is_empty());
    assert_eq!(x.requests("PATCH"), [format!("PATCH {DEPLOYMENT}"), format!("PATCH {SERVICE}")]);

    x.resend_apply(&cmd, "cmd-1-redelivered").await;
    let (name, again) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    assert_eq!(again, first, "a redelivery reports the recorded result");
    assert_eq!(x.requests("PATCH").len(), 2, "no second apply: {:?}", x.requests(""));
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn an_older_revision_after_a_newer_one_is_refused_as_stale_and_touches_nothing() {
    let mut x = TestExecutor::spawn().await;
    x.send_apply(&apply("cmd-2", 2, web(true))).await;
    let (name, _) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    let before = x.requests("");

    x.send_apply(&apply("cmd-1", 1, web(false))).await;
    let (name, refused) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(refused.command_id, "cmd-1");
    assert_eq!(refused.revision, 1);
    assert_eq!(refused.reason.as_deref(), Some("StaleRevision"));
    assert!(refused.message.as_deref().is_some_and(|m| m.contains("revision 2")), "{refused:?}");
    assert_eq!(x.requests(""), before, "a refused command sends nothing to the cluster");
    assert_eq!(x.live(), [SERVICE.to_owned(), DEPLOYMENT.to_owned()]);
    x.stop().await;
}

#[tokio::test]
async fn a_helm_component_fails_as_unsupported_without_calling_the_cluster() {
    let mut x = TestExecutor::spawn().await;
    let mut helm = web(false);
    helm.component_type = "HELM".into();
    helm.workload = json!({ "chart": "nginx" });
    x.send_apply(&apply("cmd-helm", 1, helm)).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("unsupported_component_type"));
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("HELM")), "{failed:?}");
    assert!(failed.objects.is_empty());
    assert!(x.requests("").is_empty(), "nothing sent: {:?}", x.requests(""));
    x.stop().await;
}

#[tokio::test]
async fn a_new_revision_prunes_what_it_no_longer_renders_and_a_delete_removes_the_rest() {
    let mut x = TestExecutor::spawn().await;
    x.send_apply(&apply("cmd-1", 1, web(true))).await;
    assert_eq!(x.next_event().await.0, "executor.component.applied");

    x.send_apply(&apply("cmd-2", 2, web(false))).await;
    let (name, second) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    let pruned: Vec<&str> = second.pruned.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(pruned, ["Service"]);
    assert_eq!(x.live(), [DEPLOYMENT.to_owned()]);

    let delete = K8sDeleteCommand { command_id: "cmd-3".into(), target: target(), revision: 3 };
    x.send_delete(&delete).await;
    let (name, deleted) = x.next_event().await;
    assert_eq!(name, "executor.component.deleted");
    let pruned: Vec<&str> = deleted.pruned.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(pruned, ["Deployment"]);
    assert!(x.live().is_empty(), "left: {:?}", x.live());
    x.stop().await;
}

#[tokio::test]
async fn a_cluster_that_is_briefly_unavailable_is_retried_and_the_command_reports_once() {
    let mut x = TestExecutor::spawn().await;
    x.fail_next_patches(&[503]);
    x.send_apply(&apply("cmd-1", 1, web(true))).await;

    let (name, applied) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{applied:?}");
    assert_eq!(applied.objects.len(), 2);
    // The 503, then the retry's two applies: the inventory kept the command in flight meanwhile.
    assert_eq!(
        x.requests("PATCH"),
        [format!("PATCH {DEPLOYMENT}"), format!("PATCH {DEPLOYMENT}"), format!("PATCH {SERVICE}")]
    );
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_conflict_with_another_field_manager_fails_the_command_and_is_not_retried() {
    let mut x = TestExecutor::spawn().await;
    x.fail_next_patches(&[409]);
    x.send_apply(&apply("cmd-1", 1, web(true))).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("ApplyConflict"));
    assert_eq!(x.requests("PATCH"), [format!("PATCH {DEPLOYMENT}")], "the apply stops at the conflict");
    x.no_more_events().await;
    assert_eq!(x.requests("PATCH").len(), 1, "not retried");
    x.stop().await;
}

#[tokio::test]
async fn a_command_for_an_unknown_cluster_fails_without_touching_anything() {
    let mut x = TestExecutor::spawn().await;
    let mut cmd = apply("cmd-1", 1, web(false));
    cmd.target.cluster_id = "nowhere".into();
    x.send_apply(&cmd).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("UnknownCluster"));
    assert!(x.requests("").is_empty());
    x.stop().await;
}

#[tokio::test]
async fn a_cluster_down_for_every_delivery_ends_in_a_failed_event_not_only_the_dead_letter_subject() {
    let mut x = TestExecutor::spawn_with_max_deliver(2).await;
    x.fail_next_patches(&[503, 503, 503]);
    x.send_apply(&apply("cmd-1", 1, web(false))).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed", "{failed:?}");
    assert_eq!(failed.reason.as_deref(), Some("ClusterUnavailable"));
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("503")), "{failed:?}");
    assert_eq!(x.requests("PATCH").len(), 2, "one apply per delivery");
    x.no_more_events().await;
    x.stop().await;
}
