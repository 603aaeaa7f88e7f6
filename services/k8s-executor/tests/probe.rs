//! `clusters.probe` on the executor's NATS API, called as the gateway calls it: the executor runs
//! in-process with [`service::Service::serve_api`] on this test's subjects and database, and its
//! clusters are the Kubernetes API emulator (`tests/k8s-emulator`, started with
//! `$SW_K8S_EMULATOR_PYTHON` as in the emulator tests) or a port nothing listens on.

#[allow(dead_code)]
#[path = "emulator/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::Emulator;
use sw_bus::{Bus, BusError, CallMeta, RpcEnvelope, RpcReply};
use sw_contracts::auth::{Role, RoleBinding};
use sw_contracts::executor::ClusterProbe;
use sw_http::ApiError;
use sw_k8s_executor::service::{
    self, API_SERVICE, AppmetaClusters, ClusterProvider, PROBE_OP, StaticClusters,
};
use sw_testkit::{TestEnv, TestKeys};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The executor's per-call timeout in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A running executor answering its API, and a way to call it.
struct Probe {
    env: TestEnv,
    bus: Bus,
    keys: TestKeys,
    stop: CancellationToken,
    task: JoinHandle<Result<(), BusError>>,
}

impl Probe {
    async fn spawn(clusters: Arc<dyn ClusterProvider>, env: TestEnv) -> Self {
        let bus = env.bus().await;
        let keys = TestKeys::new();
        let mut svc = service::build(&env.cfg, bus.clone(), clusters).await.expect("executor builds");
        svc.serve_api(keys.verifier(&env).await);
        let stop = CancellationToken::new();
        let task = tokio::spawn(svc.run_until_stopped(stop.clone()));
        let probe = Self { env, bus, keys, stop, task };
        probe.wait_until_answering().await;
        probe
    }

    /// An executor whose clusters are `clusters`, by id.
    async fn with(clusters: StaticClusters) -> Self {
        Self::spawn(Arc::new(clusters), TestEnv::new()).await
    }

    fn token(&self, role: Role) -> String {
        self.keys.token(&self.env.cfg, vec![RoleBinding::global(role)])
    }

    /// `clusters.probe` of `cluster_id` with `authorization` (a whole header value).
    async fn call(&self, cluster_id: &str, authorization: Option<String>) -> Result<RpcReply, ApiError> {
        let meta = CallMeta { authorization, ..Default::default() };
        let envelope = RpcEnvelope::default().param("clusterId", cluster_id);
        self.bus.call(API_SERVICE, PROBE_OP, &meta, &envelope, Some(Duration::from_secs(10))).await
    }

    /// The probe of `cluster_id` as a viewer, which must succeed.
    async fn probe(&self, cluster_id: &str) -> ClusterProbe {
        let reply = self
            .call(cluster_id, Some(format!("Bearer {}", self.token(Role::Viewer))))
            .await
            .unwrap_or_else(|e| panic!("probe of {cluster_id}: {e}"));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        serde_json::from_value(reply.body.expect("a body")).expect("a ClusterProbe")
    }

    /// Waits (bounded) until the service is registered: before that NATS has no responder (503).
    async fn wait_until_answering(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.call("any", None).await {
                Err(e) if e.status() == 503 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return,
            }
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("executor stops in time")
            .expect("executor task")
            .expect("executor stops cleanly");
        self.env.cleanup().await;
    }
}

/// A URL on 127.0.0.1 where nothing listens (a port just freed).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_emulator_is_reachable_with_its_version() {
    let emulator = Emulator::start().await;
    let before = emulator.last_request_id().await;
    let clusters = StaticClusters::new()
        .with_config("c1", emulator.kube_config(), CALL_TIMEOUT)
        .expect("a client for the emulator");
    let probe = Probe::with(clusters).await;

    let answer = probe.probe("c1").await;
    assert_eq!(answer.cluster_id, "c1");
    assert!(answer.reachable, "{answer:?}");
    let version = answer.server_version.as_deref().expect("the emulator's gitVersion");
    assert!(version.starts_with('v'), "{version}");
    assert_eq!(answer.message, None);
    let log = emulator.requests(Some(before)).await;
    assert!(log.iter().any(|r| r.method == "GET" && r.path == "/version"), "{log:?}");
    assert!(log.iter().all(|r| !r.is_write()), "a probe writes nothing: {log:?}");
    probe.stop().await;
}

#[tokio::test]
async fn a_closed_port_is_unreachable_within_the_call_timeout() {
    let config = kube::Config::new(closed_port_url().parse().expect("url"));
    let clusters = StaticClusters::new().with_config("down", config, CALL_TIMEOUT).expect("a client");
    let probe = Probe::with(clusters).await;

    let answer = probe.probe("down").await;
    assert!(!answer.reachable, "{answer:?}");
    assert_eq!(answer.server_version, None);
    let message = answer.message.as_deref().expect("why it is unreachable");
    assert!(message.contains("could not be reached"), "{message}");
    assert!(
        answer.latency_ms <= CALL_TIMEOUT.as_millis() as u64 + 1_000,
        "bounded by the call timeout: {answer:?}"
    );
    probe.stop().await;
}

#[tokio::test]
async fn unknown_cluster_is_404_and_a_bad_id_422() {
    let probe = Probe::with(StaticClusters::new()).await;
    let token = Some(format!("Bearer {}", probe.token(Role::Operator)));
    let e = probe.call("nope", token.clone()).await.expect_err("no such cluster");
    assert_eq!((e.status(), e.code()), (404, "not_found"), "{e}");
    let e = probe.call("Not_An_Id", token).await.expect_err("not a cluster id");
    assert_eq!((e.status(), e.code()), (422, "validation_failed"), "{e}");
    assert_eq!(e.problem().errors[0].field, "clusterId");
    probe.stop().await;
}

#[tokio::test]
async fn no_token_is_401_and_a_foreign_token_too() {
    let config = kube::Config::new(closed_port_url().parse().expect("url"));
    let probe =
        Probe::with(StaticClusters::new().with_config("c1", config, CALL_TIMEOUT).expect("a client")).await;
    let e = probe.call("c1", None).await.expect_err("no token");
    assert_eq!((e.status(), e.code()), (401, "missing_token"), "{e}");
    let stranger = TestKeys::new().token(&probe.env.cfg, vec![RoleBinding::global(Role::Admin)]);
    let e = probe.call("c1", Some(format!("Bearer {stranger}"))).await.expect_err("signed by another key");
    assert_eq!(e.status(), 401, "{e}");
    probe.stop().await;
}

#[tokio::test]
async fn appmeta_not_answering_is_503() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    // As `sreworks serve` builds it; nobody answers for appmeta on this test's subjects.
    let clusters = AppmetaClusters::from_config(&env.cfg, bus).expect("the test config has a key");
    let probe = Probe::spawn(Arc::new(clusters), env).await;
    let token = Some(format!("Bearer {}", probe.token(Role::Admin)));
    let e = probe.call("prod", token).await.expect_err("appmeta is not running");
    assert_eq!((e.status(), e.code()), (503, "appmeta_unavailable"), "{e}");
    probe.stop().await;
}
