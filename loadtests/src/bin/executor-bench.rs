//! The k8s-executor's throughput against the Kubernetes API emulator, and its own time per command.
//!
//! `executor-bench` is driven by `loadtests/executor-bench.sh`, which ensures the infrastructure,
//! exports an isolated run (`SREWORKS_NATS__PREFIX`, `SREWORKS_DATABASE__NAME_PREFIX`, the server
//! addresses), starts `tests/k8s-emulator/emulator.py` and passes:
//!
//!   SW_BENCH_K8S_URL          the emulator's base URL (http://127.0.0.1:<port>)
//!   SW_BENCH_EMULATOR_PID     the emulator's pid, to report its CPU time too (optional)
//!   SW_BENCH_N                apply commands per pass (default 300)
//!   SW_BENCH_MICRO_ITERS      iterations of the render + request-building microbenchmark (default 20000)
//!   SW_BENCH_TIMEOUT_SECS     how long one pass may take before it counts as timed out (default 300)
//!   SW_BENCH_CONCURRENCY      the executor consumer's concurrency (default: the service's own)
//!   SW_BENCH_CLK_TCK          clock ticks per second of /proc/*/stat (`getconf CLK_TCK`, default 100)
//!
//! The executor runs in this process (`sw_k8s_executor::service::build` with the emulator as its one
//! cluster, on the run's own database and subject prefix), as its subject; the driver beside it
//! publishes commands and reads the executor's events from JetStream. Phases, in order:
//! 1. warm-up: one apply, waited for, so connections and pools exist before anything is measured;
//! 2. create: `SW_BENCH_N` apply commands, revision 1, each for its own component instance of three
//!    objects (ConfigMap from a `configmap` trait, Deployment, Service from `service.trait.abm.io`),
//!    published back to back; done when every `executor.component.applied` event is in — commands
//!    per second, latency publish → event, and the emulator's request count;
//! 3. update: the same instances at revision 2 (a steady-state re-apply of unchanged objects);
//! 4. own time: `render::render` plus building each object's server-side apply request exactly as
//!    `kube_apply` has kube build it (URL with `fieldManager`, JSON body), without the network.
//!
//! CPU (user + system from `/proc/self/stat`) and RSS (`VmRSS`, `VmHWM`) are read before and after
//! each phase; they cover the whole process, the driver included. A `failed` event, or a pass that
//! misses events by its deadline, makes the exit status non-zero (after the table is printed).

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use sw_bus::{Bus, CloudEvent};
use sw_contracts::AppId;
use sw_contracts::executor::{
    ComponentResult, ComponentTarget, K8sApplyCommand, ObjectRef, RenderedComponent, TraitSpec,
};
use sw_k8s_executor::kube_apply::FIELD_MANAGER;
use sw_k8s_executor::render;
use sw_k8s_executor::service::{self, APPLY_COMMAND, StaticClusters};
use sw_loadtests::proc_stats::{self, Sample, mib};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The cluster id the commands name; the emulator is the only cluster.
const CLUSTER: &str = "bench";
/// One of the namespaces the emulator has from the start.
const NAMESPACE: &str = "default";
/// The app instance of every component instance here.
const APP_INSTANCE: &str = "bench";
/// How long the warm-up command may take.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-call timeout of the executor's cluster client.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Microbenchmark iterations run before the measured ones.
const MICRO_WARMUP: usize = 500;
/// How long the executor may take to drain and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of each emulator control request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::from_env()?;
    // The executor's warnings (retries, conflicts) on stderr; RUST_LOG=info shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = sw_config::Config::load(None).context("configuration (run loadtests/executor-bench.sh)")?;
    let bus = Bus::connect(&cfg.nats).await.context("NATS")?;
    let kube_cfg = kube::Config::new(opts.k8s_url.parse().context("SW_BENCH_K8S_URL")?);
    let clusters = StaticClusters::new().with_config(CLUSTER, kube_cfg, CALL_TIMEOUT)?;
    let mut svc = service::build(&cfg, bus.clone(), Arc::new(clusters)).await.context("executor build")?;
    if let Some(c) = opts.concurrency {
        svc.consumer_config_mut().concurrency = c;
    }
    let concurrency = svc.consumer_config_mut().concurrency;
    let events = subscribe(&bus).await?;
    let stop = CancellationToken::new();
    let executor = tokio::spawn(svc.run_until_stopped(stop.clone()));

    let outcome = run(&opts, &bus, events, concurrency).await;

    stop.cancel();
    match tokio::time::timeout(STOP_TIMEOUT, executor).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("executor-bench: the executor stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("executor-bench: the executor task failed: {e}"),
        Err(_) => eprintln!("executor-bench: the executor did not stop within {STOP_TIMEOUT:?}"),
    }
    // The run's databases are dropped by the script; its streams go here.
    let js = bus.jetstream();
    js.delete_stream(bus.names().events_stream()).await.ok();
    js.delete_stream(bus.names().commands_stream()).await.ok();
    outcome
}

