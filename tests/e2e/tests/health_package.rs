//! The real SREWorks `health` package through the whole platform, as a user moves it: imported with
//! `swcli app-package import`, found with `swcli app-package list`, fetched with
//! `swcli app-package download`, and every component zip inside the download is byte-identical to
//! the one uploaded. A subscriber sees `package.app.imported` with the same digests.
//!
//! The fixture (`../shared/fixtures/sreworks/apps/health/build/`) is the unpacked package: each
//! `<TYPE>_<name>.zip.dir/` folder is re-zipped into the nested `<TYPE>_<name>.zip`. It lacks the
//! folders of its three `INTERNAL_ADDON` components, so those get stand-in zips holding a
//! `meta.yaml`; everything else is used as it is, including the `meta.yaml` whose `packageMd5`s
//! describe SREWorks' original zips.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sreworks_e2e::Suite;
use sreworks_e2e::fixtures::health_package;
use sw_testkit::TestEnv;

/// Runs swcli in-process with its own HOME and config, logged in as the suite's admin.
async fn swcli(suite: &Suite, home: &Path, args: &[&str]) -> String {
    let cli = swcli::parse_args(std::iter::once("swcli").chain(args.iter().copied())).unwrap();
    let config = home.join("swcli.yaml");
    let password = suite.admin_password();
    let env = |k: &str| match k {
        "SWCLI_CONFIG" => Some(config.display().to_string()),
        "HOME" => Some(home.display().to_string()),
        "SWCLI_ENDPOINT" => Some(suite.base.clone()),
        "SWCLI_USERNAME" => Some("admin".to_owned()),
        "SWCLI_PASSWORD" => Some(password.clone()),
        _ => None,
    };
    match tokio::time::timeout(Duration::from_secs(120), swcli::run(cli, env)).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("swcli {args:?} failed ({}): {e}", e.exit_code()),
        Err(_) => panic!("swcli {args:?} did not finish in 120 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_package_round_trips_byte_for_byte() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let bus = suite.env.bus().await;
    let mut events = suite.env.events(&bus, &format!("{}.events.package.>", suite.env.id)).await;
    let home = std::env::temp_dir().join(format!("swcli-health-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&home).unwrap();
    let (package, components) = health_package();
    let file = home.join("health.zip");
    std::fs::write(&file, &package).unwrap();

    let id = swcli(
        &suite,
        &home,
        &[
            "app-package",
            "import",
            "-a",
            "health",
            "-f",
            file.to_str().unwrap(),
            "--print-only-app-package-id",
        ],
    )
    .await;
    let id: u64 = id.trim().parse().unwrap_or_else(|_| panic!("not an id: {id:?}"));

    let listed: Value =
        serde_json::from_str(&swcli(&suite, &home, &["--json", "app-package", "list", "-a", "health"]).await)
            .unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    let item = &listed["items"][0];
    assert_eq!(item["id"].as_u64(), Some(id));
    assert_eq!(item["packageVersion"], "22.3.5+20231013225826568980", "the version of the real meta.yaml");
    assert_eq!(item["tags"], serde_json::json!(["release=sreworks/x86_64", "on-sale"]));
    let names: Vec<&str> =
        item["components"].as_array().unwrap().iter().map(|c| c["relativePath"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "K8S_MICROSERVICE_health.zip",
            "INTERNAL_ADDON_productopsv2.zip",
            "RESOURCE_ADDON_system-env@system-env.zip",
            "INTERNAL_ADDON_developmentmeta.zip",
            "INTERNAL_ADDON_appmeta.zip"
        ],
        "meta.yaml order"
    );
    // The recorded MD5s are of SREWorks' original zips, which a re-zip cannot reproduce.
    for c in item["components"].as_array().unwrap() {
        assert_eq!(c["md5Status"], "MISMATCHED", "{c}");
    }

    let out = home.join("downloaded.zip");
    swcli(
        &suite,
        &home,
        &["app-package", "download", "-a", "health", "--id", &id.to_string(), "-o", out.to_str().unwrap()],
    )
    .await;
    let downloaded = std::fs::read(&out).unwrap();
    assert!(downloaded == package, "the downloaded package differs from the uploaded one");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(downloaded)).unwrap();
    for (name, original) in &components {
        let mut inner = Vec::new();
        archive.by_name(name).unwrap().read_to_end(&mut inner).unwrap();
        assert!(&inner == original, "component {name} is not byte-identical");
        let md5 = item["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["relativePath"] == name.as_str())
            .map(|c| c["md5"].as_str().unwrap().to_owned())
            .unwrap();
        assert_eq!(md5, hex_md5(original), "{name}: the reported MD5 is the MD5 of the bytes");
    }

    let (event, _) = events.next(Duration::from_secs(10)).await.expect("package.app.imported");
    assert_eq!(event.name(), "package.app.imported", "{event:?}");
    assert_eq!(event.subject.as_deref(), Some("health/22.3.5+20231013225826568980"));
    assert_eq!(event.data["id"].as_u64(), Some(id));
    assert_eq!(event.data["sha256"], item["sha256"]);
    std::fs::remove_dir_all(&home).ok();
    suite.stop().await.unwrap();
}

fn hex_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
