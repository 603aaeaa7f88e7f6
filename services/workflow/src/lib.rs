//! The workflow service: SREWorks AppManager's deployments and workflows.
//!
//! How a launch moves through the crate:
//! 1. [`launch`] (operation `deployments.launch`): the launch file is parsed, the app and package
//!    looked up with the caller's token, and the whole file planned by [`plan`] — every component of
//!    every step resolved into what the k8s-executor renders, every problem a 422. The deployment,
//!    its tasks and components are written with their `created` events and a wake-up row.
//! 2. The driver in [`service`] claims due wake-up rows and runs [`engine::Pass`]es: the state
//!    machines of [`state`] move the deployment, its workflow, tasks and components; deploy steps
//!    put `k8s.apply` commands (with a new revision per component instance, `PLACEHOLDER_*` filled by
//!    [`placeholders`]) into the outbox; suspend steps pause; webhook steps call out ([`webhook`]).
//! 3. [`results`] consumes the executor's `executor.component.*` events, moves the component and
//!    wakes the deployment; the next pass finishes the step, starts the next, or waits for an
//!    operator.
//! 4. Operators act through [`ops`] (resume, retry, retry from a task, terminate, context,
//!    rollback via [`rollback`]); each action is a pass committed by compare-and-swap.
//!
//! Everything is in MySQL (`sw_workflow`, [`store`], [`migration`]): state, timers (deadlines and
//! suspend durations are columns the driver wakes up for), and the outbox. Nothing is held only in
//! memory, so killing the process at any point loses nothing.

pub mod authz;
pub mod engine;
pub mod launch;
pub mod migration;
mod ops;
pub mod placeholders;
pub mod plan;
pub mod results;
pub mod rollback;
pub mod service;
pub mod state;
pub mod store;
pub mod view;
pub mod webhook;

pub use ops::API_SERVICE;
pub use service::{BuildError, DriverSettings, Service, build};

/// Creates the workflow's database (`{name_prefix}workflow`) if needed and applies its migrations.
pub async fn migrate(cfg: &sw_config::Config) -> Result<(), sw_db::DbError> {
    let db = sw_db::connect(&cfg.database, store::SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, store::SERVICE)).await?;
    db.close().await.ok();
    Ok(())
}
