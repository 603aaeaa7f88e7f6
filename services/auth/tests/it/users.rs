//! User management: CRUD, the authorization rules, validation, refresh revocation, events.

use serde_json::{Value, json};
use sw_bus::RpcEnvelope;
use sw_contracts::auth::{Role, RoleBinding, TokenOut, UserOut};

use crate::common::{TestApp, body, expect_err, expect_event, expect_no_event};

fn user(username: &str) -> RpcEnvelope {
    RpcEnvelope::default().param("username", username)
}

#[tokio::test]
async fn users_crud_with_authorization_validation_and_events() {
    let app = TestApp::spawn().await;
    let mut tap = app.events().await;
    let admin = app.admin_token().await;

    // 401 before anything else.
    expect_err(app.call("users.list", None, RpcEnvelope::default()).await, 401, "missing_token");
    expect_err(app.call("users.list", Some("x.y.z"), RpcEnvelope::default()).await, 401, "invalid_token");

    // Create.
    let reply = app
        .call(
            "users.create",
            Some(&admin),
            RpcEnvelope::with_body(json!({
                "username": "vic", "password": "vic-password-12", "displayName": "Vic", "email": "vic@example.com",
                "roles": [{"role": "viewer"}]
            })),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    assert_eq!(reply.headers.get("Location").map(String::as_str), Some("/v1/users/vic"));
    let created: Value = reply.body.unwrap();
    assert!(created.get("password").is_none() && created.get("passwordHash").is_none(), "{created}");
    let vic: UserOut = serde_json::from_value(created.clone()).unwrap();
    assert_eq!(
        (vic.display_name.as_deref(), vic.email.as_deref(), vic.disabled),
        (Some("Vic"), Some("vic@example.com"), false)
    );
    assert_eq!(expect_event(&mut tap, "auth.user.created", "vic").await, created);

    // Failures produce no events: 409, 422 with every field, unknown fields, 404, 403.
    let dup = RpcEnvelope::with_body(json!({"username": "vic", "password": "another-password"}));
    expect_err(app.call("users.create", Some(&admin), dup).await, 409, "already_exists");
    let bad = RpcEnvelope::with_body(json!({
        "username": "no spaces", "password": "short", "displayName": "d".repeat(129), "email": "not-an-email"
    }));
    let e = expect_err(app.call("users.create", Some(&admin), bad).await, 422, "validation_failed");
    let fields: Vec<_> = e.problem().errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["username", "password", "displayName", "email"]);
    let unknown =
        RpcEnvelope::with_body(json!({"username": "u", "password": "long-enough-pw", "isAdmin": true}));
    let e = expect_err(app.call("users.create", Some(&admin), unknown).await, 422, "validation_failed");
    assert_eq!(e.problem().errors[0].field, "isAdmin");
    let bad_role = RpcEnvelope::with_body(
        json!({"username": "u", "password": "long-enough-pw", "roles": [{"role": "god"}]}),
    );
    expect_err(app.call("users.create", Some(&admin), bad_role).await, 422, "validation_failed");
    expect_err(app.call("users.get", Some(&admin), user("ghost")).await, 404, "not_found");
    let e = expect_err(app.call("users.get", Some(&admin), user("bad/name")).await, 422, "validation_failed");
    assert_eq!(e.problem().errors[0].field, "username");
    expect_err(app.call("users.update", Some(&admin), user("ghost")).await, 400, "missing_body");
    let patch_unknown = RpcEnvelope::with_body(json!({"roles": []})).param("username", "vic");
    let e = expect_err(app.call("users.update", Some(&admin), patch_unknown).await, 422, "validation_failed");
    assert_eq!(e.problem().errors[0].field, "roles");
    let patch_bad =
        RpcEnvelope::with_body(json!({"password": "short", "email": "a@b@c"})).param("username", "vic");
    let e = expect_err(app.call("users.update", Some(&admin), patch_bad).await, 422, "validation_failed");
    assert_eq!(
        e.problem().errors.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
        ["password", "email"]
    );
    let patch_ghost = RpcEnvelope::with_body(json!({"displayName": "G"})).param("username", "ghost");
    expect_err(app.call("users.update", Some(&admin), patch_ghost).await, 404, "not_found");

    // A viewer reads themselves and nothing else.
    let vic_login = app.login("vic", "vic-password-12").await;
    let vic_token = vic_login.access_token.clone();
    let me: UserOut = body(app.call("users.get", Some(&vic_token), user("vic")).await.unwrap());
    assert_eq!(me.roles, vec![RoleBinding::global(Role::Viewer)]);
    expect_err(app.call("users.get", Some(&vic_token), user("admin")).await, 403, "forbidden");
    for (op, env) in [
        ("users.list", RpcEnvelope::default()),
        ("users.create", RpcEnvelope::with_body(json!({"username": "x", "password": "long-enough-pw"}))),
        ("users.update", RpcEnvelope::with_body(json!({"disabled": true})).param("username", "admin")),
        ("users.update", RpcEnvelope::with_body(json!({"displayName": "me"})).param("username", "vic")),
        ("users.delete", user("admin")),
        ("users.roles.set", RpcEnvelope::with_body(json!([{"role": "admin"}])).param("username", "vic")),
    ] {
        expect_err(app.call(op, Some(&vic_token), env).await, 403, "forbidden");
    }
    expect_err(app.call("users.delete", Some(&admin), user("admin")).await, 409, "cannot_delete_self");
    expect_no_event(&mut tap).await;

    // List, search and paging.
    app.create_user(&admin, "walt", "walt-password-1", vec![]).await;
    expect_event(&mut tap, "auth.user.created", "walt").await;
    let page: Value = body(app.call("users.list", Some(&admin), RpcEnvelope::default()).await.unwrap());
    let names: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!((names, page["total"].clone()), (vec!["admin", "vic", "walt"], json!(3)));
    let page: Value = body(
        app.call("users.list", Some(&admin), RpcEnvelope::default().query("search=example.com"))
            .await
            .unwrap(),
    );
    assert_eq!((page["total"].clone(), page["items"][0]["username"].clone()), (json!(1), json!("vic")));
    let page: Value = body(
        app.call("users.list", Some(&admin), RpcEnvelope::default().query("page=2&pageSize=2"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (page["page"].clone(), page["pageSize"].clone(), page["items"].as_array().unwrap().len()),
        (json!(2), json!(2), 1)
    );
    let page: Value =
        body(app.call("users.list", Some(&admin), RpcEnvelope::default().query("search=%25")).await.unwrap());
    assert_eq!(page["total"], json!(0), "LIKE wildcards are literal");
    let e = expect_err(
        app.call("users.list", Some(&admin), RpcEnvelope::default().query("sort=name")).await,
        422,
        "validation_failed",
    );
    assert_eq!(e.problem().errors[0].field, "sort");

    // Update fields; an empty string clears one.
    let patch =
        RpcEnvelope::with_body(json!({"displayName": "Victor", "email": ""})).param("username", "vic");
    let updated: UserOut = body(app.call("users.update", Some(&admin), patch).await.unwrap());
    assert_eq!((updated.display_name.as_deref(), updated.email), (Some("Victor"), None));
    assert!(updated.updated_at > vic.updated_at);
    expect_event(&mut tap, "auth.user.updated", "vic").await;
    // The refresh token survived that change.
    let refresh = |rt: String| {
        app.token_from(
            "192.0.2.1",
            None,
            json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "swcli"}),
        )
    };
    let rotated: TokenOut =
        body(refresh(vic_login.refresh_token.unwrap()).await.expect("refresh still works"));

    // A new password revokes refresh tokens; the old password stops working.
    let patch = RpcEnvelope::with_body(json!({"password": "vic-new-password"})).param("username", "vic");
    app.call("users.update", Some(&admin), patch).await.unwrap();
    expect_event(&mut tap, "auth.user.updated", "vic").await;
    expect_err(refresh(rotated.refresh_token.unwrap()).await, 400, "invalid_grant");
    expect_err(app.login_from("192.0.2.30", "vic", "vic-password-12").await, 400, "invalid_grant");
    let after_pw = app.login("vic", "vic-new-password").await;

    // Disabling revokes too, and refuses logins.
    let patch = RpcEnvelope::with_body(json!({"disabled": true})).param("username", "vic");
    let disabled: UserOut = body(app.call("users.update", Some(&admin), patch).await.unwrap());
    assert!(disabled.disabled);
    expect_event(&mut tap, "auth.user.updated", "vic").await;
    expect_err(refresh(after_pw.refresh_token.unwrap()).await, 400, "invalid_grant");
    expect_err(app.login_from("192.0.2.31", "vic", "vic-new-password").await, 400, "invalid_grant");
    let patch = RpcEnvelope::with_body(json!({"disabled": false})).param("username", "vic");
    app.call("users.update", Some(&admin), patch).await.unwrap();
    expect_event(&mut tap, "auth.user.updated", "vic").await;
    // An unchanged patch changes nothing and announces nothing.
    let patch = RpcEnvelope::with_body(json!({"disabled": false})).param("username", "vic");
    app.call("users.update", Some(&admin), patch).await.unwrap();

    // Role bindings are replaced as a whole and reach the next token.
    let roles = json!([{"role": "developer", "team": "payments"}, {"role": "viewer"}, {"role": "viewer"}]);
    let reply = app
        .call("users.roles.set", Some(&admin), RpcEnvelope::with_body(roles).param("username", "vic"))
        .await
        .unwrap();
    let with_roles: UserOut = body(reply);
    assert_eq!(
        serde_json::to_value(&with_roles.roles).unwrap(),
        json!([{"role": "developer", "team": "payments"}, {"role": "viewer"}])
    );
    expect_event(&mut tap, "auth.user.updated", "vic").await;
    let last = app.login("vic", "vic-new-password").await;
    let p = app.verifier.verify(&last.access_token).await.unwrap();
    assert_eq!(p.roles, with_roles.roles);
    let bad_roles =
        RpcEnvelope::with_body(json!([{"role": "viewer", "app": "Not_An_App"}])).param("username", "vic");
    expect_err(app.call("users.roles.set", Some(&admin), bad_roles).await, 422, "validation_failed");
    let not_array = RpcEnvelope::with_body(json!({"role": "viewer"})).param("username", "vic");
    expect_err(app.call("users.roles.set", Some(&admin), not_array).await, 422, "validation_failed");
    expect_no_event(&mut tap).await;

    // Delete: 204, the event, refresh tokens revoked, then 404.
    let reply = app.call("users.delete", Some(&admin), user("vic")).await.unwrap();
    assert_eq!((reply.status, reply.body), (204, None));
    assert_eq!(expect_event(&mut tap, "auth.user.deleted", "vic").await, json!({"username": "vic"}));
    expect_err(refresh(last.refresh_token.unwrap()).await, 400, "invalid_grant");
    expect_err(app.call("users.get", Some(&admin), user("vic")).await, 404, "not_found");
    expect_err(app.call("users.delete", Some(&admin), user("vic")).await, 404, "not_found");
    expect_no_event(&mut tap).await;
    app.finish().await;
}
