//! Rows → the wire types of `sw_contracts::workflow`.

use serde_json::Value;
use sw_contracts::AppId;
use sw_contracts::workflow::{
    DeployComponentOut, DeploymentDetailOut, DeploymentKind, DeploymentOut, TaskOut, WorkflowOut,
};

use crate::store::{ComponentRow, DeploymentRow, TaskRow};

/// The app id of a row (written from a parsed [`AppId`], so it parses back; a row edited by hand
/// that does not is shown as it is).
pub fn app_id(d: &DeploymentRow) -> AppId {
    parse_app_id(&d.app_id)
}

/// A stored app id (written from a valid one; anything else reads as `invalid`).
pub fn parse_app_id(raw: &str) -> AppId {
    AppId::parse(raw).unwrap_or_else(|_| AppId::parse("invalid").expect("a valid literal"))
}

pub fn kind(s: &str) -> DeploymentKind {
    match s {
        "REPLAY" => DeploymentKind::Replay,
        "ROLLBACK" => DeploymentKind::Rollback,
        _ => DeploymentKind::Launch,
    }
}

pub fn kind_str(k: DeploymentKind) -> &'static str {
    match k {
        DeploymentKind::Launch => "LAUNCH",
        DeploymentKind::Replay => "REPLAY",
        DeploymentKind::Rollback => "ROLLBACK",
    }
}

pub fn deployment_out(d: &DeploymentRow) -> DeploymentOut {
    DeploymentOut {
        deploy_app_id: d.id as u64,
        app_id: app_id(d),
        app_package_id: d.app_package_id as u64,
        package_version: d.package_version.clone(),
        cluster_id: d.cluster_id.clone(),
        namespace_id: d.namespace_id.clone(),
        stage_id: d.stage_id.clone(),
        app_instance_name: d.app_instance.clone(),
        state: d.state.clone(),
        reason: d.reason.clone(),
        message: d.message.clone(),
        kind: kind(&d.kind),
        source_deploy_app_id: d.source_id.map(|x| x as u64),
        pinned: d.pinned,
        workflow_instance_id: d.id as u64,
        created_by: d.created_by.clone(),
        created_at: d.created_at,
        updated_at: d.updated_at,
        finished_at: d.finished_at,
        deadline_at: d.deadline_at,
    }
}

pub fn task_out(t: &TaskRow) -> TaskOut {
    TaskOut {
        task_id: t.id as u64,
        step_index: t.step_index.max(0) as u32,
        name: t.name.clone(),
        task_type: t.task_type.clone(),
        state: t.state.clone(),
        reason: t.reason.clone(),
        message: t.message.clone(),
        attempt: t.attempt.max(0) as u32,
        inputs: t
            .inputs
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Object(Default::default())),
        started_at: t.started_at,
        finished_at: t.finished_at,
        deadline_at: t.deadline_at,
    }
}

pub fn component_out(c: &ComponentRow) -> DeployComponentOut {
    DeployComponentOut {
        deploy_component_id: c.id as u64,
        deploy_app_id: c.deployment_id as u64,
        task_id: c.task_id as u64,
        component_type: c.component_type.clone(),
        component_name: c.component_name.clone(),
        component_instance: c.component_instance.clone(),
        cluster_id: c.cluster_id.clone(),
        namespace_id: c.namespace_id.clone(),
        stage_id: c.stage_id.clone(),
        state: c.state.clone(),
        revision: c.revision.map(|r| r as u64),
        attempt: c.attempt.max(0) as u32,
        command_id: c.command_id.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        skip_reason: c.skip_reason.clone(),
        updated_at: c.updated_at,
    }
}

pub fn workflow_out(d: &DeploymentRow, tasks: &[TaskRow]) -> WorkflowOut {
    WorkflowOut {
        workflow_instance_id: d.id as u64,
        deploy_app_id: d.id as u64,
        app_id: app_id(d),
        state: d.wf_state.clone(),
        mode: d.wf_mode.clone(),
        reason: d.wf_reason.clone(),
        message: d.wf_message.clone(),
        context: serde_json::from_str(&d.wf_context).unwrap_or(Value::Object(Default::default())),
        tasks: tasks.iter().map(task_out).collect(),
        created_at: d.created_at,
        updated_at: d.updated_at,
        finished_at: d.wf_finished_at,
        deadline_at: d.deadline_at,
    }
}

pub fn detail(d: &DeploymentRow, tasks: &[TaskRow], comps: &[ComponentRow]) -> DeploymentDetailOut {
    DeploymentDetailOut {
        deployment: deployment_out(d),
        components: comps.iter().map(component_out).collect(),
        workflow: workflow_out(d, tasks),
    }
}
