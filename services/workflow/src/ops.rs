//! The workflow service's operations on NATS (`{prefix}.api.workflow.*`), routed by the gateway
//! from `/v1/deployments...` and `/v1/workflows...`.
//!
//! Reads answer from the database. Every operator action loads a [`Pass`] of the deployment, applies
//! the action through the state machines, and commits it with the deployment's wake-up row in one
//! transaction (a lost compare-and-swap is retried a few times); the engine then carries on from the
//! new state. Launch and replay live in [`crate::launch`].

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use sw_authz::{Principal, Scope, Verifier};
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, Router, RpcCall, RpcReply};
use sw_config::LaunchConflict;
use sw_contracts::Page;
use sw_contracts::workflow::{DeploymentActionQuery, DeploymentListQuery, RetryFromTaskQuery};
use sw_http::ApiError;
use tokio::sync::Notify;

pub(crate) use crate::authz::Op;
use crate::engine::{Pass, PassError, Settings};
use crate::store::{self, DeploymentRow};
use crate::view;

/// What every operation needs.
pub(crate) struct Ctx {
    pub db: DatabaseConnection,
    pub bus: Bus,
    pub outbox: Outbox,
    pub verifier: Verifier,
    pub settings: Settings,
    pub on_conflict: LaunchConflict,
    pub webhooks_enabled: bool,
    /// `workflow.webhook_allow_private`.
    pub webhooks_private: bool,
    /// Wakes this replica's engine at once.
    pub engine: Arc<Notify>,
    /// Turns of `workflow.launch_concurrency` for launches and replays.
    pub launches: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

impl Ctx {
    pub async fn principal(&self, call: &RpcCall) -> Result<Principal, ApiError> {
        self.verifier.verify_call(&call.meta).await
    }

    /// Tells this replica's engine there is work.
    pub fn kick(&self) {
        self.engine.notify_one();
    }
}

/// The service name on NATS.
pub const API_SERVICE: &str = "workflow";

pub(crate) fn router(ctx: &Arc<Ctx>) -> Router {
    Router::new(API_SERVICE, "Deployments and workflows")
        .route("deployments.launch", bind(ctx, crate::launch::launch))
        .route("deployments.list", bind(ctx, list))
        .route("deployments.get", bind(ctx, get))
        .route("deployments.replay", bind(ctx, crate::launch::replay))
        .route("deployments.retry", bind(ctx, retry))
        .route("deployments.terminate", bind(ctx, terminate))
        .route("deployments.rollback", bind(ctx, rollback))
        .route("workflows.get", bind(ctx, workflow_get))
        .route("workflows.resume", bind(ctx, resume))
        .route("workflows.terminate", bind(ctx, workflow_terminate))
        .route("workflows.retry", bind(ctx, workflow_retry))
        .route("workflows.retry-from-task", bind(ctx, retry_from_task))
        .route("workflows.context", bind(ctx, context))
        .route("workflows.task-suspend", bind(ctx, task_suspend))
        .route("workflows.task-terminate", bind(ctx, task_terminate))
}

fn bind<F, Fut>(ctx: &Arc<Ctx>, handler: F) -> impl Fn(RpcCall) -> Fut + Send + Sync + 'static
where
    F: Fn(Arc<Ctx>, RpcCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RpcReply, ApiError>> + Send + 'static,
{
    let ctx = ctx.clone();
    move |call| handler(ctx.clone(), call)
}

/// Now, at the precision the database keeps.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn id_param(call: &RpcCall, name: &str) -> Result<i64, ApiError> {
    let raw = call.envelope.params.get(name).ok_or_else(|| ApiError::invalid_field(name, "is required"))?;
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid_field(name, "must be a positive integer"))
}

pub(crate) fn deployment_param(call: &RpcCall) -> Result<i64, ApiError> {
    id_param(call, "deployAppId")
}

fn workflow_param(call: &RpcCall) -> Result<i64, ApiError> {
    id_param(call, "workflowInstanceId")
}

