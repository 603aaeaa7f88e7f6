//! What went wrong quietly during the run: the suite's warnings counted by where and what (a
//! retried pass, a relay pass that hit a deadlock), and the bus's retry counters, so the report can
//! say where time went to retries instead of guessing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// `(target, message, cause)` of a warning, where cause is `deadlock`, `lock wait timeout` or `-`.
type Key = (String, String, &'static str);

/// Warnings and errors counted by [`Key`].
#[derive(Clone, Default)]
pub struct Warnings(Arc<Mutex<BTreeMap<Key, u64>>>);

impl Warnings {
    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<Key, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    error: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" | "cause" => self.error = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "error" | "cause" => self.error = value.to_owned(),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let cause = if f.error.contains("Deadlock") {
            "deadlock"
        } else if f.error.contains("Lock wait timeout") {
            "lock wait timeout"
        } else {
            "-"
        };
        let key = (event.metadata().target().to_owned(), f.message, cause);
        if let Ok(mut m) = self.0.lock() {
            *m.entry(key).or_default() += 1;
        }
    }
}

/// The warnings counted between `before` and `after`, one line each, most frequent first.
pub fn warnings_between(before: &BTreeMap<Key, u64>, after: &BTreeMap<Key, u64>) -> Vec<String> {
    let mut rows: Vec<(u64, String)> = after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (d, format!("{d} × {} \"{}\" (cause: {})", k.0, k.1, k.2)))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, s)| s).collect()
}

/// The bus counters worth a look (`sw_consumer_retries_total`, `…_dead_lettered_total`,
/// `…_duplicates_total`, `sw_outbox_published_total`) from a Prometheus text, by series.
pub fn counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            ["sw_consumer_retries_total", "sw_consumer_dead_lettered_total", "sw_consumer_duplicates_total"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The counters that grew between the two snapshots, one line.
pub fn counters_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d > 0.0 {
            let _ = write!(out, "{}{k} +{d}", if out.is_empty() { "" } else { ", " });
        }
    }
    if out.is_empty() { "none".into() } else { out }
}

/// One own-time summary (`sw_workflow_pass_seconds`, or `sw_consumer_handle_seconds` of the
/// series whose labels hold `label`) from the Prometheus text: (quantile → ms, count).
pub fn own_time(text: &str, metric: &str, label: &str) -> (BTreeMap<String, f64>, f64) {
    let mut quantiles = BTreeMap::new();
    let mut count = 0.0;
    for l in text.lines().filter(|l| l.starts_with(metric) && l.contains(label)) {
        let Some((series, value)) = l.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        if series.starts_with(&format!("{metric}_count")) {
            count = v;
        } else if let Some(q) = series.split("quantile=\"").nth(1).and_then(|r| r.split('"').next()) {
            quantiles.insert(q.to_owned(), v * 1e3);
        }
    }
    (quantiles, count)
}
