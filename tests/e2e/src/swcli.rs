//! swcli as a user runs it, in-process, against the suite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::Suite;

/// A swcli "installation": a temp HOME holding the config file, logged in as the suite's admin.
/// swcli runs in-process through its library entry point, so nothing is read from the developer's
/// environment.
pub struct Swcli {
    home: PathBuf,
    config: PathBuf,
    endpoint: String,
    password: String,
}

/// What one invocation printed, or the error line and exit code it failed with.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub error: String,
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Swcli {
    pub fn new(suite: &Suite) -> Swcli {
        let home = std::env::temp_dir().join(format!("swcli-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        Swcli {
            config: home.join("swcli.yaml"),
            home,
            endpoint: suite.base.clone(),
            password: suite.admin_password(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        let cli = swcli::parse_args(std::iter::once("swcli").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
        let env = |k: &str| match k {
            "SWCLI_CONFIG" => Some(self.config.display().to_string()),
            "HOME" => Some(self.home.display().to_string()),
            "SWCLI_ENDPOINT" => Some(self.endpoint.clone()),
            "SWCLI_USERNAME" => Some("admin".to_owned()),
            "SWCLI_PASSWORD" => Some(self.password.clone()),
            _ => None,
        };
        let run = swcli::run(cli, env);
        match tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("swcli did not finish in 120 s")
        {
            Ok(stdout) => Out { code: 0, stdout, error: String::new() },
            Err(e) => Out { code: e.exit_code(), stdout: String::new(), error: e.to_string() },
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    pub fn arg(p: &Path) -> &str {
        p.to_str().unwrap()
    }
}

impl Drop for Swcli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
