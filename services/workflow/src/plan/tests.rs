//! Planning the SREWorks launch fixtures.

use serde_json::json;
use sw_appconf::ApplicationConfiguration;
use sw_contracts::packages::ComponentWorkloadOut;

use super::*;

fn fixture(name: &str) -> ApplicationConfiguration {
    let path = sw_testkit::fixtures_dir().join("sreworks/launch").join(name);
    ApplicationConfiguration::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn workload(containers: &str) -> serde_json::Value {
    json!({"apiVersion": "core.oam.dev/v1alpha2", "kind": "Microservice", "metadata": {"name": "PLACEHOLDER_NAME"},
           "spec": {"containers": [{"name": containers, "image": "nginx"}], "env": {"DB": "db.local"}}})
}

fn workloads() -> Vec<ComponentWorkloadOut> {
    vec![
        ComponentWorkloadOut {
            component_type: "K8S_MICROSERVICE".into(),
            component_name: "server".into(),
            package_version: "1.0.0".into(),
            workload: workload("server"),
        },
        ComponentWorkloadOut {
            component_type: "K8S_JOB".into(),
            component_name: "job".into(),
            package_version: "1.0.0".into(),
            workload: workload("job"),
        },
    ]
}

fn input(w: &[ComponentWorkloadOut]) -> LaunchInput<'_> {
    LaunchInput {
        overrides: Overrides::default(),
        package_version: "1.0.0",
        workloads: w,
        webhooks_enabled: false,
        webhooks_private: false,
    }
}

#[test]
fn the_microservice_workflow_deploys_each_step_to_its_topology() {
    let w = workloads();
    let planned = build(&fixture("e2e_workflow_microservice.yaml"), &input(&w)).unwrap();
    let steps = &planned.plan.steps;
    assert_eq!(
        steps.iter().map(|s| s.step_type.as_str()).collect::<Vec<_>>(),
        ["deploy", "suspend", "deploy"]
    );
    let stages: Vec<_> = [0, 2]
        .iter()
        .map(|i| steps[*i].units[0].target.as_ref().unwrap().stage_id.clone().unwrap())
        .collect();
    assert_eq!(stages, ["dev", "stage"]);
    assert_eq!(steps[0].units.len(), 2);
    let t = steps[0].units[0].target.as_ref().unwrap();
    assert_eq!(
        (t.cluster_id.as_str(), t.namespace.as_str(), t.app_instance.as_str()),
        ("master", "default", "test-app-instance")
    );
}

#[test]
fn the_graph_workflow_is_a_dag_in_dependency_order() {
    let planned = build(&fixture("test_workflow_graph.yaml"), &input(&[])).unwrap();
    assert_eq!(planned.plan.mode, "DAG");
    let mut by_order: Vec<_> = planned.plan.steps.iter().map(|s| (s.order, s.index)).collect();
    by_order.sort();
    assert_eq!(by_order.iter().map(|(_, i)| *i).collect::<Vec<_>>(), [1, 2, 0, 3]);
    assert_eq!(planned.plan.steps[0].waits_for, [1, 2]);
    assert_eq!(planned.plan.steps[0].outputs[0].name, "var3");
    assert_eq!(planned.plan.steps[3].inputs[0].parameter_key, "aaa");
}

#[test]
fn helm_and_kustomize_launches_are_refused_naming_the_type() {
    for name in ["e2e_workflow_helm.yaml", "e2e_workflow_kustomize.yaml", "e2e_abm_kustomize.yaml"] {
        let errs = build(&fixture(name), &input(&[])).unwrap_err();
        assert!(
            errs.iter().any(
                |e| e.code.as_deref() == Some("unsupported_component_type") && e.message.contains("ABM_")
            ),
            "{name}: {errs:?}"
        );
    }
}

#[test]
fn data_outputs_feed_later_components_and_unknown_ones_are_refused() {
    let ac = ApplicationConfiguration::from_yaml(
        r#"
apiVersion: core.oam.dev/v1alpha2
kind: ApplicationConfiguration
metadata: {annotations: {appId: demo, clusterId: c1, namespaceId: ns}}
spec:
  components:
    - revisionName: K8S_MICROSERVICE|server|_
      dataOutputs:
        - name: dbHost
          fieldPath: '{{ spec.env.DB }}'
    - revisionName: K8S_JOB|job|_
      dependencies: [{component: K8S_MICROSERVICE|server}]
      dataInputs:
        - valueFrom: {dataOutputName: dbHost}
          toFieldPaths: [spec.env.UPSTREAM_DB]
"#,
    )
    .unwrap();
    let w = workloads();
    let planned = build(&ac, &input(&w)).unwrap();
    let job = &planned.plan.steps[0].units[1];
    assert_eq!(job.component.as_ref().unwrap().workload["env"]["UPSTREAM_DB"], "db.local");
    assert_eq!(job.depends_on, [0]);
    assert_eq!(planned.plan.data_outputs["dbHost"], "db.local");

    let bad = ac_with_input("nope");
    let errs = build(&bad, &input(&w)).unwrap_err();
    assert_eq!(errs[0].code.as_deref(), Some("unknown_data_output"));
}

fn ac_with_input(name: &str) -> ApplicationConfiguration {
    ApplicationConfiguration::from_yaml(&format!(
        r#"
apiVersion: core.oam.dev/v1alpha2
kind: ApplicationConfiguration
metadata: {{annotations: {{appId: demo, clusterId: c1, namespaceId: ns}}}}
spec:
  components:
    - revisionName: K8S_JOB|job|_
      dataInputs:
        - valueFrom: {{dataOutputName: {name}}}
          toFieldPaths: [spec.env.X]
"#
    ))
    .unwrap()
}

#[test]
fn steps_refuse_what_cannot_run() {
    let ac = ApplicationConfiguration::from_yaml(
        r#"
apiVersion: core.oam.dev/v1alpha2
kind: ApplicationConfiguration
metadata: {annotations: {appId: demo, clusterId: c1, namespaceId: ns}}
spec:
  components:
    - revisionName: K8S_JOB|job|_
  workflow:
    steps:
      - type: apply-components
        properties: {components: [{type: K8S_JOB, name: other}]}
      - type: apply-components
        properties: {policies: [missing]}
      - type: suspend
        properties: {duration: soon}
      - type: webhook
        properties: {url: "http://hooks.example/x"}
      - type: apply-components
        properties: {rollout: {type: partition}}
"#,
    )
    .unwrap();
    let w = workloads();
    let codes: Vec<_> = build(&ac, &input(&w)).unwrap_err().into_iter().filter_map(|e| e.code).collect();
    assert_eq!(
        codes,
        [
            "unknown_step_component",
            "unknown_policy",
            "invalid_duration",
            "webhook_not_configured",
            "unsupported_rollout"
        ]
    );
}

#[test]
fn durations_parse_in_the_usual_forms() {
    for (v, secs) in
        [(json!(30), 30), (json!("45"), 45), (json!("30s"), 30), (json!("5m"), 300), (json!("1h30m"), 5400)]
    {
        assert_eq!(parse_duration(&v).unwrap().as_secs(), secs, "{v}");
    }
    for v in [json!("5x"), json!("m"), json!(-1), json!([1]), json!("0s")] {
        assert!(parse_duration(&v).is_err(), "{v}");
    }
}
