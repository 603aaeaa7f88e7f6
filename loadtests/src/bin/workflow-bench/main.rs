//! The workflow engine under 200 concurrent launches: launches/s, launch → SUCCESS, and the engine's
//! own overhead per step (the time not spent waiting on the executor).
//!
//! `workflow-bench` is driven by `loadtests/workflow-bench.sh`, which ensures the infrastructure,
//! exports an isolated run (`SREWORKS_NATS__PREFIX`, `SREWORKS_DATABASE__NAME_PREFIX`, the bucket,
//! the admin password, the appmeta key), starts `tests/k8s-emulator/emulator.py` and passes:
//!
//!   SW_BENCH_K8S_URL          the emulator's base URL (http://127.0.0.1:<port>)
//!   SW_BENCH_EMULATOR_PID     the emulator's pid, to report its CPU time too (optional)
//!   SW_BENCH_N                launches sent at once (default 200)
//!   SW_BENCH_TIMEOUT_SECS     how long after the first launch every deployment must have ended
//!                             (default 300); one that has not is counted stuck
//!   SW_BENCH_CLK_TCK          clock ticks per second of /proc/*/stat (`getconf CLK_TCK`, default 100)
//!
//! The whole suite runs in this process (`sreworks::start` with every target, as `sreworks serve`
//! does, the gateway on a free port), so the CPU and RSS printed are the suite's and the driver's
//! together. The driver works like a user and an external subscriber:
//! 1. set-up through the gateway with an admin token: the emulator registered as cluster `emu`, app
//!    `wfbench` created, the package of [`app`] imported;
//! 2. warm-up: one launch, followed to SUCCESS, so pools, caches and the cluster client exist;
//! 3. `SW_BENCH_N` launches released at once (`POST /v1/deployments/launch`, each with its own
//!    `appInstanceName`), followed by a JetStream subscription to every event (plus a core NATS
//!    subscription to the apply commands) until each deployment ended or the deadline passed;
//! 4. the figures of [`timeline`] and [`report`], with the suite's warnings (deadlocks, retried
//!    passes) and the bus's retry counters counted by [`tally`]. Any launch refused, deployment
//!    failed, stuck or lost makes the exit status non-zero (after the report is printed).

mod app;
mod own;
mod report;
mod tally;
mod timeline;

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use sw_bus::{Bus, CloudEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

use sw_loadtests::proc_stats::{self, Sample};

use crate::report::Figures;
use crate::timeline::{Ev, Seen, ending};

/// The cluster id the emulator is registered as.
const CLUSTER: &str = "emu";
/// One of the namespaces the emulator has from the start.
const NAMESPACE: &str = "default";
const STAGE: &str = "prod";
/// How long the warm-up launch may take.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline of one HTTP request of the driver.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the suite may take to drain and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::from_env()?;
    // The suite's warnings on stderr (RUST_LOG=info shows more), and counted for the report.
    let warnings = tally::Warnings::default();
    let timings = own::Timings::default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter))
        .with(warnings.clone().with_filter(LevelFilter::WARN))
        .with(
            timings.clone().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(sw_bus::consumer::TIMING_TARGET, Level::DEBUG)
                    .with_target(sw_workflow::results::TIMING_TARGET, Level::DEBUG),
            ),
        )
        .init();
    let mut cfg = sw_config::Config::load(None).context("configuration (run loadtests/workflow-bench.sh)")?;
    // The gateway on a free port of this process; 200 launches at once are not abuse.
    cfg.gateway.listen = ([127, 0, 0, 1], 0).into();
    cfg.gateway.rate_limit_per_minute = cfg.gateway.rate_limit_per_minute.max(1_000_000_000);

    let bus = Bus::connect(&cfg.nats).await.context("NATS")?;
    bus.ensure_streams().await.context("streams")?;
    let (tx, events) = mpsc::unbounded_channel();
    subscribe_events(&bus, tx.clone()).await?;
    subscribe_commands(&bus, tx).await?;

    let stop = CancellationToken::new();
    let targets: sreworks::Targets = "all".parse().map_err(anyhow::Error::msg)?;
    let running = sreworks::start(&cfg, &targets, sw_telemetry::metrics_only(), stop.clone())
        .await
        .context("starting the suite")?;
    let addr = running.gateway.context("no gateway")?;
    let suite = tokio::spawn(running.wait());

    let settings = format!(
        "workflow poll_ms {} concurrency {} results_concurrency {} launch_concurrency {}; executor \
         concurrency {} health_poll_ms {}",
        cfg.workflow.poll_ms,
        cfg.workflow.concurrency,
        cfg.workflow.results_concurrency,
        cfg.workflow.launch_concurrency,
        cfg.executor.concurrency,
        cfg.executor.health_poll_ms
    );
    let outcome = async {
        let client = Client::new(format!("http://{addr}"), &cfg).await?;
        run(&opts, &client, events, settings, &warnings, &timings).await
    }
    .await;

    stop.cancel();
    match tokio::time::timeout(STOP_TIMEOUT, suite).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("workflow-bench: the suite stopped with an error: {e:#}"),
        Ok(Err(e)) => eprintln!("workflow-bench: the suite task failed: {e}"),
        Err(_) => eprintln!("workflow-bench: the suite did not stop within {STOP_TIMEOUT:?}"),
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
    timeout: Duration,
    clk_tck: f64,
}