/// Settings from the environment.
struct Opts {
    k8s_url: String,
    emulator_pid: Option<u32>,
    n: usize,
    micro_iters: usize,
    pass_timeout: Duration,
    concurrency: Option<usize>,
    clk_tck: f64,
}

impl Opts {
    fn from_env() -> anyhow::Result<Self> {
        let k8s_url = std::env::var("SW_BENCH_K8S_URL")
            .context("SW_BENCH_K8S_URL is not set (run loadtests/executor-bench.sh)")?;
        let n: usize = number("SW_BENCH_N")?.unwrap_or(300);
        let micro_iters: usize = number("SW_BENCH_MICRO_ITERS")?.unwrap_or(20_000);
        if n == 0 || micro_iters == 0 {
            bail!("SW_BENCH_N and SW_BENCH_MICRO_ITERS must be at least 1");
        }
        let concurrency: Option<usize> = number("SW_BENCH_CONCURRENCY")?;
        if concurrency == Some(0) {
            bail!("SW_BENCH_CONCURRENCY must be at least 1");
        }
        let clk_tck: u32 = number("SW_BENCH_CLK_TCK")?.unwrap_or(100);
        Ok(Self {
            k8s_url: k8s_url.trim_end_matches('/').to_owned(),
            emulator_pid: number("SW_BENCH_EMULATOR_PID")?,
            n,
            micro_iters,
            pass_timeout: Duration::from_secs(number("SW_BENCH_TIMEOUT_SECS")?.unwrap_or(300)),
            concurrency,
            clk_tck: f64::from(clk_tck.max(1)),
        })
    }
}

fn number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().parse().with_context(|| format!("{name}={v}"))?)),
        _ => Ok(None),
    }
}

/// An executor event as the driver saw it.
struct Seen {
    command_id: String,
    at: Instant,
    /// `None` for `applied`; the event name and reason otherwise.
    failure: Option<String>,
}

