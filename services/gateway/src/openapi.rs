//! The OpenAPI 3.1 document of the whole platform, generated from the contract types.
//!
//! Each documented operation is an empty function below whose `#[utoipa::path]` names the
//! request and success types from `sw-contracts`; the shared error answers (RFC 9457 problems)
//! and the security schemes are added by modifiers so every operation documents them the same way.
//! A test checks this document against the route table, and another that the committed
//! `docs/openapi.json` matches it.

#![allow(dead_code)]

use sw_contracts::appmeta::*;
use sw_contracts::auth::*;
use sw_contracts::{AppId, FieldError, Name, Page, PageQuery, Problem};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

macro_rules! op {
    ($f:ident: $m:ident $path:literal, $tag:literal, $summary:literal,
     params($($p:tt)*), $(body($body:ty),)? $(form($form:ty),)? ok($st:literal $(, $resp:ty)?), anonymous) => {
        op!(@emit [, security(())] $f: $m $path, $tag, $summary, params($($p)*), $(body($body),)? $(form($form),)? ok($st $(, $resp)?));
    };
    ($f:ident: $m:ident $path:literal, $tag:literal, $summary:literal,
     params($($p:tt)*), $(body($body:ty),)? $(form($form:ty),)? ok($st:literal $(, $resp:ty)?)) => {
        op!(@emit [] $f: $m $path, $tag, $summary, params($($p)*), $(body($body),)? $(form($form),)? ok($st $(, $resp)?));
    };
    (@emit [$($sec:tt)*] $f:ident: $m:ident $path:literal, $tag:literal, $summary:literal,
     params($($p:tt)*), $(body($body:ty),)? $(form($form:ty),)? ok($st:literal $(, $resp:ty)?)) => {
        #[utoipa::path($m, path = $path, tag = $tag, summary = $summary, params($($p)*),
            $(request_body = $body,)?
            $(request_body(content = $form, content_type = "application/x-www-form-urlencoded"),)?
            responses((status = $st, description = "Success" $(, body = $resp)?))
            $($sec)*
        )]
        pub(crate) fn $f() {}
    };
}

op!(oauth_token: post "/oauth/token", "auth", "Get an access token (password, client_credentials or refresh_token grant)",
    params(), form(TokenForm), ok(200, TokenOut), anonymous);
op!(oauth_revoke: post "/oauth/revoke", "auth", "Revoke an access or refresh token (RFC 7009)",
    params(), form(RevokeForm), ok(200, serde_json::Value), anonymous);
op!(jwks: get "/.well-known/jwks.json", "auth", "Public keys that verify access tokens",
    params(), ok(200, Jwks), anonymous);
op!(me: get "/v1/me", "auth", "Who the token belongs to", params(), ok(200, WhoAmI));
op!(users_list: get "/v1/users", "users", "List users",
    params(PageQuery, ("search" = Option<String>, Query, description = "Substring of the username")), ok(200, Page<UserOut>));
op!(users_create: post "/v1/users", "users", "Create a user", params(), body(UserIn), ok(201, UserOut));
op!(users_get: get "/v1/users/{username}", "users", "Get a user", params(("username" = Username, Path)), ok(200, UserOut));
op!(users_update: patch "/v1/users/{username}", "users", "Change a user",
    params(("username" = Username, Path)), body(UserPatch), ok(200, UserOut));
op!(users_delete: delete "/v1/users/{username}", "users", "Delete a user", params(("username" = Username, Path)), ok(204));
op!(users_roles: put "/v1/users/{username}/roles", "users", "Replace a user's role bindings",
    params(("username" = Username, Path)), body(Vec<RoleBinding>), ok(200, UserOut));
op!(clients_list: get "/v1/clients", "clients", "List OAuth clients", params(PageQuery), ok(200, Page<ClientOut>));
op!(clients_create: post "/v1/clients", "clients", "Register an OAuth client (the secret is shown once)",
    params(), body(ClientIn), ok(201, ClientSecretOut));
op!(clients_get: get "/v1/clients/{clientId}", "clients", "Get a client", params(("clientId" = ClientId, Path)), ok(200, ClientOut));
op!(clients_delete: delete "/v1/clients/{clientId}", "clients", "Delete a client", params(("clientId" = ClientId, Path)), ok(204));
op!(clients_secret: post "/v1/clients/{clientId}/secret", "clients", "Rotate a client's secret (shown once)",
    params(("clientId" = ClientId, Path)), ok(200, ClientSecretOut));
