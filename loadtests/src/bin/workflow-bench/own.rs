//! The engine's own time per step, from the suite's timing events (`debug` on the targets
//! [`sw_bus::consumer::TIMING_TARGET`] and [`sw_workflow::results::TIMING_TARGET`]).
//!
//! Every transaction the workflow runs for a deployment is counted once, whole (begin to commit):
//! the driver's passes (`kind = "pass"`, with the step the deployment was in when the pass loaded
//! it) and the results consumer's messages (the bus times each message's transaction; the workflow
//! says which deployment and component the message was about, and whether the pass that followed
//! the result ran inside it). A step's own time is the sum of its transactions: for step `k`, the
//! passes that loaded the deployment at step `k` and the results of step `k`'s component (whose
//! last one, `healthy`, also finishes step `k` and dispatches step `k + 1`). Waiting — for a free
//! slot, the outbox relay, NATS, the executor — is not in it; the report shows those separately.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

#[derive(Default)]
struct Inner {
    /// Results consumer: message id → seconds of its transactions (every delivery).
    delivery: HashMap<String, f64>,
    /// Message id → (deployment, component, whether the pass ran inside it).
    result: HashMap<String, (u64, u64, bool)>,
    /// Driver passes: (deployment, step, seconds).
    passes: Vec<(u64, u64, f64)>,
}

/// Collects the timing events.
#[derive(Clone, Default)]
pub struct Timings(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Fields {
    kind: String,
    consumer: String,
    msg_id: String,
    deployment: u64,
    component: u64,
    step: u64,
    seconds: f64,
    inline: bool,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "msg_id" {
            self.msg_id = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.kind = value.to_owned(),
            "consumer" => self.consumer = value.to_owned(),
            "msg_id" => self.msg_id = value.to_owned(),
            _ => {}
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "deployment" => self.deployment = value,
            "component" => self.component = value,
            "step" => self.step = value,
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "seconds" {
            self.seconds = value;
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "inline" {
            self.inline = value;
        }
    }
}

impl<S: Subscriber> Layer<S> for Timings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        let mut f = Fields::default();
        event.record(&mut f);
        let Ok(mut inner) = self.0.lock() else { return };
        if target == sw_bus::consumer::TIMING_TARGET {
            if f.consumer == sw_workflow::results::DURABLE {
                *inner.delivery.entry(f.msg_id).or_default() += f.seconds;
            }
        } else if target == sw_workflow::results::TIMING_TARGET {
            match f.kind.as_str() {
                "pass" => inner.passes.push((f.deployment, f.step, f.seconds)),
                "result" => {
                    inner.result.insert(f.msg_id, (f.deployment, f.component, f.inline));
                }
                _ => {}
            }
        }
    }
}

/// The figures drawn from the timing events of the deployments in `steps_of`.
#[derive(Debug, Default)]
pub struct OwnTime {
    /// Per step: its transactions' seconds summed, in ms.
    pub per_step_ms: Vec<f64>,
    /// The same by step index (the first step carries the launch's pass).
    pub by_index_ms: Vec<Vec<f64>>,
    /// By step index, the step's time in each [`Part`], in ms (one value per step that had any).
    pub parts_by_index_ms: Vec<[Vec<f64>; 3]>,
    /// Transactions counted, and of the results how many carried their pass inside.
    pub passes: usize,
    pub results: usize,
    pub inline: usize,
    /// Results whose transaction was not timed (should be 0).
    pub untimed: usize,
}

impl Timings {
    /// Clears what was collected (after the warm-up).
    pub fn reset(&self) {
        if let Ok(mut i) = self.0.lock() {
            *i = Inner::default();
        }
    }

    /// Own time per step of the deployments given as id → their component ids in step order.
    pub fn own_time(&self, steps_of: &HashMap<u64, Vec<u64>>) -> OwnTime {
        let Ok(inner) = self.0.lock() else { return OwnTime::default() };
        let mut per: HashMap<(u64, u64), f64> = HashMap::new();
        let mut parts: HashMap<(u64, u64), [f64; 3]> = HashMap::new();
        let mut out = OwnTime::default();
        for &(dep, step, secs) in &inner.passes {
            if let Some(comps) = steps_of.get(&dep) {
                // A pass after the last step (none in a clean run) counts with the last.
                let step = step.min(comps.len().saturating_sub(1) as u64);
                *per.entry((dep, step)).or_default() += secs;
                parts.entry((dep, step)).or_default()[Part::Pass as usize] += secs;
                out.passes += 1;
            }
        }
        for (msg, &(dep, comp, inline)) in &inner.result {
            let Some(step) = steps_of.get(&dep).and_then(|c| c.iter().position(|x| *x == comp)) else {
                continue;
            };
            out.results += 1;
            out.inline += usize::from(inline);
            match inner.delivery.get(msg) {
                Some(secs) => {
                    *per.entry((dep, step as u64)).or_default() += secs;
                    let part = if inline { Part::ResultWithPass } else { Part::Result };
                    parts.entry((dep, step as u64)).or_default()[part as usize] += secs;
                }
                None => out.untimed += 1,
            }
        }
        // Every step of every deployment, counted even if nothing was timed for it.
        for (dep, comps) in steps_of {
            for step in 0..comps.len() as u64 {
                per.entry((*dep, step)).or_default();
            }
        }
        for (&(_, step), &secs) in &per {
            let i = step as usize;
            if out.by_index_ms.len() <= i {
                out.by_index_ms.resize(i + 1, Vec::new());
            }
            out.by_index_ms[i].push(secs * 1e3);
        }
        out.per_step_ms = per.into_values().map(|s| s * 1e3).collect();
        for ((_, step), secs) in parts {
            let i = step as usize;
            if out.parts_by_index_ms.len() <= i {
                out.parts_by_index_ms.resize_with(i + 1, Default::default);
            }
            for (k, s) in secs.iter().enumerate() {
                if *s > 0.0 {
                    out.parts_by_index_ms[i][k].push(s * 1e3);
                }
            }
        }
        out
    }
}

/// Where a step's own time went.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// Passes: the launch's (first step) and the driver's.
    Pass = 0,
    /// Result messages applied alone (`applied`, or a result whose pass fell back to the driver).
    Result = 1,
    /// Result messages that carried the step's pass (`healthy`/`failed` and the next dispatch).
    ResultWithPass = 2,
}
