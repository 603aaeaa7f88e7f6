//! The sreworks server as a library: which services run in this process ([`Target`]), starting
//! them against one configuration ([`start`]), applying migrations ([`migrate`]) and generating the
//! published contracts ([`schemas`]).
//!
//! Every service runs as its own task and talks to the others only over NATS, exactly as when
//! each runs in its own process (`--target auth` in one pod, `--target gateway` in another).

pub mod schemas;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sw_authz::{BusKeySource, Verifier};
use sw_bus::Bus;
use sw_config::Config;
use sw_gateway::ReadinessCheck;
use sw_k8s_executor::service::AppmetaClusters;
use sw_redis::Redis;
use sw_telemetry::Telemetry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A service this process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Auth,
    Appmeta,
    PackageStore,
    K8sExecutor,
    Workflow,
    Gateway,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Auth,
        Target::Appmeta,
        Target::PackageStore,
        Target::K8sExecutor,
        Target::Workflow,
        Target::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Auth => "auth",
            Target::Appmeta => "appmeta",
            Target::PackageStore => "package-store",
            Target::K8sExecutor => "k8s-executor",
            Target::Workflow => "workflow",
            Target::Gateway => "gateway",
        }
    }
}

/// A `--target` list: `all` or comma-separated names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(pub Vec<Target>);

impl FromStr for Targets {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Target::ALL);
                continue;
            }
            let t = Target::ALL.into_iter().find(|t| t.name() == part).ok_or_else(|| {
                format!("unknown target '{part}' (known: all, auth, appmeta, package-store, k8s-executor, workflow, gateway)")
            })?;
            out.push(t);
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err("no target given".into());
        }
        Ok(Targets(out))
    }
}

/// Applies the database migrations of every target that owns a database.
pub async fn migrate(cfg: &Config, targets: &Targets) -> anyhow::Result<()> {
    for t in &targets.0 {
        match t {
            Target::Auth => sw_auth::migrate(cfg).await.context("auth migrations")?,
            Target::Appmeta => sw_appmeta::migrate(cfg).await.context("appmeta migrations")?,
            Target::PackageStore => {
                sw_package_store::migrate(cfg).await.context("package-store migrations")?
            }
            Target::K8sExecutor => sw_k8s_executor::migrate(cfg).await.context("k8s-executor migrations")?,
            Target::Workflow => sw_workflow::migrate(cfg).await.context("workflow migrations")?,
            Target::Gateway => {}
        }
    }
    Ok(())
}

/// A running suite.
#[derive(Debug)]
pub struct Running {
    /// Where the gateway listens, when it is one of the targets.
    pub gateway: Option<SocketAddr>,
    /// Where `/healthz`, `/readyz` and `/metrics` listen when the gateway is not a target.
    pub ops: Option<SocketAddr>,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
}

