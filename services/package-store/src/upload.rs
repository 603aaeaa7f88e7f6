//! Receiving an uploaded package: the streamed body goes to a temporary file in `spool_dir`,
//! hashed (SHA-256) and counted on the way, and refused as soon as it passes
//! `max_package_bytes`. Nothing of it stays in memory beyond the chunk at hand.
//!
//! Two body shapes arrive (the gateway says which in the envelope's `body.contentType`):
//! - the zip itself (`application/octet-stream`, `application/zip`);
//! - `multipart/form-data` with one file part named `file` and optional text parts
//!   `packageVersion`, `force`, `resetVersion` (parsed with `multer` as the chunks arrive).

use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sw_bus::{BlobError, BlobReader};
use sw_config::PackageStoreConfig;
use sw_http::ApiError;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Text parts of a multipart import and their size limit in bytes.
const FORM_FIELDS: [&str; 3] = ["packageVersion", "force", "resetVersion"];
const FORM_FIELD_MAX: u64 = 256;
/// Room for boundaries and part headers in a multipart body's declared length.
const MULTIPART_SLACK: u64 = 64 * 1024;

/// A package received into a temporary file (deleted when this is dropped).
#[derive(Debug)]
pub struct Spooled {
    pub path: TempPath,
    pub size: u64,
    /// SHA-256 of the bytes (lowercase hex).
    pub sha256: String,
}

/// The text parts of a multipart import.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FormFields {
    pub package_version: Option<String>,
    pub force: Option<bool>,
    pub reset_version: Option<bool>,
}

/// What `receive` got.
#[derive(Debug)]
pub(crate) struct Received {
    pub file: Spooled,
    pub form: FormFields,
}

/// The body's media type, from the envelope's `body.contentType`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Zip,
    Multipart { boundary: String },
}

fn body_kind(content_type: Option<&str>) -> Result<BodyKind, ApiError> {
    // A caller that streams without saying what it sends is sending the zip.
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(BodyKind::Zip) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/octet-stream" | "application/zip" | "application/x-zip-compressed" => Ok(BodyKind::Zip),
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
                "Content-Type {ct:?} is not accepted: send the zip as application/octet-stream or \
                 application/zip, or multipart/form-data with a `file` part."
            ),
        )),
    }
}

/// 413 `package_too_large`.
fn too_large(limit: u64) -> ApiError {
    ApiError::new(413, "package_too_large", format!("The package is larger than the limit of {limit} bytes."))
}

/// Streams the body into a temporary file under `cfg.spool_dir`.
pub(crate) async fn receive(
    body: BlobReader,
    content_type: Option<&str>,
    content_length: Option<u64>,
    cfg: &PackageStoreConfig,
) -> Result<Received, ApiError> {
    let kind = body_kind(content_type)?;
    let limit = cfg.max_package_bytes;
    let declared_limit = match kind {
        BodyKind::Zip => limit,
        BodyKind::Multipart { .. } => limit.saturating_add(MULTIPART_SLACK),
    };
    if content_length.is_some_and(|n| n > declared_limit) {
        return Err(too_large(limit));
    }
    let mut sink = Sink::create(cfg.spool_dir.as_deref(), limit).await?;
    match kind {
        BodyKind::Zip => {
            let mut body = body;
            while let Some(chunk) = body.next_chunk().await.map_err(|e| e.to_api_error())? {
                sink.write(&chunk).await?;
            }
            Ok(Received { file: sink.finish().await?, form: FormFields::default() })
        }
        BodyKind::Multipart { boundary } => receive_multipart(body, boundary, sink).await,
    }
}

async fn receive_multipart(body: BlobReader, boundary: String, mut sink: Sink) -> Result<Received, ApiError> {
    let mut limits = multer::SizeLimit::new().per_field(sink.limit);
    for f in FORM_FIELDS {
        limits = limits.for_field(f, FORM_FIELD_MAX);
    }
    let mut mp = multer::Multipart::with_constraints(
        body.into_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut form = FormFields::default();
    let mut seen_file = false;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => {
                if seen_file {
                    return Err(ApiError::invalid_field("file", "must be sent once"));
                }
                seen_file = true;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    sink.write(&chunk).await?;
                }
            }
            "packageVersion" => form.package_version = Some(field.text().await.map_err(multipart_error)?),
            "force" => form.force = Some(parse_bool("force", &field.text().await.map_err(multipart_error)?)?),
            "resetVersion" => {
                form.reset_version =
                    Some(parse_bool("resetVersion", &field.text().await.map_err(multipart_error)?)?);
            }
            other => {
                return Err(ApiError::invalid_field(
                    other,
                    "is not a known part (file, packageVersion, force, resetVersion)",
                ));
            }
        }
    }
    if !seen_file {
        return Err(ApiError::invalid_field(
            "file",
            "is required: the package zip as a file part named `file`",
        ));
    }
    Ok(Received { file: sink.finish().await?, form })
}

