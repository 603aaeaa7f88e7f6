//! One telemetry set-up for every sreworks process: logs (pretty or JSON, filtered by `RUST_LOG`
//! or `log.filter`) and a Prometheus metrics recorder whose text the process serves at `/metrics`.
//!
//! Call [`init`] once in `main` and keep the returned [`Telemetry`] alive until exit. Libraries only
//! use the `tracing` and `metrics` macros; they never install anything themselves, so tests can run
//! many services in one process.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sw_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps telemetry running; renders metrics.
#[derive(Clone)]
pub struct Telemetry {
    metrics: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("a global subscriber or recorder is already installed")]
    AlreadyInstalled,
}

impl Telemetry {
    /// The Prometheus text exposition of every metric recorded so far.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }
}

/// Installs the log subscriber and the metrics recorder for the whole process.
pub fn init(log: &LogConfig) -> Result<Telemetry, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(f),
        _ => EnvFilter::try_new(&log.filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?
    // The database driver logs every statement at info; keep it to warnings.
    .add_directive("sqlx=warn".parse().map_err(|e: tracing_subscriber::filter::ParseError| TelemetryError::Filter(e.to_string()))?);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match log.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true))
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer().compact()).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)?;
    let metrics = recorder();
    Ok(Telemetry { metrics })
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

/// A [`Telemetry`] without installing a log subscriber (for tests and embedded use).
pub fn metrics_only() -> Telemetry {
    Telemetry { metrics: recorder() }
}