impl Running {
    /// Waits until every service stopped (after `shutdown` was cancelled) or one failed.
    /// A service that fails stops the others.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some(res) = self.tasks.join_next().await {
            let (name, r) = match res {
                Ok(v) => v,
                Err(e) => ("task", Err(anyhow::anyhow!("service task panicked: {e}"))),
            };
            if let Err(e) = r {
                tracing::error!(service = name, error = %format!("{e:#}"), "Service failed; stopping the others.");
                self.shutdown.cancel();
                first_err.get_or_insert(e.context(format!("service {name} failed")));
            } else if !self.shutdown.is_cancelled() {
                tracing::error!(service = name, "Service stopped on its own; stopping the others.");
                self.shutdown.cancel();
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Connects the shared clients, builds every target (migrating its database) and runs them until
/// `shutdown` is cancelled.
pub async fn start(
    cfg: &Config,
    targets: &Targets,
    telemetry: Telemetry,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let bus = Bus::connect(&cfg.nats).await.context("connecting to NATS")?;
    bus.ensure_streams().await.context("provisioning JetStream streams (is JetStream enabled?)")?;
    let redis = Redis::connect(&cfg.redis).await.context("connecting to Redis")?;
    let verifier = Verifier::new(
        Arc::new(BusKeySource(bus.clone())),
        redis.clone(),
        &cfg.auth.issuer,
        &cfg.auth.audience,
    );
    let mut tasks = JoinSet::new();
    let mut readiness = Vec::new();

    for t in &targets.0 {
        match t {
            Target::Auth => {
                let svc = sw_auth::build(cfg, bus.clone(), redis.clone(), verifier.clone())
                    .await
                    .context("starting auth")?;
                readiness.push(db_check("auth", svc.db()));
                let stop = shutdown.clone();
                tasks.spawn(async move { ("auth", svc.run_until_stopped(stop).await.map_err(Into::into)) });
            }
            Target::Appmeta => {
                let svc = sw_appmeta::build(cfg, bus.clone(), redis.clone(), verifier.clone())
                    .await
                    .context("starting appmeta")?;
                readiness.push(db_check("appmeta", svc.db()));
                let stop = shutdown.clone();
                tasks
                    .spawn(async move { ("appmeta", svc.run_until_stopped(stop).await.map_err(Into::into)) });
            }
            Target::PackageStore => {
                let svc = sw_package_store::build(cfg, bus.clone(), redis.clone(), verifier.clone())
                    .await
                    .context("starting package-store")?;
                readiness.push(db_check("package-store", svc.db()));
                let stop = shutdown.clone();
                tasks.spawn(async move {
                    ("package-store", svc.run_until_stopped(stop).await.map_err(Into::into))
                });
            }
            Target::K8sExecutor => {
                // Clusters come from appmeta; their credentials are opened here, with the key
                // appmeta seals them with.
                let clusters =
                    AppmetaClusters::from_config(cfg, bus.clone()).context("starting k8s-executor")?;
                let mut svc = sw_k8s_executor::service::build(cfg, bus.clone(), Arc::new(clusters))
                    .await
                    .context("starting k8s-executor")?;
                // `clusters.probe` on NATS, for `POST /v1/clusters/{clusterId}/probe`.
                svc.serve_api(verifier.clone());
                readiness.push(db_check("k8s-executor", svc.db()));
                let stop = shutdown.clone();
                tasks.spawn(async move {
                    ("k8s-executor", svc.run_until_stopped(stop).await.map_err(Into::into))
                });
            }
            Target::Workflow => {
                let svc = sw_workflow::build(cfg, bus.clone(), verifier.clone())
                    .await
                    .context("starting workflow")?;
                readiness.push(db_check("workflow", svc.db()));
                let stop = shutdown.clone();
                tasks.spawn(
                    async move { ("workflow", svc.run_until_stopped(stop).await.map_err(Into::into)) },
                );
            }
            Target::Gateway => {}
        }
    }
    let mut gateway = None;
    let mut ops_addr = None;
    if targets.0.contains(&Target::Gateway) {
        let gw = sw_gateway::build(cfg, bus.clone(), redis.clone(), verifier.clone(), telemetry, readiness)
            .await
            .with_context(|| format!("binding the gateway to {}", cfg.gateway.listen))?;
        gateway = Some(gw.local_addr());
        let stop = shutdown.clone();
        tasks.spawn(async move { ("gateway", gw.run_until_stopped(stop).await.map_err(Into::into)) });
    } else if let Some(addr) = cfg.telemetry.ops_listen {
        // Without the gateway, /healthz, /readyz and /metrics get a listener of their own.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the operational endpoints to {addr}"))?;
        ops_addr = Some(listener.local_addr()?);
        let ops =
            Arc::new(sw_gateway::ops::Ops { bus: bus.clone(), redis: redis.clone(), telemetry, readiness });
        let stop = shutdown.clone();
        tasks.spawn(
            async move { ("ops", sw_gateway::ops::serve(listener, ops, stop).await.map_err(Into::into)) },
        );
    }
    Ok(Running { gateway, ops: ops_addr, tasks, shutdown })
}

fn db_check(name: &str, db: sea_orm::DatabaseConnection) -> ReadinessCheck {
    ReadinessCheck::new(&format!("{name}-db"), move || {
        let db = db.clone();
        async move { db.ping().await.map_err(|e| e.to_string()) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("all".parse::<Targets>().unwrap().0, Target::ALL.to_vec());
        assert_eq!("gateway, auth".parse::<Targets>().unwrap().0, vec![Target::Auth, Target::Gateway]);
        assert_eq!(
            "package-store,appmeta".parse::<Targets>().unwrap().0,
            vec![Target::Appmeta, Target::PackageStore]
        );
        assert_eq!(
            "gateway,k8s-executor".parse::<Targets>().unwrap().0,
            vec![Target::K8sExecutor, Target::Gateway]
        );
        assert!("all".parse::<Targets>().unwrap().0.contains(&Target::K8sExecutor));
        assert!("nope".parse::<Targets>().is_err());
        assert!("".parse::<Targets>().is_err());
    }
}
