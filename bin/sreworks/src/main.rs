//! `sreworks`: the server binary. Subcommands are the operational tasks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sreworks::Targets;
use sw_config::Config;
use tokio_util::sync::CancellationToken;

mod render;

#[derive(Debug, Parser)]
#[command(name = "sreworks", version, about = "The sreworks platform server")]
struct Cli {
    /// TOML configuration file (values there are overridden by SREWORKS_* variables).
    #[arg(long, global = true, env = "SREWORKS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run services until SIGINT/SIGTERM.
    Serve {
        /// `all`, or a comma-separated list of: auth, appmeta, package-store, k8s-executor, gateway.
        #[arg(long, default_value = "all", env = "SREWORKS_TARGET")]
        target: Targets,
    },
    /// Apply the database migrations of the targets' services, then exit.
    Migrate {
        #[arg(long, default_value = "all")]
        target: Targets,
    },
    /// Write the OpenAPI document (`-` for stdout).
    GenerateOpenapi {
        #[arg(long, default_value = "docs/openapi.json")]
        out: PathBuf,
    },
    /// Write the event JSON Schemas and the AsyncAPI document.
    GenerateSchemas {
        #[arg(long, default_value = "proto-schemas")]
        out_dir: PathBuf,
    },
    /// Print the Kubernetes objects a launch YAML and app package would produce, without applying
    /// them (a dry run; offline).
    Render(render::RenderArgs),
    /// Exit 0 when the URL answers 200 within 3 s (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
}

fn main() -> anyhow::Result<()> {
    // aws-sdk, kube and async-nats may each pull in a rustls crypto provider; choose one for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::GenerateOpenapi { out } => {
            let json = sw_gateway::openapi::json();
            if out.as_os_str() == "-" {
                println!("{json}");
            } else {
                std::fs::write(&out, format!("{json}\n"))
                    .with_context(|| format!("writing {}", out.display()))?;
                eprintln!("wrote {}", out.display());
            }
            Ok(())
        }
        Command::GenerateSchemas { out_dir } => {
            let n = sreworks::schemas::write(&out_dir)?;
            eprintln!("wrote {n} files under {}", out_dir.display());
            Ok(())
        }
        Command::Healthcheck { url } => {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
            let resp = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(resp.status().is_success(), "{url} answered {}", resp.status());
            Ok(())
        }
        Command::Migrate { target } => {
            let cfg = Config::load(cli.config.as_deref())?;
            let telemetry = sw_telemetry::init(&cfg)?;
            let result = sreworks::migrate(&cfg, &target).await;
            telemetry.shutdown().await;
            result?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Render(args) => render::run(&args),
        Command::Serve { target } => serve(cli.config, target).await,
    }
}

async fn serve(config: Option<PathBuf>, targets: Targets) -> anyhow::Result<()> {
    let cfg = Config::load(config.as_deref())?;
    // appmeta seals cluster credentials with this key and the k8s-executor opens them with it.
    if targets.0.iter().any(|t| matches!(t, sreworks::Target::Appmeta | sreworks::Target::K8sExecutor)) {
        cfg.require_appmeta_key()?;
    }
    let telemetry = sw_telemetry::init(&cfg)?;
    let started = std::time::Instant::now();
    let shutdown = CancellationToken::new();
    let running = sreworks::start(&cfg, &targets, telemetry.clone(), shutdown.clone()).await?;
    let names: Vec<_> = targets.0.iter().map(|t| t.name()).collect();
    tracing::info!(targets = ?names, startup_ms = started.elapsed().as_millis() as u64, "sreworks started.");
    if running.gateway.is_some() {
        eprintln!(
            "sreworks is up: {} (API docs at {}/docs)",
            cfg.public_url_for(running.gateway),
            cfg.public_url_for(running.gateway)
        );
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutting down.");
        signal.cancel();
    });
    let grace = Duration::from_secs(cfg.shutdown_grace_secs.max(1) + 5);
    let wait = running.wait();
    tokio::pin!(wait);
    let result = tokio::select! {
        r = &mut wait => r,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            Err(anyhow::anyhow!("services did not stop within {} s", grace.as_secs()))
        }
    };
    // Last, so the spans of the drained requests are exported too.
    telemetry.shutdown().await;
    result
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
