//! Namespaces: lifecycle and events, refusing to delete a namespace with stages, lists,
//! validation, duplicates and the global-only matrix.

use serde_json::json;
use sw_contracts::auth::Role;

use crate::support::{Json, TestApp, app, body, global, ids, req, team};

fn ns_req(id: &str) -> sw_bus::RpcEnvelope {
    req().param("namespaceId", id)
}

#[tokio::test]
async fn namespace_lifecycle_publishes_matching_events() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    let created = t
        .expect(
            "namespaces.create",
            &admin,
            body(json!({"namespaceId": "prod-cn", "labels": {"region": "cn"}})),
            201,
        )
        .await;
    assert_eq!(created.headers.get("Location").map(String::as_str), Some("/v1/namespaces/prod-cn"));
    let out = created.body.unwrap();
    assert_eq!(
        (out["namespaceId"].clone(), out["name"].clone(), out["version"].clone()),
        (json!("prod-cn"), json!("prod-cn"), json!(1))
    );
    assert_eq!(t.event("appmeta.namespace.created", "prod-cn").await, out);
    assert_eq!(t.ok("namespaces.get", &admin, ns_req("prod-cn"), 200).await, out);

    let updated = t
        .ok(
            "namespaces.update",
            &admin,
            ns_req("prod-cn").json(json!({"name": "Production CN", "labels": {}})),
            200,
        )
        .await;
    assert_eq!(updated["name"], "Production CN");
    assert_eq!(updated["labels"], json!({}));
    assert_eq!(updated["version"], 2);
    assert_eq!(t.event("appmeta.namespace.updated", "prod-cn").await, updated);

    // A namespace with stages cannot go.
    t.expect("stages.create", &admin, ns_req("prod-cn").json(json!({"stageId": "prod"})), 201).await;
    t.event("appmeta.stage.created", "prod-cn/prod").await;
    t.fail("namespaces.delete", Some(&admin), ns_req("prod-cn"), 409, "namespace_not_empty").await;
    t.expect("stages.delete", &admin, ns_req("prod-cn").param("stageId", "prod"), 204).await;
    t.event("appmeta.stage.deleted", "prod-cn/prod").await;

    t.expect("namespaces.delete", &admin, ns_req("prod-cn"), 204).await;
    assert_eq!(t.event("appmeta.namespace.deleted", "prod-cn").await, json!({"namespaceId": "prod-cn"}));
    t.fail("namespaces.get", Some(&admin), ns_req("prod-cn"), 404, "not_found").await;
    t.fail("namespaces.delete", Some(&admin), ns_req("prod-cn"), 404, "not_found").await;
    t.fail("namespaces.update", Some(&admin), ns_req("prod-cn").json(json!({"name": "x"})), 404, "not_found")
        .await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn namespaces_list_validate_and_conflict() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    for id in ["c", "a", "b"] {
        t.expect("namespaces.create", &admin, body(json!({"namespaceId": id})), 201).await;
        t.next_event().await;
    }
    let all = t.ok("namespaces.list", &admin, req(), 200).await;
    assert_eq!(ids(&all, "namespaceId"), ["a", "b", "c"]);
    let p = t.ok("namespaces.list", &admin, req().query("page=2&pageSize=2"), 200).await;
    assert_eq!(ids(&p, "namespaceId"), ["c"]);
    assert_eq!(p["total"], 3);
    t.invalid("namespaces.list", &admin, req().query("team=x"), &["team"]).await;

    t.fail("namespaces.create", Some(&admin), body(json!({"namespaceId": "a"})), 409, "already_exists").await;
    t.invalid(
        "namespaces.create",
        &admin,
        body(json!({"namespaceId": "Bad", "name": " ", "description": "x".repeat(4097), "labels": {"ok": "v".repeat(256)}})),
        &["namespaceId", "name", "description", "labels.ok"],
    )
    .await;
    t.invalid("namespaces.create", &admin, body(json!({"namespaceId": "z", "stages": []})), &["stages"])
        .await;
    t.invalid("namespaces.update", &admin, ns_req("a").json(json!({"namespaceId": "b"})), &["namespaceId"])
        .await;
    t.invalid("namespaces.get", &admin, ns_req("a.b"), &["namespaceId"]).await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn only_global_operators_manage_namespaces() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    t.expect("namespaces.create", &admin, body(json!({"namespaceId": "shared"})), 201).await;
    t.next_event().await;

    let operator = t.token(vec![global(Role::Operator)]);
    t.expect("namespaces.create", &operator, body(json!({"namespaceId": "ops"})), 201).await;
    t.event("appmeta.namespace.created", "ops").await;
    t.expect("namespaces.update", &operator, ns_req("ops").json(json!({"description": "d"})), 200).await;
    t.next_event().await;
    t.expect("namespaces.delete", &operator, ns_req("ops"), 204).await;
    t.event("appmeta.namespace.deleted", "ops").await;

    for roles in [vec![global(Role::Developer)], vec![global(Role::Viewer)]] {
        let tok = t.token(roles);
        t.expect("namespaces.list", &tok, req(), 200).await;
        t.expect("namespaces.get", &tok, ns_req("shared"), 200).await;
        t.fail("namespaces.create", Some(&tok), body(json!({"namespaceId": "x"})), 403, "forbidden").await;
        t.fail(
            "namespaces.update",
            Some(&tok),
            ns_req("shared").json(json!({"name": "x"})),
            403,
            "forbidden",
        )
        .await;
        t.fail("namespaces.delete", Some(&tok), ns_req("shared"), 403, "forbidden").await;
    }
    // Scoped bindings, even admin ones, do not reach global resources.
    for roles in [vec![team(Role::Admin, "pay")], vec![app(Role::Operator, "pay")], vec![]] {
        let tok = t.token(roles);
        t.fail("namespaces.list", Some(&tok), req(), 403, "forbidden").await;
        t.fail("namespaces.get", Some(&tok), ns_req("shared"), 403, "forbidden").await;
        t.fail("namespaces.create", Some(&tok), body(json!({"namespaceId": "x"})), 403, "forbidden").await;
    }
    t.fail("namespaces.list", None, req(), 401, "missing_token").await;
    t.fail("namespaces.get", Some("x.y.z"), ns_req("shared"), 401, "invalid_token").await;
    t.no_event().await;
    t.stop().await;
}
