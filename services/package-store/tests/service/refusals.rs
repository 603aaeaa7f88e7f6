//! Imports that must fail, each with its exact code, leaving no object in the bucket and no row
//! in the tables: the hostile corpus, limits, media types, callers without the right roles, and
//! S3 being down.

use sw_contracts::auth::Role;

use crate::common::{Raw, app_meta, component_zip, demo_package, raw_zip, zip_of};
use crate::support::{TestApp, app_binding, in_app};

fn raw(name: &'static str, data: &'static [u8]) -> Raw<'static> {
    Raw { name: name.as_bytes(), data, unix_mode: None }
}

const META: &[u8] = b"appId: demo\npackageVersion: '1'\n";

/// `(what, zip, status, code)` for every kind of hostile package.
fn hostile_corpus() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let one = |name: &str, inner: &[u8]| {
        let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", name, None)]);
        zip_of(&[("meta.yaml", meta.as_bytes()), (name, inner)])
    };
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let deep = zip_of(&[("meta.yaml", b"kind: Component\n"), ("inner.zip", &component_zip("deepest"))]);
    let bomb_inner = zip_of(&[("meta.yaml", b"kind: Component\n"), ("big.bin", &zeros)]);
    let mut laughs = String::from(
        "appId: demo\npackageVersion: '1'\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='i' {
        laughs.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        prev = c;
    }
    let demo = demo_package(None);
    let mut flipped = zip_of(&[("meta.yaml", app_meta("demo", &[]).as_bytes())]);
    let data_start = 30 + "meta.yaml".len();
    for b in &mut flipped[data_start + 2..data_start + 10] {
        *b ^= 0x5a;
    }
    vec![
        ("path traversal", raw_zip(&[raw("meta.yaml", META), raw("../x", b"x")]), 422, "zip_path_traversal"),
        (
            "absolute path",
            raw_zip(&[raw("meta.yaml", META), raw("/etc/passwd", b"x")]),
            422,
            "zip_path_traversal",
        ),
        (
            "symlink",
            raw_zip(&[
                raw("meta.yaml", META),
                Raw { name: b"link", data: b"/etc/passwd", unix_mode: Some(0o120_777) },
            ]),
            422,
            "zip_symlink",
        ),
        ("duplicate", raw_zip(&[raw("meta.yaml", META), raw("meta.yaml", META)]), 422, "zip_duplicate_entry"),
        (
            "bomb",
            zip_of(&[("meta.yaml", app_meta("demo", &[]).as_bytes()), ("big.bin", &zeros)]),
            413,
            "zip_bomb",
        ),
        ("nested bomb", one("K8S_MICROSERVICE_api.zip", &bomb_inner), 413, "zip_bomb"),
        ("nested too deep", one("K8S_MICROSERVICE_api.zip", &deep), 422, "zip_nested_too_deep"),
        ("no meta.yaml", zip_of(&[("readme.txt", b"hello")]), 422, "meta_missing"),
        (
            "component without meta.yaml",
            one("K8S_MICROSERVICE_api.zip", &zip_of(&[("a.yaml", b"a: 1\n")])),
            422,
            "meta_missing",
        ),
        ("billion laughs", zip_of(&[("meta.yaml", laughs.as_bytes())]), 422, "meta_invalid"),
        ("truncated", demo[..demo.len() / 2].to_vec(), 422, "zip_corrupt"),
        ("not a zip", b"this is not a zip at all, just some text long enough".to_vec(), 422, "zip_corrupt"),
        ("empty body", Vec::new(), 422, "zip_corrupt"),
        ("flipped bytes", flipped, 422, "zip_corrupt"),
        ("component not a zip", one("K8S_MICROSERVICE_api.zip", b"garbage"), 422, "zip_corrupt"),
        (
            "missing component",
            {
                let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", None)]);
                zip_of(&[
                    ("meta.yaml", meta.as_bytes()),
                    ("K8S_MICROSERVICE_other.zip", &component_zip("other")),
                ])
            },
            422,
            "component_missing",
        ),
        (
            "component name unfit for a key",
            {
                let meta = app_meta("demo", &[("K8S_MICROSERVICE", "..", "K8S_MICROSERVICE_api.zip", None)]);
                zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &component_zip("api"))])
            },
            422,
            "meta_invalid",
        ),
        (
            "another app's package",
            {
                let meta = app_meta("other", &[]);
                zip_of(&[("meta.yaml", meta.as_bytes())])
            },
            422,
            "meta_app_id_mismatch",
        ),
    ]
}

