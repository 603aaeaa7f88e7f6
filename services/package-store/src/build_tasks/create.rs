//! Creating a build task: everything that can be checked is checked before the task exists, so
//! a task only fails for reasons the request could not show (S3 or the database failing, the
//! version taken meanwhile, the deadline).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageTaskOut, PackageTaskQuery, PackageTaskStatus};
use sw_http::ApiError;

use super::receive::{ChartUpload, Received, Spec};
use super::rows::{self, NewTask};
use super::{build_problem, subject};
use crate::build::{
    BuildLimits, MAX_VERSION_LEN, binders_from_json, binders_from_yaml, inspect_chart_archive, version,
};
use crate::ctx::{Ctx, event, now};
use crate::entity::{app_package, package_task};
use crate::keys;
use crate::store::corrupt;

/// Most tags on one package, and the longest tag.
const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 255;

/// Who asked for which build, with what.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub app: AppId,
    pub query: PackageTaskQuery,
    pub received: Received,
    pub created_by: String,
    pub traceparent: Option<String>,
}

/// A checked chart upload and the extension its format gets in its key.
#[derive(Debug)]
struct CheckedChart {
    upload: ChartUpload,
    ext: &'static str,
}

/// Validates the request, picks the version and stores the task with its charts.
pub(crate) async fn create(ctx: Arc<Ctx>, req: CreateRequest) -> Result<AppPackageTaskOut, ApiError> {
    let limits = BuildLimits::from_config(&ctx.cfg);
    let CreateRequest { app, query, received, created_by, traceparent } = req;
    let uploaded: HashSet<String> = received.charts.iter().map(|c| c.component.clone()).collect();
    let (binders, body_version, body_tags) = match &received.spec {
        Spec::Yaml(bytes) => (
            binders_from_yaml(bytes, &uploaded, &limits),
            received.version.clone(),
            tags_text(received.tags.as_deref()),
        ),
        Spec::Json(task) => {
            let tags = (!task.tags.is_empty()).then(|| task.tags.clone());
            (binders_from_json(&task.components, &uploaded, &limits), task.version.clone(), tags)
        }
    };
    let binders = binders.map_err(build_problem)?;
    let version_asked = one("version", query.version.clone(), body_version)?;
    let tags = one("tags", tags_text(query.tags.as_deref()), body_tags)?.unwrap_or_default();
    check_tags(&tags)?;
    let charts = check_charts(received.charts, &limits).await?;
    let package_version = choose_version(&ctx, &app, version_asked.as_deref()).await?;
    let created_at = now();
    let new = NewTask {
        app_id: app,
        package_version,
        tags,
        binders,
        created_by,
        traceparent,
        created_at,
        deadline_at: created_at + chrono::Duration::seconds(ctx.cfg.build_deadline_secs as i64),
    };
    // A task of its own: a caller going away must not cut the upload and commit in half.
    let task_ctx = ctx.clone();
    ctx.tasks
        .spawn(async move { store(&task_ctx, new, charts).await })
        .await
        .map_err(|e| ApiError::internal(&e))?
}

/// The value given in the query and/or the body; both must agree.
fn one<T: PartialEq>(field: &str, query: Option<T>, body: Option<T>) -> Result<Option<T>, ApiError> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => {
            Err(ApiError::invalid_field(field, "differs between the query and the body"))
        }
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}

/// `a, b,,c` → `[a, b, c]`.
fn split_tags(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// Tags given as text; none at all counts as not given (so it cannot disagree with the other).
fn tags_text(s: Option<&str>) -> Option<Vec<String>> {
    s.map(split_tags).filter(|t| !t.is_empty())
}

fn check_tags(tags: &[String]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid_field("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_TAG_LEN || t.chars().any(char::is_control) || t.contains(',') {
            return Err(ApiError::invalid_field(
                &format!("tags[{i}]"),
                format!("must be 1-{MAX_TAG_LEN} bytes without commas or control characters"),
            ));
        }
    }
    Ok(())
}

/// Inspects every chart archive on a blocking thread (all problems of one chart, the first
/// chart that has any).
async fn check_charts(charts: Vec<ChartUpload>, limits: &BuildLimits) -> Result<Vec<CheckedChart>, ApiError> {
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    let limits = limits.clone();
    tokio::task::spawn_blocking(move || {
        charts
            .into_iter()
            .map(|upload| {
                inspect_chart_archive(&upload.component, &upload.path, &limits).map_err(build_problem)?;
                let ext = archive_ext(&upload.path).map_err(|e| ApiError::internal(&e))?;
                Ok(CheckedChart { upload, ext })
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// The extension of an archive the inspection accepted, by its first bytes.
fn archive_ext(path: &Path) -> std::io::Result<&'static str> {
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path)?;
    let n = f.read(&mut head)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => "tgz",
        [b'P', b'K', ..] => "zip",
        _ => "tar",
    })
}

/// Content type of a stored chart archive.
fn media_type(ext: &str) -> &'static str {
    match ext {
        "tgz" => "application/gzip",
        "zip" => "application/zip",
        _ => "application/x-tar",
    }
}

fn invalid_version(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(422, "invalid_version", e.to_string())
}

