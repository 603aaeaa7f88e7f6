//! What every handler, the import pipeline, the build workers and the janitor share.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use sw_authz::{Principal, Verifier};
use sw_bus::outbox::Outbox;
use sw_bus::{CloudEvent, RpcCall};
use sw_config::PackageStoreConfig;
use sw_http::ApiError;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::SERVICE;
use crate::format::Limits;
use crate::ops::WorkloadCache;
use crate::storage::Storage;

#[derive(Debug)]
pub(crate) struct Ctx {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub verifier: Verifier,
    pub storage: Arc<Storage>,
    pub cfg: PackageStoreConfig,
    /// Import pipelines run as tasks of their own so that a caller going away never interrupts
    /// one half-way (each cleans up after itself); shutdown waits for them.
    pub tasks: TaskTracker,
    /// Wakes an idle build worker of this process (a task was just created).
    pub builds: Notify,
    /// Names this process in build task leases.
    pub instance: String,
    /// Workloads of component zips already read (`packages.components`).
    pub workloads: WorkloadCache,
}

impl Ctx {
    /// The verified caller, or 401.
    pub async fn principal(&self, call: &RpcCall) -> Result<Principal, ApiError> {
        self.verifier.verify_call(&call.meta).await
    }

    /// A new transaction on the service database.
    pub async fn begin(&self) -> Result<DatabaseTransaction, ApiError> {
        self.db.begin().await.map_err(sw_db::api_error)
    }

    /// The inspection limits from the configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            max_entries: self.cfg.max_entries,
            max_total_uncompressed: self.cfg.max_uncompressed_bytes,
            max_ratio: self.cfg.max_compression_ratio,
            max_meta_bytes: self.cfg.max_meta_bytes,
            strict_md5: self.cfg.strict_md5,
            ..Limits::default()
        }
    }
}

/// Now, at the precision the database keeps (microseconds), so a reply equals a later read.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An event of this service about `subject`, carrying `traceparent`.
pub(crate) fn event(
    name: &str,
    subject: String,
    traceparent: Option<&str>,
    data: impl Serialize,
) -> CloudEvent {
    let mut ev = CloudEvent::new(SERVICE, name, Some(subject), data);
    ev.traceparent = traceparent.map(str::to_owned);
    ev
}

/// The CloudEvent subject of a package: `{appId}/{packageVersion}`.
pub(crate) fn subject(app_id: &str, package_version: &str) -> String {
    format!("{app_id}/{package_version}")
}
