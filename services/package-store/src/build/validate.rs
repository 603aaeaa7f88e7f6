//! The validation walk over raw binder documents: every problem is collected with its field path.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sw_contracts::FieldError;

use super::binder::{
    CHART_PART_PREFIX, ChartRepository, ComponentBinder, ComponentSpec, ComponentType, Container,
    ContainerPort, EnvVar, HelmOptions, WorkloadKind, WorkloadOptions, check_component_name,
};
use super::error::BuildError;

const MAX_IMAGE_LEN: usize = 1024;
const MAX_CONTAINERS: usize = 64;

/// Collected problems of one validation run.
#[derive(Default)]
struct Problems {
    errors: Vec<FieldError>,
    image_build: bool,
}

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }
}

pub(super) fn validate<'a>(
    docs: impl Iterator<Item = (String, &'a Value)>,
    list_field: &str,
    uploaded_charts: &HashSet<String>,
) -> Result<Vec<ComponentBinder>, BuildError> {
    let mut p = Problems::default();
    let mut binders = Vec::new();
    // name -> (path, type) of the first binder with that name.
    let mut seen: HashMap<String, (String, Option<ComponentType>)> = HashMap::new();
    let mut count = 0usize;
    for (path, doc) in docs {
        count += 1;
        let before = p.errors.len();
        let (name, ty, binder) = check_binder(&path, doc, uploaded_charts, &mut p);
        if let Some(name) = name {
            if let Some((first, _)) = seen.get(&name) {
                p.push(
                    format!("{path}.componentName"),
                    format!("duplicate componentName {name:?} (also at {first})"),
                );
            } else {
                seen.insert(name, (path.clone(), ty));
            }
        }
        if p.errors.len() == before
            && let Some(b) = binder
        {
            binders.push(b);
        }
    }
    if count == 0 {
        p.push(list_field, "the build spec has no components");
    }
    let mut orphans: Vec<&String> = uploaded_charts.iter().collect();
    orphans.sort();
    for chart in orphans {
        let field = format!("{CHART_PART_PREFIX}{chart}");
        match seen.get(chart.as_str()) {
            None => p.push(field, format!("no component named {chart:?} in the build spec")),
            Some((_, Some(ty))) if *ty != ComponentType::Helm => {
                p.push(field, format!("component {chart:?} is {ty}; only HELM components take a chart"));
            }
            Some(_) => {}
        }
    }
    match (p.errors.is_empty(), p.image_build) {
        (true, _) => Ok(binders),
        (false, true) => Err(BuildError::ImageBuildUnsupported { errors: p.errors }),
        (false, false) => Err(BuildError::Invalid { errors: p.errors }),
    }
}

/// Checks one document; returns its name and type when those are valid, and the binder when the
/// whole document is.
fn check_binder(
    path: &str,
    doc: &Value,
    uploaded_charts: &HashSet<String>,
    p: &mut Problems,
) -> (Option<String>, Option<ComponentType>, Option<ComponentBinder>) {
    let supported = supported_types();
    let Some(obj) = doc.as_object() else {
        p.push(
            path,
            format!("must be a mapping with componentType, componentName and options, not {}", kind_of(doc)),
        );
        return (None, None, None);
    };
    unknown_keys(obj, &["componentType", "componentName", "options"], path, p);
    let ty = match obj.get("componentType") {
        None => {
            p.push(format!("{path}.componentType"), format!("is required; one of {supported}"));
            None
        }
        Some(Value::String(s)) => {
            let ty = ComponentType::parse(s);
            if ty.is_none() {
                p.push(
                    format!("{path}.componentType"),
                    format!("unsupported component type {s:?}; supported: {supported}"),
                );
            }
            ty
        }
        Some(other) => {
            p.push(
                format!("{path}.componentType"),
                format!("must be a string, one of {supported}, not {}", kind_of(other)),
            );
            None
        }
    };
    let name = match obj.get("componentName") {
        None => {
            p.push(format!("{path}.componentName"), "is required");
            None
        }
        Some(Value::String(s)) => match check_component_name(s) {
            Ok(()) => Some(s.clone()),
            Err(why) => {
                p.push(format!("{path}.componentName"), why);
                None
            }
        },
        Some(other) => {
            p.push(format!("{path}.componentName"), format!("must be a string, not {}", kind_of(other)));
            None
        }
    };
    let empty = Map::new();
    let opts_path = format!("{path}.options");
    let options = match obj.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => {
            p.push(&opts_path, format!("must be a mapping, not {}", kind_of(other)));
            return (name, ty, None);
        }
    };
    let spec = match ty {
        Some(ComponentType::K8sMicroservice) => {
            workload(ComponentType::K8sMicroservice, options, &opts_path, p).map(ComponentSpec::Microservice)
        }
        Some(ComponentType::K8sJob) => {
            workload(ComponentType::K8sJob, options, &opts_path, p).map(ComponentSpec::Job)
        }
        Some(ComponentType::Helm) => {
            let uploaded = name.as_ref().is_some_and(|n| uploaded_charts.contains(n));
            helm(options, &opts_path, name.as_deref().unwrap_or("<componentName>"), uploaded, p)
                .map(ComponentSpec::Helm)
        }
        None => None,
    };
    let binder = match (&name, spec) {
        (Some(n), Some(spec)) => Some(ComponentBinder { component_name: n.clone(), spec }),
        _ => None,
    };
    (name, ty, binder)
}

