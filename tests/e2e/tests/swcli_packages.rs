//! `swcli app-package` against the whole platform: import (raw and multipart), list, get,
//! get-latest, download (streamed and presigned), launch-yaml, delete, and a build with a local
//! Helm chart waited for to the end. swcli runs in-process through its library entry point with
//! its own config file and HOME per test, so nothing is read from the developer's environment.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;
use sreworks_e2e::Suite;
use sreworks_e2e::swcli::Swcli;
use sw_testkit::TestEnv;

/// A well-formed SREWorks app package for `app`: `meta.yaml` at `1.0.0+1` and one
/// K8S_MICROSERVICE component `api`, padded so the upload spans many chunks.
fn app_package(app: &str) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let component = {
        let meta = "apiVersion: core.oam.dev/v1alpha2\nkind: Component\nmetadata:\n  name: api\nspec: {}\n";
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("meta.yaml", SimpleFileOptions::default()).unwrap();
        w.write_all(meta.as_bytes()).unwrap();
        // Incompressible filler: a package of a few MiB, as real ones are.
        let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file("filler.bin", stored).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..(3 * 1024 * 1024 / 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.write_all(&x.to_le_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let meta = format!(
        "appId: {app}\npackageVersion: 1.0.0+1\npackageCreator: '42'\ntags: [on-sale]\ncomponentPackages:\n\
         - componentType: K8S_MICROSERVICE\n  componentName: api\n  packageVersion: 2.0.0\n  \
         relativePath: K8S_MICROSERVICE_api.zip\n"
    );
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("meta.yaml", SimpleFileOptions::default()).unwrap();
    w.write_all(meta.as_bytes()).unwrap();
    w.start_file("K8S_MICROSERVICE_api.zip", SimpleFileOptions::default()).unwrap();
    w.write_all(&component).unwrap();
    w.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_list_download_and_delete_packages() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let sw = Swcli::new(&suite);
    let zip = sw.path("demo.zip");
    let bytes = app_package("demo");
    std::fs::write(&zip, &bytes).unwrap();
    let zip_arg = Swcli::arg(&zip);

    // As SREWorks' scripts call it: only the id on stdout.
    let out = sw
        .run(&[
            "app-package",
            "import",
            "--app-id=demo",
            "--filepath",
            zip_arg,
            "--print-only-app-package-id=true",
        ])
        .await
        .ok();
    let first: u64 = out.stdout.trim().parse().unwrap_or_else(|e| panic!("not an id ({e}): {out:?}"));

    // The same version again is a conflict, with the problem's code on the error line.
    let again = sw.run(&["app-package", "import", "-a", "demo", "-f", zip_arg]).await;
    assert_eq!(again.code, 5, "{again:?}");
    assert!(again.error.starts_with("package_version_exists: "), "{again:?}");

    // --reset-version gives the next patch version.
    let reset = sw
        .run(&["--json", "app-package", "import", "-a", "demo", "-f", zip_arg, "--reset-version"])
        .await
        .ok();
    let reset = reset.json();
    assert!(reset["packageVersion"].as_str().unwrap().starts_with("1.0.1+"), "{reset}");

    // Without an appId the upload is multipart and the app comes from meta.yaml.
    let multi = sw
        .run(&["--json", "app-package", "import", "-f", zip_arg, "--package-version", "3.0.0"])
        .await
        .ok()
        .json();
    assert_eq!(multi["appId"], "demo");
    assert!(multi["packageVersion"].as_str().unwrap().starts_with("3.0.0+"), "{multi}");
    let third = multi["id"].as_u64().unwrap();

    let got =
        sw.run(&["--json", "app-package", "get", "-a", "demo", "--id", &first.to_string()]).await.ok().json();
    assert_eq!(got["packageVersion"], "1.0.0+1");
    assert_eq!(got["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(got["source"], "IMPORT");
    assert_eq!(got["components"][0]["componentName"], "api");

    let list = sw.run(&["--json", "app-package", "list", "-a", "demo"]).await.ok().json();
    assert_eq!(list["total"], 3, "{list}");
    let only =
        sw.run(&["--json", "app-package", "list", "-a", "demo", "--version", "1.0.0+1"]).await.ok().json();
    assert_eq!(only["total"], 1, "{only}");
    assert_eq!(only["items"][0]["id"].as_u64(), Some(first));
    let table = sw.run(&["app-package", "list", "-a", "demo"]).await.ok();
    assert!(table.stdout.starts_with("ID "), "{table:?}");

    let latest = sw.run(&["--json", "app-package", "get-latest", "-a", "demo"]).await.ok().json();
    assert_eq!(latest["appPackageId"].as_u64(), Some(third), "{latest}");
    assert!(latest["nextVersion"].as_str().unwrap().starts_with("3.0.1+"), "{latest}");

    // Download into a folder: the gateway names the file, the bytes are the uploaded ones.
    let dir = sw.path("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let saved = sw
        .run(&[
            "--json",
            "app-package",
            "download",
            "-a",
            "demo",
            "--id",
            &first.to_string(),
            "-o",
            Swcli::arg(&dir),
        ])
        .await
        .ok()
        .json();
    let path = PathBuf::from(saved["path"].as_str().unwrap());
    assert_eq!(path, dir.join("demo-1.0.0+1.zip"));
    assert!(std::fs::read(&path).unwrap() == bytes, "the downloaded zip differs from the uploaded one");
    assert_eq!(saved["sha256"], got["sha256"]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a temp file was left behind");

    // A presigned URL serves the same bytes without credentials.
    let url = sw
        .run(&[
            "app-package",
            "download",
            "-a",
            "demo",
            "--id",
            &first.to_string(),
            "--url-only",
            "--expires-in",
            "60",
        ])
        .await
        .ok();
    let fetched = reqwest::get(url.stdout.trim()).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(fetched.bytes().await.unwrap() == bytes.as_slice());

    let yaml = sw.run(&["app-package", "launch-yaml", "-a", "demo", "--id", &first.to_string()]).await.ok();
    assert!(!yaml.stdout.trim().is_empty(), "{yaml:?}");

    let second = reset["id"].as_u64().unwrap().to_string();
    sw.run(&["app-package", "delete", "-a", "demo", "--id", &second]).await.ok();
    let gone = sw.run(&["app-package", "get", "-a", "demo", "--id", &second]).await;
    assert_eq!(gone.code, 4, "{gone:?}");
    assert!(gone.error.starts_with("package_not_found: "), "{gone:?}");

    // Not a zip: the format error's code and the "invalid input" exit code.
    let junk = sw.path("junk.zip");
    std::fs::write(&junk, b"this is not a zip").unwrap();
    let bad = sw.run(&["app-package", "import", "-a", "demo", "-f", Swcli::arg(&junk)]).await;
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(bad.error.starts_with("zip_"), "{bad:?}");

    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_with_a_local_chart_and_wait() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let sw = Swcli::new(&suite);
    let project = sw.path("project");
    let chart = project.join("charts/web");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n").unwrap();
    std::fs::write(chart.join("values.yaml"), "replicas: 1\n").unwrap();
    std::fs::write(
        chart.join("templates/service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    let build_yaml = project.join("build.yaml");
    std::fs::write(
        &build_yaml,
        "componentType: HELM\ncomponentName: web\noptions:\n  chartPath: charts/web\n",
    )
    .unwrap();

    let task = sw
        .run(&[
            "--json",
            "app-package",
            "build",
            "-a",
            "demo",
            "-p",
            Swcli::arg(&build_yaml),
            "-t",
            "release=stable",
            "--version",
            "2.0.0",
            "--wait",
            "--wait-max-seconds",
            "90",
        ])
        .await
        .ok()
        .json();
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert!(task["packageVersion"].as_str().unwrap().starts_with("2.0.0+"), "{task}");
    assert_eq!(task["tags"], serde_json::json!(["release=stable"]));
    let package_id = task["appPackageId"].as_u64().unwrap();

    let again = sw
        .run(&["--json", "app-package", "task", "get", "-a", "demo", "--id", &task["id"].to_string()])
        .await;
    assert_eq!(again.ok().json()["appPackageId"].as_u64(), Some(package_id));

    let pkg = sw
        .run(&["--json", "app-package", "get", "-a", "demo", "--id", &package_id.to_string()])
        .await
        .ok()
        .json();
    assert_eq!(pkg["source"], "BUILD");
    let helm = pkg["components"].as_array().unwrap().iter().find(|c| c["componentName"] == "web");
    assert_eq!(helm.map(|c| c["componentType"].clone()), Some(Value::from("HELM")), "{pkg}");

    // A chartPath without a chart is refused before anything is sent.
    std::fs::remove_file(chart.join("Chart.yaml")).unwrap();
    let bad = sw.run(&["app-package", "build", "-a", "demo", "-p", Swcli::arg(&build_yaml)]).await;
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(bad.error.contains("no Chart.yaml"), "{bad:?}");

    suite.stop().await.unwrap();
}
