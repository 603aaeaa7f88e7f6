//! First start: the `admin` user (configured or generated password) and the `swcli` client.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use sw_bus::RpcEnvelope;
use sw_contracts::auth::{Role, RoleBinding, UserOut};

use crate::common::{TestApp, body, expect_err};

#[tokio::test]
async fn configured_admin_password_logs_in_and_swcli_exists() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let me: UserOut = body(
        app.call("users.get", Some(&admin), RpcEnvelope::default().param("username", "admin")).await.unwrap(),
    );
    assert_eq!(me.roles, vec![RoleBinding::global(Role::Admin)]);
    let swcli: serde_json::Value = body(
        app.call("clients.get", Some(&admin), RpcEnvelope::default().param("clientId", "swcli"))
            .await
            .unwrap(),
    );
    assert_eq!(swcli["confidential"], json!(false));
    assert_eq!(swcli["grantTypes"], json!(["password", "refresh_token"]));
    app.finish().await;
}

#[tokio::test]
async fn without_a_configured_password_admin_is_created_with_a_generated_one() {
    let app = TestApp::spawn_with(|cfg| cfg.auth.admin_password = None).await;
    let db = app.env.db("auth").await;
    let row = db
        .query_one(Statement::from_string(
            DbBackend::MySql,
            "SELECT password_hash, roles, disabled FROM users WHERE username = 'admin'",
        ))
        .await
        .unwrap()
        .expect("admin was created");
    let hash: String = row.try_get_by_index(0).unwrap();
    let roles: String = row.try_get_by_index(1).unwrap();
    let disabled: bool = row.try_get_by_index(2).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&roles).unwrap(), json!([{"role": "admin"}]));
    assert!(!disabled);
    // The generated password is not something guessable such as an empty or default one.
    for guess in ["admin", "password", "changeme1234"] {
        expect_err(app.login_from("192.0.2.40", "admin", guess).await, 400, "invalid_grant");
    }
    app.finish().await;
}
