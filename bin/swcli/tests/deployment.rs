//! `swcli deployment` and `swcli workflow` as a user runs them, for what is decided before the
//! gateway is asked: usage errors, local files, input checked before sending, an unreachable
//! gateway. (Following a real deployment needs the workflow service in the suite.)

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A temp HOME and config file, no inherited SWCLI_* variables, and a gateway nobody listens on.
struct Sandbox {
    home: PathBuf,
    endpoint: String,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let home = std::env::temp_dir().join(format!("swcli-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Sandbox { home, endpoint: format!("http://127.0.0.1:{port}") }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.home.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swcli"));
        cmd.args(args)
            .env("HOME", &self.home)
            .env("SWCLI_CONFIG", self.home.join("swcli.yaml"))
            .env("SWCLI_ENDPOINT", &self.endpoint);
        for var in ["SWCLI_CLIENT_ID", "SWCLI_CLIENT_SECRET", "SWCLI_USERNAME", "SWCLI_PASSWORD"] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .expect("swcli did not finish within 60 s")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        &["deployment", "get"][..],
        &["deployment", "get", "twelve"],
        &["deployment", "launch", "--app-package-id", "1", "--package-version", "1.0.0"],
        &["deployment", "launch", "--wait-max-seconds", "0"],
        &["deployment", "terminate", "1", "--wait"],
        &["workflow", "context", "4"],
        &["workflow", "context", "4", "--set", "no-equals"],
        &["workflow", "retry-from-task", "4"],
    ] {
        let out = sb.run(args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let help = sb.run(&["deployment", "launch", "--help"]).await;
    assert_eq!(help.code, 0, "{help:?}");
    for flag in ["--app-instance-name", "--auto-environment", "--wait-max-seconds", "--package-version"] {
        assert!(help.stdout.contains(flag), "{flag}: {help:?}");
    }
}

#[tokio::test]
async fn local_problems_are_caught_before_sending() {
    let sb = Sandbox::new();

    let missing = sb.home.join("nope.yaml");
    let out = sb.run(&["deployment", "launch", "-p", path_str(&missing)]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("error: file: cannot read "), "{out:?}");

    let launch =
        sb.file("launch.yaml", "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\n");
    let out = sb.run(&["deployment", "launch", "-a", "Not_Valid", "-p", path_str(&launch)]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.starts_with("error: validation_failed: appId: "), "{out:?}");

    let out = sb.run(&["deployment", "list", "--app-id", "Not_Valid"]).await;
    assert_eq!(out.code, 6, "{out:?}");

    let bad = sb.file("ctx.json", "{\"continueRollout\": tru");
    let out = sb.run(&["workflow", "context", "4", "--file", path_str(&bad)]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.starts_with("error: validation_failed: "), "{out:?}");
    assert!(out.stderr.contains("is not JSON"), "{out:?}");

    let list = sb.file("list.json", "[1, 2]");
    let out = sb.run(&["workflow", "context", "4", "--file", path_str(&list), "--set", "a=1"]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("must hold a JSON object"), "{out:?}");
}

#[tokio::test]
async fn without_a_session_or_a_gateway() {
    let sb = Sandbox::new();
    let launch = sb.file("launch.yaml", "kind: ApplicationConfiguration\n");

    // No session and no credentials: nothing is sent.
    let out = sb.run(&["deployment", "launch", "-p", path_str(&launch), "--wait"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.starts_with("error: not_logged_in: "), "{out:?}");

    // Credentials, but nobody listens.
    for args in [
        &["deployment", "list", "--username", "u", "--password", "p"][..],
        &["workflow", "context", "4", "--set", "rollback=true", "--username", "u", "--password", "p"],
        &["deployment", "get", "12", "--json", "--username", "u", "--password", "p"],
    ] {
        let out = sb.run(args).await;
        assert_eq!(out.code, 7, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: unavailable: "), "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}
