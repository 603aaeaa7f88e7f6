//! Receiving a build request: the streamed body is a `build.yaml` (YAML), an `AppPackageTaskIn`
//! (JSON), or a `multipart/form-data` form with a `build.yaml` part, chart archives in parts
//! named `chart.<componentName>`, and `version` / `tags` text parts.
//!
//! The spec is small and read into memory up to `max_spec_bytes`; chart archives are written to
//! temporary files as they arrive and refused as soon as one passes `max_chart_bytes`. Nothing is
//! checked for meaning here: that is the validator's job once everything has arrived.

use std::path::Path;

use serde_json::Value;
use sw_bus::{BlobError, BlobReader};
use sw_contracts::FieldError;
use sw_contracts::packages::AppPackageTaskIn;
use sw_http::ApiError;
use tempfile::TempPath;

use super::invalid_build;
use crate::build::{BuildLimits, CHART_PART_PREFIX, chart_part_component, check_component_name};
use crate::upload::Sink;

/// The form part holding the build spec.
pub(crate) const SPEC_PART: &str = "build.yaml";
/// Largest `version` text part, in bytes.
const VERSION_PART_MAX: u64 = 256;
/// Largest `tags` text part, in bytes.
const TAGS_PART_MAX: u64 = 16 * 1024;

/// The build spec as sent.
#[derive(Debug)]
pub(crate) enum Spec {
    /// A (multi-document) `build.yaml`.
    Yaml(Vec<u8>),
    /// A JSON body: binders plus its own version and tags.
    Json(AppPackageTaskIn),
}

/// A chart archive received into a temporary file (deleted when this is dropped).
#[derive(Debug)]
pub(crate) struct ChartUpload {
    pub component: String,
    pub path: TempPath,
    pub size: u64,
}

/// Everything a build request carried.
#[derive(Debug)]
pub(crate) struct Received {
    pub spec: Spec,
    pub charts: Vec<ChartUpload>,
    /// The form's `version` part.
    pub version: Option<String>,
    /// The form's `tags` part (comma-separated).
    pub tags: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Yaml,
    Json,
    Multipart { boundary: String },
}

fn body_kind(content_type: Option<&str>) -> Result<BodyKind, ApiError> {
    // A caller that streams without saying what it sends is sending a build.yaml.
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(BodyKind::Yaml) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(BodyKind::Yaml),
        "application/json" => Ok(BodyKind::Json),
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(ct).map_err(|e| {
                ApiError::bad_request("malformed_multipart", format!("Invalid multipart Content-Type: {e}"))
            })?;
            Ok(BodyKind::Multipart { boundary })
        }
        _ => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!(
                "Content-Type {ct:?} is not accepted: send a build.yaml as application/yaml, an \
                 AppPackageTaskIn as application/json, or multipart/form-data with a `build.yaml` part \
                 and `chart.<componentName>` parts."
            ),
        )),
    }
}

/// 413 for a spec or a chart over its limit (the code imports use for the same condition).
pub(crate) fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::new(413, "package_too_large", format!("{what} is larger than the limit of {limit} bytes."))
}

/// Reads the whole request.
pub(crate) async fn receive(
    body: BlobReader,
    content_type: Option<&str>,
    content_length: Option<u64>,
    spool_dir: Option<&Path>,
    limits: &BuildLimits,
) -> Result<Received, ApiError> {
    let kind = body_kind(content_type)?;
    let spec_limit = limits.max_spec_bytes;
    let small = |spec| Received { spec, charts: Vec::new(), version: None, tags: None };
    match kind {
        BodyKind::Yaml => {
            if content_length.is_some_and(|n| n > spec_limit) {
                return Err(too_large("The build spec", spec_limit));
            }
            Ok(small(Spec::Yaml(read_all(body, spec_limit).await?)))
        }
        BodyKind::Json => {
            if content_length.is_some_and(|n| n > spec_limit) {
                return Err(too_large("The build spec", spec_limit));
            }
            let bytes = read_all(body, spec_limit).await?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::malformed_json(format!("The body is not valid JSON: {e}")))?;
            let task: AppPackageTaskIn =
                sw_http::parse_body(Some(value)).map_err(|e| invalid_build(e.problem().errors.clone()))?;
            Ok(small(Spec::Json(task)))
        }
        BodyKind::Multipart { boundary } => receive_form(body, boundary, spool_dir, limits).await,
    }
}

