//! `clusters.*`: registered Kubernetes clusters (global scope).
//!
//! Credentials are write-only: they are checked, sealed with the cluster id as associated data
//! ([`sw_crypto`]) and stored; replies and events carry only `credentialKind`. The one operation
//! that hands out the sealed blob, still sealed, is the internal [`connection`] the k8s-executor asks.

use std::sync::Arc;

use base64::Engine;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use sw_authz::Scope;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::Name;
use sw_contracts::appmeta::{ClusterConnection, ClusterDeleted, ClusterIn, ClusterPatch};
use sw_crypto::seal_credentials;
use sw_http::ApiError;

use super::namespaces::ListQuery;
use super::store::{delete_with_event, insert_with_event, paged, update_cas};
use super::{Ctx, corrupt, event, now, path_id};
use crate::authz::{Op, allowed};
use crate::entity::{cluster, labels_to_db};
use crate::validate::{self, Errors};

async fn find<C: sea_orm::ConnectionTrait>(conn: &C, id: &Name) -> Result<cluster::Model, ApiError> {
    cluster::Entity::find_by_id(id.as_str())
        .one(conn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::not_found(format!("Cluster {id} does not exist.")))
}

fn seal(
    ctx: &Ctx,
    id: &Name,
    creds: &sw_contracts::appmeta::ClusterCredentials,
) -> Result<Vec<u8>, ApiError> {
    seal_credentials(&ctx.key, id.as_str(), creds).map_err(|e| ApiError::internal(&e))
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::ClusterRead, Scope::Global)?;
    let page = ListQuery::parse(&call.envelope.query)?;
    paged(&ctx.db, cluster::Entity::find(), cluster::Column::ClusterId, &page, cluster::Model::to_out).await
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::ClusterCreate, Scope::Global)?;
    let mut errs = Errors::new();
    let input: ClusterIn = validate::parse_body(call.envelope.body.clone(), &["clusterId"], &mut errs)?;
    validate::display(&mut errs, input.name.as_deref(), input.description.as_deref(), None);
    if let Some(u) = &input.api_url {
        validate::api_url(&mut errs, "apiUrl", u);
    }
    validate::credentials(&mut errs, &input.credentials, input.api_url.as_deref());
    validate::labels(&mut errs, "labels", &input.labels);
    errs.finish()?;
    let at = now();
    let row = cluster::Model {
        cluster_id: input.cluster_id.to_string(),
        name: input.name.unwrap_or_else(|| input.cluster_id.to_string()),
        description: input.description,
        api_url: input.api_url,
        credential_kind: input.credentials.kind().to_owned(),
        credentials: seal(&ctx, &input.cluster_id, &input.credentials)?,
        labels: labels_to_db(&input.labels),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let out = row.to_out().map_err(corrupt)?;
    let ev = event(&call, "appmeta.cluster.created", &row.cluster_id, &out);
    insert_with_event::<cluster::Entity>(&ctx, &row, &format!("Cluster {}", row.cluster_id), None, ev)
        .await?;
    Ok(RpcReply::created(&out).header("Location", format!("/v1/clusters/{}", row.cluster_id)))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::ClusterRead, Scope::Global)?;
    let id = path_id(&call, "clusterId", Name::parse)?;
    let row = find(&ctx.db, &id).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn update(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::ClusterUpdate, Scope::Global)?;
    let id = path_id(&call, "clusterId", Name::parse)?;
    let mut errs = Errors::new();
    let patch: ClusterPatch = validate::parse_body(call.envelope.body.clone(), &[], &mut errs)?;
    // Token credentials need an API URL, which may come from the patch or the stored row. The
    // URL can be replaced but never removed, so this first read stays valid for the retries.
    let current = find(&ctx.db, &id).await?;
    let api_url = patch.api_url.as_deref().or(current.api_url.as_deref());
    validate::display(&mut errs, patch.name.as_deref(), patch.description.as_deref(), None);
    if let Some(u) = &patch.api_url {
        validate::api_url(&mut errs, "apiUrl", u);
    }
    if let Some(c) = &patch.credentials {
        validate::credentials(&mut errs, c, api_url);
    }
    if let Some(l) = &patch.labels {
        validate::labels(&mut errs, "labels", l);
    }
    errs.finish()?;
    // Sealed once: a fresh nonce per write, and only one of the attempts below commits.
    let sealed =
        patch.credentials.as_ref().map(|c| Ok::<_, ApiError>((c.kind(), seal(&ctx, &id, c)?))).transpose()?;
    let change = |old: &cluster::Model| {
        let mut new = old.clone();
        if let Some(n) = &patch.name {
            new.name = n.clone();
        }
        if let Some(d) = &patch.description {
            new.description = Some(d.clone());
        }
        if let Some(u) = &patch.api_url {
            new.api_url = Some(u.clone());
        }
        if let Some((kind, blob)) = &sealed {
            new.credential_kind = (*kind).to_owned();
            new.credentials = blob.clone();
        }
        if let Some(l) = &patch.labels {
            new.labels = labels_to_db(l);
        }
        new.version = old.version + 1;
        new.updated_at = now();
        let update = cluster::Entity::update_many()
            .set(cluster::ActiveModel {
                name: Set(new.name.clone()),
                description: Set(new.description.clone()),
                api_url: Set(new.api_url.clone()),
                credential_kind: Set(new.credential_kind.clone()),
                credentials: Set(new.credentials.clone()),
                labels: Set(new.labels.clone()),
                version: Set(new.version),
                updated_at: Set(new.updated_at),
                ..Default::default()
            })
            .filter(cluster::Column::ClusterId.eq(old.cluster_id.as_str()))
            .filter(cluster::Column::Version.eq(old.version));
        Ok((new, update))
    };
    let key = id.clone();
    update_cas(
        &ctx,
        &format!("Cluster {id}"),
        async move |txn| find(txn, &key).await,
        change,
        cluster::Model::to_out,
        |out| event(&call, "appmeta.cluster.updated", out.cluster_id.as_str(), out),
    )
    .await
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::ClusterDelete, Scope::Global)?;
    let id = path_id(&call, "clusterId", Name::parse)?;
    let data = ClusterDeleted { cluster_id: id.clone() };
    delete_with_event(
        &ctx,
        cluster::Entity::delete_by_id(id.as_str()),
        &format!("Cluster {id}"),
        event(&call, "appmeta.cluster.deleted", id.as_str(), &data),
    )
    .await?;
    Ok(RpcReply::no_content())
}

