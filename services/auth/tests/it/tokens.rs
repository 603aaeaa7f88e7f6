//! The token endpoint: password grant, throttling, refresh rotation and reuse, revocation, `me`.

use serde_json::json;
use sw_bus::RpcEnvelope;
use sw_contracts::auth::{Role, RoleBinding, TokenOut, WhoAmI};

use crate::common::{MAX_FAILS, TestApp, body, expect_err};

#[tokio::test]
async fn password_grant_issues_verifiable_tokens_and_hides_unknown_users() {
    let app = TestApp::spawn().await;
    let reply = app.login_from("192.0.2.1", "admin", &app.admin_password()).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("Cache-Control").map(String::as_str), Some("no-store"));
    let tok: TokenOut = body(reply);
    assert_eq!(tok.token_type, "Bearer");
    assert_eq!(tok.expires_in, app.env.cfg.auth.access_token_ttl_secs);
    assert!(tok.refresh_token.as_deref().is_some_and(|r| r.len() >= 43), "opaque 32-byte refresh token");

    let p = app.verifier.verify(&tok.access_token).await.expect("the token verifies against the JWKS");
    assert_eq!(p.subject, "user:admin");
    assert_eq!(p.client_id, "swcli");
    assert_eq!(p.roles, vec![RoleBinding::global(Role::Admin)]);

    let me: WhoAmI = body(app.call("me", Some(&tok.access_token), RpcEnvelope::default()).await.unwrap());
    assert_eq!((me.subject.as_str(), me.client_id.as_str()), ("user:admin", "swcli"));
    assert_eq!(me.expires_at.timestamp(), p.exp);
    expect_err(app.call("me", None, RpcEnvelope::default()).await, 401, "missing_token");
    expect_err(app.call("me", Some("not.a.jwt"), RpcEnvelope::default()).await, 401, "invalid_token");

    // Wrong password and unknown user get the very same answer.
    let wrong =
        expect_err(app.login_from("192.0.2.2", "admin", "wrong-password-123").await, 400, "invalid_grant");
    let unknown =
        expect_err(app.login_from("192.0.2.3", "nobody", "wrong-password-123").await, 400, "invalid_grant");
    assert_eq!(wrong.problem().error.as_deref(), Some("invalid_grant"));
    assert_eq!(wrong.problem().error_description, unknown.problem().error_description);
    let weird =
        expect_err(app.login_from("192.0.2.3", &"x/".repeat(500), "whatever").await, 400, "invalid_grant");
    assert_eq!(weird.problem().error_description, unknown.problem().error_description);

    // A user without any role binding logs in and may still ask who they are.
    let admin = tok.access_token;
    app.create_user(&admin, "norole", "norole-password-1", vec![]).await;
    let t = app.login("norole", "norole-password-1").await.access_token;
    let me: WhoAmI = body(app.call("me", Some(&t), RpcEnvelope::default()).await.unwrap());
    assert!(me.roles.is_empty());

    // Malformed requests.
    let ip = "192.0.2.4";
    expect_err(app.token_from(ip, None, json!({"username": "admin"})).await, 400, "invalid_request");
    expect_err(
        app.token_from(ip, None, json!({"grant_type": "password", "client_id": "swcli"})).await,
        400,
        "invalid_request",
    );
    expect_err(
        app.token_from(ip, None, json!({"grant_type": "implicit"})).await,
        400,
        "unsupported_grant_type",
    );
    let pw = app.admin_password();
    expect_err(
        app.token_from(ip, None, json!({"grant_type": "password", "username": "admin", "password": pw}))
            .await,
        401,
        "invalid_client",
    );
    expect_err(
        app.token_from(
            ip,
            None,
            json!({"grant_type": "password", "username": "admin", "password": pw, "client_id": "ghost"}),
        )
        .await,
        401,
        "invalid_client",
    );
    app.finish().await;
}

