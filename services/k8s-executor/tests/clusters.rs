//! [`AppmetaClusters`] against a real appmeta: clusters are registered through appmeta's operations
//! on this test's NATS subjects and database, and the executor asks for them as it does in
//! production. A plain-HTTP listener stands in for the API server and records what each client
//! sends, so a test sees which token a client carries and whether it is the same client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sw_bus::{Bus, BusError, CallMeta, RpcEnvelope};
use sw_contracts::appmeta::ClusterCredentials;
use sw_contracts::auth::{Role, RoleBinding};
use sw_contracts::executor::ObjectRef;
use sw_crypto::CredentialKey;
use sw_k8s_executor::kube_apply::Cluster;
use sw_k8s_executor::service::{
    AppmetaClusters, ClusterError, ClusterProvider, ClusterSettings, kube_config,
};
use sw_testkit::{TestEnv, TestKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIUMbbKPR5Mfy3VPETFKHtLb490Y5YwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc3Jld29ya3MtdGVzdC1jYTAgFw0yNjExMjYyMDI4NTRaGA8y
MTI2MTEwMjIwMjg1NFowGzEZMBcGA1UEAwwQc3Jld29ya3MtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABMVWHq2BrlHm+LaFuK0tA4uTIfgEV/ZbJII/
fB2u3hDJsv3RK+AyjwYyyZZur/4pMqL5j56UpzFZPQXvIrZnORSjUzBRMB0GA1Ud
DgQWBBSE2NC/w0VkARLLxws9tea7TngW6zAfBgNVHSMEGDAWgBSE2NC/w0VkARLL
xws9tea7TngW6zAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIHZ3
b/cfS8cxUeQQvWcROsPMMgiPjeQJTxa8sJpvwTZsAiBfAjjI4E3erkqrflGE7yw+
R7BWdYMOjalQyVNcgnoZ8Q==
-----END CERTIFICATE-----
";

/// A running appmeta on this test's subjects and database, and an admin to register clusters.
struct Appmeta {
    env: TestEnv,
    bus: Bus,
    admin: String,
    stop: CancellationToken,
    server: JoinHandle<Result<(), BusError>>,
}

impl Appmeta {
    async fn spawn() -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let keys = TestKeys::new();
        let service = sw_appmeta::build(&env.cfg, bus.clone(), env.redis().await, keys.verifier(&env).await)
            .await
            .expect("appmeta builds");
        let stop = CancellationToken::new();
        let server = tokio::spawn(service.run_until_stopped(stop.clone()));
        let admin = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        let appmeta = Self { env, bus, admin, stop, server };
        appmeta.wait_until_answering().await;
        appmeta
    }

    async fn wait_until_answering(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.call("clusters.list", RpcEnvelope::default()).await {
                Ok(_) => return,
                Err(e) if e.status() == 503 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("appmeta did not start answering: {e}"),
            }
        }
    }

    async fn call(&self, op: &str, envelope: RpcEnvelope) -> Result<sw_bus::RpcReply, sw_http::ApiError> {
        let meta = CallMeta { authorization: Some(format!("Bearer {}", self.admin)), ..Default::default() };
        self.bus.call("appmeta", op, &meta, &envelope, Some(Duration::from_secs(10))).await
    }

    async fn expect(&self, op: &str, envelope: RpcEnvelope, status: u16) {
        match self.call(op, envelope).await {
            Ok(r) => assert_eq!(r.status, status, "{op}: {:?}", r.body),
            Err(e) => panic!("{op}: expected {status}, got {e} {:?}", e.problem().errors),
        }
    }

    async fn register(&self, cluster: Value) {
        self.expect("clusters.create", RpcEnvelope::with_body(cluster), 201).await;
    }

    async fn update(&self, cluster_id: &str, patch: Value) {
        let mut envelope = RpcEnvelope::default().param("clusterId", cluster_id);
        envelope.body = Some(patch);
        self.expect("clusters.update", envelope, 200).await;
    }

    /// The executor's provider, with the key appmeta seals with.
    fn clusters(&self, cache_ttl: Duration) -> AppmetaClusters {
        let key = CredentialKey::new(self.env.cfg.require_appmeta_key().unwrap());
        AppmetaClusters::new(self.bus.clone(), key, settings(cache_ttl))
    }

    async fn stop(self) {
        self.stop.cancel();
        self.server.await.expect("appmeta task").expect("appmeta stops cleanly");
        self.env.cleanup().await;
    }
}

