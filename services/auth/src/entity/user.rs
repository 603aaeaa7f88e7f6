//! `users`: people who log in with a password.

use sea_orm::entity::prelude::*;

/// A user row. Its `Debug` leaves out the password hash, which must never reach a log.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub disabled: bool,
    /// JSON array of `RoleBinding`.
    #[sea_orm(column_type = "Text")]
    pub roles: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("user::Model")
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
