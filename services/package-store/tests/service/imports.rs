//! Imports that succeed: the real SREWorks health package, multipart forms, version choices,
//! forced re-imports, concurrent imports of one version, and the build runner's entry point.

use serde_json::Value;
use sw_contracts::AppId;
use sw_contracts::packages::PackageSource;
use sw_package_store::{ImportEvent, ImportRequest, VersionChoice};

use crate::common::{app_meta, component_zip, demo_package, health_fixture, pack_fixture_dir_with, zip_of};
use crate::support::{TRACEPARENT, TestApp, entry, in_app, multipart, package, sha256};

const HEALTH_VERSION: &str = "22.3.5+20231013225826568980";
/// The component folders the fixture lacks (see tests/fixture.rs); stand-ins are added.
const MISSING_IN_FIXTURE: [&str; 3] =
    ["INTERNAL_ADDON_productopsv2.zip", "INTERNAL_ADDON_developmentmeta.zip", "INTERNAL_ADDON_appmeta.zip"];

/// The fixture re-zipped (each `*.zip.dir/` becomes its nested zip) plus the stand-ins.
pub fn health_package() -> Vec<u8> {
    let extra: Vec<(String, Vec<u8>)> = MISSING_IN_FIXTURE
        .iter()
        .map(|p| ((*p).to_owned(), component_zip(p.trim_end_matches(".zip"))))
        .collect();
    pack_fixture_dir_with(&health_fixture(), &extra)
}

fn component_key(c: &Value) -> String {
    format!(
        "components/health/{}/{}/{}.zip",
        c["componentType"].as_str().unwrap(),
        c["componentName"].as_str().unwrap(),
        c["packageVersion"].as_str().unwrap()
    )
}

