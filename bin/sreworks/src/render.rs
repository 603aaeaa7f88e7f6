//! `sreworks render`: a dry run of a launch YAML against an app package — the Kubernetes objects
//! the k8s executor would apply, printed instead of applied (what `helm template` and
//! `vela dry-run` give their users). Offline: no NATS, database or cluster.
//!
//! The package zip is checked exactly as package-store checks an import
//! ([`sw_package_store::inspect_app_zip_spooled`], same limits), each component's `meta.yaml` is
//! read from its spooled zip, every component of the launch file is resolved with
//! [`sw_appconf::resolve`] and rendered with [`sw_k8s_executor::render::render`]. Objects go to
//! stdout in launch order; skipped components and warnings go to stderr; any error stops the run
//! with a non-zero exit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use sw_appconf::{ApplicationConfiguration, Outcome, Overrides, PackagedComponent};
use sw_package_store::{Limits, inspect_app_zip_spooled};

/// `sreworks render` arguments.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The launch YAML: an SREWorks `ApplicationConfiguration`.
    #[arg(long)]
    pub launch: PathBuf,
    /// The app package zip (as SREWorks exports it or `swcli app-package download` saves it).
    #[arg(long)]
    pub package: PathBuf,
    /// The cluster id (wins over the launch file's).
    #[arg(long)]
    pub cluster: Option<String>,
    /// The Kubernetes namespace (wins over the launch file's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// The stage, e.g. `prod` (wins over the launch file's).
    #[arg(long)]
    pub stage: Option<String>,
    /// The app instance name (default: the launch file's, else `<stage>-<appId>`).
    #[arg(long)]
    pub app_instance: Option<String>,
    /// The revision recorded on the objects.
    #[arg(long, default_value_t = 1)]
    pub revision: u64,
    /// Output format: multi-document YAML or a JSON list.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

/// How the objects are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

/// The objects of one component, labelled `TYPE|name`.
struct ComponentObjects {
    label: String,
    objects: Vec<Value>,
}

/// Runs the dry run, printing to stdout and stderr.
pub fn run(args: &RenderArgs) -> anyhow::Result<()> {
    let rendered = render(args)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_objects(&mut out, &rendered, args.output).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    if rendered.iter().all(|c| c.objects.is_empty()) {
        eprintln!("note: no component of the launch file is deployed by the k8s executor; nothing rendered");
    }
    Ok(())
}

fn render(args: &RenderArgs) -> anyhow::Result<Vec<ComponentObjects>> {
    let launch = &args.launch;
    let text = std::fs::read_to_string(launch).with_context(|| format!("reading {}", launch.display()))?;
    let ac = ApplicationConfiguration::from_yaml(&text).with_context(|| format!("{}", launch.display()))?;

    let limits = Limits::default();
    let file = File::open(&args.package).with_context(|| format!("opening {}", args.package.display()))?;
    let spooled = inspect_app_zip_spooled(BufReader::new(file), None, &limits, None)
        .with_context(|| format!("{}: not a usable app package", args.package.display()))?;
    let package = &spooled.package;
    let app_id = package.meta.app_id.clone();
    if let Some(given) = ac.metadata.annotations.app_id.as_deref()
        && given != app_id.as_str()
    {
        bail!("the launch file is for app '{given}' but the package holds app '{app_id}'");
    }
    let by_label: HashMap<(&str, &str), usize> = package
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.component_type.as_str(), c.component_name.as_str()), i))
        .collect();
    for c in &package.components {
        let listed = ac.spec.components.iter().any(|l| {
            l.revision_name.component_type() == c.component_type && l.revision_name.name() == c.component_name
        });
        if !listed {
            eprintln!(
                "warning: {}|{} is in the package but not in the launch file",
                c.component_type, c.component_name
            );
        }
    }

    let overrides = Overrides {
        app_id: Some(app_id),
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        stage: args.stage.clone(),
        app_instance: args.app_instance.clone(),
    };
    let mut out = Vec::with_capacity(ac.spec.components.len());
    for component in &ac.spec.components {
        let rev = &component.revision_name;
        let label = rev.label();
        let index = by_label.get(&(rev.component_type(), rev.name())).copied();
        // Only what is deployed needs its meta.yaml read.
        let workload = match index {
            Some(i) if sw_appconf::skip_reason(rev).is_none() => Some(
                component_workload(&spooled.component_files[i], &limits).with_context(|| label.clone())?,
            ),
            _ => None,
        };
        let packaged = match (index, &workload) {
            (Some(i), Some(w)) => Some(PackagedComponent {
                package_version: &package.components[i].package_version,
                workload: w,
            }),
            _ => None,
        };
        match sw_appconf::resolve(&ac, component, packaged, &overrides)? {
            Outcome::Skip { reason } => eprintln!("skipped {label}: {reason}"),
            Outcome::Deploy(resolved) => {
                for w in &resolved.warnings {
                    eprintln!("warning: {w}");
                }
                let objects =
                    sw_k8s_executor::render::render(&resolved.target, args.revision, &resolved.component)
                        .map_err(|e| anyhow!("{label}: {e}"))?
                        .objects;
                out.push(ComponentObjects { label, objects });
            }
        }
    }
    Ok(out)
}

/// `spec.workload` of the `meta.yaml` in a component zip, read the way package-store reads it for
/// the workflow (size and YAML alias limits of package inspection).
fn component_workload(zip_path: &Path, limits: &Limits) -> anyhow::Result<Value> {
    let file = File::open(zip_path).context("opening the spooled component zip")?;
    sw_package_store::format::component_workload(BufReader::new(file), limits)?
        .ok_or_else(|| anyhow!("meta.yaml has no spec.workload mapping"))
}

fn write_objects(out: &mut impl Write, rendered: &[ComponentObjects], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let all: Vec<&Value> = rendered.iter().flat_map(|c| &c.objects).collect();
            serde_json::to_writer_pretty(&mut *out, &all)?;
            writeln!(out)?;
        }
        Format::Yaml => {
            for c in rendered {
                for obj in &c.objects {
                    // `# Source:` as `helm template` writes it, so a reader sees which component.
                    write!(out, "---\n# Source: {}\n{}", c.label, serde_yaml::to_string(obj)?)?;
                }
            }
        }
    }
    Ok(())
}
