//! What the driver saw, and the figures drawn from it.
//!
//! Every time here is a wall-clock instant stamped in this process (the suite runs in it): a
//! CloudEvent's `time` is stamped by the service that made the change, when it made it (before
//! its outbox commit); a command's is when the driver's core NATS subscription received it.
//!
//! One step of one deployment, in order (`k` = the step, one component each):
//!
//! ```text
//!   end of step k-1 ──hand-off──▶ component.processing ──dispatch──▶ apply command on NATS
//!   (app.created for k = 0: "start")                    (workflow outbox relay)
//!   ──executor──▶ executor.component.healthy ──result──▶ deployment.component.succeeded
//!   (apply + health watch)                   (executor outbox, NATS, workflow results consumer)
//!   last step only: ──finish──▶ deployment.app.succeeded
//! ```
//!
//! The engine's overhead of a step is everything but the executor segment: hand-off (or start) +
//! dispatch + result (+ finish for the last step).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A CloudEvent as the driver keeps it.
#[derive(Debug, Clone)]
pub struct Ev {
    pub name: String,
    /// The CloudEvent subject: the deployment id for `deployment.*` / `workflow.*`.
    pub subject: String,
    pub time: DateTime<Utc>,
    /// When JetStream stored it (the relay published it), by the NATS server's clock.
    pub published: Option<DateTime<Utc>>,
    /// `deployment.component.*`: the component row.
    pub component_id: Option<u64>,
    /// `deployment.component.*` and `executor.component.*`: the apply command.
    pub command_id: Option<String>,
    /// `deployment.app.*` / `executor.component.failed`: why.
    pub reason: Option<String>,
}

impl Ev {
    /// From a CloudEvent's name, subject, time and data (the workflow's payloads have the
    /// deployment's or the component's fields at the top, as the executor's have the result's).
    pub fn new(
        name: &str,
        subject: Option<&str>,
        time: DateTime<Utc>,
        published: Option<DateTime<Utc>>,
        data: &Value,
    ) -> Self {
        let text = |key: &str| data[key].as_str().map(str::to_owned);
        let reason = text("reason").map(|r| match text("message") {
            Some(m) => format!("{r}: {m}"),
            None => r,
        });
        Self {
            name: name.to_owned(),
            subject: subject.unwrap_or_default().to_owned(),
            time,
            published,
            component_id: data["deployComponentId"].as_u64(),
            command_id: text("commandId"),
            reason,
        }
    }
}

/// `deployment.app.<action>` names that end a deployment.
pub const ENDINGS: [&str; 5] = ["succeeded", "failed", "wait-for-op", "terminated", "exception"];

/// The ending of a deployment, if `name` is one.
pub fn ending(name: &str) -> Option<&str> {
    name.strip_prefix("deployment.app.").filter(|a| ENDINGS.contains(a))
}

/// Everything seen, indexed.
#[derive(Default)]
pub struct Seen {
    /// `deployment.*` events by deployment id, in arrival order.
    pub by_deployment: HashMap<u64, Vec<Ev>>,
    /// `executor.component.healthy` by command id: stamped, and on JetStream.
    pub healthy: HashMap<String, (DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// `executor.component.failed` by command id.
    pub executor_failed: HashMap<String, Ev>,
    /// Apply commands by id: when the driver saw each on NATS.
    pub commands: HashMap<String, DateTime<Utc>>,
}

impl Seen {
    pub fn add(&mut self, ev: Ev) {
        if ev.name.starts_with("deployment.") {
            if let Ok(id) = ev.subject.parse() {
                self.by_deployment.entry(id).or_default().push(ev);
            }
        } else if ev.name == "executor.component.healthy" {
            if let Some(c) = &ev.command_id {
                self.healthy.entry(c.clone()).or_insert((ev.time, ev.published));
            }
        } else if ev.name == "executor.component.failed"
            && let Some(c) = ev.command_id.clone()
        {
            self.executor_failed.entry(c).or_insert(ev);
        }
    }

