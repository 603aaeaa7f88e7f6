//! The package bucket in S3 (AWS S3, MinIO, s3s-fs…): uploads from local files, deletes,
//! presigned GETs, and housekeeping of abandoned multipart uploads.
//!
//! Two clients share one configuration: the platform's own for everything it does itself (on
//! `s3.endpoint`), and one that only signs URLs for users, naming `s3.public_endpoint` when it is
//! set (a URL signs its host, so the endpoint must be chosen before signing). Every failure is a
//! [`StorageError`], which callers answer as 503 `storage_unavailable` with `Retry-After`: the
//! client cannot fix it, and retrying later is the right move.
//!
//! The bucket is created on start when missing. S3 being down at that moment is logged, not
//! fatal: the first operation that needs the bucket tries again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use futures::{StreamExt, TryStreamExt};
use sw_config::S3Config;
use sw_http::ApiError;

/// Size of one multipart part (S3 wants at least 5 MiB for all but the last).
pub const PART_SIZE: u64 = 16 * 1024 * 1024;
/// Parts uploaded at once: 64 MiB of a file in flight at most.
pub const PARTS_IN_FLIGHT: usize = 4;
/// Objects up to this size go in one `PutObject`; larger ones as multipart.
pub const SINGLE_PUT_MAX: u64 = 64 * 1024 * 1024;

/// An S3 operation failed (network, credentials, server error, timeout).
#[derive(Debug, thiserror::Error)]
#[error("S3 {op} {key}: {message}")]
pub struct StorageError {
    op: &'static str,
    key: String,
    message: String,
}

impl StorageError {
    fn new(op: &'static str, key: &str, err: impl std::fmt::Display) -> Self {
        Self { op, key: key.to_owned(), message: err.to_string() }
    }

    /// 503 `storage_unavailable` with `Retry-After`; the cause is logged, not returned.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::unavailable("storage_unavailable", self)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        e.to_api_error()
    }
}

/// Builds an S3 client for `endpoint` (default: `cfg.endpoint`) from the configuration: static
/// keys from the configuration, else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
/// `AWS_SESSION_TOKEN`; path-style addressing as configured; every operation bounded by
/// `cfg.timeout_ms`; HTTPS through rustls with the ring provider.
pub fn s3_client(cfg: &S3Config, endpoint: Option<&str>) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .force_path_style(cfg.force_path_style)
        .http_client(http)
        .timeout_config(TimeoutConfig::builder().operation_timeout(cfg.timeout()).build());
    if let Some(ep) = endpoint.or(cfg.endpoint.as_deref()) {
        b = b.endpoint_url(ep);
    }
    match credentials(cfg) {
        Some(c) => b = b.credentials_provider(c),
        None => tracing::warn!(
            "No S3 credentials in the configuration or AWS_* variables; S3 requests will fail."
        ),
    }
    Client::from_conf(b.build())
}