#[tokio::test]
async fn the_health_package_imports_lists_and_is_stored_byte_for_byte() {
    let mut t = TestApp::spawn().await;
    let zip = health_package();
    let out = t.imported("health", "", &zip).await;
    assert_eq!(out["appId"], "health");
    assert_eq!(out["packageVersion"], HEALTH_VERSION);
    assert_eq!(out["packageCreator"], "999999999");
    assert_eq!(out["tags"], serde_json::json!(["release=sreworks/x86_64", "on-sale"]));
    assert_eq!(out["source"], "IMPORT");
    assert_eq!(out["size"], zip.len());
    assert_eq!(out["sha256"], sha256(&zip));
    assert_eq!(out["createdBy"], "user:tester");
    let comps = out["components"].as_array().unwrap();
    let labels: Vec<String> = comps
        .iter()
        .map(|c| format!("{}|{}", c["componentType"].as_str().unwrap(), c["componentName"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        [
            "K8S_MICROSERVICE|health",
            "INTERNAL_ADDON|productopsv2",
            "RESOURCE_ADDON|system-env@system-env",
            "INTERNAL_ADDON|developmentmeta",
            "INTERNAL_ADDON|appmeta"
        ]
    );
    for c in comps {
        // The re-zip cannot reproduce SREWorks' recorded MD5s; lenient mode reports that.
        assert_eq!(c["md5Status"], "MISMATCHED", "{c}");
        let nested = entry(&zip, c["relativePath"].as_str().unwrap());
        assert_eq!(c["size"], nested.len());
        assert_eq!(c["sha256"], sha256(&nested));
        assert_eq!(t.object(&component_key(c)).await, nested, "{}", component_key(c));
    }
    let app_key = format!("apps/health/{HEALTH_VERSION}.zip");
    assert_eq!(t.object(&app_key).await, zip);
    let mut expected_keys: Vec<String> = comps.iter().map(component_key).collect();
    expected_keys.push(app_key);
    expected_keys.sort();
    assert_eq!(t.keys().await, expected_keys);

    let ev = t.event("package.app.imported", &format!("health/{HEALTH_VERSION}")).await;
    assert_eq!(ev, out);

    let page = t.ok("packages.list", in_app("health"), 200).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0], out);
    assert_eq!(t.ok("packages.get", package("health", &out["id"]), 200).await, out);
    let tagged = t.ok("packages.list", in_app("health").query("tag=on-sale"), 200).await;
    assert_eq!(tagged["total"], 1);
    let untagged = t.ok("packages.list", in_app("health").query("tag=on"), 200).await;
    assert_eq!(untagged["total"], 0);
    let by_version = t
        .ok(
            "packages.list",
            in_app("health").query(format!("version={}", "22.3.5%2B20231013225826568980")),
            200,
        )
        .await;
    assert_eq!(by_version["total"], 1);
    assert_eq!(t.ok("packages.list", in_app("other"), 200).await["total"], 0);

    let latest = t.ok("packages.latest-version", in_app("health"), 200).await;
    assert_eq!(latest["packageVersion"], HEALTH_VERSION);
    assert_eq!(latest["appPackageId"], out["id"]);
    assert!(latest["nextVersion"].as_str().unwrap().starts_with("22.3.6+"), "{latest}");

    let reply = t.call("packages.launch-yaml", Some(&t.admin), package("health", &out["id"])).await.unwrap();
    assert_eq!(reply.headers.get("content-type").map(String::as_str), Some("application/yaml"));
    let yaml: serde_yaml::Value = serde_yaml::from_str(reply.body.unwrap().as_str().unwrap()).unwrap();
    assert_eq!(yaml["kind"], "ApplicationConfiguration");
    assert_eq!(yaml["metadata"]["annotations"]["appPackageId"], out["id"].to_string().as_str());
    let revisions: Vec<&str> = yaml["spec"]["components"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["revisionName"].as_str().unwrap())
        .collect();
    assert_eq!(revisions[0], "K8S_MICROSERVICE|health|22.5.1+20231013224500845346");
    assert_eq!(revisions[2], "RESOURCE_ADDON|system-env@system-env|1.1.4+20231013224500165398");
    assert_eq!(revisions.len(), 5);
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn a_multipart_form_import_reads_the_app_from_the_zip() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let (body, ct) = multipart(&[("packageVersion", "2.1.0"), ("force", "false")], &zip);
    let reply = t.import_body(None, "", &body, &ct, Some(&t.admin)).await.unwrap();
    assert_eq!(reply.status, 201);
    let out = reply.body.unwrap();
    assert_eq!(out["appId"], "demo");
    let version = out["packageVersion"].as_str().unwrap();
    let ts = version.strip_prefix("2.1.0+").expect("x.y.z gets a timestamp");
    assert!(ts.len() == 20 && ts.bytes().all(|b| b.is_ascii_digit()), "{version}");
    // The stored zip is the file part exactly, not the form around it.
    assert_eq!(out["sha256"], sha256(&zip));
    assert_eq!(t.object(&format!("apps/demo/{version}.zip")).await, zip);
    t.event("package.app.imported", &format!("demo/{version}")).await;

    // A form without its `file` part, and a part nobody knows.
    let (body, ct) = multipart(&[("packageVersion", "2.1.0")], b"");
    let no_file = String::from_utf8_lossy(&body).replace("name=\"file\"", "name=\"other\"");
    let e = t.import_body(None, "", no_file.as_bytes(), &ct, Some(&t.admin)).await.unwrap_err();
    assert_eq!((e.status(), e.problem().errors[0].field.as_str()), (422, "other"));
    // The query and the form must agree.
    let (body, ct) = multipart(&[("force", "true")], &zip);
    let e = t.import_body(None, "force=false", &body, &ct, Some(&t.admin)).await.unwrap_err();
    assert_eq!((e.status(), e.problem().errors[0].field.as_str()), (422, "force"));
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn reset_version_numbers_after_the_latest() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let first = t.imported("demo", "", &zip).await;
    assert_eq!(first["packageVersion"], "1.0.0+1");
    let second = t.imported("demo", "resetVersion=true", &zip).await;
    let v2 = second["packageVersion"].as_str().unwrap().to_owned();
    assert!(v2.starts_with("1.0.1+") && v2.len() == "1.0.1+".len() + 20, "{v2}");
    let third = t.imported("demo", "resetVersion=true", &zip).await;
    assert!(third["packageVersion"].as_str().unwrap().starts_with("1.0.2+"), "{third}");
    let explicit = t.imported("demo", "packageVersion=0.9.0%2Bold", &zip).await;
    assert_eq!(explicit["packageVersion"], "0.9.0+old");
    // Latest is by version order, not by upload order.
    let latest = t.ok("packages.latest-version", in_app("demo"), 200).await;
    assert_eq!(latest["packageVersion"], third["packageVersion"]);
    assert_eq!(latest["appPackageId"], third["id"]);
    // Newest first.
    let page = t.ok("packages.list", in_app("demo").query("pageSize=2"), 200).await;
    assert_eq!(page["total"], 4);
    let ids: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
    assert_eq!(ids, [&explicit["id"], &third["id"]]);
    // The same component bytes at the same version are stored once.
    assert_eq!(t.rows().await, (4, 1, 4));
    for _ in 0..4 {
        assert_eq!(t.next_event().await.name(), "package.app.imported");
    }
    t.refused("demo", "packageVersion=1.2", &zip, 422, "invalid_version").await;
    t.refused("demo", "packageVersion=1.0.0&resetVersion=true", &zip, 422, "validation_failed").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn force_replaces_a_version_and_conflicting_components_need_it() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let first = t.imported("demo", "", &zip).await;
    t.event("package.app.imported", "demo/1.0.0+1").await;
    t.refused("demo", "", &zip, 409, "package_version_exists").await;
    let again = t.imported("demo", "force=true", &zip).await;
    assert_eq!(again["id"], first["id"], "the same package, replaced");
    assert_eq!(t.event("package.app.imported", "demo/1.0.0+1").await, again);
    assert_eq!(t.rows().await, (1, 1, 1), "the replaced generation's links are gone");

    // Another package version whose component claims the same version with other bytes.
    let other_bytes =
        zip_of(&[("meta.yaml", b"kind: Component\nmetadata: {name: api}\nspec: {replicas: 2}\n")]);
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let changed = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &other_bytes)]);
    let keys_before = t.keys().await;
    t.refused("demo", "packageVersion=1.1.0%2B1", &changed, 409, "component_version_conflict").await;
    assert_eq!(t.keys().await, keys_before);
    assert_eq!(t.rows().await, (1, 1, 1));
    assert_eq!(t.object("components/demo/K8S_MICROSERVICE/api/2.0.0.zip").await, component_zip("api"));
    let forced = t.imported("demo", "packageVersion=1.1.0%2B1&force=true", &changed).await;
    assert_eq!(forced["components"][0]["sha256"], sha256(&other_bytes));
    assert_eq!(t.object("components/demo/K8S_MICROSERVICE/api/2.0.0.zip").await, other_bytes);
    t.event("package.app.imported", "demo/1.1.0+1").await;

    // Re-importing both versions without the api component drops it once nothing links it.
    let meta = app_meta("demo", &[("K8S_JOB", "worker", "K8S_JOB_worker.zip", None)]);
    let worker_only =
        zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_JOB_worker.zip", &component_zip("worker"))]);
    t.imported("demo", "force=true", &worker_only).await;
    assert!(
        t.keys().await.contains(&"components/demo/K8S_MICROSERVICE/api/2.0.0.zip".to_owned()),
        "still used"
    );
    t.imported("demo", "packageVersion=1.1.0%2B1&force=true", &worker_only).await;
    assert_eq!(
        t.keys().await,
        ["apps/demo/1.0.0+1.zip", "apps/demo/1.1.0+1.zip", "components/demo/K8S_JOB/worker/2.0.0.zip"]
    );
    assert_eq!(t.rows().await, (2, 1, 2));
    assert_eq!(t.object("apps/demo/1.1.0+1.zip").await, worker_only);
    t.event("package.app.imported", "demo/1.0.0+1").await;
    t.event("package.app.imported", "demo/1.1.0+1").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn concurrent_imports_of_one_version_one_wins_and_nothing_is_orphaned() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let (a, b) = tokio::join!(t.import("demo", "", &zip), t.import("demo", "", &zip));
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("one must win and one lose: {a:?} {b:?}"),
    };
    assert_eq!(won.status, 201);
    assert_eq!((lost.status(), lost.code()), (409, "package_version_exists"));
    assert_eq!(t.keys().await, ["apps/demo/1.0.0+1.zip", "components/demo/K8S_MICROSERVICE/api/2.0.0.zip"]);
    assert_eq!(t.rows().await, (1, 1, 1));
    t.event("package.app.imported", "demo/1.0.0+1").await;
    t.no_event().await;
    t.stop().await;
}

