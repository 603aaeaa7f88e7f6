//! The figures: quantiles and the printed report.

use sw_loadtests::proc_stats::{Sample, mib};

use crate::timeline::{StepTimes, Timeline};

/// The `q` quantile of `v` (nearest rank); sorts `v`.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Everything the report prints.
pub struct Figures {
    pub n: usize,
    pub app: String,
    pub settings: String,
    pub accepted: usize,
    /// Launches answered otherwise than 201 (or not at all), with a few of the answers.
    pub refused: Vec<String>,
    /// First launch sent → last 201, s.
    pub accept_wall: f64,
    /// Send → answer of the accepted launches, ms.
    pub answer_ms: Vec<f64>,
    /// Ended in SUCCESS.
    pub succeeded: usize,
    /// Ended otherwise, with the ending and why.
    pub failed: Vec<String>,
    /// Accepted but not ended by the deadline (stuck), with the last event seen.
    pub stuck: Vec<String>,
    /// Accepted, but not one event of them was seen (lost).
    pub lost: Vec<u64>,
    pub timeout_secs: u64,
    /// First launch sent → last SUCCESS, s.
    pub complete_wall: f64,
    /// Send → `deployment.app.succeeded`, ms.
    pub launch_to_success_ms: Vec<f64>,
    pub timelines: Vec<Timeline>,
    /// Successful deployments whose timeline had a gap, and the first gap.
    pub incomplete: Vec<String>,
    pub before: Sample,
    pub after: Sample,
    pub emulator_cpu: Option<f64>,
    pub emulator_requests: Option<usize>,
    /// The suite's warnings during the run, counted (see [`crate::tally`]).
    pub warnings: Vec<String>,
    /// The bus's retry counters that grew during the run.
    pub bus_counters: String,
    /// The workflow's own time per engine pass: quantile → ms, and how many passes.
    pub own_pass: (std::collections::BTreeMap<String, f64>, f64),
    /// The results consumer's transaction per message (begin to commit, the pass it carries
    /// included).
    pub own_result: (std::collections::BTreeMap<String, f64>, f64),
    /// The engine's own time per step, from the timing events.
    pub own: crate::own::OwnTime,
    /// Successful deployments: their component ids in step order.
    pub steps_of: std::collections::HashMap<u64, Vec<u64>>,
}

