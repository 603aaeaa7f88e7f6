//! `deployments.launch` and `deployments.replay`: from a launch file to a deployment that the
//! engine runs.
//!
//! Everything that needs the caller's authority happens here, while the caller waits: the app is
//! looked up in appmeta (it must exist; its team scopes the permission), the package in
//! package-store (by id, version, the file's `appPackageId`, or the newest), the components'
//! workloads fetched, the whole file planned ([`crate::plan::build`], every problem a 422), and with
//! `autoEnvironment` the namespace and stage created in appmeta. Then the deployment, its tasks and
//! components, its `created` events and its wake-up row are written in one transaction and the
//! answer is 201: the engine takes it from there without the caller's token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::{Value, json};
use sw_appconf::{ApplicationConfiguration, Overrides};
use sw_authz::Principal;
use sw_bus::outbox::Outbox;
use sw_bus::{CallMeta, CloudEvent, RpcCall, RpcEnvelope, RpcReply};
use sw_config::LaunchConflict;
use sw_contracts::appmeta::AppOut;
use sw_contracts::packages::{AppPackageOut, ComponentWorkloadOut, LatestVersionOut};
use sw_contracts::workflow::{self as wire, DeploymentKind, LaunchQuery};
use sw_contracts::{AppId, FieldError, Page};
use sw_http::ApiError;

use crate::engine::{EVENT_SERVICE, Pass, PassError};
use crate::ops::{Ctx, Op, now};
use crate::plan::{self, LaunchInput, Plan};
use crate::store::{self, ComponentRow, DeploymentRow, TaskRow};
use crate::view;

/// What a new deployment is made of.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub app_id: AppId,
    pub team: Option<String>,
    pub app_package_id: u64,
    pub package_version: String,
    pub configuration: Value,
    pub query: LaunchQuery,
    pub plan: Plan,
    pub kind: DeploymentKind,
    pub source_id: Option<i64>,
    pub pinned: bool,
    pub created_by: String,
    pub placement: Placement,
}

/// Where a deployment goes, as a whole (the app instance it holds while it runs).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub cluster_id: String,
    pub namespace_id: String,
    pub stage_id: Option<String>,
    pub app_instance: String,
}

impl Placement {
    /// The key two deployments share when they deploy the same app instance.
    pub fn instance_key(&self) -> String {
        format!("{}/{}/{}", self.cluster_id, self.namespace_id, self.app_instance)
    }
}

/// The rows [`insert`] wrote, with their ids: what a pass would load back.
#[derive(Debug)]
pub struct Inserted {
    pub dep: DeploymentRow,
    pub tasks: Vec<TaskRow>,
    pub comps: Vec<ComponentRow>,
}

