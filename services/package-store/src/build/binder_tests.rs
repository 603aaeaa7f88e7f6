use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn fixtures() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks/apps")
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

fn no_charts() -> HashSet<String> {
    HashSet::new()
}

fn charts(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn fields(err: &BuildError) -> Vec<String> {
    err.field_errors().into_iter().map(|e| e.field).collect()
}

fn message_of<'a>(err: &'a [FieldError], field: &str) -> &'a str {
    &err.iter().find(|e| e.field == field).unwrap_or_else(|| panic!("no error at {field}: {err:?}")).message
}

/// The health build.yaml with its `build` blocks swapped for CI-built images.
fn health_with_images() -> String {
    let text = String::from_utf8(fixture("health/api/build.yaml.tpl")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for (list, image) in [
        ("containers", "reg.example.com/health/server:1.0"),
        ("initContainers", "reg.example.com/health/migrate:1.0"),
    ] {
        for c in doc["options"][list].as_sequence_mut().unwrap() {
            let m = c.as_mapping_mut().unwrap();
            m.remove("build");
            m.insert("image".into(), image.into());
        }
    }
    serde_yaml::to_string(&doc).unwrap()
}

#[test]
fn health_fixture_is_refused_for_its_image_builds() {
    let err = binders_from_yaml(&fixture("health/api/build.yaml.tpl"), &no_charts(), &BuildLimits::default())
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("image_build_unsupported", 422));
    assert_eq!(
        fields(&err),
        ["documents[0].options.containers[0].build", "documents[0].options.initContainers[0].build"]
    );
    assert!(err.field_errors()[0].message.contains("CI"), "{err}");
    assert!(err.to_string().contains("`image`"), "{err}");
}

#[test]
fn grafana_fixture_is_refused_for_its_git_chart() {
    let err = binders_from_yaml(
        &fixture("dataops/api/grafana/build.yaml.tpl"),
        &no_charts(),
        &BuildLimits::default(),
    )
    .unwrap_err();
    assert_eq!((err.code(), err.status()), ("invalid_build", 422));
    let errors = err.field_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let msg = message_of(&errors, "documents[0].options");
    for needle in ["git", "chart.grafana", "repoUrl", "chartName", "chartVersion", "repo, repoPath, branch"] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
}

