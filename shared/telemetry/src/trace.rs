//! The OpenTelemetry half: the tracer provider (with an OTLP/gRPC batch exporter when configured),
//! the `tracing` → OpenTelemetry layer, and the W3C `traceparent` helpers used at the process
//! edges (HTTP in the gateway, NATS in `sw-bus`).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sw_config::TelemetryConfig;
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use crate::TelemetryError;

/// How long one OTLP export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The W3C header (and carrier key) that holds the trace context.
const TRACEPARENT: &str = "traceparent";

/// Crates whose spans are the exporter's own plumbing (gRPC, HTTP/2, HTTP clients, the SDK).
/// Tracing them would make every export produce spans to export, and shutdown would wait on
/// spans created by the shutdown's own export until it times out.
const EXPORTER_CRATES: &[&str] = &["h2", "hyper", "hyper_util", "tonic", "tonic_prost", "tower", "reqwest"];

/// Whether spans and events with this `target` belong to the exporter's transport stack (and so
/// are never turned into OpenTelemetry spans).
pub fn is_exporter_target(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    EXPORTER_CRATES.contains(&krate) || krate.starts_with("opentelemetry")
}

/// The tracer provider: always generates ids (so context propagates); exports in batches over
/// OTLP/gRPC only when an endpoint is configured.
pub(crate) fn provider(cfg: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource());
    if let Some(endpoint) = cfg.otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        // The gRPC channel spawns its connection task on the current runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TelemetryError::NoRuntime);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// `service.name` = `sreworks` (unless `OTEL_SERVICE_NAME` says otherwise) and a fresh
/// `service.instance.id`, so replicas of one target stay apart in the trace backend.
fn resource() -> Resource {
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none_or(|v| v.is_empty()) {
        builder = builder.with_service_name("sreworks");
    }
    builder
        .with_attribute(KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The `tracing` → OpenTelemetry layer, with its own filter that drops the exporter's own spans.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sreworks"))
        .with_filter(filter_fn(|meta| !is_exporter_target(meta.target())))
}

/// Makes the W3C `traceparent` the remote parent of `span`. Call it right after creating the
/// span, before it is entered. A missing or malformed value leaves `span` a new root; without an
/// OpenTelemetry layer (tests, tools) this does nothing.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), tp.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if !cx.span().span_context().is_valid() {
        return;
    }
    if let Err(SetParentError::AlreadyStarted) = OpenTelemetrySpanExt::set_parent(span, cx) {
        // A programming slip (the span was entered first), not a caller's fault.
        tracing::debug!("Trace parent set on a span that had already started; ignored.");
    }
}

