//! A cluster as a user registers it, and the k8s-executor deploying to it: the whole suite runs
//! in-process (every target), the Kubernetes API is the emulator (`tests/k8s-emulator`), the
//! cluster is registered through the gateway (`POST /v1/clusters`), commands go on the commands
//! stream as the workflow puts them there, and results are read from the events stream as an
//! external subscriber reads them. Nothing about the cluster is configured statically: the executor
//! learns it from appmeta (`clusters.connection`) when the first command for it arrives, and learns
//! it again after its cache TTL when the cluster changed.

use std::time::Duration;

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sreworks_e2e::k8s_emulator::K8sEmulator;
use sw_contracts::AppId;
use sw_contracts::executor::{
    ComponentTarget, K8sApplyCommand, K8sDeleteCommand, RenderedComponent, TraitSpec,
};
use sw_testkit::{EventTap, TestEnv};

/// Every wait for an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
const APPLIED: &str = "executor.component.applied";
const HEALTHY: &str = "executor.component.healthy";
const FAILED: &str = "executor.component.failed";
const DELETED: &str = "executor.component.deleted";
/// The Deployment `K8S_MICROSERVICE` `web` of app instance `shop-prod` renders, in namespace `shop`.
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/shop-prod-web";
const SERVICE: &str = "/api/v1/namespaces/shop/services/shop-prod-web";

/// The executor's events as a subscriber sees them; events read while looking for another one are
/// kept for later lookups.
struct Events {
    tap: EventTap,
    seen: Vec<(String, Value)>,
}

