//! After the import: presigned downloads (fetched over HTTP, with Range), deletion of packages
//! and of the component zips only they used, and the janitor removing an abandoned import.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;

use crate::common::{app_meta, component_zip, demo_package, zip_of};
use crate::support::{TestApp, in_app, package, sha256};

#[tokio::test]
async fn presigned_urls_serve_the_zip_and_ranges_of_it() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let out = t.imported("demo", "", &zip).await;
    t.event("package.app.imported", "demo/1.0.0+1").await;
    let http = reqwest::Client::new();

    let link = t.ok("packages.download-url", package("demo", &out["id"]).query("expiresIn=120"), 200).await;
    assert_eq!(link["size"], zip.len());
    assert_eq!(link["sha256"], sha256(&zip));
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(link["expiresAt"].clone()).unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(100) && left <= chrono::Duration::seconds(120), "{left}");
    let url = link["url"].as_str().unwrap();
    let full = http.get(url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.unwrap().to_vec(), zip);
    let part = http.get(url).header("Range", "bytes=0-9").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().to_vec(), zip[..10].to_vec());
    let tail = http.get(url).header("Range", "bytes=-4").send().await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), zip[zip.len() - 4..].to_vec());
    // Without the signature the bucket is closed.
    let unsigned = url.split('?').next().unwrap();
    assert!(http.get(unsigned).send().await.unwrap().status().is_client_error());

    let source = t.ok("packages.download", package("demo", &out["id"]), 200).await;
    assert_eq!(source["filename"], "demo-1.0.0+1.zip");
    assert_eq!(source["sha256"], sha256(&zip));
    let got = http.get(source["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().to_vec(), zip);

    for bad in ["expiresIn=0", "expiresIn=604801", "expiresIn=x", "other=1"] {
        t.fail("packages.download-url", package("demo", &out["id"]).query(bad), 422, "validation_failed")
            .await;
    }
    t.fail("packages.download", package("demo", &Value::from(999_999)), 404, "package_not_found").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn delete_removes_the_zip_and_only_unshared_components() {
    let mut t = TestApp::spawn().await;
    let shared = component_zip("api");
    let only_v2 = component_zip("worker");
    let v1 = t.imported("demo", "", &demo_package(None)).await;
    let meta = app_meta(
        "demo",
        &[
            ("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None),
            ("K8S_JOB", "worker", "K8S_JOB_worker.zip", None),
        ],
    );
    let two = zip_of(&[
        ("meta.yaml", meta.as_bytes()),
        ("K8S_MICROSERVICE_api.zip", &shared),
        ("K8S_JOB_worker.zip", &only_v2),
    ]);
    let v2 = t.imported("demo", "packageVersion=1.1.0", &two).await;
    let v2_version = v2["packageVersion"].as_str().unwrap().to_owned();
    t.event("package.app.imported", "demo/1.0.0+1").await;
    t.event("package.app.imported", &format!("demo/{v2_version}")).await;
    assert_eq!(t.rows().await, (2, 2, 3));

    assert_eq!(
        t.call("packages.delete", Some(&t.admin), package("demo", &v1["id"])).await.unwrap().status,
        204
    );
    let gone = t.event("package.app.deleted", "demo/1.0.0+1").await;
    assert_eq!(gone["id"], v1["id"]);
    assert_eq!(gone["packageVersion"], "1.0.0+1");
    t.fail("packages.get", package("demo", &v1["id"]), 404, "package_not_found").await;
    t.fail("packages.delete", package("demo", &v1["id"]), 404, "package_not_found").await;
    // The shared component stays for v2.
    assert_eq!(
        t.keys().await,
        [
            format!("apps/demo/{v2_version}.zip"),
            "components/demo/K8S_JOB/worker/2.0.0.zip".to_owned(),
            "components/demo/K8S_MICROSERVICE/api/2.0.0.zip".to_owned(),
        ]
    );
    assert_eq!(t.ok("packages.get", package("demo", &v2["id"]), 200).await, v2);
    // Deleting through another app's path finds nothing.
    t.fail("packages.delete", package("other", &v2["id"]), 404, "package_not_found").await;

    assert_eq!(
        t.call("packages.delete", Some(&t.admin), package("demo", &v2["id"])).await.unwrap().status,
        204
    );
    t.event("package.app.deleted", &format!("demo/{v2_version}")).await;
    t.nothing_left().await;
    t.fail("packages.latest-version", in_app("demo"), 404, "package_not_found").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn the_janitor_removes_an_abandoned_import_and_unlinked_components() {
    let mut t = TestApp::spawn().await;
    let kept = t.imported("demo", "", &demo_package(None)).await;
    t.event("package.app.imported", "demo/1.0.0+1").await;
    // What a crash mid-import leaves: a reservation with its zip, a component row and object
    // nothing links to, and a multipart upload never completed.
    let bucket = t.env.cfg.s3.bucket.clone();
    for key in ["apps/demo/9.9.9+1.zip", "components/demo/K8S_JOB/orphan/1.0.0.zip"] {
        t.s3.put_object().bucket(&bucket).key(key).body(b"partial".to_vec().into()).send().await.unwrap();
    }
    let started =
        t.s3.create_multipart_upload().bucket(&bucket).key("apps/demo/9.9.8+1.zip").send().await.unwrap();
    let sql = [
        "INSERT INTO app_package (app_id, package_version, status, source, size, sha256, tags, creator, meta, \
         created_by, generation, version, created_at, updated_at) VALUES ('demo', '9.9.9+1', 'IMPORTING', 'IMPORT', \
         7, REPEAT('0', 64), '[]', NULL, '{}', 'user:x', 1, 1, NOW(6) - INTERVAL 10 MINUTE, NOW(6) - INTERVAL 10 MINUTE)",
        "INSERT INTO component_package (app_id, component_type, component_name, package_version, s3_key, status, \
         size, md5, sha256, created_at, updated_at) VALUES ('demo', 'K8S_JOB', 'orphan', '1.0.0', \
         'components/demo/K8S_JOB/orphan/1.0.0.zip', 'PENDING', 7, REPEAT('0', 32), REPEAT('0', 64), \
         NOW(6) - INTERVAL 10 MINUTE, NOW(6) - INTERVAL 10 MINUTE)",
    ];
    for s in sql {
        t.db.execute(Statement::from_string(DbBackend::MySql, s)).await.unwrap();
    }
    // Ten minutes old: younger than the background sweep's threshold (import deadline + grace),
    // so only the sweeps below see them.
    let none = t.janitor.sweep(Duration::from_secs(7200)).await.unwrap();
    assert_eq!((none.reservations, none.components), (0, 0));
    let report = t.janitor.sweep(Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.reservations, report.components), (1, 1));
    // Not stale yet (and s3s-fs cannot list multipart uploads anyway): abort it ourselves.
    let _ =
        t.s3.abort_multipart_upload()
            .bucket(&bucket)
            .key("apps/demo/9.9.8+1.zip")
            .upload_id(started.upload_id().unwrap())
            .send()
            .await;
    assert_eq!(t.keys().await, ["apps/demo/1.0.0+1.zip", "components/demo/K8S_MICROSERVICE/api/2.0.0.zip"]);
    assert_eq!(t.rows().await, (1, 1, 1));
    assert_eq!(t.ok("packages.get", package("demo", &kept["id"]), 200).await, kept);
    // A fresh reservation was never announced, so its removal is not either.
    t.no_event().await;
    t.stop().await;
}
