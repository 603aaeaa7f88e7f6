use std::io::Cursor;

use serde_json::json;
use serde_yaml::Value as Y;

use super::*;
use crate::build::{binders_from_json, inspect_chart_archive};
use crate::format::{Limits, Md5Check, parse_meta};

fn app() -> AppId {
    AppId::parse("health").unwrap()
}

const VERSION: &str = "22.5.1+20231013224500845346";

fn binders(components: serde_json::Value, charts: &[&str]) -> Vec<ComponentBinder> {
    let uploaded = charts.iter().map(|s| (*s).to_owned()).collect();
    binders_from_json(components.as_array().unwrap(), &uploaded, &BuildLimits::default()).unwrap()
}

/// The health component of the fixture, with CI-built images instead of `build` blocks.
fn health() -> serde_json::Value {
    json!([{
        "componentType": "K8S_MICROSERVICE", "componentName": "health",
        "options": {
            "containers": [{"name": "health", "image": "sreworks-registry.cn-beijing.cr.aliyuncs.com/hub/health-health-health:1697237100891",
                            "ports": [{"containerPort": 7001}]}],
            "initContainers": [{"name": "db-migration", "image": "sreworks-registry.cn-beijing.cr.aliyuncs.com/hub/health-health-db-migration:1697237100891"}],
            "env": ["DATA_DB_HOST", "DATA_DB_PORT", "DATA_DB_HEALTH_NAME", "DATA_DB_USER", "DATA_DB_PASSWORD", "KAFKA_ENDPOINT", "DATA_DB_NAME"]
        }
    }])
}

fn run(
    binders: &[ComponentBinder],
    charts: &HashMap<String, PathBuf>,
    out: &Path,
) -> Result<AssembledPackage, BuildError> {
    let tags = vec!["release=sreworks/x86_64".to_owned(), "on-sale".to_owned()];
    let app_id = app();
    let req = AssembleRequest {
        app_id: &app_id,
        package_version: VERSION,
        tags: &tags,
        creator: "999999999",
        binders,
        charts,
        limits: &BuildLimits::default(),
        package_limits: &Limits::default(),
    };
    assemble(&req, out)
}

fn read_entry(zip_path: &Path, name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(File::open(zip_path).unwrap()).unwrap();
    let mut buf = Vec::new();
    archive.by_name(name).unwrap().read_to_end(&mut buf).unwrap();
    buf
}

fn entry_names(zip_path: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(File::open(zip_path).unwrap()).unwrap();
    archive.file_names().map(str::to_owned).collect()
}

