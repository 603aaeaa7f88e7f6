//! SREWorks `ApplicationConfiguration` (`core.oam.dev/v1alpha2`, the "launch YAML"): the model,
//! and resolving its components into what the k8s executor renders.
//!
//! How a launch file moves through this crate:
//! 1. [`ApplicationConfiguration::from_yaml`] parses it tolerantly ([`model`]): unknown fields
//!    are kept, unquoted `{{ x }}` is read back as text, and each `revisionName` is parsed into
//!    a [`RevisionName`] (`TYPE|name|version`).
//! 2. For each component, in launch order, the caller looks up what the app package holds for
//!    it (the `spec.workload` of the component's `meta.yaml`, and its version) and calls
//!    [`resolve()`], which returns [`Outcome::Skip`] for types the executor does not deploy, or the
//!    [`sw_contracts::executor::ComponentTarget`] and
//!    [`sw_contracts::executor::RenderedComponent`] of an `executor` apply command: placement
//!    decided, Jinja templates (`{{ Global.X }}`) rendered with minijinja ([`template`]),
//!    `toFieldPaths` applied ([`mod@resolve`]'s module docs give the precedence rules).
//!
//! ## Launch validation
//!
//! Before anything is deployed, [`validate_launch`] ([`mod@plan`]) checks the whole file and
//! returns every problem at once, each with a stable code for a 422: component types the
//! executor cannot deploy (`HELM`, `ABM_HELM`, `ABM_KUSTOMIZE`, unknown ones; the addon types are
//! skipped, not refused), duplicate components, unknown or cyclic dependencies, and workflow
//! problems (unknown step types, duplicate steps or outputs, unknown inputs, cycles). Accepted, it
//! gives the [`LaunchPlan`]: the components in dependency order (a dependency on a skipped addon
//! is satisfied) and the steps in the order they run (`spec.workflow.mode`: `STEP_BY_STEP`, the
//! default, or `DAG`; without `spec.workflow`, one `deploy` step).
//!
//! Pure: no I/O, so `sreworks render` (a dry run) and the workflow service give the same result.

pub mod field_path;
pub mod model;
pub mod plan;
pub mod resolve;
pub mod revision;
pub mod template;

pub use model::{ApplicationConfiguration, Component, ParseError};
pub use plan::{
    ADDON_COMPONENT_TYPES, ComponentAction, LaunchError, LaunchPlan, PlannedComponent, PlannedStep, StepType,
    WorkflowMode, WorkflowPlan, topo_order, validate_launch,
};
pub use resolve::{
    BUILTINS, Outcome, Overrides, PackagedComponent, ResolveError, Resolved, resolve, skip_reason,
};
pub use revision::{RevisionName, RevisionNameError, VersionSel};
pub use template::{ProblemKind, TemplateProblem};
