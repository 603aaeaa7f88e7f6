//! Local Helm charts of a build: which HELM components of a build.yaml name a local `chartPath`,
//! and packing such a folder as a `.tar.gz` into a temp file (streamed file by file, so a large
//! chart never sits in memory) for its `chart.<componentName>` part.
//!
//! The archive is laid out like `helm package` output: every entry under one top folder named
//! after the chart folder. Symlinks to files inside the chart are stored as the files they point
//! to; anything pointing outside the chart is refused rather than silently uploaded (a link to
//! `~/.ssh` must never end up on a server).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;
use tar::{Builder, HeaderMode};
use tempfile::NamedTempFile;

use crate::error::CliError;

/// A HELM component whose chart is a local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSource {
    pub component: String,
    /// The chart folder (`chartPath` resolved against the build.yaml's folder).
    pub dir: PathBuf,
}

/// Finds the HELM ComponentBinders of a (multi-document) build.yaml whose `options.chartPath` is a
/// local path, resolved against `base` (the build.yaml's folder). A `chartPath` with a URL scheme
/// is left to the platform. Each folder must exist and hold a `Chart.yaml`.
pub fn local_charts(yaml: &[u8], base: &Path) -> Result<Vec<ChartSource>, CliError> {
    let mut out: Vec<ChartSource> = Vec::new();
    let mut names = HashSet::new();
    for (i, doc) in serde_yaml::Deserializer::from_slice(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|e| CliError::Invalid(format!("build.yaml document {}: {e}", i + 1)))?;
        let field =
            |v: &serde_yaml::Value, k: &str| v.get(k).and_then(serde_yaml::Value::as_str).map(str::to_owned);
        if !field(&value, "componentType").is_some_and(|t| t.eq_ignore_ascii_case("HELM")) {
            continue;
        }
        let Some(chart_path) = value.get("options").and_then(|o| field(o, "chartPath")) else {
            continue;
        };
        if chart_path.contains("://") {
            continue;
        }
        let component = field(&value, "componentName").filter(|n| !n.is_empty()).ok_or_else(|| {
            CliError::Invalid(format!(
                "build.yaml document {}: a HELM component needs a componentName",
                i + 1
            ))
        })?;
        if !names.insert(component.clone()) {
            return Err(CliError::Invalid(format!("build.yaml: HELM component {component} appears twice")));
        }
        let dir = base.join(&chart_path);
        if !dir.is_dir() {
            return Err(CliError::Invalid(format!(
                "HELM component {component}: chartPath {} is not a folder",
                dir.display()
            )));
        }
        if !dir.join("Chart.yaml").is_file() {
            return Err(CliError::Invalid(format!(
                "HELM component {component}: {} holds no Chart.yaml",
                dir.display()
            )));
        }
        out.push(ChartSource { component, dir });
    }
    Ok(out)
}

