//! One scenario per behaviour against a mock API server (`tower_test`), as kube-rs/controller-rs
//! does it: the test answers each request the client sends and asserts exactly what was sent.

use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sw_contracts::executor::{ComponentTarget, ObjectRef, RenderedComponent, TraitSpec};
use sw_contracts::ids::AppId;
use tokio::task::JoinHandle;

use super::*;
use crate::render::{self, LABEL_COMPONENT_INSTANCE, LABEL_INSTANCE, LABEL_MANAGED_BY, owner_selector};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Per-call timeout of the cluster under test: short, so a hung scenario fails fast.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a whole scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the mock API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: Option<String>,
    body: Value,
}

impl Seen {
    /// The query's `key=value` pairs (kube-rs leaves an empty one at the start).
    fn params(&self) -> Vec<&str> {
        self.query.split('&').filter(|p| !p.is_empty()).collect()
    }

    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the mock API server answers: a status and a JSON body, or a dropped connection.
enum Answer {
    Json(u16, Value),
    ConnectionError,
    /// Never answers (the request is held until the client gives up).
    Hang,
}

/// Starts a mock API server that answers every request with `answer` and returns what it saw once
/// the client side is dropped.
fn serve(mut handle: Handle, answer: impl Fn(&Seen) -> Answer + Send + 'static) -> JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let s = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() },
            };
            match answer(&s) {
                Answer::Json(code, body) => send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                ),
                Answer::ConnectionError => send.send_error(std::io::Error::other("connection refused")),
                Answer::Hang => held.push(send),
            }
            seen.push(s);
        }
        seen
    })
}

/// Runs `scenario` against a mock API server answering with `answer`; returns the scenario's
/// result and every request it sent, in order.
async fn scenario<T, F>(
    answer: impl Fn(&Seen) -> Answer + Send + 'static,
    scenario: impl FnOnce(Cluster) -> F,
) -> (T, Vec<Seen>)
where
    F: Future<Output = T>,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, answer);
    let cluster = Cluster::new(Client::new(service, "default"), CALL_TIMEOUT);
    let out = tokio::time::timeout(SCENARIO_TIMEOUT, scenario(cluster)).await.expect("scenario timed out");
    let seen =
        tokio::time::timeout(SCENARIO_TIMEOUT, server).await.expect("mock server did not stop").unwrap();
    (out, seen)
}

fn status(code: u16, reason: &str, message: &str) -> Answer {
    Answer::Json(
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code }),
    )
}

/// The API server's answer to an apply: the object with the fields the server assigns.
fn applied(s: &Seen) -> Answer {
    let mut obj = s.body.clone();
    obj["metadata"]["uid"] = json!(format!("uid-{}", s.path));
    obj["metadata"]["resourceVersion"] = json!("1");
    Answer::Json(200, obj)
}

fn target() -> ComponentTarget {
    ComponentTarget {
        cluster_id: "c1".into(),
        namespace: "ns".into(),
        app_id: AppId::parse("health").unwrap(),
        stage_id: Some("prod".into()),
        app_instance: "prod-health".into(),
        component_instance: "health".into(),
    }
}

/// The SREWorks health fixture's component with the traits of its example launch file.
fn health_component() -> RenderedComponent {
    let dir = sw_testkit::fixtures_dir().join("sreworks/apps/health/build");
    let meta: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("K8S_MICROSERVICE_health.zip.dir/meta.yaml")).unwrap(),
    )
    .unwrap();
    let launch = std::fs::read_to_string(dir.join("launch-example.yaml"))
        .unwrap()
        .replace("{{ Global.STAGE_ID }}", "prod")
        .replace("{{ Global.NAMESPACE_ID }}", "ns");
    let launch: Value = serde_yaml::from_str(&launch).unwrap();
    let traits: Vec<TraitSpec> =
        serde_json::from_value(launch["spec"]["components"][0]["traits"].clone()).unwrap();
    RenderedComponent {
        component_type: "K8S_MICROSERVICE".into(),
        component_name: "health".into(),
        package_version: Some("22.5.1".into()),
        workload: meta["spec"]["workload"]["spec"].clone(),
        traits,
    }
}

fn health_rendered() -> Rendered {
    render::render(&target(), 3, &health_component()).unwrap()
}

