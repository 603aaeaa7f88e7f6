//! The consumer of executor results: `executor.component.*` events move the component they answer
//! and carry its deployment on.
//!
//! A result names its command; the component row sent with that command id (and only the current
//! attempt has it) takes the result (see [`crate::engine::result_triggers`]): `applied` →
//! `RUNNING`, `healthy` → `SUCCESS`, `failed` → `WAIT_FOR_OP` (or `FAILURE` for `Timeout`),
//! `degraded` → stays `RUNNING` with the message. A result for a component that already ended (it
//! was terminated, or its step timed out) changes nothing. Results of commands this service did not
//! send are acked and ignored.
//!
//! A result that ends its component is what the deployment was waiting for, so the handler runs the
//! engine's pass right there, in the message's transaction: the component's change, the next
//! step's commands, every event and the wake-up row commit together with the message's inbox row,
//! and the step goes on without a second transaction, a wake-up and a claim by the driver. When the
//! deployment's rows cannot make that pass (nothing is written then), the handler does the plain
//! part only — the component's change and its event — and marks the deployment due for the driver,
//! as it does for results that do not end a component. When the pass's writes fail (another writer
//! changed the deployment first, a lock wait) the message is rolled back and retried, and a
//! redelivered result always takes the plain path. Either way the change commits with the inbox
//! row (see [`sw_bus::consumer`]); on the first delivery of a `healthy` or `failed` the handler
//! writes that row itself, in the round trip of the pass's writes ([`Handler::writes_inbox`]).
//!
//! An `applied` whose objects were already healthy is acked without a transaction
//! ([`sw_bus::consumer::Handler::wants`]): the `healthy` the executor committed with it does both
//! transitions.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};
use sw_bus::CloudEvent;
use sw_bus::consumer::{Delivery, Handler, HandlerError, async_trait};
use sw_bus::outbox::Outbox;
use sw_contracts::executor::{ComponentResult, Health};
use sw_contracts::workflow::{self as wire, state_action};
use tokio::sync::Notify;

use crate::engine::{EVENT_SERVICE, Pass, PassError, Settings, parse_state, result_triggers};
use crate::ops::now;
use crate::state::ComponentState;
use crate::store;
use crate::view;

/// Histogram of applying one executor result (inside the consumer's transaction), seconds.
pub const RESULT_SECONDS: &str = "sw_workflow_result_seconds";

/// The durable consumer the workflow's replicas share on the events stream.
pub const DURABLE: &str = "workflow-executor-results";

/// Tracing target of the engine's timing events (`debug`): `kind` = `pass` (a driver's pass,
/// `seconds` from begin to commit) or `result` (which message's transaction, timed by
/// [`sw_bus::consumer::TIMING_TARGET`], was about which deployment and step).
pub const TIMING_TARGET: &str = "sw_workflow::timing";

pub struct ResultHandler {
    pub outbox: Outbox,
    pub engine: Arc<Notify>,
    pub settings: Settings,
    /// Messages whose commit leaves work for the driver (a due wake-up row), by message id.
    pub kick: Mutex<HashSet<String>>,
}

/// The timing event of a result message (the benchmark attributes its transaction to the step).
fn timed(msg: &Delivery, deployment: i64, component: i64, inline: bool) {
    tracing::debug!(
        target: TIMING_TARGET,
        kind = "result",
        msg_id = %msg.msg_id,
        deployment,
        component,
        inline,
        "result applied"
    );
}

impl ResultHandler {
    pub fn new(outbox: Outbox, engine: Arc<Notify>, settings: Settings) -> Self {
        Self { outbox, engine, settings, kick: Mutex::new(HashSet::new()) }
    }
}

#[async_trait]
impl Handler for ResultHandler {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        self.apply(txn, msg, None).await
    }

    /// A first delivery of a result that may carry its pass: the inbox row goes with the pass's
    /// last writes (see [`ResultHandler::advance_inline`]).
    fn writes_inbox(&self, msg: &Delivery) -> bool {
        msg.delivered == 1 && inline_candidate(&msg.subject)
    }

    async fn handle_with_inbox(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Statement,
    ) -> Result<(), HandlerError> {
        self.apply(txn, msg, Some(inbox)).await
    }

    /// An `applied` whose objects were already healthy changes nothing here: the executor
    /// committed `healthy` with it, next in the stream, and that one moves the component through
    /// RUNNING to SUCCESS with the pass it allows. It is acked without a transaction.
    fn wants(&self, msg: &Delivery) -> bool {
        let Some((deployment, component)) = applied_healthy(msg) else { return true };
        timed(msg, deployment, component, false);
        false
    }

    /// The component's change and its events are visible now: the relay publishes them, and the
    /// engine looks at once when the deployment was left due.
    async fn committed(&self, msg: &Delivery) {
        self.outbox.wake();
        let kick = self.kick.lock().map(|mut k| k.remove(&msg.msg_id)).unwrap_or(true);
        if kick {
            self.engine.notify_one();
        }
    }
}

