//! k8s-executor: turns rendered components into Kubernetes objects, applies them and reports their
//! health over JetStream.
//!
//! The building blocks, pure unless said otherwise, and the service that wires them:
//! - [`render`]: a [`sw_contracts::executor::RenderedComponent`] (SREWorks `K8S_MICROSERVICE`,
//!   `K8S_JOB`, raw manifests) plus its traits → the Kubernetes objects to apply, labelled and
//!   annotated for ownership and revision;
//! - [`health`]: an object's status → health in Argo CD's vocabulary, and a component's health as
//!   the worst of its objects';
//! - [`plan`]: what to do with an apply or delete command given the inventory recorded for the
//!   component instance — apply, resume, replay, prune or refuse — as pure, persisted-step
//!   transitions that never prune a live object nor apply a stale revision;
//! - [`kube_apply`] (the one module with I/O): server-side apply of the rendered objects
//!   (conflicts surfaced, never forced), the ownership-checked prune, and reading objects back;
//! - [`store`]: the [`plan::Inventory`] of each component instance in `sw_executor`, written by
//!   compare-and-swap so two replicas never both advance one instance, and each command's result
//!   kept for replay to a redelivery; [`migration`] is its schema;
//! - [`service`]: the consumer of `k8s.apply` / `k8s.delete` commands that walks each through the
//!   modules above and reports `executor.component.*` events through the outbox.

pub mod health;
pub mod kube_apply;
pub mod migration;
pub mod plan;
pub mod render;
pub mod service;
pub mod store;

/// Creates the executor's database (`{name_prefix}executor`) if needed and applies its migrations
/// (`sreworks migrate`).
pub async fn migrate(cfg: &sw_config::Config) -> Result<(), sw_db::DbError> {
    let db = sw_db::connect(&cfg.database, store::SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, store::SERVICE)).await?;
    db.close().await.ok();
    Ok(())
}
