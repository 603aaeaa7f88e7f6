//! `component_package`: one row per component zip object in S3.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "component_package")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: String,
    pub component_type: String,
    pub component_name: String,
    pub package_version: String,
    /// `components/{appId}/{TYPE}/{name}/{version}.zip`.
    pub s3_key: String,
    /// `PENDING` until uploaded, then `READY`.
    pub status: String,
    pub size: i64,
    pub md5: String,
    pub sha256: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