fn settings(cache_ttl: Duration) -> ClusterSettings {
    ClusterSettings { ask_timeout: Duration::from_secs(2), cache_ttl, call_timeout: Duration::from_secs(5) }
}

/// A request the stand-in API server received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// Which TCP connection (in accept order) carried it: a new client opens new connections.
    connection: usize,
    path: String,
    authorization: Option<String>,
}

/// A plain-HTTP listener answering every request with a Kubernetes 404 `Status`, recording them.
struct ApiServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl ApiServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((stream, _)) = listener.accept().await {
                connection += 1;
                tokio::spawn(serve_connection(stream, connection, record.clone()));
            }
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(mut stream: tokio::net::TcpStream, connection: usize, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned();
        let mut authorization = None;
        let mut body_len = 0;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(value.trim().to_owned()),
                    "content-length" => body_len = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        while buf.len() < end + 4 + body_len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body_len);
        seen.lock().unwrap().push(Seen { connection, path, authorization });
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}).to_string();
        let answer = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn config_map(name: &str) -> ObjectRef {
    ObjectRef { api_version: "v1".into(), kind: "ConfigMap".into(), namespace: None, name: name.into() }
}

/// Reads a ConfigMap through `cluster` (the stand-in answers 404, so `Null`).
async fn touch(cluster: &Cluster, name: &str) {
    let read = cluster.read_all("default", &[config_map(name)]).await.expect("the API server answers");
    assert_eq!(read, [(config_map(name), Value::Null)]);
}

fn token_cluster(id: &str, url: &str, token: &str) -> Value {
    json!({"clusterId": id, "apiUrl": url, "credentials": {"kind": "token", "token": token}})
}

#[tokio::test]
async fn a_token_cluster_gets_a_client_that_carries_its_token_to_its_api_url() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    appmeta.register(token_cluster("prod", &api.url, "prod-sa-token")).await;
    let clusters = appmeta.clusters(Duration::from_secs(60));

    let cluster = clusters.cluster("prod").await.expect("a client");
    touch(&cluster, "settings").await;
    let seen = api.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/v1/namespaces/default/configmaps/settings");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer prod-sa-token"));
    assert_eq!(clusters.clients_built(), 1);
    assert!(!format!("{clusters:?}{cluster:?}").contains("prod-sa-token"), "no credentials in Debug");
    appmeta.stop().await;
}

