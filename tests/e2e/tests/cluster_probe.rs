//! `POST /v1/clusters/{clusterId}/probe` as a user calls it: the whole suite runs in-process, a
//! cluster is registered through the gateway and the k8s-executor, which learns it from appmeta,
//! tells whether its API server answers with the stored credentials. The API server is the
//! emulator (`tests/k8s-emulator`), or a port nothing listens on.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sreworks_e2e::k8s_emulator::K8sEmulator;
use sw_testkit::TestEnv;

/// A URL on 127.0.0.1 where nothing listens (a port just freed).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn register(suite: &Suite, token: &str, cluster_id: &str, api_url: &str) {
    let r = suite
        .http
        .post(suite.url("/v1/clusters"))
        .bearer_auth(token)
        .json(&json!({
            "clusterId": cluster_id,
            "apiUrl": api_url,
            "credentials": { "kind": "token", "token": format!("{cluster_id}-token") },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "register {cluster_id}: {}", r.text().await.unwrap());
}

async fn probe(suite: &Suite, token: Option<&str>, cluster_id: &str) -> (StatusCode, Value) {
    let mut request = suite.http.post(suite.url(&format!("/v1/clusters/{cluster_id}/probe")));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_cluster_is_probed_through_the_gateway() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let emu = K8sEmulator::start().await.unwrap();
    let token = suite.admin_token().await.unwrap();
    register(&suite, &token, "emu", &emu.url).await;
    register(&suite, &token, "down", &closed_port_url()).await;

    let (status, body) = probe(&suite, Some(&token), "emu").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["clusterId"].as_str(), body["reachable"].as_bool()),
        (Some("emu"), Some(true)),
        "{body}"
    );
    assert!(body["serverVersion"].as_str().is_some_and(|v| v.starts_with('v')), "{body}");
    assert!(body["latencyMs"].is_u64(), "{body}");
    // The executor called the emulator with the token it opened from appmeta's sealed credentials.
    let log = emu.requests().await.unwrap();
    assert!(
        log.iter().any(|r| r["method"] == "GET"
            && r["path"] == "/version"
            && r["authorization"] == "Bearer emu-token"),
        "{log:?}"
    );

    let (status, body) = probe(&suite, Some(&token), "down").await;
    assert_eq!(status, StatusCode::OK, "the probe worked, the cluster did not: {body}");
    assert_eq!(body["reachable"], false, "{body}");
    assert!(body.get("serverVersion").is_none(), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("could not be reached")), "{body}");

    let (status, body) = probe(&suite, Some(&token), "nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found", "{body}");

    let (status, body) = probe(&suite, None, "emu").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    suite.stop().await.unwrap();
}
