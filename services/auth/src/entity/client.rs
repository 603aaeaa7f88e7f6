//! `clients`: OAuth clients (the built-in public `swcli`, and registered confidential ones).

use sea_orm::entity::prelude::*;

/// A client row. Its `Debug` leaves out the secret hash.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    /// Hex SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// JSON array of grant type names.
    pub grant_types: String,
    /// JSON array of `RoleBinding` (used under `client_credentials`).
    #[sea_orm(column_type = "Text")]
    pub roles: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("client::Model")
            .field("client_id", &self.client_id)
            .field("confidential", &self.confidential)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