fn oref(api_version: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("ns".into()),
        name: name.into(),
    }
}

fn deployment_ref(name: &str) -> ObjectRef {
    oref("apps/v1", "Deployment", name)
}

fn deployment_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/ns/deployments/{name}")
}

/// A live Deployment as a GET answers it, with `labels`.
fn live_deployment(name: &str, labels: Value) -> Answer {
    Answer::Json(
        200,
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": labels },
                "spec": {} }),
    )
}

fn our_labels() -> Value {
    json!({ LABEL_MANAGED_BY: "sreworks", LABEL_INSTANCE: "prod-health", LABEL_COMPONENT_INSTANCE: "health",
            "sreworks.io/app-id": "health" })
}

#[tokio::test]
async fn apply_sends_each_rendered_object_as_a_server_side_apply_in_render_order() {
    let rendered = health_rendered();
    let (out, seen) = scenario(applied, |c| {
        let rendered = rendered.clone();
        async move { c.apply_all("ns", &rendered).await }
    })
    .await;
    let out = out.unwrap();

    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "PATCH /apis/apps/v1/namespaces/ns/deployments/prod-health-health",
            "PATCH /api/v1/namespaces/ns/services/prod-health-health",
            "PATCH /apis/networking.k8s.io/v1/namespaces/ns/ingresses/prod-health-health",
        ]
    );
    for (s, object) in seen.iter().zip(&rendered.objects) {
        assert_eq!(s.params(), ["fieldManager=sreworks"], "no force=true: {}", s.line());
        assert_eq!(s.content_type.as_deref(), Some("application/apply-patch+yaml"));
        assert_eq!(&s.body, object, "the body is the rendered object, unchanged");
    }
    // The objects as the API server answered them, server-assigned fields included.
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["kind"], "Deployment");
    assert_eq!(out[0]["metadata"]["uid"], "uid-/apis/apps/v1/namespaces/ns/deployments/prod-health-health");
    assert_eq!(out[2]["metadata"]["resourceVersion"], "1");
}

#[tokio::test]
async fn a_conflict_is_surfaced_and_stops_the_apply_without_forcing() {
    let rendered = health_rendered();
    let (out, seen) = scenario(
        |_| {
            status(409, "Conflict", "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas")
        },
        |c| {
            let rendered = rendered.clone();
            async move { c.apply_all("ns", &rendered).await }
        },
    )
    .await;
    let e = out.unwrap_err();
    assert_eq!(e.reason(), "ApplyConflict");
    let ApplyError::Conflict { object, message } = &e else { panic!("{e:?}") };
    assert_eq!(object, &rendered.refs[0]);
    assert!(message.contains(".spec.replicas"), "{message}");
    // Nothing after the conflicting object, and no retry with force.
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].params(), ["fieldManager=sreworks"]);
}

#[tokio::test]
async fn forbidden_invalid_and_unreachable_answers_map_to_their_reasons() {
    for (answer, reason, says) in [
        (
            status(403, "Forbidden", "deployments.apps is forbidden: User \"x\" cannot patch"),
            "Forbidden",
            "cannot patch",
        ),
        (
            status(
                422,
                "Invalid",
                "Deployment.apps \"d\" is invalid: spec.template.spec.containers: Required value",
            ),
            "InvalidComponent",
            "Required value",
        ),
        (
            status(503, "ServiceUnavailable", "etcd leader changed"),
            "ClusterUnavailable",
            "etcd leader changed",
        ),
        (Answer::ConnectionError, "ClusterUnavailable", "connection refused"),
    ] {
        let answer = std::sync::Mutex::new(Some(answer));
        let rendered = health_rendered();
        let (out, seen) = scenario(
            move |_| answer.lock().unwrap().take().expect("only one request"),
            |c| async move { c.apply_all("ns", &rendered).await },
        )
        .await;
        let e = out.unwrap_err();
        assert_eq!(e.reason(), reason, "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(seen.len(), 1, "the first failure stops the apply");
    }
}

#[tokio::test]
async fn a_call_without_an_answer_times_out() {
    let rendered = health_rendered();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, |_| Answer::Hang);
    let cluster = Cluster::new(Client::new(service, "default"), Duration::from_millis(200));
    let e = tokio::time::timeout(SCENARIO_TIMEOUT, cluster.apply_all("ns", &rendered))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.reason(), "Timeout");
    assert!(e.is_transient());
    assert!(
        matches!(&e, ApplyError::Timeout { object, after } if object == &rendered.refs[0] && *after == Duration::from_millis(200))
    );
    drop(cluster);
    assert_eq!(server.await.unwrap().len(), 1);
}

