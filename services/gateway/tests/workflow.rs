//! The gateway's workflow routes against real NATS and Redis, with a stand-in workflow service on
//! the bus that answers with what it received. What is tested is the gateway's part: a launch file
//! sent as YAML (SREWorks' own files, unquoted `{{ x }}` and all) or JSON reaches the service as
//! the same JSON object; bad YAML, other media types and alias bombs are refused before the
//! service; `Idempotency-Key` works on YAML bodies; the other workflow routes forward their path,
//! query and body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sw_bus::{Router, RpcCall, RpcReply};
use sw_contracts::auth::{Role, RoleBinding};
use sw_testkit::{TestEnv, TestKeys};
use tokio_util::sync::CancellationToken;

struct App {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
    token: String,
    /// Calls that reached the stand-in services.
    calls: Arc<AtomicUsize>,
    stop: CancellationToken,
}

/// The stand-in's answer: everything the gateway sent it.
fn echo(c: &RpcCall) -> Value {
    json!({"params": c.envelope.params, "query": c.envelope.query, "body": c.envelope.body})
}

impl App {
    async fn spawn(tweak: impl FnOnce(&mut TestEnv)) -> App {
        let mut env = TestEnv::new();
        tweak(&mut env);
        let bus = env.bus().await;
        let redis = env.redis().await;
        let keys = TestKeys::new();
        let verifier = keys.verifier(&env).await;
        let stop = CancellationToken::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut workflow = Router::new("workflow", "stand-in");
        for (op, status) in [
            ("deployments.launch", 201),
            ("deployments.get", 200),
            ("deployments.replay", 201),
            ("workflows.context", 200),
            ("workflows.retry-from-task", 200),
            ("workflows.task-suspend", 200),
        ] {
            let calls = calls.clone();
            workflow = workflow.route(op, move |c: RpcCall| {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let mut out = echo(&c);
                    out["n"] = json!(n);
                    Ok(if status == 201 { RpcReply::created(out) } else { RpcReply::ok(out) })
                }
            });
        }
        let calls_pkg = calls.clone();
        let store =
            Router::new("package-store", "stand-in").route("packages.components", move |c: RpcCall| {
                calls_pkg.fetch_add(1, Ordering::SeqCst);
                async move { Ok(RpcReply::ok(echo(&c))) }
            });
        tokio::spawn(sw_bus::rpc::serve(bus.clone(), workflow, stop.clone(), Duration::from_secs(1)));
        tokio::spawn(sw_bus::rpc::serve(bus.clone(), store, stop.clone(), Duration::from_secs(1)));
        let gw = sw_gateway::build(&env.cfg, bus, redis, verifier, sw_telemetry::metrics_only(), vec![])
            .await
            .unwrap();
        let base = format!("http://{}", gw.local_addr());
        tokio::spawn(gw.run_until_stopped(stop.clone()));
        let token = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        App { env, base, http: reqwest::Client::new(), token, calls, stop }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    async fn launch(
        &self,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/deployments/launch{query}")))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.env.cleanup().await;
    }
}

