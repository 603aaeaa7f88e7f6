//! The platform as a user and an external subscriber see it: log in over HTTP, create an app,
//! receive its CloudEvent on a durable JetStream consumer and validate it against the committed
//! JSON Schema; revoke the token and see every service refuse it.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sw_testkit::TestEnv;

fn committed_schema(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../proto-schemas/events/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test]
async fn login_create_app_and_receive_its_event() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let prefix = suite.env.cfg.nats.prefix.clone();

    // An external system attaches a durable consumer, like the README shows.
    let nats = async_nats::connect(&suite.env.cfg.nats.url).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream(format!("{}_EVENTS", prefix.to_ascii_uppercase())).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("external-system".into()),
            filter_subject: format!("{prefix}.events.appmeta.>"),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();

    let tokens = suite.login("admin", &suite.admin_password()).await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let resp = suite
        .http
        .post(suite.url("/v1/apps"))
        .bearer_auth(&token)
        .header("traceparent", traceparent)
        .json(&json!({"appId": "health", "name": "Health", "team": "sre", "labels": {"tier": "core"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["appId"], "health");

    let got: Value = suite
        .http
        .get(suite.url("/v1/apps/health"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);

    let mut messages = consumer.messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), format!("{prefix}.events.appmeta.app.created"));
    let event: Value = serde_json::from_slice(&msg.payload).unwrap();
    let headers = msg.headers.clone().unwrap();
    assert_eq!(
        headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str(),
        event["id"].as_str().unwrap()
    );
    assert_eq!(event["type"], "sreworks.appmeta.app.created");
    assert_eq!(event["data"], created);
    // The trace started by the HTTP client continues through the NATS hop into the event.
    let tp = headers.get("traceparent").expect("traceparent header").as_str().to_owned();
    assert_eq!(tp.split('-').nth(1), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(event["traceparent"].as_str(), Some(tp.as_str()));

    let schema = committed_schema("appmeta.app.created");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "event does not match its published schema: {errors:?}\n{event}");
    msg.ack().await.unwrap();

    // Revocation takes effect at once, at the gateway and in the services.
    let r = suite
        .http
        .post(suite.url("/oauth/revoke"))
        .form(&[("token", token.as_str()), ("client_id", "swcli")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = suite.http.get(suite.url("/v1/apps/health")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "token_revoked");

    // The refresh token still works and rotates.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = suite
        .http
        .post(suite.url("/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "swcli")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    assert_ne!(fresh["refresh_token"], tokens["refresh_token"]);
    let r = suite
        .http
        .get(suite.url("/v1/me"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["subject"], "user:admin");

    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_jwks_is_public_and_the_api_is_not() {
    let suite = Suite::start(TestEnv::new()).await.unwrap();
    let jwks: Value =
        suite.http.get(suite.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    for path in ["/v1/apps", "/v1/users", "/v1/clusters", "/v1/namespaces", "/v1/me"] {
        let r = suite.http.get(suite.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    suite.stop().await.unwrap();
}
