//! swcli as a user runs it: the built binary against the whole suite booted in-process, with its
//! own config file and HOME per test.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sw_testkit::TestEnv;
use tokio::io::AsyncWriteExt;

/// A sandbox for running the binary: a temp HOME and config file, no inherited SWCLI_* variables.
struct Sandbox {
    home: PathBuf,
    config: PathBuf,
    endpoint: String,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Sandbox {
    fn new(endpoint: &str) -> Sandbox {
        let home = std::env::temp_dir().join(format!("swcli-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("conf").join("swcli.yaml");
        Sandbox { home, config, endpoint: endpoint.to_owned() }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[], None).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swcli"));
        cmd.args(args).env("HOME", &self.home).env("SWCLI_CONFIG", &self.config);
        for var in ["SWCLI_CLIENT_ID", "SWCLI_CLIENT_SECRET", "SWCLI_USERNAME", "SWCLI_PASSWORD"] {
            cmd.env_remove(var);
        }
        cmd.env("SWCLI_ENDPOINT", &self.endpoint);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("swcli did not finish within 60 s")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn config_yaml(&self) -> serde_json::Map<String, Value> {
        let text = std::fs::read_to_string(&self.config).unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    fn write_config(&self, cfg: &serde_json::Map<String, Value>) {
        std::fs::write(&self.config, serde_yaml::to_string(cfg).unwrap()).unwrap();
    }

    fn session(&self) -> Value {
        self.config_yaml()["session"].clone()
    }

    /// Replaces the stored access token and expiry, keeping the refresh token.
    fn tamper_access_token(&self, token: &str, expires_at: &str) {
        let mut cfg = self.config_yaml();
        let s = cfg.get_mut("session").unwrap().as_object_mut().unwrap();
        s.insert("access_token".into(), json!(token));
        s.insert("expires_at".into(), json!(expires_at));
        self.write_config(&cfg);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[tokio::test]
async fn login_then_app_lifecycle_with_refresh() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let sb = Sandbox::new(&suite.base);
    let pw = suite.admin_password();

    // Before logging in there is nothing to authenticate with.
    let out = sb.run(&["app", "list"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.starts_with("error: not_logged_in: "), "{out:?}");

    let out = sb
        .run_with(&["login", "--username", "admin", "--password-stdin"], &[], Some(&format!("{pw}\n")))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("as admin"), "{out:?}");
    let session = sb.session();
    let access = session["access_token"].as_str().unwrap().to_owned();
    assert!(!access.is_empty() && session["refresh_token"].is_string());
    assert_eq!(session["endpoint"], json!(suite.base));
    for secret in [pw.as_str(), access.as_str(), session["refresh_token"].as_str().unwrap()] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a secret was printed: {out:?}"
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sb.config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let out = sb
        .run(&[
            "app",
            "create",
            "health",
            "--name",
            "Health",
            "--team",
            "sre",
            "--label",
            "tier=core",
            "--description",
            "d",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("appId:") && out.stdout.contains("health"), "{out:?}");
    assert!(out.stdout.contains("tier=core"), "{out:?}");

    let again = sb.run(&["app", "create", "health"]).await;
    assert_eq!(again.code, 5, "{again:?}");
    assert!(again.stderr.starts_with("error: already_exists: "), "{again:?}");

    let list = sb.run(&["--json", "app", "list", "--team", "sre"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    let page = list.json();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["appId"], "health");
    assert_eq!(page["items"][0]["labels"]["tier"], "core");

    let table = sb.run(&["app", "list", "--search", "heal", "--page", "1", "--page-size", "5"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("APP ID") && lines[1].starts_with("health  Health"), "{table:?}");
    let bad_page = sb.run(&["app", "list", "--page-size", "0"]).await;
    assert_eq!(bad_page.code, 6, "{bad_page:?}");
    assert!(bad_page.stderr.starts_with("error: validation_failed: "), "{bad_page:?}");

    // An expired access token is refreshed before use, and the rotated refresh token is saved.
    let before = sb.session();
    sb.tamper_access_token("expired", "2000-01-01T00:00:00Z");
    let got = sb.run(&["app", "get", "health", "--json"]).await;
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(got.json()["name"], "Health");
    let after = sb.session();
    assert_ne!(after["refresh_token"], before["refresh_token"]);
    assert_ne!(after["access_token"], json!("expired"));

    // A garbage token that looks fresh is refused by the gateway, then refreshed and retried.
    sb.tamper_access_token("garbage", "2999-01-01T00:00:00Z");
    let got = sb.run(&["app", "get", "health"]).await;
    assert_eq!(got.code, 0, "{got:?}");
    assert!(got.stdout.contains("Health"), "{got:?}");
    assert_ne!(sb.session()["refresh_token"], after["refresh_token"]);

    let del = sb.run(&["app", "delete", "health"]).await;
    assert_eq!(del.code, 0, "{del:?}");
    let gone = sb.run(&["app", "get", "health"]).await;
    assert_eq!(gone.code, 4, "{gone:?}");
    assert!(gone.stderr.starts_with("error: not_found: "), "{gone:?}");
    assert_eq!(gone.stderr.lines().count(), 1, "{gone:?}");

    // Rejected before sending: not a DNS label.
    let bad = sb.run(&["app", "create", "Not_Valid"]).await;
    assert_eq!(bad.code, 6, "{bad:?}");

    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_credentials_and_pipeline_login() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let sb = Sandbox::new(&suite.base);

    let out = sb.run(&["login", "--username", "admin", "--password", "wrong-password"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.starts_with("error: invalid_grant: "), "{out:?}");
    assert!(!out.stderr.contains("wrong-password"), "{out:?}");

    // A pipeline: a confidential client's credentials in the environment, no `login` step.
    let token = suite.admin_token().await.unwrap();
    let resp = suite
        .http
        .post(suite.url("/v1/clients"))
        .bearer_auth(&token)
        .json(&json!({"clientId": "ci-pipeline", "name": "CI", "roles": [{"role": "developer"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let secret = resp.json::<Value>().await.unwrap()["clientSecret"].as_str().unwrap().to_owned();
    let ci_env = [("SWCLI_CLIENT_ID", "ci-pipeline"), ("SWCLI_CLIENT_SECRET", secret.as_str())];
    let out = sb.run_with(&["app", "create", "built-by-ci", "--json"], &ci_env, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["appId"], "built-by-ci");
    assert_eq!(sb.session()["client_id"], "ci-pipeline");
    let out = sb.run_with(&["app", "list", "--json"], &ci_env, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["total"], 1);

    // A wrong secret is an auth failure too; the flag beats the environment.
    let out = sb.run_with(&["login", "--client-secret", "nope"], &ci_env, None).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.starts_with("error: invalid_client: "), "{out:?}");

    suite.stop().await.unwrap();
}

#[tokio::test]
async fn usage_completions_and_unreachable_gateway() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = Sandbox::new(&format!("http://127.0.0.1:{port}"));

    let out = sb.run(&["app", "frobnicate"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    for shell in ["bash", "zsh", "fish"] {
        let out = sb.run(&["completions", shell]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("swcli") && out.stdout.contains("app"), "{shell}: {out:?}");
    }

    let out = sb.run(&["app", "list", "--username", "u", "--password", "p"]).await;
    assert_eq!(out.code, 7, "{out:?}");
    assert!(out.stderr.starts_with("error: unavailable: "), "{out:?}");
    assert!(!out.stderr.contains("--password") && out.stderr.lines().count() == 1, "{out:?}");
}
