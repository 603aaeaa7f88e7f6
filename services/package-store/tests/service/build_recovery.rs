//! Build tasks after something went wrong: a worker that crashed mid-build (with and without
//! having stored the package), a version taken meanwhile, deadlines, tasks taken too often, and
//! the janitor removing the build inputs a crash kept.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use crate::build_support::{LeftBehind, YAML, microservice_yaml};
use crate::common::demo_package;
use crate::support::TestApp;

const API: &str = "componentType: K8S_MICROSERVICE\ncomponentName: api\noptions:\n  containers: [{name: api, image: 'reg.example.com/api:1'}]\n";

fn crashed(version: &str, attempts: i32) -> LeftBehind<'_> {
    LeftBehind {
        app: "demo",
        status: "RUNNING",
        version,
        yaml: API,
        attempts,
        lease: Some(("crashed-worker", -5)),
        deadline_in: 600,
    }
}

#[tokio::test]
async fn a_task_left_running_by_a_crashed_worker_is_taken_over_and_succeeds() {
    let mut t = TestApp::spawn().await;
    let id = t.insert_task(crashed("4.0.0+1", 1)).await;
    let subject = format!("demo/tasks/{id}");
    let running = t.event("package.task.running", &subject).await;
    assert_eq!(running["status"], "RUNNING");
    let built = t.event("package.app.built", "demo/4.0.0+1").await;
    let done = t.event("package.task.succeeded", &subject).await;
    assert_eq!(done["appPackageId"], built["id"]);
    assert_eq!(t.wait_task("demo", &json!(id), "SUCCESS").await, done);
    let sql = format!("SELECT attempts AS n FROM package_task WHERE id = {id}");
    assert_eq!(t.sql_i64(&sql, "n").await, 2);
    let owner =
        format!("SELECT COUNT(*) AS n FROM package_task WHERE id = {id} AND lease_owner <> 'crashed-worker'");
    assert_eq!(t.sql_i64(&owner, "n").await, 1);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn a_takeover_adopts_the_package_its_crashed_predecessor_stored() {
    let mut t = TestApp::spawn().await;
    let task = t.created_task("demo", "version=5.0.0", microservice_yaml("api").as_bytes(), YAML).await;
    let first = t.wait_task("demo", &task["id"], "SUCCESS").await;
    for _ in 0..4 {
        t.next_event().await;
    }
    // As if the worker had died after the import committed and before it marked the task.
    t.sql(&format!(
        "UPDATE package_task SET status = 'RUNNING', app_package_id = NULL, lease_owner = 'crashed-worker', \
         lease_until = UTC_TIMESTAMP(6) - INTERVAL 5 SECOND, version = version + 1 WHERE id = {}",
        task["id"]
    ))
    .await;
    let subject = format!("demo/tasks/{}", task["id"]);
    t.event("package.task.running", &subject).await;
    // The rebuild gives the same bytes, finds them stored, and takes that package: no new one.
    let done = t.event("package.task.succeeded", &subject).await;
    assert_eq!(done["appPackageId"], first["appPackageId"]);
    assert_eq!(t.ok("packages.list", crate::support::in_app("demo"), 200).await["total"], 1);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn a_takeover_whose_version_was_taken_meanwhile_fails() {
    let mut t = TestApp::spawn().await;
    let imported = t.imported("demo", "", &demo_package(None)).await;
    t.event("package.app.imported", "demo/1.0.0+1").await;
    let id = t.insert_task(crashed("1.0.0+1", 1)).await;
    let subject = format!("demo/tasks/{id}");
    t.event("package.task.running", &subject).await;
    let failed = t.event("package.task.failed", &subject).await;
    let message = failed["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("package_version_exists: "), "{message}");
    assert_eq!(t.wait_task("demo", &json!(id), "FAILURE").await, failed);
    // The package that holds the version is left as it was.
    let pkg = t.ok("packages.get", crate::support::package("demo", &imported["id"]), 200).await;
    assert_eq!(pkg, imported);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn tasks_past_their_deadline_end_in_timeout_without_running() {
    let mut t = TestApp::spawn().await;
    let waiting = t
        .insert_task(LeftBehind {
            status: "CREATED",
            lease: None,
            attempts: 0,
            deadline_in: -1,
            ..crashed("6.0.0+1", 0)
        })
        .await;
    let abandoned = t.insert_task(LeftBehind { deadline_in: -1, ..crashed("6.0.1+1", 1) }).await;
    for id in [waiting, abandoned] {
        let failed = t.wait_task("demo", &json!(id), "FAILURE").await;
        let message = failed["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("Timeout"), "{message}");
        assert_eq!(failed["appPackageId"], Value::Null);
    }
    // Each ends with its failure only: neither was started.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let ev = t.next_event().await;
        assert_eq!(ev.name(), "package.task.failed");
        seen.push(ev.subject.unwrap());
    }
    seen.sort();
    let mut want = vec![format!("demo/tasks/{waiting}"), format!("demo/tasks/{abandoned}")];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(t.ok("packages.list", crate::support::in_app("demo"), 200).await["total"], 0);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn a_task_taken_too_often_fails() {
    let mut t = TestApp::spawn().await;
    let id = t.insert_task(crashed("7.0.0+1", 3)).await;
    let failed = t.event("package.task.failed", &format!("demo/tasks/{id}")).await;
    assert!(failed["errorMessage"].as_str().unwrap().starts_with("attempts_exhausted"), "{failed}");
    assert_eq!(t.wait_task("demo", &json!(id), "FAILURE").await, failed);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn the_janitor_removes_build_inputs_of_ended_and_abandoned_tasks() {
    let t = TestApp::spawn().await;
    // A live task (held by another worker), an ended one, and no task at all.
    let live =
        t.insert_task(LeftBehind { lease: Some(("other-worker", 600)), ..crashed("8.0.0+1", 1) }).await;
    let ended = t.insert_task(LeftBehind { status: "FAILURE", lease: None, ..crashed("8.0.1+1", 1) }).await;
    let keys = [
        format!("tasks/{live}/charts/web.tgz"),
        format!("tasks/{ended}/charts/web.tgz"),
        "tasks/999999/charts/web.tgz".to_owned(),
    ];
    let bucket = t.env.cfg.s3.bucket.clone();
    // The bucket exists once the service started.
    for key in &keys {
        t.s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(b"chart"))
            .send()
            .await
            .unwrap();
    }
    // A recent object of a task that does not exist may belong to a create still committing.
    // (The start-up sweep may be running too and take the ended task's object first.)
    t.janitor.sweep(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(t.task_objects().await, [keys[0].clone(), keys[2].clone()]);
    let report = t.janitor.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(report.task_objects, 1);
    assert_eq!(t.task_objects().await, [keys[0].clone()]);
    t.stop().await;
}