/// Reads the run's `executor.*` events from JetStream (an ephemeral consumer without acks) on a
/// task of its own, stamping each with the time it arrived.
async fn subscribe(bus: &Bus) -> anyhow::Result<mpsc::UnboundedReceiver<Seen>> {
    let stream = bus.jetstream().get_stream(bus.names().events_stream()).await.context("events stream")?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: bus.names().event_subject("executor.>"),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(300),
            ..Default::default()
        })
        .await
        .context("events consumer")?;
    let mut messages = consumer.messages().await.context("events consumer")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            let at = Instant::now();
            let Ok(msg) = msg else { continue };
            let seen = match serde_json::from_slice::<CloudEvent>(&msg.payload) {
                Ok(ev) => match serde_json::from_value::<ComponentResult>(ev.data.clone()) {
                    Ok(r) => Seen {
                        failure: (ev.name() != "executor.component.applied").then(|| {
                            format!(
                                "{} {}: {}",
                                ev.name(),
                                r.reason.as_deref().unwrap_or("-"),
                                r.message.as_deref().unwrap_or("-")
                            )
                        }),
                        command_id: r.command_id,
                        at,
                    },
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            if tx.send(seen).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

async fn run(
    opts: &Opts,
    bus: &Bus,
    mut events: mpsc::UnboundedReceiver<Seen>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
    let emulator =
        Emulator { http, base: opts.k8s_url.clone(), pid: opts.emulator_pid, clk_tck: opts.clk_tck };
    let component = component();
    let app_id = AppId::parse("bench").context("app id")?;

    eprintln!("warm-up: one apply...");
    let warm = apply_command("warmup-1", target(&app_id, "warmup"), 1, &component);
    let t = Instant::now();
    bus.publish_command(APPLY_COMMAND, &warm.command_id, None, &warm).await?;
    let deadline = tokio::time::Instant::now() + WARMUP_TIMEOUT;
    loop {
        let seen = tokio::time::timeout_at(deadline, events.recv())
            .await
            .context("the warm-up command got no event in time")?
            .context("the event reader stopped")?;
        if seen.command_id == warm.command_id {
            if let Some(f) = seen.failure {
                bail!("the warm-up command failed: {f}");
            }
            break;
        }
    }
    eprintln!("warm-up applied in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);

    let bench = Bench { opts, bus, emulator: &emulator, app_id: &app_id, component: &component };
    let mut passes = Vec::new();
    for (label, revision) in [("create (rev 1)", 1), ("update (rev 2)", 2)] {
        eprintln!("{label}: {} commands...", opts.n);
        let p = bench.pass(&mut events, label, revision).await?;
        passes.push(p);
    }
    eprintln!("own time: {} iterations of render + apply request building...", opts.micro_iters);
    let micro = micro(opts, &app_id, &component)?;

    print_report(opts, concurrency, &passes, &micro);

    let failed: usize = passes.iter().map(|p| p.failures.len()).sum();
    let missing: usize = passes.iter().map(|p| p.missing).sum();
    if failed + missing > 0 {
        for p in &passes {
            for f in p.failures.iter().take(5) {
                eprintln!("{}: {f}", p.label);
            }
        }
        bail!("{failed} command(s) failed and {missing} got no event in time");
    }
    Ok(())
}

/// One pass's figures.
struct Pass {
    label: &'static str,
    commands: usize,
    applied: usize,
    failures: Vec<String>,
    missing: usize,
    /// First publish → last event.
    wall: Duration,
    /// Publish → event, of the applied commands, sorted.
    latencies: Vec<Duration>,
    requests: Requests,
    usage: Usage,
    emulator_cpu: Option<f64>,
}

/// What a pass needs.
struct Bench<'a> {
    opts: &'a Opts,
    bus: &'a Bus,
    emulator: &'a Emulator,
    app_id: &'a AppId,
    component: &'a RenderedComponent,
}

impl Bench<'_> {
    /// Publishes `opts.n` apply commands at `revision` and waits for their events.
    async fn pass(
        &self,
        events: &mut mpsc::UnboundedReceiver<Seen>,
        label: &'static str,
        revision: u64,
    ) -> anyhow::Result<Pass> {
        let Bench { opts, bus, emulator, app_id, component } = *self;
        let commands: Vec<K8sApplyCommand> = (0..opts.n)
            .map(|i| {
                apply_command(&format!("r{revision}-{i}"), target(app_id, &instance(i)), revision, component)
            })
            .collect();
        let mut expected: HashSet<String> = commands.iter().map(|c| c.command_id.clone()).collect();
        let since = emulator.last_request_id().await?;
        let emu_cpu0 = emulator.cpu_secs();
        let before = Sample::now(opts.clk_tck);
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + opts.pass_timeout;

        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move {
                let mut sent = HashMap::with_capacity(commands.len());
                for c in &commands {
                    let t = Instant::now();
                    bus.publish_command(APPLY_COMMAND, &c.command_id, None, c).await?;
                    sent.insert(c.command_id.clone(), t);
                }
                Ok::<_, sw_bus::BusError>(sent)
            }
        });

        let mut seen = Vec::with_capacity(opts.n);
        while !expected.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(s)) => {
                    if expected.remove(&s.command_id) {
                        seen.push(s);
                    }
                }
                Ok(None) => bail!("the event reader stopped"),
                Err(_) => break,
            }
        }
        let last_event = seen.iter().map(|s| s.at).max().unwrap_or(started);
        let after = Sample::now(opts.clk_tck);
        let emu_cpu1 = emulator.cpu_secs();
        let sent = tokio::time::timeout_at(deadline + Duration::from_secs(5), publisher)
            .await
            .context("publishing did not finish in time")?
            .context("publisher task")?
            .context("publish")?;

        let mut failures = Vec::new();
        let mut latencies = Vec::with_capacity(seen.len());
        for s in seen {
            match s.failure {
                Some(f) => failures.push(format!("{}: {f}", s.command_id)),
                None => {
                    if let Some(t) = sent.get(&s.command_id) {
                        latencies.push(s.at.saturating_duration_since(*t));
                    }
                }
            }
        }
        latencies.sort();
        Ok(Pass {
            label,
            commands: opts.n,
            applied: latencies.len(),
            missing: expected.len(),
            failures,
            wall: last_event.saturating_duration_since(started),
            latencies,
            requests: emulator.requests_since(since).await?,
            usage: Usage { before, after },
            emulator_cpu: emu_cpu0.zip(emu_cpu1).map(|(a, b)| b - a),
        })
    }
}

