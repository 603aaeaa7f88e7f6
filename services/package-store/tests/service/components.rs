//! `packages.components`: the workload of each component of a stored package, read from its
//! component zip in S3, authorized like `packages.get`.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use sw_contracts::auth::{Role, RoleBinding};

use crate::common::health_fixture;
use crate::imports::health_package;
use crate::support::{TestApp, app_binding, in_app, package};

const OP: &str = "packages.components";

/// `spec.workload` of a fixture component's `meta.yaml`, read independently of the service.
fn fixture_workload(folder: &str) -> Value {
    let text = std::fs::read_to_string(health_fixture().join(folder).join("meta.yaml")).unwrap();
    let meta: Value = serde_yaml::from_str(&text).unwrap();
    meta["spec"]["workload"].clone()
}

#[tokio::test]
async fn each_component_answers_its_workload_in_package_order() {
    let t = TestApp::spawn().await;
    let out = t.imported("health", "", &health_package()).await;
    let comps = t.ok(OP, package("health", &out["id"]), 200).await;
    let comps = comps.as_array().expect("a list");
    let labels: Vec<(&str, &str, &str)> = comps
        .iter()
        .map(|c| {
            (
                c["componentType"].as_str().unwrap(),
                c["componentName"].as_str().unwrap(),
                c["packageVersion"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, &str)> = out["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["componentType"].as_str().unwrap(),
                c["componentName"].as_str().unwrap(),
                c["packageVersion"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels, expected, "the package's component order");
    assert_eq!(labels[0], ("K8S_MICROSERVICE", "health", "22.5.1+20231013224500845346"));
    assert_eq!(labels[2].1, "system-env@system-env");

    let health = &comps[0]["workload"];
    assert_eq!(health, &fixture_workload("K8S_MICROSERVICE_health.zip.dir"));
    assert_eq!(health["kind"], "Microservice");
    assert_eq!(health["spec"]["containers"][0]["name"], "health");
    assert_eq!(health["spec"]["env"]["DATA_DB_HOST"], "{{ Global.DATA_DB_HOST }}");
    let env = &comps[2]["workload"];
    assert_eq!(env, &fixture_workload("RESOURCE_ADDON_system-env@system-env.zip.dir"));
    assert_eq!(env["kind"], "Config");
    // The stand-ins for the folders the fixture lacks have `spec: {}`: no workload.
    for i in [1, 3, 4] {
        assert_eq!(comps[i]["componentType"], "INTERNAL_ADDON");
        assert_eq!(comps[i]["workload"], Value::Null, "{}", comps[i]);
        assert!(comps[i].as_object().unwrap().contains_key("workload"), "null is written out");
    }
    t.stop().await;
}

#[tokio::test]
async fn a_second_read_is_answered_from_the_cache_and_a_missing_object_is_503() {
    let t = TestApp::spawn().await;
    let out = t.imported("health", "", &health_package()).await;
    let first = t.ok(OP, package("health", &out["id"]), 200).await;
    // With every component zip gone from the bucket, only the cache can answer.
    let components: Vec<String> =
        t.keys().await.into_iter().filter(|k| k.starts_with("components/")).collect();
    assert_eq!(components.len(), 5);
    for k in &components {
        t.s3.delete_object().bucket(&t.env.cfg.s3.bucket).key(k).send().await.expect("delete");
    }
    assert_eq!(t.ok(OP, package("health", &out["id"]), 200).await, first);
    t.stop().await;

    // A fresh service has nothing cached: the missing object is S3 failing the read.
    let t = TestApp::spawn().await;
    let out = t.imported("health", "", &health_package()).await;
    let key = t.keys().await.into_iter().find(|k| k.contains("/K8S_MICROSERVICE/")).unwrap();
    t.s3.delete_object().bucket(&t.env.cfg.s3.bucket).key(&key).send().await.expect("delete");
    let e = t.fail(OP, package("health", &out["id"]), 503, "storage_unavailable").await;
    assert!(e.problem().retry_after.is_some());
    t.stop().await;
}

#[tokio::test]
async fn unknown_importing_and_invalid_packages_are_refused() {
    let t = TestApp::spawn().await;
    let out = t.imported("health", "", &health_package()).await;
    let id = out["id"].as_i64().unwrap();
    t.fail(OP, package("health", &json!(id + 1000)), 404, "package_not_found").await;
    // Another app's id for the same package: not found in that app.
    t.fail(OP, package("demo", &out["id"]), 404, "package_not_found").await;
    t.fail(OP, in_app("health").param("appPackageId", "0"), 422, "validation_failed").await;
    t.fail(OP, in_app("health"), 422, "validation_failed").await;
    // A package still being imported does not exist yet, as for `packages.get`.
    t.db.execute(Statement::from_string(
        DbBackend::MySql,
        format!("UPDATE app_package SET status = 'IMPORTING' WHERE id = {id}"),
    ))
    .await
    .unwrap();
    t.fail("packages.get", package("health", &out["id"]), 404, "package_not_found").await;
    t.fail(OP, package("health", &out["id"]), 404, "package_not_found").await;
    t.stop().await;
}

#[tokio::test]
async fn callers_are_authorized_like_packages_get() {
    let t = TestApp::spawn().await;
    let out = t.imported("health", "", &health_package()).await;
    let target = || package("health", &out["id"]);

    let e = t.call(OP, None, target()).await.unwrap_err();
    assert_eq!(e.status(), 401);
    let other = t.token(vec![app_binding(Role::Viewer, "other")]);
    let e = t.call(OP, Some(&other), target()).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (403, "forbidden"));
    assert_eq!(t.call("packages.get", Some(&other), target()).await.unwrap_err().status(), 403);

    for token in
        [t.token(vec![app_binding(Role::Viewer, "health")]), t.token(vec![RoleBinding::global(Role::Viewer)])]
    {
        let r = t.call(OP, Some(&token), target()).await.expect("a viewer of the app reads it");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.unwrap().as_array().unwrap().len(), 5);
    }
    t.stop().await;
}
