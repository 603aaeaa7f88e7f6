//! Distributed tracing as an operator sees it in the trace backend: a client's W3C trace runs
//! through the gateway's HTTP span, over the NATS hop into the service's `rpc.server` span and on
//! into the CloudEvent the service publishes; everything is exported over OTLP/gRPC by the real
//! `sw_telemetry::init` to an in-process collector, and the exporter never traces itself.
//!
//! This installs the process-global subscriber, so it must stay the only test in this file
//! (nextest runs each test in its own process anyway).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use fake_opentelemetry_collector::{ExportedSpan, FakeCollectorServer};
use futures::StreamExt;
use serde_json::{Value, json};
use sreworks_e2e::Suite;
use sw_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

/// Keeps the collector's queue empty (it holds 64 spans and then blocks the exporter) until
/// `stop`, then returns every span it received.
fn drain(
    mut collector: FakeCollectorServer,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Vec<ExportedSpan>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        while !stop.is_cancelled() {
            all.extend(collector.exported_spans(1, Duration::from_millis(100)).await);
        }
        all.extend(collector.exported_spans(0, Duration::ZERO).await);
        collector.abort();
        all
    })
}

/// The collector renders attribute values as `Debug` of the protobuf value; this is the inner text.
fn attr(span: &ExportedSpan, key: &str) -> Option<String> {
    let raw = span.attributes.get(key)?;
    if let Some(s) = raw.split_once("StringValue(\"").and_then(|(_, rest)| rest.split_once("\")")) {
        return Some(s.0.to_owned());
    }
    raw.split_once("IntValue(").and_then(|(_, rest)| rest.split_once(')')).map(|(n, _)| n.to_owned())
}

/// Whether `span` is `ancestor` or sits below it in the exported tree.
fn descends_from(span: &ExportedSpan, ancestor: &str, by_id: &HashMap<&str, &ExportedSpan>) -> bool {
    let mut current = span;
    for _ in 0..32 {
        if current.span_id == ancestor || current.parent_span_id == ancestor {
            return true;
        }
        match by_id.get(current.parent_span_id.as_str()) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn a_trace_runs_from_http_through_nats_into_the_service_span_and_its_event() {
    let collector = FakeCollectorServer::start().await.unwrap();
    // The real process set-up, installed before `TestEnv::new()` installs its plain test logger.
    let mut cfg = sw_config::Config::default();
    cfg.telemetry.otlp_endpoint = Some(collector.endpoint());
    // Switch on the transport crates' own spans, so the OpenTelemetry layer's filter has
    // something to drop (`RUST_LOG`, when set, overrides this).
    cfg.log.filter = "info,h2=trace,hyper=trace,hyper_util=trace,tonic=trace,tower=trace".into();
    let telemetry = sw_telemetry::init(&cfg).unwrap();
    let stop_draining = CancellationToken::new();
    let exported = drain(collector, stop_draining.clone());
    let mut env = TestEnv::new();
    env.cfg.telemetry = cfg.telemetry.clone();

    let suite = Suite::start_with(env, telemetry.clone()).await.unwrap();
    let prefix = suite.env.cfg.nats.prefix.clone();
    let js = async_nats::jetstream::new(async_nats::connect(&suite.env.cfg.nats.url).await.unwrap());
    let events = js
        .get_stream(format!("{}_EVENTS", prefix.to_ascii_uppercase()))
        .await
        .unwrap()
        .create_consumer(pull::Config {
            filter_subject: format!("{prefix}.events.appmeta.>"),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let token = suite.admin_token().await.unwrap();
    // Export once while running: the gRPC call's own client and server spans (this process hosts
    // the collector too) are created now, and would be exported at shutdown if not filtered.
    telemetry.flush().await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let r = suite
        .http
        .get(suite.url("/v1/apps/nope"))
        .bearer_auth(&token)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = suite
        .http
        .post(suite.url("/v1/apps"))
        .bearer_auth(&token)
        .header("traceparent", &traceparent)
        .json(&json!({"appId": "traced", "name": "Traced", "team": "sre"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let mut messages = events.messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("event within 10 s")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(event["type"], "sreworks.appmeta.app.created");
    let event_tp = event["traceparent"].as_str().expect("the event carries a traceparent").to_owned();
    assert_eq!(
        msg.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str()),
        Some(event_tp.as_str())
    );

    // Stop first: the services' spans end when their in-flight tasks have drained.
    suite.stop().await.unwrap();
    telemetry.shutdown().await;
    stop_draining.cancel();
    let spans = exported.await.unwrap();
    let by_id: HashMap<&str, &ExportedSpan> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();

    // Nothing from the exporter's own transport, although its spans were enabled.
    for s in &spans {
        let target = attr(s, "target").unwrap_or_default();
        assert!(
            !sw_telemetry::is_exporter_target(&target),
            "exported a transport span: {} from {target}",
            s.name
        );
    }

    let in_trace: Vec<&ExportedSpan> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let gateway = |method: &str| {
        in_trace
            .iter()
            .copied()
            .find(|s| {
                attr(s, "target").as_deref() == Some("sw_gateway")
                    && attr(s, "method").as_deref() == Some(method)
            })
            .unwrap_or_else(|| panic!("no gateway {method} span in the trace; exported: {in_trace:#?}"))
    };
    let service = |op: &str| {
        in_trace
            .iter()
            .copied()
            .find(|s| s.name == "rpc.server" && attr(s, "op").as_deref() == Some(op))
            .unwrap_or_else(|| panic!("no rpc.server span for {op} in the trace; exported: {in_trace:#?}"))
    };

    for (method, op, status) in [("GET", "apps.get", "404"), ("POST", "apps.create", "201")] {
        let http = gateway(method);
        assert_eq!(http.kind, "SPAN_KIND_SERVER");
        assert_eq!(http.parent_span_id, caller_span, "the gateway span continues the caller's span");
        assert_eq!(
            attr(http, "route").as_deref(),
            Some(if method == "GET" { "/v1/apps/{appId}" } else { "/v1/apps" })
        );
        assert_eq!(attr(http, "status").as_deref(), Some(status));
        let rpc = service(op);
        assert_eq!(rpc.kind, "SPAN_KIND_SERVER");
        assert_eq!(attr(rpc, "service").as_deref(), Some("appmeta"));
        assert_eq!(attr(rpc, "status").as_deref(), Some(status));
        assert!(
            descends_from(rpc, &http.span_id, &by_id),
            "{op}'s service span (parent {}) is not under the gateway span {}",
            rpc.parent_span_id,
            http.span_id
        );
    }

    // The event names the service span that published it, in the caller's trace.
    let create = service("apps.create");
    assert_eq!(event_tp, format!("00-{trace_id}-{}-01", create.span_id));
}
