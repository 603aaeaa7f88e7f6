//! Servers of a test's own that it can stop and start: MariaDB and NATS with JetStream, for the
//! outage scenarios. Each keeps its data directory across a stop and a start, and removes it when
//! dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A MariaDB server of this test's own, which it can stop and start.
pub struct PrivateMariaDb {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateMariaDb {
    pub fn init() -> Self {
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

    pub fn start(&mut self) {
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

    pub fn kill(&mut self) {
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

/// A NATS server with JetStream of this test's own.
pub struct PrivateNats {
    pub port: u16,
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
    pub fn start_new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sw-nats-{port}-{}", uuid::Uuid::new_v4().simple()));
        let mut me = Self { port, dir, child: None };
        me.start();
        me
    }

    pub fn start(&mut self) {
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

    pub fn kill(&mut self) {
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