impl Events {
    /// The first event `name` answering `command_id`; fails on a `failed` for that command when
    /// `name` is not `failed`, and after [`EVENT_TIMEOUT`].
    async fn expect(&mut self, name: &str, command_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        let mut i = 0;
        loop {
            while i < self.seen.len() {
                let (n, data) = &self.seen[i];
                if data["commandId"] == command_id {
                    if n == name {
                        return self.seen.remove(i).1;
                    }
                    assert!(n != FAILED, "{command_id} failed while waiting for {name}: {data}");
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (ev, _) = self.tap.next(left).await.unwrap_or_else(|| {
                panic!("no {name} for {command_id} within {EVENT_TIMEOUT:?}; other events: {:?}", self.seen)
            });
            self.seen.push((ev.name().to_owned(), ev.data.clone()));
        }
    }
}

fn target(cluster_id: &str, component_instance: &str) -> ComponentTarget {
    ComponentTarget {
        cluster_id: cluster_id.into(),
        namespace: "shop".into(),
        app_id: AppId::parse("shop").unwrap(),
        stage_id: Some("prod".into()),
        app_instance: "shop-prod".into(),
        component_instance: component_instance.into(),
    }
}

/// A `K8S_MICROSERVICE` `component_instance` with a `service.trait.abm.io` Service.
fn apply(cluster_id: &str, component_instance: &str, command_id: &str, revision: u64) -> K8sApplyCommand {
    K8sApplyCommand {
        command_id: command_id.into(),
        target: target(cluster_id, component_instance),
        revision,
        health_deadline_secs: 30,
        component: RenderedComponent {
            component_type: "K8S_MICROSERVICE".into(),
            component_name: component_instance.into(),
            package_version: Some("1.0.0".into()),
            workload: json!({
                "kind": "Deployment",
                "replicas": 1,
                "containers": [{
                    "name": component_instance,
                    "image": "registry.k8s.io/pause:3.10",
                    "ports": [{ "containerPort": 8080 }],
                }],
            }),
            traits: vec![TraitSpec {
                name: "service.trait.abm.io".into(),
                runtime: None,
                spec: json!({ "ports": [{ "port": 80, "targetPort": 8080 }] }),
            }],
        },
    }
}

/// The emulator's Deployment reports its current generation rolled out, as a controller would.
async fn complete_rollout(emu: &K8sEmulator) {
    let live = emu.get(DEPLOYMENT).await.unwrap().expect("the Deployment exists");
    let status = json!({
        "observedGeneration": live["metadata"]["generation"],
        "replicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
        "readyReplicas": 1,
    });
    emu.set_status(DEPLOYMENT, &status).await.unwrap();
}

async fn create_namespace_shop(emu: &K8sEmulator) {
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "shop" } });
    let (status, body) = emu.call("POST", "/api/v1/namespaces", Some(&ns)).await.unwrap();
    assert_eq!(status, 201, "create namespace shop: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_registered_through_the_gateway_is_deployed_to_by_the_executor() {
    let mut env = TestEnv::new();
    // Ask appmeta again soon, so a changed cluster is picked up within the test; read health often.
    env.cfg.executor.cluster_cache_secs = 1;
    env.cfg.executor.health_poll_ms = 200;
    let suite = Suite::start(env).await.unwrap();
    let bus = suite.env.bus().await;
    let mut events = Events {
        tap: suite.env.events(&bus, &format!("{}.events.executor.>", suite.env.cfg.nats.prefix)).await,
        seen: Vec::new(),
    };
    let emu = K8sEmulator::start().await.unwrap();
    create_namespace_shop(&emu).await;
    let token = suite.admin_token().await.unwrap();

    // 2. The admin registers the emulator as cluster `emu`.
    let first_token = format!("emu-token-{}", uuid::Uuid::new_v4().simple());
    let r = suite
        .http
        .post(suite.url("/v1/clusters"))
        .bearer_auth(&token)
        .json(&json!({
            "clusterId": "emu",
            "name": "the emulator",
            "apiUrl": emu.url,
            "credentials": { "kind": "token", "token": first_token },
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let created: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["credentialKind"], "token", "{created}");
    assert!(!created.to_string().contains(&first_token), "credentials are never returned: {created}");

    // 3./4. Revision 1 is applied with the ownership labels, and is healthy once rolled out.
    let cmd = apply("emu", "web", "cmd-1", 1);
    bus.publish_command("k8s.apply", &cmd.command_id, None, &cmd).await.unwrap();
    let applied = events.expect(APPLIED, "cmd-1").await;
    assert_eq!((applied["clusterId"].as_str(), applied["revision"].as_u64()), (Some("emu"), Some(1)));
    let kinds: Vec<&str> =
        applied["objects"].as_array().unwrap().iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service"], "{applied}");
    let live = emu.get(DEPLOYMENT).await.unwrap().expect("the Deployment is on the emulator");
    let labels = &live["metadata"]["labels"];
    for (key, value) in [
        ("app.kubernetes.io/managed-by", "sreworks"),
        ("sreworks.io/app-id", "shop"),
        ("sreworks.io/stage", "prod"),
        ("sreworks.io/component", "web"),
        ("sreworks.io/instance", "shop-prod"),
        ("sreworks.io/component-instance", "web"),
    ] {
        assert_eq!(labels[key], value, "label {key}: {labels}");
    }
    assert_eq!(live["metadata"]["annotations"]["sreworks.io/revision"], "1", "{}", live["metadata"]);
    assert!(emu.get(SERVICE).await.unwrap().is_some(), "the service trait's Service");
    // The executor server-side applied to this emulator with the token it opened from appmeta's
    // sealed credentials.
    let log = emu.requests().await.unwrap();
    let bearer = format!("Bearer {first_token}");
    assert!(
        log.iter().any(|r| r["method"] == "PATCH"
            && r["path"] == DEPLOYMENT
            && r["query"]["fieldManager"] == "sreworks"
            && r["authorization"] == bearer.as_str()),
        "a server-side apply of the Deployment with the registered token: {log:?}"
    );
    complete_rollout(&emu).await;
    let healthy = events.expect(HEALTHY, "cmd-1").await;
    assert_eq!(healthy["health"], "Healthy", "{healthy}");

    // 5. An instance on a cluster nobody registered fails alone; `emu` still works.
    let stray = apply("nowhere", "api", "cmd-stray", 1);
    bus.publish_command("k8s.apply", &stray.command_id, None, &stray).await.unwrap();
    let failed = events.expect(FAILED, "cmd-stray").await;
    assert_eq!(failed["reason"], "UnknownCluster", "{failed}");
    assert_eq!(failed["clusterId"], "nowhere", "{failed}");
    let cmd = apply("emu", "web", "cmd-2", 2);
    bus.publish_command("k8s.apply", &cmd.command_id, None, &cmd).await.unwrap();
    events.expect(APPLIED, "cmd-2").await;
    let live = emu.get(DEPLOYMENT).await.unwrap().expect("the Deployment");
    assert_eq!(live["metadata"]["annotations"]["sreworks.io/revision"], "2", "{}", live["metadata"]);
    complete_rollout(&emu).await;
    events.expect(HEALTHY, "cmd-2").await;

    // 6. The cluster moves to another API server with new credentials: after the cache TTL the
    //    executor asks appmeta again and deploys there.
    let moved = K8sEmulator::start().await.unwrap();
    let rotated = format!("rotated-{}", uuid::Uuid::new_v4().simple());
    create_namespace_shop(&moved).await;
    let r = suite
        .http
        .patch(suite.url("/v1/clusters/emu"))
        .bearer_auth(&token)
        .json(&json!({
            "apiUrl": moved.url,
            "credentials": { "kind": "token", "token": rotated },
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let changed: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{changed}");
    assert!(changed["version"].as_i64() > created["version"].as_i64(), "{created} -> {changed}");
    tokio::time::sleep(Duration::from_millis(1_500)).await; // past executor.cluster_cache_secs
    let cmd = apply("emu", "web", "cmd-3", 3);
    bus.publish_command("k8s.apply", &cmd.command_id, None, &cmd).await.unwrap();
    events.expect(APPLIED, "cmd-3").await;
    let live = moved.get(DEPLOYMENT).await.unwrap().expect("revision 3 went to the cluster's new API server");
    assert_eq!(live["metadata"]["annotations"]["sreworks.io/revision"], "3", "{}", live["metadata"]);
    let log = moved.requests().await.unwrap();
    let bearer = format!("Bearer {rotated}");
    assert!(
        log.iter().filter(|r| r["method"] == "PATCH").all(|r| r["authorization"] == bearer.as_str()),
        "the new API server is called with the new token: {log:?}"
    );
    let old = emu.get(DEPLOYMENT).await.unwrap().expect("the old API server keeps what it had");
    assert_eq!(old["metadata"]["annotations"]["sreworks.io/revision"], "2", "{}", old["metadata"]);
    complete_rollout(&moved).await;
    events.expect(HEALTHY, "cmd-3").await;

    // 7. Delete: the instance's objects are gone from the cluster.
    let delete = K8sDeleteCommand { command_id: "cmd-4".into(), target: target("emu", "web"), revision: 4 };
    bus.publish_command("k8s.delete", &delete.command_id, None, &delete).await.unwrap();
    let deleted = events.expect(DELETED, "cmd-4").await;
    assert_eq!(deleted["revision"], 4, "{deleted}");
    assert!(moved.get(DEPLOYMENT).await.unwrap().is_none(), "the Deployment is deleted");
    assert!(moved.get(SERVICE).await.unwrap().is_none(), "the Service is deleted");

    drop((emu, moved));
    suite.stop().await.unwrap();
}
