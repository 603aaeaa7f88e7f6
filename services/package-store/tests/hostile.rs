//! A hostile corpus built in the tests: each package must be refused with one exact code.

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use common::{Raw, app_meta, component_zip, demo_package, md5_hex, raw_zip, zip_of};
use sw_contracts::AppId;
use sw_package_store::{FormatError, Limits, Md5Check, inspect_app_zip};

fn inspect(zip: &[u8], limits: &Limits) -> Result<sw_package_store::InspectedPackage, FormatError> {
    inspect_app_zip(Cursor::new(zip), None, limits)
}

#[track_caller]
fn refused(zip: &[u8], limits: &Limits, code: &str, status: u16) -> FormatError {
    let err = inspect(zip, limits).expect_err("package must be refused");
    assert_eq!((err.code(), err.status()), (code, status), "{err}");
    err
}

fn demo_meta() -> String {
    app_meta("demo", &[])
}

fn raw(name: &str, data: &'static [u8]) -> Raw<'static> {
    Raw { name: Box::leak(name.as_bytes().to_vec().into_boxed_slice()), data, unix_mode: None }
}

#[test]
fn a_minimal_package_passes() {
    let pkg = inspect(&demo_package(None), &Limits::default()).unwrap();
    assert_eq!(pkg.components.len(), 1);
    assert_eq!(pkg.components[0].md5_check, Md5Check::NotDeclared);
    // The raw writer produces readable zips too, so the refusals below are about their one defect.
    let meta: &'static [u8] = Box::leak(demo_meta().into_bytes().into_boxed_slice());
    assert!(
        inspect(&raw_zip(&[raw("meta.yaml", meta), raw("dir/file.txt", b"x")]), &Limits::default()).is_ok()
    );
}

#[test]
fn path_traversal_absolute_and_backslash_names() {
    for name in ["../x", "a/../../x", "/etc/passwd", "..\\x", "C:/x"] {
        let zip = raw_zip(&[raw("meta.yaml", b"appId: demo\npackageVersion: '1'\n"), raw(name, b"x")]);
        let err = refused(&zip, &Limits::default(), "zip_path_traversal", 422);
        assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
}

#[test]
fn symlink_entry() {
    let zip = raw_zip(&[
        raw("meta.yaml", b"appId: demo\npackageVersion: '1'\n"),
        Raw { name: b"link", data: b"/etc/passwd", unix_mode: Some(0o120_777) },
    ]);
    refused(&zip, &Limits::default(), "zip_symlink", 422);
    // A regular unix file mode is fine.
    let ok = raw_zip(&[Raw {
        name: b"meta.yaml",
        data: b"appId: demo\npackageVersion: '1'\n",
        unix_mode: Some(0o100_644),
    }]);
    assert!(inspect(&ok, &Limits::default()).is_ok());
}

#[test]
fn duplicate_entries() {
    let zip = raw_zip(&[
        raw("meta.yaml", b"appId: demo\npackageVersion: '1'\n"),
        raw("meta.yaml", b"appId: evil\npackageVersion: '1'\n"),
    ]);
    refused(&zip, &Limits::default(), "zip_duplicate_entry", 422);
}

#[test]
fn too_many_entries() {
    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let mut entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let meta = demo_meta();
    entries.push(("meta.yaml", meta.as_bytes()));
    let limits = Limits { max_entries: 5, ..Limits::default() };
    refused(&zip_of(&entries), &limits, "zip_too_many_entries", 413);
    assert!(inspect(&zip_of(&entries), &Limits { max_entries: 7, ..Limits::default() }).is_ok());
}

#[test]
fn zip_bomb_over_the_ratio() {
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let meta = demo_meta();
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("big.bin", &zeros)]);
    assert!(zip.len() < 100 * 1024, "the bomb is small: {}", zip.len());
    let started = Instant::now();
    let err = refused(&zip, &Limits::default(), "zip_bomb", 413);
    assert!(err.to_string().contains("ratio"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn zip_bomb_over_the_total() {
    let zeros = vec![0u8; 4 * 1024 * 1024];
    let meta = demo_meta();
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("big.bin", &zeros)]);
    let limits = Limits { max_total_uncompressed: 2 * 1024 * 1024, max_ratio: u64::MAX, ..Limits::default() };
    let err = refused(&zip, &limits, "zip_bomb", 413);
    assert!(err.to_string().contains("in total"), "{err}");
}

#[test]
fn nested_zip_bomb() {
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let inner = zip_of(&[("meta.yaml", b"kind: Component\n"), ("big.bin", &zeros)]);
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &inner)]);
    let err = refused(&zip, &Limits::default(), "zip_bomb", 413);
    assert!(err.to_string().contains("big.bin"), "{err}");
}

#[test]
fn nesting_deeper_than_one_level() {
    let deepest = component_zip("deepest");
    let inner = zip_of(&[("meta.yaml", b"kind: Component\n"), ("inner.zip", &deepest)]);
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &inner)]);
    refused(&zip, &Limits::default(), "zip_nested_too_deep", 422);
    // A zip hidden under another extension is caught by its magic bytes.
    let disguised = zip_of(&[("meta.yaml", b"kind: Component\n"), ("data.bin", &deepest)]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &disguised)]);
    refused(&zip, &Limits::default(), "zip_nested_too_deep", 422);
    // And max_nesting 0 refuses component zips altogether.
    refused(&demo_package(None), &Limits { max_nesting: 0, ..Limits::default() }, "zip_nested_too_deep", 422);
}

