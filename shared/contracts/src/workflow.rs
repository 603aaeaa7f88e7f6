//! The workflow service's resources: deployments (SREWorks "deploy apps"), the components each one
//! deploys, and the workflow instance and tasks that drive it; plus the events announcing every
//! state change.
//!
//! States are SREWorks AppManager's names (`SUCCESS`, `WAIT_FOR_OP`, `RUNNING_SUSPEND`…), carried as
//! strings: the state machines that produce them live in the workflow service, which tests that every
//! state has its event here.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppId;

/// Query of `POST /v1/deployments/launch`. The body is the `ApplicationConfiguration` (YAML or JSON).
/// Each placement parameter wins over what the file says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LaunchQuery {
    /// The app package to deploy. Else `packageVersion`, else the file's
    /// `metadata.annotations.appPackageId`, else the app's newest package.
    #[serde(default)]
    pub app_package_id: Option<u64>,
    /// The app; else `metadata.annotations.appId`.
    #[serde(default)]
    pub app_id: Option<AppId>,
    /// The app package by version instead of id.
    #[serde(default)]
    pub package_version: Option<String>,
    #[serde(default)]
    pub cluster_id: Option<String>,
    #[serde(default)]
    pub namespace_id: Option<String>,
    #[serde(default)]
    pub stage_id: Option<String>,
    #[serde(default)]
    pub app_instance_name: Option<String>,
    /// Create the namespaces and stages the launch deploys to in appmeta when they do not exist
    /// (needs a role that may create them). Default false: they are not looked up.
    #[serde(default)]
    pub auto_environment: Option<bool>,
}

/// Query of `POST /v1/deployments/{deployAppId}/replay|retry|rollback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeploymentActionQuery {
    /// Act even though a rollback pinned the app instance to an earlier revision.
    #[serde(default)]
    pub force: Option<bool>,
}

/// The answer to a launch, replay or rollback: the deployment exists and runs asynchronously.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLaunched {
    pub deploy_app_id: u64,
    pub workflow_instance_id: u64,
    /// The deployment's state once the launch committed: `CREATED` when it waits for the app
    /// instance's running deployment to end (`queued`), else where the first pass left it
    /// (usually `WAITING`).
    pub state: String,
    /// True when another deployment of the same app instance is running and this one waits.
    pub queued: bool,
    /// Things ignored on the way (skipped addon components, unused parameters…).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// How a deployment came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentKind {
    /// `POST /v1/deployments/launch`.
    Launch,
    /// `POST /v1/deployments/{id}/replay`.
    Replay,
    /// `POST /v1/deployments/{id}/rollback` or a `rollout-promotion` step with `rollback: true`.
    Rollback,
}

/// A deployment (SREWorks `DeployApp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentOut {
    pub deploy_app_id: u64,
    pub app_id: AppId,
    pub app_package_id: u64,
    pub package_version: String,
    pub cluster_id: String,
    pub namespace_id: String,
    #[serde(default)]
    pub stage_id: Option<String>,
    pub app_instance_name: String,
    /// `CREATED`, `COMPONENT_CHECKING`, …, `PROCESSING`, `WAITING`, `SUCCESS`, `WAIT_FOR_OP`,
    /// `FAILURE`, `EXCEPTION`, `TERMINATED`.
    pub state: String,
    /// Machine reason of a failure (`Timeout`, `ComponentFailed`, `RolledBack`, …).
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    pub kind: DeploymentKind,
    /// The deployment this one replays or rolls back to.
    #[serde(default)]
    pub source_deploy_app_id: Option<u64>,
    /// Set on a rollback: the app instance stays on this revision; older deployments are not
    /// retried or replayed onto it without `force`.
    pub pinned: bool,
    pub workflow_instance_id: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the deployment fails with reason `Timeout` if it has not ended.
    #[serde(default)]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// A component deployed by a deployment (SREWorks `DeployComponent`), one per step that deploys it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployComponentOut {
    pub deploy_component_id: u64,
    pub deploy_app_id: u64,
    /// The task (step) that deploys it.
    pub task_id: u64,
    pub component_type: String,
    pub component_name: String,
    pub component_instance: String,
    pub cluster_id: String,
    pub namespace_id: String,
    #[serde(default)]
    pub stage_id: Option<String>,
    /// `CREATED`, `PROCESSING`, `RUNNING`, `SUCCESS`, `WAIT_FOR_OP`, `FAILURE`, `EXCEPTION`,
    /// `TERMINATED`; a skipped component (an addon) is `SUCCESS` with `skipReason`.
    pub state: String,
    /// The revision sent to the executor (increases per component instance).
    #[serde(default)]
    pub revision: Option<u64>,
    /// How many times it was sent (retries count).
    pub attempt: u32,
    #[serde(default)]
    pub command_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub skip_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A task of a workflow instance: one step of `spec.workflow.steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOut {
    pub task_id: u64,
    /// Its index in `spec.workflow.steps` (0 for the implicit `deploy` step).
    pub step_index: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// `deploy`, `apply-components`, `suspend`, `rollout-promotion`, `webhook`.
    pub task_type: String,
    /// `PENDING`, `RUNNING`, `WAITING`, `RUNNING_SUSPEND`, `WAITING_SUSPEND`, `SUCCESS`, `FAILURE`,
    /// `EXCEPTION`, `TERMINATED`.
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// How many times it started (retries count).
    pub attempt: u32,
    /// The values of its `inputs` when it started (`parameterKey` → value).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Value,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// A workflow instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowOut {
    pub workflow_instance_id: u64,
    pub deploy_app_id: u64,
    pub app_id: AppId,
    /// `PENDING`, `PREPROCESSING`, `RUNNING`, `SUSPEND`, `SUCCESS`, `FAILURE`, `EXCEPTION`,
    /// `TERMINATED`.
    pub state: String,
    /// `STEP_BY_STEP` or `DAG`.
    pub mode: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The workflow context: values set with `PUT .../context` (e.g. `continueRollout`,
    /// `rollback`), step outputs and component data outputs.
    #[schema(value_type = Object)]
    pub context: Value,
    pub tasks: Vec<TaskOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// `GET /v1/deployments/{deployAppId}`: the deployment, its components and its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDetailOut {
    #[serde(flatten)]
    pub deployment: DeploymentOut,
    pub components: Vec<DeployComponentOut>,
    pub workflow: WorkflowOut,
}

/// Filters of `GET /v1/deployments`; newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeploymentListQuery {
    #[serde(default)]
    pub app_id: Option<AppId>,
    #[serde(default)]
    pub app_instance_name: Option<String>,
    /// Only deployments in this state.
    #[serde(default)]
    pub state: Option<String>,
    /// 1-based page number.
    #[serde(default)]
    pub page: Option<u64>,
    /// Items per page, 1–500 (default 20).
    #[serde(default)]
    pub page_size: Option<u64>,
}

/// Query of `PUT /v1/workflows/{workflowInstanceId}/retry-from-task`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetryFromTaskQuery {
    /// The task to restart from; it and every later task run again with the context saved when it
    /// first started.
    pub task_id: u64,
}

/// Payload of `deployment.app.*` events: the deployment after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentChanged {
    /// The state before the change (absent for `created`).
    #[serde(default)]
    pub previous_state: Option<String>,
    #[serde(flatten)]
    pub deployment: DeploymentOut,
}

/// Payload of `deployment.component.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployComponentChanged {
    #[serde(default)]
    pub previous_state: Option<String>,
    pub app_id: AppId,
    pub app_instance_name: String,
    #[serde(flatten)]
    pub component: DeployComponentOut,
}

