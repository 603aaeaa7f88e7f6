//! The package tables (see the module above for what each holds).

use sea_orm_migration::prelude::*;

/// app_package, component_package, app_package_component.
#[derive(Debug)]
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_packages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `tags` and `meta` are JSON kept as text (tags are filtered with JSON_CONTAINS).
        let statements = [
            "CREATE TABLE IF NOT EXISTS app_package (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                app_id VARCHAR(63) NOT NULL,
                package_version VARCHAR(128) NOT NULL,
                status VARCHAR(16) NOT NULL,
                source VARCHAR(16) NOT NULL,
                size BIGINT NOT NULL,
                sha256 CHAR(64) NOT NULL,
                tags LONGTEXT NOT NULL,
                creator VARCHAR(255) NULL,
                meta LONGTEXT NOT NULL,
                created_by VARCHAR(255) NOT NULL,
                generation BIGINT NOT NULL,
                version BIGINT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_app_package_version (app_id, package_version),
                KEY idx_app_package_status (status, updated_at)
            )",
            "CREATE TABLE IF NOT EXISTS component_package (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                app_id VARCHAR(63) NOT NULL,
                component_type VARCHAR(64) NOT NULL,
                component_name VARCHAR(128) NOT NULL,
                package_version VARCHAR(128) NOT NULL,
                s3_key VARCHAR(512) NOT NULL,
                status VARCHAR(16) NOT NULL,
                size BIGINT NOT NULL,
                md5 CHAR(32) NOT NULL,
                sha256 CHAR(64) NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY uq_component_package_key (s3_key),
                KEY idx_component_package_app (app_id, component_type, component_name)
            )",
            "CREATE TABLE IF NOT EXISTS app_package_component (
                app_package_id BIGINT NOT NULL,
                generation BIGINT NOT NULL,
                position INT NOT NULL,
                component_package_id BIGINT NOT NULL,
                relative_path VARCHAR(512) NOT NULL,
                md5_status VARCHAR(16) NOT NULL,
                PRIMARY KEY (app_package_id, generation, position),
                KEY idx_app_package_component_component (component_package_id)
            )",
        ];
        sw_db::create_tables(manager, &statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sw_db::drop_tables(manager, &["app_package_component", "component_package", "app_package"]).await
    }
}