#[test]
fn missing_meta_yaml() {
    refused(&zip_of(&[("readme.txt", b"hello")]), &Limits::default(), "meta_missing", 422);
    // Nested in a directory does not count: it must be at the root.
    refused(&zip_of(&[("sub/meta.yaml", demo_meta().as_bytes())]), &Limits::default(), "meta_missing", 422);
    // A component zip without its own meta.yaml.
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let inner = zip_of(&[("other.yaml", b"a: 1\n")]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &inner)]);
    let err = refused(&zip, &Limits::default(), "meta_missing", 422);
    assert!(err.to_string().contains("K8S_MICROSERVICE_api.zip"), "{err}");
}

#[test]
fn meta_yaml_over_the_size_limit() {
    let mut meta = demo_meta();
    meta.push_str(&format!("padding: \"{}\"\n", "p".repeat(8 * 1024)));
    let zip = zip_of(&[("meta.yaml", meta.as_bytes())]);
    let limits = Limits { max_meta_bytes: 4 * 1024, ..Limits::default() };
    refused(&zip, &limits, "meta_too_large", 413);
    assert!(inspect(&zip, &Limits::default()).is_ok());
}

#[test]
fn yaml_billion_laughs() {
    let mut doc = String::from(
        "appId: demo\npackageVersion: '1'\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='i' {
        doc.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        prev = c;
    }
    let zip = zip_of(&[("meta.yaml", doc.as_bytes())]);
    let started = Instant::now();
    refused(&zip, &Limits::default(), "meta_invalid", 422);
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    // The same inside a component's meta.yaml.
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let inner = zip_of(&[("meta.yaml", doc.as_bytes())]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &inner)]);
    refused(&zip, &Limits::default(), "meta_invalid", 422);
}

#[test]
fn truncated_zip() {
    let zip = demo_package(None);
    for cut in [zip.len() - 10, zip.len() / 2, 30, 4] {
        refused(&zip[..cut], &Limits::default(), "zip_corrupt", 422);
    }
}

#[test]
fn corrupt_bytes() {
    refused(b"this is not a zip at all, just some text long enough", &Limits::default(), "zip_corrupt", 422);
    refused(&[], &Limits::default(), "zip_corrupt", 422);
    // Flip bytes inside the deflated meta.yaml: the inflater or the CRC check must notice.
    let meta = demo_meta();
    let mut zip = zip_of(&[("meta.yaml", meta.as_bytes())]);
    let data_start = 30 + "meta.yaml".len();
    for b in &mut zip[data_start + 2..data_start + 10] {
        *b ^= 0x5a;
    }
    refused(&zip, &Limits::default(), "zip_corrupt", 422);
}

#[test]
fn app_id_mismatch() {
    let other = AppId::parse("other").unwrap();
    let err = inspect_app_zip(Cursor::new(demo_package(None)), Some(&other), &Limits::default()).unwrap_err();
    assert_eq!((err.code(), err.status()), ("meta_app_id_mismatch", 422));
    let demo = AppId::parse("demo").unwrap();
    assert!(inspect_app_zip(Cursor::new(demo_package(None)), Some(&demo), &Limits::default()).is_ok());
}

#[test]
fn missing_component() {
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let zip =
        zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_other.zip", &component_zip("other"))]);
    let err = refused(&zip, &Limits::default(), "component_missing", 422);
    assert!(err.to_string().contains("K8S_MICROSERVICE_api.zip"), "{err}");
}

#[test]
fn wrong_md5() {
    let inner = component_zip("api");
    let right = md5_hex(&inner);
    let wrong = "0123456789abcdef0123456789abcdef";
    let package = |md5: &str| {
        let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", Some(md5))]);
        zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &inner)])
    };
    let strict = Limits { strict_md5: true, ..Limits::default() };
    let err = refused(&package(wrong), &strict, "component_md5_mismatch", 422);
    assert!(err.to_string().contains(&right), "{err}");
    // The right MD5 passes strict mode and is reported as matched, with our own digests.
    let pkg = inspect(&package(&right), &strict).unwrap();
    assert_eq!(pkg.components[0].md5_check, Md5Check::Matched);
    assert_eq!(pkg.components[0].md5, right);
    assert_eq!(pkg.components[0].size, inner.len() as u64);
    // Lenient mode reports the mismatch instead of refusing.
    let pkg = inspect(&package(wrong), &Limits::default()).unwrap();
    assert_eq!(pkg.components[0].md5_check, Md5Check::Mismatched { declared: wrong.into() });
    // A malformed declaration is not verified even in strict mode.
    let pkg = inspect(&package("not-an-md5"), &strict).unwrap();
    assert_eq!(pkg.components[0].md5_check, Md5Check::NotDeclared);
}

#[test]
fn a_component_that_is_not_a_zip() {
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "api.tar", None)]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("api.tar", b"not a zip")]);
    refused(&zip, &Limits::default(), "zip_corrupt", 422);
    // A `.zip` name over bytes that are not a zip.
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
    let zip = zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", b"garbage")]);
    refused(&zip, &Limits::default(), "zip_corrupt", 422);
}
