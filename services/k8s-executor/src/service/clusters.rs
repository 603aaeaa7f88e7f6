//! [`AppmetaClusters`]: clusters as appmeta registers them, one cached client per cluster.
//!
//! How a cluster id becomes a client:
//! 1. The first command for a cluster asks appmeta over NATS (`clusters.connection`, internal, with
//!    a deadline) for its API URL, credential kind, version and *sealed* credentials.
//! 2. The credentials are opened here with `appmeta.encryption_key` ([`sw_crypto`]), so their
//!    plaintext exists only inside the executor, and turned into a [`kube::Config`]
//!    ([`kube_config`]): a token with the API URL and the CA (or `insecureSkipTlsVerify`), or a
//!    kubeconfig's current context. Kubeconfig entries that would make the executor run a program
//!    (`exec`, `auth-provider`) or read a local file are refused: stored data must not choose what
//!    the executor runs or reads.
//! 3. The [`Cluster`] built from it (with the per-call timeout) is cached by cluster id. Past the
//!    cache TTL appmeta is asked again; an unchanged `version` keeps the client (and its open
//!    connections), a new one builds a new client. Calls for one id wait for each other, so
//!    concurrent first commands build one client; calls for other ids do not wait. A probe
//!    ([`ClusterProvider::fresh_cluster`]) asks appmeta whatever the TTL.
//!
//! Failures stay with their cluster: an unknown id is [`ClusterError::Unknown`], appmeta not
//! answering is [`ClusterError::Unavailable`] (the command is retried), credentials that do not open
//! or do not make a configuration are [`ClusterError::Invalid`] (the command fails). A cluster whose
//! API server is down fails its own calls only, after the per-call timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use kube::config::{
    AuthInfo, Cluster as KubeconfigCluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use serde_json::json;
use sw_bus::consumer::async_trait;
use sw_bus::{Bus, CallMeta, RpcEnvelope};
use sw_config::{Config, ConfigError};
use sw_contracts::appmeta::{ClusterConnection, ClusterCredentials};
use sw_crypto::{CredentialKey, decrypt_credentials};
use tokio::time::Instant;

use super::{ClusterError, ClusterProvider};
use crate::kube_apply::Cluster;

/// The appmeta operation that answers a cluster's connection (internal: NATS only).
pub const CONNECTION_OP: &str = "clusters.connection";

/// How [`AppmetaClusters`] asks and caches.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// Deadline of one question to appmeta.
    pub ask_timeout: Duration,
    /// How long a client is used before appmeta is asked again whether the cluster changed.
    pub cache_ttl: Duration,
    /// Deadline of each Kubernetes API call made through a client (and of connecting).
    pub call_timeout: Duration,
}

impl ClusterSettings {
    /// `nats.request_timeout_ms`, `executor.cluster_cache_secs` and `executor.call_timeout_secs`.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            ask_timeout: cfg.nats.request_timeout(),
            cache_ttl: cfg.executor.cluster_cache(),
            call_timeout: cfg.executor.call_timeout(),
        }
    }
}

/// Clusters registered in appmeta; see the module docs.
pub struct AppmetaClusters {
    bus: Bus,
    key: CredentialKey,
    settings: ClusterSettings,
    /// One slot per cluster id; the async lock makes calls for one id wait for each other.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
    built: AtomicU64,
}

impl std::fmt::Debug for AppmetaClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppmetaClusters").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A built client and what it was built from.
struct Cached {
    cluster: Cluster,
    version: i64,
    checked: Instant,
}

impl AppmetaClusters {
    /// Asks appmeta over `bus` and opens credentials with `key` (the key appmeta seals with).
    pub fn new(bus: Bus, key: CredentialKey, settings: ClusterSettings) -> Self {
        Self { bus, key, settings, slots: Mutex::new(HashMap::new()), built: AtomicU64::new(0) }
    }

