//! `swcli login`.

use std::io::BufRead;

use serde_json::json;

use crate::client::{Client, Grant};
use crate::error::CliError;

/// Logs in with the configured credentials (or a password read from stdin) and stores the session.
/// Prints who logged in where and until when — never a token.
pub async fn login(client: &mut Client, password_stdin: bool, as_json: bool) -> Result<String, CliError> {
    if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Invalid(format!("cannot read the password from stdin: {e}")))?;
        let pw = line.trim_end_matches(['\r', '\n']);
        if pw.is_empty() {
            return Err(CliError::Invalid("the password on stdin is empty".into()));
        }
        client.set_password(pw.to_owned());
    }
    let (grant, session) = client.login().await?;
    let s = client.settings();
    let principal = match grant {
        Grant::Password => s.username.clone().unwrap_or_default(),
        Grant::ClientCredentials => format!("client {}", s.client_id),
    };
    let expires = session.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(if as_json {
        let grant = match grant {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
        };
        format!(
            "{}\n",
            json!({"endpoint": session.endpoint, "grant": grant, "clientId": session.client_id,
                   "username": s.username.as_ref().filter(|_| grant == "password"), "expiresAt": expires})
        )
    } else {
        format!("Logged in to {} as {principal} (token expires {expires}).\n", session.endpoint)
    })
}
