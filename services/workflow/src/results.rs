//! The consumer of executor results: `executor.component.*` events move the component they answer
//! and wake its deployment.
//!
//! A result names its command; the component row sent with that command id (and only the current
//! attempt has it) takes the result: `applied` → `RUNNING`, `healthy` → `SUCCESS` (after `RUNNING`
//! when `applied` was not seen first), `failed` → `WAIT_FOR_OP` (reason from the executor), or
//! `FAILURE` for reason `Timeout` (the component never became healthy before its deadline),
//! `degraded` → stays `RUNNING` with the message. A result for a component that already ended (it
//! was terminated, or its step timed out) changes nothing. The change, its event and the deployment's
//! wake-up commit with the message's inbox row (see [`sw_bus::consumer`]); the engine takes it from
//! there. Results of commands this service did not send are acked and ignored.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use sw_bus::CloudEvent;
use sw_bus::consumer::{Delivery, Handler, HandlerError, async_trait};
use sw_bus::outbox::Outbox;
use sw_contracts::executor::ComponentResult;
use sw_contracts::workflow::{self as wire, state_action};
use tokio::sync::Notify;

use crate::engine::{EVENT_SERVICE, parse_state};
use crate::ops::now;
use crate::state::{ComponentState, ComponentTrigger};
use crate::store;
use crate::view;

/// Histogram of applying one executor result (inside the consumer's transaction), seconds.
pub const RESULT_SECONDS: &str = "sw_workflow_result_seconds";

/// The durable consumer the workflow's replicas share on the events stream.
pub const DURABLE: &str = "workflow-executor-results";

pub struct ResultHandler {
    pub outbox: Outbox,
    pub engine: Arc<Notify>,
}

#[async_trait]
impl Handler for ResultHandler {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        let started = std::time::Instant::now();
        let handled = self.apply(txn, msg).await;
        metrics::histogram!(RESULT_SECONDS).record(started.elapsed().as_secs_f64());
        handled
    }

    /// The component's change, its events and its wake-up are visible now: the relay publishes the
    /// events and the engine looks at once.
    async fn committed(&self, _msg: &Delivery) {
        self.outbox.wake();
        self.engine.notify_one();
    }
}

impl ResultHandler {
    async fn apply(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError> {
        let ev: CloudEvent = serde_json::from_slice(&msg.payload).map_err(HandlerError::permanent)?;
        let action = ev.name().strip_prefix("executor.component.").unwrap_or_default().to_owned();
        let result: ComponentResult = serde_json::from_value(ev.data).map_err(HandlerError::permanent)?;
        let Some(mut comp) = store::component_by_command(txn, &result.command_id).await? else {
            return Ok(());
        };
        let timeout = result.reason.as_deref() == Some("Timeout");
        let triggers: &[ComponentTrigger] = match action.as_str() {
            "applied" => &[ComponentTrigger::Applied],
            "healthy" => &[ComponentTrigger::Applied, ComponentTrigger::Healthy],
            "failed" if timeout => &[ComponentTrigger::Timeout],
            "failed" => &[ComponentTrigger::Failed],
            "degraded" => &[ComponentTrigger::Update],
            _ => &[],
        };
        let loaded_state = comp.state.clone();
        let loaded_attempt = comp.attempt;
        let at = now();
        let Some(dep) = store::deployment(txn, comp.deployment_id).await? else { return Ok(()) };
        let mut events = Vec::new();
        for trigger in triggers {
            let from: ComponentState = parse_state(&comp.state).unwrap_or(ComponentState::Exception);
            // `healthy` after `applied` was seen: skip the first; a finished component: nothing.
            if *trigger == ComponentTrigger::Applied && from != ComponentState::Processing {
                continue;
            }
            let Ok(to) = from.next(*trigger) else { continue };
            comp.state = to.as_str().to_owned();
            if matches!(
                trigger,
                ComponentTrigger::Failed | ComponentTrigger::Timeout | ComponentTrigger::Update
            ) {
                comp.reason = result.reason.clone().or_else(|| Some(action.clone()));
                comp.message = result.message.clone();
            }
            comp.updated_at = at;
            let data = wire::DeployComponentChanged {
                previous_state: Some(from.as_str().to_owned()),
                app_id: view::app_id(&dep),
                app_instance_name: dep.app_instance.clone(),
                component: view::component_out(&comp),
            };
            let mut e = CloudEvent::new(
                EVENT_SERVICE,
                &format!("deployment.component.{}", state_action(to.as_str())),
                Some(dep.id.to_string()),
                data,
            );
            e.traceparent = ev.traceparent.clone();
            events.push(e);
        }
        if events.is_empty() {
            return Ok(());
        }
        if !store::save_component(txn, &comp, &loaded_state, loaded_attempt).await? {
            return Err(HandlerError::retry(format!(
                "component {} changed while its result was applied",
                comp.id
            )));
        }
        for e in &events {
            self.outbox.enqueue(txn, e).await?;
        }
        // The engine acts on a component only once it ended (SUCCESS, WAIT_FOR_OP, FAILURE): a
        // component that is now RUNNING (applied, or degraded) needs no pass.
        let ended = parse_state::<ComponentState>(&comp.state).is_some_and(ComponentState::is_terminal);
        if ended {
            store::wake(txn, dep.id, at).await?;
        }
        Ok(())
    }
}
