//! `app_package`: one row per app package version.

use sea_orm::entity::prelude::*;
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageOut, ComponentPackageOut};

use super::{CorruptRow, source_from_db, unsigned};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "app_package")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: String,
    pub package_version: String,
    /// `IMPORTING` or `READY`.
    pub status: String,
    /// `IMPORT` or `BUILD`.
    pub source: String,
    /// Size of the app zip in bytes.
    pub size: i64,
    pub sha256: String,
    /// JSON array of strings.
    pub tags: String,
    /// `packageCreator` of `meta.yaml`.
    pub creator: Option<String>,
    /// JSON of the whole parsed `meta.yaml` (`AppPackageMeta`), components included.
    pub meta: String,
    pub created_by: String,
    /// Which `app_package_component` links are current.
    pub generation: i64,
    /// Compare-and-swap counter.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The public view of this row with its `components` (current generation, in order).
    pub fn to_out(&self, components: Vec<ComponentPackageOut>) -> Result<AppPackageOut, CorruptRow> {
        Ok(AppPackageOut {
            id: unsigned("id", self.id)?,
            app_id: AppId::parse(&self.app_id).map_err(|e| CorruptRow::new("appId", e))?,
            package_version: self.package_version.clone(),
            package_creator: self.creator.clone(),
            tags: serde_json::from_str(&self.tags).map_err(|e| CorruptRow::new("tags", e))?,
            source: source_from_db(&self.source)?,
            size: unsigned("size", self.size)?,
            sha256: self.sha256.clone(),
            components,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        })
    }

    /// The S3 key of the app zip.
    pub fn key(&self) -> String {
        crate::keys::app_zip(&self.app_id, &self.package_version)
    }
}
