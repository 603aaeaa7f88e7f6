//! First-start work: the `admin` user and the built-in `swcli` client.
//!
//! Both are created only when missing, through the same insert (and event) as the API uses, so
//! replicas starting together race safely: one insert wins, the others see `already_exists`.

use sw_bus::RpcCall;
use sw_config::Secret;
use sw_contracts::auth::{Role, RoleBinding};
use sw_http::ApiError;

use crate::handlers::{clients, users};
use crate::secrets;
use crate::state::State;

/// The bootstrap administrator.
pub const ADMIN: &str = "admin";
/// Length of a generated admin password (letters and digits: ~143 bits).
const GENERATED_PASSWORD_LEN: usize = 24;

/// Creates user `admin` with the global `admin` role when it does not exist: with the configured
/// password, or a generated one printed once to stderr.
pub async fn ensure_admin(s: &State, configured: Option<&Secret>) -> Result<(), ApiError> {
    if users::find(s, ADMIN).await?.is_some() {
        return Ok(());
    }
    let (password, generated) = match configured {
        Some(p) => (p.expose().to_owned(), false),
        None => (secrets::random_password(GENERATED_PASSWORD_LEN), true),
    };
    let hash = secrets::hash_password(password.clone()).await?;
    let roles = [RoleBinding::global(Role::Admin)];
    let created =
        users::insert_user(s, &RpcCall::default(), ADMIN, hash, Some("Administrator".into()), None, &roles)
            .await;
    match created {
        Ok(_) => {
            tracing::info!(
                username = ADMIN,
                password_generated = generated,
                "Created the bootstrap admin user."
            );
            if generated {
                announce_password(&password);
            }
            Ok(())
        }
        // Another replica created it first; its password is the one that counts (and was printed there).
        Err(e) if e.code() == "already_exists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Prints the generated password once, to stderr only: never through tracing, whose output may be
/// shipped to log stores.
fn announce_password(password: &str) {
    let line =
        format!("sreworks: created user '{ADMIN}' with password: {password} — change it after first login");
    let width = line.chars().count() + 2;
    let bar = "═".repeat(width);
    eprintln!("\n╔{bar}╗\n║ {line} ║\n╚{bar}╝\n");
}

/// Creates the public client `swcli` (password and refresh_token grants) when it does not exist.
pub async fn ensure_swcli(s: &State) -> Result<(), ApiError> {
    if clients::find(s, clients::SWCLI).await?.is_some() {
        return Ok(());
    }
    match clients::insert_client(s, &RpcCall::default(), clients::SWCLI, "sreworks CLI", None, &[]).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == "already_exists" => Ok(()),
        Err(e) => Err(e),
    }
}