/// Packs the chart folder `dir` into a new temp file (removed when dropped); returns it and its
/// size. Blocking: run it on a blocking thread.
pub fn pack(dir: &Path) -> Result<(NamedTempFile, u64), CliError> {
    let root = dir
        .canonicalize()
        .map_err(|e| CliError::File(format!("cannot read the chart folder {}: {e}", dir.display())))?;
    let top = root.file_name().map_or_else(|| PathBuf::from("chart"), PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("swcli-chart-")
        .suffix(".tgz")
        .tempfile()
        .map_err(|e| CliError::File(format!("cannot create a temp file: {e}")))?;
    let io = |e: std::io::Error| CliError::File(format!("cannot pack the chart {}: {e}", dir.display()));
    let file = tmp.reopen().map_err(io)?;
    let mut tar = Builder::new(GzEncoder::new(BufWriter::new(file), Compression::default()));
    // Same bytes for the same chart: no owners, fixed times, normalised modes.
    tar.mode(HeaderMode::Deterministic);
    tar.append_dir(&top, &root).map_err(io)?;
    add_dir(&mut tar, &root, &root, &top)?;
    let mut writer = tar.into_inner().map_err(io)?.finish().map_err(io)?;
    writer.flush().map_err(io)?;
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    Ok((tmp, len))
}

fn add_dir<W: Write>(tar: &mut Builder<W>, root: &Path, dir: &Path, name: &Path) -> Result<(), CliError> {
    let io = |p: &Path, e: std::io::Error| CliError::File(format!("cannot read {}: {e}", p.display()));
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort();
    for path in entries {
        let Some(file_name) = path.file_name() else { continue };
        let entry_name = name.join(file_name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            tar.append_dir(&entry_name, &path).map_err(|e| io(&path, e))?;
            add_dir(tar, root, &path, &entry_name)?;
        } else if kind.is_file() {
            let mut f = File::open(&path).map_err(|e| io(&path, e))?;
            tar.append_file(&entry_name, &mut f).map_err(|e| io(&path, e))?;
        } else if kind.is_symlink() {
            let target = path.canonicalize().map_err(|e| io(&path, e))?;
            if !target.starts_with(root) {
                return Err(CliError::Invalid(format!(
                    "{} links outside the chart folder; copy the file into the chart instead",
                    path.display()
                )));
            }
            if !target.is_file() {
                return Err(CliError::Invalid(format!(
                    "{} is a link to a folder; only links to files are packed",
                    path.display()
                )));
            }
            let mut f = File::open(&target).map_err(|e| io(&target, e))?;
            tar.append_file(&entry_name, &mut f).map_err(|e| io(&path, e))?;
        } else {
            return Err(CliError::Invalid(format!("{} is not a file or folder", path.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn chart(dir: &Path, name: &str) -> PathBuf {
        let c = dir.join(name);
        std::fs::create_dir_all(c.join("templates")).unwrap();
        std::fs::write(c.join("Chart.yaml"), format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n"))
            .unwrap();
        std::fs::write(c.join("values.yaml"), "replicas: 1\n").unwrap();
        std::fs::write(c.join("templates/deploy.yaml"), "kind: Deployment\n").unwrap();
        c
    }

    /// (path, content) of every file in a .tar.gz, and the folder paths.
    fn unpack(file: &Path) -> (Vec<(String, String)>, Vec<String>) {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(File::open(file).unwrap()));
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            if e.header().entry_type().is_dir() {
                dirs.push(path);
            } else {
                assert!(e.header().entry_type().is_file(), "{path} is not a regular file entry");
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                files.push((path, s));
            }
        }
        (files, dirs)
    }

    #[test]
    fn a_chart_folder_packs_under_its_own_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = chart(tmp.path(), "redis");
        let (packed, len) = pack(&dir).unwrap();
        assert_eq!(len, std::fs::metadata(packed.path()).unwrap().len());
        let (files, dirs) = unpack(packed.path());
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["redis/Chart.yaml", "redis/templates/deploy.yaml", "redis/values.yaml"]);
        assert!(dirs.iter().any(|d| d.trim_end_matches('/') == "redis/templates"), "{dirs:?}");
        assert_eq!(files[2].1, "replicas: 1\n");
        // Deterministic: packing again gives the same bytes.
        let (again, _) = pack(&dir).unwrap();
        assert_eq!(std::fs::read(packed.path()).unwrap(), std::fs::read(again.path()).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_are_followed_and_links_outside_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = chart(tmp.path(), "web");
        std::os::unix::fs::symlink(dir.join("values.yaml"), dir.join("values-prod.yaml")).unwrap();
        let (packed, _) = pack(&dir).unwrap();
        let (files, _) = unpack(packed.path());
        assert!(
            files.contains(&("web/values-prod.yaml".to_owned(), "replicas: 1\n".to_owned())),
            "{files:?}"
        );

        std::fs::write(tmp.path().join("secret"), "s3cr3t").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("templates/leak.yaml")).unwrap();
        let err = pack(&dir).unwrap_err();
        assert!(matches!(&err, CliError::Invalid(m) if m.contains("links outside")), "{err}");
    }

    #[test]
    fn helm_components_with_local_chart_paths_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        chart(&tmp.path().join("charts"), "redis");
        chart(tmp.path(), "web");
        let yaml = b"componentType: K8S_MICROSERVICE
componentName: api
options:
  chartPath: ignored
---
componentType: HELM
componentName: redis
options:
  chartPath: charts/redis
---
componentType: HELM
componentName: remote
options:
  chartPath: https://charts.example.com/remote-1.0.0.tgz
---
componentType: HELM
componentName: from-git
options:
  repoPath: saas/x/chart
---
componentType: helm
componentName: web@web
options:
  chartPath: ./web
---
";
        let found = local_charts(yaml, tmp.path()).unwrap();
        assert_eq!(
            found,
            [
                ChartSource { component: "redis".into(), dir: tmp.path().join("charts/redis") },
                ChartSource { component: "web@web".into(), dir: tmp.path().join("./web") },
            ]
        );
    }

    #[test]
    fn bad_chart_paths_are_refused_before_sending() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        let doc =
            |path: &str| format!("componentType: HELM\ncomponentName: c\noptions:\n  chartPath: {path}\n");
        let err = local_charts(doc("missing").as_bytes(), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("is not a folder"), "{err}");
        let err = local_charts(doc("empty").as_bytes(), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no Chart.yaml"), "{err}");
        chart(tmp.path(), "c");
        let twice = format!("{}---\n{}", doc("c"), doc("c"));
        let err = local_charts(twice.as_bytes(), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let err = local_charts(b"a: [1,\n", tmp.path()).unwrap_err();
        assert!(matches!(err, CliError::Invalid(_)), "{err}");
    }
}