    /// From the configuration: the key `appmeta.encryption_key` (required) and
    /// [`ClusterSettings::from_config`].
    pub fn from_config(cfg: &Config, bus: Bus) -> Result<Self, ConfigError> {
        let key = CredentialKey::new(cfg.require_appmeta_key()?);
        Ok(Self::new(bus, key, ClusterSettings::from_config(cfg)))
    }

    /// How many clients were built since start: one per cluster, plus one per change of a cluster.
    pub fn clients_built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    fn slot(&self, cluster_id: &str) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        // A poisoned map only means another call panicked mid-insert; the map itself is intact.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(cluster_id.to_owned()).or_default().clone()
    }

    fn forget(&self, cluster_id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(cluster_id);
    }

    /// Asks appmeta for the connection of `cluster_id`.
    async fn ask(&self, cluster_id: &str) -> Result<ClusterConnection, ClusterError> {
        let envelope = RpcEnvelope::with_body(json!({ "clusterId": cluster_id }));
        let unavailable =
            |message: String| ClusterError::Unavailable { cluster_id: cluster_id.to_owned(), message };
        let timeout = self.settings.ask_timeout;
        // The bus call has its own deadline; this one also bounds encoding and a stuck connection.
        let answer = tokio::time::timeout(
            timeout + Duration::from_millis(500),
            self.bus.call("appmeta", CONNECTION_OP, &CallMeta::default(), &envelope, Some(timeout)),
        )
        .await
        .map_err(|_| unavailable(format!("appmeta did not answer within {} ms", timeout.as_millis())))?;
        match answer {
            Ok(reply) => {
                let body = reply.body.unwrap_or_default();
                serde_json::from_value(body)
                    .map_err(|e| unavailable(format!("appmeta's answer is not a cluster connection: {e}")))
            }
            // 422: not a valid cluster id, so no such cluster can exist.
            Err(e) if matches!(e.status(), 404 | 422) => Err(ClusterError::Unknown(cluster_id.to_owned())),
            Err(e) => Err(unavailable(format!("appmeta answered {} {}: {e}", e.status(), e.code()))),
        }
    }

    /// Opens the sealed credentials of `conn` and builds its client.
    async fn build(&self, conn: &ClusterConnection) -> Result<Cluster, ClusterError> {
        let cluster_id = conn.cluster_id.as_str();
        let invalid = |message: String| ClusterError::Invalid { cluster_id: cluster_id.to_owned(), message };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&conn.sealed_credentials)
            .map_err(|_| invalid("the sealed credentials are not base64".into()))?;
        let credentials = decrypt_credentials(&self.key, cluster_id, &sealed).map_err(|e| {
            invalid(format!("{e}: is appmeta.encryption_key the key appmeta seals credentials with?"))
        })?;
        let mut config =
            kube_config(conn.api_url.as_deref(), &credentials).await.map_err(|e| invalid(e.to_string()))?;
        // A cluster that does not accept connections fails its calls within the call timeout.
        config.connect_timeout = Some(self.settings.call_timeout);
        let cluster = Cluster::connect(config, self.settings.call_timeout)
            .map_err(|e| invalid(format!("no client can be built from its configuration: {e}")))?;
        self.built.fetch_add(1, Ordering::Relaxed);
        tracing::info!(cluster_id, version = conn.version, "Cluster client built.");
        Ok(cluster)
    }
}

#[async_trait]
impl ClusterProvider for AppmetaClusters {
    async fn cluster(&self, cluster_id: &str) -> Result<Cluster, ClusterError> {
        self.get(cluster_id, false).await
    }

    /// Asks appmeta whatever the cache TTL; an unchanged cluster keeps its cached client.
    async fn fresh_cluster(&self, cluster_id: &str) -> Result<Cluster, ClusterError> {
        self.get(cluster_id, true).await
    }
}