/// The body into memory, refused past `limit` bytes.
async fn read_all(mut body: BlobReader, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await.map_err(|e| e.to_api_error())? {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large("The build spec", limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn receive_form(
    body: BlobReader,
    boundary: String,
    spool_dir: Option<&Path>,
    limits: &BuildLimits,
) -> Result<Received, ApiError> {
    let size_limit = multer::SizeLimit::new()
        .per_field(limits.max_chart_bytes)
        .for_field(SPEC_PART, limits.max_spec_bytes)
        .for_field("version", VERSION_PART_MAX)
        .for_field("tags", TAGS_PART_MAX);
    let mut form = multer::Multipart::with_constraints(
        body.into_stream(),
        boundary,
        multer::Constraints::new().size_limit(size_limit),
    );
    let mut spec = None;
    let mut charts: Vec<ChartUpload> = Vec::new();
    let (mut version, mut tags) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(|e| form_error(e, limits))? {
        let name = field.name().unwrap_or("").to_owned();
        let once = |seen: bool| {
            if seen { Err(ApiError::invalid_field(&name, "must be sent once")) } else { Ok(()) }
        };
        match name.as_str() {
            SPEC_PART => {
                once(spec.is_some())?;
                spec = Some(field.bytes().await.map_err(|e| form_error(e, limits))?.to_vec());
            }
            "version" => {
                once(version.is_some())?;
                version = Some(field.text().await.map_err(|e| form_error(e, limits))?);
            }
            "tags" => {
                once(tags.is_some())?;
                tags = Some(field.text().await.map_err(|e| form_error(e, limits))?);
            }
            other => {
                let component = chart_part_component(other).ok_or_else(|| {
                    ApiError::invalid_field(
                        other,
                        format!("is not a known part ({SPEC_PART}, {CHART_PART_PREFIX}<componentName>, version, tags)"),
                    )
                })?;
                check_component_name(component).map_err(|why| ApiError::invalid_field(other, why))?;
                once(charts.iter().any(|c| c.component == component))?;
                if charts.len() >= limits.max_components {
                    return Err(too_large("The number of chart parts", limits.max_components as u64));
                }
                let component = component.to_owned();
                // multer enforces the part's size limit (`form_error` names it), so no second one here.
                let mut sink = Sink::named(spool_dir, "sw-chart-", "", u64::MAX).await?;
                while let Some(chunk) = field.chunk().await.map_err(|e| form_error(e, limits))? {
                    sink.write(&chunk).await?;
                }
                let spooled = sink.finish().await?;
                charts.push(ChartUpload { component, path: spooled.path, size: spooled.size });
            }
        }
    }
    let spec = spec.ok_or_else(|| {
        invalid_build(vec![FieldError::new(
            SPEC_PART,
            "is required: the build spec as a part named `build.yaml`",
        )])
    })?;
    Ok(Received { spec: Spec::Yaml(spec), charts, version, tags })
}

/// A form parse failure: the body's own failure (stalled, interrupted) keeps its problem; a part
/// over its limit is 413 (spec, chart) or 422 (text); anything else is 400.
fn form_error(e: multer::Error, limits: &BuildLimits) -> ApiError {
    match &e {
        multer::Error::StreamReadFailed(inner) => match inner.downcast_ref::<BlobError>() {
            Some(b) => b.to_api_error(),
            None => ApiError::bad_request("malformed_multipart", e.to_string()),
        },
        multer::Error::FieldSizeExceeded { limit, field_name } => match field_name.as_deref() {
            Some(SPEC_PART) => too_large("The build spec", limits.max_spec_bytes),
            Some(f @ ("version" | "tags")) => {
                ApiError::invalid_field(f, format!("must be at most {limit} bytes"))
            }
            Some(f) => too_large(&format!("The chart archive in part {f}"), *limit),
            None => too_large("A part", *limit),
        },
        _ => ApiError::bad_request("malformed_multipart", format!("The multipart body is invalid: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(body_kind(None).unwrap(), BodyKind::Yaml);
        for yaml in ["application/yaml", "application/x-yaml", "text/yaml; charset=utf-8", "Text/X-Yaml"] {
            assert_eq!(body_kind(Some(yaml)).unwrap(), BodyKind::Yaml, "{yaml}");
        }
        assert_eq!(body_kind(Some("application/json")).unwrap(), BodyKind::Json);
        assert_eq!(
            body_kind(Some("multipart/form-data; boundary=x")).unwrap(),
            BodyKind::Multipart { boundary: "x".into() }
        );
        assert_eq!(body_kind(Some("multipart/form-data")).unwrap_err().code(), "malformed_multipart");
        let e = body_kind(Some("application/zip")).unwrap_err();
        assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"));
    }

    #[test]
    fn oversized_parts_name_their_limit() {
        let limits = BuildLimits { max_spec_bytes: 10, max_chart_bytes: 20, ..BuildLimits::default() };
        let over =
            |f: &str, limit: u64| multer::Error::FieldSizeExceeded { limit, field_name: Some(f.into()) };
        let e = form_error(over(SPEC_PART, 10), &limits);
        assert_eq!((e.status(), e.code()), (413, "package_too_large"));
        let e = form_error(over("chart.web", 20), &limits);
        assert_eq!((e.status(), e.code()), (413, "package_too_large"));
        assert!(e.problem().detail.as_deref().unwrap().contains("chart.web"));
        let e = form_error(over("tags", 16), &limits);
        assert_eq!((e.status(), e.problem().errors[0].field.as_str()), (422, "tags"));
    }
}
