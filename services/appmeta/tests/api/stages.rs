//! Stages: lifecycle and events, stages of a missing namespace, lists, validation, duplicates,
//! the matrix.

use serde_json::json;
use sw_contracts::auth::Role;

use crate::support::{Json, TestApp, body, global, ids, req, team};

fn ns(id: &str) -> sw_bus::RpcEnvelope {
    req().param("namespaceId", id)
}

fn stage_req(ns_: &str, id: &str) -> sw_bus::RpcEnvelope {
    ns(ns_).param("stageId", id)
}

async fn with_namespace(t: &mut TestApp, id: &str) {
    let admin = t.admin.clone();
    t.expect("namespaces.create", &admin, body(json!({"namespaceId": id})), 201).await;
    t.event("appmeta.namespace.created", id).await;
}

#[tokio::test]
async fn stage_lifecycle_publishes_matching_events() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_namespace(&mut t, "default").await;

    let created = t
        .expect(
            "stages.create",
            &admin,
            ns("default").json(json!({"stageId": "prod", "name": "Production", "production": true})),
            201,
        )
        .await;
    assert_eq!(
        created.headers.get("Location").map(String::as_str),
        Some("/v1/namespaces/default/stages/prod")
    );
    let out = created.body.unwrap();
    assert_eq!(out["namespaceId"], "default");
    assert_eq!(out["stageId"], "prod");
    assert_eq!(out["production"], true);
    assert_eq!(out["version"], 1);
    assert_eq!(t.event("appmeta.stage.created", "default/prod").await, out);
    assert_eq!(t.ok("stages.get", &admin, stage_req("default", "prod"), 200).await, out);

    let updated = t
        .ok(
            "stages.update",
            &admin,
            stage_req("default", "prod").json(json!({"production": false, "labels": {"k": "v"}})),
            200,
        )
        .await;
    assert_eq!(
        (updated["production"].clone(), updated["name"].clone(), updated["version"].clone()),
        (json!(false), json!("Production"), json!(2))
    );
    assert_eq!(t.event("appmeta.stage.updated", "default/prod").await, updated);

    t.expect("stages.delete", &admin, stage_req("default", "prod"), 204).await;
    assert_eq!(
        t.event("appmeta.stage.deleted", "default/prod").await,
        json!({"namespaceId": "default", "stageId": "prod"})
    );
    t.fail("stages.get", Some(&admin), stage_req("default", "prod"), 404, "not_found").await;
    t.fail("stages.delete", Some(&admin), stage_req("default", "prod"), 404, "not_found").await;
    t.fail(
        "stages.update",
        Some(&admin),
        stage_req("default", "prod").json(json!({"name": "x"})),
        404,
        "not_found",
    )
    .await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn stages_of_a_missing_namespace_are_not_found() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    t.fail("stages.create", Some(&admin), ns("nowhere").json(json!({"stageId": "dev"})), 404, "not_found")
        .await;
    t.fail("stages.list", Some(&admin), ns("nowhere"), 404, "not_found").await;
    t.fail("stages.get", Some(&admin), stage_req("nowhere", "dev"), 404, "not_found").await;
    t.fail(
        "stages.update",
        Some(&admin),
        stage_req("nowhere", "dev").json(json!({"name": "x"})),
        404,
        "not_found",
    )
    .await;
    t.fail("stages.delete", Some(&admin), stage_req("nowhere", "dev"), 404, "not_found").await;
    t.invalid("stages.list", &admin, ns("No Where"), &["namespaceId"]).await;
    t.invalid("stages.get", &admin, stage_req("ok", "Bad!"), &["stageId"]).await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn stages_list_validate_and_conflict() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_namespace(&mut t, "a").await;
    with_namespace(&mut t, "b").await;
    for id in ["staging", "dev", "prod"] {
        t.expect("stages.create", &admin, ns("a").json(json!({"stageId": id})), 201).await;
        t.next_event().await;
    }
    // The same stage id in another namespace is a different stage.
    t.expect("stages.create", &admin, ns("b").json(json!({"stageId": "dev"})), 201).await;
    t.next_event().await;

    assert_eq!(ids(&t.ok("stages.list", &admin, ns("a"), 200).await, "stageId"), ["dev", "prod", "staging"]);
    let p = t.ok("stages.list", &admin, ns("a").query("pageSize=2&page=2"), 200).await;
    assert_eq!(ids(&p, "stageId"), ["staging"]);
    assert_eq!(p["total"], 3);
    assert_eq!(ids(&t.ok("stages.list", &admin, ns("b"), 200).await, "stageId"), ["dev"]);

    t.fail("stages.create", Some(&admin), ns("a").json(json!({"stageId": "dev"})), 409, "already_exists")
        .await;
    t.invalid(
        "stages.create",
        &admin,
        ns("a").json(json!({"stageId": "-x", "name": "n".repeat(129), "labels": {"": "v"}})),
        &["stageId", "name", "labels."],
    )
    .await;
    t.invalid(
        "stages.create",
        &admin,
        ns("a").json(json!({"stageId": "x", "production": "yes"})),
        &["production"],
    )
    .await;
    t.invalid("stages.update", &admin, stage_req("a", "dev").json(json!({"stageId": "y"})), &["stageId"])
        .await;
    t.invalid(
        "stages.update",
        &admin,
        stage_req("a", "dev").json(json!({"description": "d".repeat(4097)})),
        &["description"],
    )
    .await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn only_global_operators_manage_stages() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_namespace(&mut t, "default").await;
    t.expect("stages.create", &admin, ns("default").json(json!({"stageId": "dev"})), 201).await;
    t.next_event().await;

    let operator = t.token(vec![global(Role::Operator)]);
    t.expect("stages.create", &operator, ns("default").json(json!({"stageId": "qa"})), 201).await;
    t.event("appmeta.stage.created", "default/qa").await;
    t.expect("stages.delete", &operator, stage_req("default", "qa"), 204).await;
    t.event("appmeta.stage.deleted", "default/qa").await;

    let dev = t.token(vec![global(Role::Developer)]);
    t.expect("stages.list", &dev, ns("default"), 200).await;
    t.expect("stages.get", &dev, stage_req("default", "dev"), 200).await;
    t.fail("stages.create", Some(&dev), ns("default").json(json!({"stageId": "x"})), 403, "forbidden").await;
    t.fail(
        "stages.update",
        Some(&dev),
        stage_req("default", "dev").json(json!({"name": "x"})),
        403,
        "forbidden",
    )
    .await;
    t.fail("stages.delete", Some(&dev), stage_req("default", "dev"), 403, "forbidden").await;
    let team_op = t.token(vec![team(Role::Operator, "pay")]);
    t.fail("stages.list", Some(&team_op), ns("default"), 403, "forbidden").await;
    t.fail("stages.create", Some(&team_op), ns("default").json(json!({"stageId": "x"})), 403, "forbidden")
        .await;
    t.fail("stages.list", None, ns("default"), 401, "missing_token").await;
    t.no_event().await;
    t.stop().await;
}