#[tokio::test]
async fn token_credentials_make_a_config_with_url_token_and_ca() {
    let token = |ca: Option<&str>, insecure| ClusterCredentials::Token {
        token: "sa-token".into(),
        ca_cert: ca.map(str::to_owned),
        insecure_skip_tls_verify: insecure,
    };
    let c = kube_config(Some("https://k8s.example.com:6443"), &token(Some(CA), false)).await.unwrap();
    assert_eq!(c.cluster_url.to_string(), "https://k8s.example.com:6443/");
    assert_eq!(c.auth_info.token.as_ref().map(|t| t.expose_secret().to_owned()).as_deref(), Some("sa-token"));
    assert_eq!(c.root_cert.as_ref().map(Vec::len), Some(1), "the CA PEM becomes one DER certificate");
    assert!(!c.accept_invalid_certs);
    assert!(c.auth_info.exec.is_none() && c.auth_info.token_file.is_none());

    let c = kube_config(Some("https://10.0.0.1:6443"), &token(None, true)).await.unwrap();
    assert!(c.accept_invalid_certs && c.root_cert.is_none());

    let e = kube_config(
        Some("https://h"),
        &token(Some("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), false),
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains("sa-token"), "{e}");
}

#[tokio::test]
async fn unknown_and_deleted_clusters_are_unknown() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    let clusters = appmeta.clusters(Duration::ZERO);
    assert_eq!(clusters.cluster("nope").await.unwrap_err(), ClusterError::Unknown("nope".into()));
    assert_eq!(
        clusters.cluster("Not_An_Id").await.unwrap_err(),
        ClusterError::Unknown("Not_An_Id".into()),
        "an id appmeta refuses names no cluster"
    );
    assert!(!clusters.cluster("nope").await.unwrap_err().is_transient());

    appmeta.register(token_cluster("gone", &api.url, "t")).await;
    clusters.cluster("gone").await.expect("a client");
    appmeta.expect("clusters.delete", RpcEnvelope::default().param("clusterId", "gone"), 204).await;
    assert_eq!(clusters.cluster("gone").await.unwrap_err(), ClusterError::Unknown("gone".into()));
    appmeta.stop().await;
}

#[tokio::test]
async fn appmeta_not_running_is_unavailable_and_transient() {
    let env = TestEnv::new();
    let bus = env.bus().await;
    // As `serve` builds it: the key and deadlines from the configuration; nobody answers for appmeta.
    let clusters = AppmetaClusters::from_config(&env.cfg, bus).expect("the test config has a key");
    let deadline = env.cfg.nats.request_timeout() + Duration::from_secs(5);
    let answer =
        tokio::time::timeout(deadline, clusters.cluster("prod")).await.expect("gives up within its deadline");
    let e = answer.unwrap_err();
    assert!(matches!(&e, ClusterError::Unavailable { cluster_id, .. } if cluster_id == "prod"), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(clusters.clients_built(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn credentials_sealed_under_another_key_are_invalid() {
    let appmeta = Appmeta::spawn().await;
    appmeta.register(token_cluster("prod", "https://k8s.example.com", "prod-sa-token")).await;
    let clusters = AppmetaClusters::new(
        appmeta.bus.clone(),
        CredentialKey::new([7; 32]),
        settings(Duration::from_secs(60)),
    );
    let e = clusters.cluster("prod").await.unwrap_err();
    let ClusterError::Invalid { cluster_id, message } = &e else { panic!("{e:?}") };
    assert_eq!(cluster_id, "prod");
    assert!(message.contains("appmeta.encryption_key"), "{message}");
    assert!(!e.is_transient());
    assert!(!e.to_string().contains("prod-sa-token"));
    appmeta.stop().await;
}

#[tokio::test]
async fn a_kubeconfig_with_an_exec_plugin_is_invalid_and_nothing_runs() {
    let appmeta = Appmeta::spawn().await;
    let marker = std::env::temp_dir().join(format!("sw-exec-ran-{}", std::process::id()));
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: touch\n      args: [\"{}\"]\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        marker.display()
    );
    appmeta
        .register(
            json!({"clusterId": "plugin", "credentials": {"kind": "kubeconfig", "kubeconfig": kubeconfig}}),
        )
        .await;
    let clusters = appmeta.clusters(Duration::from_secs(60));
    let e = clusters.cluster("plugin").await.unwrap_err();
    let ClusterError::Invalid { message, .. } = &e else { panic!("{e:?}") };
    assert!(message.contains("exec") && message.contains("does not run programs"), "{message}");
    assert!(!marker.exists(), "the exec plugin must not have run");
    appmeta.stop().await;
}

#[tokio::test]
async fn a_kubeconfig_cluster_uses_its_current_context() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\nusers:\n- name: u\n  user:\n    token: kc-token\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        api.url
    );
    appmeta
        .register(json!({"clusterId": "kc", "credentials": {"kind": "kubeconfig", "kubeconfig": kubeconfig}}))
        .await;
    let clusters = appmeta.clusters(Duration::from_secs(60));
    touch(&clusters.cluster("kc").await.expect("a client"), "a").await;
    assert_eq!(api.seen()[0].authorization.as_deref(), Some("Bearer kc-token"));
    appmeta.stop().await;
}

#[tokio::test]
async fn the_client_is_cached_reused_while_the_cluster_is_unchanged_and_rebuilt_when_it_changes() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    appmeta.register(token_cluster("prod", &api.url, "token-v1")).await;

    // Concurrent first calls build one client.
    let cached = Arc::new(appmeta.clusters(Duration::from_secs(600)));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let clusters = cached.clone();
        calls.spawn(async move { clusters.cluster("prod").await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().expect("a client");
    }
    assert_eq!(cached.clients_built(), 1);

    // Within the TTL the cached client serves, even after a change in appmeta.
    appmeta.update("prod", json!({"credentials": {"kind": "token", "token": "token-v2"}})).await;
    touch(&cached.cluster("prod").await.unwrap(), "a").await;
    assert_eq!(cached.clients_built(), 1);
    assert_eq!(api.seen().last().unwrap().authorization.as_deref(), Some("Bearer token-v1"));

    // Past the TTL (zero here) appmeta is asked every time: the same version keeps the client and
    // its connection, a new version builds a client with the new credentials.
    let fresh = appmeta.clusters(Duration::ZERO);
    touch(&fresh.cluster("prod").await.unwrap(), "b").await;
    touch(&fresh.cluster("prod").await.unwrap(), "c").await;
    assert_eq!(fresh.clients_built(), 1, "same version, same client");
    let seen = api.seen();
    let (b, c) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
    assert_eq!(b.authorization.as_deref(), Some("Bearer token-v2"));
    assert_eq!(b.connection, c.connection, "the reused client kept its connection: {seen:?}");

    appmeta.update("prod", json!({"description": "any change bumps the version"})).await;
    let rebuilt = fresh.cluster("prod").await.unwrap();
    assert_eq!(fresh.clients_built(), 2, "a new version builds a new client");
    touch(&rebuilt, "d").await;
    let last = api.seen().last().unwrap().clone();
    assert_ne!(last.connection, c.connection, "a new client opens its own connection");
    appmeta.stop().await;
}

#[tokio::test]
async fn one_cluster_down_fails_only_its_own_calls() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    // A port nothing listens on: connecting fails at once.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    appmeta.register(token_cluster("down", &dead_url, "t1")).await;
    appmeta.register(token_cluster("up", &api.url, "t2")).await;
    let clusters = appmeta.clusters(Duration::from_secs(60));

    let down = clusters.cluster("down").await.expect("clients connect lazily");
    let e = down.read_all("default", &[config_map("x")]).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    touch(&clusters.cluster("up").await.unwrap(), "x").await;
    appmeta.stop().await;
}

#[tokio::test]
async fn a_fresh_lookup_asks_appmeta_within_the_cache_ttl() {
    let appmeta = Appmeta::spawn().await;
    let api = ApiServer::start().await;
    appmeta.register(token_cluster("probed", &api.url, "t1")).await;
    let clusters = appmeta.clusters(Duration::from_secs(60));
    clusters.fresh_cluster("probed").await.expect("a client");
    clusters.fresh_cluster("probed").await.expect("the same client");
    assert_eq!(clusters.clients_built(), 1, "an unchanged cluster keeps its client");

    appmeta.update("probed", json!({"credentials": {"kind": "token", "token": "t2"}})).await;
    touch(&clusters.cluster("probed").await.expect("the cached client"), "a").await;
    touch(&clusters.fresh_cluster("probed").await.expect("a new client"), "b").await;
    let tokens: Vec<_> = api.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(tokens, [Some("Bearer t1".to_owned()), Some("Bearer t2".to_owned())]);

    appmeta.expect("clusters.delete", RpcEnvelope::default().param("clusterId", "probed"), 204).await;
    clusters.cluster("probed").await.expect("still cached for commands");
    assert_eq!(clusters.fresh_cluster("probed").await.unwrap_err(), ClusterError::Unknown("probed".into()));
    appmeta.stop().await;
}
