//! Settings and the config file.
//!
//! Precedence, lowest first: built-in defaults → the config file (`~/.swcli.yaml`, or `SWCLI_CONFIG`)
//! → `SWCLI_*` environment variables → command-line flags. The same file keeps the tokens of the
//! last login; it is always written with mode 0600 because it may hold secrets.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// Gateway address used when nothing else is configured.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
/// The built-in public OAuth client of the platform.
pub const DEFAULT_CLIENT_ID: &str = "swcli";

/// The config file as stored. Every field is optional; unknown fields are kept out by serde.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    // The dashed spellings are what SREWorks' own swcli writes, so its config files load as is.
    #[serde(default, alias = "client-id", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, alias = "client-secret", skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Tokens of the last login; valid only for `session.endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// The tokens obtained by `swcli login` (or an automatic login/refresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Session {
    /// The gateway these tokens belong to; they are never sent anywhere else.
    pub endpoint: String,
    /// The client the refresh token was issued to (needed to refresh it).
    pub client_id: String,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether the access token is still good for at least `margin_secs`.
    pub fn is_fresh(&self, now: DateTime<Utc>, margin_secs: i64) -> bool {
        self.expires_at - chrono::Duration::seconds(margin_secs) > now
    }
}

/// Values given on the command line (each overrides everything else).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The effective settings after applying precedence.
#[derive(Clone)]
pub struct Settings {
    /// Gateway base URL without a trailing slash.
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

// Hand-written so a `{:?}` can never print a secret.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Settings {
    /// Applies file → environment → flags; `env` looks up a variable (so tests need not touch
    /// the process environment). Empty values count as unset.
    pub fn resolve(file: &ConfigFile, env: impl Fn(&str) -> Option<String>, flags: &Overrides) -> Settings {
        let pick = |flag: &Option<String>, var: &str, from_file: &Option<String>| {
            let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            non_empty(flag).or_else(|| env(var).filter(|s| !s.is_empty())).or_else(|| non_empty(from_file))
        };
        let endpoint = pick(&flags.endpoint, "SWCLI_ENDPOINT", &file.endpoint)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Settings {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client_id: pick(&flags.client_id, "SWCLI_CLIENT_ID", &file.client_id)
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
            client_secret: pick(&flags.client_secret, "SWCLI_CLIENT_SECRET", &file.client_secret),
            username: pick(&flags.username, "SWCLI_USERNAME", &file.username),
            password: pick(&flags.password, "SWCLI_PASSWORD", &file.password),
        }
    }
}

/// Where the config file is: `SWCLI_CONFIG`, else `$HOME/.swcli.yaml`.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, CliError> {
    if let Some(p) = env("SWCLI_CONFIG").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = env("HOME")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CliError::Config("neither SWCLI_CONFIG nor HOME is set".into()))?;
    Ok(Path::new(&home).join(".swcli.yaml"))
}

/// Reads the config file; a missing (or empty) file is an empty config.
pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(CliError::Config(format!("cannot read {}: {e}", path.display()))),
    };
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_yaml::from_str(&text).map_err(|e| CliError::Config(format!("{} is not valid: {e}", path.display())))
}

/// Writes the config file with mode 0600: to a new sibling file first, then renamed over the old
/// one, so a crash never leaves half a file and the secrets are never readable by others.
pub fn save(path: &Path, cfg: &ConfigFile) -> Result<(), CliError> {
    let err =
        |what: &str, e: std::io::Error| CliError::Config(format!("cannot {what} {}: {e}", path.display()));
    let text =
        serde_yaml::to_string(cfg).map_err(|e| CliError::Config(format!("cannot encode config: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err("create the directory of", e))?;
    }
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        // `mode` applies only when the file is created; a leftover temp file keeps its old mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err("write", e)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::resolve(&ConfigFile::default(), env_of(&[]), &Overrides::default());
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.client_id, DEFAULT_CLIENT_ID);
        assert!(s.password.is_none() && s.client_secret.is_none());
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = ConfigFile {
            endpoint: Some("http://file".into()),
            client_id: Some("file-client".into()),
            username: Some("file-user".into()),
            password: Some("file-pw".into()),
            ..Default::default()
        };
        let env = env_of(&[
            ("SWCLI_ENDPOINT", "http://env/"),
            ("SWCLI_USERNAME", "env-user"),
            ("SWCLI_PASSWORD", ""),
        ]);
        let flags = Overrides { endpoint: Some("http://flag".into()), ..Default::default() };
        let s = Settings::resolve(&file, env, &flags);
        assert_eq!(s.endpoint, "http://flag");
        assert_eq!(s.username.as_deref(), Some("env-user"));
        assert_eq!(s.client_id, "file-client");
        // An empty variable does not blank out the file's value.
        assert_eq!(s.password.as_deref(), Some("file-pw"));
        let s = Settings::resolve(&file, env_of(&[("SWCLI_ENDPOINT", "http://env/")]), &Overrides::default());
        assert_eq!(s.endpoint, "http://env");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let flags = Overrides {
            password: Some("hunter2".into()),
            client_secret: Some("s3cr3t".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&ConfigFile::default(), env_of(&[]), &flags);
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn config_path_prefers_swcli_config() {
        let p = config_path(env_of(&[("SWCLI_CONFIG", "/x/c.yaml"), ("HOME", "/home/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/x/c.yaml"));
        let p = config_path(env_of(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/home/u/.swcli.yaml"));
        assert!(config_path(env_of(&[])).is_err());
    }

    #[test]
    fn sreworks_config_files_load() {
        let dir = std::env::temp_dir().join(format!("swcli-unit-sw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("swcli.yaml");
        std::fs::write(
            &path,
            "endpoint: http://x\nclient-id: ci\nclient-secret: s\nusername: u\npassword: p\n",
        )
        .unwrap();
        let cfg = load(&path).unwrap();
        assert_eq!(cfg.client_id.as_deref(), Some("ci"));
        assert_eq!(cfg.client_secret.as_deref(), Some("s"));
        assert_eq!(cfg.username.as_deref(), Some("u"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_round_trips_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("swcli-unit-{}", std::process::id()));
        let path = dir.join("nested").join("c.yaml");
        let cfg = ConfigFile {
            endpoint: Some("http://x".into()),
            session: Some(Session {
                endpoint: "http://x".into(),
                client_id: "swcli".into(),
                access_token: "a".into(),
                refresh_token: Some("r".into()),
                expires_at: Utc::now(),
            }),
            ..Default::default()
        };
        save(&path, &cfg).unwrap();
        assert_eq!(load(&path).unwrap(), cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(load(&dir.join("missing.yaml")).unwrap(), ConfigFile::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
