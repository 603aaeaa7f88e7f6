//! The schema of `sw_packages`.
//!
//! Like appmeta, the migrator is a module of the service crate rather than a crate of its own.
//! Each schema change is a file of its own here (`mNNNN_<what>.rs`, one `MigrationTrait`) listed
//! in [`Migrator::migrations`]; a later one never edits an earlier one.
//!
//! - `app_package`: one row per app package version. `status` is `IMPORTING` while an import
//!   holds the row (the reservation that makes concurrent imports of one version exclusive) and
//!   `READY` once every object is in S3. `version` is the compare-and-swap counter; `generation`
//!   names the current set of `app_package_component` links (a forced re-import writes a new set
//!   and drops the old one only when it commits).
//! - `component_package`: one row per component zip object in S3, shared by every app package
//!   that carries the same bytes under the same key. `status` is `PENDING` until some import has
//!   uploaded it. Rows no link points at are garbage, removed with their object.
//! - `app_package_component`: which component zips an app package holds, in `meta.yaml` order.
//!
//! - `package_task`: one row per build task (`CREATED → RUNNING → SUCCESS | FAILURE`), with the
//!   validated binders, the S3 keys of its uploaded charts, the worker lease (`lease_owner`,
//!   `lease_until`), the attempt count and the deadline; `version` is its compare-and-swap counter.
//!
//! No foreign keys: rows are removed in an order that keeps objects and rows consistent under
//! concurrent imports (see `crate::import`), and a key would only add lock waits to that.

mod m0001_packages;
mod m0002_package_task;

use sea_orm_migration::prelude::*;

/// Every migration of package-store, the outbox tables first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(sw_bus::outbox::Migration),
            Box::new(m0001_packages::Migration),
            Box::new(m0002_package_task::Migration),
        ]
    }
}
