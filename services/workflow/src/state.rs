//! The four lifecycles of the workflow service as pure state machines.
//!
//! Each machine is a state enum, a trigger enum and ONE transition table (the `match` in its
//! `next`). Every accepted transition is an event the service publishes; a rejected one is an
//! [`InvalidTransition`] and changes nothing. State names serialise exactly as SREWorks AppManager
//! spells them (`SCREAMING_SNAKE_CASE`), so its users recognise them; triggers serialise the same way.
//!
//! Conventions shared by the four machines (our decisions where SREWorks differs, marked *ours*):
//! - `Terminate` (operator) from any running state goes to `TERMINATED`. *Ours* for deployments and
//!   components: SREWorks records an operator stop there as `FAILURE`; we keep it distinct so a stop
//!   is not reported as a failure.
//! - `Timeout` (a deadline passed) from any running state goes to `FAILURE`; the service records the
//!   reason `Timeout` beside the state. *Ours*: SREWorks sweeps overdue deployments with a job.
//! - `UnknownError` (an unexpected error in our own processing) goes to `EXCEPTION`.
//! - Terminal states accept nothing except the documented operator exits listed per machine; a late
//!   event for a finished entity is rejected (the service drops it), so history never rewrites.
//!
//! # Deployment (`DeploymentState`, SREWorks `DeployAppStateEnum`)
//!
//! | from | trigger | to |
//! |---|---|---|
//! | `CREATED` | `Start` | `COMPONENT_CHECKING` |
//! | `COMPONENT_CHECKING` | `ComponentsExist` | `BACKUP_CHECKING` |
//! | `COMPONENT_CHECKING` | `ComponentsNotFound` | `PROCESSING_COMPONENT` |
//! | `PROCESSING_COMPONENT` | `ComponentTasksCreated` | `WAITING_COMPONENT` |
//! | `WAITING_COMPONENT` | `ComponentsFinished` | `BACKUP_CHECKING` |
//! | `WAITING_COMPONENT` | `ComponentsFailed` | `FAILURE` |
//! | `BACKUP_CHECKING` | `AppPackageExists` | `PROCESSING` |
//! | `BACKUP_CHECKING` | `AppPackageNotFound` | `BACKING_UP` |
//! | `BACKING_UP` | `BackupSucceeded` | `PROCESSING` |
//! | `BACKING_UP` | `BackupFailed` | `FAILURE` |
//! | `PROCESSING` | `Applied` | `WAITING` |
//! | `WAITING` | `AllSucceeded` | `SUCCESS` |
//! | `WAITING` | `PartialFailed` | `WAIT_FOR_OP` |
//! | `WAITING` | `Update` | `WAITING` |
//! | any running state (`CREATED` … `WAITING`) | `Terminate` | `TERMINATED` |
//! | any running state | `Timeout` | `FAILURE` |
//! | any running state | `UnknownError` | `EXCEPTION` |
//! | any running state | `Rollback` | `FAILURE` |
//! | `WAIT_FOR_OP`, `FAILURE`, `EXCEPTION`, `TERMINATED`, `SUCCESS` | `Retry` | `PROCESSING` |
//! | `WAIT_FOR_OP` | `Rollback` | `FAILURE` |
//! | `WAIT_FOR_OP` | `Terminate` | `TERMINATED` |
//!
//! Terminal: `WAIT_FOR_OP` (settled, waiting for an operator; only the three exits above),
//! `FAILURE`, `EXCEPTION`, `TERMINATED`, `SUCCESS` (only an operator's `Retry`, *ours*: "terminate,
//! then retry" restarts cleanly, and a retry from a chosen task re-runs a succeeded deployment; the
//! service refuses a plain retry of a `SUCCESS` deployment, which has nothing to retry). `Retry` from `WAIT_FOR_OP`
//! re-applies the components (`PROCESSING`, *ours*; SREWorks returns to `WAITING`), since a retry
//! must act, not only watch. `Rollback` ends this deployment as `FAILURE`; the service starts a
//! new deployment of the previous package.
//!
//! # Component (`ComponentState`, SREWorks `DeployComponentStateEnum`)
//!
//! | from | trigger | to |
//! |---|---|---|
//! | `CREATED` | `Start` | `PROCESSING` |
//! | `PROCESSING` | `Applied` | `RUNNING` |
//! | `PROCESSING` | `Failed` | `WAIT_FOR_OP` |
//! | `RUNNING` | `Healthy` | `SUCCESS` |
//! | `RUNNING` | `Failed` | `WAIT_FOR_OP` |
//! | `RUNNING` | `Update` | `RUNNING` |
//! | `CREATED`, `PROCESSING`, `RUNNING` | `Terminate` | `TERMINATED` |
//! | `CREATED`, `PROCESSING`, `RUNNING` | `Timeout` | `FAILURE` |
//! | `CREATED`, `PROCESSING`, `RUNNING` | `UnknownError` | `EXCEPTION` |
//! | `WAIT_FOR_OP`, `EXCEPTION`, `FAILURE`, `TERMINATED` | `Retry` | `PROCESSING` |
//! | `WAIT_FOR_OP`, `EXCEPTION` | `Terminate` | `TERMINATED` |
//! | any terminal state | `Reset` | `CREATED` |
//!
//! Terminal: `WAIT_FOR_OP` and `EXCEPTION` (`Retry` / `Terminate`, as in SREWorks), `FAILURE`,
//! `TERMINATED` (`Retry`, *ours*), `SUCCESS`; every terminal state accepts `Reset` (*ours*: a
//! retry from an earlier task deploys the component again). `TERMINATED` is *ours* (see above).
//!
//! # Workflow instance (`WorkflowState`, SREWorks `WorkflowInstanceStateEnum`)
//!
//! | from | trigger | to |
//! |---|---|---|
//! | `PENDING` | `Start` | `PREPROCESSING` |
//! | `PREPROCESSING` | `Preprocessed` | `RUNNING` |
//! | `RUNNING` | `Suspend` | `SUSPEND` |
//! | `SUSPEND` | `Resume` | `RUNNING` |
//! | `RUNNING`, `SUSPEND` | `Succeeded` | `SUCCESS` |
//! | `RUNNING`, `SUSPEND` | `Failed` | `FAILURE` |
//! | `PENDING`, `PREPROCESSING`, `RUNNING`, `SUSPEND` | `UnknownError` | `EXCEPTION` |
//! | `PENDING`, `PREPROCESSING`, `RUNNING`, `SUSPEND` | `Terminate` | `TERMINATED` |
//! | `PENDING`, `PREPROCESSING`, `RUNNING`, `SUSPEND` | `Timeout` | `FAILURE` |
//! | `SUCCESS`, `FAILURE`, `EXCEPTION`, `TERMINATED` | `Retry` | `RUNNING` |
//!
//! A suspended instance still records the outcome of the task that was in flight when it was
//! suspended (`Succeeded` / `Failed` from `SUSPEND`), as SREWorks does. `Retry` follows SREWorks:
//! any finished instance may be re-run (the service retries from a chosen task, or from the failed
//! one); it returns to `RUNNING`, skipping preprocessing. Unlike SREWorks, a `TERMINATED` instance
//! accepts no late task outcomes: a stop is final until an operator retries.
//!
//! # Task (`TaskState`, SREWorks `WorkflowTaskStateEnum`)
//!
//! | from | trigger | to |
//! |---|---|---|
//! | `PENDING` | `Start` | `RUNNING` |
//! | `RUNNING` | `Processed` | `WAITING` |
//! | `RUNNING` | `ProcessedSuspend` | `WAITING_SUSPEND` |
//! | `RUNNING` | `Suspend` | `RUNNING_SUSPEND` |
//! | `RUNNING_SUSPEND` | `Resume` | `RUNNING` |
//! | `WAITING` | `Suspend` | `WAITING_SUSPEND` |
//! | `WAITING_SUSPEND` | `Resume` | `WAITING` |
//! | `WAITING` | `Finished` | `SUCCESS` |
//! | `WAITING` | `Update` | `WAITING` |
//! | `RUNNING`, `WAITING` | `Failed` | `FAILURE` |
//! | `RUNNING`, `WAITING` | `UnknownError` | `EXCEPTION` |
//! | `PENDING`, `RUNNING`, `WAITING`, `RUNNING_SUSPEND`, `WAITING_SUSPEND` | `Terminate` | `TERMINATED` |
//! | `PENDING`, `RUNNING`, `WAITING`, `RUNNING_SUSPEND`, `WAITING_SUSPEND` | `Timeout` | `FAILURE` |
//! | `SUCCESS`, `FAILURE`, `EXCEPTION`, `TERMINATED` | `Retry` | `RUNNING` |
//! | `SUCCESS`, `FAILURE`, `EXCEPTION`, `TERMINATED` | `Reset` | `PENDING` |
//!
//! `Reset` (*ours*) is a retry from an earlier task: this task waits to run again. `RUNNING` is the task's own function running; `WAITING` is waiting for the deployment that
//! function started. `ProcessedSuspend` is a function that finished and asks to pause the workflow
//! (an approval step). Suspended tasks only resume, terminate or time out.