pub(crate) fn action_query(call: &RpcCall) -> Result<DeploymentActionQuery, ApiError> {
    sw_http::parse_query(&call.envelope.query)
}

pub(crate) fn no_deployment(id: i64) -> ApiError {
    ApiError::not_found(format!("Deployment {id} does not exist."))
}

pub(crate) fn require(principal: &Principal, op: Op, dep: &DeploymentRow) -> Result<(), ApiError> {
    principal.require(crate::authz::allowed, op, Scope::App { app: &dep.app_id, team: dep.team.as_deref() })
}

/// 409 `rollback_pinned` when a rollback pinned `dep`'s app instance to a newer deployment.
pub(crate) async fn check_pin(ctx: &Ctx, dep: &DeploymentRow, force: bool) -> Result<(), ApiError> {
    if force {
        return Ok(());
    }
    match store::pin_of(&ctx.db, &dep.instance_key).await.map_err(sw_db::api_error)? {
        Some(pin) if pin > dep.id => Err(ApiError::conflict(
            "rollback_pinned",
            format!(
                "App instance {} was rolled back by deployment {pin}; deployment {} would re-apply what was rolled back. Pass force=true to do it anyway.",
                dep.app_instance, dep.id
            ),
        )),
        _ => Ok(()),
    }
}

async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    if !principal.can_anywhere(crate::authz::allowed, Op::Read) {
        return Err(ApiError::forbidden("Your roles do not allow reading deployments."));
    }
    let q: DeploymentListQuery = sw_http::parse_query(&call.envelope.query)?;
    let page = sw_http::page_query(q.page, q.page_size)?;
    let (rows, total) = store::list(
        &ctx.db,
        q.app_id.as_ref().map(|a| a.as_str()),
        q.app_instance_name.as_deref(),
        q.state.as_deref(),
        (page.page() - 1) * page.page_size(),
        page.page_size(),
    )
    .await
    .map_err(sw_db::api_error)?;
    Ok(RpcReply::ok(Page {
        items: rows.iter().map(view::deployment_out).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total,
    }))
}

async fn read(ctx: &Ctx, call: &RpcCall, id: i64) -> Result<(DeploymentRow, Principal), ApiError> {
    let principal = ctx.principal(call).await?;
    let dep =
        store::deployment(&ctx.db, id).await.map_err(sw_db::api_error)?.ok_or_else(|| no_deployment(id))?;
    require(&principal, Op::Read, &dep)?;
    Ok((dep, principal))
}

async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = deployment_param(&call)?;
    let principal = ctx.principal(&call).await?;
    let rows = store::deployment_rows(&ctx.db, id)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| no_deployment(id))?;
    require(&principal, Op::Read, &rows.dep)?;
    Ok(RpcReply::ok(view::detail(&rows.dep, &rows.tasks, &rows.comps)))
}

async fn workflow_get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    let (dep, _) = read(&ctx, &call, id).await.map_err(|e| {
        if e.status() == 404 {
            ApiError::not_found(format!("Workflow instance {id} does not exist."))
        } else {
            e
        }
    })?;
    let tasks = store::tasks(&ctx.db, id).await.map_err(sw_db::api_error)?;
    Ok(RpcReply::ok(view::workflow_out(&dep, &tasks)))
}

/// What an action answers with.
#[derive(Clone, Copy)]
enum Answer {
    Deployment,
    Workflow,
}