op!(clients_roles: put "/v1/clients/{clientId}/roles", "clients", "Replace a client's role bindings",
    params(("clientId" = ClientId, Path)), body(Vec<RoleBinding>), ok(200, ClientOut));
op!(keys_list: get "/v1/auth/keys", "auth", "List token signing keys", params(), ok(200, Vec<SigningKeyOut>));
op!(keys_rotate: post "/v1/auth/keys/rotate", "auth", "Rotate the token signing key (nobody is logged out)",
    params(), ok(201, SigningKeyOut));

op!(apps_list: get "/v1/apps", "apps", "List applications", params(AppListQuery), ok(200, Page<AppOut>));
op!(apps_create: post "/v1/apps", "apps", "Create an application", params(), body(AppIn), ok(201, AppOut));
op!(apps_get: get "/v1/apps/{appId}", "apps", "Get an application", params(("appId" = AppId, Path)), ok(200, AppOut));
op!(apps_update: patch "/v1/apps/{appId}", "apps", "Change an application",
    params(("appId" = AppId, Path)), body(AppPatch), ok(200, AppOut));
op!(apps_delete: delete "/v1/apps/{appId}", "apps", "Delete an application and its components",
    params(("appId" = AppId, Path)), ok(204));
op!(components_list: get "/v1/apps/{appId}/components", "components", "List an application's components",
    params(("appId" = AppId, Path), ComponentListQuery), ok(200, Page<ComponentOut>));
op!(components_create: post "/v1/apps/{appId}/components", "components", "Add a component",
    params(("appId" = AppId, Path)), body(ComponentIn), ok(201, ComponentOut));
op!(components_get: get "/v1/apps/{appId}/components/{componentName}", "components", "Get a component",
    params(("appId" = AppId, Path), ("componentName" = Name, Path)), ok(200, ComponentOut));
op!(components_update: patch "/v1/apps/{appId}/components/{componentName}", "components", "Change a component",
    params(("appId" = AppId, Path), ("componentName" = Name, Path)), body(ComponentPatch), ok(200, ComponentOut));
op!(components_delete: delete "/v1/apps/{appId}/components/{componentName}", "components", "Remove a component",
    params(("appId" = AppId, Path), ("componentName" = Name, Path)), ok(204));

op!(namespaces_list: get "/v1/namespaces", "namespaces", "List namespaces", params(PageQuery), ok(200, Page<NamespaceOut>));
op!(namespaces_create: post "/v1/namespaces", "namespaces", "Create a namespace", params(), body(NamespaceIn), ok(201, NamespaceOut));
op!(namespaces_get: get "/v1/namespaces/{namespaceId}", "namespaces", "Get a namespace",
    params(("namespaceId" = Name, Path)), ok(200, NamespaceOut));
op!(namespaces_update: patch "/v1/namespaces/{namespaceId}", "namespaces", "Change a namespace",
    params(("namespaceId" = Name, Path)), body(NamespacePatch), ok(200, NamespaceOut));
op!(namespaces_delete: delete "/v1/namespaces/{namespaceId}", "namespaces", "Delete an empty namespace",
    params(("namespaceId" = Name, Path)), ok(204));
op!(stages_list: get "/v1/namespaces/{namespaceId}/stages", "namespaces", "List a namespace's stages",
    params(("namespaceId" = Name, Path), PageQuery), ok(200, Page<StageOut>));
op!(stages_create: post "/v1/namespaces/{namespaceId}/stages", "namespaces", "Create a stage",
    params(("namespaceId" = Name, Path)), body(StageIn), ok(201, StageOut));
op!(stages_get: get "/v1/namespaces/{namespaceId}/stages/{stageId}", "namespaces", "Get a stage",
    params(("namespaceId" = Name, Path), ("stageId" = Name, Path)), ok(200, StageOut));
op!(stages_update: patch "/v1/namespaces/{namespaceId}/stages/{stageId}", "namespaces", "Change a stage",
    params(("namespaceId" = Name, Path), ("stageId" = Name, Path)), body(StagePatch), ok(200, StageOut));
op!(stages_delete: delete "/v1/namespaces/{namespaceId}/stages/{stageId}", "namespaces", "Delete a stage",
    params(("namespaceId" = Name, Path), ("stageId" = Name, Path)), ok(204));