#[test]
fn health_with_images_is_accepted_with_everything_it_names() {
    let binders =
        binders_from_yaml(health_with_images().as_bytes(), &no_charts(), &BuildLimits::default()).unwrap();
    assert_eq!(binders.len(), 1);
    let b = &binders[0];
    assert_eq!((b.component_type(), b.component_name.as_str()), (ComponentType::K8sMicroservice, "health"));
    assert_eq!(b.relative_path(), "K8S_MICROSERVICE_health.zip");
    let ComponentSpec::Microservice(o) = &b.spec else { panic!("{b:?}") };
    assert_eq!(o.containers.len(), 1);
    assert_eq!(o.containers[0].name, "server");
    assert_eq!(o.containers[0].image, "reg.example.com/health/server:1.0");
    assert_eq!(
        o.containers[0].ports,
        vec![ContainerPort { container_port: 7001, protocol: None, name: None }]
    );
    assert_eq!(o.init_containers[0].name, "db-migration");
    let env: Vec<&str> = o.env.iter().map(EnvVar::name).collect();
    assert_eq!(
        env,
        [
            "DATA_DB_HOST",
            "DATA_DB_PORT",
            "DATA_DB_HEALTH_NAME",
            "DATA_DB_USER",
            "DATA_DB_PASSWORD",
            "KAFKA_ENDPOINT",
            "DATA_DB_NAME"
        ]
    );
    assert_eq!(o.env[0].rendered_value(), "{{ Global.DATA_DB_HOST }}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = r#"
componentType: K8S_MICROSERVICE
componentName: api
options:
  kind: Pod
  replicas: -1
  containers:
    - name: Server
      ports: [{containerPort: 70000, protocol: HTTP}]
      command: [run, 1]
  env: ["1BAD", OK, OK]
---
componentType: LAMBDA
componentName: fn
---
componentType: K8S_JOB
componentName: api
options:
  containers: []
  extra: true
---
componentType: HELM
componentName: bad/name
options: {repoUrl: "ftp://x", chartName: c}
"#;
    let err = binders_from_yaml(yaml.as_bytes(), &charts(&["ghost"]), &BuildLimits::default()).unwrap_err();
    assert_eq!(err.code(), "invalid_build");
    let errors = err.field_errors();
    let expected = [
        "documents[0].options.kind",
        "documents[0].options.replicas",
        "documents[0].options.containers[0].name",
        "documents[0].options.containers[0].image",
        "documents[0].options.containers[0].command[1]",
        "documents[0].options.containers[0].ports[0].containerPort",
        "documents[0].options.containers[0].ports[0].protocol",
        "documents[0].options.env",
        "documents[1].componentType",
        "documents[2].options.extra",
        "documents[2].options.containers",
        "documents[2].componentName",
        "documents[3].componentName",
        "documents[3].options.chartVersion",
        "chart.ghost",
    ];
    for field in expected {
        assert!(errors.iter().any(|e| e.field == field), "missing {field} in {errors:#?}");
    }
    assert!(message_of(&errors, "documents[1].componentType").contains("K8S_MICROSERVICE, K8S_JOB, HELM"));
    assert!(message_of(&errors, "documents[2].componentName").contains("duplicate componentName \"api\""));
    let env_msgs: Vec<&str> =
        errors.iter().filter(|e| e.field == "documents[0].options.env").map(|e| e.message.as_str()).collect();
    assert_eq!(env_msgs.len(), 2, "{env_msgs:?}");
}

#[test]
fn helm_chart_sources() {
    let limits = BuildLimits::default();
    let uploaded = "componentType: HELM\ncomponentName: grafana\noptions:\n  values: {replicas: 2}\n";
    let b = binders_from_yaml(uploaded.as_bytes(), &charts(&["grafana"]), &limits).unwrap();
    let ComponentSpec::Helm(h) = &b[0].spec else { panic!() };
    assert_eq!(h.repository, None);
    assert_eq!(h.values["replicas"], json!(2));

    let repo = "componentType: HELM\ncomponentName: redis\noptions: {repoUrl: 'https://charts.example.com', chartName: redis, chartVersion: 17.0.1}\n";
    let b = binders_from_yaml(repo.as_bytes(), &no_charts(), &limits).unwrap();
    let ComponentSpec::Helm(h) = &b[0].spec else { panic!() };
    assert_eq!(h.repository.as_ref().unwrap().chart_version, "17.0.1");

    let err = binders_from_yaml(repo.as_bytes(), &charts(&["redis"]), &limits).unwrap_err();
    assert!(
        message_of(&err.field_errors(), "documents[0].options.repoUrl").contains("give one or the other")
    );

    let none = "componentType: HELM\ncomponentName: grafana\n";
    let err = binders_from_yaml(none.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert!(message_of(&err.field_errors(), "documents[0].options").contains("chart.grafana"));

    let bad_values = "componentType: HELM\ncomponentName: grafana\noptions: {values: [1]}\n";
    let err = binders_from_yaml(bad_values.as_bytes(), &charts(&["grafana"]), &limits).unwrap_err();
    assert_eq!(fields(&err), ["documents[0].options.values"]);
}

#[test]
fn helm_chart_path_is_accepted_only_with_its_upload() {
    let limits = BuildLimits::default();
    // What swcli sends: the build.yaml as written, the folder packed as part `chart.web`.
    let yaml = "componentType: HELM\ncomponentName: web\noptions:\n  chartPath: charts/web\n  values: {replicas: 1}\n";
    let b = binders_from_yaml(yaml.as_bytes(), &charts(&["web"]), &limits).unwrap();
    let ComponentSpec::Helm(h) = &b[0].spec else { panic!("{b:?}") };
    assert_eq!((h.repository.as_ref(), &h.values["replicas"]), (None, &json!(1)));
    // The hint names a folder on the client; the stored binder does not keep it.
    assert_eq!(serde_json::to_value(&b[0]).unwrap()["options"].get("chartPath"), None);

    let err = binders_from_yaml(yaml.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert_eq!((err.code(), err.status()), ("invalid_build", 422));
    assert_eq!(fields(&err), ["documents[0].options.chartPath", "documents[0].options"]);
    let errors = err.field_errors();
    let msg = message_of(&errors, "documents[0].options.chartPath");
    assert!(msg.contains("chart.web") && msg.contains("swcli"), "{msg}");
}

#[test]
fn a_chart_for_a_workload_is_an_error() {
    let yaml =
        "componentType: K8S_JOB\ncomponentName: init\noptions: {job: {name: init, image: 'busybox:1.36'}}\n";
    let err = binders_from_yaml(yaml.as_bytes(), &charts(&["init"]), &BuildLimits::default()).unwrap_err();
    assert!(message_of(&err.field_errors(), "chart.init").contains("only HELM"));
}

#[test]
fn jobs_take_the_sreworks_job_form_or_containers() {
    let limits = BuildLimits::default();
    let sreworks = "componentType: K8S_JOB\ncomponentName: postrun\noptions:\n  job: {name: init-job, image: 'reg/x:1'}\n  env: [MINIO_ENDPOINT]\n";
    let b = binders_from_yaml(sreworks.as_bytes(), &no_charts(), &limits).unwrap();
    let ComponentSpec::Job(o) = &b[0].spec else { panic!() };
    assert_eq!(o.job.as_ref().unwrap().image, "reg/x:1");
    let listed = "componentType: K8S_JOB\ncomponentName: postrun\noptions:\n  containers: [{name: a, image: 'reg/a:1', args: ['--once']}]\n  initContainers: [{name: a, image: 'reg/b:1'}]\n";
    let err = binders_from_yaml(listed.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert!(message_of(&err.field_errors(), "documents[0].options").contains("\"a\" is used more than once"));
    let job_with_build = "componentType: K8S_JOB\ncomponentName: postrun\noptions:\n  job: {name: init-job, build: {repo: x}}\n";
    let err = binders_from_yaml(job_with_build.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert_eq!(err.code(), "image_build_unsupported");
    assert_eq!(fields(&err), ["documents[0].options.job.build"]);
}

#[test]
fn image_build_wins_over_other_problems_but_lists_them() {
    let yaml = "componentType: K8S_MICROSERVICE\ncomponentName: a\noptions:\n  containers: [{name: a, build: {}}, {name: b}]\n";
    let err = binders_from_yaml(yaml.as_bytes(), &no_charts(), &BuildLimits::default()).unwrap_err();
    assert_eq!(err.code(), "image_build_unsupported");
    assert_eq!(
        fields(&err),
        ["documents[0].options.containers[0].build", "documents[0].options.containers[1].image"]
    );
}

#[test]
fn env_forms() {
    let yaml = "componentType: K8S_MICROSERVICE\ncomponentName: a\noptions:\n  containers: [{name: a, image: 'i:1'}]\n  env: {B: 2, A: x, C: true}\n";
    let b = binders_from_yaml(yaml.as_bytes(), &no_charts(), &BuildLimits::default()).unwrap();
    let ComponentSpec::Microservice(o) = &b[0].spec else { panic!() };
    let rendered: Vec<(String, String)> =
        o.env.iter().map(|e| (e.name().to_owned(), e.rendered_value())).collect();
    assert!(
        rendered.contains(&("B".into(), "2".into())) && rendered.contains(&("C".into(), "true".into())),
        "{rendered:?}"
    );
    let mixed = json!([{"componentType": "K8S_MICROSERVICE", "componentName": "a", "options": {
        "containers": [{"name": "a", "image": "i:1"}],
        "env": ["G", {"name": "L", "value": "v"}, {"name": "X", "value": {"no": 1}}]}}]);
    let err =
        binders_from_json(mixed.as_array().unwrap(), &no_charts(), &BuildLimits::default()).unwrap_err();
    assert_eq!(fields(&err), ["components[0].options.env[2]"]);
}

#[test]
fn json_binders_use_component_paths_and_round_trip() {
    let input = json!([
        {"componentType": "K8S_MICROSERVICE", "componentName": "api", "options": {
            "kind": "StatefulSet", "replicas": 3,
            "containers": [{"name": "api", "image": "reg/api:2", "command": ["/bin/api"], "args": ["--port", "80"],
                            "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]}],
            "initContainers": [{"name": "migrate", "image": "reg/migrate:2"}],
            "env": ["DB_HOST", {"name": "MODE", "value": "prod"}]}},
        {"componentType": "K8S_JOB", "componentName": "seed@db", "options": {"job": {"name": "seed", "image": "reg/seed:1"}}},
        {"componentType": "HELM", "componentName": "redis", "options": {
            "repoUrl": "oci://charts.example.com/bitnami", "chartName": "redis", "chartVersion": "17.0.1",
            "values": {"auth": {"enabled": false}}}},
        {"componentType": "HELM", "componentName": "grafana", "options": {}}
    ]);
    let limits = BuildLimits::default();
    let binders = binders_from_json(input.as_array().unwrap(), &charts(&["grafana"]), &limits).unwrap();
    assert_eq!(binders.len(), 4);
    let stored = serde_json::to_value(&binders).unwrap();
    // What we store reads back through the validator and through serde unchanged.
    let again = binders_from_json(stored.as_array().unwrap(), &charts(&["grafana"]), &limits).unwrap();
    assert_eq!(again, binders);
    let via_serde: Vec<ComponentBinder> = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(via_serde, binders);
    assert_eq!(stored[1]["componentType"], "K8S_JOB");
    assert_eq!(stored[2]["options"]["chartName"], "redis");

    let err = binders_from_json(&[json!("nope")], &no_charts(), &limits).unwrap_err();
    assert_eq!(fields(&err), ["components[0]"]);
    let err = binders_from_json(&[], &no_charts(), &limits).unwrap_err();
    assert_eq!(fields(&err), ["components"]);
}

#[test]
fn spec_guards() {
    let limits = BuildLimits { max_spec_bytes: 64, max_components: 2, ..BuildLimits::default() };
    let big = format!("componentName: {}\n", "a".repeat(100));
    assert_eq!(binders_from_yaml(big.as_bytes(), &no_charts(), &limits).unwrap_err().status(), 413);
    let many = "a: 1\n---\na: 2\n---\na: 3\n";
    let err = binders_from_yaml(many.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert_eq!(err.code(), "package_too_large");

    let limits = BuildLimits::default();
    let err = binders_from_yaml(b"\xff\xfe", &no_charts(), &limits).unwrap_err();
    assert_eq!(fields(&err), ["build.yaml"]);
    let err = binders_from_yaml(b"a: [1\n", &no_charts(), &limits).unwrap_err();
    assert_eq!(fields(&err), ["documents[0]"]);
    assert!(err.to_string().contains("not valid YAML"));
    // Empty documents are skipped but keep their place in the numbering.
    let err = binders_from_yaml(b"---\n---\ncomponentType: HELM\n", &no_charts(), &limits).unwrap_err();
    assert!(fields(&err).iter().all(|f| f.starts_with("documents[1]")), "{err:?}");
    let err = binders_from_yaml(b"---\n", &no_charts(), &limits).unwrap_err();
    assert_eq!(fields(&err), ["documents"]);

    let mut bomb = format!("componentType: HELM\nx: &a \"{}\"\ny: [", "z".repeat(200));
    bomb.push_str(&vec!["*a"; 40].join(","));
    bomb.push_str("]\n");
    let err = binders_from_yaml(bomb.as_bytes(), &no_charts(), &limits).unwrap_err();
    assert!(err.to_string().contains("expands"), "{err}");
}

#[test]
fn component_names() {
    for ok in ["health", "system-env@system-env", "a.b_c-D9", "helm-demo-chart@0.0.1@test"] {
        assert!(check_component_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a/b", "..", "a..b", "a b", "a\\b", "日本", &"a".repeat(MAX_COMPONENT_NAME_LEN + 1)] {
        assert!(check_component_name(bad).is_err(), "{bad:?}");
    }
    assert_eq!(chart_part_component("chart.grafana"), Some("grafana"));
    assert_eq!(chart_part_component("chart."), None);
    assert_eq!(chart_part_component("build.yaml"), None);
}

proptest! {
    /// An accepted name always makes a single, safe file name for its component zip.
    #[test]
    fn accepted_names_make_safe_file_names(name in "[a-zA-Z0-9@._/ -]{0,40}") {
        if check_component_name(&name).is_ok() {
            let file = format!("K8S_JOB_{name}.zip");
            let path = std::path::Path::new(&file);
            prop_assert_eq!(path.components().count(), 1);
            prop_assert!(matches!(path.components().next(), Some(std::path::Component::Normal(_))));
            prop_assert!(!name.contains(".."));
        }
    }

    /// The validator never panics, whatever the documents hold.
    #[test]
    fn validator_never_panics(doc in arb_json(3)) {
        let _ = binders_from_json(&[doc], &no_charts(), &BuildLimits::default());
    }
}

fn arb_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "componentType",
        "componentName",
        "options",
        "containers",
        "initContainers",
        "job",
        "name",
        "image",
        "ports",
        "containerPort",
        "env",
        "build",
        "repoUrl",
        "chartName",
        "chartVersion",
        "values",
        "kind",
        "replicas",
    ]);
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec!["K8S_MICROSERVICE", "K8S_JOB", "HELM", "api", "reg/x:1", "", "a/b", "TCP"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(depth, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