impl ResultHandler {
    /// Applies the result in `msg` (timed: [`RESULT_SECONDS`]); `inbox`, when given, is the
    /// message's inbox row for this handler to write ([`Handler::writes_inbox`]).
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Option<Statement>,
    ) -> Result<(), HandlerError> {
        let started = std::time::Instant::now();
        let handled = self.apply_result(txn, msg, inbox).await;
        metrics::histogram!(RESULT_SECONDS).record(started.elapsed().as_secs_f64());
        handled
    }

    async fn apply_result(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Option<Statement>,
    ) -> Result<(), HandlerError> {
        let ev: CloudEvent = serde_json::from_slice(&msg.payload).map_err(HandlerError::permanent)?;
        let action = ev.name().strip_prefix("executor.component.").unwrap_or_default().to_owned();
        let result: ComponentResult =
            serde_json::from_value(ev.data.clone()).map_err(HandlerError::permanent)?;
        // A result that ends a component goes straight to the pass over its deployment (named in
        // the command id); the component is read alone only when that pass does not take it. A
        // redelivered result takes the plain path: its first delivery's pass may be what failed.
        if matches!(action.as_str(), "healthy" | "failed")
            && msg.delivered == 1
            && let Some((deployment, _, _)) = crate::engine::parse_command_id(&result.command_id)
            && let Some((kick, component)) =
                self.advance_inline(txn, &ev, &action, &result, deployment, inbox.as_ref()).await?
        {
            timed(msg, deployment, component, true);
            self.remember_kick(msg, kick);
            return Ok(());
        }
        if let Some(inbox) = inbox {
            txn.execute(inbox).await?;
        }
        let Some(found) = store::component_by_command(txn, &result.command_id).await? else {
            return Ok(());
        };
        timed(msg, found.comp.deployment_id, found.comp.id, false);
        // Whether the commit leaves the driver work: when the deployment was marked due.
        let kick = self.apply_plain(txn, &ev, &action, &result, found).await?;
        self.remember_kick(msg, kick);
        Ok(())
    }

    /// After the commit of `msg`, wake the driver when `kick` (see [`Handler::committed`]).
    fn remember_kick(&self, msg: &Delivery, kick: bool) {
        if kick && let Ok(mut k) = self.kick.lock() {
            k.insert(msg.msg_id.clone());
        }
    }

    /// The result and the pass it allows: `Some((kick, component))` when it was written (`kick`:
    /// the driver has work after the commit — another deployment woken, or a webhook to call;
    /// `component`: the component's id), `None` (nothing written) when the deployment has no
    /// component running under that command or its rows cannot make a pass, and the plain path
    /// must be taken.
    ///
    /// `inbox` (the message's inbox row, when the handler writes it) goes in the batch of the
    /// pass's writes. Everything up to the pass's writes only reads, so what fails there leaves the
    /// transaction as it was. There is no savepoint around the writes (it would cost two round
    /// trips on every result): should they fail — another writer changed the deployment first, a
    /// lock wait — the message is retried, and its next delivery takes the plain path.
    async fn advance_inline(
        &self,
        txn: &DatabaseTransaction,
        ev: &CloudEvent,
        action: &str,
        result: &ComponentResult,
        deployment_id: i64,
        inbox: Option<&Statement>,
    ) -> Result<Option<(bool, i64)>, HandlerError> {
        let at = now();
        // `seq` is read with the deployment: a wake-up written after it moves `seq`, and the row
        // stays.
        let (mut pass, seq) = match Pass::load_with_wake(txn, deployment_id, at).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) | Err(PassError::Conflict(_)) | Err(PassError::Corrupt { .. }) => return Ok(None),
            Err(PassError::Db(e)) => return Err(e.into()),
        };
        pass.traceparent = ev.traceparent.clone();
        let Some(component) =
            pass.apply_result(&result.command_id, action, result.reason.as_deref(), result.message.clone())
        else {
            return Ok(None);
        };
        let holder = if pass.dep.state == "CREATED" {
            store::holder_before(txn, &pass.dep.instance_key, deployment_id).await?
        } else {
            None
        };
        let call = pass.advance(&self.settings, holder);
        // A webhook step is called by the driver: leave the deployment due now.
        let next = if call.is_some() { Some(at) } else { pass.next_due() };
        let tail = store::settle_wake_stmt(deployment_id, seq, next, at).into_iter().chain(inbox.cloned());
        match pass.commit(txn, &self.outbox, &self.settings, tail).await {
            Ok(wakes) => Ok(Some((!wakes.is_empty() || call.is_some(), component))),
            Err(e) => Err(HandlerError::retry(format!(
                "the pass over deployment {deployment_id} did not commit ({e}); the result is retried alone"
            ))),
        }
    }

    /// The component's change and its event, and the deployment marked due when the component
    /// ended. True when it was marked.
    async fn apply_plain(
        &self,
        txn: &DatabaseTransaction,
        ev: &CloudEvent,
        action: &str,
        result: &ComponentResult,
        found: store::CommandComponent,
    ) -> Result<bool, HandlerError> {
        let store::CommandComponent { mut comp, app_id, app_instance } = found;
        let loaded_state = comp.state.clone();
        let loaded_attempt = comp.attempt;
        let at = now();
        let app_id = view::parse_app_id(&app_id);
        let mut events = Vec::new();
        for &trigger in result_triggers(action, result.reason.as_deref()) {
            let from: ComponentState = parse_state(&comp.state).unwrap_or(ComponentState::Exception);
            // `healthy` after `applied` was seen: skip the first; a finished component: nothing.
            if trigger == crate::state::ComponentTrigger::Applied && from != ComponentState::Processing {
                continue;
            }
            let Ok(to) = from.next(trigger) else { continue };
            comp.state = to.as_str().to_owned();
            use crate::state::ComponentTrigger as T;
            if matches!(trigger, T::Failed | T::Timeout | T::Update) {
                comp.reason = result.reason.clone().or_else(|| Some(action.to_owned()));
                comp.message = result.message.clone();
            }
            comp.updated_at = at;
            let data = wire::DeployComponentChanged {
                previous_state: Some(from.as_str().to_owned()),
                app_id: app_id.clone(),
                app_instance_name: app_instance.clone(),
                component: view::component_out(&comp),
            };
            let mut e = CloudEvent::new(
                EVENT_SERVICE,
                &format!("deployment.component.{}", state_action(to.as_str())),
                Some(comp.deployment_id.to_string()),
                data,
            );
            e.traceparent = ev.traceparent.clone();
            events.push(e);
        }
        if events.is_empty() {
            return Ok(false);
        }
        if !store::save_component(txn, &comp, &loaded_state, loaded_attempt).await? {
            return Err(HandlerError::retry(format!(
                "component {} changed while its result was applied",
                comp.id
            )));
        }
        let rows = events.iter().map(|e| self.outbox.event_row(e)).collect::<Result<Vec<_>, _>>()?;
        self.outbox.insert(txn, rows).await?;
        // The engine acts on a component only once it ended (SUCCESS, WAIT_FOR_OP, FAILURE): a
        // component that is now RUNNING (applied, or degraded) needs no pass.
        let ended = parse_state::<ComponentState>(&comp.state).is_some_and(ComponentState::is_terminal);
        if ended {
            store::wake(txn, comp.deployment_id, at).await?;
        }
        Ok(ended)
    }
}

/// Whether a message on `subject` is a result that may carry its deployment's pass (`healthy` or
/// `failed`; events are published on a subject ending in their type).
fn inline_candidate(subject: &str) -> bool {
    ["executor.component.healthy", "executor.component.failed"]
        .iter()
        .any(|t| subject.strip_suffix(t).is_some_and(|rest| rest.ends_with('.')))
}

/// The deployment and component of an `executor.component.applied` event whose objects were
/// already healthy (`None` for any other message, or one not about a command of this service).
/// Events are published on a subject ending in their type, so every other result is told apart
/// without parsing it here (the handler parses it, once).
fn applied_healthy(msg: &Delivery) -> Option<(i64, i64)> {
    const APPLIED: &str = "executor.component.applied";
    if !msg.subject.strip_suffix(APPLIED).is_some_and(|rest| rest.ends_with('.')) {
        return None;
    }
    let ev: CloudEvent = serde_json::from_slice(&msg.payload).ok()?;
    if ev.name() != APPLIED {
        return None;
    }
    let result: ComponentResult = serde_json::from_value(ev.data).ok()?;
    let (deployment, component, _) = crate::engine::parse_command_id(&result.command_id)?;
    (result.health == Health::Healthy).then_some((deployment, component))
}
