//! The OAM Component each binder becomes, in the shape SREWorks AppManager writes.
//!
//! The layout follows AppManager's templates (see the `K8S_MICROSERVICE_health.zip.dir/meta.yaml`
//! fixture): an `apps.abm.io/v1` workload inside a `core.oam.dev/v1alpha2` Component, with
//! `PLACEHOLDER_*` labels and annotations that AppManager fills in at deploy time, and the package
//! version as annotation. Keys are written in AppManager's order so the YAML reads like its own.

use serde_yaml::{Mapping, Value};

use super::binder::{
    ComponentBinder, ComponentSpec, Container, EnvVar, HelmOptions, WorkloadKind, WorkloadOptions,
};
use super::chart::ChartInfo;

const VERSION_ANNOTATION: &str = "annotations.appmanager.oam.dev/version";
/// Folder of an uploaded chart inside its component zip; the workload's `repoPath`.
pub(super) const CHART_DIR: &str = "chart";

/// The component `meta.yaml` text for `binder` in app `app_id` at `version`. `chart` describes the
/// uploaded chart of a HELM binder.
pub(super) fn component_yaml(
    app_id: &str,
    version: &str,
    binder: &ComponentBinder,
    chart: Option<&ChartInfo>,
) -> String {
    let name = binder.component_name.as_str();
    let (prefix, kind, spec) = match &binder.spec {
        ComponentSpec::Microservice(o) => ("microservice", "Microservice", microservice_spec(o)),
        ComponentSpec::Job(o) => ("job", "Job", job_spec(o)),
        ComponentSpec::Helm(h) => ("helm", "Helm", helm_spec(h, chart)),
    };
    let workload = map([
        ("apiVersion", "apps.abm.io/v1".into()),
        ("kind", kind.into()),
        ("metadata", workload_metadata(app_id, name, version)),
        ("spec", spec),
    ]);
    let doc = map([
        ("apiVersion", "core.oam.dev/v1alpha2".into()),
        ("kind", "Component".into()),
        (
            "metadata",
            map([
                ("name", format!("{prefix}-{app_id}-{name}").into()),
                ("annotations", map([(VERSION_ANNOTATION, version.into())])),
                ("labels", component_labels(app_id, name)),
            ]),
        ),
        ("spec", map([("images", Value::Sequence(Vec::new())), ("workload", workload)])),
    ]);
    // Serialising a tree of strings, numbers and mappings with string keys cannot fail.
    serde_yaml::to_string(&doc).unwrap_or_default()
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect::<Mapping>())
}

fn component_labels(app_id: &str, name: &str) -> Value {
    map([
        ("labels.appmanager.oam.dev/appId", app_id.into()),
        ("labels.appmanager.oam.dev/componentName", name.into()),
        ("labels.appmanager.oam.dev/stageId", "PLACEHOLDER_STAGE_ID".into()),
        ("labels.appmanager.oam.dev/clusterId", "PLACEHOLDER_CLUSTER_ID".into()),
        ("appId", app_id.into()),
        ("componentName", name.into()),
        ("stageId", "PLACEHOLDER_STAGE_ID".into()),
    ])
}

fn workload_metadata(app_id: &str, name: &str, version: &str) -> Value {
    map([
        ("namespace", "PLACEHOLDER_NAMESPACE_ID".into()),
        ("name", "PLACEHOLDER_NAME".into()),
        (
            "labels",
            map([
                ("labels.appmanager.oam.dev/stageId", "PLACEHOLDER_STAGE_ID".into()),
                ("labels.appmanager.oam.dev/appId", app_id.into()),
                ("labels.appmanager.oam.dev/componentName", name.into()),
                ("labels.appmanager.oam.dev/clusterId", "PLACEHOLDER_CLUSTER_ID".into()),
                ("labels.appmanager.oam.dev/appInstanceId", "PLACEHOLDER_APP_INSTANCE_ID".into()),
                ("labels.appmanager.oam.dev/appInstanceName", "PLACEHOLDER_APP_INSTANCE_NAME".into()),
                ("labels.appmanager.oam.dev/componentInstanceId", "PLACEHOLDER_COMPONENT_INSTANCE_ID".into()),
                ("stageId", "PLACEHOLDER_STAGE_ID".into()),
                ("appId", app_id.into()),
                ("componentName", name.into()),
            ]),
        ),
        (
            "annotations",
            map([
                ("annotations.appmanager.oam.dev/deployAppId", "PLACEHOLDER_DEPLOY_APP_ID".into()),
                (
                    "annotations.appmanager.oam.dev/deployComponentId",
                    "PLACEHOLDER_DEPLOY_COMPONENT_ID".into(),
                ),
                (VERSION_ANNOTATION, version.into()),
                ("annotations.appmanager.oam.dev/appInstanceId", "PLACEHOLDER_APP_INSTANCE_ID".into()),
                ("annotations.appmanager.oam.dev/appInstanceName", "PLACEHOLDER_APP_INSTANCE_NAME".into()),
                (
                    "annotations.appmanager.oam.dev/componentInstanceId",
                    "PLACEHOLDER_COMPONENT_INSTANCE_ID".into(),
                ),
            ]),
        ),
    ])
}

