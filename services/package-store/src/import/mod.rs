//! The import pipeline: a zip on local disk becomes a READY app package, or nothing at all.
//!
//! 1. **inspect** (blocking thread): every hostile-input check of [`crate::format`]; each
//!    component zip is spooled to its own temporary file on the way;
//! 2. **authorize** the caller for the app the zip names (handlers without a caller — the build
//!    runner — authorized earlier);
//! 3. **version**: the one in `meta.yaml`, an explicit one (`x.y.z` gets a timestamp), or the next
//!    after the app's latest ([`crate::build::version`]);
//! 4. **reserve** the version's row (`IMPORTING`); a duplicate is 409 before S3 sees a byte;
//! 5. **claim and upload** the component zips not stored yet, then the app zip (multipart);
//! 6. **commit** row, components and the `package.app.imported|built` event in one transaction.
//!
//! Any failure after 4 runs `rows::undo`: the objects this import created are deleted, the
//! reservation removed or, for a forced re-import, the previous package restored. Steps 5 runs
//! under the import deadline; the pipeline runs as a task of its own, so a caller giving up does
//! not cut it short. Temporary files are removed when their handles drop, on every path.

pub(crate) mod rows;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use sw_authz::Principal;
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageOut, Md5Status, PackageSource};
use sw_http::ApiError;
use tempfile::TempPath;

use self::rows::{Claimed, NewRow, PlannedComponent, Reservation, ZipState};
use crate::authz::{self, Op};
use crate::build::version;
use crate::ctx::{Ctx, event, now, subject};
use crate::entity::{READY, app_package, source_to_db};
use crate::format::{FormatError, Md5Check, SpooledPackage, inspect_app_zip_spooled};
use crate::keys::{self, MAX_NAME_LEN, MAX_TYPE_LEN};
use crate::storage::PARTS_IN_FLIGHT;
use crate::upload::Spooled;

/// Which version the package is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionChoice {
    /// The `packageVersion` of its `meta.yaml`, as it is.
    Meta,
    /// This one: `x.y.z` gets `+<timestamp>` appended, `x.y.z+build` is kept.
    Explicit(String),
    /// The app's latest version with patch + 1 and a fresh timestamp (`1.0.0+<ts>` for the first).
    Next,
}

/// The event a successful import publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportEvent {
    /// `package.app.imported`: uploaded as a finished zip.
    Imported,
    /// `package.app.built`: assembled by a build task.
    Built,
}

impl ImportEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Imported => "package.app.imported",
            Self::Built => "package.app.built",
        }
    }
}

/// What to import a zip as.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The app the zip must belong to (`meta_app_id_mismatch` otherwise); `None` takes it from
    /// the zip.
    pub expected_app: Option<AppId>,
    pub version: VersionChoice,
    /// Replace a package of the same version, and component zips of the same version with other
    /// bytes.
    pub force: bool,
    pub source: PackageSource,
    /// The principal recorded as `createdBy` (`user:alice`).
    pub created_by: String,
    pub event: ImportEvent,
    /// W3C trace context for the event.
    pub traceparent: Option<String>,
}

/// The import pipeline for callers inside this service (the build-task runner).
#[derive(Debug, Clone)]
pub struct Importer {
    ctx: Arc<Ctx>,
}

impl Importer {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    /// Imports the zip at `path` (left in place) as `req` says, without an authorization check:
    /// the caller decided who may do this. Errors are the same problems an upload gets.
    pub async fn import_local_zip(&self, path: &Path, req: ImportRequest) -> Result<AppPackageOut, ApiError> {
        let owned = path.to_owned();
        let (size, sha256) = tokio::task::spawn_blocking(move || digest_file(&owned))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| ApiError::internal(&e))?;
        run(self.ctx.clone(), ZipFile::Local { path: path.to_owned(), size, sha256 }, req, None).await
    }
}

/// SHA-256 and size of a file, read in chunks.
fn digest_file(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex::encode(h.finalize())));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
}

/// The zip being imported: a spooled upload (deleted when done) or a caller's file.
#[derive(Debug)]
pub(crate) enum ZipFile {
    Spooled(Spooled),
    Local { path: PathBuf, size: u64, sha256: String },
}

impl ZipFile {
    fn path(&self) -> &Path {
        match self {
            Self::Spooled(s) => &s.path,
            Self::Local { path, .. } => path,
        }
    }
    fn size(&self) -> u64 {
        match self {
            Self::Spooled(s) => s.size,
            Self::Local { size, .. } => *size,
        }
    }
    fn sha256(&self) -> &str {
        match self {
            Self::Spooled(s) => &s.sha256,
            Self::Local { sha256, .. } => sha256,
        }
    }
}