fn parse_bool(field: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid_field(field, "must be true or false")),
    }
}

/// A multipart parse failure: the body's own failure (stalled, interrupted) keeps its problem;
/// a part over its limit is 413 (the file) or 422 (a text part); anything else is 400.
fn multipart_error(e: multer::Error) -> ApiError {
    match &e {
        multer::Error::StreamReadFailed(inner) => {
            if let Some(b) = inner.downcast_ref::<BlobError>() {
                return b.to_api_error();
            }
            ApiError::bad_request("malformed_multipart", e.to_string())
        }
        multer::Error::FieldSizeExceeded { limit, field_name } => match field_name.as_deref() {
            Some(f) if FORM_FIELDS.contains(&f) => {
                ApiError::invalid_field(f, format!("must be at most {limit} bytes"))
            }
            _ => too_large(*limit),
        },
        _ => ApiError::bad_request("malformed_multipart", format!("The multipart body is invalid: {e}")),
    }
}

/// A temporary file being written, with its running digest and size (package uploads here, chart
/// parts of build tasks in `build_tasks::receive`). Deleted when the handle drops.
pub(crate) struct Sink {
    file: tokio::fs::File,
    path: TempPath,
    sha256: Sha256,
    size: u64,
    limit: u64,
}

impl Sink {
    /// A new file in `dir` (the system temp folder when `None`); more than `limit` bytes is a 413.
    pub(crate) async fn create(dir: Option<&Path>, limit: u64) -> Result<Self, ApiError> {
        Self::named(dir, "sw-upload-", ".zip", limit).await
    }

    pub(crate) async fn named(
        dir: Option<&Path>,
        prefix: &str,
        suffix: &str,
        limit: u64,
    ) -> Result<Self, ApiError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix).suffix(suffix);
        let tmp = match dir {
            Some(d) => builder.tempfile_in(d),
            None => builder.tempfile(),
        }
        .map_err(|e| spool_failed(&e))?;
        let (file, path) = tmp.into_parts();
        Ok(Self { file: tokio::fs::File::from_std(file), path, sha256: Sha256::new(), size: 0, limit })
    }

    pub(crate) async fn write(&mut self, chunk: &Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(too_large(self.limit));
        }
        self.sha256.update(chunk);
        self.file.write_all(chunk).await.map_err(|e| spool_failed(&e))
    }

    pub(crate) async fn finish(mut self) -> Result<Spooled, ApiError> {
        self.file.flush().await.map_err(|e| spool_failed(&e))?;
        drop(self.file);
        Ok(Spooled { path: self.path, size: self.size, sha256: hex::encode(self.sha256.finalize()) })
    }
}

/// Our local disk failed: 500, cause logged.
fn spool_failed(e: &std::io::Error) -> ApiError {
    ApiError::internal(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(body_kind(None).unwrap(), BodyKind::Zip);
        assert_eq!(body_kind(Some("application/zip")).unwrap(), BodyKind::Zip);
        assert_eq!(body_kind(Some("Application/Octet-Stream; x=1")).unwrap(), BodyKind::Zip);
        assert_eq!(
            body_kind(Some("multipart/form-data; boundary=abc")).unwrap(),
            BodyKind::Multipart { boundary: "abc".into() }
        );
        assert_eq!(body_kind(Some("multipart/form-data")).unwrap_err().code(), "malformed_multipart");
        let e = body_kind(Some("application/json")).unwrap_err();
        assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"));
    }

    #[test]
    fn booleans_are_strict() {
        assert!(parse_bool("force", "true").unwrap());
        assert!(!parse_bool("force", " false ").unwrap());
        assert_eq!(parse_bool("force", "yes").unwrap_err().status(), 422);
    }
}
