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
//! Pure: no I/O, so `sreworks render` (a dry run) and the workflow service give the same result.

pub mod field_path;
pub mod model;
pub mod resolve;
pub mod revision;
pub mod template;

pub use model::{ApplicationConfiguration, Component, ParseError};
pub use resolve::{
    BUILTINS, Outcome, Overrides, PackagedComponent, ResolveError, Resolved, resolve, skip_reason,
};
pub use revision::{RevisionName, RevisionNameError, VersionSel};
pub use template::{ProblemKind, TemplateProblem};
