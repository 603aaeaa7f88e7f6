//! `stages`: the stages of each namespace, keyed by (namespace, stage).

use sea_orm::entity::prelude::*;
use sw_contracts::appmeta::StageOut;

use super::{CorruptRow, labels_from_db, name_from_db};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub namespace_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub stage_id: String,
    pub name: String,
    pub description: Option<String>,
    pub production: bool,
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
    pub fn to_out(&self) -> Result<StageOut, CorruptRow> {
        Ok(StageOut {
            namespace_id: name_from_db("namespaceId", &self.namespace_id)?,
            stage_id: name_from_db("stageId", &self.stage_id)?,
            name: self.name.clone(),
            description: self.description.clone(),
            production: self.production,
            labels: labels_from_db(&self.labels)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