pub fn print(f: &mut Figures) {
    let ms = |v: &mut Vec<f64>, q: f64| quantile(v, q);
    println!();
    println!("workflow benchmark: {} launches at once through the gateway, each its own app instance", f.n);
    println!("app: {}", f.app);
    println!("settings: {}", f.settings);
    println!();
    let accept_rate = f.accepted as f64 / f.accept_wall.max(1e-9);
    let complete_rate = f.succeeded as f64 / f.complete_wall.max(1e-9);
    println!(
        "launches: {} accepted (201) in {:.2} s = {:.1} launches/s accepted; answer p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        f.accepted,
        f.accept_wall,
        accept_rate,
        ms(&mut f.answer_ms, 0.50),
        ms(&mut f.answer_ms, 0.99),
        ms(&mut f.answer_ms, 1.0),
    );
    println!(
        "completed: {} SUCCESS in {:.2} s = {:.1} deployments/s completed ({:.1} steps/s)",
        f.succeeded,
        f.complete_wall,
        complete_rate,
        complete_rate * crate::app::COMPONENTS.len() as f64,
    );
    println!(
        "outcome: {} succeeded, {} failed/waiting for an operator, {} stuck (not ended within {} s), {} lost (no event), {} refused",
        f.succeeded,
        f.failed.len(),
        f.stuck.len(),
        f.timeout_secs,
        f.lost.len(),
        f.refused.len()
    );
    for (label, list) in [("refused", &f.refused), ("failed", &f.failed), ("stuck", &f.stuck)] {
        for s in list.iter().take(5) {
            println!("  {label}: {s}");
        }
    }
    for id in f.lost.iter().take(5) {
        println!("  lost: deployment {id}");
    }
    println!(
        "launch→SUCCESS (send → deployment.app.succeeded): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(&mut f.launch_to_success_ms, 0.50),
        ms(&mut f.launch_to_success_ms, 0.95),
        ms(&mut f.launch_to_success_ms, 0.99),
        ms(&mut f.launch_to_success_ms, 1.0),
    );
    println!();
    let steps: Vec<StepTimes> = f.timelines.iter().flat_map(|t| t.steps.iter().copied()).collect();
    println!("per step, from event times ({} deployments, {} steps; ms):", f.timelines.len(), steps.len());
    println!("{:<58} | {:>8} {:>8} {:>8} {:>8} | {:>6}", "segment", "p50", "p95", "p99", "max", "n");
    let first: Vec<&StepTimes> = f.timelines.iter().filter_map(|t| t.steps.first()).collect();
    let later: Vec<&StepTimes> = f.timelines.iter().flat_map(|t| t.steps.iter().skip(1)).collect();
    let last: Vec<&StepTimes> = f.timelines.iter().filter_map(|t| t.steps.last()).collect();
    let rows: Vec<(&str, Vec<f64>)> = vec![
        ("start: app.created → first component.processing", first.iter().map(|s| s.handoff).collect()),
        ("hand-off: step's succeeded → next component.processing", later.iter().map(|s| s.handoff).collect()),
        (
            "dispatch: component.processing → apply command on NATS",
            steps.iter().map(|s| s.dispatch).collect(),
        ),
        ("result: executor healthy → component.succeeded", steps.iter().map(|s| s.result).collect()),
        (
            "  of which executor outbox: healthy stamped → JetStream",
            steps.iter().filter_map(|s| s.result_relay).collect(),
        ),
        (
            "  of which results consumer: JetStream → succeeded",
            steps.iter().filter_map(|s| s.result_relay.map(|r| s.result - r)).collect(),
        ),
        ("finish: last component.succeeded → app.succeeded", last.iter().map(|s| s.finish).collect()),
        ("ENGINE OVERHEAD PER STEP (all of the above)", steps.iter().map(StepTimes::overhead).collect()),
        (
            "executor: command on NATS → executor healthy (excluded)",
            steps.iter().map(|s| s.executor).collect(),
        ),
        (
            "workflow outbox: any deployment.* event stamped → JetStream",
            f.timelines.iter().flat_map(|t| t.relay.iter().copied()).collect(),
        ),
    ];
    for (label, mut v) in rows {
        println!(
            "{:<58} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>6}",
            label,
            quantile(&mut v, 0.50),
            quantile(&mut v, 0.95),
            quantile(&mut v, 0.99),
            quantile(&mut v, 1.0),
            v.len()
        );
    }
    let mut per_dep: Vec<f64> =
        f.timelines.iter().map(|t| t.overhead() / t.steps.len().max(1) as f64).collect();
    let mut totals: Vec<f64> = f.timelines.iter().map(|t| t.total).collect();
    let mut shares: Vec<f64> = f.timelines.iter().map(|t| 100.0 * t.overhead() / t.total.max(1e-9)).collect();
    println!(
        "per deployment: created → SUCCESS p50 {:.0} ms, p99 {:.0} ms; engine overhead / steps p50 {:.1} ms, p99 {:.1} ms; \
         engine share of created → SUCCESS p50 {:.0} %, p99 {:.0} %",
        quantile(&mut totals, 0.50),
        quantile(&mut totals, 0.99),
        quantile(&mut per_dep, 0.50),
        quantile(&mut per_dep, 0.99),
        quantile(&mut shares, 0.50),
        quantile(&mut shares, 0.99),
    );
    if !f.incomplete.is_empty() {
        println!(
            "{} successful deployments left out of the step figures (a gap in their timeline):",
            f.incomplete.len()
        );
        for s in f.incomplete.iter().take(3) {
            println!("  {s}");
        }
    }
    let mut overheads: Vec<f64> = steps.iter().map(StepTimes::overhead).collect();
    let p99 = quantile(&mut overheads, 0.99);
    let clean = f.stuck.is_empty() && f.lost.is_empty();
    println!("end-to-end engine overhead per step (the segments above, queueing included): p99 {p99:.1} ms");
    // The engine's own time: the workflow's transactions for each step, whole (begin to commit),
    // summed per step — without the time a deployment waits for a free slot, the relay or the
    // executor (see `own.rs`).
    let q = |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let (pass, passes) = &f.own_pass;
    let (result, results) = &f.own_result;
    println!(
        "engine's transactions: driver pass (begin, load, decide, write, release, commit) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {passes} passes; \
         executor result (begin, inbox, result + the pass it allows, commit) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {results} messages",
        q(pass, "0.5"),
        q(pass, "0.99"),
        q(pass, "1"),
        q(result, "0.5"),
        q(result, "0.99"),
        q(result, "1"),
    );
    let own = &mut f.own;
    let steps_n = own.per_step_ms.len();
    let own_p99 = quantile(&mut own.per_step_ms, 0.99);
    println!(
        "ENGINE'S OWN TIME PER STEP (its transactions for the step, summed): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {steps_n} steps \
         ({} driver passes, {} result messages of which {} carried the step's pass inside; {} untimed)",
        quantile(&mut own.per_step_ms, 0.50),
        quantile(&mut own.per_step_ms, 0.95),
        own_p99,
        quantile(&mut own.per_step_ms, 1.0),
        own.passes,
        own.results,
        own.inline,
        own.untimed,
    );
    let by_index: Vec<String> = own
        .by_index_ms
        .iter_mut()
        .enumerate()
        .map(|(i, v)| {
            format!("step {} p50 {:.1} / p99 {:.1} ms", i + 1, quantile(v, 0.50), quantile(v, 0.99))
        })
        .collect();
    println!("  by step: {}", by_index.join("; "));
    let names = ["passes", "results alone", "results with the pass"];
    for (i, parts) in own.parts_by_index_ms.iter_mut().enumerate() {
        let text: Vec<String> = parts
            .iter_mut()
            .zip(names)
            .filter(|(v, _)| !v.is_empty())
            .map(|(v, name)| {
                format!(
                    "{name} p50 {:.1} / p99 {:.1} ms (n {})",
                    quantile(v, 0.50),
                    quantile(v, 0.99),
                    v.len()
                )
            })
            .collect();
        println!("    step {}: {}", i + 1, text.join("; "));
    }
    let met = own_p99 < 20.0 && clean && steps_n > 0 && own.untimed == 0;
    println!(
        "goal (engine's own time per step p99 < 20 ms, no lost or stuck deployment): {} (own p99 {:.1} ms; end-to-end p99 {:.1} ms, queueing included; {} stuck, {} lost)",
        if met { "MET" } else { "MISSED" },
        own_p99,
        p99,
        f.stuck.len(),
        f.lost.len()
    );
    println!("suite warnings during the run: {}", if f.warnings.is_empty() { "none" } else { "" });
    for w in &f.warnings {
        println!("  {w}");
    }
    println!("bus consumer retries/duplicates/dead letters during the run: {}", f.bus_counters);
    println!();
    let wall = f.complete_wall.max(1e-9);
    let cpu = f.after.cpu_secs - f.before.cpu_secs;
    let emu = f
        .emulator_cpu
        .map_or_else(|| "-".to_owned(), |c| format!("{c:.2} s ({:.0} % of one core)", 100.0 * c / wall));
    let reqs = f.emulator_requests.map_or_else(|| "-".to_owned(), |r| r.to_string());
    println!(
        "this process (whole suite + driver): CPU {:.2} s ({:.0} % of one core over {:.1} s; {:.1} ms per launch), \
         RSS {:.1} → {:.1} MiB, peak {:.1} MiB; emulator CPU {emu}, {reqs} API requests",
        cpu,
        100.0 * cpu / wall,
        wall,
        1e3 * cpu / f.n.max(1) as f64,
        mib(f.before.rss_kib),
        mib(f.after.rss_kib),
        mib(f.after.hwm_kib),
    );
    println!(
        "Times come from the CloudEvents' `time` (stamped by the service making the change, before its \
         outbox commit) and from when the driver saw each apply command on NATS. The executor segment \
         (apply + health watch) is excluded from the engine's overhead; the result segment includes the \
         executor's outbox relay, the dispatch segment the workflow's."
    );
}