/// Writes a new deployment (state `CREATED`, workflow `PENDING`), its tasks and components (a
/// skipped addon is recorded `SUCCESS` with its reason and never sent) and its `created` events in
/// `txn`, and — with `wake` — its wake-up row, due at once. Returns the rows written.
pub async fn insert<C: ConnectionTrait>(
    txn: &C,
    outbox: &Outbox,
    n: &NewDeployment,
    at: DateTime<Utc>,
    traceparent: Option<&str>,
    wake: bool,
) -> Result<Inserted, DbErr> {
    let p = &n.placement;
    let row = DeploymentRow {
        id: 0,
        app_id: n.app_id.to_string(),
        team: n.team.clone(),
        app_package_id: n.app_package_id as i64,
        package_version: n.package_version.clone(),
        cluster_id: p.cluster_id.clone(),
        namespace_id: p.namespace_id.clone(),
        stage_id: p.stage_id.clone(),
        app_instance: p.app_instance.clone(),
        instance_key: p.instance_key(),
        state: "CREATED".into(),
        reason: None,
        message: None,
        kind: view::kind_str(n.kind).into(),
        source_id: n.source_id,
        pinned: n.pinned,
        configuration: n.configuration.to_string(),
        launch_query: serde_json::to_string(&n.query).unwrap_or_else(|_| "{}".into()),
        plan: serde_json::to_string(&n.plan).map_err(|e| DbErr::Custom(e.to_string()))?,
        wf_state: "PENDING".into(),
        wf_mode: n.plan.mode.clone(),
        wf_context: "{}".into(),
        wf_reason: None,
        wf_message: None,
        wf_finished_at: None,
        created_by: n.created_by.clone(),
        created_at: at,
        updated_at: at,
        started_at: None,
        finished_at: None,
        deadline_at: None,
        version: 1,
    };
    let id = store::insert_deployment(txn, &row).await?;
    let mut tasks = Vec::with_capacity(n.plan.steps.len());
    let mut comps = Vec::new();
    for step in &n.plan.steps {
        let task = TaskRow {
            id: 0,
            deployment_id: id,
            step_index: step.index as i32,
            name: step.name.clone(),
            task_type: step.step_type.clone(),
            state: "PENDING".into(),
            reason: None,
            message: None,
            attempt: 0,
            calls: 0,
            inputs: None,
            context_snapshot: None,
            started_at: None,
            finished_at: None,
            deadline_at: None,
            due_at: None,
            updated_at: at,
        };
        let task_id = store::insert_task(txn, &task).await?;
        tasks.push(TaskRow { id: task_id, ..task });
        for (u, unit) in step.units.iter().enumerate() {
            let t = unit.target.as_ref();
            let comp = ComponentRow {
                id: 0,
                deployment_id: id,
                task_id,
                unit_index: u as i32,
                component_type: unit.component_type.clone(),
                component_name: unit.component_name.clone(),
                component_instance: t
                    .map_or_else(|| unit.component_name.clone(), |t| t.component_instance.clone()),
                cluster_id: t.map_or_else(|| p.cluster_id.clone(), |t| t.cluster_id.clone()),
                namespace_id: t.map_or_else(|| p.namespace_id.clone(), |t| t.namespace.clone()),
                stage_id: t.map_or_else(|| p.stage_id.clone(), |t| t.stage_id.clone()),
                // A skipped addon: nothing to deploy, recorded as done (never sent).
                state: if unit.skip_reason.is_some() { "SUCCESS".into() } else { "CREATED".into() },
                revision: None,
                attempt: 0,
                command_id: None,
                reason: None,
                message: None,
                skip_reason: unit.skip_reason.clone(),
                updated_at: at,
            };
            let comp_id = store::insert_component(txn, &comp).await?;
            comps.push(ComponentRow { id: comp_id, ..comp });
        }
    }
    let mut stored = row;
    stored.id = id;
    let mut created = CloudEvent::new(
        EVENT_SERVICE,
        "deployment.app.created",
        Some(id.to_string()),
        wire::DeploymentChanged { previous_state: None, deployment: view::deployment_out(&stored) },
    );
    created.traceparent = traceparent.map(str::to_owned);
    let mut wf = CloudEvent::new(
        EVENT_SERVICE,
        "workflow.instance.pending",
        Some(id.to_string()),
        wire::WorkflowChanged {
            previous_state: None,
            workflow_instance_id: id as u64,
            deploy_app_id: id as u64,
            app_id: n.app_id.clone(),
            state: "PENDING".into(),
            reason: None,
            message: None,
        },
    );
    wf.traceparent = traceparent.map(str::to_owned);
    outbox.insert(txn, vec![outbox.event_row(&created)?, outbox.event_row(&wf)?]).await?;
    if wake {
        store::wake(txn, id, at).await?;
    }
    Ok(Inserted { dep: stored, tasks, comps })
}

/// `POST /v1/deployments/launch`.
pub(crate) async fn launch(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let query: LaunchQuery = sw_http::parse_query(&call.envelope.query)?;
    let body = call
        .envelope
        .body
        .clone()
        .ok_or_else(|| ApiError::invalid_field("body", "the ApplicationConfiguration is required"))?;
    let out = create(&ctx, &call.meta, &principal, body, query, DeploymentKind::Launch, None).await?;
    Ok(RpcReply::created(out))
}

