//! DTOs of the auth service: OAuth 2.0 token endpoint, JWKS, users, clients and role bindings.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{AppId, Name};

/// A role. What each role may do is decided by each service's authorization matrix.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, clients and signing keys.
    Admin,
    /// Runs the platform: reads everything, manages clusters, namespaces, stages and apps.
    Operator,
    /// Builds and ships apps within its scope.
    Developer,
    /// Reads.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role granted globally, or only for one team or one app. Carried in access tokens as `roles`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBinding {
    pub role: Role,
    /// Limit the grant to this team's apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Name>,
    /// Limit the grant to this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
}

impl RoleBinding {
    pub fn global(role: Role) -> Self {
        Self { role, team: None, app: None }
    }
    pub fn is_global(&self) -> bool {
        self.team.is_none() && self.app.is_none()
    }
}

/// Token endpoint answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct TokenOut {
    /// An EdDSA-signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// Present for the `password` and `refresh_token` grants. Rotates on every use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Form fields of `POST /oauth/token` (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct TokenForm {
    /// `password`, `client_credentials` or `refresh_token`.
    pub grant_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// For public clients (`swcli`); confidential clients authenticate with HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Accepted for clients that cannot send HTTP Basic (RFC 6749 §2.3.1); Basic is preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Form fields of `POST /oauth/revoke` (RFC 7009).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct RevokeForm {
    /// An access token or a refresh token.
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A JSON Web Key Set (RFC 7517) of Ed25519 public keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One Ed25519 public key (RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// Create a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIn {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub username: String,
    /// 12–1024 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<RoleBinding>,
}

/// Change a user. Absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// A new password (at least 12 characters). Revokes the user's refresh tokens.
    #[serde(default)]
    pub password: Option<String>,
    /// Disabling a user revokes their refresh tokens.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A user as returned by the API (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub disabled: bool,
    pub roles: Vec<RoleBinding>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Register an OAuth client.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIn {
    /// 3–64 characters: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{3,64}$")]
    pub client_id: String,
    pub name: String,
    /// Confidential clients get a secret and may use `client_credentials`; public ones may not.
    #[serde(default = "yes")]
    pub confidential: bool,
    /// Roles the client acts with under `client_credentials`.
    #[serde(default)]
    pub roles: Vec<RoleBinding>,
}

fn yes() -> bool {
    true
}

/// A client as returned by the API (never the secret hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientOut {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    /// Grant types this client may use.
    pub grant_types: Vec<String>,
    pub roles: Vec<RoleBinding>,
    pub created_at: DateTime<Utc>,
}

/// The answer to creating a client or rotating its secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretOut {
    #[serde(flatten)]
    pub client: ClientOut,
    /// Shown once; store it now.
    pub client_secret: Option<String>,
}

/// A signing key as listed to admins (never the private half).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyOut {
    pub kid: String,
    /// `active` signs new tokens; `retired` still verifies tokens issued before rotation.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// The caller as seen by the platform (`GET /v1/me`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `user:<username>` or `client:<clientId>`.
    pub subject: String,
    pub client_id: String,
    pub roles: Vec<RoleBinding>,
    pub expires_at: DateTime<Utc>,
}

/// Data of `auth.user.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDeleted {
    pub username: String,
}

/// Data of `auth.client.deleted`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientDeleted {
    pub client_id: String,
}

/// A username in a path: 1–64 letters, digits, `.`, `_`, `-`, `@` (documentation type).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
pub struct Username(pub String);

/// A client id in a path: 3–64 letters, digits, `.`, `_`, `-` (documentation type).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._-]{3,64}$")]
pub struct ClientId(pub String);
