//! The schema of `sw_executor`: the outbox tables (results are published through the outbox), the
//! inventory of each component instance, the results of the commands already processed, and the
//! health watch of each component instance applied and not yet healthy.
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
        vec![Box::new(sw_bus::outbox::Migration), Box::new(M0001Inventory), Box::new(M0002HealthWatch)]
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

/// health_watch; processed_command gets an index on `created_at` for the retention sweep.
#[derive(Debug)]
struct M0002HealthWatch;

impl MigrationName for M0002HealthWatch {
    fn name(&self) -> &str {
        "m0002_health_watch"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002HealthWatch {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per component instance (the inventory's key): the revision last applied, watched
        // until healthy or its deadline. `started_at` + `deadline_secs` is the deadline, kept
        // across redeliveries and restarts. `lease_owner` / `lease_until` say which replica checks
        // the row until when; `version` is the compare-and-swap guard of every write, so a replica
        // whose lease was taken over, or whose row a newer revision replaced, writes nothing.
        // `observed_*` is what the last check saw (reported in the timeout's message when the
        // cluster cannot be read at the end), `reported_health` the last health sent as an event.
        let statements = ["CREATE TABLE IF NOT EXISTS health_watch (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                cluster_id VARCHAR(63) NOT NULL,
                namespace VARCHAR(63) NOT NULL,
                app_instance VARCHAR(128) NOT NULL,
                component_instance VARCHAR(128) NOT NULL,
                command_id VARCHAR(128) NOT NULL,
                revision BIGINT NOT NULL,
                target LONGTEXT NOT NULL,
                objects LONGTEXT NOT NULL,
                started_at DATETIME(6) NOT NULL,
                deadline_secs BIGINT NOT NULL,
                observed_health VARCHAR(16) NULL,
                observed_message TEXT NULL,
                reported_health VARCHAR(16) NULL,
                lease_owner VARCHAR(64) NULL,
                lease_until DATETIME(6) NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_health_watch_instance
                    (cluster_id, namespace, app_instance, component_instance),
                KEY ix_health_watch_lease (lease_until)
            )"];
        sw_db::create_tables(manager, &statements).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_processed_command_created ON processed_command (created_at)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_processed_command_created ON processed_command")
            .await?;
        sw_db::drop_tables(manager, &["health_watch"]).await
    }
}