/// Runs the pipeline as a tracked task of its own and waits for it.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    file: ZipFile,
    req: ImportRequest,
    principal: Option<Principal>,
) -> Result<AppPackageOut, ApiError> {
    let task_ctx = ctx.clone();
    let result = ctx
        .tasks
        .spawn(async move {
            let started = std::time::Instant::now();
            let result = pipeline(&task_ctx, &file, &req, principal.as_ref()).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) if e.status() >= 500 => "error",
                Err(_) => "refused",
            };
            metrics::counter!(crate::METRIC_IMPORTS, "outcome" => outcome, "source" => source_to_db(req.source))
                .increment(1);
            tracing::info!(
                outcome,
                bytes = file.size(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                code = result.as_ref().err().map(|e| e.code().to_owned()),
                "Package import finished."
            );
            result
        })
        .await;
    result.map_err(|e| ApiError::internal(&e))?
}

/// The problem for a rejected package: its format code and status; our own disk failing is 500.
pub(crate) fn format_problem(e: FormatError) -> ApiError {
    match e {
        FormatError::Io(_) => {
            tracing::error!(error = %e, "Reading a spooled package failed.");
            ApiError::new(500, e.code(), "The package could not be read from local storage.")
        }
        other => ApiError::new(other.status(), other.code(), other.to_string()),
    }
}

fn invalid_version(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(422, "invalid_version", e.to_string())
}

async fn pipeline(
    ctx: &Ctx,
    file: &ZipFile,
    req: &ImportRequest,
    principal: Option<&Principal>,
) -> Result<AppPackageOut, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(ctx.cfg.import_deadline_secs);
    let started = std::time::Instant::now();
    let spooled = inspect(ctx, file.path(), req.expected_app.clone()).await?;
    let inspected_ms = started.elapsed().as_millis() as u64;
    let meta = &spooled.package.meta;
    if let Some(p) = principal {
        authz::require(p, Op::PackageWrite, &meta.app_id)?;
    }
    let package_version = choose_version(ctx, &meta.app_id, &meta.package_version, &req.version).await?;
    keys::check_segment(&package_version, version::MAX_VERSION_LEN)
        .map_err(|m| invalid_version(format!("packageVersion {package_version:?} {m}")))?;
    let components = plan_components(&spooled)?;
    let row = NewRow {
        app_id: meta.app_id.clone(),
        package_version,
        source: source_to_db(req.source),
        size: file.size() as i64,
        sha256: file.sha256().to_owned(),
        tags: serde_json::to_string(&meta.tags).map_err(|e| ApiError::internal(&e))?,
        creator: meta.package_creator.clone(),
        meta: serde_json::to_string(meta).map_err(|e| ApiError::internal(&e))?,
        created_by: req.created_by.clone(),
    };
    // S3 down: refuse before a row exists (nothing to undo, nothing for the janitor).
    ctx.storage.ensure_bucket().await?;
    let res = rows::reserve(ctx, &row, req.force).await?;

    let mut progress = Progress::default();
    let work =
        write_objects(ctx, &res, &row, &components, &spooled.component_files, file, req.force, &mut progress);
    let written = match tokio::time::timeout_at(deadline, work).await {
        Ok(r) => r,
        Err(_) => {
            Err(ApiError::unavailable("timeout", &"the import did not finish within import_deadline_secs"))
        }
    };
    let written_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        size = file.size(),
        inspect_ms = inspected_ms,
        write_ms = written_ms.saturating_sub(inspected_ms),
        "Import checked and written."
    );
    let tp = req.traceparent.as_deref();
    let committed = match written {
        Ok(()) => {
            let name = req.event.name();
            let make_event = |out: &AppPackageOut| {
                event(name, subject(row.app_id.as_str(), &row.package_version), tp, out)
            };
            rows::commit(ctx, &res, &row, &components, &progress.claimed, &progress.uploaded, make_event)
                .await
        }
        Err(e) => Err(e),
    };
    match committed {
        Ok((out, replaced)) => {
            rows::collect_components(ctx, replaced).await;
            Ok(out)
        }
        Err(e) => {
            rows::undo(ctx, &res, &progress.claimed, &progress.started, progress.zip, tp).await;
            Err(e)
        }
    }
}

