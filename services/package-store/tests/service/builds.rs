//! Build tasks that succeed (YAML, multipart with a Helm chart, JSON), version choice, and every
//! refusal that happens before a task exists (which leaves nothing behind).

use std::io::Cursor;

use serde_json::{Value, json};
use sw_contracts::AppId;
use sw_contracts::auth::Role;
use sw_package_store::{Limits, inspect_app_zip};

use crate::build_support::{Form, JSON, YAML, chart_files, chart_tgz, microservice_yaml};
use crate::common::demo_package;
use crate::support::{TRACEPARENT, TestApp, app_binding, entry, in_app, package, sha256};

/// The strict inspection a built package must pass.
fn strict() -> Limits {
    Limits { strict_md5: true, ..Limits::default() }
}

#[tokio::test]
async fn a_yaml_build_goes_created_running_success_and_its_package_downloads() {
    let mut t = TestApp::spawn().await;
    let yaml = microservice_yaml("api");
    let task = t.created_task("demo", "tags=release%3Dstable", yaml.as_bytes(), YAML).await;
    let version = task["packageVersion"].as_str().unwrap().to_owned();
    assert!(version.starts_with("1.0.0+") && version.len() == "1.0.0+".len() + 20, "{version}");
    assert_eq!(task["tags"], json!(["release=stable"]));
    assert_eq!(task["components"], json!([{"componentType": "K8S_MICROSERVICE", "componentName": "api"}]));
    assert_eq!((&task["createdBy"], &task["appPackageId"]), (&json!("user:tester"), &Value::Null));

    // Every transition is announced, in order, with the caller's trace.
    let subject = format!("demo/tasks/{}", task["id"]);
    assert_eq!(t.event("package.task.created", &subject).await, task);
    let running = t.next_event().await;
    assert_eq!(
        (running.name(), running.subject.as_deref()),
        ("package.task.running", Some(subject.as_str()))
    );
    assert_eq!(running.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(running.data["status"], "RUNNING");
    let built = t.event("package.app.built", &format!("demo/{version}")).await;
    let succeeded = t.event("package.task.succeeded", &subject).await;
    assert_eq!(succeeded["appPackageId"], built["id"]);
    let done = t.wait_task("demo", &task["id"], "SUCCESS").await;
    assert_eq!(done, succeeded);
    assert_eq!(done["errorMessage"], Value::Null);

    let pkg = t.ok("packages.get", package("demo", &done["appPackageId"]), 200).await;
    assert_eq!(pkg, built);
    assert_eq!((&pkg["source"], &pkg["packageVersion"]), (&json!("BUILD"), &json!(version)));
    assert_eq!((&pkg["createdBy"], &pkg["packageCreator"]), (&json!("user:tester"), &json!("user:tester")));
    assert_eq!(pkg["tags"], json!(["release=stable"]));
    assert_eq!(pkg["components"][0]["md5Status"], "MATCHED");
    assert_eq!(pkg["components"][0]["packageVersion"], json!(version));

    let zip = t.download("demo", &pkg["id"]).await;
    assert_eq!(sha256(&zip), pkg["sha256"].as_str().unwrap());
    let inspected =
        inspect_app_zip(Cursor::new(&zip), Some(&AppId::parse("demo").unwrap()), &strict()).unwrap();
    assert_eq!(inspected.meta.package_version, version);
    let component = entry(&zip, "K8S_MICROSERVICE_api.zip");
    let meta = String::from_utf8(entry(&component, "meta.yaml")).unwrap();
    assert!(meta.contains("reg.example.com/api:1.0") && meta.contains("{{ Global.DB_HOST }}"), "{meta}");

    let list = t.tasks("demo", "").await;
    assert_eq!((&list["total"], &list["items"][0]), (&json!(1), &done));
    assert_eq!(t.task_objects().await, Vec::<String>::new());
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn a_multipart_build_takes_a_helm_chart_and_text_parts() {
    let mut t = TestApp::spawn().await;
    // As swcli sends it: the build.yaml as written (chartPath included) and the packed folder.
    let spec = format!(
        "componentType: HELM\ncomponentName: web\noptions:\n  chartPath: charts/web\n  values: {{replicas: 3}}\n---\n{}",
        "componentType: K8S_JOB\ncomponentName: seed\noptions:\n  job: {name: seed, image: 'reg.example.com/seed:2'}\n"
    );
    let (body, ct) = Form::default()
        .file("build.yaml", "build.yaml", YAML, spec.as_bytes())
        .file("chart.web", "web.tgz", "application/gzip", &chart_tgz("web"))
        .text("version", "2.0.0")
        .text("tags", "release=stable, team=web")
        .finish();
    let task = t.created_task("demo", "", &body, &ct).await;
    let version = task["packageVersion"].as_str().unwrap().to_owned();
    assert!(version.starts_with("2.0.0+"), "{version}");
    assert_eq!(task["tags"], json!(["release=stable", "team=web"]));
    assert_eq!(
        task["components"],
        json!([{"componentType": "HELM", "componentName": "web"}, {"componentType": "K8S_JOB", "componentName": "seed"}])
    );
    let done = t.wait_task("demo", &task["id"], "SUCCESS").await;
    let pkg = t.ok("packages.get", package("demo", &done["appPackageId"]), 200).await;
    let labels: Vec<String> = pkg["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}|{}", c["componentType"].as_str().unwrap(), c["componentName"].as_str().unwrap()))
        .collect();
    assert_eq!(labels, ["HELM|web", "K8S_JOB|seed"]);

    let zip = t.download("demo", &pkg["id"]).await;
    inspect_app_zip(Cursor::new(&zip), None, &strict()).unwrap();
    let helm = entry(&zip, "HELM_web.zip");
    for (path, bytes) in chart_files("web") {
        let inside = path.replacen("web/", "chart/", 1);
        assert_eq!(entry(&helm, &inside), bytes, "{inside}");
    }
    // The chart upload is deleted once the task ended.
    t.wait_no_task_objects().await;
    for (name, subject) in [
        ("package.task.created", format!("demo/tasks/{}", task["id"])),
        ("package.task.running", format!("demo/tasks/{}", task["id"])),
        ("package.app.built", format!("demo/{version}")),
        ("package.task.succeeded", format!("demo/tasks/{}", task["id"])),
    ] {
        t.event(name, &subject).await;
    }
    t.stop().await;
}

#[tokio::test]
async fn a_json_body_builds_and_must_agree_with_the_query() {
    let t = TestApp::spawn().await;
    let body = json!({
        "version": "0.3.0",
        "tags": ["json"],
        "components": [{"componentType": "K8S_JOB", "componentName": "migrate",
                        "options": {"containers": [{"name": "migrate", "image": "reg.example.com/migrate:3"}]}},
                       {"componentType": "HELM", "componentName": "redis",
                        "options": {"repoUrl": "https://charts.example.com", "chartName": "redis",
                                    "chartVersion": "17.0.1"}}]
    })
    .to_string();
    let task = t.created_task("demo", "version=0.3.0", body.as_bytes(), JSON).await;
    assert!(task["packageVersion"].as_str().unwrap().starts_with("0.3.0+"), "{task}");
    assert_eq!(task["tags"], json!(["json"]));
    let done = t.wait_task("demo", &task["id"], "SUCCESS").await;
    let pkg = t.ok("packages.get", package("demo", &done["appPackageId"]), 200).await;
    assert_eq!(
        (&pkg["components"][0]["componentType"], &pkg["components"][1]["componentType"]),
        (&json!("K8S_JOB"), &json!("HELM"))
    );
    // A chart from a repository is named, not carried.
    let zip = t.download("demo", &pkg["id"]).await;
    let helm = String::from_utf8(entry(&entry(&zip, "HELM_redis.zip"), "meta.yaml")).unwrap();
    assert!(helm.contains("https://charts.example.com") && helm.contains("17.0.1"), "{helm}");

    let e = t.refused_task("demo", "version=0.4.0", body.as_bytes(), JSON, 422, "validation_failed").await;
    assert_eq!(e.problem().errors[0].field, "version");
    t.refused_task("demo", "", b"{\"components\": [", JSON, 400, "malformed_json").await;
    let e =
        t.refused_task("demo", "", br#"{"components": [], "extra": 1}"#, JSON, 422, "invalid_build").await;
    assert_eq!(e.problem().errors[0].field, "extra");
    let e = t.refused_task("demo", "", br#"{"components": []}"#, JSON, 422, "invalid_build").await;
    assert_eq!(e.problem().errors[0].field, "components");
    assert_eq!(t.tasks("demo", "").await["total"], 1);
    t.stop().await;
}

/// The health fixture's build.yaml with every `${VAR}` given a value.
fn health_build_yaml() -> String {
    let path = crate::common::health_fixture().join("../api/build.yaml.tpl");
    let mut text = std::fs::read_to_string(path).unwrap();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').unwrap();
        text.replace_range(start..=end, "value");
    }
    text
}

#[tokio::test]
async fn image_builds_are_refused_with_every_field_and_nothing_is_stored() {
    let mut t = TestApp::spawn().await;
    let yaml = health_build_yaml();
    assert!(!yaml.contains("${") && yaml.contains("imagePushRegistry: value"));
    let e = t.refused_task("health", "", yaml.as_bytes(), YAML, 422, "image_build_unsupported").await;
    let fields: Vec<&str> = e.problem().errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        ["documents[0].options.containers[0].build", "documents[0].options.initContainers[0].build"]
    );
    assert!(e.problem().detail.as_deref().unwrap().contains("CI"), "{e}");
    assert_eq!(t.tasks("health", "").await["total"], 0);
    assert_eq!(t.keys().await, Vec::<String>::new());
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn an_invalid_build_lists_every_problem_and_bad_input_is_refused_up_front() {
    let mut t = TestApp::spawn().await;
    let yaml = "componentType: K8S_MICROSERVICE\ncomponentName: bad name\noptions:\n  replicas: -1\n  containers:\n    - name: API\n---\ncomponentType: NOPE\ncomponentName: x\n";
    let (body, ct) = Form::default()
        .file("build.yaml", "build.yaml", YAML, yaml.as_bytes())
        .file("chart.ghost", "ghost.tgz", "application/gzip", &chart_tgz("ghost"))
        .finish();
    let e = t.refused_task("demo", "", &body, &ct, 422, "invalid_build").await;
    let fields: Vec<&str> = e.problem().errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "documents[0].componentName",
            "documents[0].options.replicas",
            "documents[0].options.containers[0].name",
            "documents[0].options.containers[0].image",
            "documents[1].componentType",
            "chart.ghost",
        ],
        "{:?}",
        e.problem().errors
    );

    // A chart that is no archive fails the request, not the task.
    let helm = "componentType: HELM\ncomponentName: web\n";
    let (body, ct) = Form::default()
        .file("build.yaml", "build.yaml", YAML, helm.as_bytes())
        .file("chart.web", "web.tgz", "application/gzip", b"not an archive")
        .finish();
    let e = t.refused_task("demo", "", &body, &ct, 422, "invalid_build").await;
    assert_eq!(e.problem().errors[0].field, "chart.web");
    // A chart folder without Chart.yaml.
    let (body, ct) = Form::default()
        .file("build.yaml", "build.yaml", YAML, helm.as_bytes())
        .file(
            "chart.web",
            "web.zip",
            "application/zip",
            &crate::common::zip_of(&[("web/values.yaml", b"a: 1\n")]),
        )
        .finish();
    let e = t.refused_task("demo", "", &body, &ct, 422, "invalid_build").await;
    assert!(e.problem().errors[0].message.contains("Chart.yaml"), "{e}");

    let (body, ct) = Form::default().text("version", "1.0.0").finish();
    let e = t.refused_task("demo", "", &body, &ct, 422, "invalid_build").await;
    assert_eq!(e.problem().errors[0].field, "build.yaml");
    let (body, ct) = Form::default().file("build.yaml", "b", YAML, b"x: 1").text("colour", "red").finish();
    let e = t.refused_task("demo", "", &body, &ct, 422, "validation_failed").await;
    assert_eq!(e.problem().errors[0].field, "colour");
    t.refused_task("demo", "", b"a: 1", "text/plain", 415, "unsupported_media_type").await;
    t.refused_task("demo", "version=1.x", microservice_yaml("a").as_bytes(), YAML, 422, "invalid_version")
        .await;
    t.refused_task("demo", "", b"{{{", YAML, 422, "invalid_build").await;

    assert_eq!(t.tasks("demo", "").await["total"], 0);
    assert_eq!(t.keys().await, Vec::<String>::new());
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn limits_are_enforced_while_the_request_streams() {
    let t = TestApp::spawn_with(|cfg| {
        cfg.package_store.max_meta_bytes = 4096;
        cfg.package_store.max_chart_bytes = 64 * 1024;
    })
    .await;
    let big = format!("{}# {}\n", microservice_yaml("api"), "x".repeat(5000));
    t.refused_task("demo", "", big.as_bytes(), YAML, 413, "package_too_large").await;
    let (body, ct) = Form::default().file("build.yaml", "build.yaml", YAML, big.as_bytes()).finish();
    t.refused_task("demo", "", &body, &ct, 413, "package_too_large").await;
    let helm = "componentType: HELM\ncomponentName: web\n";
    let (body, ct) = Form::default()
        .file("build.yaml", "build.yaml", YAML, helm.as_bytes())
        .file("chart.web", "web.tgz", "application/gzip", &vec![7u8; 100 * 1024])
        .finish();
    let e = t.refused_task("demo", "", &body, &ct, 413, "package_too_large").await;
    assert!(e.problem().detail.as_deref().unwrap().contains("chart.web"), "{e}");
    assert_eq!(t.tasks("demo", "").await["total"], 0);
    t.stop().await;
}

#[tokio::test]
async fn builds_without_a_version_bump_the_patch_past_packages_and_live_tasks() {
    let t = TestApp::spawn().await;
    t.imported("demo", "", &demo_package(None)).await;
    let yaml = microservice_yaml("api");
    let first = t.created_task("demo", "", yaml.as_bytes(), YAML).await;
    // Asked for at once: the first task's version counts although it is not built yet.
    let second = t.created_task("demo", "", yaml.as_bytes(), YAML).await;
    let v1 = first["packageVersion"].as_str().unwrap();
    let v2 = second["packageVersion"].as_str().unwrap();
    assert!(v1.starts_with("1.0.1+") && v2.starts_with("1.0.2+"), "{v1} {v2}");
    t.wait_task("demo", &first["id"], "SUCCESS").await;
    t.wait_task("demo", &second["id"], "SUCCESS").await;
    let latest = t.ok("packages.latest-version", in_app("demo"), 200).await;
    assert_eq!(latest["packageVersion"], v2);
    let third = t.created_task("demo", "", yaml.as_bytes(), YAML).await;
    assert!(third["packageVersion"].as_str().unwrap().starts_with("1.0.3+"), "{third}");
    t.wait_task("demo", &third["id"], "SUCCESS").await;
    t.stop().await;
}

#[tokio::test]
async fn an_explicit_version_is_never_built_twice() {
    let t = TestApp::spawn().await;
    let yaml = microservice_yaml("api");
    let first = t.created_task("demo", "version=3.0.0%2B7", yaml.as_bytes(), YAML).await;
    assert_eq!(first["packageVersion"], "3.0.0+7");
    // Waiting, running or built: the version is taken.
    t.refused_task("demo", "version=3.0.0%2B7", yaml.as_bytes(), YAML, 409, "package_version_exists").await;
    t.wait_task("demo", &first["id"], "SUCCESS").await;
    t.refused_task("demo", "version=3.0.0%2B7", yaml.as_bytes(), YAML, 409, "package_version_exists").await;
    // Another app may use it.
    let other = t.created_task("other", "version=3.0.0%2B7", yaml.as_bytes(), YAML).await;
    t.wait_task("other", &other["id"], "SUCCESS").await;
    // x.y.z gets a fresh timestamp, so it never collides.
    let stamped = t.created_task("demo", "version=3.0.0", yaml.as_bytes(), YAML).await;
    assert!(stamped["packageVersion"].as_str().unwrap().starts_with("3.0.0+2"), "{stamped}");
    t.wait_task("demo", &stamped["id"], "SUCCESS").await;
    t.stop().await;
}

#[tokio::test]
async fn tasks_are_read_with_read_rights_and_built_with_write_rights() {
    let t = TestApp::spawn().await;
    let yaml = microservice_yaml("api");
    let viewer = t.token(vec![app_binding(Role::Viewer, "demo")]);
    let e = t
        .stream("package-tasks.create", Some("demo"), "", yaml.as_bytes(), YAML, Some(&viewer))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    let e =
        t.stream("package-tasks.create", Some("demo"), "", yaml.as_bytes(), YAML, None).await.unwrap_err();
    assert_eq!(e.status(), 401);
    let developer = t.token(vec![app_binding(Role::Developer, "demo")]);
    let r = t
        .stream("package-tasks.create", Some("demo"), "", yaml.as_bytes(), YAML, Some(&developer))
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let first = r.body.unwrap();
    let second = t.created_task("demo", "", yaml.as_bytes(), YAML).await;
    t.wait_task("demo", &first["id"], "SUCCESS").await;
    let done = t.wait_task("demo", &second["id"], "SUCCESS").await;

    let get = in_app("demo").param("taskId", first["id"].to_string());
    let seen = t.call("package-tasks.get", Some(&viewer), get.clone()).await.unwrap().body.unwrap();
    assert_eq!((&seen["id"], &seen["createdBy"]), (&first["id"], &json!("user:tester")));
    let elsewhere = t.token(vec![app_binding(Role::Admin, "other")]);
    assert_eq!(t.call("package-tasks.get", Some(&elsewhere), get).await.unwrap_err().status(), 403);
    let page = t.call("package-tasks.list", Some(&viewer), in_app("demo").query("pageSize=1")).await.unwrap();
    let page = page.body.unwrap();
    assert_eq!((&page["total"], &page["pageSize"], &page["items"][0]), (&json!(2), &json!(1), &done));
    assert_eq!(t.tasks("demo", "status=SUCCESS").await["total"], 2);
    assert_eq!(t.tasks("demo", "status=FAILURE").await["total"], 0);
    assert_eq!(t.tasks("other", "").await["total"], 0);
    t.fail("package-tasks.list", in_app("demo").query("status=DONE"), 422, "validation_failed").await;
    t.fail("package-tasks.get", in_app("demo").param("taskId", "999999"), 404, "task_not_found").await;
    t.fail(
        "package-tasks.get",
        in_app("other").param("taskId", first["id"].to_string()),
        404,
        "task_not_found",
    )
    .await;
    t.fail("package-tasks.get", in_app("demo").param("taskId", "abc"), 422, "validation_failed").await;
    t.stop().await;
}
