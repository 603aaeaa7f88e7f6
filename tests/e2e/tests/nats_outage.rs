//! NATS going away: the gateway answers 503 problems within the request deadline instead of
//! hanging, readiness reports NATS down, and once the server is back every service answers again
//! without a restart (the clients reconnect and re-subscribe by themselves).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sw_testkit::TestEnv;

/// A NATS server with JetStream of this test's own.
struct PrivateNats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn nats_server_binary() -> PathBuf {
    let repo_venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/nats-server");
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nats-server")).collect())
        .unwrap_or_default();
    candidates.push("/usr/sbin/nats-server".into());
    candidates.push(repo_venv);
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("nats-server must be installed (make test installs it)")
}

impl PrivateNats {
    fn start_new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sw-nats-{port}-{}", uuid::Uuid::new_v4().simple()));
        let mut me = Self { port, dir, child: None };
        me.start();
        me
    }

    fn start(&mut self) {
        let child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private NATS did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn nats_outage_is_503_and_recovers_without_restart() {
    let mut nats = PrivateNats::start_new();
    let mut env = TestEnv::new();
    env.cfg.nats.url = format!("nats://127.0.0.1:{}", nats.port);
    env.cfg.nats.request_timeout_ms = 1500;
    let suite = Suite::start(env).await.unwrap();
    let token = suite.admin_token().await.unwrap();
    let get = || suite.http.get(suite.url("/v1/apps")).bearer_auth(&token).send();
    assert_eq!(get().await.unwrap().status(), 200);

    nats.kill();
    let started = Instant::now();
    let r = get().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "answered within the deadline, not hung");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert!(
        ["upstream_timeout", "service_unavailable", "bus_unavailable"]
            .contains(&body["code"].as_str().unwrap_or("")),
        "{body}"
    );
    let mut nats_down_seen = false;
    for _ in 0..40 {
        let ready: Value = suite.http.get(suite.url("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready["checks"]["nats"]["status"] == "down" {
            nats_down_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nats_down_seen, "readiness reports NATS down");

    nats.start();
    let mut status = 0;
    for _ in 0..80 {
        status = suite
            .http
            .post(suite.url("/v1/apps"))
            .bearer_auth(&token)
            .json(&json!({"appId": "after-nats"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "works again once NATS is back");
    suite.stop().await.unwrap();
}