use serde::{Deserialize, Serialize};

/// A trigger that the current state does not accept. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{machine}: {state} does not accept {trigger}")]
pub struct InvalidTransition {
    /// Which machine: `deployment`, `component`, `workflow` or `task`.
    pub machine: &'static str,
    /// The state's SREWorks name.
    pub state: &'static str,
    /// The trigger's wire name.
    pub trigger: &'static str,
}

/// Declares a fieldless enum with its list of all values and its wire name per value.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire (serde) name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// State of an application deployment (SREWorks `DeployAppStateEnum`, plus `TERMINATED`).
    DeploymentState {
        /// Accepted, not started.
        Created => "CREATED",
        /// Checking that every component package exists.
        ComponentChecking => "COMPONENT_CHECKING",
        /// Starting builds of the missing component packages.
        ProcessingComponent => "PROCESSING_COMPONENT",
        /// Waiting for the component package builds.
        WaitingComponent => "WAITING_COMPONENT",
        /// Checking whether the application package is stored.
        BackupChecking => "BACKUP_CHECKING",
        /// Storing the application package.
        BackingUp => "BACKING_UP",
        /// Sending the components to their executors.
        Processing => "PROCESSING",
        /// Waiting for every component to finish.
        Waiting => "WAITING",
        /// Some components failed; an operator retries, rolls back or terminates.
        WaitForOp => "WAIT_FOR_OP",
        /// Every component succeeded.
        Success => "SUCCESS",
        /// Failed (including a deadline passed or a rollback).
        Failure => "FAILURE",
        /// An unexpected error in our own processing.
        Exception => "EXCEPTION",
        /// Stopped by an operator.
        Terminated => "TERMINATED",
    }
}