#[tokio::test]
async fn prune_reads_first_and_deletes_only_objects_carrying_the_owner_labels() {
    let refs = [
        deployment_ref("ours"),
        deployment_ref("someone-elses"),
        deployment_ref("other-instance"),
        deployment_ref("gone"),
    ];
    let (out, seen) = scenario(
        |s| match (s.method.as_str(), s.path.rsplit('/').next().unwrap()) {
            ("GET", "ours") => live_deployment("ours", our_labels()),
            ("GET", "someone-elses") => live_deployment("someone-elses", json!({ "app": "x" })),
            ("GET", "other-instance") => {
                let mut l = our_labels();
                l[LABEL_COMPONENT_INSTANCE] = json!("web");
                live_deployment("other-instance", l)
            }
            ("GET", "gone") => status(404, "NotFound", "deployments.apps \"gone\" not found"),
            ("DELETE", "ours") => {
                Answer::Json(200, json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" }))
            }
            _ => status(500, "InternalError", "unexpected request"),
        },
        |c| async move { c.prune("ns", &refs, &owner_selector(&target())).await },
    )
    .await;
    let out = out.unwrap();

    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {}", deployment_path("ours")),
            format!("DELETE {}", deployment_path("ours")),
            format!("GET {}", deployment_path("someone-elses")),
            format!("GET {}", deployment_path("other-instance")),
            format!("GET {}", deployment_path("gone")),
        ]
    );
    assert_eq!(
        seen[1].body,
        json!({ "propagationPolicy": "Background", "preconditions": { "uid": "uid-ours" } }),
        "background propagation, and only the very object whose labels were read"
    );
    assert_eq!(out.gone, [deployment_ref("ours"), deployment_ref("gone")]);
    let skipped: Vec<&str> = out.skipped.iter().map(|s| s.object.name.as_str()).collect();
    assert_eq!(skipped, ["someone-elses", "other-instance"]);
    assert!(out.skipped[1].why.contains("sreworks.io/component-instance=health"), "{:?}", out.skipped[1]);
}

#[tokio::test]
async fn prune_counts_a_404_on_delete_as_gone_and_a_failed_uid_precondition_as_skipped() {
    let refs = [deployment_ref("raced-away"), deployment_ref("recreated")];
    let (out, seen) = scenario(
        |s| match (s.method.as_str(), s.path.rsplit('/').next().unwrap()) {
            ("GET", name) => live_deployment(name, our_labels()),
            ("DELETE", "raced-away") => status(404, "NotFound", "not found"),
            ("DELETE", _) => {
                status(409, "Conflict", "Precondition failed: UID in precondition: uid-recreated")
            }
            _ => status(500, "InternalError", "unexpected request"),
        },
        |c| async move { c.prune("ns", &refs, &owner_selector(&target())).await },
    )
    .await;
    let out = out.unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(out.gone, [deployment_ref("raced-away")]);
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].object, deployment_ref("recreated"));
    assert!(out.skipped[0].why.contains("Precondition failed"));
}

#[tokio::test]
async fn prune_refuses_a_selector_that_would_not_check_ownership() {
    for selector in ["", "   ", "sreworks.io/instance", "a!=b", "a==b"] {
        let refs = [deployment_ref("ours")];
        let (out, seen) = scenario(
            |_| live_deployment("ours", our_labels()),
            |c| async move { c.prune("ns", &refs, selector).await },
        )
        .await;
        let e = out.unwrap_err();
        assert_eq!(e.reason(), "InvalidComponent", "{selector:?}");
        assert!(seen.is_empty(), "{selector:?}: nothing read, nothing deleted");
    }
}

