//! Launch validation: every SREWorks fixture is accepted or refused with exactly the expected
//! codes; dependency and workflow order; cycles and multiple problems; random graphs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};
use sw_appconf::{
    ApplicationConfiguration, ComponentAction, LaunchError, LaunchPlan, StepType, WorkflowMode,
    validate_launch,
};

fn launch_dir() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks").join("launch")
}

fn load(name: &str) -> ApplicationConfiguration {
    let path = launch_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ApplicationConfiguration::from_yaml(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn from_json(v: Value) -> ApplicationConfiguration {
    // JSON is YAML.
    ApplicationConfiguration::from_yaml(&v.to_string()).unwrap()
}

fn codes(errors: &[LaunchError]) -> Vec<&'static str> {
    errors.iter().map(LaunchError::code).collect()
}

fn refused(ac: &ApplicationConfiguration) -> Vec<LaunchError> {
    match validate_launch(ac) {
        Ok(plan) => panic!("accepted: {plan:?}"),
        Err(e) => e,
    }
}

fn accepted(ac: &ApplicationConfiguration) -> LaunchPlan {
    validate_launch(ac).unwrap_or_else(|e| panic!("refused: {e:?}"))
}

fn labels(plan: &LaunchPlan) -> Vec<&str> {
    plan.components.iter().map(|c| c.label.as_str()).collect()
}

/// Every file of the fixture directory has an expectation here, so a new fixture fails until
/// one is written.
#[test]
fn every_launch_fixture_is_accepted_or_refused_with_the_expected_codes() {
    let expected: &[(&str, &[(&str, &str)])] = &[
        (
            "e2e_abm_kustomize.yaml",
            &[("unsupported_component_type", "ABM_KUSTOMIZE"), ("unsupported_component_type", "ABM_STATUS")],
        ),
        ("e2e_workflow_apply_components.yaml", &[("unsupported_component_type", "ABM_HELM")]),
        ("e2e_workflow_helm.yaml", &[("unsupported_component_type", "ABM_HELM")]),
        ("e2e_workflow_kustomize.yaml", &[("unsupported_component_type", "ABM_KUSTOMIZE")]),
        ("e2e_workflow_microservice.yaml", &[]),
        ("e2e_workflow_rollout.yaml", &[("unsupported_component_type", "ABM_HELM")]),
        ("k8s_microservice.yaml", &[]),
        ("test_ac.yaml", &[]),
        // No mode, but step 1 reads outputs of steps 2 and 3: run as a DAG (see the DAG tests).
        ("test_workflow_graph.yaml", &[]),
    ];
    let mut files: Vec<String> = std::fs::read_dir(launch_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let listed: Vec<String> = expected.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(files, listed, "every fixture needs an expectation");
    for (name, want) in expected {
        let ac = load(name);
        match validate_launch(&ac) {
            Ok(_) => assert!(want.is_empty(), "{name}: accepted, expected {want:?}"),
            Err(errors) => {
                assert_eq!(
                    codes(&errors),
                    want.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
                    "{name}: {errors:?}"
                );
                for (e, (_, mention)) in errors.iter().zip(want.iter()) {
                    let msg = e.to_string();
                    assert!(msg.contains(mention), "{name}: {msg}");
                }
            }
        }
    }
}

#[test]
fn refused_types_are_named_with_the_deployable_ones() {
    let errors = refused(&load("e2e_workflow_helm.yaml"));
    let msg = errors[0].to_string();
    assert!(msg.contains("ABM_HELM|helm-demo-chart@0.0.1@test"), "{msg}");
    assert!(msg.contains("type ABM_HELM"), "{msg}");
    assert!(msg.contains("K8S_MICROSERVICE, K8S_JOB, K8S_MANIFESTS"), "{msg}");
    let errors = refused(&from_json(json!({
        "kind": "ApplicationConfiguration",
        "spec": { "components": [
            { "revisionName": "HELM|chart|_" },
            { "revisionName": "SOMETHING_NEW|x|_" },
            { "revisionName": "TRAIT_ADDON|t|_" },
        ]}
    })));
    assert_eq!(codes(&errors), ["unsupported_component_type", "unsupported_component_type"]);
    assert!(errors[0].to_string().contains("type HELM"));
    assert!(errors[1].to_string().contains("type SOMETHING_NEW"));
}

#[test]
fn addons_are_skipped_and_satisfy_dependencies() {
    let plan = accepted(&load("k8s_microservice.yaml"));
    assert_eq!(labels(&plan), ["RESOURCE_ADDON|terraform@test", "K8S_MICROSERVICE|server", "K8S_JOB|job"]);
    assert!(
        matches!(&plan.components[0].action, ComponentAction::Skip { reason } if reason.contains("RESOURCE_ADDON"))
    );
    assert_eq!(plan.components[1].action, ComponentAction::Deploy);
    assert_eq!(plan.components[1].depends_on, [0]);
    assert!(plan.workflow.implicit);
    assert_eq!(plan.workflow.steps.len(), 1);
    assert_eq!(plan.workflow.steps[0].step_type, StepType::Deploy);

    let plan = accepted(&load("test_ac.yaml"));
    assert!(matches!(plan.components[0].action, ComponentAction::Skip { .. }));
}

#[test]
fn components_deploy_in_dependency_order_keeping_launch_order_otherwise() {
    let plan = accepted(&from_json(json!({
        "kind": "ApplicationConfiguration",
        "spec": { "components": [
            { "revisionName": "K8S_JOB|a|_", "dependencies": [{ "component": "K8S_MICROSERVICE|c" }] },
            { "revisionName": "K8S_JOB|b|_" },
            { "revisionName": "K8S_MICROSERVICE|c|1.0", "dependencies": [{ "component": "RESOURCE_ADDON|db@mysql|_" }] },
            { "revisionName": "RESOURCE_ADDON|db@mysql|_" },
            { "revisionName": "K8S_JOB|d|_" },
        ]}
    })));
    assert_eq!(
        labels(&plan),
        ["K8S_JOB|b", "RESOURCE_ADDON|db@mysql", "K8S_MICROSERVICE|c", "K8S_JOB|a", "K8S_JOB|d"]
    );
}

#[test]
fn a_dependency_cycle_names_its_members_only() {
    let errors = refused(&from_json(json!({
        "kind": "ApplicationConfiguration",
        "spec": { "components": [
            { "revisionName": "K8S_JOB|a|_", "dependencies": [{ "component": "K8S_JOB|b" }] },
            { "revisionName": "K8S_JOB|b|_", "dependencies": [{ "component": "K8S_JOB|c" }] },
            { "revisionName": "K8S_JOB|c|_", "dependencies": [{ "component": "K8S_JOB|a" }] },
            { "revisionName": "K8S_JOB|after|_", "dependencies": [{ "component": "K8S_JOB|a" }] },
            { "revisionName": "K8S_JOB|self|_", "dependencies": [{ "component": "K8S_JOB|self" }] },
        ]}
    })));
    assert_eq!(
        errors,
        [
            LaunchError::DependencyCycle {
                members: vec!["K8S_JOB|a".into(), "K8S_JOB|b".into(), "K8S_JOB|c".into()]
            },
            LaunchError::DependencyCycle { members: vec!["K8S_JOB|self".into()] },
        ]
    );
    assert_eq!(errors[0].code(), "dependency_cycle");
    assert_eq!(errors[0].to_string(), "dependency cycle among components K8S_JOB|a, K8S_JOB|b, K8S_JOB|c");
}

#[test]
fn every_problem_is_listed_at_once() {
    let errors = refused(&from_json(json!({
        "kind": "ApplicationConfiguration",
        "spec": {
            "components": [
                { "revisionName": "ABM_HELM|chart|_" },
                { "revisionName": "K8S_JOB|a|_", "dependencies": [{ "component": "K8S_JOB|missing" }] },
                { "revisionName": "K8S_JOB|a|2" },
            ],
            "workflow": {
                "mode": "PARALLEL",
                "steps": [
                    { "type": "deploy", "name": "one", "outputs": [{ "name": "x" }] },
                    { "type": "teleport", "name": "one", "outputs": [{ "name": "x" }] },
                    { "type": "webhook", "inputs": [{ "from": "nowhere" }] },
                    { "type": "suspend", "inputs": "oops" },
                ]
            }
        }
    })));
    assert_eq!(
        codes(&errors),
        [
            "unsupported_component_type",
            "duplicate_component",
            "unknown_dependency",
            "invalid_workflow_mode",
            "duplicate_step",
            "unknown_step_type",
            "invalid_step",
            "duplicate_output",
            "unknown_step_input",
        ],
        "{errors:#?}"
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(text[1].contains("K8S_JOB|a is listed 2 times"), "{text:?}");
    assert!(text[2].contains("K8S_JOB|missing"), "{text:?}");
    assert!(text[3].contains("PARALLEL"), "{text:?}");
    assert!(text[5].contains("teleport"), "{text:?}");
    assert!(text[6].contains("#4 (suspend)"), "{text:?}");
    assert!(text[7].contains("one, one"), "{text:?}");
    assert!(text[8].contains("#3 (webhook)") && text[8].contains("nowhere"), "{text:?}");
}

#[test]
fn the_workflow_graph_fixture_runs_in_dag_order_without_a_mode() {
    let plan = accepted(&load("test_workflow_graph.yaml"));
    assert_eq!(plan.workflow.mode, WorkflowMode::Dag, "inferred from the forward references");
    assert_eq!(plan.workflow.order, [1, 2, 0, 3]);
}

#[test]
fn the_workflow_graph_fixture_is_refused_when_told_to_run_step_by_step() {
    let mut ac = load("test_workflow_graph.yaml");
    ac.spec.workflow.as_mut().unwrap().extra.insert("mode".into(), json!("STEP_BY_STEP"));
    let codes: Vec<(&str, String)> = validate_launch(&ac)
        .expect_err("forward references cannot run as listed")
        .iter()
        .map(|e| (e.code(), e.to_string()))
        .collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes.iter().all(|(c, _)| *c == "input_from_later_step"), "{codes:?}");
    assert!(codes[0].1.contains("deploy-env-e2e-2") && codes[1].1.contains("deploy-env-e2e-3"), "{codes:?}");
}

#[test]
fn the_workflow_graph_fixture_runs_in_dag_order() {
    let mut ac = load("test_workflow_graph.yaml");
    ac.spec.workflow.as_mut().unwrap().extra.insert("mode".into(), json!("DAG"));
    let plan = accepted(&ac);
    let wf = &plan.workflow;
    assert_eq!(wf.mode, WorkflowMode::Dag);
    assert!(!wf.implicit);
    assert_eq!(wf.steps[0].waits_for, [1, 2]);
    assert_eq!(wf.steps[3].waits_for, [0]);
    assert_eq!(wf.order, [1, 2, 0, 3]);
    let pos = |i: usize| wf.order.iter().position(|&x| x == i).unwrap();
    assert!(pos(1) < pos(0) && pos(2) < pos(0) && pos(0) < pos(3));
    assert!(plan.components.is_empty());
}

#[test]
fn step_by_step_runs_as_listed() {
    let plan = accepted(&load("e2e_workflow_microservice.yaml"));
    let wf = &plan.workflow;
    assert_eq!(wf.mode, WorkflowMode::StepByStep);
    let types: Vec<StepType> = wf.steps.iter().map(|s| s.step_type).collect();
    assert_eq!(types, [StepType::Deploy, StepType::Suspend, StepType::Deploy]);
    assert_eq!(wf.order, [0, 1, 2]);
    assert_eq!(labels(&plan), ["K8S_MICROSERVICE|server", "K8S_JOB|job"]);
}

#[test]
fn a_workflow_cycle_names_its_members() {
    let errors = refused(&from_json(json!({
        "kind": "ApplicationConfiguration",
        "spec": { "workflow": { "mode": "DAG", "steps": [
            { "type": "deploy", "name": "start", "outputs": [{ "name": "s" }] },
            { "type": "apply-components", "name": "a", "inputs": [{ "from": "b_out" }, { "from": "s" }], "outputs": [{ "name": "a_out" }] },
            { "type": "rollout-promotion", "name": "b", "inputs": [{ "from": "a_out" }], "outputs": [{ "name": "b_out" }] },
            { "type": "webhook", "name": "end", "inputs": [{ "from": "b_out" }] },
        ]}}
    })));
    assert_eq!(errors, [LaunchError::WorkflowCycle { members: vec!["a".into(), "b".into()] }]);
    assert_eq!(errors[0].code(), "workflow_cycle");
    assert!(errors[0].to_string().contains("a, b"));
}

fn jobs(waits_for: &[Vec<usize>]) -> ApplicationConfiguration {
    let components: Vec<Value> = waits_for
        .iter()
        .enumerate()
        .map(|(i, deps)| {
            json!({
                "revisionName": format!("K8S_JOB|c{i}|_"),
                "dependencies": deps.iter().map(|d| json!({ "component": format!("K8S_JOB|c{d}") })).collect::<Vec<_>>(),
            })
        })
        .collect();
    from_json(json!({ "kind": "ApplicationConfiguration", "spec": { "components": components } }))
}

fn dag_steps(waits_for: &[Vec<usize>]) -> ApplicationConfiguration {
    let steps: Vec<Value> = waits_for
        .iter()
        .enumerate()
        .map(|(i, deps)| {
            json!({
                "type": "apply-components",
                "name": format!("s{i}"),
                "outputs": [{ "name": format!("o{i}") }],
                "inputs": deps.iter().map(|d| json!({ "from": format!("o{d}") })).collect::<Vec<_>>(),
            })
        })
        .collect();
    from_json(
        json!({ "kind": "ApplicationConfiguration", "spec": { "workflow": { "mode": "DAG", "steps": steps } } }),
    )
}

/// A random DAG on `n` nodes: a hidden rank per node; a node may only wait for lower ranks.
fn random_dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..12).prop_flat_map(|n| {
        (
            Just(n),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            proptest::collection::vec(any::<bool>(), n * n),
        )
            .prop_map(|(n, rank, bits)| {
                (0..n).map(|i| (0..n).filter(|&j| rank[j] < rank[i] && bits[i * n + j]).collect()).collect()
            })
    })
}