named_enum! {
    /// What happened to a deployment.
    DeploymentTrigger {
        /// The service picked the deployment up.
        Start => "START",
        /// All component packages exist.
        ComponentsExist => "COMPONENTS_EXIST",
        /// Some component packages must be built first.
        ComponentsNotFound => "COMPONENTS_NOT_FOUND",
        /// The component package builds were started.
        ComponentTasksCreated => "COMPONENT_TASKS_CREATED",
        /// The component package builds finished.
        ComponentsFinished => "COMPONENTS_FINISHED",
        /// A component package build failed.
        ComponentsFailed => "COMPONENTS_FAILED",
        /// The application package is stored.
        AppPackageExists => "APP_PACKAGE_EXISTS",
        /// The application package must be stored first.
        AppPackageNotFound => "APP_PACKAGE_NOT_FOUND",
        /// Storing the application package succeeded.
        BackupSucceeded => "BACKUP_SUCCEEDED",
        /// Storing the application package failed.
        BackupFailed => "BACKUP_FAILED",
        /// Every component was sent to its executor.
        Applied => "APPLIED",
        /// Every component succeeded.
        AllSucceeded => "ALL_SUCCEEDED",
        /// Some component ended in failure.
        PartialFailed => "PARTIAL_FAILED",
        /// Progress of a component (no state change).
        Update => "UPDATE",
        /// Operator: retry the failed components.
        Retry => "RETRY",
        /// Operator: roll back to the previous package.
        Rollback => "ROLLBACK",
        /// Operator: stop.
        Terminate => "TERMINATE",
        /// The deadline passed.
        Timeout => "TIMEOUT",
        /// An unexpected error in our own processing.
        UnknownError => "UNKNOWN_ERROR",
    }
}