async fn problem(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

fn launch_fixtures() -> Vec<(String, String)> {
    let dir = sw_testkit::fixtures_dir().join("sreworks/launch");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_yaml_launch_reaches_the_service_as_the_same_json() {
    let app = App::spawn(|_| {}).await;
    let yaml =
        std::fs::read_to_string(sw_testkit::fixtures_dir().join("sreworks/launch/test_ac.yaml")).unwrap();
    let resp = app.launch("?clusterId=master&autoEnvironment=true", "application/yaml", yaml.clone()).await;
    assert_eq!(resp.status(), 201);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["query"], "clusterId=master&autoEnvironment=true");
    let body = &got["body"];
    assert_eq!(body["kind"], "ApplicationConfiguration");
    // Unquoted `{{ x }}` arrives as the text SREWorks renders, quoted or not.
    assert_eq!(body["metadata"]["annotations"]["appPackageId"], "{{ options.appPackageId }}");
    assert_eq!(body["metadata"]["annotations"]["appId"], "{{ options.appId }}");
    assert_eq!(body["spec"]["components"][0]["parameterValues"][1]["value"], true);

    // The same document as JSON is delivered identically.
    let resp = app.launch("", "application/json", serde_json::to_vec(body).unwrap()).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(&resp.json::<Value>().await.unwrap()["body"], body);
    // Other YAML media types, with parameters.
    for ct in ["application/x-yaml", "text/yaml; charset=utf-8"] {
        let resp = app.launch("", ct, yaml.clone()).await;
        assert_eq!(resp.status(), 201, "{ct}");
        assert_eq!(&resp.json::<Value>().await.unwrap()["body"], body, "{ct}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_sreworks_launch_file_comes_through_as_an_object() {
    let app = App::spawn(|_| {}).await;
    let files = launch_fixtures();
    assert!(files.len() >= 5, "the SREWorks launch fixtures are missing: {files:?}");
    for (name, yaml) in files {
        let resp = app.launch("", "application/yaml", yaml.clone()).await;
        assert_eq!(resp.status(), 201, "{name}: {}", resp.text().await.unwrap());
        let got: Value = resp.json().await.unwrap();
        let body = &got["body"];
        assert!(body.is_object(), "{name}: {body}");
        assert_eq!(body["apiVersion"], "core.oam.dev/v1alpha2", "{name}");
        assert!(body["spec"].is_object(), "{name}");
        // What serde_yaml's own reader and sw-appconf make of the file, node for node.
        let expected = sw_appconf::model::normalize(serde_yaml::from_str(&yaml).unwrap()).unwrap();
        assert_eq!(body, &serde_json::to_value(expected).unwrap(), "{name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_yaml_other_types_and_alias_bombs_never_reach_the_service() {
    let app = App::spawn(|env| env.cfg.gateway.body_limit_bytes = 64 * 1024).await;
    let body = problem(
        app.launch("", "application/yaml", "kind: ApplicationConfiguration\nspec: [1, 2\n").await,
        StatusCode::BAD_REQUEST,
        "malformed_yaml",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("line 3 column 1"), "{detail}");

    problem(
        app.launch("", "application/yaml", "kind: A\n---\nkind: B\n").await,
        StatusCode::BAD_REQUEST,
        "malformed_yaml",
    )
    .await;
    problem(
        app.launch("", "text/plain", "kind: ApplicationConfiguration\n").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    problem(
        app.launch("", "application/json", "kind: ApplicationConfiguration\n").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;

    // "Billion laughs": each level holds nine of the one before.
    let mut bomb = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let aliases = vec![format!("*l{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("l{i}: &l{i} [{aliases}]\n"));
    }
    let body =
        problem(app.launch("", "application/yaml", bomb).await, StatusCode::BAD_REQUEST, "malformed_yaml")
            .await;
    assert!(body["detail"].as_str().unwrap().contains("alias"), "{body}");

    // The body limit holds for YAML as for JSON.
    let big = format!("kind: '{}'\n", "a".repeat(70 * 1024));
    problem(
        app.launch("", "application/yaml", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(app.calls.load(Ordering::SeqCst), 0, "nothing reached the service");
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_a_yaml_launch() {
    let app = App::spawn(|_| {}).await;
    let send = |yaml: &'static str| {
        app.http
            .post(app.url("/v1/deployments/launch"))
            .bearer_auth(&app.token)
            .header("content-type", "application/yaml")
            .header("idempotency-key", "launch-1")
            .body(yaml)
            .send()
    };
    let first = send("kind: ApplicationConfiguration\n").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("kind: ApplicationConfiguration\n").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.calls.load(Ordering::SeqCst), 1, "the service ran once");
    // The key is bound to the bytes sent, so even an equivalent document is a different request.
    problem(
        send("kind:   ApplicationConfiguration\n").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn workflow_routes_forward_path_query_and_body() {
    let app = App::spawn(|_| {}).await;
    let got: Value = app
        .http
        .put(app.url("/v1/workflows/42/context"))
        .bearer_auth(&app.token)
        .json(&json!({"continueRollout": true, "old": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["params"]["workflowInstanceId"], "42");
    assert_eq!(got["body"], json!({"continueRollout": true, "old": null}));

    let got: Value = app
        .http
        .put(app.url("/v1/workflows/42/retry-from-task?taskId=7"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["query"], "taskId=7");
    assert_eq!(got["body"], Value::Null);

    let resp = app
        .http
        .put(app.url("/v1/workflows/42/tasks/9/suspend"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["params"], json!({"workflowInstanceId": "42", "taskId": "9"}));

    let resp = app
        .http
        .post(app.url("/v1/deployments/5/replay?force=true"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<Value>().await.unwrap()["params"]["deployAppId"], "5");
    // `launch` is a path of its own, never a deployment id.
    let resp = app.http.get(app.url("/v1/deployments/launch")).bearer_auth(&app.token).send().await.unwrap();
    problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    let got: Value = app
        .http
        .get(app.url("/v1/apps/health/app-packages/3/components"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["params"], json!({"appId": "health", "appPackageId": "3"}));

    // Authenticated like every other route.
    let resp = app.http.get(app.url("/v1/deployments/5")).send().await.unwrap();
    problem(resp, StatusCode::UNAUTHORIZED, "missing_token").await;
    app.stop().await;
}
