//! End-to-end support: boots the whole suite in-process against the real servers, isolated per
//! test, and gives a small HTTP client that logs in like `swcli` does.

pub mod fixtures;
pub mod k8s_emulator;
pub mod private;
pub mod swcli;
pub mod world;

use std::time::Duration;

use serde_json::Value;
use sw_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

/// The suite running for one test.
#[derive(Debug)]
pub struct Suite {
    pub env: TestEnv,
    pub base: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Suite {
    /// Starts every service with `env`'s configuration.
    pub async fn start(env: TestEnv) -> anyhow::Result<Suite> {
        Self::start_with(env, sw_telemetry::metrics_only()).await
    }

    /// Starts every service with `env`'s configuration and the given telemetry (for a test that
    /// installed the real `sw_telemetry::init`).
    pub async fn start_with(env: TestEnv, telemetry: sw_telemetry::Telemetry) -> anyhow::Result<Suite> {
        let stop = CancellationToken::new();
        let targets: sreworks::Targets = "all".parse().map_err(anyhow::Error::msg)?;
        let running = sreworks::start(&env.cfg, &targets, telemetry, stop.clone()).await?;
        let addr = running.gateway.ok_or_else(|| anyhow::anyhow!("no gateway"))?;
        let handle = tokio::spawn(running.wait());
        let suite = Suite {
            env,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
            stop,
            running: Some(handle),
        };
        suite.wait_ready().await?;
        Ok(suite)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..100 {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the suite did not become ready within 10 s")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The admin password of this suite.
    pub fn admin_password(&self) -> String {
        self.env.cfg.auth.admin_password.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default()
    }

    /// Password grant through the public `swcli` client; returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", "swcli"),
            ])
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        anyhow::ensure!(status == 200, "login failed: {status} {body}");
        Ok(body)
    }

    /// An admin access token.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let t = self.login("admin", &self.admin_password()).await?;
        Ok(t["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Stops the suite, waits for it to drain, and drops this test's databases, stream and keys.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(h) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), h).await???;
        }
        self.env.cleanup().await;
        Ok(())
    }
}