/// Payload of `workflow.instance.*` events (without its tasks; those have their own events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowChanged {
    #[serde(default)]
    pub previous_state: Option<String>,
    pub workflow_instance_id: u64,
    pub deploy_app_id: u64,
    pub app_id: AppId,
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Payload of `workflow.task.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskChanged {
    #[serde(default)]
    pub previous_state: Option<String>,
    pub workflow_instance_id: u64,
    pub deploy_app_id: u64,
    pub app_id: AppId,
    #[serde(flatten)]
    pub task: TaskOut,
}

/// The body the `webhook` step POSTs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// `sreworks.workflow.webhook`.
    #[serde(rename = "type")]
    pub type_: String,
    pub deploy_app_id: u64,
    pub workflow_instance_id: u64,
    pub task_id: u64,
    #[serde(default)]
    pub task_name: Option<String>,
    pub app_id: AppId,
    pub app_instance_name: String,
    pub cluster_id: String,
    pub namespace_id: String,
    #[serde(default)]
    pub stage_id: Option<String>,
    /// The step's `properties` other than `url`.
    #[schema(value_type = Object)]
    pub properties: Value,
    /// The workflow context when the step started.
    #[schema(value_type = Object)]
    pub context: Value,
}

/// Event entities of the workflow service and their states, for the event catalogue.
pub const DEPLOYMENT_STATES: [&str; 13] = [
    "CREATED",
    "COMPONENT_CHECKING",
    "PROCESSING_COMPONENT",
    "WAITING_COMPONENT",
    "BACKUP_CHECKING",
    "BACKING_UP",
    "PROCESSING",
    "WAITING",
    "WAIT_FOR_OP",
    "SUCCESS",
    "FAILURE",
    "EXCEPTION",
    "TERMINATED",
];
/// Component states.
pub const COMPONENT_STATES: [&str; 8] =
    ["CREATED", "PROCESSING", "RUNNING", "WAIT_FOR_OP", "SUCCESS", "FAILURE", "EXCEPTION", "TERMINATED"];
/// Workflow instance states.
pub const WORKFLOW_STATES: [&str; 8] =
    ["PENDING", "PREPROCESSING", "RUNNING", "SUSPEND", "SUCCESS", "FAILURE", "EXCEPTION", "TERMINATED"];
/// Task states.
pub const TASK_STATES: [&str; 9] = [
    "PENDING",
    "RUNNING",
    "WAITING",
    "RUNNING_SUSPEND",
    "WAITING_SUSPEND",
    "SUCCESS",
    "FAILURE",
    "EXCEPTION",
    "TERMINATED",
];

/// The event action announcing that an entity entered `state`: the state in kebab case, except
/// `SUCCESS` → `succeeded` and `FAILURE` → `failed` (`workflow.instance.succeeded`).
pub fn state_action(state: &str) -> String {
    match state {
        "SUCCESS" => "succeeded".into(),
        "FAILURE" => "failed".into(),
        s => s.to_ascii_lowercase().replace('_', "-"),
    }
}
