//! Building app packages from a build spec: values and local files only — no S3, NATS or database.
//!
//! A build goes like this: the service receives a `build.yaml` (or JSON binders) and any chart
//! archives, and calls [`binders_from_yaml`] / [`binders_from_json`] with the names of the uploaded
//! charts; that reports every problem of the spec at once (`invalid_build`, or
//! `image_build_unsupported` when a container asks for an image build). It may call
//! [`inspect_chart_archive`] on each upload to fail fast. The worker then calls [`assemble`] with
//! the validated binders, the chart files and an empty directory: each binder becomes a component
//! zip (`<TYPE>_<name>.zip` with an OAM Component `meta.yaml` in SREWorks shape, HELM charts under
//! `chart/`), and those are packed with the app `meta.yaml` into the app package zip, which passes
//! [`crate::format::inspect_app_zip`] with strict MD5 checking.
//!
//! - [`version`]: SREWorks version strings (`x.y.z+YYYYMMDDHHMMSSffffff`), their order, and the
//!   next/explicit version rules.

mod assemble;
mod binder;
mod chart;
mod error;
mod limits;
mod oam;
mod validate;
pub mod version;

pub use assemble::{AssembleRequest, AssembledPackage, assemble};
pub use binder::{
    CHART_PART_PREFIX, ChartRepository, ComponentBinder, ComponentSpec, ComponentType, Container,
    ContainerPort, EnvVar, HelmOptions, MAX_COMPONENT_NAME_LEN, WorkloadKind, WorkloadOptions,
    binders_from_json, binders_from_yaml, chart_part_component, check_component_name, parse_build_yaml,
};
pub use chart::{ChartInfo, inspect_chart_archive};
pub use error::BuildError;
pub use limits::BuildLimits;
pub use version::{
    MAX_VERSION_LEN, Version, VersionError, max_version, next_version, normalize_explicit, timestamp,
};
