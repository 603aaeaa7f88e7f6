//! One command, start to finish: the plan's steps with their side effects, and the result event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseTransaction;
use serde::de::DeserializeOwned;
use sw_bus::consumer::{Delivery, Handler, HandlerError, async_trait};
use sw_bus::outbox::Outbox;
use sw_bus::{CloudEvent, Names};
use sw_contracts::executor::{
    ComponentResult, ComponentTarget, Health, K8sApplyCommand, K8sDeleteCommand, ObjectRef,
};

use super::{ClusterError, ClusterProvider};
use crate::health;
use crate::kube_apply::{ApplyError, Cluster, Pruned};
use crate::plan::{
    self, ApplyDecision, ApplyInput, DeleteDecision, DeleteInput, InvalidTransition, Inventory, Phase,
};
use crate::render;
use crate::store::{NewWatch, Recorded, Store, StoreError};

/// The command name of an apply (`{prefix}.cmd.k8s.apply`).
pub const APPLY_COMMAND: &str = "k8s.apply";
/// The command name of a delete (`{prefix}.cmd.k8s.delete`).
pub const DELETE_COMMAND: &str = "k8s.delete";
/// The `source` service of the executor's events.
pub const EVENT_SERVICE: &str = "k8s-executor";

const APPLIED: &str = "executor.component.applied";
/// A command or a health watch failed (the watch: reason [`crate::health::TIMEOUT_REASON`]).
pub(super) const FAILED: &str = "executor.component.failed";
const DELETED: &str = "executor.component.deleted";
/// The component's objects are healthy (reported by the health watch, or with `applied` when
/// they were healthy as applied).
pub(super) const HEALTHY: &str = "executor.component.healthy";

/// Applies and deletes components as the commands say; see the module docs of [`super`].
pub struct CommandHandler {
    store: Store,
    outbox: Outbox,
    clusters: Arc<dyn ClusterProvider>,
    names: Names,
    /// The consumer's delivery limit: on the last delivery a transient cluster failure is reported
    /// as `failed` rather than left to the dead-letter subject, so the workflow hears of it.
    max_deliver: i64,
    /// How long another command's unfinished work on an instance keeps a newer command waiting
    /// (retried with the consumer's backoff) before the newer one may take the instance over: one
    /// attempt's limit (the ack wait) and a margin, after which that command's attempt is over.
    busy_lease: Duration,
    /// One command at a time per component instance in this replica.
    locks: InstanceLocks,
}

impl CommandHandler {
    /// `ack_wait` is the consumer's: no attempt of a command outlives it.
    pub fn new(
        store: Store,
        outbox: Outbox,
        clusters: Arc<dyn ClusterProvider>,
        names: Names,
        max_deliver: i64,
        ack_wait: Duration,
    ) -> Self {
        let busy_lease = ack_wait + BUSY_MARGIN;
        Self { store, outbox, clusters, names, max_deliver, busy_lease, locks: InstanceLocks::default() }
    }
}

/// Added to the ack wait for [`CommandHandler::busy_lease`]: the time a cut-off attempt's last
/// request may still take to reach the API server, and clock differences between replicas.
const BUSY_MARGIN: Duration = Duration::from_secs(5);