#[tokio::test]
async fn failed_logins_lock_out_per_user_and_per_ip() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "bob", "bob-password-12", vec![]).await;
    app.create_user(&admin, "carol", "carol-password-1", vec![]).await;

    // Per user: failures from different IPs add up; then even the right password is refused.
    for i in 0..MAX_FAILS {
        expect_err(
            app.login_from(&format!("198.51.100.{i}"), "bob", "bad-password-xx").await,
            400,
            "invalid_grant",
        );
    }
    let e =
        expect_err(app.login_from("198.51.100.50", "bob", "bob-password-12").await, 429, "too_many_attempts");
    let retry = e.problem().retry_after.expect("retry_after");
    assert!((1..=60).contains(&retry), "{retry}");

    // Per IP: failures against different users from one address lock the address.
    let ip = "203.0.113.7";
    for user in ["x1", "x2", "x3"] {
        expect_err(app.login_from(ip, user, "bad-password-xx").await, 400, "invalid_grant");
    }
    expect_err(app.login_from(ip, "carol", "carol-password-1").await, 429, "too_many_attempts");
    // ...but carol herself is fine from elsewhere.
    app.login_from("203.0.113.8", "carol", "carol-password-1").await.expect("carol logs in");

    // A successful login clears the user's counter: two failures, success, two failures, success.
    for round in 0..2 {
        for i in 0..MAX_FAILS - 1 {
            let ip = format!("10.{round}.{i}.1");
            expect_err(app.login_from(&ip, "carol", "bad-password-xx").await, 400, "invalid_grant");
        }
        app.login_from(&format!("10.{round}.9.9"), "carol", "carol-password-1").await.expect("still allowed");
    }
    app.finish().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "dana", "dana-password-1", vec![RoleBinding::global(Role::Viewer)]).await;
    let first = app.login("dana", "dana-password-1").await;
    let other_login = app.login("dana", "dana-password-1").await;
    let rt1 = first.refresh_token.unwrap();
    let refresh = |rt: &str| {
        app.token_from(
            "192.0.2.9",
            None,
            json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "swcli"}),
        )
    };

    // Roles come from the user's current bindings at refresh time.
    let roles = json!([{"role": "developer", "app": "shop"}]);
    app.call("users.roles.set", Some(&admin), RpcEnvelope::with_body(roles).param("username", "dana"))
        .await
        .unwrap();

    let reply = refresh(&rt1).await.expect("first use works");
    assert_eq!(reply.headers.get("Cache-Control").map(String::as_str), Some("no-store"));
    let second: TokenOut = body(reply);
    let rt2 = second.refresh_token.clone().expect("a new refresh token");
    assert_ne!(rt1, rt2);
    let p = app.verifier.verify(&second.access_token).await.unwrap();
    assert_eq!(p.subject, "user:dana");
    assert_eq!(serde_json::to_value(&p.roles).unwrap(), json!([{"role": "developer", "app": "shop"}]));

    // Reusing rt1 is refused and revokes the whole family, so rt2 dies too.
    let e = expect_err(refresh(&rt1).await, 400, "invalid_grant");
    assert!(e.problem().error_description.as_deref().unwrap().contains("already used"));
    expect_err(refresh(&rt2).await, 400, "invalid_grant");
    // The other login is another family and is unaffected.
    let other: TokenOut =
        body(refresh(other_login.refresh_token.as_deref().unwrap()).await.expect("other family"));
    let rt3 = other.refresh_token.unwrap();

    // Only the client the token was issued to may use it.
    let reply = app
        .call(
            "clients.create",
            Some(&admin),
            RpcEnvelope::with_body(json!({"clientId": "web-ui", "name": "Web"})),
        )
        .await
        .unwrap();
    let secret = reply.body.unwrap()["clientSecret"].as_str().unwrap().to_owned();
    let e = app
        .token_from(
            "192.0.2.9",
            Some(("web-ui", &secret)),
            json!({"grant_type": "refresh_token", "refresh_token": rt3}),
        )
        .await;
    expect_err(e, 400, "invalid_grant");
    // Garbage and missing tokens.
    expect_err(refresh("not-a-token").await, 400, "invalid_grant");
    expect_err(
        app.token_from("192.0.2.9", None, json!({"grant_type": "refresh_token", "client_id": "swcli"})).await,
        400,
        "invalid_request",
    );
    // rt3 was not burnt by the refused attempt.
    refresh(&rt3).await.expect("rt3 still works");
    app.finish().await;
}