/// The microbenchmark's figures.
struct Micro {
    iterations: usize,
    objects: usize,
    body_bytes: usize,
    /// Per command, sorted.
    times: Vec<Duration>,
    usage: Usage,
}

/// `render::render` + one server-side apply request per object, built as `Cluster::apply_all` has
/// kube build it (`Api::namespaced_with` → `Request::patch` with `PatchParams::apply(FIELD_MANAGER)`
/// and `Patch::Apply(object)`: URL with the query, headers, the object serialised as the body).
/// Not included: the client's tower stack and the connection, i.e. what needs a server.
fn micro(opts: &Opts, app_id: &AppId, component: &RenderedComponent) -> anyhow::Result<Micro> {
    let targets: Vec<ComponentTarget> = (0..opts.n.max(1)).map(|i| target(app_id, &instance(i))).collect();
    let params = PatchParams::apply(FIELD_MANAGER);
    let mut times = Vec::with_capacity(opts.micro_iters);
    let (mut objects, mut body_bytes) = (0, 0);
    let mut before = None;
    for i in 0..MICRO_WARMUP + opts.micro_iters {
        if i == MICRO_WARMUP {
            before = Some(Sample::now(opts.clk_tck));
        }
        let t = Instant::now();
        let rendered = render::render(&targets[i % targets.len()], (i % 1000) as u64 + 1, component)?;
        let mut bytes = 0;
        for (object, r) in rendered.objects.iter().zip(&rendered.refs) {
            let url = DynamicObject::url_path(&api_resource(r)?, Some(NAMESPACE));
            let request = kube::core::Request::new(url).patch(&r.name, &params, &Patch::Apply(object))?;
            bytes += request.body().len();
            black_box(request);
        }
        let took = t.elapsed();
        if i >= MICRO_WARMUP {
            times.push(took);
            objects = rendered.objects.len();
            body_bytes = bytes;
        }
    }
    let after = Sample::now(opts.clk_tck);
    times.sort();
    let before = before.unwrap_or(after);
    Ok(Micro { iterations: opts.micro_iters, objects, body_bytes, times, usage: Usage { before, after } })
}

/// The endpoint of the kinds this benchmark renders, as `kube_apply`'s built-in table has them.
fn api_resource(r: &ObjectRef) -> anyhow::Result<ApiResource> {
    let plural = match (r.api_version.as_str(), r.kind.as_str()) {
        ("v1", "ConfigMap") => "configmaps",
        ("v1", "Service") => "services",
        ("apps/v1", "Deployment") => "deployments",
        (v, k) => bail!("the benchmark renders no {v}/{k}"),
    };
    let (group, version) = r.api_version.split_once('/').unwrap_or(("", r.api_version.as_str()));
    Ok(ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &r.kind), plural))
}