impl Opts {
    fn from_env() -> anyhow::Result<Self> {
        let k8s_url = std::env::var("SW_BENCH_K8S_URL")
            .context("SW_BENCH_K8S_URL is not set (run loadtests/workflow-bench.sh)")?;
        let n: usize = number("SW_BENCH_N")?.unwrap_or(200);
        if n == 0 {
            bail!("SW_BENCH_N must be at least 1");
        }
        let clk_tck: u32 = number("SW_BENCH_CLK_TCK")?.unwrap_or(100);
        Ok(Self {
            k8s_url: k8s_url.trim_end_matches('/').to_owned(),
            emulator_pid: number("SW_BENCH_EMULATOR_PID")?,
            n,
            timeout: Duration::from_secs(number("SW_BENCH_TIMEOUT_SECS")?.unwrap_or(300)),
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

/// What the subscriptions hand the driver.
enum Saw {
    Event(Ev),
    /// An apply command on NATS, with when the driver received it.
    Command(String, DateTime<Utc>),
}

/// Every event of the run from JetStream (an ephemeral consumer without acks), on a task of its own.
async fn subscribe_events(bus: &Bus, tx: mpsc::UnboundedSender<Saw>) -> anyhow::Result<()> {
    let stream = bus.jetstream().get_stream(bus.names().events_stream()).await.context("events stream")?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: bus.names().events_wildcard(),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(300),
            ..Default::default()
        })
        .await
        .context("events consumer")?;
    let mut messages = consumer.messages().await.context("events consumer")?;
    tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            let Ok(msg) = msg else { continue };
            let Ok(ev) = serde_json::from_slice::<CloudEvent>(&msg.payload) else { continue };
            let published = msg.info().ok().and_then(|i| {
                i64::try_from(i.published.unix_timestamp_nanos()).ok().map(DateTime::from_timestamp_nanos)
            });
            let seen = Ev::new(ev.name(), ev.subject.as_deref(), ev.time, published, &ev.data);
            if tx.send(Saw::Event(seen)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// The apply commands as they go out on NATS. The commands stream is a work queue, which takes no
/// second consumer, so this is a plain core subscription beside it: it sees each publish.
async fn subscribe_commands(bus: &Bus, tx: mpsc::UnboundedSender<Saw>) -> anyhow::Result<()> {
    let subject = bus.names().command_subject("k8s.apply");
    let mut sub = bus.client().subscribe(subject).await.context("commands subscription")?;
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let at = Utc::now();
            let Ok(cmd) = serde_json::from_slice::<Value>(&msg.payload) else { continue };
            let Some(id) = cmd["commandId"].as_str() else { continue };
            if tx.send(Saw::Command(id.to_owned(), at)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// The gateway as the admin.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Waits for `/readyz`, then logs in as the admin.
    async fn new(base: String, cfg: &sw_config::Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status() == 200
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("the suite did not become ready within 20 s");
        }
        let password = cfg.auth.admin_password.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
        let r = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", password.as_str()),
                ("client_id", "swcli"),
            ])
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if status != 200 {
            bail!("admin login: {status} {body}");
        }
        let token = body["access_token"].as_str().context("no access_token")?.to_owned();
        Ok(Self { http, base, token })
    }

    /// A request as the admin; the status and the body (`null` when empty or not JSON).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(method, path, Some(("application/json", serde_json::to_vec(body)?))).await
    }

    /// `POST /v1/deployments/launch` of the benchmark's launch file for app instance `instance`.
    async fn launch(&self, package: u64, instance: &str) -> anyhow::Result<(u16, Value)> {
        let path = format!(
            "/v1/deployments/launch?appPackageId={package}&clusterId={CLUSTER}&namespaceId={NAMESPACE}\
             &stageId={STAGE}&appInstanceName={instance}"
        );
        self.send(reqwest::Method::POST, &path, Some(("application/yaml", app::launch_file().into_bytes())))
            .await
    }
}

/// Registers the emulator, creates the app and imports its package; returns the package id.
async fn set_up(opts: &Opts, c: &Client) -> anyhow::Result<u64> {
    let cluster = json!({
        "clusterId": CLUSTER,
        "name": "the emulator",
        "apiUrl": opts.k8s_url,
        "credentials": { "kind": "token", "token": "emu-token-0123456789" },
    });
    let (status, body) = c.json(reqwest::Method::POST, "/v1/clusters", &cluster).await?;
    if status != 201 {
        bail!("register the emulator: {status} {body}");
    }
    let (status, body) = c.json(reqwest::Method::POST, "/v1/apps", &json!({ "appId": app::APP_ID })).await?;
    if status != 201 && status != 409 {
        bail!("create the app: {status} {body}");
    }
    let path = format!("/v1/apps/{}/app-packages/import", app::APP_ID);
    let (status, body) =
        c.send(reqwest::Method::POST, &path, Some(("application/zip", app::package()?))).await?;
    if status != 201 && status != 200 {
        bail!("import the package: {status} {body}");
    }
    body["id"].as_u64().with_context(|| format!("no package id in {body}"))
}

/// One launch of the measured batch.
struct Launched {
    instance: String,
    sent: DateTime<Utc>,
    answered: DateTime<Utc>,
    result: Result<u64, String>,
}

async fn run(
    opts: &Opts,
    client: &Client,
    mut events: mpsc::UnboundedReceiver<Saw>,
    settings: String,
    warnings: &tally::Warnings,
    timings: &own::Timings,
) -> anyhow::Result<()> {
    let package = set_up(opts, client).await?;
    let mut seen = Seen::default();

    eprintln!("warm-up: one launch to SUCCESS...");
    let t = std::time::Instant::now();
    let (status, body) = client.launch(package, "wfbench-warmup").await?;
    if status != 201 {
        bail!("the warm-up launch: {status} {body}");
    }
    let warm = body["deployAppId"].as_u64().context("no deployAppId")?;
    let deadline = tokio::time::Instant::now() + WARMUP_TIMEOUT;
    while seen.ended(warm).is_none() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(s)) => record(&mut seen, s),
            Ok(None) => bail!("the subscriptions stopped"),
            Err(_) => bail!("the warm-up deployment {warm} did not end within {WARMUP_TIMEOUT:?}"),
        }
    }
    let warm_end = seen.ended(warm).map(|e| (e.name.clone(), e.reason.clone()));
    if let Some((name, reason)) = warm_end
        && name != "deployment.app.succeeded"
    {
        bail!("the warm-up deployment {warm} ended with {name}: {}", reason.unwrap_or_default());
    }
    eprintln!("warm-up succeeded in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);

    let emulator = Emulator::new(opts)?;
    let since = emulator.last_request_id().await.ok();
    let emu_cpu0 = emulator.cpu_secs();
    let metrics = sw_telemetry::recorder();
    let (warnings0, counters0) = (warnings.snapshot(), tally::counters(&metrics.render()));
    timings.reset();
    let before = Sample::now(opts.clk_tck);
    eprintln!("{} launches at once...", opts.n);

    // Every launch waits on one signal, so they leave together.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut launches = tokio::task::JoinSet::new();
    for i in 0..opts.n {
        let mut go = go_rx.clone();
        let client =
            Client { http: client.http.clone(), base: client.base.clone(), token: client.token.clone() };
        let instance = format!("wfbench-{i:05}");
        launches.spawn(async move {
            let _ = go.wait_for(|v| *v).await;
            let sent = Utc::now();
            let result = match client.launch(package, &instance).await {
                Ok((201, body)) => {
                    body["deployAppId"].as_u64().ok_or_else(|| format!("201 without an id: {body}"))
                }
                Ok((status, body)) => Err(format!("{status} {body}")),
                Err(e) => Err(format!("{e:#}")),
            };
            Launched { instance, sent, answered: Utc::now(), result }
        });
    }
    let started = Utc::now();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    go_tx.send_replace(true);

    let mut launched = Vec::with_capacity(opts.n);
    let mut pending_launches = opts.n;
    loop {
        if pending_launches == 0
            && launched
                .iter()
                .all(|l: &Launched| l.result.as_ref().map_or(true, |id| seen.ended(*id).is_some()))
        {
            break;
        }
        tokio::select! {
            joined = launches.join_next(), if pending_launches > 0 => {
                pending_launches -= 1;
                launched.push(joined.context("a launch task panicked")?.context("a launch task")?);
            }
            saw = events.recv() => match saw {
                Some(s) => record(&mut seen, s),
                None => bail!("the subscriptions stopped"),
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // Whatever arrived in the meantime (a launch answered after its deployment ended).
    while let Ok(s) = events.try_recv() {
        record(&mut seen, s);
    }
    let after = Sample::now(opts.clk_tck);
    let emu_cpu1 = emulator.cpu_secs();
    let (warnings1, counters1) = (warnings.snapshot(), tally::counters(&metrics.render()));
    launches.abort_all();
    let emulator_requests = match since {
        Some(s) => emulator.requests_since(s).await.ok(),
        None => None,
    };

    let mut f = figures(opts, &seen, &launched, started, settings);
    f.before = before;
    f.after = after;
    f.emulator_cpu = emu_cpu0.zip(emu_cpu1).map(|(a, b)| b - a);
    f.emulator_requests = emulator_requests;
    f.warnings = tally::warnings_between(&warnings0, &warnings1);
    f.bus_counters = tally::counters_between(&counters0, &counters1);
    let text = metrics.render();
    f.own_pass = tally::own_time(&text, sw_workflow::service::PASS_SECONDS, "");
    let consumer = format!("consumer=\"{}\"", sw_workflow::results::DURABLE);
    f.own_result = tally::own_time(&text, sw_bus::consumer::HANDLE_SECONDS, &consumer);
    f.own = timings.own_time(&f.steps_of);
    report::print(&mut f);
    let bad = f.refused.len() + f.failed.len() + f.stuck.len() + f.lost.len();
    if bad > 0 {
        bail!(
            "{} refused, {} failed, {} stuck, {} lost",
            f.refused.len(),
            f.failed.len(),
            f.stuck.len(),
            f.lost.len()
        );
    }
    Ok(())
}

fn record(seen: &mut Seen, s: Saw) {
    match s {
        Saw::Event(ev) => seen.add(ev),
        Saw::Command(id, at) => {
            seen.commands.entry(id).or_insert(at);
        }
    }
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6
}

fn figures(
    opts: &Opts,
    seen: &Seen,
    launched: &[Launched],
    started: DateTime<Utc>,
    settings: String,
) -> Figures {
    let mut f = Figures {
        n: opts.n,
        app: app::describe(),
        settings,
        accepted: 0,
        refused: Vec::new(),
        accept_wall: 0.0,
        answer_ms: Vec::new(),
        succeeded: 0,
        failed: Vec::new(),
        stuck: Vec::new(),
        lost: Vec::new(),
        timeout_secs: opts.timeout.as_secs(),
        complete_wall: 0.0,
        launch_to_success_ms: Vec::new(),
        timelines: Vec::new(),
        incomplete: Vec::new(),
        before: Sample::now(opts.clk_tck),
        after: Sample::now(opts.clk_tck),
        emulator_cpu: None,
        emulator_requests: None,
        warnings: Vec::new(),
        bus_counters: String::new(),
        own_pass: Default::default(),
        own_result: Default::default(),
        own: Default::default(),
        steps_of: Default::default(),
    };
    let mut last_accept = started;
    let mut last_success = started;
    let mut missing_launches = opts.n.saturating_sub(launched.len());
    for l in launched {
        let id = match &l.result {
            Ok(id) => *id,
            Err(e) => {
                f.refused.push(format!("{}: {e}", l.instance));
                continue;
            }
        };
        f.accepted += 1;
        last_accept = last_accept.max(l.answered);
        f.answer_ms.push(secs(l.sent, l.answered) * 1e3);
        let Some(evs) = seen.by_deployment.get(&id) else {
            f.lost.push(id);
            continue;
        };
        match seen.ended(id) {
            Some(e) if e.name == "deployment.app.succeeded" => {
                f.succeeded += 1;
                last_success = last_success.max(e.time);
                f.launch_to_success_ms.push(secs(l.sent, e.time) * 1e3);
                let mut comps: Vec<u64> = evs.iter().filter_map(|e| e.component_id).collect();
                comps.sort_unstable();
                comps.dedup();
                f.steps_of.insert(id, comps);
                match timeline::timeline(seen, id) {
                    Ok(t) => f.timelines.push(t),
                    Err(gap) => f.incomplete.push(format!("deployment {id}: {gap}")),
                }
            }
            Some(e) => {
                let executor = executor_failure(seen, id);
                f.failed.push(format!(
                    "deployment {id} ({}): {} {}{executor}",
                    l.instance,
                    ending(&e.name).unwrap_or_default(),
                    e.reason.clone().unwrap_or_default()
                ));
            }
            None => {
                let last = evs.last().map(|e| e.name.as_str()).unwrap_or("-");
                f.stuck.push(format!("deployment {id} ({}): last event {last}", l.instance));
            }
        }
    }
    // Launch tasks still unanswered at the deadline count as refused.
    while missing_launches > 0 {
        f.refused.push("no answer before the deadline".into());
        missing_launches -= 1;
    }
    f.accept_wall = secs(started, last_accept);
    f.complete_wall = secs(started, last_success);
    f
}

/// The executor's `failed` events for the commands of deployment `id`, as text.
fn executor_failure(seen: &Seen, id: u64) -> String {
    let mut out = String::new();
    for e in seen.by_deployment.get(&id).into_iter().flatten() {
        if let Some(c) = &e.command_id
            && let Some(f) = seen.executor_failed.get(c)
        {
            out.push_str(&format!("; executor: {}", f.reason.clone().unwrap_or_default()));
            break;
        }
    }
    out
}

/// The emulator's request log and process.
struct Emulator {
    http: reqwest::Client,
    base: String,
    pid: Option<u32>,
    clk_tck: f64,
}

impl Emulator {
    fn new(opts: &Opts) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
        Ok(Self { http, base: opts.k8s_url.clone(), pid: opts.emulator_pid, clk_tck: opts.clk_tck })
    }

    async fn log(&self, since: u64) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/_control/requests?since={since}", self.base);
        let resp = self.http.get(&url).send().await.context("emulator request log")?;
        if !resp.status().is_success() {
            bail!("GET {url} answered {}", resp.status());
        }
        let mut body: Value = resp.json().await.context("emulator request log")?;
        Ok(body["items"].as_array_mut().map(std::mem::take).unwrap_or_default())
    }

    async fn last_request_id(&self) -> anyhow::Result<u64> {
        Ok(self.log(0).await?.iter().filter_map(|r| r["id"].as_u64()).max().unwrap_or(0))
    }

    async fn requests_since(&self, since: u64) -> anyhow::Result<usize> {
        Ok(self.log(since).await?.len())
    }

    fn cpu_secs(&self) -> Option<f64> {
        proc_stats::cpu_secs_of(self.pid?, self.clk_tck)
    }
}