/// A lock per component instance, so two commands for one instance never interleave their steps in
/// this replica (the consumer runs several commands at once). Between replicas the inventory's
/// compare-and-swap and [`CommandHandler::busy_lease`] keep them apart.
#[derive(Default)]
struct InstanceLocks {
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl InstanceLocks {
    async fn lock(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget the locks nobody holds or waits for, so the map stays as small as the work.
            if locks.len() > 1024 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[async_trait]
impl Handler for CommandHandler {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        let last = msg.delivered >= self.max_deliver;
        let (result, deadline_secs) = if msg.subject == self.names.command_subject(APPLY_COMMAND) {
            let cmd = parse::<K8sApplyCommand>(msg)?;
            let deadline_secs = cmd.health_deadline_secs;
            let _held = self.locks.lock(instance_key(&cmd.target)).await;
            (self.apply(cmd, last).await, Some(deadline_secs))
        } else if msg.subject == self.names.command_subject(DELETE_COMMAND) {
            let cmd = parse::<K8sDeleteCommand>(msg)?;
            let _held = self.locks.lock(instance_key(&cmd.target)).await;
            (self.delete(cmd, last).await, None)
        } else {
            return Err(HandlerError::Permanent(format!("not an executor command: {}", msg.subject)));
        };
        let recorded = result.map_err(Step::into_handler_error)?;
        self.follow(txn, &recorded, deadline_secs).await.map_err(Step::into_handler_error)?;
        let subject = instance_key(&recorded.result.target);
        let event =
            CloudEvent::new(EVENT_SERVICE, &recorded.event_type, Some(subject.clone()), &recorded.result);
        let mut rows = vec![self.outbox.event_row(&event)?];
        if healthy_as_applied(&recorded, deadline_secs) {
            let healthy = CloudEvent::new(EVENT_SERVICE, HEALTHY, Some(subject), &recorded.result);
            rows.push(self.outbox.event_row(&healthy)?);
        }
        self.outbox.insert(txn, rows).await?;
        Ok(())
    }

    /// The result's event is committed: the relay publishes it now rather than at its next poll.
    async fn committed(&self, _msg: &Delivery) {
        self.outbox.wake();
    }
}

/// Why a command did not come to a result.
#[derive(Debug)]
enum Step {
    /// Worth another delivery (a cluster or the database unreachable, a lost compare-and-swap).
    Retry(String),
    /// Cannot work however often it is tried and cannot even be reported (a corrupt inventory,
    /// a transition the plan refuses): dead-lettered for an operator.
    Permanent(String),
}

impl Step {
    fn into_handler_error(self) -> HandlerError {
        match self {
            Step::Retry(m) => HandlerError::Retry(m),
            Step::Permanent(m) => HandlerError::Permanent(m),
        }
    }
}

impl From<StoreError> for Step {
    fn from(e: StoreError) -> Self {
        match e {
            // Another worker moved the instance on: decide again on the redelivery.
            StoreError::Conflict { .. } => Step::Retry(e.to_string()),
            e if e.is_transient() => Step::Retry(e.to_string()),
            StoreError::Database(_) => Step::Retry(e.to_string()),
            e => Step::Permanent(e.to_string()),
        }
    }
}

impl From<InvalidTransition> for Step {
    fn from(e: InvalidTransition) -> Self {
        Step::Permanent(format!("the plan refused a transition: {e}"))
    }
}

fn parse<T: DeserializeOwned>(msg: &Delivery) -> Result<T, HandlerError> {
    serde_json::from_slice(&msg.payload)
        .map_err(|e| HandlerError::Permanent(format!("malformed command on {}: {e}", msg.subject)))
}

/// What a failed cluster call means for the command: retry (reported with `reason` once the
/// deliveries are used up), or a `failed` result.
enum Failure {
    Retry { reason: &'static str, message: String },
    Report { reason: String, message: String },
}

impl Failure {
    /// The `(reason, message)` to report, or the retry to ask for when deliveries remain.
    fn settle(self, last: bool) -> Result<(String, String), Step> {
        match self {
            Failure::Retry { message, .. } if !last => Err(Step::Retry(message)),
            Failure::Retry { reason, message } => {
                Ok((reason.to_owned(), format!("gave up after the last delivery: {message}")))
            }
            Failure::Report { reason, message } => Ok((reason, message)),
        }
    }
}

impl From<ApplyError> for Failure {
    fn from(e: ApplyError) -> Self {
        if e.is_transient() {
            Failure::Retry { reason: e.reason(), message: e.to_string() }
        } else {
            Failure::Report { reason: e.reason().to_owned(), message: e.to_string() }
        }
    }
}

impl From<ClusterError> for Failure {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unknown(_) => {
                Failure::Report { reason: "UnknownCluster".into(), message: e.to_string() }
            }
            ClusterError::Unavailable { .. } => {
                Failure::Retry { reason: "ClusterUnavailable", message: e.to_string() }
            }
            ClusterError::Invalid { .. } => {
                Failure::Report { reason: "InvalidCluster".into(), message: e.to_string() }
            }
        }
    }
}

/// A result to report, before it is recorded.
struct Outcome {
    event_type: &'static str,
    result: ComponentResult,
}

impl Outcome {
    fn failed(
        command_id: &str,
        target: &ComponentTarget,
        revision: u64,
        reason: &str,
        message: String,
    ) -> Self {
        Outcome {
            event_type: FAILED,
            result: ComponentResult {
                command_id: command_id.to_owned(),
                target: target.clone(),
                revision,
                health: Health::Unknown,
                reason: Some(reason.to_owned()),
                message: Some(message),
                objects: Vec::new(),
                pruned: Vec::new(),
            },
        }
    }

