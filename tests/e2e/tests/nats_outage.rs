//! NATS going away: the gateway answers 503 problems within the request deadline instead of
//! hanging, readiness reports NATS down, and once the server is back every service answers again
//! without a restart (the clients reconnect and re-subscribe by themselves).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sreworks_e2e::private::PrivateNats;
use sw_testkit::TestEnv;

#[tokio::test]
async fn nats_outage_is_503_and_recovers_without_restart() {
    let mut nats = PrivateNats::start_new();
    let mut env = TestEnv::new();
    env.cfg.nats.url = format!("nats://127.0.0.1:{}", nats.port);
    env.cfg.nats.request_timeout_ms = 1500;
    let suite = Suite::start(env).await.unwrap();
    let token = suite.admin_token().await.unwrap();
    let get = || suite.http.get(suite.url("/v1/apps")).bearer_auth(&token).send();
    assert_eq!(get().await.unwrap().status(), 200);

    nats.kill();
    let started = Instant::now();
    let r = get().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "answered within the deadline, not hung");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert!(
        ["upstream_timeout", "service_unavailable", "bus_unavailable"]
            .contains(&body["code"].as_str().unwrap_or("")),
        "{body}"
    );
    let mut nats_down_seen = false;
    for _ in 0..40 {
        let ready: Value = suite.http.get(suite.url("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready["checks"]["nats"]["status"] == "down" {
            nats_down_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nats_down_seen, "readiness reports NATS down");

    nats.start();
    let mut status = 0;
    for _ in 0..80 {
        status = suite
            .http
            .post(suite.url("/v1/apps"))
            .bearer_auth(&token)
            .json(&json!({"appId": "after-nats"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "works again once NATS is back");
    suite.stop().await.unwrap();
}