/// Loads deployment `id` for `principal` (who must be allowed to deploy it), applies `action` to a
/// pass and commits it with a wake-up, retrying a lost compare-and-swap. `action` returns an error
/// to refuse (nothing is written).
async fn act<F>(ctx: &Ctx, call: &RpcCall, id: i64, answer: Answer, action: F) -> Result<RpcReply, ApiError>
where
    F: Fn(&mut Pass, &Ctx) -> Result<(), ApiError>,
{
    let principal = ctx.principal(call).await?;
    for _ in 0..5 {
        let txn = store::begin(&ctx.db).await.map_err(sw_db::api_error)?;
        let Some(mut pass) = Pass::load(&txn, id, now()).await.map_err(pass_error)? else {
            return Err(match answer {
                Answer::Deployment => no_deployment(id),
                Answer::Workflow => ApiError::not_found(format!("Workflow instance {id} does not exist.")),
            });
        };
        require(&principal, Op::Deploy, &pass.dep)?;
        pass.traceparent = call.meta.traceparent.clone();
        pass.actor = principal.subject.clone();
        action(&mut pass, ctx)?;
        let at = pass.now;
        match pass.commit(&txn, &ctx.outbox, &ctx.settings, [store::wake_stmt(id, at)]).await {
            Ok(_) => {}
            Err(PassError::Conflict(_)) => {
                let _ = txn.rollback().await;
                continue;
            }
            Err(PassError::Db(e)) if sw_db::is_lock_conflict(&e) => continue,
            Err(e) => return Err(pass_error(e)),
        }
        match txn.commit().await {
            Ok(()) => {}
            Err(e) if sw_db::is_lock_conflict(&e) => continue,
            Err(e) => return Err(sw_db::api_error(e)),
        }
        ctx.outbox.wake();
        ctx.kick();
        let dep = store::deployment(&ctx.db, id)
            .await
            .map_err(sw_db::api_error)?
            .ok_or_else(|| no_deployment(id))?;
        return Ok(match answer {
            Answer::Deployment => RpcReply::ok(view::deployment_out(&dep)),
            Answer::Workflow => {
                let tasks = store::tasks(&ctx.db, id).await.map_err(sw_db::api_error)?;
                RpcReply::ok(view::workflow_out(&dep, &tasks))
            }
        });
    }
    Err(ApiError::conflict("concurrent_change", format!("Deployment {id} kept changing; try again.")))
}

pub(crate) fn pass_error(e: PassError) -> ApiError {
    match e {
        PassError::Db(e) => sw_db::api_error(e),
        other => ApiError::internal(&other),
    }
}

fn invalid_state(what: &str, state: &str, action: &str) -> ApiError {
    ApiError::conflict("invalid_state", format!("{what} is {state}: it cannot be {action}."))
}

async fn other_holder(ctx: &Ctx, dep: &DeploymentRow) -> Result<(), ApiError> {
    if let Some(h) = store::any_holder(&ctx.db, &dep.instance_key).await.map_err(sw_db::api_error)?
        && h != dep.id
    {
        return Err(ApiError::conflict(
            "deployment_in_progress",
            format!(
                "Deployment {h} of app instance {} is running; wait for it or terminate it first.",
                dep.app_instance
            ),
        ));
    }
    Ok(())
}

async fn retry_common(
    ctx: Arc<Ctx>,
    call: RpcCall,
    id: i64,
    answer: Answer,
    force: bool,
) -> Result<RpcReply, ApiError> {
    if let Some(dep) = store::deployment(&ctx.db, id).await.map_err(sw_db::api_error)? {
        check_pin(&ctx, &dep, force).await?;
        other_holder(&ctx, &dep).await?;
    }
    act(&ctx, &call, id, answer, |pass, ctx| {
        let state = pass.dep.state.clone();
        // Nothing failed: a succeeded deployment runs again only from a chosen task, or replayed.
        if state != "SUCCESS" && pass.retry(&ctx.settings) {
            Ok(())
        } else {
            Err(invalid_state(&format!("Deployment {id}"), &state, "retried"))
        }
    })
    .await
}

async fn retry(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = deployment_param(&call)?;
    let force = action_query(&call)?.force.unwrap_or(false);
    retry_common(ctx, call, id, Answer::Deployment, force).await
}

async fn workflow_retry(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    retry_common(ctx, call, id, Answer::Workflow, false).await
}

fn terminate_action(pass: &mut Pass, what: &str) -> Result<(), ApiError> {
    let state = pass.dep.state.clone();
    let by = pass.actor.clone();
    pass.terminate("Terminated", Some(format!("terminated by {by}")));
    if pass.dep.state == state {
        return Err(invalid_state(what, &state, "terminated"));
    }
    Ok(())
}

