//! `refresh_tokens`: the SHA-256 of each opaque refresh token ever issued, until purged.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub family_id: String,
    pub username: String,
    pub client_id: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set (once, by compare-and-swap) when the token is exchanged.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
