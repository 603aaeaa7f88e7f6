//! The executor's operations on NATS (`{prefix}.api.k8s-executor.*`), answered when the service is
//! started with [`super::Service::serve_api`]. The gateway routes `POST /v1/clusters/{clusterId}/probe`
//! to [`PROBE_OP`].
//!
//! A probe answers whether this executor reaches a cluster's API server with the credentials stored
//! in appmeta, before a deployment fails on it:
//! 1. The caller's token is verified; probing needs the permission to read clusters (appmeta's
//!    `ClusterRead`: any role bound globally, so operators and admins who register clusters may).
//! 2. The cluster comes from [`ClusterProvider::fresh_cluster`]: with [`super::AppmetaClusters`]
//!    appmeta is asked now (a deleted cluster is a 404 at once, changed credentials are used at
//!    once), while an unchanged cluster keeps its cached client.
//! 3. The API server's `GET /version` is called, bounded by the executor's per-call timeout and by
//!    what is left of the request deadline, so the caller always gets an answer rather than a
//!    timeout of its own.
//!
//! A server that is down, refuses the credentials or fails TLS is a successful probe
//! (`reachable: false` with a `message`); an unknown cluster is 404, credentials that cannot be used
//! are 422 `invalid_cluster`, appmeta not answering is 503 `appmeta_unavailable`.

use std::sync::Arc;
use std::time::Duration;

use sw_authz::{Principal, Scope, Verifier};
use sw_bus::{Router, RpcCall, RpcReply};
use sw_contracts::Name;
use sw_contracts::auth::Role;
use sw_contracts::executor::ClusterProbe;
use sw_http::ApiError;
use tokio::time::Instant;

use super::{ClusterError, ClusterProvider};
use crate::kube_apply::Cluster;

/// The service name the executor's operations are registered under.
pub const API_SERVICE: &str = "k8s-executor";

/// The operation that probes a cluster (`POST /v1/clusters/{clusterId}/probe`).
pub const PROBE_OP: &str = "clusters.probe";

/// What is kept of the request deadline for appmeta's question and the reply itself.
const REPLY_MARGIN: Duration = Duration::from_millis(500);

/// What the executor authorizes on its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Probe a cluster: the same as reading it in appmeta.
    ClusterProbe,
}

/// True when `role` may perform `op`. Like appmeta's `ClusterRead`, every role may, through a
/// global binding only (clusters are platform-wide).
pub fn allowed(role: Role, op: Op) -> bool {
    match (role, op) {
        (Role::Admin | Role::Operator | Role::Developer | Role::Viewer, Op::ClusterProbe) => true,
    }
}

/// What the operations need.
pub(crate) struct Api {
    pub clusters: Arc<dyn ClusterProvider>,
    pub verifier: Verifier,
    /// The deadline the bus gives each request (`nats.request_timeout_ms`).
    pub request_deadline: Duration,
}

/// The router of the executor's operations.
pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new(API_SERVICE, "Kubernetes executor: cluster probes").route(PROBE_OP, move |call| {
        let api = api.clone();
        async move { probe(&api, call).await }
    })
}

async fn probe(api: &Api, call: RpcCall) -> Result<RpcReply, ApiError> {
    let started = Instant::now();
    let principal: Principal = api.verifier.verify_call(&call.meta).await?;
    principal.require(allowed, Op::ClusterProbe, Scope::Global)?;
    let raw = call
        .envelope
        .params
        .get("clusterId")
        .ok_or_else(|| ApiError::invalid_field("clusterId", "is required"))?;
    let cluster_id = Name::parse(raw).map_err(|e| ApiError::invalid_field("clusterId", e.to_string()))?;
    let cluster_id = cluster_id.as_str();
    let cluster = api.clusters.fresh_cluster(cluster_id).await.map_err(cluster_problem)?;
    let budget = api.request_deadline.saturating_sub(started.elapsed()).saturating_sub(REPLY_MARGIN);
    let answer = probe_cluster(cluster_id, &cluster, budget).await;
    tracing::info!(
        cluster_id,
        reachable = answer.reachable,
        latency_ms = answer.latency_ms,
        "Cluster probed."
    );
    Ok(RpcReply::ok(answer))
}

