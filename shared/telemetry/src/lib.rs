//! One telemetry set-up for every sreworks process: logs (pretty or JSON, filtered by `RUST_LOG`
//! or `log.filter`), distributed traces (OpenTelemetry, exported over OTLP/gRPC when
//! `telemetry.otlp_endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT` is set) and a Prometheus metrics
//! recorder whose text the process serves at `/metrics`.
//!
//! How a trace moves: the gateway opens an `http.request` span whose parent is the caller's W3C
//! `traceparent` ([`set_parent`]); it sends that span's context ([`traceparent_of`]) in the NATS
//! `traceparent` header; `sw_bus::rpc::serve` opens an `rpc.server` span under it and hands the
//! service span's context to the handler, which stamps it on the CloudEvents it publishes. Every
//! `tracing` span becomes an OpenTelemetry span through the layer [`init`] installs; span ids are
//! generated even without an exporter, so context still propagates when nothing is exported.
//!
//! Call [`init`] once in `main`, keep the returned [`Telemetry`] alive, and await
//! [`Telemetry::shutdown`] before exit so buffered spans are flushed. Libraries only use the
//! `tracing` and `metrics` macros and the pure helpers here; they never install anything
//! themselves, so tests can run many services in one process.

mod trace;

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sw_config::{Config, LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use crate::trace::{is_exporter_target, set_parent, traceparent_of};

/// How long [`Telemetry::shutdown`] waits for buffered spans to reach the collector.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Keeps telemetry running; renders metrics; flushes traces on [`Telemetry::shutdown`].
#[derive(Clone)]
pub struct Telemetry {
    metrics: PrometheusHandle,
    /// The process's tracer provider; `None` for [`metrics_only`].
    traces: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("traces", &self.traces.is_some()).finish_non_exhaustive()
    }
}

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("a global subscriber or recorder is already installed")]
    AlreadyInstalled,
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("telemetry with an OTLP endpoint must be initialised inside a Tokio runtime")]
    NoRuntime,
}

impl Telemetry {
    /// The Prometheus text exposition of every metric recorded so far.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// Exports the spans buffered so far without stopping (the exporter otherwise sends every few
    /// seconds); waits at most a few seconds.
    pub async fn flush(&self) {
        let Some(provider) = self.traces.clone() else { return };
        // Blocking for the same reason as in `shutdown`.
        let task = tokio::task::spawn_blocking(move || provider.force_flush());
        match tokio::time::timeout(SHUTDOWN_DEADLINE + Duration::from_secs(1), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "Traces could not be flushed."),
            Ok(Err(e)) => tracing::warn!(error = %e, "Trace flush failed."),
            Err(_) => tracing::warn!(
                deadline_s = SHUTDOWN_DEADLINE.as_secs(),
                "Trace flush did not finish within the deadline."
            ),
        }
    }

    /// Exports the spans still buffered and stops the exporter, waiting at most a few seconds so a
    /// dead collector cannot hold up process exit. Safe to call more than once.
    pub async fn shutdown(&self) {
        let Some(provider) = self.traces.clone() else { return };
        // The SDK's shutdown blocks until the batch thread has exported, and the gRPC channel it
        // exports through is driven by this runtime: block a pool thread, never this one.
        let task = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_DEADLINE));
        match tokio::time::timeout(SHUTDOWN_DEADLINE + Duration::from_secs(1), task).await {
            Ok(Ok(Ok(()) | Err(OTelSdkError::AlreadyShutdown))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "Traces were not all exported at shutdown."),
            Ok(Err(e)) => tracing::warn!(error = %e, "Trace shutdown failed."),
            Err(_) => tracing::warn!(
                deadline_s = SHUTDOWN_DEADLINE.as_secs(),
                "Trace export did not finish within the deadline."
            ),
        }
    }
}

/// Installs, for the whole process: the log subscriber (filter + pretty/JSON output), the
/// OpenTelemetry layer (exporting over OTLP/gRPC when `cfg.telemetry.otlp_endpoint` is set), the
/// W3C trace-context propagator and the metrics recorder.
///
/// With an OTLP endpoint this must run inside a Tokio runtime: the gRPC channel lives on it.
pub fn init(cfg: &Config) -> Result<Telemetry, TelemetryError> {
    let filter = env_filter(&cfg.log)?;
    let provider = trace::provider(&cfg.telemetry)?;
    let fmt = match cfg.log.format {
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).boxed()
        }
        // Colours only on a terminal, so redirected logs stay plain text.
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(trace::layer(&provider))
        .with(fmt)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if let Some(endpoint) = &cfg.telemetry.otlp_endpoint {
        tracing::info!(endpoint = %endpoint, "Exporting traces over OTLP.");
    }
    Ok(Telemetry { metrics: recorder(), traces: Some(provider) })
}

fn env_filter(log: &LogConfig) -> Result<EnvFilter, TelemetryError> {
    let parse_err = |e: tracing_subscriber::filter::ParseError| TelemetryError::Filter(e.to_string());
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(f),
        _ => EnvFilter::try_new(&log.filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    // The database driver logs every statement at info; keep it to warnings.
    Ok(filter.add_directive("sqlx=warn".parse().map_err(parse_err)?))
}

/// Installs (once per process) the Prometheus recorder and returns its handle; for tests that
/// build services without [`init`] too.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    // A process has one metrics recorder by design of the `metrics` facade; this is the only
    // process-wide state we keep, and it holds no data a test could observe from another test
    // except counters, which tests do not assert on.
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A [`Telemetry`] without installing a log subscriber or tracer (for tests and embedded use).
pub fn metrics_only() -> Telemetry {
    Telemetry { metrics: recorder(), traces: None }
}