/// The three-object component every command applies.
fn component() -> RenderedComponent {
    RenderedComponent {
        component_type: "K8S_MICROSERVICE".into(),
        component_name: "web".into(),
        package_version: Some("1.0.0".into()),
        workload: json!({
            "kind": "Deployment",
            "replicas": 2,
            "containers": [{
                "name": "web",
                "image": "registry.example.com/shop/web:1.4.2",
                "ports": [{ "containerPort": 8080 }],
                "env": [{ "name": "LOG_LEVEL", "value": "info" }, { "name": "HTTP_PORT", "value": "8080" }],
            }],
        }),
        traits: vec![
            TraitSpec {
                name: "configmap".into(),
                runtime: None,
                spec: json!({
                    "data": { "app.yaml": "server:\n  port: 8080\nfeatures:\n  search: true\n", "mode": "prod" },
                    "mountPath": "/etc/web",
                }),
            },
            TraitSpec {
                name: "service.trait.abm.io".into(),
                runtime: None,
                spec: json!({ "ports": [{ "port": 80, "targetPort": 8080 }] }),
            },
        ],
    }
}

fn instance(i: usize) -> String {
    format!("c{i:05}")
}

fn target(app_id: &AppId, component_instance: &str) -> ComponentTarget {
    ComponentTarget {
        cluster_id: CLUSTER.into(),
        namespace: NAMESPACE.into(),
        app_id: app_id.clone(),
        stage_id: Some("prod".into()),
        app_instance: APP_INSTANCE.into(),
        component_instance: component_instance.into(),
    }
}

fn apply_command(
    command_id: &str,
    target: ComponentTarget,
    revision: u64,
    component: &RenderedComponent,
) -> K8sApplyCommand {
    K8sApplyCommand {
        command_id: command_id.into(),
        target,
        revision,
        health_deadline_secs: 300,
        component: component.clone(),
    }
}

/// The emulator's request log and process.
struct Emulator {
    http: reqwest::Client,
    base: String,
    pid: Option<u32>,
    clk_tck: f64,
}

/// API requests the emulator served in a pass.
#[derive(Default)]
struct Requests {
    total: usize,
    by_method: Vec<(String, usize)>,
}

impl Emulator {
    async fn log(&self, since: u64) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/_control/requests?since={since}", self.base);
        let resp = self.http.get(&url).send().await.context("emulator request log")?;
        if !resp.status().is_success() {
            bail!("GET {url} answered {}", resp.status());
        }
        let body: Value = resp.json().await.context("emulator request log")?;
        let items = body["items"].as_array().context("emulator request log without items")?;
        Ok(items.clone())
    }

    async fn last_request_id(&self) -> anyhow::Result<u64> {
        Ok(self.log(0).await?.iter().filter_map(|r| r["id"].as_u64()).max().unwrap_or(0))
    }

    async fn requests_since(&self, since: u64) -> anyhow::Result<Requests> {
        let items = self.log(since).await?;
        let mut by_method: Vec<(String, usize)> = Vec::new();
        for r in &items {
            let m = r["method"].as_str().unwrap_or("?").to_ascii_uppercase();
            match by_method.iter_mut().find(|(k, _)| *k == m) {
                Some((_, n)) => *n += 1,
                None => by_method.push((m, 1)),
            }
        }
        Ok(Requests { total: items.len(), by_method })
    }

    fn cpu_secs(&self) -> Option<f64> {
        proc_stats::cpu_secs_of(self.pid?, self.clk_tck)
    }
}

/// A phase's CPU and memory, before and after.
struct Usage {
    before: Sample,
    after: Sample,
}

impl Usage {
    fn cpu(&self) -> f64 {
        self.after.cpu_secs - self.before.cpu_secs
    }
}

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