/// `POST /v1/deployments/{id}/replay`: the same file and query, as a new deployment.
pub(crate) async fn replay(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let id = crate::ops::deployment_param(&call)?;
    let force = crate::ops::action_query(&call)?.force.unwrap_or(false);
    let dep = store::deployment(&ctx.db, id)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| crate::ops::no_deployment(id))?;
    crate::ops::require(&principal, Op::Deploy, &dep)?;
    crate::ops::check_pin(&ctx, &dep, force).await?;
    let configuration: Value =
        serde_json::from_str(&dep.configuration).map_err(|e| ApiError::internal(&e))?;
    let mut query: LaunchQuery =
        serde_json::from_str(&dep.launch_query).map_err(|e| ApiError::internal(&e))?;
    // The same package, whatever the original query chose.
    query.app_package_id = Some(dep.app_package_id as u64);
    query.package_version = None;
    let out =
        create(&ctx, &call.meta, &principal, configuration, query, DeploymentKind::Replay, Some(id)).await?;
    Ok(RpcReply::created(out))
}

/// Plans and writes a deployment of `body` for `principal`.
async fn create(
    ctx: &Ctx,
    meta: &CallMeta,
    principal: &Principal,
    body: Value,
    query: LaunchQuery,
    kind: DeploymentKind,
    source_id: Option<i64>,
) -> Result<wire::DeploymentLaunched, ApiError> {
    // Waits within the request's deadline (the RPC server's); the semaphore is never closed.
    let _turn = ctx.launches.acquire().await.map_err(|e| ApiError::unavailable("shutting_down", &e))?;
    let ac = parse_configuration(&body)?;
    let app_id = match (&query.app_id, ac.metadata.annotations.app_id.as_deref()) {
        (Some(a), _) => a.clone(),
        (None, Some(raw)) => AppId::parse(raw)
            .map_err(|e| ApiError::invalid_field("metadata.annotations.appId", e.to_string()))?,
        (None, None) => {
            return Err(ApiError::invalid_field("appId", "pass appId or set metadata.annotations.appId"));
        }
    };
    let app: AppOut =
        call_json(ctx, meta, "appmeta", "apps.get", RpcEnvelope::default().param("appId", app_id.as_str()))
            .await
            .map_err(|e| {
                if e.status() == 404 {
                    ApiError::new(422, "unknown_app", format!("App {app_id} does not exist in appmeta."))
                } else {
                    e
                }
            })?;
    let team = app.team.as_ref().map(|t| t.to_string());
    principal.require(
        crate::authz::allowed,
        Op::Deploy,
        sw_authz::Scope::App { app: app_id.as_str(), team: team.as_deref() },
    )?;
    let package = find_package(ctx, meta, &app_id, &query, &ac).await?;
    let workloads: Vec<ComponentWorkloadOut> = call_json(
        ctx,
        meta,
        "package-store",
        "packages.components",
        RpcEnvelope::default().param("appId", app_id.as_str()).param("appPackageId", package.id.to_string()),
    )
    .await?;
    let overrides = Overrides {
        app_id: Some(app_id.clone()),
        cluster: query.cluster_id.clone(),
        namespace: query.namespace_id.clone(),
        stage: query.stage_id.clone(),
        app_instance: query.app_instance_name.clone(),
    };
    let input = LaunchInput {
        overrides: overrides.clone(),
        package_version: &package.package_version,
        workloads: &workloads,
        webhooks_enabled: ctx.webhooks_enabled,
        webhooks_private: ctx.webhooks_private,
    };
    let planned = plan::build(&ac, &input).map_err(invalid_launch)?;
    let placement = placement_of(&planned.plan, &ac, &overrides, &app_id);
    if query.auto_environment.unwrap_or(false) {
        ensure_environment(ctx, meta, &planned.plan, &placement).await?;
    }
    let new = NewDeployment {
        app_id,
        team,
        app_package_id: package.id,
        package_version: package.package_version.clone(),
        configuration: body,
        query,
        plan: planned.plan,
        kind,
        source_id,
        pinned: false,
        created_by: principal.subject.clone(),
        placement,
    };
    let (id, holder, state) = write(ctx, &new, meta.traceparent.as_deref()).await?;
    ctx.outbox.wake();
    ctx.kick();
    Ok(wire::DeploymentLaunched {
        deploy_app_id: id as u64,
        workflow_instance_id: id as u64,
        state,
        queued: holder.is_some(),
        warnings: planned.warnings,
    })
}