fn credentials(cfg: &S3Config) -> Option<Credentials> {
    if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
        return Some(Credentials::new(id.expose(), secret.expose(), None, None, "sreworks-config"));
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (id, secret) = (var("AWS_ACCESS_KEY_ID")?, var("AWS_SECRET_ACCESS_KEY")?);
    Some(Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment"))
}

/// The package bucket.
#[derive(Debug)]
pub struct Storage {
    client: Client,
    public: Client,
    bucket: String,
    /// Set once the bucket is known to exist.
    bucket_ok: AtomicBool,
}

impl Storage {
    pub fn new(cfg: &S3Config) -> Self {
        let client = s3_client(cfg, None);
        let public = match &cfg.public_endpoint {
            Some(ep) => s3_client(cfg, Some(ep)),
            None => client.clone(),
        };
        Self { client, public, bucket: cfg.bucket.clone(), bucket_ok: AtomicBool::new(false) }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The client on the internal endpoint.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        let b = &self.bucket;
        match self.client.head_bucket().bucket(b).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                match self.client.create_bucket().bucket(b).send().await {
                    Ok(_) => tracing::info!(bucket = %b, "S3 bucket created."),
                    // A replica (or a concurrent request) created it first.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
                    Err(e) => return Err(StorageError::new("CreateBucket", b, DisplayErrorContext(e))),
                }
            }
            Err(e) => return Err(StorageError::new("HeadBucket", b, DisplayErrorContext(e))),
        }
        self.bucket_ok.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Makes sure the bucket exists before a write (once per process, after a failed start).
    async fn ready(&self) -> Result<(), StorageError> {
        if self.bucket_ok.load(Ordering::Relaxed) { Ok(()) } else { self.ensure_bucket().await }
    }

    /// Uploads the zip at `path` (`size` bytes) to `key`: one `PutObject` up to
    /// [`SINGLE_PUT_MAX`], multipart beyond (or always, with `multipart`).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        multipart: bool,
    ) -> Result<(), StorageError> {
        self.put_file_as(key, path, size, multipart, "application/zip").await
    }

    /// [`Storage::put_file`] for a file of any `content_type`.
    pub async fn put_file_as(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        multipart: bool,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.ready().await?;
        if !multipart && size <= SINGLE_PUT_MAX {
            let body = file_part(path, 0, size).await.map_err(|e| StorageError::new("PutObject", key, e))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .content_length(size as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| StorageError::new("PutObject", key, DisplayErrorContext(e)))?;
            return Ok(());
        }
        self.put_multipart(key, path, size, content_type).await
    }

    /// Multipart upload of [`PART_SIZE`] parts, [`PARTS_IN_FLIGHT`] at a time, each read from the
    /// file at its offset (nothing is buffered beyond the parts in flight). Any failure aborts the
    /// upload, so S3 keeps no parts; an upload abandoned by a crash is aborted by the janitor.
    async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| StorageError::new("CreateMultipartUpload", key, DisplayErrorContext(e)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::new("CreateMultipartUpload", key, "no upload id in the answer"))?
            .to_owned();
        let result = self.upload_parts(key, &upload_id, path, size).await;
        if result.is_err() {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(key, error = %DisplayErrorContext(e), "Could not abort a failed multipart upload; the janitor will.");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), StorageError> {
        // Even an empty file has one (empty) part.
        let count = size.div_ceil(PART_SIZE).max(1);
        let parts: Vec<CompletedPart> = futures::stream::iter(0..count)
            .map(|i| async move {
                let offset = i * PART_SIZE;
                let len = PART_SIZE.min(size - offset);
                let number = i as i32 + 1;
                let body = file_part(path, offset, len)
                    .await
                    .map_err(|e| StorageError::new("UploadPart", key, e))?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| StorageError::new("UploadPart", key, DisplayErrorContext(e)))?;
                Ok::<_, StorageError>(
                    CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build(),
                )
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| StorageError::new("CompleteMultipartUpload", key, DisplayErrorContext(e)))?;
        Ok(())
    }

    /// Downloads `key` into the file at `path` (created or truncated), chunk by chunk; returns
    /// the bytes written.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        self.get_to_file_capped(key, path, u64::MAX).await
    }

    /// [`Storage::get_to_file`], failing once the object goes past `max` bytes (an object larger
    /// than its row says is not read to the end).
    pub async fn get_to_file_capped(&self, key: &str, path: &Path, max: u64) -> Result<u64, StorageError> {
        use tokio::io::AsyncWriteExt;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::new("GetObject", key, DisplayErrorContext(e)))?;
        let mut file =
            tokio::fs::File::create(path).await.map_err(|e| StorageError::new("GetObject", key, e))?;
        let mut body = out.body;
        let mut written = 0u64;
        while let Some(chunk) =
            body.try_next().await.map_err(|e| StorageError::new("GetObject", key, DisplayErrorContext(e)))?
        {
            written += chunk.len() as u64;
            if written > max {
                return Err(StorageError::new(
                    "GetObject",
                    key,
                    format!("the object is larger than {max} bytes"),
                ));
            }
            file.write_all(&chunk).await.map_err(|e| StorageError::new("GetObject", key, e))?;
        }
        file.flush().await.map_err(|e| StorageError::new("GetObject", key, e))?;
        Ok(written)
    }

    /// Every object under `prefix` with its last-modified time (when the server says), at most
    /// `max` of them.
    pub async fn list(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<(String, Option<SystemTime>)>, StorageError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| StorageError::new("ListObjectsV2", prefix, DisplayErrorContext(e)))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let modified = o.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                out.push((key.to_owned(), modified));
                if out.len() >= max {
                    return Ok(out);
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes `key` (deleting a missing key succeeds, as in S3).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::new("DeleteObject", key, DisplayErrorContext(e)))?;
        Ok(())
    }

    /// A URL that GETs `key` without credentials for `expires`, on the public endpoint when
    /// `public` (else the internal one). `filename` becomes the response's Content-Disposition.
    pub async fn presign_get(
        &self,
        key: &str,
        expires: Duration,
        public: bool,
        filename: Option<&str>,
    ) -> Result<String, StorageError> {
        let config = PresigningConfig::builder()
            .start_time(SystemTime::now())
            .expires_in(expires)
            .build()
            .map_err(|e| StorageError::new("Presign", key, e))?;
        let client = if public { &self.public } else { &self.client };
        let mut req = client.get_object().bucket(&self.bucket).key(key);
        if let Some(name) = filename {
            req = req.response_content_disposition(format!("attachment; filename=\"{name}\""));
        }
        let signed = req
            .presigned(config)
            .await
            .map_err(|e| StorageError::new("Presign", key, DisplayErrorContext(e)))?;
        Ok(signed.uri().to_owned())
    }

    /// Aborts multipart uploads under `prefix` started before `before`; returns how many.
    /// A server without `ListMultipartUploads` (s3s-fs) counts as having none.
    pub async fn abort_stale_uploads(&self, prefix: &str, before: SystemTime) -> Result<usize, StorageError> {
        let mut aborted = 0;
        let mut key_marker = None;
        let mut id_marker = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 501) => return Ok(0),
                Err(e) => {
                    return Err(StorageError::new("ListMultipartUploads", prefix, DisplayErrorContext(e)));
                }
            };
            for u in page.uploads() {
                let started = u.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                let (Some(key), Some(id), Some(started)) = (u.key(), u.upload_id(), started) else {
                    continue;
                };
                if started >= before {
                    continue;
                }
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| StorageError::new("AbortMultipartUpload", key, DisplayErrorContext(e)))?;
                aborted += 1;
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(aborted);
            }
        }
    }
}

/// `len` bytes of the file at `offset` as a request body (read lazily; re-readable for retries).
async fn file_part(path: &Path, offset: u64, len: u64) -> Result<ByteStream, String> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| format!("reading {}: {e}", path.display()))
}
