//! `processed_command`: the result each command produced, replayed to its redeliveries.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processed_command")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub command_id: String,
    pub cluster_id: String,
    pub namespace: String,
    pub app_instance: String,
    pub component_instance: String,
    pub revision: i64,
    /// The event the result was published as (`executor.component.applied`, …).
    pub event_type: String,
    /// The serialised [`sw_contracts::executor::ComponentResult`].
    pub result: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
