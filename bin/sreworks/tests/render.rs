//! `sreworks render` on the real SREWorks health package and its launch example: the built binary,
//! run as a user would, offline.
//!
//! The package is re-zipped from the fixture (`X.zip.dir/` → nested `X.zip`), like the
//! package-store tests do; the fixture lacks its three `INTERNAL_ADDON` component folders, so
//! those get stand-in zips holding only a `meta.yaml` (they are skipped anyway).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const MISSING_IN_FIXTURE: [&str; 3] =
    ["INTERNAL_ADDON_productopsv2.zip", "INTERNAL_ADDON_developmentmeta.zip", "INTERNAL_ADDON_appmeta.zip"];

fn health_dir() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks/apps/health/build")
}

fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The health package as a zip: every `*.zip.dir` folder zipped, other files as they are.
fn health_package() -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut children: Vec<_> = std::fs::read_dir(health_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    children.sort();
    for path in children {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
                .collect();
            files.sort();
            entries.push((name.strip_suffix(".dir").unwrap().to_owned(), zip_of(&files)));
        } else {
            entries.push((name, std::fs::read(&path).unwrap()));
        }
    }
    for z in MISSING_IN_FIXTURE {
        let meta = format!(
            "apiVersion: core.oam.dev/v1alpha2\nkind: Component\nmetadata:\n  name: {}\nspec: {{}}\n",
            z.trim_end_matches(".zip")
        );
        entries.push((z.to_owned(), zip_of(&[("meta.yaml".to_owned(), meta.into_bytes())])));
    }
    zip_of(&entries)
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("health.zip"), health_package()).unwrap();
        Self { dir }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn render(&self, launch: &Path, extra: &[&str]) -> Output {
        let package = self.dir.path().join("health.zip");
        Command::new(env!("CARGO_BIN_EXE_sreworks"))
            .arg("render")
            .arg("--launch")
            .arg(launch)
            .arg("--package")
            .arg(package)
            .args(extra)
            .output()
            .unwrap()
    }
}

fn launch_example() -> String {
    std::fs::read_to_string(health_dir().join("launch-example.yaml")).unwrap()
}

const PLACE: [&str; 6] = ["--cluster", "master", "--namespace", "sreworks", "--stage", "prod"];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {objects:#?}");
    found[0]
}

#[test]
fn renders_the_health_launch_example_as_yaml() {
    let d = Dir::new();
    let launch = d.file("launch.yaml", &launch_example());
    let out = d.render(&launch, &PLACE);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");

    assert!(stdout.starts_with("---\n# Source: K8S_MICROSERVICE|health\n"), "{stdout}");
    let objects: Vec<Value> =
        stdout.split("---\n").filter(|d| !d.is_empty()).map(|d| serde_yaml::from_str(d).unwrap()).collect();
    let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "Ingress"]);
    for o in &objects {
        assert_eq!(o["metadata"]["name"], "prod-health-health", "{o:#}");
        assert_eq!(o["metadata"]["namespace"], "sreworks");
        assert_eq!(o["metadata"]["labels"]["sreworks.io/stage"], "prod");
        assert_eq!(o["metadata"]["annotations"]["sreworks.io/revision"], "1");
    }
    assert!(!stdout.contains("PLACEHOLDER"), "{stdout}");
    assert!(!stdout.contains("{{"), "{stdout}");

    let deployment = find(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let health = pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "health").unwrap();
    let env = |name: &str| {
        health["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
    };
    assert_eq!(env("DATA_DB_PORT"), Some(json!("3306")));
    assert_eq!(env("DATA_DB_HOST"), Some(json!("prod-dataops-mysql.sreworks-dataops")));
    assert_eq!(env("KAFKA_ENDPOINT"), Some(json!("prod-dataops-kafka.sreworks-dataops:9092")));
    assert_eq!(pod["initContainers"][0]["name"], "db-migration");

    let service = find(&objects, "Service");
    assert_eq!(service["spec"]["ports"], json!([{ "port": 80, "targetPort": 7001, "protocol": "TCP" }]));

    // From `gateway.trait.abm.io`: `/health/**` → prefix `/health`, to the Service on port 80.
    let ingress = find(&objects, "Ingress");
    let path = &ingress["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["path"], "/health");
    assert_eq!(path["pathType"], "Prefix");
    assert_eq!(path["backend"]["service"], json!({ "name": "prod-health-health", "port": { "number": 80 } }));
    assert_eq!(ingress["metadata"]["annotations"]["sreworks.io/gateway-auth"], "true");

    for skipped in [
        "skipped INTERNAL_ADDON|productopsv2: INTERNAL_ADDON",
        "skipped RESOURCE_ADDON|system-env@system-env: RESOURCE_ADDON",
        "skipped INTERNAL_ADDON|developmentmeta",
        "skipped INTERNAL_ADDON|appmeta",
    ] {
        assert!(stderr.contains(skipped), "{skipped} not in: {stderr}");
    }
}

#[test]
fn json_output_is_one_list_and_flags_change_the_placement() {
    let d = Dir::new();
    let launch = d.file("launch.yaml", &launch_example());
    let out = d.render(
        &launch,
        &[
            "--cluster",
            "c1",
            "--namespace",
            "ns1",
            "--stage",
            "dev",
            "--app-instance",
            "blue",
            "--revision",
            "7",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(objects.len(), 3);
    let deployment = find(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "blue-health");
    assert_eq!(deployment["metadata"]["namespace"], "ns1");
    assert_eq!(deployment["metadata"]["annotations"]["sreworks.io/revision"], "7");
    assert_eq!(deployment["metadata"]["labels"]["sreworks.io/stage"], "dev");
    // The gateway trait names `{{ Global.STAGE_ID }}-health-health`, whatever the app instance.
    let ingress = find(&objects, "Ingress");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "dev-health-health"
    );
}

#[test]
fn an_unresolved_parameter_fails_naming_it() {
    let d = Dir::new();
    let example = launch_example();
    let without_port = example.replace("    - name: Global.DATA_DB_PORT\n      value: '3306'\n", "");
    assert_ne!(without_port, example, "the fixture changed");
    let launch = d.file("launch.yaml", &without_port);
    let out = d.render(&launch, &PLACE);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(stderr.contains("K8S_MICROSERVICE|health"), "{stderr}");
    assert!(
        stderr.contains("Global.DATA_DB_PORT (undefined; used at workload spec.env.DATA_DB_PORT)"),
        "{stderr}"
    );
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let d = Dir::new();
    let cases: [(&str, String, &[&str], &str); 5] = [
        ("not yaml", "kind: [".into(), &PLACE, "not valid YAML"),
        (
            "unknown component",
            launch_example().replace("K8S_MICROSERVICE|health|_", "K8S_MICROSERVICE|nope|_"),
            &PLACE,
            "K8S_MICROSERVICE|nope: not in the app package",
        ),
        (
            "unknown trait",
            launch_example().replace("name: gateway.trait.abm.io", "name: teleport.trait.abm.io"),
            &PLACE,
            "unknown trait 'teleport.trait.abm.io'",
        ),
        (
            "invalid trait",
            launch_example().replace("path: /health/**", "path: health"),
            &PLACE,
            "path: must start with '/'",
        ),
        ("no namespace", launch_example(), &["--cluster", "master"], "no namespace"),
    ];
    for (what, launch_text, args, expected) in cases {
        let launch = d.file("launch.yaml", &launch_text);
        let out = d.render(&launch, args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{what}: succeeded");
        assert!(stderr.contains(expected), "{what}: {expected:?} not in: {stderr}");
    }
}
