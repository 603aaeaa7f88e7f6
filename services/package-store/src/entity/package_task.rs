//! `package_task`: one row per build task.

use std::collections::BTreeMap;

use sea_orm::entity::prelude::*;
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageTaskOut, PackageTaskComponent, PackageTaskStatus};

use super::{CorruptRow, unsigned};
use crate::build::ComponentBinder;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "package_task")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: String,
    /// [`PackageTaskStatus`] in its SREWorks spelling.
    pub status: String,
    /// The version the package gets, chosen when the task was created.
    pub package_version: String,
    /// JSON array of strings.
    pub tags: String,
    /// JSON array of [`PackageTaskComponent`], in build order.
    pub components: String,
    /// JSON array of validated [`ComponentBinder`]s.
    pub binders: String,
    /// JSON object: component name → S3 key of its uploaded chart archive.
    pub charts: String,
    /// The package built, once `SUCCESS`.
    pub app_package_id: Option<i64>,
    pub error_message: Option<String>,
    /// How many times a worker took the task.
    pub attempts: i32,
    /// The worker holding a `RUNNING` task, until `lease_until` (renewed while it builds).
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// The task fails with `Timeout` when it has not finished by then.
    pub deadline_at: DateTimeUtc,
    /// W3C trace context of the request that created the task, for its events.
    pub traceparent: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Compare-and-swap counter.
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn status(&self) -> Result<PackageTaskStatus, CorruptRow> {
        PackageTaskStatus::parse(&self.status).ok_or_else(|| CorruptRow::new("status", &self.status))
    }

    pub fn binders(&self) -> Result<Vec<ComponentBinder>, CorruptRow> {
        serde_json::from_str(&self.binders).map_err(|e| CorruptRow::new("binders", e))
    }

    /// Component name → S3 key of its chart archive.
    pub fn charts(&self) -> Result<BTreeMap<String, String>, CorruptRow> {
        serde_json::from_str(&self.charts).map_err(|e| CorruptRow::new("charts", e))
    }

    pub fn tag_list(&self) -> Result<Vec<String>, CorruptRow> {
        serde_json::from_str(&self.tags).map_err(|e| CorruptRow::new("tags", e))
    }

    /// The public view of this row.
    pub fn to_out(&self) -> Result<AppPackageTaskOut, CorruptRow> {
        let components: Vec<PackageTaskComponent> =
            serde_json::from_str(&self.components).map_err(|e| CorruptRow::new("components", e))?;
        Ok(AppPackageTaskOut {
            id: unsigned("id", self.id)?,
            app_id: AppId::parse(&self.app_id).map_err(|e| CorruptRow::new("appId", e))?,
            status: self.status()?,
            package_version: self.package_version.clone(),
            tags: self.tag_list()?,
            components,
            app_package_id: self.app_package_id.map(|id| unsigned("appPackageId", id)).transpose()?,
            error_message: self.error_message.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
