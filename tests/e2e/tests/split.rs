//! The services run apart, as the Helm chart runs them: one process with the gateway, another with
//! auth and appmeta serving only the operational endpoints. They meet only over NATS.

use std::time::Duration;

use serde_json::json;
use sw_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn gateway_and_services_in_separate_runtimes_talk_over_nats() {
    let mut env = TestEnv::new();
    env.cfg.telemetry.ops_listen = Some("127.0.0.1:0".parse().unwrap());
    let stop = CancellationToken::new();

    let backend = sreworks::start(
        &env.cfg,
        &"auth,appmeta".parse().unwrap(),
        sw_telemetry::metrics_only(),
        stop.clone(),
    )
    .await
    .unwrap();
    assert!(backend.gateway.is_none());
    let ops = backend.ops.expect("operational endpoints without the gateway");
    let front =
        sreworks::start(&env.cfg, &"gateway".parse().unwrap(), sw_telemetry::metrics_only(), stop.clone())
            .await
            .unwrap();
    let gw = front.gateway.unwrap();
    let backend = tokio::spawn(backend.wait());
    let front = tokio::spawn(front.wait());

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let ready: serde_json::Value =
        http.get(format!("http://{ops}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["auth-db"]["status"], "up", "{ready}");
    assert_eq!(ready["checks"]["appmeta-db"]["status"], "up", "{ready}");
    let metrics = http.get(format!("http://{ops}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);

    let pw = env.cfg.auth.admin_password.as_ref().unwrap().expose().to_owned();
    let tok: serde_json::Value = http
        .post(format!("http://{gw}/oauth/token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", &pw), ("client_id", "swcli")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap();
    let r = http
        .post(format!("http://{gw}/v1/apps"))
        .bearer_auth(token)
        .json(&json!({"appId": "split"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let m = http.get(format!("http://{ops}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("sw_rpc_requests_total"), "the backend counted the call: {m}");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), backend).await.unwrap().unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(20), front).await.unwrap().unwrap().unwrap();
    env.cleanup().await;
}
