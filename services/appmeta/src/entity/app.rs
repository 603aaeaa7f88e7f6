//! `apps`: one row per application.

use sea_orm::entity::prelude::*;
use sw_contracts::appmeta::AppOut;

use super::{CorruptRow, app_id_from_db, labels_from_db, name_from_db};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "apps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: String,
    pub name: String,
    pub description: Option<String>,
    pub team: Option<String>,
    /// JSON object of string labels.
    pub labels: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The public view of this row.
    pub fn to_out(&self) -> Result<AppOut, CorruptRow> {
        Ok(AppOut {
            app_id: app_id_from_db(&self.app_id)?,
            name: self.name.clone(),
            description: self.description.clone(),
            team: self.team.as_deref().map(|t| name_from_db("team", t)).transpose()?,
            labels: labels_from_db(&self.labels)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