#[tokio::test]
async fn the_hostile_corpus_is_refused_and_leaves_nothing_behind() {
    let mut t = TestApp::spawn().await;
    for (what, zip, status, code) in hostile_corpus() {
        let e = t.import("demo", "", &zip).await.expect_err(what);
        assert_eq!((e.status(), e.code()), (status, code), "{what}: {e}");
    }
    t.nothing_left().await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn strict_md5_and_limits_come_from_the_configuration() {
    let mut t = TestApp::spawn_with(|cfg| {
        cfg.package_store.strict_md5 = true;
        cfg.package_store.max_package_bytes = 64 * 1024;
        cfg.package_store.max_entries = 3;
    })
    .await;
    let meta = app_meta(
        "demo",
        &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", Some("0123456789abcdef0123456789abcdef"))],
    );
    let wrong_md5 =
        zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &component_zip("api"))]);
    t.refused("demo", "", &wrong_md5, 422, "component_md5_mismatch").await;
    let many =
        zip_of(&[("meta.yaml", app_meta("demo", &[]).as_bytes()), ("a", b"1"), ("b", b"2"), ("c", b"3")]);
    t.refused("demo", "", &many, 413, "zip_too_many_entries").await;
    // Over max_package_bytes: refused while streaming (and before, from the declared length).
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    t.refused("demo", "", &big, 413, "package_too_large").await;
    t.nothing_left().await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn media_types_tokens_and_roles_are_checked() {
    let mut t = TestApp::spawn().await;
    let zip = demo_package(None);
    let e = t.import_body(Some("demo"), "", &zip, "application/json", Some(&t.admin)).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"));
    let e = t.import_body(Some("demo"), "", &zip, "application/zip", None).await.unwrap_err();
    assert_eq!(e.status(), 401);
    let viewer = t.token(vec![sw_contracts::auth::RoleBinding::global(Role::Viewer)]);
    let e = t.import_body(Some("demo"), "", &zip, "application/zip", Some(&viewer)).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (403, "forbidden"));
    // A developer of another app cannot import into demo, nor sneak demo in through the form route.
    let other_dev = t.token(vec![app_binding(Role::Developer, "other")]);
    let e = t.import_body(Some("demo"), "", &zip, "application/zip", Some(&other_dev)).await.unwrap_err();
    assert_eq!(e.status(), 403);
    let e = t.import_body(None, "", &zip, "application/zip", Some(&other_dev)).await.unwrap_err();
    assert_eq!(e.status(), 403, "authorized for the app the zip names");
    t.nothing_left().await;
    // A developer of demo can; a viewer can read but not delete.
    let dev = t.token(vec![app_binding(Role::Developer, "demo")]);
    let out =
        t.import_body(Some("demo"), "", &zip, "application/zip", Some(&dev)).await.unwrap().body.unwrap();
    t.event("package.app.imported", "demo/1.0.0+1").await;
    let pkg = in_app("demo").param("appPackageId", out["id"].to_string());
    assert_eq!(t.call("packages.get", Some(&viewer), pkg.clone()).await.unwrap().status, 200);
    let e = t.call("packages.delete", Some(&viewer), pkg.clone()).await.unwrap_err();
    assert_eq!(e.status(), 403);
    let e = t.call("packages.get", Some(&other_dev), pkg).await.unwrap_err();
    assert_eq!(e.status(), 403);
    t.fail("packages.get", in_app("demo").param("appPackageId", "999999"), 404, "package_not_found").await;
    t.fail("packages.get", in_app("demo").param("appPackageId", "x"), 422, "validation_failed").await;
    t.fail("packages.latest-version", in_app("nothing"), 404, "package_not_found").await;
    t.no_event().await;
    t.stop().await;
}

#[tokio::test]
async fn s3_down_answers_503_and_writes_no_row() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut t = TestApp::spawn_with(|cfg| {
        cfg.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
        cfg.s3.timeout_ms = 2_000;
    })
    .await;
    let e = t.import("demo", "", &demo_package(None)).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (503, "storage_unavailable"));
    assert!(e.problem().retry_after.is_some(), "Retry-After is set");
    assert_eq!(t.rows().await, (0, 0, 0));
    // Reads that need only the database still work.
    assert_eq!(t.ok("packages.list", in_app("demo"), 200).await["total"], 0);
    t.no_event().await;
    t.stop().await;
}
