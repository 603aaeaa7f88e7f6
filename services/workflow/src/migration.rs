//! The schema of `sw_workflow`: the outbox tables (events and executor commands go out through the
//! outbox), deployments (with their workflow instance: one per deployment, same id), tasks,
//! deployed components, the revision counter of each component instance, and the wake-up list
//! the engine works from.

use sea_orm_migration::prelude::*;

/// Every migration of the workflow service, the outbox tables first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(sw_bus::outbox::Migration),
            Box::new(M0001Deployments),
            Box::new(M0002InstanceLock),
            Box::new(M0003PassChecks),
        ]
    }
}

#[derive(Debug)]
struct M0001Deployments;

impl MigrationName for M0001Deployments {
    fn name(&self) -> &str {
        "m0001_deployments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Deployments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Documents (the launch file, the plan, the workflow context) are JSON kept as text, parsed
        // on read. `version` on a deployment is the compare-and-swap guard of every change to the
        // deployment, its workflow and its tasks; components carry their own state guard because
        // executor results change them concurrently.
        let statements = [
            "CREATE TABLE IF NOT EXISTS deployment (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                app_id VARCHAR(63) NOT NULL,
                team VARCHAR(63) NULL,
                app_package_id BIGINT NOT NULL,
                package_version VARCHAR(128) NOT NULL,
                cluster_id VARCHAR(63) NOT NULL,
                namespace_id VARCHAR(63) NOT NULL,
                stage_id VARCHAR(63) NULL,
                app_instance VARCHAR(128) NOT NULL,
                instance_key VARCHAR(320) NOT NULL,
                state VARCHAR(32) NOT NULL,
                reason VARCHAR(64) NULL,
                message TEXT NULL,
                kind VARCHAR(16) NOT NULL,
                source_id BIGINT NULL,
                pinned TINYINT(1) NOT NULL DEFAULT 0,
                configuration LONGTEXT NOT NULL,
                launch_query LONGTEXT NOT NULL,
                plan LONGTEXT NOT NULL,
                wf_state VARCHAR(32) NOT NULL,
                wf_mode VARCHAR(16) NOT NULL,
                wf_context LONGTEXT NOT NULL,
                wf_reason VARCHAR(64) NULL,
                wf_message TEXT NULL,
                wf_finished_at DATETIME(6) NULL,
                created_by VARCHAR(255) NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                started_at DATETIME(6) NULL,
                finished_at DATETIME(6) NULL,
                deadline_at DATETIME(6) NULL,
                version BIGINT NOT NULL,
                KEY ix_deployment_instance (instance_key, id),
                KEY ix_deployment_app (app_id, id),
                KEY ix_deployment_state (state, id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE IF NOT EXISTS workflow_task (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                deployment_id BIGINT NOT NULL,
                step_index INT NOT NULL,
                name VARCHAR(128) NULL,
                task_type VARCHAR(32) NOT NULL,
                state VARCHAR(32) NOT NULL,
                reason VARCHAR(64) NULL,
                message TEXT NULL,
                attempt INT NOT NULL DEFAULT 0,
                calls INT NOT NULL DEFAULT 0,
                inputs LONGTEXT NULL,
                context_snapshot LONGTEXT NULL,
                started_at DATETIME(6) NULL,
                finished_at DATETIME(6) NULL,
                deadline_at DATETIME(6) NULL,
                due_at DATETIME(6) NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_task_step (deployment_id, step_index)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE IF NOT EXISTS deploy_component (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                deployment_id BIGINT NOT NULL,
                task_id BIGINT NOT NULL,
                unit_index INT NOT NULL,
                component_type VARCHAR(64) NOT NULL,
                component_name VARCHAR(128) NOT NULL,
                component_instance VARCHAR(128) NOT NULL,
                cluster_id VARCHAR(63) NOT NULL,
                namespace_id VARCHAR(63) NOT NULL,
                stage_id VARCHAR(63) NULL,
                state VARCHAR(32) NOT NULL,
                revision BIGINT NULL,
                attempt INT NOT NULL DEFAULT 0,
                command_id VARCHAR(128) NULL,
                reason VARCHAR(64) NULL,
                message TEXT NULL,
                skip_reason TEXT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_component_unit (deployment_id, task_id, unit_index),
                UNIQUE KEY uq_component_command (command_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE IF NOT EXISTS component_revision (
                instance_key VARCHAR(400) NOT NULL PRIMARY KEY,
                revision BIGINT NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE IF NOT EXISTS wake (
                deployment_id BIGINT NOT NULL PRIMARY KEY,
                due_at DATETIME(6) NOT NULL,
                seq BIGINT NOT NULL,
                lease_until DATETIME(6) NULL,
                owner VARCHAR(64) NULL,
                KEY ix_wake_due (due_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ];
        let db = manager.get_connection();
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in ["wake", "component_revision", "deploy_component", "workflow_task", "deployment"] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t}")).await?;
        }
        Ok(())
    }
}

/// One row per app instance, locked by every launch for the instance before it looks for a
/// deployment holding it: two launches of one instance at the same moment take turns, so the second
/// sees the first (and queues behind it) instead of both starting.
#[derive(Debug)]
struct M0002InstanceLock;

impl MigrationName for M0002InstanceLock {
    fn name(&self) -> &str {
        "m0002_instance_lock"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002InstanceLock {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS instance_lock (
                    instance_key VARCHAR(400) NOT NULL PRIMARY KEY
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS instance_lock").await?;
        Ok(())
    }
}

/// The checks that turn a pass's lost race into an error (both values are never 0 or below): a
/// pass writes 0 to a revision counter that moved since it read it
/// ([`crate::store::claim_revision_stmt`]), and 0 to its deployment's version when a guard of its
/// writes failed ([`crate::store::save_deployment_stmt`]). The statement then fails, and the pass
/// rolls back whole.
#[derive(Debug)]
struct M0003PassChecks;

/// (table, constraint, condition) of [`M0003PassChecks`].
const PASS_CHECKS: [(&str, &str, &str); 2] = [
    ("component_revision", "ck_revision_positive", "revision > 0"),
    ("deployment", "ck_deployment_version", "version > 0"),
];

impl MigrationName for M0003PassChecks {
    fn name(&self) -> &str {
        "m0003_pass_checks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003PassChecks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, name, check) in PASS_CHECKS {
            db.execute_unprepared(&format!("ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check})"))
                .await?;
        }
        // A server that parses CHECK but does not enforce it (MySQL before 8.0.16) would let a lost
        // race write 0: refuse to run on it. Such servers have no CHECK_CONSTRAINTS table either.
        let needs = "the workflow needs a database server that enforces CHECK constraints (MariaDB 10.2 or \
                     later, MySQL 8.0.16 or later)";
        let names: Vec<String> = PASS_CHECKS.iter().map(|(_, name, _)| format!("'{name}'")).collect();
        let found = db
            .query_one(sea_orm::Statement::from_string(
                manager.get_database_backend(),
                format!(
                    "SELECT COUNT(*) AS n FROM information_schema.CHECK_CONSTRAINTS
                     WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME IN ({})",
                    names.join(", ")
                ),
            ))
            .await
            .map_err(|e| DbErr::Migration(format!("{needs}; this one reports none ({e})")))?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?;
        if found != Some(PASS_CHECKS.len() as i64) {
            return Err(DbErr::Migration(format!(
                "{needs}; {found:?} of the {} constraints were created",
                PASS_CHECKS.len()
            )));
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, name, _) in PASS_CHECKS {
            db.execute_unprepared(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}")).await?;
        }
        Ok(())
    }
}