fn supported_types() -> String {
    ComponentType::SUPPORTED.map(ComponentType::as_str).join(", ")
}

fn workload(
    ty: ComponentType,
    o: &Map<String, Value>,
    path: &str,
    p: &mut Problems,
) -> Option<WorkloadOptions> {
    let before = p.errors.len();
    let allowed: &[&str] = match ty {
        ComponentType::K8sJob => &["job", "containers", "initContainers", "env"],
        _ => &["kind", "replicas", "containers", "initContainers", "env"],
    };
    unknown_keys(o, allowed, path, p);
    let mut out = WorkloadOptions::default();
    if ty == ComponentType::K8sMicroservice {
        out.kind = o.get("kind").and_then(|v| {
            let kind = v.as_str().and_then(|s| WorkloadKind::ALL.into_iter().find(|k| k.as_str() == s));
            if kind.is_none() {
                let names = WorkloadKind::ALL.map(WorkloadKind::as_str).join(", ");
                p.push(format!("{path}.kind"), format!("must be one of {names}"));
            }
            kind
        });
        out.replicas = o.get("replicas").and_then(|v| {
            let n = v.as_u64().and_then(|n| u32::try_from(n).ok());
            if n.is_none() {
                p.push(format!("{path}.replicas"), "must be a whole number of at least 0");
            }
            n
        });
    }
    out.containers = container_list(o.get("containers"), &format!("{path}.containers"), p);
    out.init_containers = container_list(o.get("initContainers"), &format!("{path}.initContainers"), p);
    if let Some(job) = o.get("job").filter(|_| ty == ComponentType::K8sJob) {
        out.job = container(job, &format!("{path}.job"), p);
    }
    let containers = o.get("containers");
    let containers_given = containers.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let containers_malformed = containers.is_some_and(|v| !v.is_array() && !v.is_null());
    let job_given = ty == ComponentType::K8sJob && o.contains_key("job");
    if !containers_given && !containers_malformed && !job_given {
        let what = if ty == ComponentType::K8sJob { " (or a job)" } else { "" };
        p.push(
            format!("{path}.containers"),
            format!("at least one container{what} with name and image is required"),
        );
    }
    // Kubernetes wants container names unique across all containers of a pod.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for c in out.job.iter().chain(&out.containers).chain(&out.init_containers) {
        *names.entry(c.name.as_str()).or_default() += 1;
    }
    let mut dups: Vec<&str> = names.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect();
    dups.sort_unstable();
    for d in dups {
        p.push(path, format!("container name {d:?} is used more than once"));
    }
    out.env = env(o.get("env"), &format!("{path}.env"), p);
    (p.errors.len() == before).then_some(out)
}

fn container_list(v: Option<&Value>, path: &str, p: &mut Problems) -> Vec<Container> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_CONTAINERS {
                p.push(path, format!("at most {MAX_CONTAINERS} containers"));
                return Vec::new();
            }
            items.iter().enumerate().filter_map(|(i, c)| container(c, &format!("{path}[{i}]"), p)).collect()
        }
        Some(other) => {
            p.push(path, format!("must be a list of containers, not {}", kind_of(other)));
            Vec::new()
        }
    }
}