impl DeploymentState {
    /// The state a new deployment starts in.
    pub const INITIAL: Self = Self::Created;

    /// The state after `trigger`, or why `trigger` is not accepted here.
    pub fn next(self, trigger: DeploymentTrigger) -> Result<Self, InvalidTransition> {
        use DeploymentState as S;
        use DeploymentTrigger as T;
        let running = !self.is_terminal();
        let to = match (self, trigger) {
            (S::Created, T::Start) => S::ComponentChecking,
            (S::ComponentChecking, T::ComponentsExist) => S::BackupChecking,
            (S::ComponentChecking, T::ComponentsNotFound) => S::ProcessingComponent,
            (S::ProcessingComponent, T::ComponentTasksCreated) => S::WaitingComponent,
            (S::WaitingComponent, T::ComponentsFinished) => S::BackupChecking,
            (S::WaitingComponent, T::ComponentsFailed) => S::Failure,
            (S::BackupChecking, T::AppPackageExists) => S::Processing,
            (S::BackupChecking, T::AppPackageNotFound) => S::BackingUp,
            (S::BackingUp, T::BackupSucceeded) => S::Processing,
            (S::BackingUp, T::BackupFailed) => S::Failure,
            (S::Processing, T::Applied) => S::Waiting,
            (S::Waiting, T::AllSucceeded) => S::Success,
            (S::Waiting, T::PartialFailed) => S::WaitForOp,
            (S::Waiting, T::Update) => S::Waiting,
            (_, T::Terminate) if running => S::Terminated,
            (_, T::Timeout) if running => S::Failure,
            (_, T::UnknownError) if running => S::Exception,
            (_, T::Rollback) if running => S::Failure,
            (S::WaitForOp, T::Retry) => S::Processing,
            (S::Failure | S::Exception | S::Terminated | S::Success, T::Retry) => S::Processing,
            (S::WaitForOp, T::Rollback) => S::Failure,
            (S::WaitForOp, T::Terminate) => S::Terminated,
            _ => return Err(invalid("deployment", self.as_str(), trigger.as_str())),
        };
        Ok(to)
    }

    /// Whether the deployment has settled: nothing moves it on except an operator's exit from
    /// `WAIT_FOR_OP`.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::WaitForOp | Self::Success | Self::Failure | Self::Exception | Self::Terminated)
    }
}

named_enum! {
    /// State of one component of a deployment (SREWorks `DeployComponentStateEnum`, plus `TERMINATED`).
    ComponentState {
        /// Accepted, not started.
        Created => "CREATED",
        /// Being applied by its executor.
        Processing => "PROCESSING",
        /// Applied; waiting for it to become healthy.
        Running => "RUNNING",
        /// Failed; an operator retries or terminates.
        WaitForOp => "WAIT_FOR_OP",
        /// Applied and healthy.
        Success => "SUCCESS",
        /// Failed for good (including a deadline passed).
        Failure => "FAILURE",
        /// An unexpected error in our own processing.
        Exception => "EXCEPTION",
        /// Stopped by an operator.
        Terminated => "TERMINATED",
    }
}

named_enum! {
    /// What happened to a component.
    ComponentTrigger {
        /// Sent to the executor.
        Start => "START",
        /// The executor applied it.
        Applied => "APPLIED",
        /// It reports healthy.
        Healthy => "HEALTHY",
        /// Applying it or its health failed.
        Failed => "FAILED",
        /// Progress (no state change).
        Update => "UPDATE",
        /// Operator: apply again.
        Retry => "RETRY",
        /// Operator: a retry from an earlier task makes the component wait to be deployed again.
        Reset => "RESET",
        /// Operator: stop.
        Terminate => "TERMINATE",
        /// The deadline passed.
        Timeout => "TIMEOUT",
        /// An unexpected error in our own processing.
        UnknownError => "UNKNOWN_ERROR",
    }
}