    /// The ending event of deployment `id`, if it ended.
    pub fn ended(&self, id: u64) -> Option<&Ev> {
        self.by_deployment.get(&id)?.iter().find(|e| ending(&e.name).is_some())
    }
}

/// One step's segments, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct StepTimes {
    /// Previous step's end (or `app.created`) → this component `processing`.
    pub handoff: f64,
    /// `processing` → the apply command on NATS.
    pub dispatch: f64,
    /// The command on NATS → `executor.component.healthy`.
    pub executor: f64,
    /// `executor.component.healthy` → `deployment.component.succeeded`.
    pub result: f64,
    /// Of `result`: `executor.component.healthy` stamped → on JetStream (the executor's outbox).
    pub result_relay: Option<f64>,
    /// Last step only: its `succeeded` → `deployment.app.succeeded` (else 0).
    pub finish: f64,
}

impl StepTimes {
    /// The engine's own time in this step (everything but the executor's).
    pub fn overhead(&self) -> f64 {
        self.handoff + self.dispatch + self.result + self.finish
    }
}

/// A successful deployment's timeline.
#[derive(Debug)]
pub struct Timeline {
    /// `app.created` → `app.succeeded`, ms.
    pub total: f64,
    pub steps: Vec<StepTimes>,
    /// Its `deployment.*` events: stamped → on JetStream, ms.
    pub relay: Vec<f64>,
}

impl Timeline {
    /// The engine's own time over the whole deployment (everything but the executor's), ms.
    pub fn overhead(&self) -> f64 {
        self.steps.iter().map(StepTimes::overhead).sum()
    }
}

pub fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3
}

/// One component row of a deployment: its first `processing`, and its `succeeded` with the
/// command it answers.
#[derive(Default)]
struct Component {
    processing: Option<DateTime<Utc>>,
    succeeded: Option<(DateTime<Utc>, String)>,
}

/// The timeline of deployment `id`, which succeeded; `Err` says what is missing.
pub fn timeline(seen: &Seen, id: u64) -> Result<Timeline, String> {
    let evs = seen.by_deployment.get(&id).ok_or("no events")?;
    let at = |name: &str| evs.iter().find(|e| e.name == name).map(|e| e.time);
    let created = at("deployment.app.created").ok_or("no deployment.app.created")?;
    let succeeded = at("deployment.app.succeeded").ok_or("no deployment.app.succeeded")?;
    let mut comps: HashMap<u64, Component> = HashMap::new();
    for e in evs {
        let Some(c) = e.component_id else { continue };
        let entry = comps.entry(c).or_default();
        match e.name.as_str() {
            "deployment.component.processing" => {
                entry.processing.get_or_insert(e.time);
            }
            "deployment.component.succeeded" => {
                if let Some(cmd) = &e.command_id {
                    entry.succeeded = Some((e.time, cmd.clone()));
                }
            }
            _ => {}
        }
    }
    let mut ordered = Vec::new();
    for (c, comp) in comps {
        let processing = comp.processing.ok_or_else(|| format!("component {c}: no processing event"))?;
        let (succeeded_at, command) =
            comp.succeeded.ok_or_else(|| format!("component {c}: no succeeded event"))?;
        let sent =
            *seen.commands.get(&command).ok_or_else(|| format!("command {command} not seen on NATS"))?;
        let healthy =
            *seen.healthy.get(&command).ok_or_else(|| format!("command {command}: no healthy event"))?;
        ordered.push((processing, sent, healthy.0, healthy.1, succeeded_at));
    }
    if ordered.is_empty() {
        return Err("no deployment.component.* events".into());
    }
    ordered.sort_by_key(|t| t.0);
    let mut steps = Vec::with_capacity(ordered.len());
    let mut previous_end = created;
    for (processing, sent, healthy, healthy_published, succeeded_at) in &ordered {
        steps.push(StepTimes {
            handoff: ms(previous_end, *processing),
            dispatch: ms(*processing, *sent),
            executor: ms(*sent, *healthy),
            result: ms(*healthy, *succeeded_at),
            result_relay: healthy_published.map(|p| ms(*healthy, p)),
            finish: 0.0,
        });
        previous_end = *succeeded_at;
    }
    if let Some(last) = steps.last_mut() {
        last.finish = ms(previous_end, succeeded);
    }
    // Every `deployment.*` event of it: stamped → on JetStream (the workflow's outbox).
    let relay = evs.iter().filter_map(|e| e.published.map(|p| ms(e.time, p))).collect();
    Ok(Timeline { total: ms(created, succeeded), steps, relay })
}