/// Writes `new` (see [`insert`]), unless `reject` mode refuses it; a transaction that lost a lock
/// race is run again. When nothing holds the app instance, the engine's first pass runs in the
/// same transaction ([`start`]), so the first step's commands commit with the launch. Returns its
/// id, the deployment it waits for, if any, and its state.
async fn write(
    ctx: &Ctx,
    new: &NewDeployment,
    traceparent: Option<&str>,
) -> Result<(i64, Option<i64>, String), ApiError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let txn = store::begin(&ctx.db).await.map_err(sw_db::api_error)?;
        let key = new.placement.instance_key();
        // Taken before looking for a holder: a launch of the same instance running now commits
        // first, and this one then sees it.
        store::lock_instance(&txn, &key).await.map_err(sw_db::api_error)?;
        // With the revision counters of the components, so that the first pass counts their
        // revisions in its writes.
        let (holder, revisions) = store::holder_and_revisions(&txn, &key, &revision_keys(&new.plan))
            .await
            .map_err(sw_db::api_error)?;
        if let (Some(h), LaunchConflict::Reject) = (holder, ctx.on_conflict) {
            return Err(ApiError::conflict(
                "deployment_in_progress",
                format!(
                    "Deployment {h} of app instance {} is still running; wait for it or terminate it.",
                    new.placement.app_instance
                ),
            ));
        }
        // The first pass settles the wake-up row itself; a queued launch is due at once (the
        // driver then finds it waiting for its holder).
        let written = match insert(&txn, &ctx.outbox, new, now(), traceparent, holder.is_some()).await {
            Ok(rows) if holder.is_none() => {
                let id = rows.dep.id;
                start(ctx, txn, rows, new.plan.clone(), revisions, traceparent).await.map(|state| (id, state))
            }
            Ok(rows) => {
                txn.commit().await.map(|()| (rows.dep.id, "CREATED".to_owned())).map_err(PassError::Db)
            }
            Err(e) => Err(PassError::Db(e)),
        };
        match written {
            Ok((id, state)) => return Ok((id, holder, state)),
            Err(PassError::Db(e)) if sw_db::is_lock_conflict(&e) && attempts < 5 => continue,
            // A revision counter moved since it was read: another deployment of one of the
            // components' instances (one waiting for an operator, retried) counted a revision.
            Err(PassError::Conflict(_)) if attempts < 5 => continue,
            Err(PassError::Db(e)) => return Err(sw_db::api_error(e)),
            Err(e) => return Err(ApiError::internal(&e)),
        }
    }
}