fn fixture_component() -> Y {
    let path = sw_testkit::fixtures_dir()
        .join("sreworks/apps/health/build/K8S_MICROSERVICE_health.zip.dir/meta.yaml");
    serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn keys(v: &Y) -> Vec<String> {
    let mut k: Vec<String> = v.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    k.sort();
    k
}

#[test]
fn microservice_package_round_trips_and_passes_strict_inspection() {
    let out = tempfile::tempdir().unwrap();
    let built = run(&binders(health(), &[]), &HashMap::new(), out.path()).unwrap();

    // Independent re-inspection of the file with strict MD5.
    let strict = Limits { strict_md5: true, ..Limits::default() };
    let inspected = inspect_app_zip(File::open(&built.app_zip).unwrap(), Some(&app()), &strict).unwrap();
    assert_eq!(inspected, built.inspected);
    assert_eq!(inspected.components.len(), 1);
    assert_eq!(inspected.components[0].md5_check, Md5Check::Matched);
    assert_eq!(inspected.components[0].relative_path, "K8S_MICROSERVICE_health.zip");
    let (md5, sha, size) = digest_file(&built.component_files[0]).unwrap();
    assert_eq!(
        (md5.as_str(), sha.as_str(), size),
        (
            inspected.components[0].md5.as_str(),
            inspected.components[0].sha256.as_str(),
            inspected.components[0].size
        )
    );
    let (_, app_sha, app_size) = digest_file(&built.app_zip).unwrap();
    assert_eq!((app_sha, app_size), (built.sha256.clone(), built.size));

    // App meta.yaml.
    let meta = parse_meta(&read_entry(&built.app_zip, "meta.yaml"), &Limits::default()).unwrap();
    assert_eq!(meta.package_version, VERSION);
    assert_eq!(meta.package_creator.as_deref(), Some("999999999"));
    assert_eq!(meta.tags, ["release=sreworks/x86_64", "on-sale"]);
    let c = &meta.component_packages[0];
    assert_eq!(
        (c.component_type.as_str(), c.component_name.as_str(), c.package_version.as_str()),
        ("K8S_MICROSERVICE", "health", VERSION)
    );
    assert_eq!(c.package_md5.as_deref(), Some(md5.as_str()));
    let options: serde_json::Value = serde_json::from_str(c.package_options.as_deref().unwrap()).unwrap();
    assert_eq!(options["containers"][0]["name"], "health");
    assert_eq!(options["binderTraits"], json!([]));

    // The component meta.yaml is packageExt, and names the binder's images, env and ports.
    let component_text = read_entry(&built.app_zip, "K8S_MICROSERVICE_health.zip");
    let mut nested = zip::ZipArchive::new(Cursor::new(component_text)).unwrap();
    let mut component_meta = String::new();
    nested.by_name("meta.yaml").unwrap().read_to_string(&mut component_meta).unwrap();
    assert_eq!(c.package_ext.as_deref(), Some(component_meta.as_str()));
    let doc: Y = serde_yaml::from_str(&component_meta).unwrap();
    let spec = &doc["spec"]["workload"]["spec"];
    assert_eq!(
        spec["containers"][0]["image"],
        Y::from("sreworks-registry.cn-beijing.cr.aliyuncs.com/hub/health-health-health:1697237100891")
    );
    assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], Y::from(7001));
    assert_eq!(spec["initContainers"][0]["name"], Y::from("db-migration"));
    assert_eq!(spec["env"]["KAFKA_ENDPOINT"], Y::from("{{ Global.KAFKA_ENDPOINT }}"));
    assert_eq!(spec["env"].as_mapping().unwrap().len(), 7);
    assert_eq!((spec["kind"].as_str(), spec["replicas"].as_u64()), (Some("Deployment"), Some(1)));

    // Same skeleton as the SREWorks fixture.
    let fixture = fixture_component();
    assert_eq!(doc["metadata"]["name"], fixture["metadata"]["name"]);
    assert_eq!(doc["metadata"]["labels"], fixture["metadata"]["labels"]);
    assert_eq!(doc["metadata"]["annotations"], fixture["metadata"]["annotations"]);
    assert_eq!(doc["spec"]["workload"]["kind"], fixture["spec"]["workload"]["kind"]);
    assert_eq!(doc["spec"]["workload"]["apiVersion"], fixture["spec"]["workload"]["apiVersion"]);
    for part in ["labels", "annotations"] {
        assert_eq!(
            doc["spec"]["workload"]["metadata"][part], fixture["spec"]["workload"]["metadata"][part],
            "{part}"
        );
    }
    assert_eq!(keys(&doc["spec"]["workload"]["metadata"]), keys(&fixture["spec"]["workload"]["metadata"]));
    assert_eq!(spec["env"], fixture["spec"]["workload"]["spec"]["env"]);
}