impl ComponentState {
    /// The state a new component starts in.
    pub const INITIAL: Self = Self::Created;

    /// The state after `trigger`, or why `trigger` is not accepted here.
    pub fn next(self, trigger: ComponentTrigger) -> Result<Self, InvalidTransition> {
        use ComponentState as S;
        use ComponentTrigger as T;
        let running = !self.is_terminal();
        let to = match (self, trigger) {
            (S::Created, T::Start) => S::Processing,
            (S::Processing, T::Applied) => S::Running,
            (S::Processing | S::Running, T::Failed) => S::WaitForOp,
            (S::Running, T::Healthy) => S::Success,
            (S::Running, T::Update) => S::Running,
            (_, T::Terminate) if running => S::Terminated,
            (_, T::Timeout) if running => S::Failure,
            (_, T::UnknownError) if running => S::Exception,
            (S::WaitForOp | S::Exception | S::Failure | S::Terminated, T::Retry) => S::Processing,
            (S::WaitForOp | S::Exception, T::Terminate) => S::Terminated,
            (_, T::Reset) if !running => S::Created,
            _ => return Err(invalid("component", self.as_str(), trigger.as_str())),
        };
        Ok(to)
    }

    /// Whether the component has settled: nothing moves it on except an operator's `Retry` or
    /// `Terminate` from `WAIT_FOR_OP` or `EXCEPTION`.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::WaitForOp | Self::Success | Self::Failure | Self::Exception | Self::Terminated)
    }
}

named_enum! {
    /// State of a workflow instance (SREWorks `WorkflowInstanceStateEnum`).
    WorkflowState {
        /// Accepted, not started.
        Pending => "PENDING",
        /// Rendering the workflow's configuration.
        Preprocessing => "PREPROCESSING",
        /// Running its tasks.
        Running => "RUNNING",
        /// Paused by an operator or a task.
        Suspend => "SUSPEND",
        /// Every task succeeded.
        Success => "SUCCESS",
        /// A task failed (or a deadline passed).
        Failure => "FAILURE",
        /// An unexpected error in our own processing.
        Exception => "EXCEPTION",
        /// Stopped by an operator.
        Terminated => "TERMINATED",
    }
}

named_enum! {
    /// What happened to a workflow instance.
    WorkflowTrigger {
        /// The service picked it up.
        Start => "START",
        /// Preprocessing finished.
        Preprocessed => "PREPROCESSED",
        /// Pause (operator or task).
        Suspend => "SUSPEND",
        /// Operator: continue.
        Resume => "RESUME",
        /// Every task succeeded.
        Succeeded => "SUCCEEDED",
        /// A task failed.
        Failed => "FAILED",
        /// Operator: re-run (from a chosen task or the failed one).
        Retry => "RETRY",
        /// Operator: stop.
        Terminate => "TERMINATE",
        /// The deadline passed.
        Timeout => "TIMEOUT",
        /// An unexpected error in our own processing.
        UnknownError => "UNKNOWN_ERROR",
    }
}

impl WorkflowState {
    /// The state a new instance starts in.
    pub const INITIAL: Self = Self::Pending;

    /// The state after `trigger`, or why `trigger` is not accepted here.
    pub fn next(self, trigger: WorkflowTrigger) -> Result<Self, InvalidTransition> {
        use WorkflowState as S;
        use WorkflowTrigger as T;
        let running = !self.is_terminal();
        let to = match (self, trigger) {
            (S::Pending, T::Start) => S::Preprocessing,
            (S::Preprocessing, T::Preprocessed) => S::Running,
            (S::Running, T::Suspend) => S::Suspend,
            (S::Suspend, T::Resume) => S::Running,
            (S::Running | S::Suspend, T::Succeeded) => S::Success,
            (S::Running | S::Suspend, T::Failed) => S::Failure,
            (_, T::UnknownError) if running => S::Exception,
            (_, T::Terminate) if running => S::Terminated,
            (_, T::Timeout) if running => S::Failure,
            (_, T::Retry) if !running => S::Running,
            _ => return Err(invalid("workflow", self.as_str(), trigger.as_str())),
        };
        Ok(to)
    }

