//! The engine: one pass over one deployment decides what happens next and writes it in one
//! transaction.
//!
//! A pass ([`Pass`]) loads the deployment (with its workflow), its tasks and components, then:
//! 1. `CREATED` waits while an older deployment holds the same app instance; otherwise it starts:
//!    `COMPONENT_CHECKING` → `BACKUP_CHECKING` → `PROCESSING` (the components were resolved and the
//!    package checked at launch, so these pass at once), the workflow `PENDING` → `PREPROCESSING` →
//!    `RUNNING`, and the deployment's deadline is set.
//! 2. Deadlines: the deployment's, then each running task's; a passed one ends it in `FAILURE`
//!    with reason `Timeout` (the task's components too).
//! 3. Tasks start in order (`STEP_BY_STEP`: the first unfinished one; `DAG`: every pending task
//!    whose inputs' producers succeeded) and advance by type: `deploy` / `apply-components` send
//!    every component whose dependencies succeeded (an apply command per component, with a new
//!    revision of its instance) and succeed when all did; `suspend` pauses the workflow until resumed
//!    (or its `duration` passed); `rollout-promotion` reads `rollback` / `continueRollout` from the
//!    context; `webhook` is called by the service around the pass ([`WebhookCall`]).
//! 4. The workflow and the deployment follow their tasks: all succeeded → `SUCCESS`; a task failed
//!    on its deadline → `FAILURE` (`Timeout`); any other failure → the deployment waits for an
//!    operator (`WAIT_FOR_OP`).
//!
//! Every change goes through the state machines of [`crate::state`] and becomes an event. The pass
//! ends with [`Pass::commit`]: the deployment by compare-and-swap on its version, components by
//! compare-and-swap on their state, commands and events into the outbox, and the next time the
//! deployment needs looking at (a deadline, a timer) returned for the wake-up list. A pass that loses
//! a compare-and-swap writes nothing and is run again.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement};
use serde_json::{Map, Value};
use sw_bus::CloudEvent;
use sw_bus::outbox::Outbox;
use sw_contracts::executor::{ComponentTarget, K8sApplyCommand};
use sw_contracts::workflow::{self as wire, state_action};
use sw_db::Batch;

use crate::placeholders::Vars;
use crate::plan::{Plan, StepPlan, lookup};
use crate::state::{
    ComponentState, ComponentTrigger, DeploymentState, DeploymentTrigger, TaskState, TaskTrigger,
    WorkflowState, WorkflowTrigger,
};
use crate::store::{self, ComponentRow, DeploymentRow, TaskRow};
use crate::view;

/// The event source of this service.
pub const EVENT_SERVICE: &str = "workflow";

/// The engine's timing and limits (from `[workflow]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub deployment_timeout: ChronoDuration,
    pub step_timeout: ChronoDuration,
    pub approval_timeout: ChronoDuration,
    pub health_timeout_secs: u64,
    pub webhook_attempts: u32,
}

impl Settings {
    pub fn from_config(c: &sw_config::WorkflowConfig) -> Self {
        let secs = |s: u64| ChronoDuration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        Self {
            deployment_timeout: secs(c.deployment_timeout_secs),
            step_timeout: secs(c.step_timeout_secs),
            approval_timeout: secs(c.approval_timeout_secs),
            health_timeout_secs: c.health_timeout_secs,
            webhook_attempts: u32::try_from(c.webhook_attempts).unwrap_or(u32::MAX),
        }
    }
}

/// Why a pass could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// Someone changed the deployment or a component since it was loaded: load and pass again.
    #[error("deployment {0} changed while it was being advanced")]
    Conflict(i64),
    /// A stored document does not parse: an operator must look.
    #[error("deployment {id}: {message}")]
    Corrupt { id: i64, message: String },
}

/// A webhook the service must call before the task can go on.
#[derive(Debug, Clone)]
pub struct WebhookCall {
    pub task_index: usize,
    pub url: String,
    /// `webhook-id`: the same for every attempt of one task run, so receivers can deduplicate.
    pub msg_id: String,
    pub payload: wire::WebhookPayload,
    /// The task run it belongs to; a result is applied only to that run.
    pub attempt: i32,
    /// Calls of this run so far (for the backoff).
    pub calls: u32,
}

/// What a webhook call came back with, fed into the next pass.
#[derive(Debug, Clone)]
pub enum WebhookResult {
    Delivered { context: Option<Map<String, Value>> },
    Retry { message: String, at: DateTime<Utc> },
    Rejected { message: String },
}

/// One pass over one deployment: what was loaded and what changes.
#[derive(Debug)]
pub struct Pass {
    pub dep: DeploymentRow,
    pub tasks: Vec<TaskRow>,
    pub comps: Vec<ComponentRow>,
    pub plan: Plan,
    pub context: Map<String, Value>,
    loaded_version: i64,
    loaded_comps: Vec<(String, i32)>,
    dirty_dep: bool,
    dirty_tasks: BTreeSet<usize>,
    dirty_comps: BTreeSet<usize>,
    /// Components to send to the executor at commit (a revision is counted for each), with the
    /// state each left and the place of its event (written at commit, once the revision is known).
    issue: Vec<(usize, ComponentState, usize)>,
    events: Vec<CloudEvent>,
    /// Deployments to wake after commit (the next one queued for the instance).
    wake_instance_queue: bool,
    /// Start a rollback of this deployment's app instance at commit.
    rollback: bool,
    pub now: DateTime<Utc>,
    pub traceparent: Option<String>,
    /// Who acts (`user:alice` for an operator's action; the engine's own passes are
    /// `system:workflow`), recorded on deployments a rollback creates.
    pub actor: String,
    /// Revision counters read with the deployment: a command to a key held here counts its
    /// revision in the pass's writes; to any other key, with a round trip of its own.
    pub revisions: store::Revisions,
}

