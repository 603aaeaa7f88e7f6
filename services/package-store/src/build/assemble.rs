//! Writing the component zips and the app package zip of a build into a caller-given folder.
//!
//! The zips are byte-for-byte reproducible (fixed entry times and order), so the same binders,
//! charts and version give the same files and digests. Before it returns, [`assemble`] inspects
//! the app zip with the import rules (strict MD5 included): a build never produces a package the
//! store would refuse to import.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};
use sw_contracts::{AppId, FieldError};
use zip::write::SimpleFileOptions;

use super::binder::{CHART_PART_PREFIX, ComponentBinder, ComponentSpec};
use super::chart::{self, ChartInfo};
use super::error::BuildError;
use super::limits::BuildLimits;
use super::oam;
use super::version::Version;
use crate::format::{AppPackageMeta, ComponentPackageMeta, InspectedPackage, META_FILE, inspect_app_zip};

/// Everything a build needs besides the output folder.
#[derive(Debug, Clone, Copy)]
pub struct AssembleRequest<'a> {
    pub app_id: &'a AppId,
    /// The app package version (`x.y.z+build`); components get the same version.
    pub package_version: &'a str,
    pub tags: &'a [String],
    /// `packageCreator` of the app and its components.
    pub creator: &'a str,
    /// Validated binders, in build.yaml order.
    pub binders: &'a [ComponentBinder],
    /// The uploaded chart archive of each HELM component that has one, by component name.
    pub charts: &'a HashMap<String, PathBuf>,
    pub limits: &'a BuildLimits,
    /// The import rules the result is checked against (strict MD5 is forced on).
    pub package_limits: &'a crate::format::Limits,
}

/// The files a build wrote, and what inspecting them found.
#[derive(Debug, Clone)]
pub struct AssembledPackage {
    /// The app package zip.
    pub app_zip: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (lowercase hex).
    pub sha256: String,
    /// Each component zip as a separate file, in the order of `inspected.components`.
    pub component_files: Vec<PathBuf>,
    /// The app zip as the import inspection sees it (meta, and per component size/MD5/SHA-256).
    pub inspected: InspectedPackage,
}

/// Writes `<out_dir>/components/<TYPE>_<name>.zip` per binder and `<out_dir>/<appId>-<version>.zip`,
/// then checks the app zip with [`inspect_app_zip`]. `out_dir` must exist; files of an earlier
/// attempt in it are overwritten.
pub fn assemble(req: &AssembleRequest<'_>, out_dir: &Path) -> Result<AssembledPackage, BuildError> {
    Version::parse(req.package_version)?;
    check_inputs(req)?;
    let components_dir = out_dir.join("components");
    std::fs::create_dir_all(&components_dir).map_err(BuildError::Io)?;

    let mut metas = Vec::with_capacity(req.binders.len());
    let mut files = Vec::with_capacity(req.binders.len());
    for binder in req.binders {
        let chart_path = req.charts.get(&binder.component_name);
        let chart = match chart_path {
            Some(path) => {
                Some((path, chart::inspect_chart_archive(&binder.component_name, path, req.limits)?))
            }
            None => None,
        };
        let yaml = oam::component_yaml(
            req.app_id.as_str(),
            req.package_version,
            binder,
            chart.as_ref().map(|(_, i)| i),
        );
        let relative_path = binder.relative_path();
        let path = components_dir.join(&relative_path);
        write_component_zip(&path, &yaml, chart.as_ref().map(|(p, i)| (p.as_path(), i)), binder, req.limits)?;
        let (md5, _, _) = digest_file(&path)?;
        metas.push(ComponentPackageMeta {
            component_type: binder.component_type().as_str().to_owned(),
            component_name: binder.component_name.clone(),
            package_version: req.package_version.to_owned(),
            relative_path,
            package_md5: Some(md5),
            package_creator: Some(req.creator.to_owned()),
            package_ext: Some(yaml),
            package_options: Some(package_options(binder)),
        });
        files.push(path);
    }

    let meta = AppPackageMeta {
        app_id: req.app_id.clone(),
        package_version: req.package_version.to_owned(),
        package_creator: Some(req.creator.to_owned()),
        tags: req.tags.to_vec(),
        component_packages: metas,
    };
    let meta_yaml = serde_yaml::to_string(&meta).map_err(|e| BuildError::Io(io::Error::other(e)))?;
    let app_zip = out_dir.join(format!("{}-{}.zip", req.app_id, req.package_version));
    write_app_zip(&app_zip, &meta_yaml, &meta, &files)?;

    let limits = crate::format::Limits { strict_md5: true, ..req.package_limits.clone() };
    let reader = BufReader::new(File::open(&app_zip).map_err(BuildError::Io)?);
    let inspected = inspect_app_zip(reader, Some(req.app_id), &limits).map_err(BuildError::Package)?;
    let (_, sha256, size) = digest_file(&app_zip)?;
    Ok(AssembledPackage { app_zip, size, sha256, component_files: files, inspected })
}