/// A stored (uncompressed) zip of `entries`.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    use zip::write::{SimpleFileOptions, ZipWriter};
    let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_large_package_goes_up_in_multipart_parts_byte_for_byte() {
    let mut t = TestApp::spawn().await;
    // 70 MiB of noise: the component zip is over the single-PUT limit and the app zip spans
    // five 16 MiB parts.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..70 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let component = stored_zip(&[("meta.yaml", b"kind: Component\n"), ("image.tar", &noise)]);
    drop(noise);
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let zip = stored_zip(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &component)]);
    let out = t.imported("demo", "", &zip).await;
    assert_eq!(out["sha256"], sha256(&zip));
    assert_eq!(out["components"][0]["sha256"], sha256(&component));
    assert_eq!(sha256(&t.object("apps/demo/1.0.0+1.zip").await), sha256(&zip));
    assert_eq!(sha256(&t.object("components/demo/K8S_MICROSERVICE/api/2.0.0.zip").await), sha256(&component));
    t.event("package.app.imported", "demo/1.0.0+1").await;
    t.stop().await;
}

#[tokio::test]
async fn the_build_runner_imports_a_local_zip_as_a_built_package() {
    let mut t = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("built.zip");
    let zip = demo_package(None);
    std::fs::write(&path, &zip).unwrap();
    let req = ImportRequest {
        expected_app: Some(AppId::parse("demo").unwrap()),
        version: VersionChoice::Next,
        force: false,
        source: PackageSource::Build,
        created_by: "user:builder".into(),
        event: ImportEvent::Built,
        traceparent: Some(TRACEPARENT.into()),
    };
    let out = t.importer.import_local_zip(&path, req.clone()).await.unwrap();
    assert_eq!(out.source, PackageSource::Build);
    assert_eq!(out.created_by, "user:builder");
    assert!(out.package_version.starts_with("1.0.0+"), "{}", out.package_version);
    assert_eq!(out.sha256, sha256(&zip));
    let ev = t.next_event().await;
    assert_eq!(ev.name(), "package.app.built");
    assert_eq!(ev.traceparent.as_deref(), Some(TRACEPARENT));
    assert!(path.exists(), "the caller's file stays");
    let wrong = ImportRequest { expected_app: Some(AppId::parse("other").unwrap()), ..req };
    let e = t.importer.import_local_zip(&path, wrong).await.unwrap_err();
    assert_eq!(e.code(), "meta_app_id_mismatch");
    t.no_event().await;
    t.stop().await;
}