/// The first pass over the deployment just inserted in `txn` (from the rows written, not read
/// back), then the commit; its state after. The pass is timed as the driver's are (the launch's
/// own inserts before it are not). The deployment has no wake-up row yet: the pass adds one when
/// something is left to wait for.
async fn start(
    ctx: &Ctx,
    txn: sea_orm::DatabaseTransaction,
    rows: Inserted,
    plan: Plan,
    revisions: store::Revisions,
    traceparent: Option<&str>,
) -> Result<String, PassError> {
    let started = std::time::Instant::now();
    let at = now();
    let id = rows.dep.id;
    let mut pass = Pass::new(rows.dep, rows.tasks, rows.comps, plan, at);
    pass.traceparent = traceparent.map(str::to_owned);
    pass.revisions = revisions;
    let call = pass.advance(&ctx.settings, None);
    // A webhook step is called by the driver: leave the deployment due now.
    let next = if call.is_some() { Some(at) } else { pass.next_due() };
    let state = pass.dep.state.clone();
    let settle = store::settle_wake_stmt(id, None, next, at);
    pass.commit(&txn, &ctx.outbox, &ctx.settings, settle).await?;
    txn.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!(crate::service::PASS_SECONDS).record(seconds);
    tracing::debug!(target: crate::results::TIMING_TARGET, kind = "pass", deployment = id, step = 0usize, seconds, "pass committed");
    Ok(state)
}

/// The revision keys of every component the plan may send.
fn revision_keys(plan: &Plan) -> Vec<String> {
    let units = plan.steps.iter().flat_map(|s| &s.units);
    units
        .filter_map(|u| u.target.as_ref().filter(|_| u.component.is_some()))
        .map(crate::engine::revision_key)
        .collect()
}

/// The body (JSON, or YAML the gateway turned into JSON) as an ApplicationConfiguration.
fn parse_configuration(body: &Value) -> Result<ApplicationConfiguration, ApiError> {
    let yaml: serde_yaml::Value =
        serde_yaml::to_value(body).map_err(|e| ApiError::new(422, "invalid_launch", e.to_string()))?;
    ApplicationConfiguration::from_value(yaml).map_err(|e| {
        let mut err = FieldError::new("body", e.to_string());
        err.code = Some("invalid_launch".into());
        invalid_launch(vec![err])
    })
}

/// 422 `invalid_launch` listing every problem (each with its own code).
pub(crate) fn invalid_launch(errors: Vec<FieldError>) -> ApiError {
    let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
    let mut problem = sw_contracts::Problem::new(422, "invalid_launch", Some(detail));
    problem.errors = errors;
    ApiError::from(problem)
}

/// Calls `service.op` with the caller's credentials and reads the JSON answer.
async fn call_json<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    meta: &CallMeta,
    service: &str,
    op: &str,
    envelope: RpcEnvelope,
) -> Result<T, ApiError> {
    let reply = ctx.bus.call(service, op, meta, &envelope, None).await?;
    let body = reply.body.unwrap_or(Value::Null);
    serde_json::from_value(body).map_err(|e| {
        ApiError::unavailable(
            &format!("{service}_unavailable"),
            &format!("{service} answered {op} unexpectedly: {e}"),
        )
    })
}