/// The body of [`connection`].
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionIn {
    cluster_id: Name,
}

/// `clusters.connection` (internal, NATS only): what the k8s-executor needs to reach a cluster —
/// its API URL, credential kind, version and the credentials *still sealed* (base64 of the blob).
///
/// Asked with `{"clusterId": "..."}`; 404 for an unknown cluster.
///
/// It checks no user token, on purpose: the executor acts for the platform, not for a user, and has
/// none. What makes that safe: the blob is useless without `appmeta.encryption_key` (AES-256-GCM
/// bound to the cluster id; only appmeta and the executor hold the key), and internal subjects are
/// protected by NATS permissions — the gateway has no route to this operation (it is in neither
/// the gateway's routes nor the OpenAPI document), and deployments grant `api.appmeta.clusters.connection`
/// only to the executor's NATS user.
pub(super) async fn connection(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let mut errs = Errors::new();
    let input: ConnectionIn = validate::parse_body(call.envelope.body.clone(), &["clusterId"], &mut errs)?;
    errs.finish()?;
    let row = find(&ctx.db, &input.cluster_id).await?;
    Ok(RpcReply::ok(ClusterConnection {
        cluster_id: input.cluster_id,
        api_url: row.api_url,
        credential_kind: row.credential_kind,
        sealed_credentials: base64::engine::general_purpose::STANDARD.encode(&row.credentials),
        version: row.version,
    }))
}