impl AppmetaClusters {
    /// The client of `cluster_id`: the cached one within the TTL unless `fresh`, else after asking
    /// appmeta whether the cluster changed.
    async fn get(&self, cluster_id: &str, fresh: bool) -> Result<Cluster, ClusterError> {
        let slot = self.slot(cluster_id);
        // Waits at most for one other call for this id, which is bounded by the ask deadline.
        let mut cached = slot.lock().await;
        if !fresh
            && let Some(c) = cached.as_ref()
            && c.checked.elapsed() < self.settings.cache_ttl
        {
            return Ok(c.cluster.clone());
        }
        let conn = match self.ask(cluster_id).await {
            Ok(conn) => conn,
            Err(e) => {
                if matches!(e, ClusterError::Unknown(_)) {
                    *cached = None;
                    drop(cached);
                    self.forget(cluster_id);
                }
                return Err(e);
            }
        };
        if let Some(c) = cached.as_mut()
            && c.version == conn.version
        {
            c.checked = Instant::now();
            return Ok(c.cluster.clone());
        }
        let cluster = self.build(&conn).await?;
        *cached = Some(Cached { cluster: cluster.clone(), version: conn.version, checked: Instant::now() });
        Ok(cluster)
    }
}

/// Why stored credentials do not make a client configuration. The message never quotes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnusableCredentials(pub String);

fn unusable(message: impl Into<String>) -> UnusableCredentials {
    UnusableCredentials(message.into())
}

/// The client configuration of opened `credentials`: for a token, `api_url` with the bearer token
/// and the CA (or no verification when `insecureSkipTlsVerify`); for a kubeconfig, its current
/// context. Refuses what would make the executor run a program (`exec`, `auth-provider`) or read
/// a local file (`tokenFile`, `client-certificate`, `client-key`, `certificate-authority`).
pub async fn kube_config(
    api_url: Option<&str>,
    credentials: &ClusterCredentials,
) -> Result<kube::Config, UnusableCredentials> {
    let kubeconfig = match credentials {
        ClusterCredentials::Token { token, ca_cert, insecure_skip_tls_verify } => {
            let server = api_url.ok_or_else(|| unusable("token credentials need the cluster's API URL"))?;
            token_kubeconfig(server, token, ca_cert.as_deref(), *insecure_skip_tls_verify)
        }
        ClusterCredentials::Kubeconfig { kubeconfig } => {
            // The parser's message may quote the document, which holds secrets.
            let parsed = Kubeconfig::from_yaml(kubeconfig)
                .map_err(|_| unusable("the kubeconfig is not valid YAML"))?;
            check_kubeconfig(&parsed)?;
            parsed
        }
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| unusable(format!("the credentials do not make a client configuration: {e}")))
}

/// Token credentials as a one-context kubeconfig, so both kinds load the same way (the CA PEM is
/// parsed by kube as `certificate-authority-data`).
fn token_kubeconfig(server: &str, token: &str, ca_pem: Option<&str>, insecure: bool) -> Kubeconfig {
    const NAME: &str = "sreworks";
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(KubeconfigCluster {
                server: Some(server.to_owned()),
                certificate_authority_data: ca_pem
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                insecure_skip_tls_verify: insecure.then_some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(AuthInfo { token: Some(token.into()), ..Default::default() }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context { cluster: NAME.into(), user: Some(NAME.into()), ..Default::default() }),
            ..Default::default()
        }],
        current_context: Some(NAME.into()),
        ..Default::default()
    }
}

