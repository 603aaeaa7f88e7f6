//! `swcli app-package build`: a multipart build request and, with `--wait`, polling the task.
//!
//! The form holds the build.yaml as read (part `build.yaml`), one `chart.<componentName>` part
//! per HELM component with a local `chartPath` (the folder packed into a temp file first, then
//! streamed), and `version` / `tags` (comma-separated) as text parts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sw_contracts::packages::{AppPackageTaskOut, PackageTaskStatus};
use tempfile::NamedTempFile;
use tokio::time::Instant;

use super::chart::{self, ChartSource};
use super::transfer::Meter;
use super::{app_base, task_details};
use crate::cli::BuildArgs;
use crate::client::{self, Client};
use crate::error::{CliError, EXIT_UNAVAILABLE};
use crate::output::{self, Output, decode};

/// How often `--wait` asks for the task.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Time a poll gets even when the deadline is nearer.
const LAST_POLL_GRACE: Duration = Duration::from_secs(5);

/// A chart packed for upload.
struct PackedChart {
    component: String,
    file: NamedTempFile,
    len: u64,
}

/// Runs `build`.
pub async fn build(client: &mut Client, args: BuildArgs, out: Output) -> Result<String, CliError> {
    let base = app_base(&args.app.app)?;
    // The build.yaml is small and parsed anyway; what is sent is exactly what was parsed.
    let yaml = tokio::fs::read(&args.path)
        .await
        .map_err(|e| CliError::File(format!("cannot read {}: {e}", args.path.display())))?;
    let sources = chart::local_charts(&yaml, &yaml_folder(&args.path))?;
    let charts = pack_all(sources).await?;

    let url = client.url(&format!("{base}/app-package-tasks"));
    let timeout = Duration::from_secs(args.transfer.timeout);
    let total: u64 = charts.iter().map(|c| c.len).sum();
    let meter = Meter::new(Some(total), "uploading charts", out.progress && total > 0);
    let sent = meter
        .watch(client.execute(|http| {
            meter.restart();
            let form = form(&yaml, &charts, &args, &meter)?;
            Ok(http.post(&url).timeout(timeout).multipart(form))
        }))
        .await;
    meter.clear();
    let body =
        client::read(sent?).await?.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
    let task: AppPackageTaskOut = decode(body.clone())?;
    let (task, body) = if args.wait {
        wait(client, &base, (task, body), Duration::from_secs(args.wait_max_seconds), out).await?
    } else {
        (task, body)
    };
    Ok(if out.json { output::json(&body) } else { task_details(&task) })
}

/// Packs every chart on a blocking thread, one after the other.
async fn pack_all(sources: Vec<ChartSource>) -> Result<Vec<PackedChart>, CliError> {
    let mut out = Vec::with_capacity(sources.len());
    for src in sources {
        let dir = src.dir.clone();
        let (file, len) = tokio::task::spawn_blocking(move || chart::pack(&dir))
            .await
            .map_err(|e| CliError::Unexpected(format!("packing {} failed: {e}", src.dir.display())))??;
        out.push(PackedChart { component: src.component, file, len });
    }
    Ok(out)
}

/// The multipart form; the chart files are reopened so every attempt streams them from the start.
fn form(yaml: &[u8], charts: &[PackedChart], args: &BuildArgs, meter: &Meter) -> Result<Form, CliError> {
    let mime = |p: Part, m: &str| p.mime_str(m).map_err(|e| CliError::Unexpected(e.to_string()));
    let mut form = Form::new()
        .part("build.yaml", mime(Part::bytes(yaml.to_vec()).file_name("build.yaml"), "application/yaml")?);
    for c in charts {
        let file = c
            .file
            .reopen()
            .map_err(|e| CliError::File(format!("cannot read the packed chart of {}: {e}", c.component)))?;
        let body = meter.file_body(file, c.file.path());
        let part = Part::stream_with_length(body, c.len).file_name(format!("{}.tgz", c.component));
        form = form.part(format!("chart.{}", c.component), mime(part, "application/gzip")?);
    }
    if let Some(v) = &args.version {
        form = form.text("version", v.clone());
    }
    if !args.tags.is_empty() {
        form = form.text("tags", args.tags.join(","));
    }
    Ok(form)
}

/// Polls the task every [`POLL_INTERVAL`] until it ends or `max` has passed; returns the final
/// task and its JSON. Unavailability while polling (a restarting gateway) is retried until then.
async fn wait(
    client: &mut Client,
    base: &str,
    (mut task, mut body): (AppPackageTaskOut, Value),
    max: Duration,
    out: Output,
) -> Result<(AppPackageTaskOut, Value), CliError> {
    let path = format!("{base}/app-package-tasks/{}", task.id);
    let deadline = Instant::now() + max;
    let show = spinner_for(out);
    let mut last_error: Option<CliError> = None;
    loop {
        show.set_message(format!("task {}: {}", task.id, task.status.as_str()));
        match task.status {
            PackageTaskStatus::Success => {
                show.finish_and_clear();
                return Ok((task, body));
            }
            PackageTaskStatus::Failure => {
                show.finish_and_clear();
                let why = task.error_message.unwrap_or_else(|| "no reason given".into());
                return Err(CliError::TaskFailed(format!("task {} of {}: {why}", task.id, task.app_id)));
            }
            PackageTaskStatus::Created | PackageTaskStatus::Running => {}
        }
        let now = Instant::now();
        if now >= deadline {
            show.finish_and_clear();
            let last = last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default();
            return Err(CliError::TimedOut {
                code: "wait_timeout",
                detail: format!(
                    "task {} is still {} after {} s{last}; see `swcli app-package task get -a {} --id {}`",
                    task.id,
                    task.status.as_str(),
                    max.as_secs(),
                    task.app_id,
                    task.id
                ),
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        // The last poll may overrun the deadline a little rather than be cut off as it starts.
        let remaining = deadline.saturating_duration_since(Instant::now()).max(LAST_POLL_GRACE);
        match tokio::time::timeout(remaining, client.call(Method::GET, &path, None::<&()>, None)).await {
            Err(_) => {}
            Ok(Ok(Some(v))) => {
                task = decode(v.clone())?;
                body = v;
                last_error = None;
            }
            Ok(Ok(None)) => return Err(CliError::Unexpected("the reply has no body".into())),
            Ok(Err(e)) if e.exit_code() == EXIT_UNAVAILABLE => last_error = Some(e),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// A spinner on stderr while waiting, when progress may be drawn.
fn spinner_for(out: Output) -> indicatif::ProgressBar {
    if !out.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The build.yaml's folder, against which `chartPath`s resolve.
pub fn yaml_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