fn print_report(opts: &Opts, concurrency: usize, passes: &[Pass], micro: &Micro) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!(
        "k8s-executor against the emulator: {} apply commands per pass, 3 objects each \
         (ConfigMap, Deployment, Service); consumer concurrency {concurrency}",
        opts.n
    );
    println!(
        "{:<15} | {:>8} {:>6} | {:>7} {:>7} | {:>8} {:>8} {:>8} | {:>8} {:<22} | {:>6} {:>8} | {:>8} | {:>17} {:>8}",
        "pass",
        "applied",
        "failed",
        "wall s",
        "cmd/s",
        "p50 ms",
        "p95 ms",
        "max ms",
        "emu reqs",
        "(by method)",
        "CPU s",
        "s/1k cmd",
        "emu CPU",
        "RSS MiB before→",
        "HWM MiB"
    );
    for p in passes {
        let methods: Vec<String> = p.requests.by_method.iter().map(|(m, n)| format!("{m} {n}")).collect();
        let emu_cpu = p.emulator_cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.2} s"));
        println!(
            "{:<15} | {:>4}/{:<3} {:>6} | {:>7.2} {:>7.1} | {:>8.1} {:>8.1} {:>8.1} | {:>8} {:<22} | {:>6.2} {:>8.2} | {:>8} | {:>7.1} → {:>7.1} {:>8.1}",
            p.label,
            p.applied,
            p.commands,
            p.failures.len() + p.missing,
            p.wall.as_secs_f64(),
            p.applied as f64 / p.wall.as_secs_f64().max(1e-9),
            ms(quantile(&p.latencies, 0.50)),
            ms(quantile(&p.latencies, 0.95)),
            ms(p.latencies.last().copied().unwrap_or_default()),
            p.requests.total,
            format!("({})", methods.join(", ")),
            p.usage.cpu(),
            p.usage.cpu() * 1000.0 / p.commands as f64,
            emu_cpu,
            mib(p.usage.before.rss_kib),
            mib(p.usage.after.rss_kib),
            mib(p.usage.after.hwm_kib),
        );
    }
    for p in passes {
        let wall = p.wall.as_secs_f64().max(1e-9);
        let emu = p.emulator_cpu.map_or_else(String::new, |c| {
            let busy = 100.0 * c / wall;
            let bound =
                if busy >= 80.0 { ": throughput bound by the emulator, not the executor" } else { "" };
            format!(", emulator {busy:.0} %{bound}")
        });
        println!(
            "{}: CPU busy {:.0} % of the pass (this process, of one core){emu}",
            p.label,
            100.0 * p.usage.cpu() / wall
        );
    }
    println!();
    println!(
        "executor's own time per command (render + {} apply requests built, {} body bytes; no network):",
        micro.objects, micro.body_bytes
    );
    println!(
        "{:>10} | {:>8} {:>8} {:>8} {:>8} | {:>6} {:>8} | {:>17} {:>8}",
        "iterations",
        "mean µs",
        "p50 µs",
        "p99 µs",
        "max µs",
        "CPU s",
        "s/1k cmd",
        "RSS MiB before→",
        "HWM MiB"
    );
    println!(
        "{:>10} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>6.2} {:>8.3} | {:>7.1} → {:>7.1} {:>8.1}",
        micro.iterations,
        us(mean(&micro.times)),
        us(quantile(&micro.times, 0.50)),
        us(quantile(&micro.times, 0.99)),
        us(micro.times.last().copied().unwrap_or_default()),
        micro.usage.cpu(),
        micro.usage.cpu() * 1000.0 / micro.iterations as f64,
        mib(micro.usage.before.rss_kib),
        mib(micro.usage.after.rss_kib),
        mib(micro.usage.after.hwm_kib),
    );
    println!();
    println!(
        "CPU (user+sys) and RSS are this process's: the executor and the benchmark driver (publishing \
         commands, reading events) together; \"emu CPU\" is the emulator's. Latency is publish → \
         applied event (consumer, MariaDB, 3 applies, outbox relay); all commands of a pass are \
         published at once, so it includes the wait in the queue."
    );
}