/// The package to deploy: `appPackageId`, else `packageVersion`, else the file's
/// `metadata.annotations.appPackageId` (when it is a number), else the app's newest.
async fn find_package(
    ctx: &Ctx,
    meta: &CallMeta,
    app_id: &AppId,
    query: &LaunchQuery,
    ac: &ApplicationConfiguration,
) -> Result<AppPackageOut, ApiError> {
    let file_id =
        ac.metadata.annotations.app_package_id.as_deref().and_then(|s| s.trim().parse::<u64>().ok());
    let id = match (query.app_package_id, &query.package_version, file_id) {
        (Some(id), _, _) => id,
        (None, Some(v), _) => {
            let page: Page<AppPackageOut> = call_json(
                ctx,
                meta,
                "package-store",
                "packages.list",
                RpcEnvelope::default()
                    .param("appId", app_id.as_str())
                    .query(format!("version={}", urlencode(v))),
            )
            .await?;
            let p = page.items.into_iter().next().ok_or_else(|| {
                ApiError::new(422, "unknown_package", format!("App {app_id} has no package version {v}."))
            })?;
            return Ok(p);
        }
        (None, None, Some(id)) => id,
        (None, None, None) => {
            let latest: LatestVersionOut = call_json(
                ctx,
                meta,
                "package-store",
                "packages.latest-version",
                RpcEnvelope::default().param("appId", app_id.as_str()),
            )
            .await
            .map_err(|e| {
                if e.status() == 404 {
                    ApiError::new(422, "unknown_package", format!("App {app_id} has no package to deploy."))
                } else {
                    e
                }
            })?;
            latest.app_package_id
        }
    };
    call_json(
        ctx,
        meta,
        "package-store",
        "packages.get",
        RpcEnvelope::default().param("appId", app_id.as_str()).param("appPackageId", id.to_string()),
    )
    .await
    .map_err(|e| {
        if e.status() == 404 {
            ApiError::new(422, "unknown_package", format!("App {app_id} has no package {id}."))
        } else {
            e
        }
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The app instance a deployment holds: its first deployed component's, else the launch's.
fn placement_of(plan: &Plan, ac: &ApplicationConfiguration, o: &Overrides, app_id: &AppId) -> Placement {
    if let Some(t) = plan.steps.iter().flat_map(|s| s.units.iter()).find_map(|u| u.target.as_ref()) {
        return Placement {
            cluster_id: t.cluster_id.clone(),
            namespace_id: t.namespace.clone(),
            stage_id: t.stage_id.clone(),
            app_instance: t.app_instance.clone(),
        };
    }
    let a = &ac.metadata.annotations;
    let stage_id = o.stage.clone().or_else(|| a.stage_id.clone());
    let app_instance =
        o.app_instance.clone().or_else(|| a.app_instance_name.clone()).unwrap_or_else(|| match &stage_id {
            Some(s) => format!("{s}-{app_id}"),
            None => app_id.to_string(),
        });
    Placement {
        cluster_id: o.cluster.clone().or_else(|| a.cluster_id.clone()).unwrap_or_default(),
        namespace_id: o.namespace.clone().or_else(|| a.namespace_id.clone()).unwrap_or_default(),
        stage_id,
        app_instance,
    }
}

/// `autoEnvironment`: every namespace (and stage in it) the plan deploys to exists in appmeta.
async fn ensure_environment(ctx: &Ctx, meta: &CallMeta, plan: &Plan, p: &Placement) -> Result<(), ApiError> {
    let mut wanted: Vec<(String, Option<String>)> = plan
        .steps
        .iter()
        .flat_map(|s| s.units.iter())
        .filter_map(|u| u.target.as_ref())
        .map(|t| (t.namespace.clone(), t.stage_id.clone()))
        .collect();
    if wanted.is_empty() && !p.namespace_id.is_empty() {
        wanted.push((p.namespace_id.clone(), p.stage_id.clone()));
    }
    wanted.sort();
    wanted.dedup();
    for (ns, stage) in wanted {
        let env = RpcEnvelope::default().param("namespaceId", ns.as_str());
        match ctx.bus.call("appmeta", "namespaces.get", meta, &env, None).await {
            Ok(_) => {}
            Err(e) if e.status() == 404 => {
                let create = RpcEnvelope::with_body(json!({"namespaceId": ns}));
                ignore_conflict(ctx.bus.call("appmeta", "namespaces.create", meta, &create, None).await)?;
            }
            Err(e) => return Err(e),
        }
        if let Some(stage) = stage.filter(|s| !s.is_empty()) {
            let env =
                RpcEnvelope::default().param("namespaceId", ns.as_str()).param("stageId", stage.as_str());
            match ctx.bus.call("appmeta", "stages.get", meta, &env, None).await {
                Ok(_) => {}
                Err(e) if e.status() == 404 => {
                    let create =
                        RpcEnvelope::with_body(json!({"stageId": stage})).param("namespaceId", ns.as_str());
                    ignore_conflict(ctx.bus.call("appmeta", "stages.create", meta, &create, None).await)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// A create that lost a race with another creator is fine.
fn ignore_conflict(r: Result<RpcReply, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status() == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