/// The problem for a cluster that could not be had.
fn cluster_problem(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Unknown(id) => ApiError::not_found(format!("Cluster {id:?} does not exist.")),
        ClusterError::Invalid { cluster_id, message } => ApiError::new(
            422,
            "invalid_cluster",
            format!("The credentials of cluster {cluster_id:?} cannot be used: {message}"),
        ),
        e @ ClusterError::Unavailable { .. } => ApiError::unavailable("appmeta_unavailable", &e),
    }
}

/// Calls `GET /version` on `cluster`, giving up after its per-call timeout or `budget`, whichever
/// is shorter. Never fails: an API server that does not answer is `reachable: false`.
pub async fn probe_cluster(cluster_id: &str, cluster: &Cluster, budget: Duration) -> ClusterProbe {
    let limit = cluster.call_timeout().min(budget);
    let started = Instant::now();
    let answer = tokio::time::timeout(limit, cluster.client().apiserver_version()).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (reachable, server_version, message) = match answer {
        Ok(Ok(info)) => (true, Some(info.git_version), None),
        Ok(Err(e)) => (false, None, Some(unreachable_message(&e))),
        Err(_) => {
            (false, None, Some(format!("the API server did not answer within {} ms", limit.as_millis())))
        }
    };
    ClusterProbe { cluster_id: cluster_id.to_owned(), reachable, server_version, latency_ms, message }
}

/// Why the API server could not be used, from kube's error and its causes (connection refused, TLS
/// alerts…). Neither kube's errors nor the API server's status carry the credentials.
fn unreachable_message(e: &kube::Error) -> String {
    if let kube::Error::Api(status) = e {
        let what = match status.code {
            401 => "the API server refused the credentials",
            403 => "the credentials may not read the API server's version",
            _ => "the API server answered with an error",
        };
        return format!("{what} ({} {}): {}", status.code, status.reason, status.message);
    }
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        // kube's and hyper's messages often repeat their cause's text.
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = s.source();
    }
    format!("the API server could not be reached: {chain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_may_probe_through_a_global_binding() {
        for role in Role::ALL {
            assert!(allowed(role, Op::ClusterProbe), "{role:?}");
        }
    }

    #[test]
    fn cluster_errors_become_their_problems() {
        let e = cluster_problem(ClusterError::Unknown("c1".into()));
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        let e = cluster_problem(ClusterError::Invalid { cluster_id: "c1".into(), message: "bad key".into() });
        assert_eq!((e.status(), e.code()), (422, "invalid_cluster"));
        assert!(e.to_string().contains("bad key"), "{e}");
        let e = cluster_problem(ClusterError::Unavailable { cluster_id: "c1".into(), message: "x".into() });
        assert_eq!((e.status(), e.code()), (503, "appmeta_unavailable"));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_a_message() {
        // A port just freed: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        let cluster = Cluster::connect(config, Duration::from_secs(5)).expect("client");
        let p = probe_cluster("c1", &cluster, Duration::from_secs(5)).await;
        assert!(!p.reachable);
        assert_eq!(p.server_version, None);
        let message = p.message.expect("a message");
        assert!(message.starts_with("the API server could not be reached"), "{message}");
    }

    #[tokio::test]
    async fn a_silent_server_is_unreachable_after_the_shorter_of_timeout_and_budget() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let config = kube::Config::new(url.parse().expect("url"));
        let cluster = Cluster::connect(config, Duration::from_secs(30)).expect("client");
        let p = probe_cluster("c1", &cluster, Duration::from_millis(300)).await;
        held.abort();
        assert!(!p.reachable);
        assert_eq!(p.message.as_deref(), Some("the API server did not answer within 300 ms"));
    }
}