fn container(v: &Value, path: &str, p: &mut Problems) -> Option<Container> {
    let before = p.errors.len();
    let Some(o) = v.as_object() else {
        p.push(path, format!("must be a mapping with name and image, not {}", kind_of(v)));
        return None;
    };
    unknown_keys(o, &["name", "image", "command", "args", "ports", "build"], path, p);
    let has_build = o.contains_key("build");
    if has_build {
        p.image_build = true;
        p.push(
            format!("{path}.build"),
            "images are not built here: build the image in your CI, push it to a registry and reference it with `image`",
        );
    }
    let name = match o.get("name") {
        Some(Value::String(s)) => match check_container_name(s) {
            Ok(()) => Some(s.clone()),
            Err(why) => {
                p.push(format!("{path}.name"), why);
                None
            }
        },
        None => {
            p.push(format!("{path}.name"), "is required");
            None
        }
        Some(other) => {
            p.push(format!("{path}.name"), format!("must be a string, not {}", kind_of(other)));
            None
        }
    };
    let image = match o.get("image") {
        Some(Value::String(s)) => match check_image(s) {
            Ok(()) => Some(s.clone()),
            Err(why) => {
                p.push(format!("{path}.image"), why);
                None
            }
        },
        // The `build` message already says what to put here.
        None if has_build => None,
        None => {
            p.push(
                format!("{path}.image"),
                "is required: the image reference your CI pushed, e.g. registry.example.com/team/api:1.4.2",
            );
            None
        }
        Some(other) => {
            p.push(format!("{path}.image"), format!("must be a string, not {}", kind_of(other)));
            None
        }
    };
    let command = strings(o.get("command"), &format!("{path}.command"), p);
    let args = strings(o.get("args"), &format!("{path}.args"), p);
    let ports = ports(o.get("ports"), &format!("{path}.ports"), p);
    if p.errors.len() != before {
        return None;
    }
    Some(Container { name: name?, image: image?, command, args, ports })
}

/// Kubernetes container names are DNS-1123 labels.
fn check_container_name(s: &str) -> Result<(), String> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = (1..=63).contains(&s.len())
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum);
    if ok {
        Ok(())
    } else {
        Err("must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit"
            .into())
    }
}

fn check_image(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_IMAGE_LEN {
        return Err(format!("must be at most {MAX_IMAGE_LEN} characters"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if s.contains("${") {
        return Err("holds an unsubstituted ${…} placeholder; give the final image reference".into());
    }
    Ok(())
}

fn strings(v: Option<&Value>, path: &str, p: &mut Problems) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    other => p.push(
                        format!("{path}[{i}]"),
                        format!("must be a string, not {} (quote it)", kind_of(other)),
                    ),
                }
            }
            out
        }
        Some(other) => {
            p.push(path, format!("must be a list of strings, not {}", kind_of(other)));
            Vec::new()
        }
    }
}

fn ports(v: Option<&Value>, path: &str, p: &mut Problems) -> Vec<ContainerPort> {
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            p.push(path, format!("must be a list of ports, not {}", kind_of(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(o) = item.as_object() else {
            p.push(&at, format!("must be a mapping with containerPort, not {}", kind_of(item)));
            continue;
        };
        unknown_keys(o, &["containerPort", "protocol", "name"], &at, p);
        let port = o
            .get("containerPort")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0);
        if port.is_none() {
            p.push(format!("{at}.containerPort"), "is required: a whole number from 1 to 65535");
        }
        let protocol = match o.get("protocol") {
            None => None,
            Some(Value::String(s)) if matches!(s.as_str(), "TCP" | "UDP" | "SCTP") => Some(s.clone()),
            Some(_) => {
                p.push(format!("{at}.protocol"), "must be TCP, UDP or SCTP");
                None
            }
        };
        let name = match o.get("name") {
            None => None,
            Some(Value::String(s))
                if (1..=15).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Some(s.clone())
            }
            Some(_) => {
                p.push(format!("{at}.name"), "must be 1-15 lower-case letters, digits or '-'");
                None
            }
        };
        if let Some(container_port) = port {
            out.push(ContainerPort { container_port, protocol, name });
        }
    }
    out
}

