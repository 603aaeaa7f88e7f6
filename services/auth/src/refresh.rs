//! Refresh tokens: opaque, single use, rotated in families.
//!
//! A login starts a family and returns its first token. Exchanging a token marks it used with a
//! compare-and-swap (`UPDATE ... WHERE id = ? AND used_at IS NULL`, exactly one row) and returns
//! the next token of the same family, in one transaction. Presenting a token that was already used
//! means it leaked (or two parties hold it), so the whole family is revoked: the thief and the
//! victim both have to log in again. Revoking the family row (not each token) also catches a token
//! minted concurrently with the revocation.

use chrono::Duration;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, TransactionTrait,
};

use crate::entity::{refresh_family, refresh_token};
use crate::secrets;
use crate::state::now;

/// Tokens and families are kept this long past their expiry (for investigating reuse), then purged.
const KEEP_EXPIRED: Duration = Duration::days(1);

/// Why a refresh token was refused. All of these answer `invalid_grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Expired,
    Revoked,
    WrongClient,
    /// Already used: the family has just been revoked.
    Reused,
}

impl Refused {
    /// The `error_description` (the same for unknown and revoked, so probing learns nothing).
    pub fn describe(self) -> &'static str {
        match self {
            Refused::Unknown | Refused::Revoked => "The refresh token is invalid or has been revoked.",
            Refused::Expired => "The refresh token has expired.",
            Refused::WrongClient => "The refresh token was issued to another client.",
            Refused::Reused => "The refresh token was already used; all tokens of this login are revoked.",
        }
    }
}

/// A successful exchange.
#[derive(Debug)]
pub struct Rotated {
    pub username: String,
    /// The next token of the family (shown to the client once).
    pub token: String,
}

/// Starts a family for a new login and returns its first token.
pub async fn start_family<C: ConnectionTrait>(
    conn: &C,
    username: &str,
    client_id: &str,
    ttl_secs: i64,
) -> Result<String, DbErr> {
    let at = now();
    let family = refresh_family::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        username: Set(username.to_owned()),
        client_id: Set(client_id.to_owned()),
        created_at: Set(at),
        expires_at: Set(at + Duration::seconds(ttl_secs)),
        revoked_at: Set(None),
    };
    let family_id = family.id.clone().unwrap();
    refresh_family::Entity::insert(family).exec_without_returning(conn).await?;
    insert_token(conn, &family_id, username, client_id, ttl_secs).await
}

async fn insert_token<C: ConnectionTrait>(
    conn: &C,
    family_id: &str,
    username: &str,
    client_id: &str,
    ttl_secs: i64,
) -> Result<String, DbErr> {
    let token = secrets::random_token();
    let at = now();
    let row = refresh_token::ActiveModel {
        id: Default::default(),
        token_hash: Set(secrets::sha256_hex(&token)),
        family_id: Set(family_id.to_owned()),
        username: Set(username.to_owned()),
        client_id: Set(client_id.to_owned()),
        created_at: Set(at),
        expires_at: Set(at + Duration::seconds(ttl_secs)),
        used_at: Set(None),
    };
    refresh_token::Entity::insert(row).exec_without_returning(conn).await?;
    Ok(token)
}

/// Exchanges `presented` (sent by `client_id`) for the next token of its family.
pub async fn rotate(
    db: &DatabaseConnection,
    presented: &str,
    client_id: &str,
    ttl_secs: i64,
) -> Result<Result<Rotated, Refused>, DbErr> {
    let txn = db.begin().await?;
    let Some(row) = find_presented(&txn, presented).await? else {
        return Ok(Err(Refused::Unknown));
    };
    let family = refresh_family::Entity::find_by_id(row.family_id.clone()).one(&txn).await?;
    if family.as_ref().is_none_or(|f| f.revoked_at.is_some()) {
        return Ok(Err(Refused::Revoked));
    }
    if row.client_id != client_id {
        return Ok(Err(Refused::WrongClient));
    }
    if row.used_at.is_some() {
        return reused(txn, &row, "Refresh token reused; its family is revoked.").await;
    }
    if row.expires_at <= now() {
        return Ok(Err(Refused::Expired));
    }
    let marked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Some(now())))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if marked.rows_affected != 1 {
        // Someone exchanged the same token a moment ago: that is reuse too.
        return reused(txn, &row, "Refresh token used twice at once; its family is revoked.").await;
    }
    let token = insert_token(&txn, &row.family_id, &row.username, &row.client_id, ttl_secs).await?;
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::ExpiresAt, Expr::value(now() + Duration::seconds(ttl_secs)))
        .filter(refresh_family::Column::Id.eq(row.family_id.clone()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Ok(Rotated { username: row.username, token }))
}

/// Revokes the family of a token presented again (see the module doc) and commits that, so the
/// revocation stands although the exchange is refused.
async fn reused(
    txn: DatabaseTransaction,
    row: &refresh_token::Model,
    why: &'static str,
) -> Result<Result<Rotated, Refused>, DbErr> {
    revoke_family(&txn, &row.family_id).await?;
    txn.commit().await?;
    tracing::warn!(family = %row.family_id, username = %row.username, "{why}");
    Ok(Err(Refused::Reused))
}

/// The stored row of a presented token (looked up by its SHA-256, the only form stored).
async fn find_presented<C: ConnectionTrait>(
    conn: &C,
    presented: &str,
) -> Result<Option<refresh_token::Model>, DbErr> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(secrets::sha256_hex(presented)))
        .one(conn)
        .await
}

/// The family and client of a presented token, if we issued it.
pub async fn family_of(db: &DatabaseConnection, presented: &str) -> Result<Option<(String, String)>, DbErr> {
    Ok(find_presented(db, presented).await?.map(|r| (r.family_id, r.client_id)))
}

/// Makes every token of the family unusable.
pub async fn revoke_family<C: ConnectionTrait>(conn: &C, family_id: &str) -> Result<(), DbErr> {
    revoke_where(conn, refresh_family::Column::Id.eq(family_id)).await
}

/// Revokes every refresh token of a user (password changed, disabled, deleted).
pub async fn revoke_user<C: ConnectionTrait>(conn: &C, username: &str) -> Result<(), DbErr> {
    revoke_where(conn, refresh_family::Column::Username.eq(username)).await
}

/// Revokes every refresh token issued to a client (client deleted).
pub async fn revoke_client<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<(), DbErr> {
    revoke_where(conn, refresh_family::Column::ClientId.eq(client_id)).await
}

async fn revoke_where<C: ConnectionTrait>(
    conn: &C,
    cond: sea_orm::sea_query::SimpleExpr,
) -> Result<(), DbErr> {
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedAt, Expr::value(Some(now())))
        .filter(cond)
        .filter(refresh_family::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes tokens and families that expired more than a day ago. Returns the rows deleted.
pub async fn purge(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let cutoff = now() - KEEP_EXPIRED;
    let tokens = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(cutoff))
        .exec(db)
        .await?;
    let families = refresh_family::Entity::delete_many()
        .filter(refresh_family::Column::ExpiresAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(tokens.rows_affected + families.rows_affected)
}
