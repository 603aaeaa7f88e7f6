//! Shared state of the gateway's handlers.

use std::sync::Arc;

use futures::future::BoxFuture;
use sw_authz::Verifier;
use sw_bus::Bus;
use sw_config::Config;
use sw_redis::Redis;

/// A named readiness probe (e.g. a service's database), run by `/readyz`.
#[derive(Clone)]
pub struct ReadinessCheck {
    pub name: String,
    pub check: Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck").field("name", &self.name).finish()
    }
}

impl ReadinessCheck {
    pub fn new<F, Fut>(name: &str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Self { name: name.to_owned(), check: Arc::new(move || Box::pin(f())) }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub cfg: Config,
    pub bus: Bus,
    pub redis: Redis,
    pub verifier: Verifier,
    pub openapi_json: bytes::Bytes,
    /// Fetches package bytes from storage for downloads ([`crate::download`]).
    pub storage: reqwest::Client,
}
