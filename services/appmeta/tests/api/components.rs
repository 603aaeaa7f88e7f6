//! Components: lifecycle and events for every type, the fixed type, lists, app deletion
//! cascading to components, validation of specs and bodies, scopes.

use serde_json::{Value, json};
use sw_contracts::auth::Role;

use crate::support::{Json, TestApp, body, global, ids, req, team};

fn comp_req(app: &str, name: &str) -> sw_bus::RpcEnvelope {
    req().param("appId", app).param("componentName", name)
}

fn in_app(app: &str) -> sw_bus::RpcEnvelope {
    req().param("appId", app)
}

fn microservice(name: &str) -> Value {
    json!({
        "componentName": name,
        "description": "the API",
        "componentType": "K8S_MICROSERVICE",
        "spec": {
            "containers": [{
                "name": "api",
                "image": "registry.example.com/pay/api:1.4.2",
                "env": {"MODE": "prod"},
                "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}],
                "resources": {"limits": {"cpu": "1"}}
            }],
            "replicas": 3
        }
    })
}

async fn with_app(t: &mut TestApp, id: &str, team_: &str) {
    let admin = t.admin.clone();
    t.expect("apps.create", &admin, body(json!({"appId": id, "team": team_})), 201).await;
    t.event("appmeta.app.created", id).await;
}

#[tokio::test]
async fn component_lifecycle_publishes_matching_events() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_app(&mut t, "pay", "payments").await;

    let created = t.expect("components.create", &admin, in_app("pay").json(microservice("api")), 201).await;
    assert_eq!(created.headers.get("Location").map(String::as_str), Some("/v1/apps/pay/components/api"));
    let out = created.body.unwrap();
    assert_eq!(out["appId"], "pay");
    assert_eq!(out["componentName"], "api");
    assert_eq!(out["componentType"], "K8S_MICROSERVICE");
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["spec"]["containers"][0]["ports"][1]["protocol"], "UDP");
    assert_eq!(out["version"], 1);
    assert_eq!(t.event("appmeta.component.created", "pay/api").await, out);
    assert_eq!(t.ok("components.get", &admin, comp_req("pay", "api"), 200).await, out);

    let job = json!({"componentName": "migrate", "componentType": "K8S_JOB",
        "spec": {"containers": [{"name": "m", "image": "r/m:1", "command": ["run"]}], "backoffLimit": 2}});
    let job_out = t.ok("components.create", &admin, in_app("pay").json(job), 201).await;
    assert_eq!(job_out["spec"]["backoffLimit"], 2);
    assert_eq!(t.event("appmeta.component.created", "pay/migrate").await, job_out);
    let helm = json!({"componentName": "db", "componentType": "HELM",
        "spec": {"chartName": "mysql", "repoUrl": "oci://registry.example.com/charts", "chartVersion": "9.1.0", "values": {"auth": {"db": "pay"}}}});
    let helm_out = t.ok("components.create", &admin, in_app("pay").json(helm), 201).await;
    assert_eq!(helm_out["spec"]["values"], json!({"auth": {"db": "pay"}}));
    assert_eq!(t.event("appmeta.component.created", "pay/db").await, helm_out);

    // Replace the spec, keeping the type (stated or not).
    let new_spec = json!({"containers": [{"name": "api", "image": "registry.example.com/pay/api:1.5.0"}]});
    let updated = t
        .ok(
            "components.update",
            &admin,
            comp_req("pay", "api").json(json!({"componentType": "K8S_MICROSERVICE", "spec": new_spec})),
            200,
        )
        .await;
    assert_eq!(updated["spec"]["containers"][0]["image"], "registry.example.com/pay/api:1.5.0");
    assert_eq!(updated["description"], "the API", "absent fields stay");
    assert_eq!(updated["version"], 2);
    assert_eq!(t.event("appmeta.component.updated", "pay/api").await, updated);
    let described = t
        .ok("components.update", &admin, comp_req("pay", "db").json(json!({"description": "state"})), 200)
        .await;
    assert_eq!(described["spec"], helm_out["spec"]);
    assert_eq!(t.event("appmeta.component.updated", "pay/db").await, described);

    // The type never changes.
    t.invalid(
        "components.update",
        &admin,
        comp_req("pay", "db")
            .json(json!({"componentType": "K8S_JOB", "spec": {"containers": [{"name": "x", "image": "y"}]}})),
        &["componentType", "spec"],
    )
    .await;
    t.invalid(
        "components.update",
        &admin,
        comp_req("pay", "db").json(json!({"componentType": "K8S_JOB"})),
        &["componentType"],
    )
    .await;

    t.expect("components.delete", &admin, comp_req("pay", "migrate"), 204).await;
    assert_eq!(
        t.event("appmeta.component.deleted", "pay/migrate").await,
        json!({"appId": "pay", "componentName": "migrate", "componentType": "K8S_JOB"})
    );
    t.fail("components.get", Some(&admin), comp_req("pay", "migrate"), 404, "not_found").await;
    t.fail("components.delete", Some(&admin), comp_req("pay", "migrate"), 404, "not_found").await;
    t.fail(
        "components.update",
        Some(&admin),
        comp_req("pay", "migrate").json(json!({"description": "x"})),
        404,
        "not_found",
    )
    .await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn deleting_an_app_deletes_its_components_in_one_transaction() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_app(&mut t, "pay", "payments").await;
    with_app(&mut t, "other", "payments").await;
    for name in ["web", "api"] {
        t.expect("components.create", &admin, in_app("pay").json(microservice(name)), 201).await;
        t.next_event().await;
    }
    t.expect("components.create", &admin, in_app("other").json(microservice("keep")), 201).await;
    t.next_event().await;

    t.expect("apps.delete", &admin, req().param("appId", "pay"), 204).await;
    let first = t.event("appmeta.component.deleted", "pay/api").await;
    assert_eq!(first, json!({"appId": "pay", "componentName": "api", "componentType": "K8S_MICROSERVICE"}));
    t.event("appmeta.component.deleted", "pay/web").await;
    t.event("appmeta.app.deleted", "pay").await;
    t.no_event().await;

    t.fail("components.list", Some(&admin), in_app("pay"), 404, "not_found").await;
    t.fail("components.create", Some(&admin), in_app("pay").json(microservice("api")), 404, "not_found")
        .await;
    // Recreating the app starts empty: nothing was left behind.
    t.expect("apps.create", &admin, body(json!({"appId": "pay"})), 201).await;
    assert_eq!(t.ok("components.list", &admin, in_app("pay"), 200).await["total"], 0);
    assert_eq!(ids(&t.ok("components.list", &admin, in_app("other"), 200).await, "componentName"), ["keep"]);
    t.stop().await;
}

