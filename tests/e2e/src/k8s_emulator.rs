//! The Kubernetes API emulator (`tests/k8s-emulator/emulator.py`) as a child process, for scenarios
//! that register it as a cluster and let the k8s-executor deploy to it. Started with
//! `$SW_K8S_EMULATOR_PYTHON`, which `scripts/test.sh` sets; see tests/k8s-emulator/README.md.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sw_testkit::k8s_emulator::EmulatorProcess;

/// One emulator on a free loopback port; killed when dropped.
pub struct K8sEmulator {
    /// `http://127.0.0.1:<port>`: the API URL to register.
    pub url: String,
    http: reqwest::Client,
    _process: EmulatorProcess,
}

impl K8sEmulator {
    /// Starts the emulator ([`EmulatorProcess::start`]) and a client for its API and controls.
    pub async fn start() -> anyhow::Result<Self> {
        let process = EmulatorProcess::start().await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
        Ok(Self { url: process.url.clone(), http, _process: process })
    }

    /// One JSON request to the emulator (API or `/_control`); the answer's status and body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// The object at `api_path`, or `None` when the API answers 404.
    pub async fn get(&self, api_path: &str) -> anyhow::Result<Option<Value>> {
        match self.call("GET", api_path, None).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => anyhow::bail!("GET {api_path}: {s} {v}"),
        }
    }

    /// Replaces the `status` of the object at `api_path`, as a controller would.
    pub async fn set_status(&self, api_path: &str, status: &Value) -> anyhow::Result<Value> {
        match self.call("PUT", &format!("/_control/status{api_path}"), Some(status)).await? {
            (200, v) => Ok(v),
            (s, v) => anyhow::bail!("set status of {api_path}: {s} {v}"),
        }
    }

    /// Every API request logged so far (`GET /_control/requests`), in order.
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        let (status, mut log) = self.call("GET", "/_control/requests", None).await?;
        anyhow::ensure!(status == 200, "the request log: {status} {log}");
        Ok(log["items"].as_array_mut().map(std::mem::take).unwrap_or_default())
    }
}
