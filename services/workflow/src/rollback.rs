//! Rollback: relaunch the last successful deployment of an app instance as a new, pinned
//! deployment.
//!
//! A rollback ([`start`], from `POST /v1/deployments/{id}/rollback` or a `rollout-promotion` step
//! whose context says `rollback: true`) takes the newest `SUCCESS` deployment of the app instance
//! older than the one rolled back, and writes a new deployment (kind `ROLLBACK`) with that one's
//! launch file, package and plan. It is *pinned*: until a newer deployment of the instance succeeds,
//! older deployments are not retried or replayed onto the instance without `force`
//! ([`crate::ops::check_pin`]), and launches queued behind the broken release are ended as
//! `TERMINATED` (`Superseded`) so nothing automatic re-applies it (Argo CD #5351). The new
//! deployment sends every component with a new, higher revision, so a late command of the broken
//! release is refused by the executor as stale.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sw_bus::CloudEvent;
use sw_bus::outbox::Outbox;
use sw_contracts::workflow::{self as wire, DeploymentKind, LaunchQuery};

use crate::engine::{EVENT_SERVICE, Pass, PassError};
use crate::launch::{NewDeployment, Placement};
use crate::plan::Plan;
use crate::store;
use crate::view;

/// Starts the rollback of `pass`'s app instance in `txn`. Returns the new deployment's id, or
/// `None` when the instance has no earlier successful deployment.
pub async fn start<C: ConnectionTrait>(
    txn: &C,
    pass: &Pass,
    outbox: &Outbox,
) -> Result<Option<i64>, PassError> {
    let dep = &pass.dep;
    let Some(source) = store::last_success_before(txn, &dep.instance_key, dep.id).await? else {
        tracing::warn!(deployment = dep.id, "No earlier successful deployment to roll back to.");
        return Ok(None);
    };
    let corrupt = |m: String| PassError::Corrupt { id: source.id, message: m };
    let plan: Plan = serde_json::from_str(&source.plan).map_err(|e| corrupt(format!("plan: {e}")))?;
    let query: LaunchQuery = serde_json::from_str(&source.launch_query).unwrap_or_default();
    let configuration =
        serde_json::from_str(&source.configuration).map_err(|e| corrupt(format!("configuration: {e}")))?;
    let new = NewDeployment {
        app_id: view::app_id(&source),
        team: source.team.clone(),
        app_package_id: source.app_package_id as u64,
        package_version: source.package_version.clone(),
        configuration,
        query,
        plan,
        kind: DeploymentKind::Rollback,
        source_id: Some(source.id),
        pinned: true,
        created_by: pass.actor.clone(),
        placement: Placement {
            cluster_id: source.cluster_id.clone(),
            namespace_id: source.namespace_id.clone(),
            stage_id: source.stage_id.clone(),
            app_instance: source.app_instance.clone(),
        },
    };
    let id =
        crate::launch::insert(txn, outbox, &new, pass.now, pass.traceparent.as_deref(), true).await?.dep.id;
    supersede_queued(txn, outbox, &dep.instance_key, id, pass).await?;
    Ok(Some(id))
}

/// Ends the launches queued (`CREATED`) for the instance before the rollback `rollback_id`.
async fn supersede_queued<C: ConnectionTrait>(
    txn: &C,
    outbox: &Outbox,
    instance_key: &str,
    rollback_id: i64,
    pass: &Pass,
) -> Result<(), PassError> {
    for id in store::queued_before(txn, instance_key, rollback_id).await? {
        if id == pass.dep.id {
            continue;
        }
        let message = format!("superseded by rollback deployment {rollback_id}");
        // CREATED → TERMINATED, PENDING → TERMINATED, CREATED components → TERMINATED: the
        // machines' `Terminate` edges, written directly because nothing of them ever ran.
        for sql in [
            "UPDATE deployment SET state = 'TERMINATED', reason = 'Superseded', message = ?, wf_state = 'TERMINATED',
                wf_reason = 'Superseded', finished_at = ?, wf_finished_at = ?, updated_at = ?, version = version + 1
             WHERE id = ? AND state = 'CREATED'",
        ] {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::MySql,
                sql,
                [message.clone().into(), pass.now.into(), pass.now.into(), pass.now.into(), id.into()],
            ))
            .await?;
        }
        txn.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE workflow_task SET state = 'TERMINATED', reason = 'Superseded', finished_at = ?, updated_at = ?
             WHERE deployment_id = ? AND state = 'PENDING'",
            [pass.now.into(), pass.now.into(), id.into()],
        ))
        .await?;
        txn.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE deploy_component SET state = 'TERMINATED', reason = 'Superseded', updated_at = ?
             WHERE deployment_id = ? AND state = 'CREATED'",
            [pass.now.into(), id.into()],
        ))
        .await?;
        if let Some(row) = store::deployment(txn, id).await? {
            let mut ev = CloudEvent::new(
                EVENT_SERVICE,
                "deployment.app.terminated",
                Some(id.to_string()),
                wire::DeploymentChanged {
                    previous_state: Some("CREATED".into()),
                    deployment: view::deployment_out(&row),
                },
            );
            ev.traceparent = pass.traceparent.clone();
            outbox.enqueue(txn, &ev).await?;
        }
    }
    Ok(())
}