#[tokio::test]
async fn list_paginates_and_filters_by_type() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_app(&mut t, "pay", "payments").await;
    for name in ["c1", "c2", "c3"] {
        t.expect("components.create", &admin, in_app("pay").json(microservice(name)), 201).await;
    }
    let helm = json!({"componentName": "h1", "componentType": "HELM", "spec": {"chartName": "redis"}});
    t.expect("components.create", &admin, in_app("pay").json(helm), 201).await;

    let all = t.ok("components.list", &admin, in_app("pay"), 200).await;
    assert_eq!(ids(&all, "componentName"), ["c1", "c2", "c3", "h1"]);
    let p2 = t.ok("components.list", &admin, in_app("pay").query("page=2&pageSize=3"), 200).await;
    assert_eq!(ids(&p2, "componentName"), ["h1"]);
    assert_eq!(
        (p2["total"].clone(), p2["page"].clone(), p2["pageSize"].clone()),
        (json!(4), json!(2), json!(3))
    );
    let helms = t.ok("components.list", &admin, in_app("pay").query("componentType=HELM"), 200).await;
    assert_eq!(ids(&helms, "componentName"), ["h1"]);
    assert_eq!(helms["total"], 1);
    let jobs = t.ok("components.list", &admin, in_app("pay").query("componentType=K8S_JOB"), 200).await;
    assert_eq!(jobs["total"], 0);
    t.fail(
        "components.list",
        Some(&admin),
        in_app("pay").query("componentType=LAMBDA"),
        422,
        "validation_failed",
    )
    .await;
    t.invalid("components.list", &admin, in_app("pay").query("sort=name"), &["sort"]).await;
    t.invalid("components.list", &admin, in_app("No"), &["appId"]).await;
    t.fail("components.list", Some(&admin), in_app("missing"), 404, "not_found").await;
    t.stop().await;
}