    /// Published without a record: a refusal says nothing about the command's own effect, and its id
    /// may belong to another command's record (`CommandIdReused`).
    fn unrecorded(self) -> Recorded {
        Recorded {
            event_type: self.event_type.to_owned(),
            revision: self.result.revision,
            result: self.result,
        }
    }
}

impl CommandHandler {
    /// Starts the instance's health watch for an `applied` result (`deadline_secs` from its command),
    /// or ends it for a `deleted` or `failed` one, in the consumer's transaction `txn`, so the watch
    /// and the result event commit together or not at all. A redelivery keeps its watch's start;
    /// an older revision's result never touches a newer revision's watch.
    async fn follow(
        &self,
        txn: &DatabaseTransaction,
        recorded: &Recorded,
        deadline_secs: Option<u64>,
    ) -> Result<(), Step> {
        let r = &recorded.result;
        match (recorded.event_type.as_str(), deadline_secs) {
            // Nothing to wait for; an older revision's watch ends too.
            (APPLIED, Some(_)) if healthy_as_applied(recorded, deadline_secs) => {
                self.store.remove_watch(txn, &r.target, &r.command_id, r.revision).await?;
            }
            (APPLIED, Some(deadline_secs)) => {
                let watch = NewWatch {
                    command_id: r.command_id.clone(),
                    revision: r.revision,
                    target: r.target.clone(),
                    objects: r.objects.clone(),
                    deadline_secs,
                };
                self.store.upsert_watch(txn, &watch, Utc::now()).await?;
            }
            (FAILED | DELETED, _) => {
                self.store.remove_watch(txn, &r.target, &r.command_id, r.revision).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn apply(&self, cmd: K8sApplyCommand, last: bool) -> Result<Recorded, Step> {
        let (id, target, revision) = (cmd.command_id.as_str(), &cmd.target, cmd.revision);
        let rendered = match render::render(target, revision, &cmd.component) {
            Ok(r) => r,
            Err(e) => {
                let out = Outcome::failed(id, target, revision, e.reason(), e.to_string());
                return self.record(id, out).await;
            }
        };
        let (inv, version, touched) = self.store.load_stamped(target).await?;
        let decision = plan::decide_apply(&inv, ApplyInput::new(&cmd, &rendered));
        // A command that already produced a result gets that result again, whatever state the
        // instance has moved to since; only a prune its first delivery left undone is finished.
        if let Some(recorded) = self.recorded(id, revision, DELETED).await? {
            if let ApplyDecision::Replay { finish_prune } = &decision {
                self.finish_prune(target, inv, version, finish_prune, last).await?;
            }
            return Ok(recorded);
        }
        match decision {
            ApplyDecision::Refuse(r) => {
                Ok(Outcome::failed(id, target, revision, r.reason(), r.to_string()).unrecorded())
            }
            ApplyDecision::Replay { finish_prune } => {
                // Finished, but its result was never recorded (a crash in between): say it again.
                self.finish_prune(target, inv, version, &finish_prune, last).await?;
                // Nobody looked at the objects in this delivery, so their health is not known.
                let out = applied(&cmd, rendered.refs, Vec::new(), Health::Unknown, None);
                self.record(id, out).await
            }
            ApplyDecision::Apply { record_in_flight, then_prune } => {
                if let Some(busy) = self.busy(&inv, touched, id).await? {
                    return self.wait_or_report(id, target, revision, busy, last).await;
                }
                let cluster = match self.clusters.cluster(&target.cluster_id).await {
                    Ok(c) => c,
                    Err(e) => return self.report(id, target, revision, e.into(), last).await,
                };
                let started = plan::begin(&inv, &record_in_flight)?;
                let version = self.store.save(target, &started, version).await?;
                let answers = match cluster.apply_all(&target.namespace, &rendered).await {
                    Ok(a) => a,
                    Err(e) => return self.report(id, target, revision, e.into(), last).await,
                };
                let done = plan::after_apply(&started, id)?;
                let version = self.store.save(target, &done, version).await?;
                let (pruned, note) = match self.prune(&cluster, target, &then_prune).await {
                    Ok(p) => (p, None),
                    Err(failure) => {
                        let (_, message) = failure.settle(last)?;
                        (Pruned::default(), Some(format!("applied; pruning stopped: {message}")))
                    }
                };
                let after = plan::after_prune(&done, &pruned.released())?;
                // Nothing pruned: the inventory is `done`, already written.
                if after != done {
                    self.store.save(target, &after, version).await?;
                }
                let assessed: Vec<_> = answers.iter().map(health::assess).collect();
                let health = health::aggregate(&assessed);
                let note = note.or_else(|| skipped_note(&pruned)).or(health.message);
                let out = applied(&cmd, rendered.refs, pruned.gone, health.health, note);
                self.record(id, out).await
            }
        }
    }

    async fn delete(&self, cmd: K8sDeleteCommand, last: bool) -> Result<Recorded, Step> {
        let (id, target, revision) = (cmd.command_id.as_str(), &cmd.target, cmd.revision);
        let (inv, version, touched) = self.store.load_stamped(target).await?;
        let decision = plan::decide_delete(&inv, DeleteInput::from(&cmd));
        if let Some(recorded) = self.recorded(id, revision, APPLIED).await? {
            return Ok(recorded);
        }
        match decision {
            DeleteDecision::Refuse(r) => {
                Ok(Outcome::failed(id, target, revision, r.reason(), r.to_string()).unrecorded())
            }
            DeleteDecision::Replay => self.record(id, deleted(&cmd, Vec::new(), None)).await,
            DeleteDecision::Delete { record_in_flight, delete } => {
                if let Some(busy) = self.busy(&inv, touched, id).await? {
                    return self.wait_or_report(id, target, revision, busy, last).await;
                }
                let cluster = match self.clusters.cluster(&target.cluster_id).await {
                    Ok(c) => c,
                    Err(e) => return self.report(id, target, revision, e.into(), last).await,
                };
                let started = plan::begin(&inv, &record_in_flight)?;
                let version = self.store.save(target, &started, version).await?;
                let pruned = match self.prune(&cluster, target, &delete).await {
                    Ok(p) => p,
                    // The delete stays in flight; a later command or a retry of this one resumes it.
                    Err(failure) => return self.report(id, target, revision, failure, last).await,
                };
                let emptied = plan::after_prune(&started, &pruned.released())?;
                let finished = plan::after_delete(&emptied, id)?;
                self.store.save(target, &finished, version).await?;
                let note = skipped_note(&pruned);
                self.record(id, deleted(&cmd, pruned.gone, note)).await
            }
        }
    }

    /// Deletes `refs` if they are still this instance's; objects found to be someone else's are
    /// released from the inventory too (never deleted), and named in the result's message.
    async fn prune(
        &self,
        cluster: &Cluster,
        target: &ComponentTarget,
        refs: &[ObjectRef],
    ) -> Result<Pruned, Failure> {
        if refs.is_empty() {
            return Ok(Pruned::default());
        }
        Ok(cluster.prune(&target.namespace, refs, &render::owner_selector(target)).await?)
    }

    /// The prune a finished apply left undone, persisted; the inventory as it is afterwards.
    async fn finish_prune(
        &self,
        target: &ComponentTarget,
        inv: Inventory,
        version: u64,
        refs: &[ObjectRef],
        last: bool,
    ) -> Result<Inventory, Step> {
        if refs.is_empty() {
            return Ok(inv);
        }
        let cluster = match self.clusters.cluster(&target.cluster_id).await {
            Ok(c) => c,
            Err(e) => {
                Failure::from(e).settle(last)?;
                return Ok(inv);
            }
        };
        let pruned = match self.prune(&cluster, target, refs).await {
            Ok(p) => p,
            Err(failure) => {
                failure.settle(last)?;
                // Left for the next revision's prune, which covers everything owned and not rendered.
                return Ok(inv);
            }
        };
        let after = plan::after_prune(&inv, &pruned.released())?;
        self.store.save(target, &after, version).await?;
        Ok(after)
    }

    /// Whether another command may still be working on the instance — applying, pruning or deleting
    /// — so this one must not start: taking the instance over then could let that command's late
    /// PATCH land over this revision, or its prune delete an object this revision renders (the
    /// KubeVela #6746 race). Its work counts as over once the inventory has not been written for
    /// [`CommandHandler::busy_lease`] (its attempt was cut off or its replica died).
    ///
    /// A holder whose result is recorded has ended (its apply failed for good, say) and never
    /// writes again, so it holds nothing: the next command goes ahead at once.
    async fn busy(
        &self,
        inv: &Inventory,
        touched: Option<DateTime<Utc>>,
        command_id: &str,
    ) -> Result<Option<String>, Step> {
        let Some(holder) = holder(inv) else { return Ok(None) };
        if holder == command_id || self.store.result_of(holder).await?.is_some() {
            return Ok(None);
        }
        Ok(self.busy_by(holder, touched))
    }

    fn busy_by(&self, holder: &str, touched: Option<DateTime<Utc>>) -> Option<String> {
        let age = Utc::now().signed_duration_since(touched?);
        let lease = TimeDelta::from_std(self.busy_lease).unwrap_or(TimeDelta::MAX);
        (age < lease).then(|| {
            format!(
                "command {holder:?} is still working on this component instance (last step {}s ago)",
                age.num_seconds().max(0)
            )
        })
    }

    /// A busy instance: wait for the next delivery, or on the last one report `failed` with reason
    /// `InstanceBusy` (nothing was done; a later command for the instance goes ahead).
    async fn wait_or_report(
        &self,
        command_id: &str,
        target: &ComponentTarget,
        revision: u64,
        busy: String,
        last: bool,
    ) -> Result<Recorded, Step> {
        if !last {
            return Err(Step::Retry(busy));
        }
        Ok(Outcome::failed(command_id, target, revision, "InstanceBusy", busy).unrecorded())
    }

    /// A failed cluster call: a retry, or a `failed` result recorded for the command.
    async fn report(
        &self,
        command_id: &str,
        target: &ComponentTarget,
        revision: u64,
        failure: Failure,
        last: bool,
    ) -> Result<Recorded, Step> {
        let (reason, message) = failure.settle(last)?;
        self.record(command_id, Outcome::failed(command_id, target, revision, &reason, message)).await
    }

    /// The result recorded for this command, unless the id was recorded for another command (another
    /// revision, or the other operation, `not_event`): that is a reused id, which the plan refuses.
    async fn recorded(
        &self,
        command_id: &str,
        revision: u64,
        not_event: &str,
    ) -> Result<Option<Recorded>, Step> {
        let recorded = self.store.result_of(command_id).await?;
        Ok(recorded.filter(|r| r.revision == revision && r.event_type != not_event))
    }

    /// Records `out` as the command's result; the record that wins is the one reported.
    async fn record(&self, command_id: &str, out: Outcome) -> Result<Recorded, Step> {
        let r = &out.result;
        Ok(self.store.record_result(command_id, &r.target, r.revision, out.event_type, r).await?)
    }
}

/// An apply whose objects were healthy in the cluster's own answers (a ConfigMap, a Deployment with
/// nothing to roll out): `healthy` is reported with `applied`, in its transaction, and no health
/// watch is started — the watch's first look would have found the same, a poll later.
fn healthy_as_applied(recorded: &Recorded, deadline_secs: Option<u64>) -> bool {
    recorded.event_type == APPLIED && deadline_secs.is_some() && recorded.result.health == Health::Healthy
}

/// The command that last started work on the instance and may not have finished it.
fn holder(inv: &Inventory) -> Option<&str> {
    match (&inv.in_flight, inv.phase()) {
        (Some(f), _) => Some(f.command_id.as_str()),
        (None, Phase::Pruning) => inv.last_command_id.as_deref(),
        _ => None,
    }
}

fn applied(
    cmd: &K8sApplyCommand,
    objects: Vec<ObjectRef>,
    pruned: Vec<ObjectRef>,
    health: Health,
    message: Option<String>,
) -> Outcome {
    Outcome {
        event_type: APPLIED,
        result: ComponentResult {
            command_id: cmd.command_id.clone(),
            target: cmd.target.clone(),
            revision: cmd.revision,
            health,
            reason: None,
            message,
            objects,
            pruned,
        },
    }
}

fn deleted(cmd: &K8sDeleteCommand, pruned: Vec<ObjectRef>, message: Option<String>) -> Outcome {
    Outcome {
        event_type: DELETED,
        result: ComponentResult {
            command_id: cmd.command_id.clone(),
            target: cmd.target.clone(),
            revision: cmd.revision,
            health: Health::Missing,
            reason: None,
            message,
            objects: Vec::new(),
            pruned,
        },
    }
}

fn skipped_note(pruned: &Pruned) -> Option<String> {
    if pruned.skipped.is_empty() {
        return None;
    }
    let left: Vec<String> =
        pruned.skipped.iter().map(|s| format!("{} {}: {}", s.object.kind, s.object.name, s.why)).collect();
    Some(format!("left in place, not this instance's: {}", left.join("; ")))
}

/// The event subject: `cluster/namespace/app_instance/component_instance`.
pub(super) fn instance_key(t: &ComponentTarget) -> String {
    format!("{}/{}/{}/{}", t.cluster_id, t.namespace, t.app_instance, t.component_instance)
}