/// What the S3 stage has done so far (read by the undo after a failure or a timeout).
#[derive(Debug)]
struct Progress {
    claimed: Vec<Claimed>,
    /// Components whose upload was started.
    started: HashSet<i64>,
    /// Components whose upload finished.
    uploaded: HashSet<i64>,
    zip: ZipState,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            claimed: Vec::new(),
            started: HashSet::new(),
            uploaded: HashSet::new(),
            zip: ZipState::Untouched,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_objects(
    ctx: &Ctx,
    res: &Reservation,
    row: &NewRow,
    components: &[PlannedComponent],
    files: &[TempPath],
    zip: &ZipFile,
    force: bool,
    progress: &mut Progress,
) -> Result<(), ApiError> {
    progress.claimed = rows::claim(ctx, res, &row.app_id, components, force).await?;
    let mut seen = HashSet::new();
    // Owned items: a stream closure over borrowed ones fails the `Send` check of the task.
    let todo: Vec<(i64, String, PathBuf, u64)> = progress
        .claimed
        .iter()
        .zip(components.iter().zip(files))
        .filter(|(c, _)| c.upload && seen.insert(c.id))
        .map(|(c, (p, f))| (c.id, p.key.clone(), f.to_path_buf(), p.size as u64))
        .collect();
    // Counted as started before any request goes out: undo then deletes rather than assumes.
    progress.started.extend(todo.iter().map(|(id, ..)| *id));
    let storage = &ctx.storage;
    let components = futures::stream::iter(todo)
        .map(|(id, key, path, size)| async move {
            storage.put_file(&key, &path, size, false).await?;
            Ok::<_, ApiError>(id)
        })
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect::<Vec<i64>>();
    // The app zip goes up beside the component zips: they are independent objects, and the import
    // takes as long as the slower of the two instead of their sum.
    progress.zip = ZipState::Attempted;
    let app_key = keys::app_zip(row.app_id.as_str(), &row.package_version);
    let app_zip = storage.put_file(&app_key, zip.path(), zip.size(), true);
    let (uploaded, ()) = tokio::try_join!(components, async { app_zip.await.map_err(ApiError::from) })?;
    progress.uploaded.extend(uploaded);
    progress.zip = ZipState::Written;
    Ok(())
}

/// Step 1 on a blocking thread.
async fn inspect(ctx: &Ctx, path: &Path, expected: Option<AppId>) -> Result<SpooledPackage, ApiError> {
    let path = path.to_owned();
    let limits = ctx.limits();
    let spool_dir = ctx.cfg.spool_dir.clone();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(FormatError::Io)?;
        let reader = std::io::BufReader::with_capacity(64 * 1024, file);
        inspect_app_zip_spooled(reader, expected.as_ref(), &limits, spool_dir.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(format_problem)
}

/// Step 3.
async fn choose_version(
    ctx: &Ctx,
    app_id: &AppId,
    in_meta: &str,
    choice: &VersionChoice,
) -> Result<String, ApiError> {
    match choice {
        VersionChoice::Meta => Ok(in_meta.trim().to_owned()),
        VersionChoice::Explicit(v) => version::normalize_explicit(v, now()).map_err(invalid_version),
        VersionChoice::Next => {
            let versions = ready_versions(ctx, app_id).await?;
            let latest = version::max_version(versions.iter().map(|(_, v)| v.as_str()));
            Ok(version::next_version(latest, now()))
        }
    }
}

/// `(id, packageVersion)` of the app's READY packages.
pub(crate) async fn ready_versions(ctx: &Ctx, app_id: &AppId) -> Result<Vec<(i64, String)>, ApiError> {
    app_package::Entity::find()
        .select_only()
        .column(app_package::Column::Id)
        .column(app_package::Column::PackageVersion)
        .filter(app_package::Column::AppId.eq(app_id.as_str()))
        .filter(app_package::Column::Status.eq(READY))
        .into_tuple()
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)
}

/// The components with their keys; names that cannot be part of a key are `meta_invalid`.
fn plan_components(spooled: &SpooledPackage) -> Result<Vec<PlannedComponent>, ApiError> {
    let app = spooled.package.meta.app_id.as_str();
    spooled
        .package
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("componentPackages[{i}]");
            for (field, value, max) in [
                ("componentType", &c.component_type, MAX_TYPE_LEN),
                ("componentName", &c.component_name, MAX_NAME_LEN),
                ("packageVersion", &c.package_version, version::MAX_VERSION_LEN),
            ] {
                keys::check_segment(value, max).map_err(|m| {
                    ApiError::new(422, "meta_invalid", format!("meta.yaml is invalid: {at}.{field} {m}"))
                })?;
            }
            Ok(PlannedComponent {
                position: i as i32,
                key: keys::component_zip(app, &c.component_type, &c.component_name, &c.package_version),
                component_type: c.component_type.clone(),
                component_name: c.component_name.clone(),
                package_version: c.package_version.clone(),
                relative_path: c.relative_path.clone(),
                size: c.size as i64,
                md5: c.md5.clone(),
                sha256: c.sha256.clone(),
                md5_status: match c.md5_check {
                    Md5Check::Matched => Md5Status::Matched,
                    Md5Check::Mismatched { .. } => Md5Status::Mismatched,
                    Md5Check::NotDeclared => Md5Status::NotDeclared,
                },
            })
        })
        .collect()
}