/// Binders may come back from storage, so the rules the validator enforced across binders are
/// checked again here, together with the chart uploads.
fn check_inputs(req: &AssembleRequest<'_>) -> Result<(), BuildError> {
    let mut errors = Vec::new();
    if req.binders.is_empty() {
        errors.push(FieldError::new("components", "the build has no components"));
    }
    let mut names = HashSet::new();
    for (i, b) in req.binders.iter().enumerate() {
        if !names.insert(b.component_name.as_str()) {
            errors.push(FieldError::new(format!("components[{i}].componentName"), "duplicate componentName"));
        }
        let wants_upload = matches!(&b.spec, ComponentSpec::Helm(h) if h.repository.is_none());
        if wants_upload && !req.charts.contains_key(&b.component_name) {
            errors.push(FieldError::new(
                format!("{CHART_PART_PREFIX}{}", b.component_name),
                "no chart archive was uploaded for this HELM component",
            ));
        }
    }
    let mut extra: Vec<&String> = req
        .charts
        .keys()
        .filter(|name| {
            !req.binders.iter().any(|b| {
                &b.component_name == *name
                    && matches!(&b.spec, ComponentSpec::Helm(h) if h.repository.is_none())
            })
        })
        .collect();
    extra.sort();
    for name in extra {
        errors.push(FieldError::new(
            format!("{CHART_PART_PREFIX}{name}"),
            "no HELM component takes this chart",
        ));
    }
    if errors.is_empty() { Ok(()) } else { Err(BuildError::Invalid { errors }) }
}

/// The binder's options as a JSON string, with the empty binder lists SREWorks records.
fn package_options(binder: &ComponentBinder) -> String {
    let mut options = serde_json::to_value(binder)
        .ok()
        .and_then(|v| v.get("options").cloned())
        .and_then(|o| o.as_object().cloned())
        .unwrap_or_default();
    for key in ["binderParameterValues", "binderTraits", "binderDependencies"] {
        options.insert(key.to_owned(), serde_json::Value::Array(Vec::new()));
    }
    serde_json::Value::Object(options).to_string()
}

fn write_component_zip(
    path: &Path,
    meta_yaml: &str,
    chart: Option<(&Path, &ChartInfo)>,
    binder: &ComponentBinder,
    limits: &BuildLimits,
) -> Result<(), BuildError> {
    let file = File::create(path).map_err(BuildError::Io)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    zip.start_file(META_FILE, file_options(meta_yaml.len() as u64, true)).map_err(zip_write_error)?;
    zip.write_all(meta_yaml.as_bytes()).map_err(BuildError::Io)?;
    if let Some((chart_path, info)) = chart {
        chart::copy_chart(
            &binder.component_name,
            chart_path,
            info,
            limits,
            &mut zip,
            &format!("{}/", oam::CHART_DIR),
        )?;
    }
    finish(zip)
}

fn write_app_zip(
    path: &Path,
    meta_yaml: &str,
    meta: &AppPackageMeta,
    files: &[PathBuf],
) -> Result<(), BuildError> {
    let file = File::create(path).map_err(BuildError::Io)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    zip.start_file(META_FILE, file_options(meta_yaml.len() as u64, true)).map_err(zip_write_error)?;
    zip.write_all(meta_yaml.as_bytes()).map_err(BuildError::Io)?;
    for (c, path) in meta.component_packages.iter().zip(files) {
        let mut src = File::open(path).map_err(BuildError::Io)?;
        let size = src.metadata().map_err(BuildError::Io)?.len();
        // Zips do not compress further; storing them also keeps the inspector's ratio check calm.
        zip.start_file(c.relative_path.as_str(), file_options(size, false)).map_err(zip_write_error)?;
        io::copy(&mut src, &mut zip).map_err(BuildError::Io)?;
    }
    finish(zip)
}

fn finish<W: Write + Seek>(zip: zip::ZipWriter<BufWriter<W>>) -> Result<(), BuildError> {
    let out = zip.finish().map_err(zip_write_error)?;
    let file = out.into_inner().map_err(|e| BuildError::Io(e.into_error()))?;
    drop(file);
    Ok(())
}

/// Entry options: fixed time and mode for reproducible zips; zip64 only when an entry may need it.
pub(super) fn file_options(max_size: u64, deflate: bool) -> SimpleFileOptions {
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        .large_file(max_size >= u64::from(u32::MAX))
}

pub(super) fn zip_write_error(e: zip::result::ZipError) -> BuildError {
    match e {
        zip::result::ZipError::Io(io) => BuildError::Io(io),
        other => BuildError::Io(io::Error::other(other)),
    }
}

/// MD5 and SHA-256 (lowercase hex) and size of a file.
fn digest_file(path: &Path) -> Result<(String, String, u64), BuildError> {
    let mut file = File::open(path).map_err(BuildError::Io)?;
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(BuildError::Io)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(md5.finalize()), hex::encode(sha.finalize()), size))
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
