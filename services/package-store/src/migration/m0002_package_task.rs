//! The build task table (see the module above for what it holds).

use sea_orm_migration::prelude::*;

/// package_task.
#[derive(Debug)]
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_package_task"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `tags`, `components`, `binders` and `charts` are JSON kept as text, like m0001's.
        // `active_version` is the version of a task still CREATED or RUNNING (NULL otherwise, and
        // NULLs never clash): its unique key makes two live builds of one version impossible, while
        // a failed build's version may be tried again.
        let sql = "CREATE TABLE IF NOT EXISTS package_task (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                app_id VARCHAR(63) NOT NULL,
                status VARCHAR(16) NOT NULL,
                package_version VARCHAR(128) NOT NULL,
                tags LONGTEXT NOT NULL,
                components LONGTEXT NOT NULL,
                binders LONGTEXT NOT NULL,
                charts LONGTEXT NOT NULL,
                app_package_id BIGINT NULL,
                error_message TEXT NULL,
                attempts INT NOT NULL,
                lease_owner VARCHAR(64) NULL,
                lease_until DATETIME(6) NULL,
                deadline_at DATETIME(6) NOT NULL,
                traceparent VARCHAR(128) NULL,
                created_by VARCHAR(255) NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                version BIGINT NOT NULL,
                active_version VARCHAR(128) GENERATED ALWAYS AS
                    (IF(status IN ('CREATED', 'RUNNING'), package_version, NULL)) STORED,
                UNIQUE KEY uq_package_task_active_version (app_id, active_version),
                KEY idx_package_task_app (app_id, id),
                KEY idx_package_task_claim (status, id),
                KEY idx_package_task_lease (status, lease_until)
            )";
        sw_db::create_tables(manager, &[sql]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::drop_tables(manager, &["package_task"]).await
    }
}
