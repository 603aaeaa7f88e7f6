//! What every handler of the service shares, passed explicitly (no process-global state).

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde::Serialize;
use sw_authz::Verifier;
use sw_bus::outbox::Outbox;
use sw_bus::{CloudEvent, RpcCall};
use sw_config::AuthConfig;
use sw_redis::Redis;

use crate::keys::KeyRing;
use crate::throttle::Throttle;

/// The service's context: configuration, connections, the key ring, and the dummy password hash.
pub struct State {
    pub auth: AuthConfig,
    pub db: DatabaseConnection,
    pub redis: Redis,
    pub verifier: Verifier,
    pub outbox: Outbox,
    pub keys: KeyRing,
    pub throttle: Throttle,
    /// An argon2id hash of a random password, verified against for unknown usernames so the answer
    /// takes as long as for a real user and timing does not reveal which usernames exist.
    pub dummy_hash: String,
}

impl State {
    /// Access-token lifetime in seconds.
    pub fn access_ttl(&self) -> i64 {
        i64::try_from(self.auth.access_token_ttl_secs).unwrap_or(i64::MAX / 4)
    }
    /// Refresh-token lifetime in seconds.
    pub fn refresh_ttl(&self) -> i64 {
        i64::try_from(self.auth.refresh_token_ttl_secs).unwrap_or(i64::MAX / 4)
    }
}

/// The current time at the database's precision (microseconds), so what a handler returns equals
/// what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A CloudEvent of this service caused by `call` (carrying its trace context).
pub fn event(call: &RpcCall, name: &str, subject: &str, data: impl Serialize) -> CloudEvent {
    traced_event(call.meta.traceparent.clone(), name, subject, data)
}

/// A CloudEvent of this service carrying the trace context `traceparent`.
pub fn traced_event(
    traceparent: Option<String>,
    name: &str,
    subject: &str,
    data: impl Serialize,
) -> CloudEvent {
    let mut ev = CloudEvent::new(crate::SERVICE, name, Some(subject.to_owned()), data);
    ev.traceparent = traceparent;
    ev
}

/// Writes `ev` to the outbox inside `txn`, commits, and wakes the relay, so the state change and
/// its event are stored together or not at all.
pub async fn commit_with_event(
    outbox: &Outbox,
    txn: DatabaseTransaction,
    ev: &CloudEvent,
) -> Result<(), DbErr> {
    outbox.enqueue(&txn, ev).await?;
    txn.commit().await?;
    outbox.wake();
    Ok(())
}
