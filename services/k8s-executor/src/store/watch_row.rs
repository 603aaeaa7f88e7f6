//! `health_watch`: one row per component instance whose last applied revision is watched until it
//! is healthy or its deadline passes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "health_watch")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub cluster_id: String,
    pub namespace: String,
    pub app_instance: String,
    pub component_instance: String,
    /// The apply command whose result is watched.
    pub command_id: String,
    pub revision: i64,
    /// The serialised [`sw_contracts::executor::ComponentTarget`].
    pub target: String,
    /// The serialised objects of the revision (`Vec<ObjectRef>`).
    pub objects: String,
    /// When the watch of this command started: the deadline counts from here.
    pub started_at: DateTimeUtc,
    pub deadline_secs: i64,
    /// The health the last check saw, and its message.
    pub observed_health: Option<String>,
    pub observed_message: Option<String>,
    /// The last health reported as an event while watching (`Degraded`).
    pub reported_health: Option<String>,
    /// The replica checking the row, until `lease_until`.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// Starts at 1 and grows by one with every write.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
