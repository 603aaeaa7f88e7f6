//! The schema of `sw_appmeta`.
//!
//! DESIGN.md asks for one sea-orm-migration crate per service; we keep the migrator a module of
//! the service crate instead, to save a crate's build time on our 2-core builders. It is still a
//! plain `MigratorTrait` that `sreworks migrate` runs through [`crate::migrate`].
//!
//! Children reference their parents with foreign keys (components → apps, stages → namespaces)
//! without cascades: deletes of a parent remove or refuse children explicitly, in the handler's
//! transaction, so each removal is announced; the key stops a child being inserted under a parent
//! that a concurrent transaction is deleting.

use sea_orm_migration::prelude::*;

/// Every migration of appmeta, the outbox tables first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration), Box::new(M0001Catalogue)]
    }
}

/// apps, components, namespaces, stages, clusters.
#[derive(Debug)]
struct M0001Catalogue;

impl MigrationName for M0001Catalogue {
    fn name(&self) -> &str {
        "m0001_appmeta_catalogue"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Catalogue {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Labels and specs are JSON documents kept as text; MariaDB's JSON functions work on
        // them (the label filter uses JSON_CONTAINS) and reading them needs no JSON column type.
        let statements = [
            "CREATE TABLE IF NOT EXISTS apps (
                app_id VARCHAR(63) NOT NULL PRIMARY KEY,
                name VARCHAR(128) NOT NULL,
                description TEXT NULL,
                team VARCHAR(63) NULL,
                labels LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                KEY idx_apps_team (team)
            )",
            "CREATE TABLE IF NOT EXISTS components (
                app_id VARCHAR(63) NOT NULL,
                component_name VARCHAR(63) NOT NULL,
                component_type VARCHAR(32) NOT NULL,
                description TEXT NULL,
                spec LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                PRIMARY KEY (app_id, component_name),
                KEY idx_components_type (app_id, component_type),
                CONSTRAINT fk_components_app FOREIGN KEY (app_id) REFERENCES apps (app_id)
            )",
            "CREATE TABLE IF NOT EXISTS namespaces (
                namespace_id VARCHAR(63) NOT NULL PRIMARY KEY,
                name VARCHAR(128) NOT NULL,
                description TEXT NULL,
                labels LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS stages (
                namespace_id VARCHAR(63) NOT NULL,
                stage_id VARCHAR(63) NOT NULL,
                name VARCHAR(128) NOT NULL,
                description TEXT NULL,
                production BOOLEAN NOT NULL,
                labels LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                PRIMARY KEY (namespace_id, stage_id),
                CONSTRAINT fk_stages_namespace FOREIGN KEY (namespace_id) REFERENCES namespaces (namespace_id)
            )",
            // `credentials` is the sealed blob of sw_crypto (format byte, nonce, ciphertext + tag).
            "CREATE TABLE IF NOT EXISTS clusters (
                cluster_id VARCHAR(63) NOT NULL PRIMARY KEY,
                name VARCHAR(128) NOT NULL,
                description TEXT NULL,
                api_url VARCHAR(2048) NULL,
                credential_kind VARCHAR(16) NOT NULL,
                credentials LONGBLOB NOT NULL,
                labels LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL
            )",
        ];
        sw_db::create_tables(manager, &statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::drop_tables(manager, &["components", "apps", "stages", "namespaces", "clusters"]).await
    }
}