    /// Whether the instance has finished: only an operator's `Retry` moves it on.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Exception | Self::Terminated)
    }
}

named_enum! {
    /// State of one task of a workflow instance (SREWorks `WorkflowTaskStateEnum`).
    TaskState {
        /// Not started.
        Pending => "PENDING",
        /// Its function is running.
        Running => "RUNNING",
        /// Its function finished; waiting for the deployment it started.
        Waiting => "WAITING",
        /// Paused while `RUNNING`.
        RunningSuspend => "RUNNING_SUSPEND",
        /// Paused while `WAITING`.
        WaitingSuspend => "WAITING_SUSPEND",
        /// Finished.
        Success => "SUCCESS",
        /// Failed (or a deadline passed).
        Failure => "FAILURE",
        /// An unexpected error in our own processing.
        Exception => "EXCEPTION",
        /// Stopped by an operator.
        Terminated => "TERMINATED",
    }
}

named_enum! {
    /// What happened to a task.
    TaskTrigger {
        /// Its function was started.
        Start => "START",
        /// Its function finished; now wait for its deployment.
        Processed => "PROCESSED",
        /// Its function finished and asks to pause the workflow.
        ProcessedSuspend => "PROCESSED_SUSPEND",
        /// Pause (operator).
        Suspend => "SUSPEND",
        /// Operator: continue.
        Resume => "RESUME",
        /// Its deployment succeeded.
        Finished => "FINISHED",
        /// Its function or its deployment failed.
        Failed => "FAILED",
        /// Progress of its deployment (no state change).
        Update => "UPDATE",
        /// Operator: run it again.
        Retry => "RETRY",
        /// Operator: a retry from an earlier task makes this one wait to run again.
        Reset => "RESET",
        /// Operator: stop.
        Terminate => "TERMINATE",
        /// The deadline passed.
        Timeout => "TIMEOUT",
        /// An unexpected error in our own processing.
        UnknownError => "UNKNOWN_ERROR",
    }
}

impl TaskState {
    /// The state a new task starts in.
    pub const INITIAL: Self = Self::Pending;

    /// The state after `trigger`, or why `trigger` is not accepted here.
    pub fn next(self, trigger: TaskTrigger) -> Result<Self, InvalidTransition> {
        use TaskState as S;
        use TaskTrigger as T;
        let running = !self.is_terminal();
        let to = match (self, trigger) {
            (S::Pending, T::Start) => S::Running,
            (S::Running, T::Processed) => S::Waiting,
            (S::Running, T::ProcessedSuspend) => S::WaitingSuspend,
            (S::Running, T::Suspend) => S::RunningSuspend,
            (S::RunningSuspend, T::Resume) => S::Running,
            (S::Waiting, T::Suspend) => S::WaitingSuspend,
            (S::WaitingSuspend, T::Resume) => S::Waiting,
            (S::Waiting, T::Finished) => S::Success,
            (S::Waiting, T::Update) => S::Waiting,
            (S::Running | S::Waiting, T::Failed) => S::Failure,
            (S::Running | S::Waiting, T::UnknownError) => S::Exception,
            (_, T::Terminate) if running => S::Terminated,
            (_, T::Timeout) if running => S::Failure,
            (_, T::Retry) if !running => S::Running,
            (_, T::Reset) if !running => S::Pending,
            _ => return Err(invalid("task", self.as_str(), trigger.as_str())),
        };
        Ok(to)
    }

    /// Whether the task has finished: only an operator's `Retry` moves it on.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Exception | Self::Terminated)
    }
}

fn invalid(machine: &'static str, state: &'static str, trigger: &'static str) -> InvalidTransition {
    InvalidTransition { machine, state, trigger }
}

#[cfg(test)]
mod tests;
