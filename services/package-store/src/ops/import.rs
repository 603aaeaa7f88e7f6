//! `packages.import`: the caller streams the zip (raw, or as the `file` part of a multipart
//! form); it is spooled to disk and handed to the import pipeline.
//!
//! The envelope's `body` says what the stream is: `{"contentType": …, "contentLength": …}`.
//! With an `appId` path parameter the zip must be for that app; without one (the multipart route
//! `POST /v1/app-packages/import`) the app is read from the zip and authorized after inspection.

use std::sync::Arc;

use serde::Deserialize;
use sw_bus::{BlobReader, RpcCall, RpcReply};
use sw_contracts::packages::{ImportQuery, PackageSource};
use sw_http::ApiError;

use super::app_param;
use crate::authz::{self, Op, allowed};
use crate::ctx::Ctx;
use crate::import::{self, ImportEvent, ImportRequest, VersionChoice, ZipFile};
use crate::upload::{self, FormFields};

/// What the gateway tells about the streamed body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyInfo {
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
}

pub(super) async fn import(ctx: Arc<Ctx>, call: RpcCall, body: BlobReader) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app = match call.envelope.params.contains_key("appId") {
        true => Some(app_param(&call)?),
        false => None,
    };
    // Refuse before reading a byte when the caller cannot write here (or anywhere).
    match &app {
        Some(app) => authz::require(&principal, Op::PackageWrite, app)?,
        None if !principal.can_anywhere(allowed, Op::PackageWrite) => {
            return Err(ApiError::forbidden("Your roles do not allow importing packages."));
        }
        None => {}
    }
    let query: ImportQuery = sw_http::parse_query(&call.envelope.query)?;
    let info: BodyInfo = match call.envelope.body.clone() {
        Some(v) => serde_json::from_value(v).map_err(|e| ApiError::invalid_field("body", e.to_string()))?,
        None => BodyInfo::default(),
    };
    let received = upload::receive(body, info.content_type.as_deref(), info.content_length, &ctx.cfg).await?;
    let (version, force) = merge(&query, &received.form)?;
    let req = ImportRequest {
        expected_app: app,
        version,
        force,
        source: PackageSource::Import,
        created_by: principal.subject.clone(),
        event: ImportEvent::Imported,
        traceparent: call.meta.traceparent.clone(),
    };
    let out = import::run(ctx.clone(), ZipFile::Spooled(received.file), req, Some(principal)).await?;
    let location = format!("/v1/apps/{}/app-packages/{}", out.app_id, out.id);
    Ok(RpcReply::created(&out).header("Location", location))
}

/// The query and the form's text parts together: a setting given in both must agree.
fn merge(q: &ImportQuery, form: &FormFields) -> Result<(VersionChoice, bool), ApiError> {
    fn one<T: PartialEq + Clone>(field: &str, a: &Option<T>, b: &Option<T>) -> Result<Option<T>, ApiError> {
        match (a, b) {
            (Some(x), Some(y)) if x != y => {
                Err(ApiError::invalid_field(field, "differs between the query and the form"))
            }
            (Some(x), _) | (None, Some(x)) => Ok(Some(x.clone())),
            (None, None) => Ok(None),
        }
    }
    let version = one("packageVersion", &q.package_version, &form.package_version)?;
    let force = one("force", &q.force, &form.force)?.unwrap_or(false);
    let reset = one("resetVersion", &q.reset_version, &form.reset_version)?.unwrap_or(false);
    let choice = match (version, reset) {
        (Some(_), true) => {
            return Err(ApiError::invalid_field("resetVersion", "cannot be combined with packageVersion"));
        }
        (Some(v), false) => VersionChoice::Explicit(v),
        (None, true) => VersionChoice::Next,
        (None, false) => VersionChoice::Meta,
    };
    Ok((choice, force))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_merge() {
        let q = |v: Option<&str>, f: Option<bool>, r: Option<bool>| ImportQuery {
            package_version: v.map(str::to_owned),
            force: f,
            reset_version: r,
        };
        let form = |v: Option<&str>, f: Option<bool>, r: Option<bool>| FormFields {
            package_version: v.map(str::to_owned),
            force: f,
            reset_version: r,
        };
        assert_eq!(
            merge(&q(None, None, None), &form(None, None, None)).unwrap(),
            (VersionChoice::Meta, false)
        );
        assert_eq!(
            merge(&q(Some("1.2.3"), None, None), &form(None, Some(true), None)).unwrap(),
            (VersionChoice::Explicit("1.2.3".into()), true)
        );
        assert_eq!(
            merge(&q(None, None, Some(true)), &form(None, None, Some(true))).unwrap().0,
            VersionChoice::Next
        );
        let e = merge(&q(None, Some(true), None), &form(None, Some(false), None)).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "force");
        let e = merge(&q(Some("1.0.0"), None, Some(true)), &form(None, None, None)).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "resetVersion");
    }
}