#[tokio::test]
async fn revocation_denylists_access_tokens_and_kills_refresh_families() {
    let app = TestApp::spawn().await;
    let tok = app.login("admin", &app.admin_password()).await;
    let access = tok.access_token.clone();
    let rt = tok.refresh_token.unwrap();
    let p = app.verifier.verify(&access).await.expect("valid before revocation");
    let reply = app.revoke(&access).await.unwrap();
    assert_eq!((reply.status, reply.body.clone().unwrap()), (200, json!({})));
    expect_err(app.verifier.verify(&access).await, 401, "token_revoked");
    expect_err(app.call("me", Some(&access), RpcEnvelope::default()).await, 401, "token_revoked");
    // The denylist entry lives as long as the token would have, plus a minute.
    let redis = app.env.redis().await;
    let mut conn = redis.conn();
    let ttl: i64 = sw_redis::redis::cmd("TTL")
        .arg(sw_authz::revoked_key(&redis, &p.jti))
        .query_async(&mut conn)
        .await
        .unwrap();
    let max = app.env.cfg.auth.access_token_ttl_secs as i64 + 60;
    assert!((max - 10..=max).contains(&ttl), "ttl {ttl}");

    // The refresh token's family is revoked.
    assert_eq!(app.revoke(&rt).await.unwrap().status, 200);
    expect_err(
        app.token_from(
            "192.0.2.1",
            None,
            json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "swcli"}),
        )
        .await,
        400,
        "invalid_grant",
    );

    // Unknown tokens are answered 200 (RFC 7009); a client is still required.
    assert_eq!(app.revoke("garbage").await.unwrap().status, 200);
    assert_eq!(app.revoke("a.b.c").await.unwrap().status, 200);
    let e = app
        .bus
        .call("auth", "revoke", &Default::default(), &RpcEnvelope::with_body(json!({"token": "x"})), None)
        .await;
    expect_err(e, 401, "invalid_client");
    expect_err(
        app.bus
            .call(
                "auth",
                "revoke",
                &Default::default(),
                &RpcEnvelope::with_body(json!({"client_id": "swcli"})),
                None,
            )
            .await,
        400,
        "invalid_request",
    );

    // A client may not revoke another client's tokens.
    let admin = app.admin_token().await;
    let reply = app
        .call(
            "clients.create",
            Some(&admin),
            RpcEnvelope::with_body(
                json!({"clientId": "robot", "name": "Robot", "roles": [{"role": "viewer"}]}),
            ),
        )
        .await
        .unwrap();
    let secret = reply.body.unwrap()["clientSecret"].as_str().unwrap().to_owned();
    let robot: TokenOut = body(
        app.token_from("192.0.2.1", Some(("robot", &secret)), json!({"grant_type": "client_credentials"}))
            .await
            .unwrap(),
    );
    expect_err(app.revoke(&robot.access_token).await, 400, "unauthorized_client");
    app.verifier.verify(&robot.access_token).await.expect("still valid");
    // The robot revokes its own token with Basic.
    let meta = sw_bus::CallMeta {
        authorization: Some(crate::common::basic_header("robot", &secret)),
        ..Default::default()
    };
    let reply = app
        .bus
        .call("auth", "revoke", &meta, &RpcEnvelope::with_body(json!({"token": robot.access_token})), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    expect_err(app.verifier.verify(&robot.access_token).await, 401, "token_revoked");
    app.finish().await;
}