#[tokio::test]
async fn read_all_returns_live_objects_and_null_for_missing_ones() {
    let refs = [deployment_ref("here"), oref("v1", "Service", "missing")];
    let (out, seen) = scenario(
        |s| match s.path.as_str() {
            "/apis/apps/v1/namespaces/ns/deployments/here" => live_deployment("here", our_labels()),
            _ => status(404, "NotFound", "services \"missing\" not found"),
        },
        |c| async move { c.read_all("ns", &refs).await },
    )
    .await;
    let out = out.unwrap();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        ["GET /apis/apps/v1/namespaces/ns/deployments/here", "GET /api/v1/namespaces/ns/services/missing"]
    );
    assert_eq!(out[0].0, deployment_ref("here"));
    assert_eq!(out[0].1["metadata"]["uid"], "uid-here");
    assert_eq!(out[1], (oref("v1", "Service", "missing"), Value::Null));
    assert_eq!(crate::health::assess(&out[1].1).health, crate::health::Health::Missing);
}

#[tokio::test]
async fn a_kind_outside_the_table_is_found_by_discovery_once() {
    let monitor = |name: &str| {
        json!({ "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                "metadata": { "name": name, "namespace": "ns" }, "spec": {} })
    };
    let rendered = Rendered {
        objects: vec![monitor("a"), monitor("b")],
        refs: vec![
            oref("monitoring.coreos.com/v1", "ServiceMonitor", "a"),
            oref("monitoring.coreos.com/v1", "ServiceMonitor", "b"),
        ],
    };
    let (out, seen) = scenario(
        |s| match s.method.as_str() {
            "GET" => Answer::Json(
                200,
                json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                        "resources": [{ "name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                                        "kind": "ServiceMonitor", "verbs": ["get", "patch", "delete"] }] }),
            ),
            _ => applied(s),
        },
        |c| {
            let rendered = rendered.clone();
            async move { c.apply_all("ns", &rendered).await }
        },
    )
    .await;
    assert_eq!(out.unwrap().len(), 2);
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "GET /apis/monitoring.coreos.com/v1",
            "PATCH /apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/a",
            "PATCH /apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/b",
        ]
    );
}

#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_is_an_invalid_component() {
    let rendered = Rendered {
        objects: vec![
            json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" } }),
        ],
        refs: vec![oref("example.com/v1", "Widget", "w")],
    };
    let (out, seen) = scenario(
        |_| status(404, "NotFound", "the server could not find the requested resource"),
        |c| async move { c.apply_all("ns", &rendered).await },
    )
    .await;
    let e = out.unwrap_err();
    assert_eq!(e.reason(), "InvalidComponent", "{e}");
    assert_eq!(seen.iter().map(Seen::line).collect::<Vec<_>>(), ["GET /apis/example.com/v1"]);
}

/// Over a real loopback connection: the client built from a [`kube::Config`] speaks plain HTTP/1.1.
#[tokio::test]
async fn a_cluster_from_a_config_reads_over_real_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the request head ended");
            head.extend_from_slice(&buf[..n]);
        }
        let Answer::Json(_, body) = live_deployment("here", our_labels()) else { unreachable!() };
        let body = serde_json::to_vec(&body).unwrap();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(reply.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        String::from_utf8(head).unwrap()
    });

    let cluster = Cluster::connect(kube::Config::new(url.parse().unwrap()), CALL_TIMEOUT).unwrap();
    let out = tokio::time::timeout(SCENARIO_TIMEOUT, cluster.read_all("ns", &[deployment_ref("here")]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out[0].1["metadata"]["uid"], "uid-here");
    let head = tokio::time::timeout(SCENARIO_TIMEOUT, server).await.unwrap().unwrap();
    assert!(head.starts_with("GET /apis/apps/v1/namespaces/ns/deployments/here HTTP/1.1\r\n"), "{head}");
}

/// An https cluster gets a rustls client (ring provider, no other TLS stack to choose from); a
/// cluster nobody listens for fails the call as unavailable, which is transient.
#[tokio::test]
async fn an_unreachable_https_cluster_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
    let cluster = Cluster::connect(config, CALL_TIMEOUT).unwrap();
    let rendered = health_rendered();
    let e = tokio::time::timeout(SCENARIO_TIMEOUT, cluster.apply_all("ns", &rendered))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.reason(), "ClusterUnavailable", "{e}");
    assert!(e.is_transient());
    assert!(matches!(&e, ApplyError::ClusterUnavailable { object, .. } if object == &rendered.refs[0]));
    assert!(e.to_string().contains("Connection refused"), "the io error is kept: {e}");
}