fn microservice_spec(o: &WorkloadOptions) -> Value {
    let mut spec = Mapping::new();
    spec.insert("name".into(), "".into());
    spec.insert("kind".into(), o.kind.unwrap_or(WorkloadKind::Deployment).as_str().into());
    spec.insert("replicas".into(), o.replicas.unwrap_or(1).into());
    spec.insert("serviceName".into(), "".into());
    add_pod_fields(&mut spec, o);
    Value::Mapping(spec)
}

fn job_spec(o: &WorkloadOptions) -> Value {
    let mut spec = Mapping::new();
    spec.insert("name".into(), "".into());
    if let Some(job) = &o.job {
        spec.insert("job".into(), container(job));
    }
    add_pod_fields(&mut spec, o);
    Value::Mapping(spec)
}

fn add_pod_fields(spec: &mut Mapping, o: &WorkloadOptions) {
    if !o.env.is_empty() {
        let env: Mapping =
            o.env.iter().map(|e| (Value::from(e.name()), Value::from(EnvVar::rendered_value(e)))).collect();
        spec.insert("env".into(), Value::Mapping(env));
    }
    if !o.init_containers.is_empty() {
        spec.insert(
            "initContainers".into(),
            Value::Sequence(o.init_containers.iter().map(container).collect()),
        );
    }
    if !o.containers.is_empty() {
        spec.insert("containers".into(), Value::Sequence(o.containers.iter().map(container).collect()));
    }
}

fn container(c: &Container) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), c.name.as_str().into());
    m.insert("image".into(), c.image.as_str().into());
    let strings = |items: &[String]| Value::Sequence(items.iter().map(|s| Value::from(s.as_str())).collect());
    if !c.command.is_empty() {
        m.insert("command".into(), strings(&c.command));
    }
    if !c.args.is_empty() {
        m.insert("args".into(), strings(&c.args));
    }
    if !c.ports.is_empty() {
        let ports = c
            .ports
            .iter()
            .map(|p| {
                let mut pm = Mapping::new();
                pm.insert("containerPort".into(), p.container_port.into());
                if let Some(proto) = &p.protocol {
                    pm.insert("protocol".into(), proto.as_str().into());
                }
                if let Some(name) = &p.name {
                    pm.insert("name".into(), name.as_str().into());
                }
                Value::Mapping(pm)
            })
            .collect();
        m.insert("ports".into(), Value::Sequence(ports));
    }
    Value::Mapping(m)
}

/// SREWorks' Helm deploy handler installs from `repoPath` inside the unpacked component package
/// when it is set, and from `repoUrl`/`chartName`/`chartVersion` otherwise.
fn helm_spec(h: &HelmOptions, chart: Option<&ChartInfo>) -> Value {
    let mut spec = Mapping::new();
    spec.insert("name".into(), "".into());
    match (&h.repository, chart) {
        (Some(repo), _) => {
            spec.insert("repoUrl".into(), repo.repo_url.as_str().into());
            spec.insert("chartName".into(), repo.chart_name.as_str().into());
            spec.insert("chartVersion".into(), repo.chart_version.as_str().into());
        }
        (None, Some(info)) => {
            spec.insert("repoPath".into(), CHART_DIR.into());
            spec.insert("chartName".into(), info.name.as_str().into());
            spec.insert("chartVersion".into(), info.version.as_str().into());
        }
        (None, None) => {}
    }
    // JSON values always convert to YAML.
    let values = serde_yaml::to_value(&h.values).unwrap_or(Value::Mapping(Mapping::new()));
    spec.insert("values".into(), values);
    Value::Mapping(spec)
}
