//! Workflow steps end to end, as a user drives them over HTTP against the emulator cluster: a
//! `suspend` resumed by hand or by its `duration`, `rollout-promotion` continued or rolled back, a
//! `DAG` workflow, a signed `webhook` step, launches refused before anything is created, and
//! launches of one app instance queued behind each other (or refused).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sreworks_e2e::world::World;
use sw_testkit::TestEnv;

const NS: &str = "sreworks";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/sreworks/deployments";

fn env() -> TestEnv {
    let mut env = TestEnv::new();
    env.cfg.workflow.poll_ms = 100;
    env.cfg.executor.health_poll_ms = 200;
    env
}

/// The health package's one deployed component, as `launch-example.yaml` configures it (without
/// its addons); `spec.policies` and `spec.workflow` are appended by the scenarios.
const HEALTH: &str = r"apiVersion: core.oam.dev/v1alpha2
kind: ApplicationConfiguration
metadata:
  annotations:
    appId: health
  name: health
spec:
  components:
  - revisionName: K8S_MICROSERVICE|health|_
    parameterValues:
    - name: REPLICAS
      toFieldPaths:
      - spec.replicas
      value: 1
    - name: Global.DATA_DB_PORT
      value: '3306'
    - name: Global.DATA_DB_HEALTH_NAME
      value: sw_saas_health
    - name: Global.DATA_DB_USER
      value: root
    - name: Global.DATA_DB_PASSWORD
      value: cb56b5is5e21_c359b42223
    - name: Global.KAFKA_ENDPOINT
      value: prod-dataops-kafka.sreworks-dataops:9092
    - name: Global.DATA_DB_NAME
      value: sw_saas_health
    - name: Global.DATA_DB_HOST
      value: '{{Global.STAGE_ID}}-dataops-mysql.sreworks-dataops'
    traits:
    - name: service.trait.abm.io
      runtime: post
      spec:
        ports:
        - port: 80
          protocol: TCP
          targetPort: 7001
    - name: gateway.trait.abm.io
      runtime: post
      spec:
        authEnabled: true
        path: /health/**
        serviceName: '{{ Global.STAGE_ID }}-health-health.{{ Global.NAMESPACE_ID }}'
";

/// Two topology policies placing the component in stage `dev` and stage `stage` of the emulator.
const TOPOLOGIES: &str = "  policies:
  - name: dev
    type: topology
    properties:
      cluster: emu
      namespace: sreworks
      stage: dev
  - name: stage
    type: topology
    properties:
      cluster: emu
      namespace: sreworks
      stage: stage
";

/// `HEALTH` with `steps` (YAML list items indented by four spaces) as its workflow.
fn health_with_steps(policies: &str, steps: &str) -> String {
    format!("{HEALTH}{policies}  workflow:\n    steps:\n{steps}")
}

/// The world with the health package imported as app `health`; returns its package id.
async fn world(env: TestEnv) -> (World, u64) {
    let w = World::start(env).await.unwrap();
    let package = w.import_health("health").await.unwrap();
    (w, package)
}

fn launched_id(status: u16, body: &Value) -> u64 {
    assert_eq!(status, 201, "{body}");
    body["deployAppId"].as_u64().unwrap()
}

fn task<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["workflow"]["tasks"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| {
        panic!("no task {name} in {d:#}");
    })
}

fn component_revisions(d: &Value) -> Vec<u64> {
    d["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["componentName"] == "health")
        .map(|c| c["revision"].as_u64().unwrap_or(0))
        .collect()
}

fn deployment_path(app_instance: &str) -> String {
    format!("{DEPLOYMENTS}/{app_instance}-health")
}

const SUSPENDED: &str = "    - type: deploy
      name: deploy-dev
      properties:
        policies: [dev]
    - type: suspend
      name: wait-for-user-approval
    - type: deploy
      name: deploy-stage
      properties:
        policies: [stage]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_workflow_waits_for_resume_before_deploying_the_next_stage() {
    let (w, package) = world(env()).await;
    let _controllers = w.start_controllers(NS);
    let yaml = health_with_steps(TOPOLOGIES, SUSPENDED);
    let (status, body) =
        w.launch(&yaml, &format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks")).await.unwrap();
    let id = launched_id(status, &body);

    let suspended = w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
    assert_eq!(task(&suspended, "deploy-dev")["state"], "SUCCESS", "{suspended:#}");
    assert_eq!(task(&suspended, "wait-for-user-approval")["state"], "WAITING_SUSPEND", "{suspended:#}");
    assert_eq!(task(&suspended, "deploy-stage")["state"], "PENDING", "{suspended:#}");
    assert_eq!(suspended["state"], "WAITING", "{suspended:#}");
    assert!(w.emu.get(&deployment_path("dev-health")).await.unwrap().is_some());
    // Still suspended a moment later, and nothing of stage `stage` was applied.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = w.deployment(id).await.unwrap();
    assert_eq!(still["workflow"]["state"], "SUSPEND", "{still:#}");
    assert!(w.emu.get(&deployment_path("stage-health")).await.unwrap().is_none());

    let (status, body) = w.workflow_action(id, "resume").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["state"], "SUCCESS", "{done:#}");
    assert_eq!(task(&done, "deploy-stage")["state"], "SUCCESS", "{done:#}");
    let live = w.emu.get(&deployment_path("stage-health")).await.unwrap().expect("stage deployed");
    assert_eq!(live["metadata"]["labels"]["sreworks.io/app-id"], "health");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_with_a_duration_resumes_by_itself() {
    let (w, package) = world(env()).await;
    let _controllers = w.start_controllers(NS);
    let steps = "    - type: deploy
      name: deploy
    - type: suspend
      name: pause
      properties:
        duration: 2s
";
    let yaml = health_with_steps("", steps);
    let (status, body) = w
        .launch(&yaml, &format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod"))
        .await
        .unwrap();
    let id = launched_id(status, &body);
    let suspended = w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
    assert_eq!(task(&suspended, "pause")["state"], "WAITING_SUSPEND", "{suspended:#}");
    // Nobody resumes it.
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(task(&done, "pause")["state"], "SUCCESS", "{done:#}");
    w.suite.stop().await.unwrap();
}

const PROMOTION: &str = "    - type: deploy
      name: canary
    - type: suspend
      name: approve
    - type: rollout-promotion
      name: promote
    - type: deploy
      name: rest
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_promotion_continues_when_the_context_says_so() {
    let (w, package) = world(env()).await;
    let _controllers = w.start_controllers(NS);
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let (status, body) = w.launch(&health_with_steps("", PROMOTION), &query).await.unwrap();
    let id = launched_id(status, &body);
    w.wait_for(id, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();

    let (status, body) = w.put_context(id, json!({"continueRollout": true})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = w.workflow_action(id, "resume").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(task(&done, "promote")["state"], "SUCCESS", "{done:#}");
    assert_eq!(done["workflow"]["context"]["continueRollout"], true, "{done:#}");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_promotion_rolls_back_to_the_last_success_and_pins_the_instance() {
    let (w, package) = world(env()).await;
    let _controllers = w.start_controllers(NS);
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let (status, body) =
        w.launch(&health_with_steps("", "    - type: deploy\n      name: deploy\n"), &query).await.unwrap();
    let a = launched_id(status, &body);
    w.wait_state(a, "SUCCESS").await.unwrap();

    let (status, body) = w.launch(&health_with_steps("", PROMOTION), &query).await.unwrap();
    let b = launched_id(status, &body);
    w.wait_for(b, "suspended", |d| d["workflow"]["state"] == "SUSPEND").await.unwrap();
    let (status, body) = w.put_context(b, json!({"rollback": true})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = w.workflow_action(b, "resume").await.unwrap();
    assert_eq!(status, 200, "{body}");

    let failed = w.wait_state(b, "FAILURE").await.unwrap();
    assert_eq!(failed["reason"], "RolledBack", "{failed:#}");
    assert_eq!(task(&failed, "promote")["reason"], "RolledBack", "{failed:#}");
    // The step after the promotion never ran.
    assert_eq!(task(&failed, "rest")["state"], "TERMINATED", "{failed:#}");
    assert!(task(&failed, "rest")["startedAt"].is_null(), "{failed:#}");

    let (items, _) = w.deployments("appId=health").await.unwrap();
    let c = items
        .iter()
        .find(|d| d["kind"] == "ROLLBACK")
        .unwrap_or_else(|| panic!("no rollback deployment among {items:#?}"));
    assert_eq!(c["sourceDeployAppId"], a, "{c:#}");
    assert_eq!(c["pinned"], true, "{c:#}");
    let c = c["deployAppId"].as_u64().unwrap();
    w.wait_state(c, "SUCCESS").await.unwrap();

    let (status, body) =
        w.send(reqwest::Method::POST, &format!("/v1/deployments/{b}/retry"), None).await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "rollback_pinned", "{body}");
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_workflow_runs_steps_after_the_steps_whose_outputs_they_read() {
    let (mut w, package) = world(env()).await;
    let yaml =
        std::fs::read_to_string(sw_testkit::fixtures_dir().join("sreworks/launch/test_workflow_graph.yaml"))
            .unwrap();
    let (status, body) = w
        .launch(&yaml, &format!("appId=health&appPackageId={package}&clusterId=emu&namespaceId=sreworks"))
        .await
        .unwrap();
    let id = launched_id(status, &body);
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["mode"], "DAG", "{done:#}");

    // The order the tasks started in, by step index, from the `workflow.task.running` events.
    w.events_of(id, Duration::from_millis(1000)).await;
    let started: Vec<u64> = w
        .seen
        .iter()
        .filter(|(n, d)| n == "workflow.task.running" && d["deployAppId"] == id)
        .map(|(_, d)| d["stepIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(started.len(), 4, "{started:?}");
    let at = |i: u64| started.iter().position(|s| *s == i).unwrap();
    assert!(at(1) < at(0) && at(2) < at(0) && at(0) < at(3), "start order {started:?}");
    w.suite.stop().await.unwrap();
}

/// What a webhook receiver saw: `(webhook-id, body)` per call with a valid signature; calls with
/// a bad signature are counted apart.
#[derive(Default)]
struct Seen {
    calls: Vec<(String, Value)>,
    bad_signatures: usize,
}

/// A webhook receiver on 127.0.0.1:0 checking signatures with `key`; `answer(n)` gives the status
/// and body of the n-th (0-based) call. Returns its URL and what it saw.
async fn receiver(
    key: &'static str,
    answer: fn(usize) -> (u16, Value),
) -> (String, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = state.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
                let mut seen = seen.lock().unwrap();
                if !sw_workflow::webhook::verify(key.as_bytes(), &id, &ts, &body, &sig) {
                    seen.bad_signatures += 1;
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
                }
                let n = seen.calls.len();
                seen.calls.push((id, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let (status, reply) = answer(n);
                (StatusCode::from_u16(status).unwrap(), axum::Json(reply))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, server)
}

const WEBHOOK_KEY: &str = "whsec-e2e-0123456789abcdefghijkl";

fn webhook_env() -> TestEnv {
    let mut env = env();
    env.cfg.workflow.webhook_signing_key = Some(sw_config::Secret::new(WEBHOOK_KEY));
    env.cfg.workflow.webhook_attempts = 3;
    // The test's receiver listens on loopback, which webhooks may not call by default.
    env.cfg.workflow.webhook_allow_private = true;
    env
}

fn webhook_steps(url: &str) -> String {
    format!(
        "    - type: deploy
      name: deploy
    - type: webhook
      name: notify
      properties:
        url: {url}
        channel: releases
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_step_is_signed_retried_and_merges_the_answer_into_the_context() {
    let (url, seen, server) = receiver(WEBHOOK_KEY, |n| {
        if n == 0 { (500, json!({"error": "busy"})) } else { (200, json!({"context": {"approvedBy": "ci"}})) }
    })
    .await;
    let (w, package) = world(webhook_env()).await;
    let _controllers = w.start_controllers(NS);
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let (status, body) = w.launch(&health_with_steps("", &webhook_steps(&url)), &query).await.unwrap();
    let id = launched_id(status, &body);
    let done = w.wait_state(id, "SUCCESS").await.unwrap();
    assert_eq!(done["workflow"]["context"]["approvedBy"], "ci", "{done:#}");
    assert_eq!(task(&done, "notify")["state"], "SUCCESS", "{done:#}");

    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.calls.len(), 2, "{:?}", seen.calls);
        assert!(!seen.calls[0].0.is_empty() && seen.calls[0].0 == seen.calls[1].0, "{:?}", seen.calls);
        let payload = &seen.calls[1].1;
        assert_eq!(payload["deployAppId"], id, "{payload}");
        assert_eq!(payload["properties"], json!({"channel": "releases"}), "{payload}");
    }
    server.abort();
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_refuses_approval_leaves_the_deployment_for_an_operator() {
    let (url, seen, server) = receiver(WEBHOOK_KEY, |_| (200, json!({"approved": false}))).await;
    let (w, package) = world(webhook_env()).await;
    let _controllers = w.start_controllers(NS);
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let (status, body) = w.launch(&health_with_steps("", &webhook_steps(&url)), &query).await.unwrap();
    let id = launched_id(status, &body);
    let stuck = w.wait_state(id, "WAIT_FOR_OP").await.unwrap();
    assert_eq!(task(&stuck, "notify")["state"], "FAILURE", "{stuck:#}");
    assert_eq!(task(&stuck, "notify")["reason"], "WebhookRejected", "{stuck:#}");
    assert_eq!(seen.lock().unwrap().calls.len(), 1);
    server.abort();
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_the_executor_cannot_deploy_are_refused_before_anything_is_created() {
    let (w, package) = world(env()).await;
    let dir = sw_testkit::fixtures_dir().join("sreworks/launch");
    let mut refused = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let yaml = std::fs::read_to_string(&path).unwrap();
        let types: Vec<&str> = yaml
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("ABM_"))
            .collect();
        if types.is_empty() {
            continue;
        }
        refused += 1;
        let (status, body) = w
            .launch(&yaml, &format!("appId=health&appPackageId={package}&clusterId=emu&namespaceId=sreworks"))
            .await
            .unwrap();
        assert_eq!(status, 422, "{}: {body}", path.display());
        assert_eq!(body["code"], "invalid_launch", "{}: {body}", path.display());
        let errors = body["errors"].as_array().unwrap();
        for ty in &types {
            assert!(
                errors.iter().any(|e| e["code"] == "unsupported_component_type"
                    && e["message"].as_str().unwrap_or_default().contains(ty)),
                "{}: no unsupported_component_type error naming {ty}: {body:#}",
                path.display()
            );
        }
    }
    assert!(refused >= 5, "only {refused} ABM_* fixtures found in {}", dir.display());
    let (_, total) = w.deployments("").await.unwrap();
    assert_eq!(total, 0, "a refused launch created a deployment");

    let (status, body) = w.launch("spec: [unclosed", &format!("appPackageId={package}")).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "malformed_yaml", "{body}");

    let r = w
        .suite
        .http
        .post(w.suite.url(&format!("/v1/deployments/launch?appPackageId={package}")))
        .header("content-type", "application/yaml")
        .body(health_with_steps("", "    - type: deploy\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (_, total) = w.deployments("").await.unwrap();
    assert_eq!(total, 0);
    w.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_launch_of_an_instance_waits_for_the_first() {
    let (mut w, package) = world(env()).await;
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let yaml = health_with_steps("", "    - type: deploy\n      name: deploy\n");
    let (status, body) = w.launch(&yaml, &query).await.unwrap();
    let first = launched_id(status, &body);
    let (status, body) = w.launch(&yaml, &query).await.unwrap();
    let second = launched_id(status, &body);
    assert_eq!(body["queued"], true, "{body}");
    assert_eq!(body["state"], "CREATED", "{body}");

    // The first runs (its component waits to turn healthy, nobody rolls it out yet); the second waits.
    w.wait_component(first, "health", "RUNNING").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.deployment(second).await.unwrap()["state"], "CREATED");

    let controllers = w.start_controllers(NS);
    let a = w.wait_state(first, "SUCCESS").await.unwrap();
    let b = w.wait_state(second, "SUCCESS").await.unwrap();
    controllers.stop().await;
    assert_eq!(component_revisions(&a), [1], "{a:#}");
    assert_eq!(component_revisions(&b), [2], "{b:#}");
    // On the one event stream, the second started only after the first had succeeded.
    w.events_of(first, Duration::from_millis(1000)).await;
    let at = |name: &str, id: u64| {
        w.seen.iter().position(|(n, d)| n == name && d["_subject"] == id.to_string().as_str())
    };
    let first_done = at("deployment.app.succeeded", first).expect("first succeeded event");
    let second_started = at("deployment.app.processing", second).expect("second processing event");
    assert!(
        first_done < second_started,
        "{:#?}",
        w.seen.iter().map(|(n, d)| (n, &d["_subject"])).collect::<Vec<_>>()
    );
    w.suite.stop().await.unwrap();
}

/// Launches of one app instance at the same moment take turns: one starts, every other one queues
/// (or, with `on_conflict = reject`, is refused) — never two running at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_launches_of_one_instance_start_exactly_one() {
    for mode in [sw_config::LaunchConflict::Queue, sw_config::LaunchConflict::Reject] {
        let mut env = env();
        env.cfg.workflow.on_conflict = mode;
        let (w, package) = world(env).await;
        let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
        let yaml = health_with_steps("", "    - type: deploy\n      name: deploy\n");
        let answers = futures::future::join_all((0..6).map(|_| w.launch(&yaml, &query))).await;
        let answers: Vec<(u16, Value)> = answers.into_iter().map(Result::unwrap).collect();
        let started: Vec<_> = answers.iter().filter(|(s, b)| *s == 201 && b["queued"] == false).collect();
        assert_eq!(started.len(), 1, "{mode:?}: {answers:#?}");
        for (status, body) in &answers {
            match mode {
                sw_config::LaunchConflict::Queue => {
                    assert_eq!(*status, 201, "{body}");
                    assert_eq!(body["queued"] == true, body["state"] == "CREATED", "{body}");
                }
                sw_config::LaunchConflict::Reject => {
                    assert!(
                        *status == 201 || (*status == 409 && body["code"] == "deployment_in_progress"),
                        "{status} {body}"
                    );
                }
            }
        }
        let (running, _) = w.deployments("state=WAITING").await.unwrap();
        assert_eq!(running.len(), 1, "{mode:?}: one deployment runs: {running:#?}");
        w.suite.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_conflict_reject_a_second_launch_of_a_running_instance_is_refused() {
    let mut env = env();
    env.cfg.workflow.on_conflict = sw_config::LaunchConflict::Reject;
    let (w, package) = world(env).await;
    let query = format!("appPackageId={package}&clusterId=emu&namespaceId=sreworks&stageId=prod");
    let yaml = health_with_steps("", "    - type: deploy\n      name: deploy\n");
    let (status, body) = w.launch(&yaml, &query).await.unwrap();
    let first = launched_id(status, &body);
    let (status, body) = w.launch(&yaml, &query).await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "deployment_in_progress", "{body}");
    let (_, total) = w.deployments("").await.unwrap();
    assert_eq!(total, 1);
    let _controllers = w.start_controllers(NS);
    w.wait_state(first, "SUCCESS").await.unwrap();
    w.suite.stop().await.unwrap();
}

/// `autoEnvironment` creates the namespace and stage in appmeta; a replay relaunches the same
/// file and package as a new deployment that succeeds with the next revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_environment_creates_the_namespace_and_stage_and_a_replay_deploys_again() {
    let w = World::start(env()).await.unwrap();
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "fresh" } });
    let (status, body) = w.emu.call("POST", "/api/v1/namespaces", Some(&ns)).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let _controllers = w.start_controllers("fresh");
    let package = w.import_health("health").await.unwrap();
    let (status, _) = w.send(reqwest::Method::GET, "/v1/namespaces/fresh", None).await.unwrap();
    assert_eq!(status, 404, "the namespace is not registered before the launch");

    let query =
        format!("appPackageId={package}&clusterId=emu&namespaceId=fresh&stageId=qa&autoEnvironment=true");
    let (status, launched) = w.launch(HEALTH, &query).await.unwrap();
    assert_eq!(status, 201, "{launched}");
    let first = launched["deployAppId"].as_u64().unwrap();
    let (status, body) = w.send(reqwest::Method::GET, "/v1/namespaces/fresh", None).await.unwrap();
    assert_eq!(status, 200, "autoEnvironment registered the namespace: {body}");
    let (status, body) = w.send(reqwest::Method::GET, "/v1/namespaces/fresh/stages/qa", None).await.unwrap();
    assert_eq!(status, 200, "autoEnvironment registered the stage: {body}");
    let done = w.wait_state(first, "SUCCESS").await.unwrap();
    assert_eq!(done["components"][0]["revision"], 1, "{done:#}");

    let (status, replayed) =
        w.send(reqwest::Method::POST, &format!("/v1/deployments/{first}/replay"), None).await.unwrap();
    assert_eq!(status, 201, "{replayed}");
    let second = replayed["deployAppId"].as_u64().unwrap();
    assert_ne!(second, first);
    let again = w.wait_state(second, "SUCCESS").await.unwrap();
    assert_eq!(again["kind"], "REPLAY", "{again:#}");
    assert_eq!(again["sourceDeployAppId"], first, "{again:#}");
    assert_eq!(again["appPackageId"], package, "{again:#}");
    assert_eq!(again["components"][0]["revision"], 2, "a replay sends the next revision: {again:#}");
    let live =
        w.emu.get("/apis/apps/v1/namespaces/fresh/deployments/qa-health-health").await.unwrap().unwrap();
    assert_eq!(live["metadata"]["annotations"]["sreworks.io/revision"], "2");
    w.suite.stop().await.unwrap();
}