op!(clusters_list: get "/v1/clusters", "clusters", "List clusters", params(PageQuery), ok(200, Page<ClusterOut>));
op!(clusters_create: post "/v1/clusters", "clusters", "Register a cluster (credentials are write-only)",
    params(), body(ClusterIn), ok(201, ClusterOut));
op!(clusters_get: get "/v1/clusters/{clusterId}", "clusters", "Get a cluster",
    params(("clusterId" = Name, Path)), ok(200, ClusterOut));
op!(clusters_update: patch "/v1/clusters/{clusterId}", "clusters", "Change a cluster",
    params(("clusterId" = Name, Path)), body(ClusterPatch), ok(200, ClusterOut));
op!(clusters_delete: delete "/v1/clusters/{clusterId}", "clusters", "Remove a cluster",
    params(("clusterId" = Name, Path)), ok(204));

op!(healthz: get "/healthz", "health", "Liveness: the process is up", params(), ok(200, serde_json::Value), anonymous);
op!(readyz: get "/readyz", "health", "Readiness: NATS, Redis and the databases answer", params(), ok(200, serde_json::Value), anonymous);

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sreworks API",
        description = "One HTTP API for the whole sreworks platform. Authenticate with `POST /oauth/token` and send \
                       `Authorization: Bearer <access_token>`. Errors are RFC 9457 problems with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        oauth_token, oauth_revoke, jwks, me, users_list, users_create, users_get, users_update, users_delete, users_roles,
        clients_list, clients_create, clients_get, clients_delete, clients_secret, clients_roles, keys_list, keys_rotate,
        apps_list, apps_create, apps_get, apps_update, apps_delete,
        components_list, components_create, components_get, components_update, components_delete,
        namespaces_list, namespaces_create, namespaces_get, namespaces_update, namespaces_delete,
        stages_list, stages_create, stages_get, stages_update, stages_delete,
        clusters_list, clusters_create, clusters_get, clusters_update, clusters_delete,
        healthz, readyz,
    ),
    components(schemas(Problem, FieldError, ComponentType, AppId, Name, Username, ClientId)),
    modifiers(&Security, &Problems),
    security(("bearer" = []), ("oauth2" = [])),
    tags(
        (name = "auth", description = "Tokens and signing keys"),
        (name = "users", description = "Users and their roles"),
        (name = "clients", description = "OAuth clients for pipelines and integrations"),
        (name = "apps", description = "Applications"),
        (name = "components", description = "Components of an application"),
        (name = "namespaces", description = "Namespaces and their stages"),
        (name = "clusters", description = "Kubernetes clusters"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        c.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/oauth/token",
                Scopes::new(),
            ))])),
        );
    }
}

/// Adds the problem answers every operation can give.
struct Problems;

impl Modify for Problems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for item in api.paths.paths.values_mut() {
            let ops: [(&str, &mut Option<Operation>); 5] = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                let anonymous = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let health = op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "health"));
                let mut codes: Vec<(&str, &str)> = Vec::new();
                if health {
                    codes.push(("503", "Not ready"));
                } else {
                    codes.extend([
                        ("400", "Malformed request"),
                        ("404", "Not found"),
                        ("408", "The body did not arrive in time"),
                        ("409", "Conflict"),
                        ("422", "Invalid fields (each listed in `errors`)"),
                        ("429", "Rate limited (see `Retry-After`)"),
                        ("500", "Unexpected error"),
                        ("502", "A service sent an invalid answer"),
                        ("503", "A dependency is unavailable (see `Retry-After`)"),
                    ]);
                    if !anonymous || op.operation_id.as_deref() == Some("oauth_token") {
                        codes.push(("401", "Missing, invalid, expired or revoked token"));
                    }
                    if !anonymous {
                        codes.push(("403", "Your roles do not allow this"));
                    }
                    if matches!(method, "post" | "put" | "patch") {
                        codes.push(("413", "Body too large"));
                        codes.push(("415", "Unsupported media type"));
                    }
                }
                for (code, desc) in codes {
                    if op.responses.responses.contains_key(code) {
                        continue;
                    }
                    let resp = ResponseBuilder::new()
                        .description(desc)
                        .content(
                            sw_http::PROBLEM_JSON,
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                        )
                        .build();
                    op.responses.responses.insert(code.to_owned(), resp.into());
                }
            }
        }
    }
}

/// The document as pretty JSON (what `/openapi.json` serves and `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}
