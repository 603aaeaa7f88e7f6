//! The Ed25519 keys that sign access tokens.
//!
//! Keys live in `signing_keys`, so every replica signs with the same key and verifies the same set.
//! Exactly one key is active (a unique index on `active_slot` makes a second one impossible, so two
//! replicas starting or rotating at once cannot both create one). Rotation retires the active key
//! and inserts a new one in one transaction; the retired key stays in the JWKS for the access-token
//! lifetime plus a minute, so tokens it signed keep verifying until they expire and nobody is logged
//! out. Each replica caches the active key and re-reads it at most every [`RELOAD_EVERY`], which
//! picks up a rotation made by another replica.

use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, TransactionTrait,
};
use sw_authz::jwt;
use sw_bus::outbox::Outbox;
use sw_contracts::auth::{Jwk, Jwks, SigningKeyOut};
use tokio::sync::RwLock;

use crate::entity::signing_key::{self, ACTIVE, RETIRED};
use crate::state::{commit_with_event, now, traced_event};

/// How long a replica signs with its cached key before checking the database for a rotation.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// How long past `access TTL` a retired key stays in the JWKS (clock skew and in-flight requests).
const RETIRED_GRACE_SECS: i64 = 60;

/// The key that signs new tokens.
#[derive(Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub key: SigningKey,
}

struct Cached {
    active: ActiveKey,
    loaded: Instant,
}

/// Signing keys with a per-replica cache of the active one.
pub struct KeyRing {
    db: DatabaseConnection,
    access_ttl_secs: i64,
    cache: RwLock<Option<Cached>>,
}

impl KeyRing {
    pub fn new(db: DatabaseConnection, access_ttl_secs: u64) -> Self {
        Self {
            db,
            access_ttl_secs: i64::try_from(access_ttl_secs).unwrap_or(i64::MAX / 2),
            cache: RwLock::new(None),
        }
    }

    /// The active key: cached, re-read from the database when the cache is older than
    /// [`RELOAD_EVERY`], created when there is none (first start).
    pub async fn active(&self) -> Result<ActiveKey, DbErr> {
        if let Some(c) = self.cache.read().await.as_ref()
            && c.loaded.elapsed() < RELOAD_EVERY
        {
            return Ok(c.active.clone());
        }
        let active = self.ensure_active().await?;
        *self.cache.write().await = Some(Cached { active: active.clone(), loaded: Instant::now() });
        Ok(active)
    }

    /// Reads the active key, creating one when there is none.
    pub async fn ensure_active(&self) -> Result<ActiveKey, DbErr> {
        for _ in 0..3 {
            if let Some(row) = find_active(&self.db).await? {
                return to_active(&row);
            }
            match insert_new_key(&self.db).await {
                Ok(row) => {
                    tracing::info!(kid = %row.kid, "Created the first signing key.");
                    return to_active(&row);
                }
                // Another replica created one at the same moment: read theirs.
                Err(e) if sw_db::is_duplicate(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DbErr::Custom("could not settle on an active signing key".into()))
    }

    /// Retires the active key and activates a new one, writing `auth.key.rotated` to the outbox in
    /// the same transaction. This replica signs with the new key at once.
    pub async fn rotate(&self, outbox: &Outbox, traceparent: Option<String>) -> Result<SigningKeyOut, DbErr> {
        for _ in 0..3 {
            let txn = self.db.begin().await?;
            let at = now();
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::Status, Expr::value(RETIRED))
                .col_expr(signing_key::Column::ActiveSlot, Expr::value(Option::<i8>::None))
                .col_expr(signing_key::Column::RetiredAt, Expr::value(Some(at)))
                .filter(signing_key::Column::ActiveSlot.eq(1))
                .exec(&txn)
                .await?;
            let row = match insert_new_key(&txn).await {
                Ok(row) => row,
                // A concurrent rotation activated its key between our update and insert: go again.
                Err(e) if sw_db::is_duplicate(&e) => {
                    txn.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let out = key_out(&row);
            let event = traced_event(traceparent.clone(), "auth.key.rotated", &row.kid, &out);
            commit_with_event(outbox, txn, &event).await?;
            let active = to_active(&row)?;
            *self.cache.write().await = Some(Cached { active, loaded: Instant::now() });
            tracing::info!(kid = %row.kid, "Signing key rotated.");
            return Ok(out);
        }
        Err(DbErr::Custom("signing key rotation kept conflicting".into()))
    }

    /// The public keys that may verify an unexpired token: the active key and keys retired less than
    /// the access-token lifetime (plus a grace minute) ago.
    pub async fn jwks(&self) -> Result<Jwks, DbErr> {
        let cutoff = now() - chrono::Duration::seconds(self.access_ttl_secs + RETIRED_GRACE_SECS);
        let rows =
            signing_key::Entity::find()
                .filter(signing_key::Column::Status.eq(ACTIVE).or(
                    signing_key::Column::Status.eq(RETIRED).and(signing_key::Column::RetiredAt.gt(cutoff)),
                ))
                .order_by_desc(signing_key::Column::CreatedAt)
                .all(&self.db)
                .await?;
        let keys = rows
            .iter()
            .filter_map(|r| {
                let vk = verifying_key_of(r)?;
                Some(Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: jwt::public_x(&vk),
                    kid: r.kid.clone(),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                })
            })
            .collect();
        Ok(Jwks { keys })
    }

    /// The public key named `kid`, whatever its status (revocation accepts any token we signed).
    pub async fn verifying_key(&self, kid: &str) -> Result<Option<VerifyingKey>, DbErr> {
        Ok(signing_key::Entity::find_by_id(kid.to_owned())
            .one(&self.db)
            .await?
            .as_ref()
            .and_then(verifying_key_of))
    }

    /// Every key, newest first, without private halves.
    pub async fn list(&self) -> Result<Vec<SigningKeyOut>, DbErr> {
        let rows =
            signing_key::Entity::find().order_by_desc(signing_key::Column::CreatedAt).all(&self.db).await?;
        Ok(rows.iter().map(key_out).collect())
    }
}

async fn find_active<C: ConnectionTrait>(db: &C) -> Result<Option<signing_key::Model>, DbErr> {
    signing_key::Entity::find().filter(signing_key::Column::ActiveSlot.eq(1)).one(db).await
}

async fn insert_new_key<C: ConnectionTrait>(db: &C) -> Result<signing_key::Model, DbErr> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let row = signing_key::Model {
        kid: uuid::Uuid::now_v7().to_string(),
        secret_key: key.to_bytes().to_vec(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        status: ACTIVE.into(),
        active_slot: Some(1),
        created_at: now(),
        retired_at: None,
    };
    signing_key::Entity::insert(row.clone().into_active_model()).exec_without_returning(db).await?;
    Ok(row)
}

fn to_active(row: &signing_key::Model) -> Result<ActiveKey, DbErr> {
    let bytes: [u8; 32] = row
        .secret_key
        .as_slice()
        .try_into()
        .map_err(|_| DbErr::Custom(format!("signing key {} is corrupt", row.kid)))?;
    Ok(ActiveKey { kid: row.kid.clone(), key: SigningKey::from_bytes(&bytes) })
}

fn verifying_key_of(row: &signing_key::Model) -> Option<VerifyingKey> {
    let raw: [u8; 32] = row.public_key.as_slice().try_into().ok()?;
    VerifyingKey::from_bytes(&raw).ok()
}

fn key_out(row: &signing_key::Model) -> SigningKeyOut {
    SigningKeyOut {
        kid: row.kid.clone(),
        status: row.status.clone(),
        created_at: row.created_at,
        retired_at: row.retired_at,
    }
}
