//! The real SREWorks `health` package, re-zipped from the fixture.
//!
//! The fixture holds two of the five component folders upstream ships (`K8S_MICROSERVICE_health`
//! and `RESOURCE_ADDON_system-env@system-env`; the three `INTERNAL_ADDON_*` folders were not copied),
//! and its `packageMd5`s describe SREWorks' original zips, which a re-zip cannot reproduce.

mod common;

use std::io::Cursor;

use common::{component_zip, health_fixture, pack_fixture_dir, pack_fixture_dir_with};
use sw_contracts::AppId;
use sw_package_store::{Limits, Md5Check, inspect_app_zip, parse_meta};

const MISSING_IN_FIXTURE: [&str; 3] =
    ["INTERNAL_ADDON_productopsv2.zip", "INTERNAL_ADDON_developmentmeta.zip", "INTERNAL_ADDON_appmeta.zip"];

#[test]
fn the_real_meta_yaml_parses() {
    let bytes = std::fs::read(health_fixture().join("meta.yaml")).unwrap();
    let meta = parse_meta(&bytes, &Limits::default()).unwrap();
    assert_eq!(meta.app_id.as_str(), "health");
    assert_eq!(meta.package_version, "22.3.5+20231013225826568980");
    assert_eq!(meta.package_creator.as_deref(), Some("999999999"));
    assert_eq!(meta.tags, ["release=sreworks/x86_64", "on-sale"]);
    let labels: Vec<String> = meta.component_packages.iter().map(|c| c.label()).collect();
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
    let health = &meta.component_packages[0];
    assert_eq!(health.declared_md5(), Some("eadb2e2f42a1fedaaf5257872913064b"));
    assert!(health.package_ext.as_deref().unwrap().contains("kind: Component"));
    assert!(health.package_options.as_deref().unwrap().starts_with('{'));
}

#[test]
fn the_fixture_as_shipped_lacks_three_component_zips() {
    let zip = pack_fixture_dir(&health_fixture());
    let err = inspect_app_zip(Cursor::new(zip), None, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "component_missing");
    assert_eq!(err.status(), 422);
    assert!(err.to_string().contains("INTERNAL_ADDON|productopsv2"), "{err}");
}

/// The fixture plus stand-ins for the three folders it lacks: the import succeeds with the default
/// limits, the real components are listed from the real `meta.yaml`, and the re-zipped bytes'
/// MD5s are reported as mismatched rather than rejected.
fn health_package() -> Vec<u8> {
    let extra: Vec<(String, Vec<u8>)> = MISSING_IN_FIXTURE
        .iter()
        .map(|p| ((*p).to_owned(), component_zip(p.trim_end_matches(".zip"))))
        .collect();
    pack_fixture_dir_with(&health_fixture(), &extra)
}

#[test]
fn round_trip_lists_the_components() {
    let zip = health_package();
    let app = AppId::parse("health").unwrap();
    let pkg = inspect_app_zip(Cursor::new(&zip), Some(&app), &Limits::default()).unwrap();
    assert_eq!(pkg.meta.app_id, app);
    assert_eq!(pkg.compressed_size, zip.len() as u64);
    assert_eq!(pkg.entries, 8, "meta.yaml, 2 launch files, 5 component zips");
    let listed: Vec<(&str, &str, &str)> = pkg
        .components
        .iter()
        .map(|c| (c.component_type.as_str(), c.component_name.as_str(), c.package_version.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("K8S_MICROSERVICE", "health", "22.5.1+20231013224500845346"),
            ("INTERNAL_ADDON", "productopsv2", "1.1.6+20231013224500223244"),
            ("RESOURCE_ADDON", "system-env@system-env", "1.1.4+20231013224500165398"),
            ("INTERNAL_ADDON", "developmentmeta", "1.1.6+20231013224500185697"),
            ("INTERNAL_ADDON", "appmeta", "1.1.6+20231013224500764299"),
        ]
    );
    for c in &pkg.components {
        assert_eq!(c.md5.len(), 32);
        assert_eq!(c.sha256.len(), 64);
        assert_eq!(c.entries, 1);
        assert!(c.size > 0 && c.uncompressed_size > 0);
        let declared =
            pkg.meta.component_packages.iter().find(|m| m.relative_path == c.relative_path).unwrap();
        assert_eq!(c.md5_check, Md5Check::Mismatched { declared: declared.package_md5.clone().unwrap() });
    }
    assert!(pkg.uncompressed_size > pkg.components.iter().map(|c| c.uncompressed_size).sum::<u64>());
}

#[test]
fn strict_md5_rejects_the_re_zipped_fixture() {
    let limits = Limits { strict_md5: true, ..Limits::default() };
    let err = inspect_app_zip(Cursor::new(health_package()), None, &limits).unwrap_err();
    assert_eq!(err.code(), "component_md5_mismatch");
    assert!(err.to_string().contains("K8S_MICROSERVICE|health"), "{err}");
}

#[test]
fn another_app_id_is_refused() {
    let other = AppId::parse("dataops").unwrap();
    let err = inspect_app_zip(Cursor::new(health_package()), Some(&other), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "meta_app_id_mismatch");
}