/// Refuses a kubeconfig whose current context would run a program or read a local file.
fn check_kubeconfig(kc: &Kubeconfig) -> Result<(), UnusableCredentials> {
    let context_name =
        kc.current_context.as_deref().ok_or_else(|| unusable("the kubeconfig has no current-context"))?;
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| unusable(format!("the kubeconfig has no context {context_name:?}")))?;
    if let Some(cluster) =
        kc.clusters.iter().find(|c| c.name == context.cluster).and_then(|c| c.cluster.as_ref())
        && cluster.certificate_authority.is_some()
    {
        return Err(unusable(format!(
            "cluster {:?} of the kubeconfig names a CA file (certificate-authority); \
             the executor reads no local files: embed it as certificate-authority-data",
            context.cluster
        )));
    }
    let Some(user_name) = context.user.as_deref() else { return Ok(()) };
    let Some(user) = kc.auth_infos.iter().find(|u| u.name == user_name).and_then(|u| u.auth_info.as_ref())
    else {
        return Ok(());
    };
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(unusable(format!(
            "user {user_name:?} of the kubeconfig authenticates with an `exec` or `auth-provider` \
             plugin; the executor does not run programs named by stored credentials: use a token or \
             a client certificate"
        )));
    }
    let files = [
        ("tokenFile", user.token_file.is_some()),
        ("client-certificate", user.client_certificate.is_some()),
        ("client-key", user.client_key.is_some()),
    ];
    if let Some((field, _)) = files.iter().find(|(_, set)| *set) {
        return Err(unusable(format!(
            "user {user_name:?} of the kubeconfig names a local file ({field}); the executor reads no \
             local files: embed the value (token, client-certificate-data, client-key-data)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: kind\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: kc-token\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/evil\ncontexts:\n- name: kind\n  context:\n    cluster: kind\n    user: admin\n    namespace: apps\n- name: other\n  context:\n    cluster: kind\n    user: plugin\ncurrent-context: kind\n";

    fn kc(text: &str) -> ClusterCredentials {
        ClusterCredentials::Kubeconfig { kubeconfig: text.to_owned() }
    }

    #[tokio::test]
    async fn kubeconfig_uses_its_current_context_and_ignores_the_others() {
        let c = kube_config(None, &kc(KUBECONFIG)).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(c.default_namespace, "apps");
        assert!(c.accept_invalid_certs);
        assert!(c.auth_info.exec.is_none());
    }

    #[tokio::test]
    async fn kubeconfig_plugins_and_files_are_refused() {
        let exec = KUBECONFIG.replace("current-context: kind", "current-context: other");
        let e = kube_config(None, &kc(&exec)).await.unwrap_err();
        assert!(e.0.contains("exec") && e.0.contains("does not run programs"), "{e}");
        let provider = KUBECONFIG.replace("    token: kc-token", "    auth-provider:\n      name: gcp");
        let e = kube_config(None, &kc(&provider)).await.unwrap_err();
        assert!(e.0.contains("auth-provider"), "{e}");
        for (from, to, field) in [
            ("    token: kc-token", "    tokenFile: /var/run/secrets/token", "tokenFile"),
            (
                "    token: kc-token",
                "    client-certificate: /etc/cert\n    client-key: /etc/key",
                "client-certificate",
            ),
            (
                "    insecure-skip-tls-verify: true",
                "    certificate-authority: /etc/ca.crt",
                "certificate-authority",
            ),
        ] {
            let e = kube_config(None, &kc(&KUBECONFIG.replace(from, to))).await.unwrap_err();
            assert!(e.0.contains(field) && e.0.contains("local file"), "{e}");
        }
    }

    #[tokio::test]
    async fn broken_kubeconfigs_are_refused_without_quoting_them() {
        let e = kube_config(None, &kc("clusters: [ {{ token: s3cr3t")).await.unwrap_err();
        assert!(!e.0.contains("s3cr3t"), "{e}");
        let none = KUBECONFIG.replace("current-context: kind\n", "");
        assert!(kube_config(None, &kc(&none)).await.unwrap_err().0.contains("current-context"));
        let missing = KUBECONFIG.replace("current-context: kind", "current-context: gone");
        assert!(kube_config(None, &kc(&missing)).await.unwrap_err().0.contains("\"gone\""));
    }

    #[tokio::test]
    async fn token_needs_an_api_url() {
        let t =
            ClusterCredentials::Token { token: "t".into(), ca_cert: None, insecure_skip_tls_verify: false };
        assert!(kube_config(None, &t).await.unwrap_err().0.contains("API URL"));
        let c = kube_config(Some("https://k8s.example.com:6443"), &t).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://k8s.example.com:6443/");
        assert!(!c.accept_invalid_certs && c.root_cert.is_none());
    }
}
