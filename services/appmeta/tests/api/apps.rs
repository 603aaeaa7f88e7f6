//! Apps: lifecycle and events, lists and filters, authentication, the role/scope matrix,
//! validation, duplicates and concurrent creates.

use serde_json::{Value, json};
use sw_contracts::auth::Role;

use crate::support::{Json, TestApp, app, body, global, ids, req, team};

fn app_req(id: &str) -> sw_bus::RpcEnvelope {
    req().param("appId", id)
}

#[tokio::test]
async fn app_lifecycle_publishes_matching_events() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();

    let created = t
        .expect(
            "apps.create",
            &admin,
            body(json!({"appId": "health", "team": "sre", "labels": {"tier": "gold"}})),
            201,
        )
        .await;
    assert_eq!(created.headers.get("Location").map(String::as_str), Some("/v1/apps/health"));
    let out = created.body.unwrap();
    assert_eq!(out["appId"], "health");
    assert_eq!(out["name"], "health", "the name defaults to the id");
    assert_eq!(out["team"], "sre");
    assert_eq!(out["labels"], json!({"tier": "gold"}));
    assert_eq!(out["version"], 1);
    assert_eq!(t.event("appmeta.app.created", "health").await, out);
    assert_eq!(
        t.ok("apps.get", &admin, app_req("health"), 200).await,
        out,
        "a read returns what create answered"
    );

    let patched = t
        .ok(
            "apps.update",
            &admin,
            app_req("health").json(json!({"name": "Health Check", "description": "d", "labels": {"a": "b"}})),
            200,
        )
        .await;
    assert_eq!(patched["name"], "Health Check");
    assert_eq!(patched["description"], "d");
    assert_eq!(patched["team"], "sre", "absent fields stay");
    assert_eq!(patched["labels"], json!({"a": "b"}), "labels are replaced");
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["createdAt"], out["createdAt"]);
    assert_eq!(t.event("appmeta.app.updated", "health").await, patched);

    // `team: null` clears the team.
    let cleared = t.ok("apps.update", &admin, app_req("health").json(json!({"team": null})), 200).await;
    assert_eq!(cleared["team"], Value::Null);
    assert_eq!(cleared["version"], 3);
    assert_eq!(t.event("appmeta.app.updated", "health").await, cleared);

    let deleted = t.expect("apps.delete", &admin, app_req("health"), 204).await;
    assert!(deleted.body.is_none());
    assert_eq!(t.event("appmeta.app.deleted", "health").await, json!({"appId": "health"}));
    t.fail("apps.get", Some(&admin), app_req("health"), 404, "not_found").await;
    t.fail("apps.update", Some(&admin), app_req("health").json(json!({"name": "x"})), 404, "not_found").await;
    t.fail("apps.delete", Some(&admin), app_req("health"), 404, "not_found").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn list_paginates_and_filters() {
    let t = TestApp::spawn().await;
    let admin = t.admin.clone();
    for (id, name, team_, labels) in [
        ("alpha", "Alpha Service", Some("pay"), json!({"env": "prod"})),
        ("bravo", "Billing_API", Some("pay"), json!({"env": "dev"})),
        ("charlie", "charlie", Some("ops"), json!({"env": "prod", "tier": "1"})),
        ("delta", "Delta 100%", None, json!({})),
        ("echo", "Echo", Some("ops"), json!({"app.kubernetes.io/part-of": "x"})),
    ] {
        let mut b = json!({"appId": id, "name": name, "labels": labels});
        if let Some(tm) = team_ {
            b["team"] = json!(tm);
        }
        t.expect("apps.create", &admin, body(b), 201).await;
    }
    let list = |q: &str| t.ok("apps.list", &admin, req().query(q), 200);

    let all = list("").await;
    assert_eq!(ids(&all, "appId"), ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(
        (all["page"].clone(), all["pageSize"].clone(), all["total"].clone()),
        (json!(1), json!(20), json!(5))
    );

    let p2 = list("page=2&pageSize=2").await;
    assert_eq!(ids(&p2, "appId"), ["charlie", "delta"]);
    assert_eq!(
        (p2["page"].clone(), p2["pageSize"].clone(), p2["total"].clone()),
        (json!(2), json!(2), json!(5))
    );
    assert_eq!(ids(&list("page=3&pageSize=2").await, "appId"), ["echo"]);
    assert!(ids(&list("page=9&pageSize=2").await, "appId").is_empty());

    assert_eq!(ids(&list("team=pay").await, "appId"), ["alpha", "bravo"]);
    assert_eq!(ids(&list("team=nobody").await, "appId"), Vec::<String>::new());
    assert_eq!(ids(&list("search=ALPHA").await, "appId"), ["alpha"], "search ignores case");
    assert_eq!(ids(&list("search=ar").await, "appId"), ["charlie"], "search matches the id");
    assert_eq!(ids(&list("search=billing").await, "appId"), ["bravo"], "search matches the name");
    assert_eq!(ids(&list("search=_").await, "appId"), ["bravo"], "LIKE wildcards are literal");
    assert_eq!(ids(&list("search=100%25").await, "appId"), ["delta"]);
    assert_eq!(ids(&list("label=env%3Dprod").await, "appId"), ["alpha", "charlie"]);
    assert_eq!(ids(&list("label=app.kubernetes.io%2Fpart-of%3Dx").await, "appId"), ["echo"]);
    assert_eq!(ids(&list("label=env%3Dprod&team=ops").await, "appId"), ["charlie"], "filters combine");
    let filtered = list("label=env%3Dprod&pageSize=1").await;
    assert_eq!(filtered["total"], 2, "total counts the filtered rows");

    t.invalid("apps.list", &admin, req().query("label=novalue"), &["label"]).await;
    t.invalid("apps.list", &admin, req().query("bogus=1"), &["bogus"]).await;
    t.invalid("apps.list", &admin, req().query("page=x"), &["query"]).await;
    t.stop().await;
}

#[tokio::test]
async fn calls_without_a_valid_token_get_401() {
    let t = TestApp::spawn().await;
    t.fail("apps.list", None, req(), 401, "missing_token").await;
    t.fail("apps.create", None, body(json!({"appId": "x"})), 401, "missing_token").await;
    t.fail("apps.get", Some("garbage"), app_req("x"), 401, "invalid_token").await;
    // Signed by a key auth never published.
    let stranger = sw_testkit::TestKeys::new().token(&t.env.cfg, vec![global(Role::Admin)]);
    t.fail("apps.delete", Some(&stranger), app_req("x"), 401, "invalid_token").await;
    t.stop().await;
}

#[tokio::test]
async fn roles_and_scopes_decide_what_each_caller_may_do() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    for (id, tm) in [("pay-api", "pay"), ("pay-web", "pay"), ("ops-bot", "ops")] {
        t.expect("apps.create", &admin, body(json!({"appId": id, "team": tm})), 201).await;
        t.next_event().await;
    }
    t.expect("apps.create", &admin, body(json!({"appId": "loner"})), 201).await;
    t.next_event().await;

    // Global viewer: reads everything, changes nothing.
    let viewer = t.token(vec![global(Role::Viewer)]);
    assert_eq!(t.ok("apps.list", &viewer, req(), 200).await["total"], 4);
    t.expect("apps.get", &viewer, app_req("ops-bot"), 200).await;
    t.fail("apps.create", Some(&viewer), body(json!({"appId": "v"})), 403, "forbidden").await;
    t.fail("apps.update", Some(&viewer), app_req("ops-bot").json(json!({"name": "n"})), 403, "forbidden")
        .await;
    t.fail("apps.delete", Some(&viewer), app_req("ops-bot"), 403, "forbidden").await;

    // Global operator: may change apps.
    let operator = t.token(vec![global(Role::Operator)]);
    t.expect("apps.update", &operator, app_req("loner").json(json!({"name": "Loner"})), 200).await;
    t.next_event().await;

    // Developer bound to team `pay`.
    let dev = t.token(vec![team(Role::Developer, "pay")]);
    assert_eq!(
        ids(&t.ok("apps.list", &dev, req(), 200).await, "appId"),
        ["pay-api", "pay-web"],
        "only the team's apps"
    );
    assert_eq!(
        ids(&t.ok("apps.list", &dev, req().query("team=ops"), 200).await, "appId"),
        Vec::<String>::new()
    );
    t.expect("apps.get", &dev, app_req("pay-api"), 200).await;
    t.fail("apps.get", Some(&dev), app_req("ops-bot"), 403, "forbidden").await;
    t.fail("apps.get", Some(&dev), app_req("loner"), 403, "forbidden").await;
    t.fail("apps.get", Some(&dev), app_req("missing"), 404, "not_found").await;
    t.expect("apps.create", &dev, body(json!({"appId": "pay-new", "team": "pay"})), 201).await;
    assert_eq!(t.event("appmeta.app.created", "pay-new").await["team"], "pay");
    t.fail("apps.create", Some(&dev), body(json!({"appId": "ops-new", "team": "ops"})), 403, "forbidden")
        .await;
    t.fail("apps.create", Some(&dev), body(json!({"appId": "teamless"})), 403, "forbidden").await;
    t.expect("apps.update", &dev, app_req("pay-web").json(json!({"description": "mine"})), 200).await;
    t.next_event().await;
    t.fail("apps.update", Some(&dev), app_req("pay-web").json(json!({"team": "ops"})), 403, "forbidden")
        .await;
    t.fail("apps.update", Some(&dev), app_req("ops-bot").json(json!({"name": "x"})), 403, "forbidden").await;
    t.fail("apps.delete", Some(&dev), app_req("ops-bot"), 403, "forbidden").await;
    t.expect("apps.delete", &dev, app_req("pay-new"), 204).await;
    t.event("appmeta.app.deleted", "pay-new").await;

    // Viewer of one app: sees exactly that app.
    let app_viewer = t.token(vec![app(Role::Viewer, "ops-bot")]);
    assert_eq!(ids(&t.ok("apps.list", &app_viewer, req(), 200).await, "appId"), ["ops-bot"]);
    t.expect("apps.get", &app_viewer, app_req("ops-bot"), 200).await;
    t.fail("apps.get", Some(&app_viewer), app_req("pay-api"), 403, "forbidden").await;
    t.fail("apps.update", Some(&app_viewer), app_req("ops-bot").json(json!({"name": "x"})), 403, "forbidden")
        .await;

    // Developer of one app plus viewer of a team: the union of both.
    let mixed = t.token(vec![app(Role::Developer, "loner"), team(Role::Viewer, "ops")]);
    assert_eq!(ids(&t.ok("apps.list", &mixed, req(), 200).await, "appId"), ["loner", "ops-bot"]);
    t.expect("apps.update", &mixed, app_req("loner").json(json!({"description": "x"})), 200).await;
    t.next_event().await;

    // No role at all.
    let nobody = t.token(vec![]);
    t.fail("apps.list", Some(&nobody), req(), 403, "forbidden").await;
    t.fail("apps.get", Some(&nobody), app_req("missing"), 403, "forbidden").await;
    t.fail("apps.create", Some(&nobody), body(json!({"appId": "x"})), 403, "forbidden").await;

    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn invalid_requests_list_every_bad_field() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    let mut labels = serde_json::Map::new();
    labels.insert("bad key".into(), json!("v"));
    labels.insert("long".into(), json!("v".repeat(256)));
    t.invalid(
        "apps.create",
        &admin,
        body(json!({"appId": "ok", "name": "", "description": "d".repeat(4097), "labels": labels})),
        &["name", "description", "labels.bad key", "labels.long"],
    )
    .await;
    t.invalid("apps.create", &admin, body(json!({"appId": "Not_A_Label"})), &["appId"]).await;
    t.invalid("apps.create", &admin, body(json!({"appId": "ok", "team": "Bad Team"})), &["team"]).await;
    t.invalid("apps.create", &admin, body(json!({"name": "no id"})), &["appId"]).await;
    t.invalid("apps.create", &admin, body(json!({"appId": "ok", "colour": "red"})), &["colour"]).await;
    t.fail("apps.create", Some(&admin), req(), 400, "missing_body").await;
    let many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    t.invalid("apps.create", &admin, body(json!({"appId": "ok", "labels": many})), &["labels"]).await;

    t.invalid("apps.get", &admin, app_req("../etc"), &["appId"]).await;
    t.invalid("apps.get", &admin, req(), &["appId"]).await;
    t.invalid("apps.delete", &admin, app_req("UPPER"), &["appId"]).await;

    t.expect("apps.create", &admin, body(json!({"appId": "ok"})), 201).await;
    t.event("appmeta.app.created", "ok").await;
    t.invalid(
        "apps.update",
        &admin,
        app_req("ok").json(json!({"name": "n".repeat(129), "description": "d".repeat(4097)})),
        &["name", "description"],
    )
    .await;
    t.invalid("apps.update", &admin, app_req("ok").json(json!({"appId": "other"})), &["appId"]).await;
    t.invalid("apps.update", &admin, app_req("Bad").json(json!({"name": "x"})), &["appId"]).await;
    // None of the failures above changed anything.
    assert_eq!(t.ok("apps.get", &admin, app_req("ok"), 200).await["version"], 1);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn duplicate_ids_conflict_even_when_created_concurrently() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    t.expect("apps.create", &admin, body(json!({"appId": "dup"})), 201).await;
    t.event("appmeta.app.created", "dup").await;
    t.fail(
        "apps.create",
        Some(&admin),
        body(json!({"appId": "dup", "name": "again"})),
        409,
        "already_exists",
    )
    .await;

    let calls = (0..8).map(|i| {
        t.call("apps.create", Some(&admin), body(json!({"appId": "race", "name": format!("n{i}")})))
    });
    let results = futures::future::join_all(calls).await;
    let created = results.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status == 201)).count();
    let conflicts = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.status() == 409 && e.code() == "already_exists"))
        .count();
    assert_eq!((created, conflicts), (1, 7), "{results:?}");
    let winner = results.into_iter().find_map(Result::ok).unwrap().body.unwrap();
    assert_eq!(t.event("appmeta.app.created", "race").await, winner);
    t.no_event().await;
    t.stop().await;
}
