//! The auth database schema.
//!
//! DESIGN.md asks for one sea-orm-migration crate per service; we keep the migrator a module of the
//! service crate instead, because every extra crate costs build time on the 2-core build machines.
//! `sreworks migrate` reaches it through [`crate::migrate`].

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::prelude::*;

/// Every migration of the auth database, oldest first. The outbox tables come first.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration), Box::new(M0001AuthTables)]
    }
}

/// Users, clients, refresh-token families and tokens, signing keys.
#[derive(Debug)]
struct M0001AuthTables;

impl MigrationName for M0001AuthTables {
    fn name(&self) -> &str {
        "m0001_auth_tables"
    }
}

const TABLES: &[&str] = &[
    // `roles` holds the JSON array of RoleBinding: bindings are always read and replaced as a whole
    // with the row, under its `version` compare-and-swap.
    "CREATE TABLE IF NOT EXISTS users (
        username VARCHAR(64) NOT NULL PRIMARY KEY,
        password_hash VARCHAR(255) NOT NULL,
        display_name VARCHAR(128) NULL,
        email VARCHAR(254) NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        roles LONGTEXT NOT NULL,
        version BIGINT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        updated_at DATETIME(6) NOT NULL
    )",
    // `secret_hash` is the hex SHA-256 of a 32-byte random secret (see `secrets.rs` for why not argon2).
    "CREATE TABLE IF NOT EXISTS clients (
        client_id VARCHAR(64) NOT NULL PRIMARY KEY,
        name VARCHAR(128) NOT NULL,
        confidential BOOLEAN NOT NULL,
        secret_hash CHAR(64) NULL,
        grant_types VARCHAR(255) NOT NULL,
        roles LONGTEXT NOT NULL,
        version BIGINT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        updated_at DATETIME(6) NOT NULL
    )",
    // One family per login; every refresh-token rotation stays in the family. Revoking the family
    // (reuse detected, logout, password change, user or client deleted) makes all its tokens unusable,
    // including one being minted concurrently.
    "CREATE TABLE IF NOT EXISTS refresh_families (
        id CHAR(36) NOT NULL PRIMARY KEY,
        username VARCHAR(64) NOT NULL,
        client_id VARCHAR(64) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NOT NULL,
        revoked_at DATETIME(6) NULL,
        KEY ix_families_user (username),
        KEY ix_families_client (client_id),
        KEY ix_families_expires (expires_at)
    )",
    // Only the SHA-256 of each opaque token is stored.
    "CREATE TABLE IF NOT EXISTS refresh_tokens (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        token_hash CHAR(64) NOT NULL,
        family_id CHAR(36) NOT NULL,
        username VARCHAR(64) NOT NULL,
        client_id VARCHAR(64) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NOT NULL,
        used_at DATETIME(6) NULL,
        UNIQUE KEY ux_refresh_hash (token_hash),
        KEY ix_refresh_family (family_id),
        KEY ix_refresh_expires (expires_at)
    )",
    // `active_slot` is 1 for the active key and NULL for retired ones; its unique index lets at most
    // one key be active, so two replicas starting (or rotating) at once cannot both create one.
    "CREATE TABLE IF NOT EXISTS signing_keys (
        kid VARCHAR(64) NOT NULL PRIMARY KEY,
        secret_key VARBINARY(32) NOT NULL,
        public_key VARBINARY(32) NOT NULL,
        status VARCHAR(16) NOT NULL,
        active_slot TINYINT NULL,
        created_at DATETIME(6) NOT NULL,
        retired_at DATETIME(6) NULL,
        UNIQUE KEY ux_keys_active (active_slot)
    )",
];

#[async_trait]
impl MigrationTrait for M0001AuthTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::create_tables(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::drop_tables(
            manager,
            &["signing_keys", "refresh_tokens", "refresh_families", "clients", "users"],
        )
        .await
    }
}