fn respects(order: &[usize], waits_for: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    prop_assert_eq!(sorted, (0..waits_for.len()).collect::<Vec<_>>());
    let pos = |x: usize| order.iter().position(|&y| y == x).unwrap();
    for (i, deps) in waits_for.iter().enumerate() {
        for &d in deps {
            prop_assert!(pos(d) < pos(i), "{} must come after {}: {:?}", i, d, order);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_dags_are_ordered_respecting_every_edge(g in random_dag()) {
        let plan = validate_launch(&jobs(&g)).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let order: Vec<usize> = plan.components.iter().map(|c| c.index).collect();
        respects(&order, &g)?;
        let plan = validate_launch(&dag_steps(&g)).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        respects(&plan.workflow.order, &g)?;
    }

    #[test]
    fn a_cycle_in_a_random_graph_is_reported(
        mut g in random_dag(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
    ) {
        // Close a cycle through distinct picked nodes: c0 waits for c1 … ck waits for c0.
        let n = g.len();
        let mut cycle: Vec<usize> = Vec::new();
        for p in &picks {
            let x = p.index(n);
            if !cycle.contains(&x) {
                cycle.push(x);
            }
        }
        for (k, &x) in cycle.iter().enumerate() {
            let next = cycle[(k + 1) % cycle.len()];
            if !g[x].contains(&next) {
                g[x].push(next);
            }
        }
        let members: BTreeSet<String> = cycle.iter().map(|i| format!("K8S_JOB|c{i}")).collect();
        let errors = validate_launch(&jobs(&g)).err().unwrap_or_default();
        prop_assert!(!errors.is_empty());
        prop_assert!(errors.iter().all(|e| e.code() == "dependency_cycle"), "{:?}", errors);
        let found = errors.iter().any(|e| matches!(e, LaunchError::DependencyCycle { members: m }
            if members.iter().all(|x| m.contains(x))));
        prop_assert!(found, "{:?} not reported in {:?}", members, errors);

        let steps: BTreeSet<String> = cycle.iter().map(|i| format!("s{i}")).collect();
        let errors = validate_launch(&dag_steps(&g)).err().unwrap_or_default();
        prop_assert!(errors.iter().all(|e| e.code() == "workflow_cycle"), "{:?}", errors);
        let found = errors.iter().any(|e| matches!(e, LaunchError::WorkflowCycle { members: m }
            if steps.iter().all(|x| m.contains(x))));
        prop_assert!(found, "{:?} not reported in {:?}", steps, errors);
    }
}
