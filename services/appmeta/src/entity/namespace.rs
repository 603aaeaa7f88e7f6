//! `namespaces`: deployment target groupings.

use sea_orm::entity::prelude::*;
use sw_contracts::appmeta::NamespaceOut;

use super::{CorruptRow, labels_from_db, name_from_db};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "namespaces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub namespace_id: String,
    pub name: String,
    pub description: Option<String>,
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
    pub fn to_out(&self) -> Result<NamespaceOut, CorruptRow> {
        Ok(NamespaceOut {
            namespace_id: name_from_db("namespaceId", &self.namespace_id)?,
            name: self.name.clone(),
            description: self.description.clone(),
            labels: labels_from_db(&self.labels)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
