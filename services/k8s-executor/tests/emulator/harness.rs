//! Where the scenarios' Kubernetes API comes from: the emulator (`tests/k8s-emulator/emulator.py`,
//! one process per test on a free port) or, when `KUBECONFIG` is set, a real cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Request;
use serde::Deserialize;
use serde_json::{Value, json};
use sw_contracts::executor::ObjectRef;
use sw_testkit::k8s_emulator::EmulatorProcess;

/// How long one request to the API (or the emulator's controls) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The Kubernetes API emulator as a child process; killed when dropped.
pub struct Emulator {
    url: String,
    client: kube::Client,
    _process: EmulatorProcess,
}

/// One API request as the emulator logged it (`GET /_control/requests`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logged {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Logged {
    /// Anything but a read.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

impl Emulator {
    /// Starts the emulator ([`EmulatorProcess::start`]; panics with the reason when it cannot).
    pub async fn start() -> Self {
        let process = EmulatorProcess::start().await.unwrap_or_else(|e| panic!("{e:#}"));
        let url = process.url.clone();
        let client = kube::Client::try_from(kube::Config::new(url.parse().expect("emulator url")))
            .expect("a client for the emulator");
        Self { url, client, _process: process }
    }

    /// A kube-rs configuration pointing at the emulator (plain HTTP, no auth).
    pub fn kube_config(&self) -> kube::Config {
        kube::Config::new(self.url.parse().expect("emulator url"))
    }

    /// Replaces the `status` of the object at `api_path` (as a controller would); the object after.
    pub async fn set_status(&self, api_path: &str, status: Value) -> Value {
        call(&self.client, "PUT", &format!("/_control/status{api_path}"), "application/json", Some(status))
            .await
            .unwrap_or_else(|e| panic!("set status of {api_path}: {e}"))
    }

    /// The API requests logged after request id `since` (all of them for `None`), in order.
    pub async fn requests(&self, since: Option<u64>) -> Vec<Logged> {
        let path = match since {
            Some(id) => format!("/_control/requests?since={id}"),
            None => "/_control/requests".to_owned(),
        };
        let mut log: Value = call(&self.client, "GET", &path, "", None).await.expect("the request log");
        serde_json::from_value(log["items"].take()).expect("request log items")
    }

    /// The id of the last request logged so far (0 when none).
    pub async fn last_request_id(&self) -> u64 {
        self.requests(None).await.last().map_or(0, |r| r.id)
    }

    /// The object at `api_path`, or `None` when it does not exist.
    pub async fn get(&self, api_path: &str) -> Option<Value> {
        get(&self.client, api_path).await
    }

    /// Holds every `method` request whose path matches `path_regex` for up to `seconds` (until
    /// [`Emulator::release_delays`]); each is logged when it arrives.
    pub async fn delay(&self, method: &str, path_regex: &str, seconds: u64) {
        let body = json!({ "method": method, "path": path_regex, "seconds": seconds });
        let _: Value = call(&self.client, "PUT", "/_control/delay", "application/json", Some(body))
            .await
            .expect("set a delay");
    }

    /// Drops every delay; the requests they held are served now.
    pub async fn release_delays(&self) {
        let _: Value =
            call(&self.client, "DELETE", "/_control/delay", "", None).await.expect("release delays");
    }
}

/// The API server the scenarios run against.
pub enum Backend {
    Emulator(Box<Emulator>),
    /// A real cluster from `KUBECONFIG` (kind, k3s…): its controllers drive status.
    Cluster {
        config: Box<kube::Config>,
        client: kube::Client,
    },
}

impl Backend {
    /// A fresh emulator.
    pub async fn emulator() -> Self {
        Backend::Emulator(Box::new(Emulator::start().await))
    }

    /// The cluster `KUBECONFIG` points at, or `None` (saying so on stderr) when it is not set.
    pub async fn real_cluster() -> Option<Self> {
        if std::env::var_os("KUBECONFIG").is_none_or(|v| v.is_empty()) {
            eprintln!("SKIPPED real-cluster run: KUBECONFIG is not set");
            return None;
        }
        let config = kube::Config::infer().await.expect("a cluster configuration from KUBECONFIG");
        let client = kube::Client::try_from(config.clone()).expect("a client for the KUBECONFIG cluster");
        Some(Backend::Cluster { config: Box::new(config), client })
    }

