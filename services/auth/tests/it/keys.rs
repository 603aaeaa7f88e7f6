//! Signing keys: rotation logs nobody out, the JWKS lists what can still verify, replicas agree.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use sw_authz::jwt;
use sw_bus::RpcEnvelope;
use sw_contracts::auth::{Jwks, Role, RoleBinding, SigningKeyOut};

use crate::common::{TestApp, body, expect_err, expect_event};

async fn jwks(app: &TestApp) -> Vec<String> {
    let reply = app.call("jwks", None, RpcEnvelope::default()).await.expect("jwks needs no token");
    let set: Jwks = body(reply);
    for k in &set.keys {
        assert_eq!(
            (k.kty.as_str(), k.crv.as_str(), k.alg.as_str(), k.use_.as_str()),
            ("OKP", "Ed25519", "EdDSA", "sig")
        );
        assert!(jwt::key_from_x(&k.x).is_some());
    }
    set.keys.into_iter().map(|k| k.kid).collect()
}

#[tokio::test]
async fn rotation_signs_with_a_new_key_and_old_tokens_keep_verifying() {
    let app = TestApp::spawn().await;
    let mut tap = app.events().await;
    let admin = app.admin_token().await;
    let old_kid = jwt::kid_of(&admin).unwrap();
    assert_eq!(jwks(&app).await, vec![old_kid.clone()]);
    app.verifier.verify(&admin).await.expect("verifies before rotation");

    let keys: Vec<SigningKeyOut> =
        body(app.call("keys.list", Some(&admin), RpcEnvelope::default()).await.unwrap());
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].status.as_str()), (old_kid.as_str(), "active"));

    let reply = app.call("keys.rotate", Some(&admin), RpcEnvelope::default()).await.unwrap();
    assert_eq!(reply.status, 201);
    let new_key: SigningKeyOut = body(reply);
    assert_ne!(new_key.kid, old_kid);
    assert_eq!(new_key.status, "active");
    let data = expect_event(&mut tap, "auth.key.rotated", &new_key.kid).await;
    assert_eq!(data["kid"], json!(new_key.kid));

    // New tokens are signed by the new key at once.
    let fresh = app.admin_token().await;
    assert_eq!(jwt::kid_of(&fresh).unwrap(), new_key.kid);
    let mut listed = jwks(&app).await;
    listed.sort();
    let mut want = vec![old_kid.clone(), new_key.kid.clone()];
    want.sort();
    assert_eq!(listed, want, "the JWKS lists the active and the retired key");

    // Verifiers refetch the JWKS for an unknown kid (at most once a second); the old token, signed
    // by the retired key, still verifies: nobody is logged out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.verifier.verify(&fresh).await.expect("the new key verifies");
    app.verifier.verify(&admin).await.expect("the retired key still verifies");
    app.call("me", Some(&admin), RpcEnvelope::default())
        .await
        .expect("old token still accepted by the service");

    let keys: Vec<SigningKeyOut> =
        body(app.call("keys.list", Some(&fresh), RpcEnvelope::default()).await.unwrap());
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].kid.as_str(), keys[0].status.as_str()), (new_key.kid.as_str(), "active"));
    assert_eq!((keys[1].kid.as_str(), keys[1].status.as_str()), (old_kid.as_str(), "retired"));
    assert!(keys[1].retired_at.is_some());
    assert!(!serde_json::to_string(&keys).unwrap().to_lowercase().contains("secret"));

    // Once a retired key can no longer have unexpired tokens, it leaves the JWKS.
    let db = app.env.db("auth").await;
    db.execute(Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE signing_keys SET retired_at = '2000-01-01 00:00:00' WHERE kid = ?",
        [old_kid.clone().into()],
    ))
    .await
    .unwrap();
    assert_eq!(jwks(&app).await, vec![new_key.kid.clone()]);

    // Only admins see or rotate keys.
    app.create_user(&fresh, "vera", "vera-password-1", vec![RoleBinding::global(Role::Operator)]).await;
    let vera = app.login("vera", "vera-password-1").await.access_token;
    expect_err(app.call("keys.rotate", Some(&vera), RpcEnvelope::default()).await, 403, "forbidden");
    expect_err(app.call("keys.list", Some(&vera), RpcEnvelope::default()).await, 403, "forbidden");
    expect_err(app.call("keys.rotate", None, RpcEnvelope::default()).await, 401, "missing_token");
    app.finish().await;
}

#[tokio::test]
async fn replicas_starting_together_share_one_key_and_follow_rotations() {
    let app = TestApp::spawn_replicas(3, |_| {}).await;
    let db = app.env.db("auth").await;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let row = db.query_one(Statement::from_string(DbBackend::MySql, sql)).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM signing_keys").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM clients").await, 1);

    // A rotation answered by one replica reaches the others within their reload interval, so
    // after it every replica signs with the new key.
    let admin = app.admin_token().await;
    let new_key: SigningKeyOut =
        body(app.call("keys.rotate", Some(&admin), RpcEnvelope::default()).await.unwrap());
    tokio::time::sleep(sw_auth::keys::RELOAD_EVERY + Duration::from_millis(200)).await;
    for _ in 0..6 {
        let t = app.admin_token().await;
        assert_eq!(jwt::kid_of(&t).unwrap(), new_key.kid);
    }
    assert_eq!(count("SELECT COUNT(*) FROM signing_keys WHERE status = 'active'").await, 1);
    app.finish().await;
}
