//! `component_inventory`: one row per component instance, its [`crate::plan::Inventory`] as JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "component_inventory")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub cluster_id: String,
    pub namespace: String,
    pub app_id: String,
    pub app_instance: String,
    pub component_instance: String,
    /// The serialised inventory.
    pub inventory: String,
    /// Starts at 1 and grows by one with every write.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