async fn terminate(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = deployment_param(&call)?;
    act(&ctx, &call, id, Answer::Deployment, |pass, _| terminate_action(pass, &format!("Deployment {id}")))
        .await
}

async fn workflow_terminate(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    act(&ctx, &call, id, Answer::Workflow, |pass, _| terminate_action(pass, &format!("Workflow {id}"))).await
}

async fn resume(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    act(&ctx, &call, id, Answer::Workflow, |pass, _| {
        let state = pass.dep.wf_state.clone();
        if pass.resume() { Ok(()) } else { Err(invalid_state(&format!("Workflow {id}"), &state, "resumed")) }
    })
    .await
}

async fn retry_from_task(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    let q: RetryFromTaskQuery = sw_http::parse_query(&call.envelope.query)?;
    if let Some(dep) = store::deployment(&ctx.db, id).await.map_err(sw_db::api_error)? {
        check_pin(&ctx, &dep, false).await?;
        other_holder(&ctx, &dep).await?;
    }
    act(&ctx, &call, id, Answer::Workflow, |pass, ctx| {
        if !pass.tasks.iter().any(|t| t.id == q.task_id as i64) {
            return Err(ApiError::not_found(format!("Workflow {id} has no task {}.", q.task_id)));
        }
        pass.retry_from(q.task_id as i64, &ctx.settings).map_err(|m| ApiError::conflict("invalid_state", m))
    })
    .await
}

async fn context(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    let patch = match &call.envelope.body {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(ApiError::invalid_field("body", "must be a JSON object (merged into the context)")),
    };
    act(&ctx, &call, id, Answer::Workflow, move |pass, _| {
        pass.merge_context(&patch);
        Ok(())
    })
    .await
}

fn task_param(call: &RpcCall) -> Result<i64, ApiError> {
    id_param(call, "taskId")
}

async fn task_suspend(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    let task = task_param(&call)?;
    act(&ctx, &call, id, Answer::Workflow, |pass, _| {
        if !pass.tasks.iter().any(|t| t.id == task) {
            return Err(ApiError::not_found(format!("Workflow {id} has no task {task}.")));
        }
        pass.suspend_task(task).map_err(|m| ApiError::conflict("invalid_state", m))
    })
    .await
}

async fn task_terminate(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = workflow_param(&call)?;
    let task = task_param(&call)?;
    act(&ctx, &call, id, Answer::Workflow, |pass, _| {
        if !pass.tasks.iter().any(|t| t.id == task) {
            return Err(ApiError::not_found(format!("Workflow {id} has no task {task}.")));
        }
        terminate_action(pass, &format!("Workflow {id}"))
    })
    .await
}

async fn rollback(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let id = deployment_param(&call)?;
    let dep =
        store::deployment(&ctx.db, id).await.map_err(sw_db::api_error)?.ok_or_else(|| no_deployment(id))?;
    if store::last_success_before(&ctx.db, &dep.instance_key, id).await.map_err(sw_db::api_error)?.is_none() {
        return Err(ApiError::conflict(
            "no_previous_success",
            format!(
                "App instance {} has no successful deployment before {id} to roll back to.",
                dep.app_instance
            ),
        ));
    }
    act(&ctx, &call, id, Answer::Deployment, |pass, _| {
        let by = pass.actor.clone();
        pass.roll_back(&format!("rolled back by {by}"));
        Ok(())
    })
    .await?;
    // The rollback deployment is the newest pinned one of the instance.
    let pin = store::pin_of(&ctx.db, &dep.instance_key)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::internal(&std::io::Error::other("the rollback deployment is missing")))?;
    Ok(RpcReply::created(sw_contracts::workflow::DeploymentLaunched {
        deploy_app_id: pin as u64,
        workflow_instance_id: pin as u64,
        state: "CREATED".into(),
        queued: false,
        warnings: Vec::new(),
    }))
}