/// The W3C `traceparent` naming `span` (to send to the next hop), or `None` when `span` has no
/// OpenTelemetry context: no layer installed, or the span was filtered out.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = OpenTelemetrySpanExt::context(span);
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    /// Keeps exported spans in memory.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// Runs `f` under a subscriber with only our OpenTelemetry layer, exporting synchronously.
    fn traced<T>(f: impl FnOnce() -> T) -> (T, Vec<SpanData>) {
        let out = Collect::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(out.clone()).build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        let result = tracing::subscriber::with_default(subscriber, f);
        let spans = std::mem::take(&mut *out.0.lock().unwrap());
        (result, spans)
    }

    fn parts(tp: &str) -> Vec<String> {
        tp.split('-').map(str::to_owned).collect()
    }

    #[test]
    fn without_a_layer_there_is_no_context() {
        let span = tracing::info_span!("orphan");
        set_parent(&span, Some(&format!("00-{TRACE}-{PARENT}-01")));
        assert_eq!(traceparent_of(&span), None);
    }

    #[test]
    fn a_span_continues_the_incoming_trace_and_names_itself() {
        let (tp, spans) = traced(|| {
            let span = tracing::info_span!("rpc.server", op = "apps.get");
            set_parent(&span, Some(&format!("00-{TRACE}-{PARENT}-01")));
            traceparent_of(&span)
        });
        let tp = tp.expect("a context");
        let p = parts(&tp);
        assert_eq!((p[0].as_str(), p[1].as_str(), p[3].as_str()), ("00", TRACE, "01"));
        assert_ne!(p[2], PARENT, "the next hop's parent is this span, not the caller");
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "rpc.server");
        assert_eq!(s.span_context.trace_id().to_string(), TRACE);
        assert_eq!(s.span_context.span_id().to_string(), p[2]);
        assert_eq!(s.parent_span_id.to_string(), PARENT);
        assert!(s.parent_span_is_remote);
    }

    #[test]
    fn a_malformed_or_missing_parent_starts_a_new_trace() {
        for incoming in
            [None, Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), Some("garbage")]
        {
            let (tp, spans) = traced(|| {
                let span = tracing::info_span!("http.request");
                set_parent(&span, incoming);
                traceparent_of(&span)
            });
            let p = parts(&tp.expect("a context"));
            assert_eq!(p.len(), 4, "{incoming:?}");
            assert!(p[1].bytes().any(|b| b != b'0') && p[1] != TRACE, "{incoming:?}");
            assert_eq!(spans[0].parent_span_id.to_string(), "0000000000000000", "{incoming:?}");
        }
    }

    #[test]
    fn children_share_the_trace_and_point_at_their_parent() {
        let ((outer_tp, inner_tp), spans) = traced(|| {
            let outer = tracing::info_span!("http.request");
            set_parent(&outer, Some(&format!("00-{TRACE}-{PARENT}-01")));
            let inner = outer.in_scope(|| tracing::info_span!("work"));
            (traceparent_of(&outer), traceparent_of(&inner))
        });
        let (outer, inner) = (parts(&outer_tp.unwrap()), parts(&inner_tp.unwrap()));
        assert_eq!(outer[1], TRACE);
        assert_eq!(inner[1], TRACE);
        let work = spans.iter().find(|s| s.name == "work").expect("work exported");
        assert_eq!(work.parent_span_id.to_string(), outer[2]);
    }

    #[test]
    fn the_exporters_own_spans_are_not_traced() {
        let (tp, spans) = traced(|| {
            let _hyper = tracing::info_span!(target: "hyper_util::client::legacy", "connect").entered();
            let _h2 = tracing::info_span!(target: "h2::codec", "frame").entered();
            let _tonic = tracing::info_span!(target: "tonic::transport::channel", "call").entered();
            let _otel = tracing::info_span!(target: "opentelemetry_sdk", "export").entered();
            let ours = tracing::info_span!("rpc.server");
            traceparent_of(&ours)
        });
        assert!(tp.is_some());
        let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["rpc.server"]);
    }

    #[test]
    fn exporter_targets_are_matched_by_crate() {
        for t in [
            "h2",
            "h2::proto",
            "hyper::client",
            "hyper_util::rt",
            "tonic::transport",
            "tower::buffer",
            "reqwest::connect",
        ] {
            assert!(is_exporter_target(t), "{t}");
        }
        for t in ["opentelemetry_sdk", "opentelemetry-otlp", "opentelemetry::global"] {
            assert!(is_exporter_target(t), "{t}");
        }
        for t in ["sw_bus::rpc", "sw_gateway", "hyperloop", "towers", "sreworks"] {
            assert!(!is_exporter_target(t), "{t}");
        }
    }

    #[test]
    fn a_plain_http_endpoint_builds_an_exporter_and_https_is_refused_clearly() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cfg =
                TelemetryConfig { otlp_endpoint: Some("http://127.0.0.1:4317".into()), ..Default::default() };
            let provider = provider(&cfg).expect("plain gRPC endpoint");
            let _ = provider.shutdown();
            let cfg = TelemetryConfig {
                otlp_endpoint: Some("https://collector:4317".into()),
                ..Default::default()
            };
            let err = provider_err(&cfg);
            assert!(err.contains("https://collector:4317"), "{err}");
        });
        let cfg =
            TelemetryConfig { otlp_endpoint: Some("http://127.0.0.1:4317".into()), ..Default::default() };
        assert!(matches!(provider(&cfg), Err(TelemetryError::NoRuntime)));
    }

    fn provider_err(cfg: &TelemetryConfig) -> String {
        match provider(cfg) {
            Ok(_) => String::from("built"),
            Err(e) => e.to_string(),
        }
    }
}
