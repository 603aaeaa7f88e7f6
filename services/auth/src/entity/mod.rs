//! sea-orm entities of the auth database (see `migration.rs` for the tables).

pub mod client;
pub mod refresh_family;
pub mod refresh_token;
pub mod signing_key;
pub mod user;