#[tokio::test]
async fn invalid_component_bodies_list_every_problem() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_app(&mut t, "pay", "payments").await;

    let bad = json!({
        "componentName": "Bad Name",
        "componentType": "K8S_MICROSERVICE",
        "colour": "red",
        "spec": {
            "replicas": 5000,
            "containers": [
                {"name": "a", "image": "has space", "ports": [{"containerPort": 0, "protocol": "HTTP"}]},
                {"name": "a", "image": ""}
            ]
        }
    });
    t.invalid(
        "components.create",
        &admin,
        in_app("pay").json(bad),
        &[
            "colour",
            "componentName",
            "spec.containers[0].image",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[0].protocol",
            "spec.containers[1].name",
            "spec.containers[1].image",
            "spec.replicas",
        ],
    )
    .await;
    let helm = json!({"componentName": "h", "componentType": "HELM", "spec": {"chartName": "", "repoUrl": "git://x", "values": "a: 1"}});
    t.invalid(
        "components.create",
        &admin,
        in_app("pay").json(helm),
        &["spec.chartName", "spec.repoUrl", "spec.values"],
    )
    .await;
    let job = json!({"componentName": "j", "componentType": "K8S_JOB", "spec": {"containers": [], "backoffLimit": 101}});
    t.invalid(
        "components.create",
        &admin,
        in_app("pay").json(job),
        &["spec.containers", "spec.backoffLimit"],
    )
    .await;
    let typo = json!({"componentName": "j", "componentType": "HELM", "spec": {"chartName": "x", "chart_version": "1"}});
    let e =
        t.fail("components.create", Some(&admin), in_app("pay").json(typo), 422, "validation_failed").await;
    assert!(e.problem().errors[0].message.contains("chart_version"), "{e}");
    t.invalid(
        "components.create",
        &admin,
        in_app("pay").json(json!({})),
        &["componentName", "componentType", "spec"],
    )
    .await;
    t.invalid("components.get", &admin, comp_req("pay", "Bad"), &["componentName"]).await;

    t.expect("components.create", &admin, in_app("pay").json(microservice("api")), 201).await;
    t.event("appmeta.component.created", "pay/api").await;
    t.fail("components.create", Some(&admin), in_app("pay").json(microservice("api")), 409, "already_exists")
        .await;
    t.invalid(
        "components.update",
        &admin,
        comp_req("pay", "api").json(json!({"componentName": "x", "extra": 1})),
        &["componentName", "extra"],
    )
    .await;
    t.invalid(
        "components.update",
        &admin,
        comp_req("pay", "api").json(json!({"spec": {"containers": [{"name": "api", "image": "a b"}]}})),
        &["spec.containers[0].image"],
    )
    .await;
    assert_eq!(t.ok("components.get", &admin, comp_req("pay", "api"), 200).await["version"], 1);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn components_follow_the_scope_of_their_app() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin.clone();
    with_app(&mut t, "pay", "payments").await;
    with_app(&mut t, "ops", "operations").await;
    t.expect("components.create", &admin, in_app("ops").json(microservice("bot")), 201).await;
    t.next_event().await;

    let dev = t.token(vec![team(Role::Developer, "payments")]);
    t.expect("components.create", &dev, in_app("pay").json(microservice("api")), 201).await;
    t.event("appmeta.component.created", "pay/api").await;
    t.expect("components.update", &dev, comp_req("pay", "api").json(json!({"description": "x"})), 200).await;
    t.next_event().await;
    t.expect("components.list", &dev, in_app("pay"), 200).await;
    t.fail("components.list", Some(&dev), in_app("ops"), 403, "forbidden").await;
    t.fail("components.get", Some(&dev), comp_req("ops", "bot"), 403, "forbidden").await;
    t.fail("components.create", Some(&dev), in_app("ops").json(microservice("x")), 403, "forbidden").await;
    t.fail(
        "components.update",
        Some(&dev),
        comp_req("ops", "bot").json(json!({"description": "x"})),
        403,
        "forbidden",
    )
    .await;
    t.fail("components.delete", Some(&dev), comp_req("ops", "bot"), 403, "forbidden").await;

    let viewer = t.token(vec![global(Role::Viewer)]);
    t.expect("components.get", &viewer, comp_req("ops", "bot"), 200).await;
    t.fail("components.create", Some(&viewer), in_app("ops").json(microservice("x")), 403, "forbidden").await;
    t.fail("components.delete", Some(&viewer), comp_req("ops", "bot"), 403, "forbidden").await;
    t.fail("components.get", None, comp_req("ops", "bot"), 401, "missing_token").await;
    t.fail("components.delete", Some("not.a.jwt"), comp_req("ops", "bot"), 401, "invalid_token").await;

    t.expect("components.delete", &dev, comp_req("pay", "api"), 204).await;
    t.event("appmeta.component.deleted", "pay/api").await;
    t.no_event().await;
    t.stop().await;
}