#[test]
fn assembling_is_reproducible() {
    let b = binders(health(), &[]);
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = run(&b, &HashMap::new(), one.path()).unwrap();
    let c = run(&b, &HashMap::new(), two.path()).unwrap();
    assert_eq!(a.sha256, c.sha256);
    // A retry into the same folder overwrites.
    let again = run(&b, &HashMap::new(), one.path()).unwrap();
    assert_eq!(again.sha256, a.sha256);
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tar.gz with one entry whose raw name and type are whatever the test wants.
fn raw_tar_gz(name: &[u8], ty: tar::EntryType, data: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (n, d) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        builder.append_data(&mut h, n, *d).unwrap();
    }
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(ty);
    if ty == tar::EntryType::Symlink {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    builder.append(&h, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip_of(entries: &[(&str, &[u8])], symlink: Option<&str>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    if let Some(name) = symlink {
        w.add_symlink(name, "/etc/passwd", SimpleFileOptions::default()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

const CHART_YAML: &[u8] = b"apiVersion: v2\nname: grafana\nversion: 6.1.17\n";
const DEPLOYMENT: &[u8] = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn helm_with_uploaded_chart_folder_carries_the_chart_files() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = tar_gz(&[
        ("grafana-chart/Chart.yaml", CHART_YAML),
        ("grafana-chart/values.yaml", b"replicas: 1\n"),
        ("grafana-chart/templates/deployment.yaml", DEPLOYMENT),
        (
            "grafana-chart/charts/dep-1.0.0.tgz",
            &tar_gz(&[("dep/Chart.yaml", b"name: dep\nversion: 1.0.0\n")]),
        ),
    ]);
    let chart_path = write(dir.path(), "upload.tgz", &tgz);
    let info = inspect_chart_archive("grafana", &chart_path, &BuildLimits::default()).unwrap();
    assert_eq!((info.name.as_str(), info.version.as_str(), info.files), ("grafana", "6.1.17", 4));

    let b = binders(
        json!([{"componentType": "HELM", "componentName": "grafana", "options": {"values": {"adminUser": "admin"}}}]),
        &["grafana"],
    );
    let charts = HashMap::from([("grafana".to_owned(), chart_path)]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let built = run(&b, &charts, &out).unwrap();
    assert_eq!(built.inspected.components[0].relative_path, "HELM_grafana.zip");
    let component = &built.component_files[0];
    let mut names = entry_names(component);
    names.sort();
    assert_eq!(
        names,
        [
            "chart/Chart.yaml",
            "chart/charts/dep-1.0.0.tgz",
            "chart/templates/deployment.yaml",
            "chart/values.yaml",
            "meta.yaml"
        ]
    );
    assert_eq!(read_entry(component, "chart/templates/deployment.yaml"), DEPLOYMENT);
    let doc: Y = serde_yaml::from_slice(&read_entry(component, "meta.yaml")).unwrap();
    assert_eq!(doc["metadata"]["name"], Y::from("helm-health-grafana"));
    let spec = &doc["spec"]["workload"]["spec"];
    assert_eq!(spec["repoPath"], Y::from("chart"));
    assert_eq!(
        (spec["chartName"].as_str(), spec["chartVersion"].as_str()),
        (Some("grafana"), Some("6.1.17"))
    );
    assert_eq!(spec["values"]["adminUser"], Y::from("admin"));
}

#[test]
fn helm_chart_zip_at_root_and_repository_charts() {
    let dir = tempfile::tempdir().unwrap();
    let chart_zip = write(
        dir.path(),
        "c.zip",
        &zip_of(&[("Chart.yaml", CHART_YAML), ("templates/d.yaml", DEPLOYMENT)], None),
    );
    let b = binders(
        json!([
            {"componentType": "HELM", "componentName": "grafana"},
            {"componentType": "HELM", "componentName": "redis", "options": {"repoUrl": "https://charts.example.com", "chartName": "redis", "chartVersion": "17.0.1"}},
            {"componentType": "K8S_JOB", "componentName": "seed", "options": {"job": {"name": "seed", "image": "reg/seed:1", "args": ["--once"]}, "env": {"MODE": "prod"}}}
        ]),
        &["grafana"],
    );
    let out = tempfile::tempdir().unwrap();
    let built = run(&b, &HashMap::from([("grafana".to_owned(), chart_zip)]), out.path()).unwrap();
    let paths: Vec<&str> = built.inspected.components.iter().map(|c| c.relative_path.as_str()).collect();
    assert_eq!(paths, ["HELM_grafana.zip", "HELM_redis.zip", "K8S_JOB_seed.zip"]);
    let mut names = entry_names(&built.component_files[0]);
    names.sort();
    assert_eq!(names, ["chart/Chart.yaml", "chart/templates/d.yaml", "meta.yaml"]);

    assert_eq!(entry_names(&built.component_files[1]), ["meta.yaml"]);
    let redis: Y = serde_yaml::from_slice(&read_entry(&built.component_files[1], "meta.yaml")).unwrap();
    let spec = &redis["spec"]["workload"]["spec"];
    assert_eq!(spec["repoUrl"], Y::from("https://charts.example.com"));
    assert_eq!(spec["chartVersion"], Y::from("17.0.1"));
    assert!(spec.get("repoPath").is_none());

    let job: Y = serde_yaml::from_slice(&read_entry(&built.component_files[2], "meta.yaml")).unwrap();
    assert_eq!(job["metadata"]["name"], Y::from("job-health-seed"));
    assert_eq!(job["spec"]["workload"]["kind"], Y::from("Job"));
    let spec = &job["spec"]["workload"]["spec"];
    assert_eq!(spec["job"]["image"], Y::from("reg/seed:1"));
    assert_eq!(spec["job"]["args"][0], Y::from("--once"));
    assert_eq!(spec["env"]["MODE"], Y::from("prod"));
}

#[test]
fn hostile_or_broken_charts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chart = &[("Chart.yaml", CHART_YAML)][..];
    let big = vec![b'a'; 4096];
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "dotdot",
            raw_tar_gz(b"../evil.yaml", tar::EntryType::Regular, b"x", chart),
            "invalid_build",
            "unsafe path",
        ),
        (
            "absolute",
            raw_tar_gz(b"/etc/cron.d/x", tar::EntryType::Regular, b"x", chart),
            "invalid_build",
            "unsafe path",
        ),
        (
            "symlink",
            raw_tar_gz(b"templates/link", tar::EntryType::Symlink, b"", chart),
            "invalid_build",
            "is a link",
        ),
        (
            "hardlink",
            raw_tar_gz(b"templates/link", tar::EntryType::Link, b"", chart),
            "invalid_build",
            "is a link",
        ),
        (
            "fifo",
            raw_tar_gz(b"templates/fifo", tar::EntryType::Fifo, b"", chart),
            "invalid_build",
            "unsupported type",
        ),
        (
            "duplicate",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("a.yaml", b"1"), ("./a.yaml", b"2")]),
            "invalid_build",
            "more than once",
        ),
        (
            "file-as-dir",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("a", b"1"), ("a/b", b"2")]),
            "invalid_build",
            "both a file and a folder",
        ),
        (
            "zip-dotdot",
            zip_of(&[("Chart.yaml", CHART_YAML), ("../x", b"1")], None),
            "invalid_build",
            "unsafe path",
        ),
        (
            "zip-symlink",
            zip_of(&[("Chart.yaml", CHART_YAML)], Some("templates/l")),
            "invalid_build",
            "is a link",
        ),
        (
            "nested-zip-by-name",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("files/x.zip", b"not really")]),
            "invalid_build",
            "zip archive",
        ),
        (
            "nested-zip-by-magic",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("files/x.bin", &zip_of(&[("a", b"b")], None))]),
            "invalid_build",
            "zip archive",
        ),
        ("no-chart-yaml", tar_gz(&[("templates/a.yaml", DEPLOYMENT)]), "invalid_build", "no Chart.yaml"),
        ("chart-yaml-too-deep", tar_gz(&[("a/b/Chart.yaml", CHART_YAML)]), "invalid_build", "no Chart.yaml"),
        (
            "chart-yaml-without-version",
            tar_gz(&[("Chart.yaml", b"name: x\n")]),
            "invalid_build",
            "no version",
        ),
        ("chart-yaml-not-yaml", tar_gz(&[("Chart.yaml", b"name: [\n")]), "invalid_build", "not valid YAML"),
        ("not-an-archive", b"hello, this is text".to_vec(), "invalid_build", "not a .tgz"),
        (
            "truncated-gzip",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("big", &big)])[..40].to_vec(),
            "invalid_build",
            "readable",
        ),
        (
            "too-much-data",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("a", &big), ("b", &big)]),
            "package_too_large",
            "unpacked chart",
        ),
        (
            "too-many-entries",
            tar_gz(&[("Chart.yaml", CHART_YAML), ("1", b""), ("2", b""), ("3", b""), ("4", b"")]),
            "package_too_large",
            "number of entries",
        ),
    ];
    let limits =
        BuildLimits { max_chart_uncompressed_bytes: 6000, max_chart_entries: 4, ..BuildLimits::default() };
    for (label, bytes, code, needle) in cases {
        let path = write(dir.path(), label, &bytes);
        let err = inspect_chart_archive("grafana", &path, &limits).expect_err(label);
        assert_eq!(err.code(), code, "{label}: {err}");
        assert!(err.to_string().contains(needle), "{label}: {err}");
        if code == "invalid_build" {
            assert_eq!(err.field_errors()[0].field, "chart.grafana", "{label}");
        }
    }
    let small = BuildLimits { max_chart_bytes: 10, ..BuildLimits::default() };
    let path = write(dir.path(), "ok.tgz", &tar_gz(chart));
    let err = inspect_chart_archive("grafana", &path, &small).unwrap_err();
    assert_eq!((err.code(), err.status()), ("package_too_large", 413));
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB of zeros in one entry compresses to ~64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let path = write(dir.path(), "bomb.tgz", &tar_gz(&[("Chart.yaml", CHART_YAML), ("zeros", &zeros)]));
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    let limits = BuildLimits { max_chart_uncompressed_bytes: 1 << 20, ..BuildLimits::default() };
    let err = inspect_chart_archive("g", &path, &limits).unwrap_err();
    assert_eq!(err.code(), "package_too_large", "{err}");
}

