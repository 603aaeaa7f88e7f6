//! The schema of `sw_executor`: the outbox tables (results are published through the outbox), the
//! inventory of each component instance, and the results of the commands already processed.
//!
//! Like appmeta, the migrator is a module of the service crate rather than a crate of its own, to
//! save a crate's build time on our 2-core builders.

use sea_orm_migration::prelude::*;

/// Every migration of the executor, the outbox tables first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(sw_bus::outbox::Migration), Box::new(M0001Inventory)]
    }
}

/// component_inventory, processed_command.
#[derive(Debug)]
struct M0001Inventory;

impl MigrationName for M0001Inventory {
    fn name(&self) -> &str {
        "m0001_inventory"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Inventory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Documents are JSON kept as text (as in appmeta); the store parses and checks them on
        // every read, so the column type adds nothing. `version` is the compare-and-swap guard.
        // The instance key leaves out `app_id`: the objects of two apps cannot share a component
        // instance in one namespace, and the key must not let them.
        let statements = [
            "CREATE TABLE IF NOT EXISTS component_inventory (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                cluster_id VARCHAR(63) NOT NULL,
                namespace VARCHAR(63) NOT NULL,
                app_id VARCHAR(63) NOT NULL,
                app_instance VARCHAR(128) NOT NULL,
                component_instance VARCHAR(128) NOT NULL,
                inventory LONGTEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_component_inventory_instance
                    (cluster_id, namespace, app_instance, component_instance)
            )",
            // One row per command that produced a result; the instance columns say whose it was.
            "CREATE TABLE IF NOT EXISTS processed_command (
                command_id VARCHAR(128) NOT NULL PRIMARY KEY,
                cluster_id VARCHAR(63) NOT NULL,
                namespace VARCHAR(63) NOT NULL,
                app_instance VARCHAR(128) NOT NULL,
                component_instance VARCHAR(128) NOT NULL,
                revision BIGINT NOT NULL,
                event_type VARCHAR(64) NOT NULL,
                result LONGTEXT NOT NULL,
                created_at DATETIME(6) NOT NULL
            )",
        ];
        sw_db::create_tables(manager, &statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::drop_tables(manager, &["processed_command", "component_inventory"]).await
    }
}