/// `env` as SREWorks writes it (a list of names, valued from globals at deploy time), as a list
/// mixing names and `{name, value}` items, or as a mapping of fixed values.
fn env(v: Option<&Value>, path: &str, p: &mut Problems) -> Vec<EnvVar> {
    let mut out = Vec::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match item {
                    Value::String(name) => out.push(EnvVar::Global(name.clone())),
                    Value::Object(o) => {
                        unknown_keys(o, &["name", "value"], &at, p);
                        match (o.get("name").and_then(Value::as_str), o.get("value").and_then(scalar_text)) {
                            (Some(name), Some(value)) => {
                                out.push(EnvVar::Literal { name: name.to_owned(), value })
                            }
                            _ => p.push(&at, "must have a string name and a string, number or boolean value"),
                        }
                    }
                    other => p.push(
                        &at,
                        format!(
                            "must be a variable name or a {{name, value}} mapping, not {}",
                            kind_of(other)
                        ),
                    ),
                }
            }
        }
        Some(Value::Object(map)) => {
            for (name, value) in map {
                match scalar_text(value) {
                    Some(value) => out.push(EnvVar::Literal { name: name.clone(), value }),
                    None => p.push(format!("{path}.{name}"), "must be a string, number or boolean"),
                }
            }
        }
        Some(other) => {
            p.push(path, format!("must be a list of variable names or a mapping, not {}", kind_of(other)))
        }
    }
    let mut seen = HashSet::new();
    for var in &out {
        if !valid_env_name(var.name()) {
            p.push(path, format!("{:?} is not a valid variable name (letters, digits, '_', '-', '.'; not starting with a digit)", var.name()));
        } else if !seen.insert(var.name()) {
            p.push(path, format!("variable {:?} is given more than once", var.name()));
        }
    }
    out
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !s.as_bytes()[0].is_ascii_digit()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// SREWorks options for fetching a chart from git or a URL, which we do not do.
const HELM_FETCH_KEYS: [&str; 8] =
    ["repo", "repoPath", "branch", "commit", "ciAccount", "ciToken", "chartUrl", "chartDownload"];

fn helm(
    o: &Map<String, Value>,
    path: &str,
    name: &str,
    uploaded: bool,
    p: &mut Problems,
) -> Option<HelmOptions> {
    let before = p.errors.len();
    // `chartPath` is the client's hint (swcli packs that local folder and uploads it as the
    // `chart.<name>` part); it means nothing here without the upload.
    let mut allowed = vec!["repoUrl", "chartName", "chartVersion", "values", "chartPath"];
    allowed.extend(HELM_FETCH_KEYS);
    unknown_keys(o, &allowed, path, p);
    if o.contains_key("chartPath") && !uploaded {
        p.push(
            format!("{path}.chartPath"),
            format!(
                "names a local folder, which only a client can read: upload it as a multipart part named \
                 `{CHART_PART_PREFIX}{name}` (swcli app-package build does this)"
            ),
        );
    }
    let how = format!(
        "upload the chart folder as a .tgz, .tar.gz or .zip in a multipart part named `{CHART_PART_PREFIX}{name}`, \
         or give options.repoUrl, options.chartName and options.chartVersion"
    );
    let fetch: Vec<&str> = HELM_FETCH_KEYS.into_iter().filter(|k| o.contains_key(*k)).collect();
    if !fetch.is_empty() {
        p.push(
            path,
            format!("charts are not fetched from git or URLs here ({} given): {how}", fetch.join(", ")),
        );
    }
    let repo_keys = ["repoUrl", "chartName", "chartVersion"];
    let mut repository = None;
    if repo_keys.iter().any(|k| o.contains_key(*k)) {
        let mut got = Vec::new();
        for key in repo_keys {
            match o.get(key) {
                Some(Value::String(s))
                    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    got.push(s.clone());
                }
                None => {
                    p.push(format!("{path}.{key}"), "is required with repoUrl, chartName and chartVersion")
                }
                Some(_) => p.push(format!("{path}.{key}"), "must be a non-empty string without spaces"),
            }
        }
        if let Some(url) = got.first().filter(|_| got.len() == 3)
            && !["https://", "http://", "oci://"].iter().any(|s| url.starts_with(s))
        {
            p.push(format!("{path}.repoUrl"), "must be an http://, https:// or oci:// URL");
        }
        if uploaded {
            p.push(
                format!("{path}.repoUrl"),
                format!("a chart was also uploaded as `{CHART_PART_PREFIX}{name}`; give one or the other"),
            );
        }
        if let Ok([repo_url, chart_name, chart_version]) = <[String; 3]>::try_from(got) {
            repository = Some(ChartRepository { repo_url, chart_name, chart_version });
        }
    } else if !uploaded && fetch.is_empty() {
        p.push(path, format!("a HELM component needs its chart: {how}"));
    }
    let values = match o.get("values") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            p.push(
                format!("{path}.values"),
                format!("must be a mapping of Helm values, not {}", kind_of(other)),
            );
            Map::new()
        }
    };
    (p.errors.len() == before).then_some(HelmOptions { repository, values })
}

fn unknown_keys(o: &Map<String, Value>, allowed: &[&str], path: &str, p: &mut Problems) {
    for key in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
        p.push(format!("{path}.{key}"), format!("unknown field; expected one of {}", allowed.join(", ")));
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