#[test]
fn chart_uploads_must_match_helm_components() {
    let dir = tempfile::tempdir().unwrap();
    let chart = write(dir.path(), "c.tgz", &tar_gz(&[("Chart.yaml", CHART_YAML)]));
    let helm = binders(json!([{"componentType": "HELM", "componentName": "grafana"}]), &["grafana"]);
    let err = run(&helm, &HashMap::new(), dir.path()).unwrap_err();
    assert_eq!(err.field_errors()[0].field, "chart.grafana");
    let micro = binders(health(), &[]);
    let err = run(&micro, &HashMap::from([("health".to_owned(), chart)]), dir.path()).unwrap_err();
    assert_eq!((err.code(), err.field_errors()[0].field.as_str()), ("invalid_build", "chart.health"));
    let err = run(&[], &HashMap::new(), dir.path()).unwrap_err();
    assert_eq!(err.code(), "invalid_build");
}

#[test]
fn version_and_package_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let b = binders(health(), &[]);
    let app_id = app();
    let mut req = AssembleRequest {
        app_id: &app_id,
        package_version: "latest",
        tags: &[],
        creator: "u",
        binders: &b,
        charts: &HashMap::new(),
        limits: &BuildLimits::default(),
        package_limits: &Limits::default(),
    };
    assert_eq!(assemble(&req, dir.path()).unwrap_err().code(), "invalid_version");
    req.package_version = "1.0.0+1";
    let tight = Limits { max_meta_bytes: 200, ..Limits::default() };
    req.package_limits = &tight;
    let err = assemble(&req, dir.path()).unwrap_err();
    assert_eq!((err.code(), err.status()), ("meta_too_large", 413));
}
