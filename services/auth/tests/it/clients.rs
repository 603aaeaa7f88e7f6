//! OAuth clients: registration, secrets shown once, client_credentials, and client-auth throttling.

use serde_json::{Value, json};
use sw_bus::RpcEnvelope;
use sw_contracts::auth::{Role, RoleBinding, TokenOut};

use crate::common::{MAX_FAILS, TestApp, body, expect_err, expect_event, expect_no_event};

#[tokio::test]
async fn confidential_clients_use_client_credentials_and_secrets_show_once() {
    let app = TestApp::spawn().await;
    let mut tap = app.events().await;
    let admin = app.admin_token().await;
    let ip = "192.0.2.20";

    let reply = app
        .call(
            "clients.create",
            Some(&admin),
            RpcEnvelope::with_body(
                json!({"clientId": "ci-bot", "name": "CI", "roles": [{"role": "developer"}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    assert_eq!(reply.headers.get("Location").map(String::as_str), Some("/v1/clients/ci-bot"));
    let created: Value = reply.body.unwrap();
    let secret = created["clientSecret"].as_str().expect("the secret, once").to_owned();
    assert_eq!(created["grantTypes"], json!(["client_credentials", "password", "refresh_token"]));
    assert_eq!(created["confidential"], json!(true));
    let data = expect_event(&mut tap, "auth.client.created", "ci-bot").await;
    assert!(!data.to_string().contains(&secret));
    assert!(data.get("clientSecret").is_none());

    // Reading never shows the secret again.
    let got: Value = body(
        app.call("clients.get", Some(&admin), RpcEnvelope::default().param("clientId", "ci-bot"))
            .await
            .unwrap(),
    );
    assert!(got.get("clientSecret").is_none(), "{got}");
    let list: Value = body(app.call("clients.list", Some(&admin), RpcEnvelope::default()).await.unwrap());
    assert_eq!(list["total"], json!(2));
    assert_eq!(list["items"][0]["clientId"], json!("ci-bot"));
    assert_eq!(list["items"][1]["clientId"], json!("swcli"));
    assert!(!list.to_string().contains(&secret));

    // client_credentials with Basic, and with form fields.
    let basic = || Some(("ci-bot", secret.as_str()));
    let reply = app.token_from(ip, basic(), json!({"grant_type": "client_credentials"})).await.unwrap();
    assert_eq!(reply.headers.get("Cache-Control").map(String::as_str), Some("no-store"));
    let tok: TokenOut = body(reply);
    assert!(tok.refresh_token.is_none());
    let p = app.verifier.verify(&tok.access_token).await.unwrap();
    assert_eq!((p.subject.as_str(), p.client_id.as_str()), ("client:ci-bot", "ci-bot"));
    assert_eq!(p.roles, vec![RoleBinding::global(Role::Developer)]);
    let form = json!({"grant_type": "client_credentials", "client_id": "ci-bot", "client_secret": secret});
    app.token_from(ip, None, form).await.expect("form credentials work");
    // Confidential clients may also log users in with the password grant.
    let pw = app.admin_password();
    let tok: TokenOut = body(
        app.token_from(ip, basic(), json!({"grant_type": "password", "username": "admin", "password": pw}))
            .await
            .unwrap(),
    );
    assert_eq!(app.verifier.verify(&tok.access_token).await.unwrap().client_id, "ci-bot");

    // Wrong secret, unknown client, two methods at once, public client.
    let cc = json!({"grant_type": "client_credentials"});
    expect_err(app.token_from(ip, Some(("ci-bot", "wrong")), cc.clone()).await, 401, "invalid_client");
    expect_err(
        app.token_from("192.0.2.21", Some(("ghost-bot", "x")), cc.clone()).await,
        401,
        "invalid_client",
    );
    let both = json!({"grant_type": "client_credentials", "client_secret": secret});
    expect_err(app.token_from(ip, basic(), both).await, 400, "invalid_request");
    let public = json!({"grant_type": "client_credentials", "client_id": "swcli"});
    expect_err(app.token_from(ip, None, public).await, 400, "unauthorized_client");
    // A confidential client cannot pass as public by leaving its secret out.
    expect_err(
        app.token_from(ip, None, json!({"grant_type": "client_credentials", "client_id": "ci-bot"})).await,
        401,
        "invalid_client",
    );

    // Rotation: a new secret, shown once; the old one stops working.
    let reply = app
        .call("clients.rotate-secret", Some(&admin), RpcEnvelope::default().param("clientId", "ci-bot"))
        .await
        .unwrap();
    let new_secret = reply.body.unwrap()["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let data = expect_event(&mut tap, "auth.client.updated", "ci-bot").await;
    assert!(!data.to_string().contains(&new_secret));
    expect_err(app.token_from("192.0.2.22", basic(), cc.clone()).await, 401, "invalid_client");
    app.token_from(ip, Some(("ci-bot", &new_secret)), cc.clone()).await.expect("new secret works");
    expect_err(
        app.call("clients.rotate-secret", Some(&admin), RpcEnvelope::default().param("clientId", "swcli"))
            .await,
        409,
        "public_client",
    );

    // Roles.
    let reply = app
        .call(
            "clients.roles.set",
            Some(&admin),
            RpcEnvelope::with_body(json!([{"role": "operator"}])).param("clientId", "ci-bot"),
        )
        .await
        .unwrap();
    assert_eq!(body::<Value>(reply)["roles"], json!([{"role": "operator"}]));
    expect_event(&mut tap, "auth.client.updated", "ci-bot").await;
    let tok: TokenOut = body(app.token_from(ip, Some(("ci-bot", &new_secret)), cc.clone()).await.unwrap());
    assert_eq!(
        app.verifier.verify(&tok.access_token).await.unwrap().roles,
        vec![RoleBinding::global(Role::Operator)]
    );

    // A public client gets no secret and no client_credentials.
    let reply = app
        .call(
            "clients.create",
            Some(&admin),
            RpcEnvelope::with_body(json!({"clientId": "my-spa", "name": "SPA", "confidential": false})),
        )
        .await
        .unwrap();
    let spa: Value = reply.body.unwrap();
    assert_eq!(spa["clientSecret"], Value::Null);
    assert_eq!(spa["grantTypes"], json!(["password", "refresh_token"]));
    expect_event(&mut tap, "auth.client.created", "my-spa").await;

    // Failures: 409, 422, 403, 404, 401 — and no events for any of them.
    let dup = RpcEnvelope::with_body(json!({"clientId": "ci-bot", "name": "again"}));
    expect_err(app.call("clients.create", Some(&admin), dup).await, 409, "already_exists");
    let bad = RpcEnvelope::with_body(json!({"clientId": "x", "name": " "}));
    let e = expect_err(app.call("clients.create", Some(&admin), bad).await, 422, "validation_failed");
    let fields: Vec<_> = e.problem().errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["clientId", "name"]);
    let unknown = RpcEnvelope::with_body(json!({"clientId": "abc", "name": "n", "secret": "mine"}));
    let e = expect_err(app.call("clients.create", Some(&admin), unknown).await, 422, "validation_failed");
    assert_eq!(e.problem().errors[0].field, "secret");
    expect_err(
        app.call("clients.get", Some(&admin), RpcEnvelope::default().param("clientId", "a b")).await,
        422,
        "validation_failed",
    );
    expect_err(
        app.call("clients.get", Some(&admin), RpcEnvelope::default().param("clientId", "nope")).await,
        404,
        "not_found",
    );
    expect_err(app.call("clients.list", None, RpcEnvelope::default()).await, 401, "missing_token");
    app.create_user(&admin, "ops", "ops-password-12", vec![RoleBinding::global(Role::Operator)]).await;
    expect_event(&mut tap, "auth.user.created", "ops").await;
    let ops = app.login("ops", "ops-password-12").await.access_token;
    for (op, env) in [
        ("clients.list", RpcEnvelope::default()),
        ("clients.get", RpcEnvelope::default().param("clientId", "ci-bot")),
        ("clients.create", RpcEnvelope::with_body(json!({"clientId": "evil", "name": "e"}))),
        ("clients.delete", RpcEnvelope::default().param("clientId", "ci-bot")),
        ("clients.rotate-secret", RpcEnvelope::default().param("clientId", "ci-bot")),
        ("clients.roles.set", RpcEnvelope::with_body(json!([{"role": "admin"}])).param("clientId", "ci-bot")),
    ] {
        expect_err(app.call(op, Some(&ops), env).await, 403, "forbidden");
    }
    expect_err(
        app.call("clients.delete", Some(&admin), RpcEnvelope::default().param("clientId", "swcli")).await,
        409,
        "builtin_client",
    );
    expect_no_event(&mut tap).await;

    // Deleting a client ends its logins.
    let reply = app
        .call("clients.delete", Some(&admin), RpcEnvelope::default().param("clientId", "ci-bot"))
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body), (204, None));
    assert_eq!(expect_event(&mut tap, "auth.client.deleted", "ci-bot").await, json!({"clientId": "ci-bot"}));
    expect_err(app.token_from(ip, Some(("ci-bot", &new_secret)), cc).await, 401, "invalid_client");
    expect_err(
        app.call("clients.delete", Some(&admin), RpcEnvelope::default().param("clientId", "ci-bot")).await,
        404,
        "not_found",
    );
    app.finish().await;
}

#[tokio::test]
async fn failed_client_authentication_locks_out_the_ip() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let reply = app
        .call(
            "clients.create",
            Some(&admin),
            RpcEnvelope::with_body(json!({"clientId": "svc-a", "name": "A"})),
        )
        .await
        .unwrap();
    let secret = reply.body.unwrap()["clientSecret"].as_str().unwrap().to_owned();
    let cc = json!({"grant_type": "client_credentials"});
    let ip = "203.0.113.50";
    for _ in 0..MAX_FAILS {
        expect_err(app.token_from(ip, Some(("svc-a", "guess")), cc.clone()).await, 401, "invalid_client");
    }
    let e =
        expect_err(app.token_from(ip, Some(("svc-a", &secret)), cc.clone()).await, 429, "too_many_attempts");
    assert!(e.problem().retry_after.is_some_and(|s| s > 0));
    // The lock is the IP's: the same client from elsewhere works, and password logins from the IP stop.
    app.token_from("203.0.113.51", Some(("svc-a", &secret)), cc).await.expect("other IP is fine");
    expect_err(app.login_from(ip, "admin", &app.admin_password()).await, 429, "too_many_attempts");
    app.finish().await;
}
