//! The real SREWorks launch files (`../shared/fixtures/sreworks`) parse as they are, and the
//! health app's launch example resolves against the health package's component.

use std::path::PathBuf;

use serde_json::{Value, json};
use sw_appconf::{ApplicationConfiguration, Outcome, Overrides, PackagedComponent, VersionSel, resolve};

fn sreworks() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks")
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_fixture_launch_file_parses() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sreworks().join("launch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.push(sreworks().join("apps/health/build/launch-example.yaml"));
    files.push(sreworks().join("apps/health/build/launch.yaml.tpl"));
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    for f in &files {
        let ac =
            ApplicationConfiguration::from_yaml(&read(f)).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(ac.api_version.as_deref(), Some("core.oam.dev/v1alpha2"), "{}", f.display());
    }
}

#[test]
fn the_fixtures_keep_what_later_steps_need() {
    let load = |name: &str| {
        ApplicationConfiguration::from_yaml(&read(&sreworks().join("launch").join(name))).unwrap()
    };

    let ac = load("k8s_microservice.yaml");
    let a = &ac.metadata.annotations;
    assert_eq!(
        (a.app_id.as_deref(), a.cluster_id.as_deref(), a.namespace_id.as_deref(), a.stage_id.as_deref()),
        (Some("testapp"), Some("master"), Some("default"), Some("dev"))
    );
    assert_eq!(a.app_package_id.as_deref(), Some("PLACEHOLDER_APP_PACKAGE_ID"));
    assert_eq!(a.app_instance_name.as_deref(), Some("test-app-instance"));
    let kinds: Vec<&str> = ac.spec.components.iter().map(|c| c.revision_name.component_type()).collect();
    assert_eq!(kinds, ["RESOURCE_ADDON", "K8S_MICROSERVICE", "K8S_JOB"]);
    let tf = &ac.spec.components[0].parameter_values[1];
    assert_eq!(
        (tf.name.as_str(), tf.to_field_paths.as_slice()),
        ("git", &["spec.configuration.git".to_owned()][..])
    );
    assert_eq!(tf.value, json!({ "repo": "pe3/terraform-test.git", "branch": "master" }));
    assert_eq!(ac.spec.components[1].dependencies[0].component, "RESOURCE_ADDON|terraform@test");
    assert_eq!(ac.spec.parameter_values[0].value, json!(999999999999999u64));

    // Unquoted `{{ options.x }}` in annotations and scope names is read as the template text.
    let ac = load("test_ac.yaml");
    assert_eq!(ac.metadata.annotations.app_package_id.as_deref(), Some("{{ options.appPackageId }}"));
    assert_eq!(ac.spec.components[0].scopes[0].scope_ref.name.as_deref(), Some("{{ options.clusterId }}"));

    let ac = load("e2e_workflow_microservice.yaml");
    assert_eq!(ac.spec.policies[0].policy_type, "topology");
    assert_eq!(ac.spec.policies[0].properties["namespace"], "default");
    let steps = &ac.spec.workflow.as_ref().unwrap().steps;
    let types: Vec<&str> = steps.iter().map(|s| s.step_type.as_str()).collect();
    assert_eq!(types, ["deploy", "suspend", "deploy"]);

    let ac = load("test_workflow_graph.yaml");
    assert!(ac.spec.components.is_empty());
    assert_eq!(ac.spec.workflow.unwrap().steps[0].extra["inputs"][0]["from"], "var1");

    let ac = load("e2e_workflow_helm.yaml");
    assert_eq!(ac.spec.components[0].revision_name.version(), &VersionSel::Package);
    assert_eq!(ac.spec.components[0].revision_name.name(), "helm-demo-chart@0.0.1@test");
}

fn health_workload() -> Value {
    let text = read(&sreworks().join("apps/health/build/K8S_MICROSERVICE_health.zip.dir/meta.yaml"));
    let meta: Value = serde_yaml::from_str(&text).unwrap();
    meta["spec"]["workload"].clone()
}

#[test]
fn the_health_launch_example_resolves_with_the_real_component() {
    let ac =
        ApplicationConfiguration::from_yaml(&read(&sreworks().join("apps/health/build/launch-example.yaml")))
            .unwrap();
    let workload = health_workload();
    let overrides = Overrides {
        cluster: Some("master".into()),
        namespace: Some("sreworks".into()),
        stage: Some("prod".into()),
        ..Overrides::default()
    };
    let mut deployed = Vec::new();
    let mut skipped = Vec::new();
    for c in &ac.spec.components {
        let pkg = (c.revision_name.name() == "health").then_some(PackagedComponent {
            package_version: "22.5.1+20231013224500845346",
            workload: &workload,
        });
        match resolve(&ac, c, pkg, &overrides).unwrap() {
            Outcome::Deploy(r) => deployed.push(*r),
            Outcome::Skip { reason } => skipped.push((c.revision_name.label(), reason)),
        }
    }
    let labels: Vec<&str> = skipped.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "INTERNAL_ADDON|productopsv2",
            "RESOURCE_ADDON|system-env@system-env",
            "INTERNAL_ADDON|developmentmeta",
            "INTERNAL_ADDON|appmeta"
        ]
    );
    assert!(skipped[1].1.starts_with("RESOURCE_ADDON: "), "{}", skipped[1].1);
    let [health] = deployed.as_slice() else { panic!("{deployed:?}") };
    assert!(health.warnings.is_empty(), "{:?}", health.warnings);
    let t = &health.target;
    assert_eq!(
        (t.cluster_id.as_str(), t.namespace.as_str(), t.stage_id.as_deref(), t.app_id.as_str()),
        ("master", "sreworks", Some("prod"), "health")
    );
    assert_eq!((t.app_instance.as_str(), t.component_instance.as_str()), ("prod-health", "health"));
    let c = &health.component;
    assert_eq!((c.component_type.as_str(), c.component_name.as_str()), ("K8S_MICROSERVICE", "health"));
    assert_eq!(c.package_version.as_deref(), Some("22.5.1+20231013224500845346"));
    assert_eq!(c.workload["replicas"], 1);
    assert_eq!(c.workload["kind"], "Deployment");
    assert_eq!(
        c.workload["env"],
        json!({
            "DATA_DB_USER": "root",
            "KAFKA_ENDPOINT": "prod-dataops-kafka.sreworks-dataops:9092",
            "DATA_DB_NAME": "sw_saas_health",
            "DATA_DB_PASSWORD": "cb56b5is5e21_c359b42223",
            "DATA_DB_HEALTH_NAME": "sw_saas_health",
            "DATA_DB_HOST": "prod-dataops-mysql.sreworks-dataops",
            "DATA_DB_PORT": "3306",
        })
    );
    assert!(!c.workload.to_string().contains("PLACEHOLDER"), "{}", c.workload);
    let names: Vec<&str> = c.traits.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["service.trait.abm.io", "gateway.trait.abm.io"]);
    assert_eq!(c.traits[1].spec["serviceName"], "prod-health-health.sreworks");
    assert_eq!(c.traits[1].runtime.as_deref(), Some("post"));
}
