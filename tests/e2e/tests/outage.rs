//! Dependencies going away: with the database stopped the API answers 503 problems quickly (not a
//! hang, not a 500), readiness says why, and everything works again once the database is back,
//! without restarting sreworks.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sreworks_e2e::private::PrivateMariaDb;
use sw_testkit::TestEnv;

#[tokio::test]
async fn database_outage_is_503_and_recovers_without_restart() {
    let mut db = PrivateMariaDb::init();
    let mut env = TestEnv::new();
    env.cfg.database.url = sw_config::Secret::new(format!("mysql://root@127.0.0.1:{}", db.port));
    env.cfg.database.acquire_timeout_ms = 1500;
    let suite = Suite::start(env).await.unwrap();
    let token = suite.admin_token().await.unwrap();
    let create = |id: &str| {
        suite.http.post(suite.url("/v1/apps")).bearer_auth(&token).json(&json!({"appId": id})).send()
    };
    assert_eq!(create("before").await.unwrap().status(), 201);

    db.kill();
    let started = Instant::now();
    let r = create("during").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the deadline, not hung");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let ready = suite.http.get(suite.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["appmeta-db"]["status"], "down", "{ready}");

    db.start();
    let mut status = 0;
    for _ in 0..60 {
        status = create("after").await.unwrap().status().as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "works again once the database is back");
    // Nothing was half-written while it was down.
    let r = suite.http.get(suite.url("/v1/apps/during")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    suite.stop().await.unwrap();
}
