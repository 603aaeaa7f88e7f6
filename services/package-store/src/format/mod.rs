//! The SREWorks app-package format and its safe inspection.
//!
//! # The format
//! An app package is a zip holding:
//! - `meta.yaml` at the root: `appId`, `packageVersion`, `packageCreator`, `tags`, and
//!   `componentPackages[]` (`componentType`, `componentName`, `packageVersion`, `relativePath`,
//!   `packageMd5`, `packageExt` — the OAM Component as a YAML string — `packageOptions`, …);
//! - one component zip per `componentPackages[]`, at `relativePath`, named `<TYPE>_<name>.zip`, each
//!   with its own `meta.yaml` (an OAM Component) and whatever files the component type needs;
//! - other files SREWorks ships alongside (`launch.yaml.tpl`, …), which are checked but not used.
//!
//! A component's `meta.yaml` carries its `spec.workload`, what a deployment starts from; it is read
//! with [`component_workload`].
//!
//! # The limits
//! The input is untrusted, so every zip (outer and nested) is held to [`Limits`]: entry count from
//! the central directory before reading; names must be relative and stay inside the root; no
//! symlinks or duplicate names; decompressed bytes are counted as they come out (never taken from
//! headers) against a total budget and a per-entry ratio; zips nest at most `max_nesting` levels;
//! YAML is size-capped and rejected when alias expansion makes it much larger than its text.
//!
//! # MD5 rule
//! `packageMd5` is verified only when it is 32 lowercase hex digits **and** `Limits::strict_md5` is
//! on; otherwise the comparison is reported as [`Md5Check`]. SREWorks' own bootstrap re-zips the
//! unpacked `*.zip.dir` folders of its built-in apps, so their recorded MD5s cannot match what
//! arrives, and importing those packages must work. Entry CRCs still catch corruption, and we record
//! our own MD5 and SHA-256 of every component zip.

mod error;
mod inspect;
mod limits;
mod meta;
mod names;
mod workload;

pub use error::FormatError;
pub use inspect::{
    InspectedComponent, InspectedPackage, META_FILE, Md5Check, SpooledPackage, inspect_app_zip,
    inspect_app_zip_spooled,
};
pub use limits::Limits;
pub use meta::{AppPackageMeta, ComponentPackageMeta, parse_meta};
pub use workload::component_workload;