    /// The configuration the executor's client for this API is built from.
    pub fn kube_config(&self) -> kube::Config {
        match self {
            Backend::Emulator(e) => e.kube_config(),
            Backend::Cluster { config, .. } => (**config).clone(),
        }
    }

    /// The emulator, for what only it can show (the request log) or do (delays).
    pub fn emulator_only(&self) -> Option<&Emulator> {
        match self {
            Backend::Emulator(e) => Some(e),
            Backend::Cluster { .. } => None,
        }
    }

    fn client(&self) -> &kube::Client {
        match self {
            Backend::Emulator(e) => &e.client,
            Backend::Cluster { client, .. } => client,
        }
    }

    /// The object at `api_path`, or `None` when it does not exist.
    pub async fn get(&self, api_path: &str) -> Option<Value> {
        get(self.client(), api_path).await
    }

    /// One API request as another client would send it; the API's answer or its error.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: &str,
        body: Value,
    ) -> Result<Value, kube::Error> {
        call(self.client(), method, path_and_query, content_type, Some(body)).await
    }

    /// Creates the Namespace `name` (each test has its own).
    pub async fn create_namespace(&self, name: &str) {
        let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
        self.send("POST", "/api/v1/namespaces", "application/json", ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }

    /// Deletes the Namespace `name` on a real cluster (the emulator goes away with the test).
    pub async fn delete_namespace(&self, name: &str) {
        if let Backend::Cluster { client, .. } = self
            && let Err(e) =
                call::<Value>(client, "DELETE", &format!("/api/v1/namespaces/{name}"), "", None).await
        {
            eprintln!("could not delete test namespace {name}: {e}");
        }
    }

    /// Makes the Deployment at `api_path` report its current generation rolled out: on the emulator
    /// through `/_control/status`; a real cluster's controllers do it themselves.
    pub async fn complete_rollout(&self, api_path: &str) {
        let Backend::Emulator(e) = self else { return };
        let live = e.get(api_path).await.unwrap_or_else(|| panic!("no Deployment at {api_path}"));
        let replicas = live["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = json!({
            "observedGeneration": live["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{ "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" }],
        });
        e.set_status(api_path, status).await;
    }

    /// Waits (bounded) until nothing is at `api_path`: a real cluster may take a moment to remove an
    /// object it accepted a delete for.
    pub async fn wait_gone(&self, api_path: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while let Some(obj) = self.get(api_path).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{api_path} still exists after {within:?}: {}",
                obj["metadata"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The API path of an object (`/api/v1/…` for the core group, `/apis/<group>/<version>/…` else).
pub fn api_path(r: &ObjectRef) -> String {
    let plural = match r.kind.as_str() {
        "Service" => "services".to_owned(),
        "Ingress" => "ingresses".to_owned(),
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_owned(),
        "PersistentVolumeClaim" => "persistentvolumeclaims".to_owned(),
        other => format!("{}s", other.to_lowercase()),
    };
    let root = if r.api_version.contains('/') { "apis" } else { "api" };
    let ns = r.namespace.as_deref().expect("namespaced object");
    format!("/{root}/{}/namespaces/{ns}/{plural}/{}", r.api_version, r.name)
}

async fn get(client: &kube::Client, api_path: &str) -> Option<Value> {
    match call(client, "GET", api_path, "", None).await {
        Ok(v) => Some(v),
        Err(kube::Error::Api(s)) if s.is_not_found() => None,
        Err(e) => panic!("GET {api_path}: {e}"),
    }
}

async fn call<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    method: &str,
    path_and_query: &str,
    content_type: &str,
    body: Option<Value>,
) -> Result<T, kube::Error> {
    let mut request = Request::builder().method(method).uri(path_and_query);
    if !content_type.is_empty() {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let body = body.map(|b| serde_json::to_vec(&b).expect("json")).unwrap_or_default();
    let request = request.body(body).expect("a request");
    tokio::time::timeout(CALL_TIMEOUT, client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{method} {path_and_query} took longer than {CALL_TIMEOUT:?}"))
}
