//! `signing_keys`: the Ed25519 keys that sign access tokens.

use sea_orm::entity::prelude::*;

/// `status` of the key that signs new tokens.
pub const ACTIVE: &str = "active";
/// `status` of keys that only verify tokens issued before a rotation.
pub const RETIRED: &str = "retired";

/// A key row. Its `Debug` leaves out the private key.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    #[sea_orm(column_type = "VarBinary(StringLen::N(32))")]
    pub secret_key: Vec<u8>,
    #[sea_orm(column_type = "VarBinary(StringLen::N(32))")]
    pub public_key: Vec<u8>,
    pub status: String,
    /// 1 for the active key, NULL otherwise (unique: at most one active key).
    pub active_slot: Option<i8>,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("signing_key::Model")
            .field("kid", &self.kid)
            .field("status", &self.status)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