impl Pass {
    /// Loads deployment `id` (one statement: [`store::deployment_rows`]); `None` when it does not
    /// exist.
    pub async fn load<C: ConnectionTrait>(
        conn: &C,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Self>, PassError> {
        Ok(Self::load_with_wake(conn, id, now).await?.map(|(pass, _)| pass))
    }

    /// [`Pass::load`], with the `seq` of the deployment's wake-up row (`None`: it has none) read in
    /// the same statement: a wake-up written after the load moves `seq`.
    pub async fn load_with_wake<C: ConnectionTrait>(
        conn: &C,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<(Self, Option<i64>)>, PassError> {
        let Some(rows) = store::deployment_rows(conn, id).await? else { return Ok(None) };
        let plan: Plan = serde_json::from_str(&rows.dep.plan)
            .map_err(|e| PassError::Corrupt { id, message: format!("plan: {e}") })?;
        let mut pass = Self::new(rows.dep, rows.tasks, rows.comps, plan, now);
        pass.revisions = rows.revisions;
        Ok(Some((pass, rows.wake_seq)))
    }

    /// A pass over rows already in hand (`tasks` by step, `comps` by task and unit, as
    /// [`Pass::load`] reads them), e.g. the ones a launch has just written.
    pub fn new(
        dep: DeploymentRow,
        tasks: Vec<TaskRow>,
        comps: Vec<ComponentRow>,
        plan: Plan,
        now: DateTime<Utc>,
    ) -> Self {
        let context = store::context_of(&dep);
        let loaded_version = dep.version;
        let loaded_comps = comps.iter().map(|c| (c.state.clone(), c.attempt)).collect();
        Self {
            dep,
            tasks,
            comps,
            plan,
            context,
            loaded_version,
            loaded_comps,
            dirty_dep: false,
            dirty_tasks: BTreeSet::new(),
            dirty_comps: BTreeSet::new(),
            issue: Vec::new(),
            events: Vec::new(),
            wake_instance_queue: false,
            rollback: false,
            now,
            traceparent: None,
            actor: "system:workflow".into(),
            revisions: store::Revisions::new(),
        }
    }

    pub fn id(&self) -> i64 {
        self.dep.id
    }

    pub fn dep_state(&self) -> DeploymentState {
        parse_state(&self.dep.state).unwrap_or(DeploymentState::Exception)
    }

    pub fn wf_state(&self) -> WorkflowState {
        parse_state(&self.dep.wf_state).unwrap_or(WorkflowState::Exception)
    }

    pub fn task_state(&self, i: usize) -> TaskState {
        parse_state(&self.tasks[i].state).unwrap_or(TaskState::Exception)
    }

    pub fn comp_state(&self, i: usize) -> ComponentState {
        parse_state(&self.comps[i].state).unwrap_or(ComponentState::Exception)
    }

    /// Whether this pass changed anything.
    pub fn changed(&self) -> bool {
        self.dirty_dep || !self.dirty_tasks.is_empty() || !self.dirty_comps.is_empty()
    }

    // ---- transitions: the only way states change; each is an event ----

    /// Moves the deployment by `trigger`; false (nothing changed) when its state does not take it.
    pub fn dep_to(
        &mut self,
        trigger: DeploymentTrigger,
        reason: Option<&str>,
        message: Option<String>,
    ) -> bool {
        let from = self.dep_state();
        let Ok(to) = from.next(trigger) else { return false };
        self.dep.state = to.as_str().to_owned();
        if reason.is_some() || trigger == DeploymentTrigger::Retry {
            self.dep.reason = reason.map(str::to_owned);
            self.dep.message = message;
        }
        if to.is_terminal() {
            self.dep.finished_at = Some(self.now);
            self.wake_instance_queue = true;
        } else {
            self.dep.finished_at = None;
        }
        self.dep.updated_at = self.now;
        self.dirty_dep = true;
        let data = wire::DeploymentChanged {
            previous_state: Some(from.as_str().to_owned()),
            deployment: view::deployment_out(&self.dep),
        };
        self.event(&format!("deployment.app.{}", state_action(to.as_str())), data);
        true
    }

    pub fn wf_to(&mut self, trigger: WorkflowTrigger, reason: Option<&str>, message: Option<String>) -> bool {
        let from = self.wf_state();
        let Ok(to) = from.next(trigger) else { return false };
        self.dep.wf_state = to.as_str().to_owned();
        if reason.is_some() || trigger == WorkflowTrigger::Retry {
            self.dep.wf_reason = reason.map(str::to_owned);
            self.dep.wf_message = message;
        }
        self.dep.wf_finished_at = to.is_terminal().then_some(self.now);
        self.dep.updated_at = self.now;
        self.dirty_dep = true;
        let data = wire::WorkflowChanged {
            previous_state: Some(from.as_str().to_owned()),
            workflow_instance_id: self.dep.id as u64,
            deploy_app_id: self.dep.id as u64,
            app_id: view::app_id(&self.dep),
            state: to.as_str().to_owned(),
            reason: self.dep.wf_reason.clone(),
            message: self.dep.wf_message.clone(),
        };
        self.event(&format!("workflow.instance.{}", state_action(to.as_str())), data);
        true
    }

    pub fn task_to(
        &mut self,
        i: usize,
        trigger: TaskTrigger,
        reason: Option<&str>,
        message: Option<String>,
    ) -> bool {
        let from = self.task_state(i);
        let Ok(to) = from.next(trigger) else { return false };
        let now = self.now;
        let t = &mut self.tasks[i];
        t.state = to.as_str().to_owned();
        if reason.is_some() || matches!(trigger, TaskTrigger::Retry | TaskTrigger::Reset) {
            t.reason = reason.map(str::to_owned);
            t.message = message;
        }
        t.finished_at = to.is_terminal().then_some(now);
        t.updated_at = now;
        self.dirty_tasks.insert(i);
        let data = wire::TaskChanged {
            previous_state: Some(from.as_str().to_owned()),
            workflow_instance_id: self.dep.id as u64,
            deploy_app_id: self.dep.id as u64,
            app_id: view::app_id(&self.dep),
            task: view::task_out(&self.tasks[i]),
        };
        self.event(&format!("workflow.task.{}", state_action(to.as_str())), data);
        true
    }

    pub fn comp_to(
        &mut self,
        i: usize,
        trigger: ComponentTrigger,
        reason: Option<&str>,
        message: Option<String>,
    ) -> bool {
        let from = self.comp_state(i);
        let Ok(to) = from.next(trigger) else { return false };
        let c = &mut self.comps[i];
        c.state = to.as_str().to_owned();
        if reason.is_some() || matches!(trigger, ComponentTrigger::Retry | ComponentTrigger::Reset) {
            c.reason = reason.map(str::to_owned);
            c.message = message;
        }
        c.updated_at = self.now;
        self.dirty_comps.insert(i);
        if matches!(trigger, ComponentTrigger::Start | ComponentTrigger::Retry) {
            // Sent at commit, where its revision is counted; the event goes out there.
            c.attempt += 1;
            self.component_event(i, from);
            self.issue.push((i, from, self.events.len() - 1));
        } else {
            self.component_event(i, from);
        }
        true
    }

    fn component_event(&mut self, i: usize, from: ComponentState) {
        let c = &self.comps[i];
        let data = wire::DeployComponentChanged {
            previous_state: Some(from.as_str().to_owned()),
            app_id: view::app_id(&self.dep),
            app_instance_name: self.dep.app_instance.clone(),
            component: view::component_out(c),
        };
        let name = format!("deployment.component.{}", state_action(&c.state));
        self.event(&name, data);
    }

    fn event(&mut self, name: &str, data: impl serde::Serialize) {
        let mut ev = CloudEvent::new(EVENT_SERVICE, name, Some(self.dep.id.to_string()), data);
        ev.traceparent = self.traceparent.clone();
        self.events.push(ev);
    }

    fn set_context(&mut self, context: Map<String, Value>) {
        self.context = context;
        self.dep.wf_context = Value::Object(self.context.clone()).to_string();
        self.dirty_dep = true;
    }

    /// Applies an RFC 7396 merge patch to the context.
    pub fn merge_context(&mut self, patch: &Map<String, Value>) {
        let mut ctx = Value::Object(self.context.clone());
        merge_patch(&mut ctx, &Value::Object(patch.clone()));
        if let Value::Object(m) = ctx {
            self.set_context(m);
        }
    }

    fn step(&self, i: usize) -> Option<&StepPlan> {
        let idx = self.tasks[i].step_index as u32;
        self.plan.steps.iter().find(|s| s.index == idx)
    }

    fn comps_of(&self, task: usize) -> Vec<usize> {
        let id = self.tasks[task].id;
        (0..self.comps.len()).filter(|c| self.comps[*c].task_id == id).collect()
    }

    // ---- executor results ----

    /// Applies the executor's result `action` (`applied`, `healthy`, `failed`, `degraded`) to the
    /// component sent with `command_id`, as [`crate::results`] does on its own: the component's id
    /// when it changed, `None` when no component of this deployment takes it (another attempt's
    /// command, or it already ended).
    pub fn apply_result(
        &mut self,
        command_id: &str,
        action: &str,
        reason: Option<&str>,
        message: Option<String>,
    ) -> Option<i64> {
        let i = self.comps.iter().position(|c| c.command_id.as_deref() == Some(command_id))?;
        let mut changed = false;
        for &trigger in result_triggers(action, reason) {
            let from = self.comp_state(i);
            // `healthy` after `applied` was seen: skip the first.
            if trigger == ComponentTrigger::Applied && from != ComponentState::Processing {
                continue;
            }
            let why = matches!(
                trigger,
                ComponentTrigger::Failed | ComponentTrigger::Timeout | ComponentTrigger::Update
            )
            .then(|| reason.unwrap_or(action));
            changed |= self.comp_to(i, trigger, why, if why.is_some() { message.clone() } else { None });
        }
        changed.then_some(self.comps[i].id)
    }

    // ---- operator actions (the ops call these, then commit) ----

    /// Ends everything still running as `TERMINATED` (reason `reason`).
    pub fn terminate(&mut self, reason: &str, message: Option<String>) {
        self.stop_all(reason, &message);
        self.wf_to(WorkflowTrigger::Terminate, Some(reason), message.clone());
        self.dep_to(DeploymentTrigger::Terminate, Some(reason), message);
    }

    /// Every component and task still running (or waiting for an operator) → `TERMINATED`.
    fn stop_all(&mut self, reason: &str, message: &Option<String>) {
        for i in 0..self.comps.len() {
            self.comp_to(i, ComponentTrigger::Terminate, Some(reason), message.clone());
        }
        for i in 0..self.tasks.len() {
            self.task_to(i, TaskTrigger::Terminate, Some(reason), message.clone());
        }
    }

    /// Re-runs what did not succeed: the deployment, the workflow, every finished-but-not-successful
    /// task and its components get `Retry`. Returns false when the deployment does not take it.
    pub fn retry(&mut self, settings: &Settings) -> bool {
        if !self.dep_to(DeploymentTrigger::Retry, None, None) {
            return false;
        }
        self.wf_to(WorkflowTrigger::Retry, None, None);
        self.dep.deadline_at = Some(self.now + settings.deployment_timeout);
        for i in 0..self.tasks.len() {
            let s = self.task_state(i);
            if s.is_terminal() && s != TaskState::Success {
                self.start_task(i, TaskTrigger::Retry, settings);
            }
        }
        // Back in `PROCESSING`: the pass sends what must be sent and moves on to `WAITING`.
        true
    }

    /// Re-runs from task `task_id`: it and every task after it in the run order wait to run again
    /// (their components too), with the context saved when that task first started.
    pub fn retry_from(&mut self, task_id: i64, settings: &Settings) -> Result<(), String> {
        let Some(from) = self.tasks.iter().position(|t| t.id == task_id) else {
            return Err(format!("task {task_id} is not a task of workflow {}", self.dep.id));
        };
        let from_order = self.step(from).map(|s| s.order).unwrap_or(0);
        let snapshot = self.tasks[from].context_snapshot.clone();
        let running = !self.dep_state().is_terminal();
        if running {
            self.terminate("RetriedFromTask", Some(format!("retrying from task {task_id}")));
        }
        if !self.dep_to(DeploymentTrigger::Retry, None, None) {
            return Err(format!("deployment {} is {} and cannot be retried", self.dep.id, self.dep.state));
        }
        self.wf_to(WorkflowTrigger::Retry, None, None);
        self.dep.deadline_at = Some(self.now + settings.deployment_timeout);
        if let Some(Ok(Value::Object(ctx))) = snapshot.map(|s| serde_json::from_str::<Value>(&s)) {
            self.set_context(ctx);
        }
        for i in 0..self.tasks.len() {
            let order = self.step(i).map(|s| s.order).unwrap_or(0);
            if order < from_order {
                continue;
            }
            for c in self.comps_of(i) {
                if self.comp_state(c).is_terminal() && self.comps[c].skip_reason.is_none() {
                    self.comp_to(c, ComponentTrigger::Reset, None, None);
                }
            }
            self.task_to(i, TaskTrigger::Reset, None, None);
        }
        Ok(())
    }

    /// Resumes the suspended workflow and its suspended tasks.
    pub fn resume(&mut self) -> bool {
        if !self.wf_to(WorkflowTrigger::Resume, None, None) {
            return false;
        }
        for i in 0..self.tasks.len() {
            if matches!(self.task_state(i), TaskState::RunningSuspend | TaskState::WaitingSuspend) {
                self.task_to(i, TaskTrigger::Resume, None, None);
            }
        }
        true
    }

    /// Suspends one task (and so the workflow): it sends nothing new and does not finish until resumed.
    pub fn suspend_task(&mut self, task_id: i64) -> Result<(), String> {
        let i =
            self.tasks.iter().position(|t| t.id == task_id).ok_or_else(|| format!("no task {task_id}"))?;
        if !self.task_to(i, TaskTrigger::Suspend, None, None) {
            return Err(format!("task {task_id} is {} and cannot be suspended", self.tasks[i].state));
        }
        self.wf_to(WorkflowTrigger::Suspend, None, None);
        Ok(())
    }

    // ---- the pass ----

    /// Decides everything that can happen now. `holder` is the older deployment holding the app
    /// instance, if any. Returns the webhook to call before the next pass, if one is due.
    pub fn advance(&mut self, settings: &Settings, holder: Option<i64>) -> Option<WebhookCall> {
        let now = self.now;
        if self.dep_state() == DeploymentState::Created {
            if let Some(h) = holder {
                let msg = Some(format!("waiting for deployment {h} of the same app instance"));
                if self.dep.message != msg {
                    self.dep.message = msg;
                    self.dirty_dep = true;
                }
                return None;
            }
            self.dep.message = None;
            self.dep.started_at = Some(now);
            self.dep.deadline_at = Some(now + settings.deployment_timeout);
            self.dep_to(DeploymentTrigger::Start, None, None);
            self.dep_to(DeploymentTrigger::ComponentsExist, None, None);
            self.dep_to(DeploymentTrigger::AppPackageExists, None, None);
            self.wf_to(WorkflowTrigger::Start, None, None);
            self.wf_to(WorkflowTrigger::Preprocessed, None, None);
            if self.context.get("dataOutputs").is_none() && !self.plan.data_outputs.is_empty() {
                let mut ctx = self.context.clone();
                let outs: Map<String, Value> =
                    self.plan.data_outputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                ctx.insert("dataOutputs".into(), Value::Object(outs));
                self.set_context(ctx);
            }
        }
        let dep_state = self.dep_state();
        if !matches!(dep_state, DeploymentState::Processing | DeploymentState::Waiting) {
            return None;
        }
        // Deadlines first: nothing runs past them.
        if self.dep.deadline_at.is_some_and(|d| d <= now) {
            self.fail_all_on_timeout("the deployment did not finish before its deadline");
            return None;
        }
        for i in 0..self.tasks.len() {
            let s = self.task_state(i);
            if !s.is_terminal()
                && s != TaskState::Pending
                && self.tasks[i].deadline_at.is_some_and(|d| d <= now)
            {
                let msg = format!("step {} did not finish before its deadline", self.task_label(i));
                for c in self.comps_of(i) {
                    self.comp_to(c, ComponentTrigger::Timeout, Some("Timeout"), Some(msg.clone()));
                }
                self.task_to(i, TaskTrigger::Timeout, Some("Timeout"), Some(msg));
            }
        }
        // A suspend step whose duration passed resumes the workflow by itself.
        let timer_done = (0..self.tasks.len()).any(|i| {
            self.task_state(i) == TaskState::WaitingSuspend
                && self.tasks[i].task_type == "suspend"
                && self.tasks[i].due_at.is_some_and(|d| d <= now)
        });
        if timer_done && self.wf_state() == WorkflowState::Suspend {
            self.resume();
        }
        let mut webhook = None;
        // Run tasks until nothing changes (a task that finishes at once lets the next one start).
        for _ in 0..=self.tasks.len() * 3 + 3 {
            let before = self.events.len() + self.issue.len();
            if self.any_task_failed() || self.wf_state() != WorkflowState::Running {
                break;
            }
            for i in self.startable_tasks() {
                self.start_task(i, TaskTrigger::Start, settings);
            }
            for i in 0..self.tasks.len() {
                if let Some(call) = self.advance_task(i, settings) {
                    webhook.get_or_insert(call);
                }
            }
            if self.events.len() + self.issue.len() == before {
                break;
            }
        }
        if self.rollback {
            return None;
        }
        self.settle();
        webhook
    }

    fn task_label(&self, i: usize) -> String {
        self.tasks[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("#{} ({})", self.tasks[i].step_index, self.tasks[i].task_type))
    }

    fn any_task_failed(&self) -> bool {
        (0..self.tasks.len()).any(|i| {
            matches!(self.task_state(i), TaskState::Failure | TaskState::Exception | TaskState::Terminated)
        })
    }

    /// Pending tasks allowed to start now.
    fn startable_tasks(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        order.sort_by_key(|i| self.step(*i).map(|s| s.order).unwrap_or(u32::MAX));
        let succeeded = |step_index: u32| {
            self.tasks
                .iter()
                .enumerate()
                .any(|(i, t)| t.step_index as u32 == step_index && self.task_state(i) == TaskState::Success)
        };
        if self.plan.mode == "DAG" {
            order
                .into_iter()
                .filter(|i| self.task_state(*i) == TaskState::Pending)
                .filter(|i| self.step(*i).is_some_and(|s| s.waits_for.iter().all(|w| succeeded(*w))))
                .collect()
        } else {
            // The first task (in order) that has not succeeded, if it is pending.
            order
                .into_iter()
                .find(|i| self.task_state(*i) != TaskState::Success)
                .filter(|i| self.task_state(*i) == TaskState::Pending)
                .into_iter()
                .collect()
        }
    }

    fn start_task(&mut self, i: usize, trigger: TaskTrigger, settings: &Settings) {
        let inputs: Map<String, Value> = self
            .step(i)
            .map(|s| {
                s.inputs
                    .iter()
                    .map(|inp| {
                        (
                            inp.parameter_key.clone(),
                            lookup(&Value::Object(self.context.clone()), &inp.from)
                                .cloned()
                                .unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let timeout =
            self.step(i).and_then(|s| s.timeout_secs).map(|s| ChronoDuration::seconds(s as i64)).unwrap_or(
                match self.tasks[i].task_type.as_str() {
                    "suspend" | "rollout-promotion" => settings.approval_timeout,
                    _ => settings.step_timeout,
                },
            );
        let duration = self.step(i).and_then(|s| s.duration_secs);
        let snapshot = Value::Object(self.context.clone()).to_string();
        if !self.task_to(i, trigger, None, None) {
            return;
        }
        let now = self.now;
        let t = &mut self.tasks[i];
        t.attempt += 1;
        t.calls = 0;
        t.started_at = Some(now);
        t.deadline_at = Some(now + timeout);
        t.due_at = duration.map(|d| now + ChronoDuration::seconds(d as i64));
        t.inputs = Some(Value::Object(inputs).to_string());
        if trigger == TaskTrigger::Start || t.context_snapshot.is_none() {
            t.context_snapshot = Some(snapshot);
        }
        if self.dep_state() == DeploymentState::Processing {
            self.dep_to(DeploymentTrigger::Applied, None, None);
        }
    }

    /// Moves one running task on according to its type.
    fn advance_task(&mut self, i: usize, settings: &Settings) -> Option<WebhookCall> {
        let state = self.task_state(i);
        if !matches!(state, TaskState::Running | TaskState::Waiting) {
            return None;
        }
        match self.tasks[i].task_type.as_str() {
            "deploy" | "apply-components" => self.advance_deploy(i),
            "suspend" => {
                if state == TaskState::Running {
                    self.task_to(i, TaskTrigger::ProcessedSuspend, None, None);
                    self.wf_to(WorkflowTrigger::Suspend, None, None);
                } else {
                    // Resumed (or its duration passed): done.
                    self.finish_task(i);
                }
            }
            "rollout-promotion" => {
                if state == TaskState::Running {
                    self.task_to(i, TaskTrigger::Processed, None, None);
                }
                let flag = |k: &str| match self.context.get(k) {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                    _ => false,
                };
                if flag("rollback") {
                    self.task_to(
                        i,
                        TaskTrigger::Failed,
                        Some("RolledBack"),
                        Some("the context asked for a rollback".into()),
                    );
                    self.roll_back("rollout-promotion: the context asked for a rollback");
                } else if flag("continueRollout") {
                    self.finish_task(i);
                }
            }
            "webhook" => {
                let t = &self.tasks[i];
                if t.due_at.is_some_and(|d| d > self.now) {
                    return None;
                }
                if t.calls as u32 >= settings.webhook_attempts {
                    let msg = t.message.clone();
                    self.task_to(i, TaskTrigger::Failed, Some("WebhookFailed"), msg);
                    return None;
                }
                let step = self.step(i)?;
                let url = step.webhook_url.clone()?;
                let mut properties = step.properties.clone();
                if let Value::Object(m) = &mut properties {
                    m.remove("url");
                }
                let t = &self.tasks[i];
                let payload = wire::WebhookPayload {
                    type_: "sreworks.workflow.webhook".into(),
                    deploy_app_id: self.dep.id as u64,
                    workflow_instance_id: self.dep.id as u64,
                    task_id: t.id as u64,
                    task_name: t.name.clone(),
                    app_id: view::app_id(&self.dep),
                    app_instance_name: self.dep.app_instance.clone(),
                    cluster_id: self.dep.cluster_id.clone(),
                    namespace_id: self.dep.namespace_id.clone(),
                    stage_id: self.dep.stage_id.clone(),
                    properties,
                    context: Value::Object(self.context.clone()),
                };
                return Some(WebhookCall {
                    task_index: i,
                    url,
                    msg_id: format!("wf-{}-task-{}-{}", self.dep.id, t.id, t.attempt),
                    payload,
                    attempt: t.attempt,
                    calls: t.calls.max(0) as u32,
                });
            }
            _ => {
                let ty = self.tasks[i].task_type.clone();
                self.task_to(
                    i,
                    TaskTrigger::UnknownError,
                    Some("UnknownStepType"),
                    Some(format!("step type {ty}")),
                );
            }
        }
        None
    }

    /// Feeds a webhook's outcome into task `i`.
    pub fn webhook_result(&mut self, i: usize, result: WebhookResult) {
        self.tasks[i].calls += 1;
        self.dirty_tasks.insert(i);
        match result {
            WebhookResult::Delivered { context } => {
                if let Some(ctx) = context {
                    self.merge_context(&ctx);
                }
                self.tasks[i].due_at = None;
                self.finish_task(i);
            }
            WebhookResult::Retry { message, at } => {
                self.tasks[i].message = Some(message);
                self.tasks[i].due_at = Some(at);
            }
            WebhookResult::Rejected { message } => {
                self.task_to(i, TaskTrigger::Failed, Some("WebhookRejected"), Some(message));
            }
        }
    }

    fn advance_deploy(&mut self, i: usize) {
        let comps = self.comps_of(i);
        let unit_state = |p: &Self, unit: u32| {
            comps.iter().find(|c| p.comps[**c].unit_index as u32 == unit).map(|c| p.comp_state(*c))
        };
        let deps_of = |p: &Self, c: usize| -> Vec<u32> {
            p.step(i)
                .and_then(|s| s.units.get(p.comps[c].unit_index as usize))
                .map(|u| u.depends_on.clone())
                .unwrap_or_default()
        };
        for &c in &comps {
            let s = self.comp_state(c);
            let ready =
                deps_of(self, c).iter().all(|u| unit_state(self, *u) == Some(ComponentState::Success));
            if !ready {
                continue;
            }
            match s {
                ComponentState::Created => {
                    self.comp_to(c, ComponentTrigger::Start, None, None);
                }
                // A retried task sends its failed components again.
                ComponentState::WaitForOp
                | ComponentState::Exception
                | ComponentState::Failure
                | ComponentState::Terminated
                    if self.tasks[i].attempt as i64 > 0 && self.comps[c].attempt < self.tasks[i].attempt =>
                {
                    self.comp_to(c, ComponentTrigger::Retry, None, None);
                }
                _ => {}
            }
        }
        if self.task_state(i) == TaskState::Running {
            self.task_to(i, TaskTrigger::Processed, None, None);
        }
        let states: Vec<ComponentState> = comps.iter().map(|c| self.comp_state(*c)).collect();
        if states.iter().all(|s| *s == ComponentState::Success) {
            self.finish_task(i);
            return;
        }
        if let Some(c) = comps.iter().find(|c| {
            matches!(
                self.comp_state(**c),
                ComponentState::Failure
                    | ComponentState::WaitForOp
                    | ComponentState::Exception
                    | ComponentState::Terminated
            ) && self.comps[**c].attempt >= self.tasks[i].attempt
        }) {
            let comp = &self.comps[*c];
            let timed_out = comp.reason.as_deref() == Some("Timeout");
            let msg = format!(
                "component {}|{} {}: {}",
                comp.component_type,
                comp.component_name,
                comp.state,
                comp.message.clone().or(comp.reason.clone()).unwrap_or_default()
            );
            let reason = if timed_out { "Timeout" } else { "ComponentFailed" };
            self.task_to(i, TaskTrigger::Failed, Some(reason), Some(msg));
        }
    }

    fn finish_task(&mut self, i: usize) {
        if self.task_state(i) == TaskState::Running {
            self.task_to(i, TaskTrigger::Processed, None, None);
        }
        if !self.task_to(i, TaskTrigger::Finished, None, None) {
            return;
        }
        self.tasks[i].due_at = None;
        let outputs: Vec<(String, String)> = self
            .step(i)
            .map(|s| s.outputs.iter().map(|o| (o.name.clone(), o.value_from.clone())).collect())
            .unwrap_or_default();
        if !outputs.is_empty() {
            let mut ctx = self.context.clone();
            for (name, from) in outputs {
                let v = lookup(&Value::Object(self.context.clone()), &from).cloned().unwrap_or(Value::Null);
                ctx.insert(name, v);
            }
            self.set_context(ctx);
        }
    }

    fn fail_all_on_timeout(&mut self, msg: &str) {
        for c in 0..self.comps.len() {
            self.comp_to(c, ComponentTrigger::Timeout, Some("Timeout"), Some(msg.to_owned()));
        }
        for i in 0..self.tasks.len() {
            self.task_to(i, TaskTrigger::Timeout, Some("Timeout"), Some(msg.to_owned()));
        }
        self.wf_to(WorkflowTrigger::Timeout, Some("Timeout"), Some(msg.to_owned()));
        self.dep_to(DeploymentTrigger::Timeout, Some("Timeout"), Some(msg.to_owned()));
    }

    /// The workflow and the deployment follow their tasks.
    fn settle(&mut self) {
        let n = self.tasks.len();
        if let Some(i) = (0..n).find(|i| {
            matches!(self.task_state(*i), TaskState::Failure | TaskState::Exception | TaskState::Terminated)
        }) {
            let reason = self.tasks[i].reason.clone().unwrap_or_else(|| "TaskFailed".into());
            let message = Some(format!(
                "step {}: {}",
                self.task_label(i),
                self.tasks[i].message.clone().unwrap_or_default()
            ));
            if self.task_state(i) == TaskState::Terminated {
                self.terminate(&reason, message);
                return;
            }
            // Other running tasks (a DAG's other branches) stop; pending ones will not run.
            for j in 0..n {
                let s = self.task_state(j);
                if !s.is_terminal() && s != TaskState::Pending {
                    for c in self.comps_of(j) {
                        self.comp_to(c, ComponentTrigger::Terminate, Some("WorkflowFailed"), None);
                    }
                    self.task_to(j, TaskTrigger::Terminate, Some("WorkflowFailed"), None);
                }
            }
            self.wf_to(WorkflowTrigger::Failed, Some(&reason), message.clone());
            if self.dep_state() == DeploymentState::Processing {
                self.dep_to(DeploymentTrigger::Applied, None, None);
            }
            if reason == "Timeout" {
                self.dep_to(DeploymentTrigger::Timeout, Some("Timeout"), message);
            } else {
                self.dep_to(DeploymentTrigger::PartialFailed, Some(&reason), message);
            }
            return;
        }
        if n == 0 || (0..n).all(|i| self.task_state(i) == TaskState::Success) {
            self.wf_to(WorkflowTrigger::Succeeded, None, None);
            if self.dep_state() == DeploymentState::Processing {
                self.dep_to(DeploymentTrigger::Applied, None, None);
            }
            self.dep_to(DeploymentTrigger::AllSucceeded, None, None);
        }
    }

    /// When the deployment next needs a pass without anything else happening: the nearest deadline
    /// or timer of what is still running.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let s = self.dep_state();
        if !matches!(s, DeploymentState::Processing | DeploymentState::Waiting) {
            return None;
        }
        let mut due = self.dep.deadline_at;
        for (i, t) in self.tasks.iter().enumerate() {
            if self.task_state(i).is_terminal() || self.task_state(i) == TaskState::Pending {
                continue;
            }
            for d in [t.deadline_at, t.due_at].into_iter().flatten() {
                due = Some(due.map_or(d, |x| x.min(d)));
            }
        }
        due
    }

    // ---- commit ----

    /// Writes the pass in `txn`, with `tail` (the caller's statements about the deployment's
    /// wake-up row) after it. Returns the ids of other deployments to wake.
    ///
    /// The writes take one round trip whatever the pass changed: one [`sw_db::Batch`] with the
    /// guarded rows — components, tasks, and the deployment, whose statement checks every
    /// compare-and-swap — then the revision counters, the outbox rows, the other deployments'
    /// wake-ups and `tail`. A failed guard, or a revision counter that moved since it was read,
    /// fails its statement (a `CHECK` constraint): nothing after it runs, and the pass is a
    /// [`PassError::Conflict`], whose transaction the caller rolls back. An apply command to a key
    /// whose counter was not read costs a round trip for its revision.
    pub async fn commit<C: ConnectionTrait>(
        mut self,
        txn: &C,
        outbox: &Outbox,
        settings: &Settings,
        tail: impl IntoIterator<Item = Statement>,
    ) -> Result<Vec<i64>, PassError> {
        let id = self.dep.id;
        let mut wake_others = Vec::new();
        let mut rows = Vec::new();
        // The statements counting the commands' revisions ([`store::claim_revision_stmt`]).
        let mut claims = Vec::new();
        for (i, from, slot) in std::mem::take(&mut self.issue) {
            let (row, claim) = self.prepare_command(txn, i, from, slot, outbox, settings).await?;
            rows.push(row);
            claims.extend(claim);
        }
        // Before the guarded writes: it only adds rows (the new deployment, the launches it
        // supersedes), and a failed guard rolls them back with the rest.
        let rollback_to =
            if self.rollback { crate::rollback::start(txn, &self, outbox).await? } else { None };
        if let Some(new_id) = rollback_to {
            wake_others.push(new_id);
        }
        if self.wake_instance_queue
            && let Some(next) = store::next_queued(txn, &self.dep.instance_key, id).await?
        {
            wake_others.push(next);
        }
        // Components, tasks, then the deployment, which checks every guard: its own version, and
        // the rows the statements before it matched (each matches at most its own rows, so the
        // count is right exactly when every guard held). A component changed by an executor result
        // since the load, or a deployment changed by anyone, fails it: the pass is stale.
        let mut batch = Batch::new();
        if self.changed() {
            batch.push(&store::start_matched_stmt())?;
            let mut matched = 0;
            let changed: Vec<_> = self
                .dirty_comps
                .iter()
                .map(|&i| (&self.comps[i], self.loaded_comps[i].0.as_str(), self.loaded_comps[i].1))
                .collect();
            if let Some(s) = store::save_components_stmt(&changed) {
                batch.push(&s)?;
                batch.push(&store::count_matched_stmt())?;
                matched += changed.len() as u64;
            }
            let tasks: Vec<_> = self.dirty_tasks.iter().map(|&i| &self.tasks[i]).collect();
            if let Some(s) = store::save_tasks_stmt(&tasks) {
                batch.push(&s)?;
                batch.push(&store::count_matched_stmt())?;
                matched += tasks.len() as u64;
            }
            self.dep.updated_at = self.now;
            batch.push(&store::save_deployment_stmt(&self.dep, self.loaded_version, matched))?;
        }
        for ev in &self.events {
            rows.push(outbox.event_row(ev)?);
        }
        for s in claims {
            batch.push(&s)?;
        }
        if let Some(s) = outbox.insert_statement(rows) {
            batch.push(&s)?;
        }
        for other in &wake_others {
            batch.push(&store::wake_stmt(*other, self.now))?;
        }
        for s in tail {
            batch.push(&s)?;
        }
        match batch.execute(txn).await {
            Err(e) if sw_db::is_check_violation(&e) => Err(PassError::Conflict(id)),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(wake_others),
        }
    }

    /// Counts the revision of component `i` and builds its apply command's outbox row; with the
    /// statement that counts the revision in the pass's writes, when its counter was read.
    async fn prepare_command<C: ConnectionTrait>(
        &mut self,
        txn: &C,
        i: usize,
        from: ComponentState,
        slot: usize,
        outbox: &Outbox,
        settings: &Settings,
    ) -> Result<(sw_bus::outbox::OutboxRow, Option<Statement>), PassError> {
        let id = self.dep.id;
        let corrupt = |m: &str| PassError::Corrupt { id, message: m.to_owned() };
        let c = &self.comps[i];
        let task =
            self.tasks.iter().find(|t| t.id == c.task_id).ok_or_else(|| corrupt("component of no task"))?;
        let step = self
            .plan
            .steps
            .iter()
            .find(|s| s.index as i32 == task.step_index)
            .ok_or_else(|| corrupt("task of no step"))?;
        let unit = step.units.get(c.unit_index as usize).ok_or_else(|| corrupt("component of no unit"))?;
        let (Some(target), Some(rendered)) = (unit.target.clone(), unit.component.clone()) else {
            return Err(corrupt("a skipped component was sent"));
        };
        let key = revision_key(&target);
        let (revision, claim) = match self.revisions.get(&key) {
            Some(&now) => {
                let (next, claim) = store::claim_revision_stmt(&key, now);
                self.revisions.insert(key, Some(next));
                (next, Some(claim))
            }
            None => (store::next_revision(txn, &key).await?, None),
        };
        let mut component = rendered;
        Vars::new(&target, id as u64, c.id as u64, self.dep.app_package_id as u64).fill(&mut component);
        let command_id = command_id(id, c.id, c.attempt);
        let cmd = K8sApplyCommand {
            command_id: command_id.clone(),
            target,
            revision: revision as u64,
            health_deadline_secs: settings.health_timeout_secs,
            component,
        };
        let row = outbox.command_row("k8s.apply", &command_id, self.traceparent.as_deref(), &cmd)?;
        let c = &mut self.comps[i];
        c.revision = Some(revision);
        c.command_id = Some(command_id);
        c.reason = None;
        c.message = None;
        // The event written at the transition, now with the revision and command id.
        self.component_event(i, from);
        if let Some(ev) = self.events.pop() {
            self.events[slot] = ev;
        }
        Ok((row, claim))
    }

    /// Ends this deployment for a rollback of its app instance and asks commit to start the
    /// rollback deployment ([`crate::rollback`]). What is still running stops (`RolledBack`); a
    /// deployment that succeeded stays `SUCCESS` (the rollback supersedes it).
    pub fn roll_back(&mut self, message: &str) {
        let reason = Some("RolledBack");
        self.stop_all("RolledBack", &Some(message.to_owned()));
        if !self.wf_to(WorkflowTrigger::Failed, reason, Some(message.to_owned())) {
            self.wf_to(WorkflowTrigger::Terminate, reason, Some(message.to_owned()));
        }
        self.dep_to(DeploymentTrigger::Rollback, reason, Some(message.to_owned()));
        self.rollback = true;
    }
}

/// The component transitions an executor result makes: `applied` → `RUNNING`; `healthy` →
/// `SUCCESS` (through `RUNNING` when `applied` was not seen); `failed` → `WAIT_FOR_OP`, or
/// `FAILURE` for reason `Timeout` (never healthy before its deadline); `degraded` → stays
/// `RUNNING` with the message.
pub fn result_triggers(action: &str, reason: Option<&str>) -> &'static [ComponentTrigger] {
    match action {
        "applied" => &[ComponentTrigger::Applied],
        "healthy" => &[ComponentTrigger::Applied, ComponentTrigger::Healthy],
        "failed" if reason == Some("Timeout") => &[ComponentTrigger::Timeout],
        "failed" => &[ComponentTrigger::Failed],
        "degraded" => &[ComponentTrigger::Update],
        _ => &[],
    }
}

/// Parses a stored state name.
pub fn parse_state<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// RFC 7396: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The key of the revision counter of a component's target: its instance in its cluster and
/// namespace (`store::REVISION_KEY` makes the same from the rows).
pub fn revision_key(target: &ComponentTarget) -> String {
    format!(
        "{}/{}/{}/{}",
        target.cluster_id, target.namespace, target.app_instance, target.component_instance
    )
}

/// The id of the apply command of attempt `attempt` of component `component` of deployment
/// `deployment`: `wf-{deployment}-{component}-{attempt}`.
pub fn command_id(deployment: i64, component: i64, attempt: i32) -> String {
    format!("wf-{deployment}-{component}-{attempt}")
}

/// The deployment, component and attempt named in a [`command_id`] (`None`: not one of ours).
pub fn parse_command_id(command_id: &str) -> Option<(i64, i64, i32)> {
    let mut parts = command_id.strip_prefix("wf-")?.split('-');
    let deployment = parts.next()?.parse().ok()?;
    let component = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((deployment, component, attempt))
}

#[cfg(test)]
mod command_id_tests {
    use super::{command_id, parse_command_id};

    #[test]
    fn a_command_id_is_read_back_and_nothing_else_is() {
        assert_eq!(parse_command_id(&command_id(42, 7, 3)), Some((42, 7, 3)));
        for other in ["wf-42-task-7-1", "wf-42-7", "wf-42-7-3-1", "wf-x-7-3", "k8s-42-7-3", "", "wf-"] {
            assert_eq!(parse_command_id(other), None, "{other}");
        }
    }
}
