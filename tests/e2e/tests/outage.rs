//! Dependencies going away: with the database stopped the API answers 503 problems quickly (not a
//! hang, not a 500), readiness says why, and everything works again once the database is back,
//! without restarting sreworks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sw_testkit::TestEnv;

/// A MariaDB server of this test's own, which it can stop and start.
struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateMariaDb {
    fn init() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sw-mariadb-{port}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .output()
            .expect("mariadb-install-db must be installed (make test installs MariaDB)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut me = Self { dir, port, child: None };
        me.start();
        me
    }

    fn start(&mut self) {
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--bind-address=127.0.0.1", "--user=root", "--skip-log-error"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("s.sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("m.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private MariaDB did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn database_outage_is_503_and_recovers_without_restart() {
    let mut db = PrivateMariaDb::init();
    let mut env = TestEnv::new();
    env.cfg.database.url = sw_config::Secret::new(format!("mysql://root@127.0.0.1:{}", db.port));
    env.cfg.database.acquire_timeout_ms = 1500;
    let suite = Suite::start(env).await.unwrap();
    let token = suite.admin_token().await.unwrap();
    let create = |id: &str| {
        suite.http.post(suite.url("/v1/apps")).bearer_auth(&token).json(&json!({"appId": id})).send()
    };
    assert_eq!(create("before").await.unwrap().status(), 201);

    db.kill();
    let started = Instant::now();
    let r = create("during").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the deadline, not hung");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let ready = suite.http.get(suite.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["appmeta-db"]["status"], "down", "{ready}");

    db.start();
    let mut status = 0;
    for _ in 0..60 {
        status = create("after").await.unwrap().status().as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "works again once the database is back");
    // Nothing was half-written while it was down.
    let r = suite.http.get(suite.url("/v1/apps/during")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    suite.stop().await.unwrap();
}