/// The version asked for (`x.y.z` gets a timestamp; 409 when a package has it), or the next one
/// after every package of the app and every task that has not failed, so a build never takes the
/// version of one still running.
async fn choose_version(ctx: &Ctx, app: &AppId, asked: Option<&str>) -> Result<String, ApiError> {
    let packages: Vec<String> = app_package::Entity::find()
        .select_only()
        .column(app_package::Column::PackageVersion)
        .filter(app_package::Column::AppId.eq(app.as_str()))
        .into_tuple()
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    if let Some(asked) = asked {
        let v = version::normalize_explicit(asked, now()).map_err(invalid_version)?;
        keys::check_segment(&v, MAX_VERSION_LEN)
            .map_err(|m| invalid_version(format!("version {v:?} {m}")))?;
        if packages.contains(&v) {
            return Err(ApiError::conflict(
                "package_version_exists",
                format!("App {app} already has package version {v}; build another version."),
            ));
        }
        return Ok(v);
    }
    let tasks: Vec<String> = package_task::Entity::find()
        .select_only()
        .column(package_task::Column::PackageVersion)
        .filter(package_task::Column::AppId.eq(app.as_str()))
        .filter(package_task::Column::Status.ne(PackageTaskStatus::Failure.as_str()))
        .into_tuple()
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    let latest = version::max_version(packages.iter().chain(&tasks).map(String::as_str));
    Ok(version::next_version(latest, now()))
}

/// Inserts the task, uploads its charts under its id and commits it with `package.task.created`
/// — or, on any failure, rolls back and deletes what was uploaded.
async fn store(ctx: &Ctx, new: NewTask, charts: Vec<CheckedChart>) -> Result<AppPackageTaskOut, ApiError> {
    if !charts.is_empty() {
        // S3 down: refuse before anything is written.
        ctx.storage.ensure_bucket().await?;
    }
    let txn = ctx.begin().await?;
    let mut row = rows::insert(&txn, &new).await?;
    let mut written: Vec<String> = Vec::new();
    let stored = async {
        let mut keys_by_component = BTreeMap::new();
        for c in &charts {
            let key = keys::task_chart(row.id, &c.upload.component, c.ext);
            // Listed before the request: a failed upload may still have left an object.
            written.push(key.clone());
            ctx.storage.put_file_as(&key, &c.upload.path, c.upload.size, false, media_type(c.ext)).await?;
            keys_by_component.insert(c.upload.component.clone(), key);
        }
        if !keys_by_component.is_empty() {
            rows::set_charts(&txn, &mut row, &keys_by_component).await?;
        }
        let out = row.to_out().map_err(corrupt)?;
        let ev =
            event("package.task.created", subject(&row.app_id, row.id), new.traceparent.as_deref(), &out);
        ctx.outbox.enqueue(&txn, &ev).await.map_err(sw_db::api_error)?;
        Ok::<_, ApiError>(out)
    }
    .await;
    let committed = match stored {
        Ok(out) => txn.commit().await.map(|()| out).map_err(sw_db::api_error),
        Err(e) => {
            if let Err(rb) = txn.rollback().await {
                tracing::warn!(error = %rb, "Rolling back a build task that failed to store.");
            }
            Err(e)
        }
    };
    match committed {
        Ok(out) => {
            ctx.outbox.wake();
            ctx.builds.notify_one();
            tracing::info!(app_id = %out.app_id, task_id = out.id, package_version = %out.package_version, "Build task created.");
            Ok(out)
        }
        Err(e) => {
            delete_objects(ctx, &written).await;
            Err(e)
        }
    }
}

/// Deletes `keys`, logging what could not be deleted (the janitor retries).
pub(crate) async fn delete_objects(ctx: &Ctx, keys: &[String]) {
    for key in keys {
        if let Err(e) = ctx.storage.delete(key).await {
            tracing::warn!(key, error = %e, "Could not delete a build input; the janitor will.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_trim_and_are_checked() {
        assert_eq!(split_tags(" a=1, b ,,c"), ["a=1", "b", "c"]);
        assert!(split_tags(" , ").is_empty());
        assert_eq!(tags_text(Some(" , ")), None);
        assert_eq!(tags_text(Some("a")), Some(vec!["a".to_owned()]));
        assert!(check_tags(&["release=stable".into()]).is_ok());
        let e = check_tags(&["ok".into(), "bad\ntag".into()]).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "tags[1]");
        assert!(check_tags(&vec!["t".to_owned(); MAX_TAGS + 1]).is_err());
        assert!(check_tags(&["x".repeat(MAX_TAG_LEN + 1)]).is_err());
    }

    #[test]
    fn query_and_body_must_agree() {
        assert_eq!(one("version", Some(1), None).unwrap(), Some(1));
        assert_eq!(one("version", None, Some(2)).unwrap(), Some(2));
        assert_eq!(one("version", Some(3), Some(3)).unwrap(), Some(3));
        assert_eq!(one::<u8>("version", None, None).unwrap(), None);
        assert_eq!(one("tags", Some(1), Some(2)).unwrap_err().problem().errors[0].field, "tags");
    }

    #[test]
    fn archive_formats_get_their_extension() {
        let dir = tempfile::tempdir().unwrap();
        for (head, ext) in [(&[0x1f, 0x8b, 8, 0][..], "tgz"), (b"PK\x03\x04", "zip"), (&[0u8; 4][..], "tar")]
        {
            let p = dir.path().join(ext);
            std::fs::write(&p, head).unwrap();
            assert_eq!(archive_ext(&p).unwrap(), ext);
            assert!(media_type(ext).starts_with("application/"));
        }
    }
}
