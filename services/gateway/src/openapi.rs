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
use sw_contracts::executor::ClusterProbe;
use sw_contracts::packages::*;
use sw_contracts::workflow::*;
use sw_contracts::{AppId, FieldError, Name, Page, PageQuery, Problem};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

macro_rules! op {
    // Anything the short forms cannot say (streamed bodies, several answers): the rest of the
    // `#[utoipa::path]` arguments as they are.
    ($f:ident: $m:ident $path:literal, $tag:literal, $summary:literal,
     params($($p:tt)*), raw($($extra:tt)*)) => {
        #[utoipa::path($m, path = $path, tag = $tag, summary = $summary, params($($p)*), $($extra)*)]
        pub(crate) fn $f() {}
    };
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
op!(clusters_probe: post "/v1/clusters/{clusterId}/probe", "clusters",
"Check that the k8s-executor reaches the cluster's API server with the stored credentials",
params(("clusterId" = Name, Path)),
raw(
    description = "The k8s-executor asks appmeta for the cluster now and calls the API server's `GET /version`, \
                   bounded by `executor.call_timeout_secs` and the request deadline. A server that is down, \
                   refuses the credentials or fails TLS is still a 200, with `reachable: false` and a `message`. \
                   Any role bound globally may probe (as for reading clusters).",
    responses(
        (status = 200, description = "Probed (see `reachable`)", body = ClusterProbe),
        (status = 404, description = "`not_found`: no such cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_cluster`: the stored credentials cannot be used (they do not open with the executor's key or do not make a client configuration); `validation_failed` for a bad `clusterId`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`appmeta_unavailable`, or no k8s-executor answering (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
));

// ------------------------------------------------------------------ package-store

/// The bytes of an app package zip.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
struct PackageZip(Vec<u8>);

/// `multipart/form-data` body of `POST /v1/app-packages/import`: one file part and, optionally,
/// the fields of the query as text parts.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct PackageImportForm {
    /// The app package zip; the app id is read from its `meta.yaml`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// As the `packageVersion` query parameter.
    package_version: Option<String>,
    /// As the `force` query parameter.
    force: Option<bool>,
    /// As the `resetVersion` query parameter.
    reset_version: Option<bool>,
}

/// `multipart/form-data` body of a build task. Besides these parts, a HELM component's chart
/// folder may be sent as a part named `chart.<componentName>` holding a `.tgz`, `.tar.gz` or `.zip`.
#[derive(ToSchema)]
struct PackageTaskForm {
    /// The multi-document `build.yaml` (ComponentBinder documents).
    #[schema(rename = "build.yaml", value_type = String, format = Binary)]
    build_yaml: Vec<u8>,
    /// As the `version` query parameter.
    version: Option<String>,
    /// As the `tags` query parameter (comma-separated).
    tags: Option<String>,
}

op!(packages_import: post "/v1/apps/{appId}/app-packages/import", "packages",
"Import an app package zip (streamed; the path's app must match the zip's)",
params(("appId" = AppId, Path), ImportQuery),
raw(
    description = "The body is the zip itself, streamed to the package store as it arrives (no size limit at \
                   the gateway; the store answers 413 `package_too_large` past its own). `Idempotency-Key` is \
                   not supported (422 `idempotency_not_supported`): a retried import of the same version is a \
                   409 `package_version_exists` unless `force` is set.",
    request_body(description = "The app package zip", content(
        (inline(PackageZip) = "application/octet-stream"),
        (inline(PackageZip) = "application/zip"),
        (inline(PackageZip) = "application/x-zip-compressed"),
    )),
    responses(
        (status = 201, description = "Imported", body = AppPackageOut,
         headers(("Location" = String, description = "URL of the new package"))),
        (status = 408, description = "The upload stalled (`upload_timeout`, `body_timeout`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`package_version_exists`, `component_version_conflict`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`package_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an app package (`zip_*`, `meta_*`, `component_*`), `invalid_version`, `idempotency_not_supported`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`storage_unavailable` and other unavailable dependencies (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
));
op!(packages_import_form: post "/v1/app-packages/import", "packages",
"Import an app package from an upload form (streamed; the app is the zip's)",
params(ImportQuery),
raw(
    description = "A `multipart/form-data` body with the zip in the part named `file`, streamed to the package \
                   store as it arrives. `Idempotency-Key` is not supported (422 `idempotency_not_supported`).",
    request_body(content = inline(PackageImportForm), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Imported", body = AppPackageOut,
         headers(("Location" = String, description = "URL of the new package"))),
        (status = 408, description = "The upload stalled (`upload_timeout`, `body_timeout`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`package_version_exists`, `component_version_conflict`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`package_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an app package (`zip_*`, `meta_*`, `component_*`), no `file` part, `invalid_version`, `idempotency_not_supported`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`storage_unavailable` and other unavailable dependencies (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
));
op!(packages_list: get "/v1/apps/{appId}/app-packages", "packages", "List an application's packages, newest first",
    params(("appId" = AppId, Path), AppPackageListQuery), ok(200, Page<AppPackageOut>));
op!(packages_latest: get "/v1/apps/{appId}/app-packages/latest-version", "packages",
    "The newest package's version and the next one (404 `package_not_found` when there is none)",
    params(("appId" = AppId, Path)), ok(200, LatestVersionOut));
op!(packages_get: get "/v1/apps/{appId}/app-packages/{appPackageId}", "packages", "Get a package",
    params(("appId" = AppId, Path), ("appPackageId" = u64, Path)), ok(200, AppPackageOut));
op!(packages_components: get "/v1/apps/{appId}/app-packages/{appPackageId}/components", "packages",
    "What the package holds for each component (its workload), in the package's order",
    params(("appId" = AppId, Path), ("appPackageId" = u64, Path)), ok(200, Vec<ComponentWorkloadOut>));
op!(packages_delete: delete "/v1/apps/{appId}/app-packages/{appPackageId}", "packages",
    "Delete a package (its zip, and component zips no other package uses)",
    params(("appId" = AppId, Path), ("appPackageId" = u64, Path)), ok(204));
op!(packages_launch_yaml: get "/v1/apps/{appId}/app-packages/{appPackageId}/launch-yaml", "packages",
    "An ApplicationConfiguration YAML that launches the package",
    params(("appId" = AppId, Path), ("appPackageId" = u64, Path)),
    raw(responses((status = 200, description = "The YAML text", body = String, content_type = "application/yaml"))));
op!(packages_download: get "/v1/apps/{appId}/app-packages/{appPackageId}/download", "packages",
"Download the package zip (streamed; `Range` and `If-None-Match` supported)",
params(
    ("appId" = AppId, Path), ("appPackageId" = u64, Path),
    ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1048575`, to resume a download"),
    ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a copy you hold"),
),
raw(responses(
    (status = 200, description = "The whole zip", body = inline(PackageZip), content_type = "application/zip", headers(
        ("Content-Length" = u64, description = "Size in bytes"),
        ("Content-Disposition" = String, description = "`attachment; filename=\"{appId}-{packageVersion}.zip\"`"),
        ("Accept-Ranges" = String, description = "`bytes`"),
        ("ETag" = String, description = "Storage's entity tag"),
        ("Digest" = String, description = "`SHA-256=<base64>` of the whole zip"),
        ("x-checksum-sha256" = String, description = "SHA-256 of the whole zip, lowercase hex"),
    )),
    (status = 206, description = "The requested range", body = inline(PackageZip), content_type = "application/zip", headers(
        ("Content-Length" = u64, description = "Size of the range in bytes"),
        ("Content-Range" = String, description = "`bytes <first>-<last>/<size>`"),
        ("ETag" = String, description = "Storage's entity tag"),
        ("Digest" = String, description = "`SHA-256=<base64>` of the whole zip"),
        ("x-checksum-sha256" = String, description = "SHA-256 of the whole zip, lowercase hex"),
    )),
    (status = 304, description = "`If-None-Match` matched: your copy is current"),
    (status = 416, description = "`range_not_satisfiable` (see `Content-Range: bytes */<size>`)", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "`storage_unavailable` (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
)));
op!(packages_download_url: get "/v1/apps/{appId}/app-packages/{appPackageId}/download-url", "packages",
    "A presigned URL to download the package zip straight from storage",
    params(("appId" = AppId, Path), ("appPackageId" = u64, Path), DownloadUrlQuery), ok(200, DownloadUrlOut));
op!(package_tasks_create: post "/v1/apps/{appId}/app-package-tasks", "package-tasks",
"Build a package from a build.yaml (streamed; runs in the background)",
params(("appId" = AppId, Path), PackageTaskQuery),
raw(
    description = "The body is a multi-document `build.yaml` (YAML), the same as JSON, or an upload form with \
                   `build.yaml` and chart archives; it is streamed to the package store. `Idempotency-Key` is \
                   not supported (422 `idempotency_not_supported`). Poll the task at `Location`.",
    request_body(description = "The build", content(
        (String = "application/yaml"),
        (String = "application/x-yaml"),
        (String = "text/yaml"),
        (AppPackageTaskIn = "application/json"),
        (inline(PackageTaskForm) = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "Accepted; the build runs in the background", body = AppPackageTaskOut,
         headers(("Location" = String, description = "URL of the task"))),
        (status = 409, description = "`package_version_exists`: a package, or a build still running, already has that version", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`package_too_large` (a chart archive over its limit)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_build` (fields listed), `image_build_unsupported`, `invalid_version`, `idempotency_not_supported`", body = Problem, content_type = "application/problem+json"),
    )
));
op!(package_tasks_list: get "/v1/apps/{appId}/app-package-tasks", "package-tasks", "List an application's build tasks, newest first",
    params(("appId" = AppId, Path), PackageTaskListQuery), ok(200, Page<AppPackageTaskOut>));
op!(package_tasks_get: get "/v1/apps/{appId}/app-package-tasks/{taskId}", "package-tasks", "Get a build task",
    params(("appId" = AppId, Path), ("taskId" = u64, Path)), ok(200, AppPackageTaskOut));

// ------------------------------------------------------------------ workflow

op!(deployments_launch: post "/v1/deployments/launch", "deployments",
"Deploy an app package from an ApplicationConfiguration (launch YAML); runs in the background",
params(LaunchQuery),
raw(
    description = "The body is one `ApplicationConfiguration` document as YAML (unquoted `{{ x }}` is read \
                   as the text `{{ x }}`) or the same as JSON, at most `gateway.body_limit_bytes`; the query's \
                   placement parameters win over the file's. A YAML stream of several documents, or anchors \
                   and aliases that expand far beyond the text, are a 400 `malformed_yaml`. Follow the \
                   deployment at `GET /v1/deployments/{deployAppId}`.",
    request_body(description = "The ApplicationConfiguration", content(
        (String = "application/yaml"),
        (String = "application/x-yaml"),
        (String = "text/yaml"),
        (Object = "application/json"),
    )),
    responses(
        (status = 201, description = "Created; the deployment runs (or waits for the app instance's running one)", body = DeploymentLaunched),
        (status = 400, description = "`malformed_yaml` (with line and column), `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: not YAML or JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file cannot be launched (each problem listed), or a placement or package that does not exist", body = Problem, content_type = "application/problem+json"),
    )
));
op!(deployments_list: get "/v1/deployments", "deployments", "List deployments, newest first",
    params(DeploymentListQuery), ok(200, Page<DeploymentOut>));
op!(deployments_get: get "/v1/deployments/{deployAppId}", "deployments",
    "Get a deployment with its components and its workflow",
    params(("deployAppId" = u64, Path)), ok(200, DeploymentDetailOut));
op!(deployments_replay: post "/v1/deployments/{deployAppId}/replay", "deployments",
    "Deploy the same file and package again, as a new deployment",
    params(("deployAppId" = u64, Path), DeploymentActionQuery), ok(201, DeploymentLaunched));
op!(deployments_retry: post "/v1/deployments/{deployAppId}/retry", "deployments",
    "Retry a failed deployment",
    params(("deployAppId" = u64, Path), DeploymentActionQuery), ok(200, DeploymentOut));
op!(deployments_terminate: post "/v1/deployments/{deployAppId}/terminate", "deployments",
    "Stop a running deployment",
    params(("deployAppId" = u64, Path)), ok(200, DeploymentOut));
op!(deployments_rollback: post "/v1/deployments/{deployAppId}/rollback", "deployments",
    "Deploy this earlier deployment again and pin the app instance to it",
    params(("deployAppId" = u64, Path), DeploymentActionQuery), ok(201, DeploymentLaunched));

op!(workflows_get: get "/v1/workflows/{workflowInstanceId}", "workflows", "Get a workflow instance and its tasks",
    params(("workflowInstanceId" = u64, Path)), ok(200, WorkflowOut));
op!(workflows_resume: put "/v1/workflows/{workflowInstanceId}/resume", "workflows",
    "Resume a suspended workflow instance",
    params(("workflowInstanceId" = u64, Path)), ok(200, WorkflowOut));
op!(workflows_terminate: put "/v1/workflows/{workflowInstanceId}/terminate", "workflows",
    "Stop a workflow instance (and its deployment)",
    params(("workflowInstanceId" = u64, Path)), ok(200, WorkflowOut));
op!(workflows_retry: put "/v1/workflows/{workflowInstanceId}/retry", "workflows",
    "Run a failed workflow instance's failed task again",
    params(("workflowInstanceId" = u64, Path)), ok(200, WorkflowOut));
op!(workflows_retry_from_task: put "/v1/workflows/{workflowInstanceId}/retry-from-task", "workflows",
    "Run the workflow again from a task, with the context saved when that task first started",
    params(("workflowInstanceId" = u64, Path), RetryFromTaskQuery), ok(200, WorkflowOut));
op!(workflows_context: put "/v1/workflows/{workflowInstanceId}/context", "workflows",
"Change the workflow context (e.g. `continueRollout`, `rollback`)",
params(("workflowInstanceId" = u64, Path)),
raw(
    description = "The body is a JSON object merged into the context as an RFC 7396 merge patch: a member \
                   set to `null` is removed, an object is merged member by member, anything else replaces.",
    request_body(description = "A merge patch of the context", content = Object, content_type = "application/json"),
    responses((status = 200, description = "Success", body = WorkflowOut))
));
op!(workflows_task_suspend: put "/v1/workflows/{workflowInstanceId}/tasks/{taskId}/suspend", "workflows",
    "Suspend a task: the workflow stops after it until resumed",
    params(("workflowInstanceId" = u64, Path), ("taskId" = u64, Path)), ok(200, WorkflowOut));
op!(workflows_task_terminate: put "/v1/workflows/{workflowInstanceId}/tasks/{taskId}/terminate", "workflows",
    "Stop a task (and so its workflow instance)",
    params(("workflowInstanceId" = u64, Path), ("taskId" = u64, Path)), ok(200, WorkflowOut));

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
        clusters_list, clusters_create, clusters_get, clusters_update, clusters_delete, clusters_probe,
        packages_import, packages_import_form, packages_list, packages_latest, packages_get, packages_components,
        packages_delete, packages_launch_yaml, packages_download, packages_download_url,
        package_tasks_create, package_tasks_list, package_tasks_get,
        deployments_launch, deployments_list, deployments_get, deployments_replay, deployments_retry,
        deployments_terminate, deployments_rollback,
        workflows_get, workflows_resume, workflows_terminate, workflows_retry, workflows_retry_from_task,
        workflows_context, workflows_task_suspend, workflows_task_terminate,
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
        (name = "packages", description = "App packages: import, list, download"),
        (name = "package-tasks", description = "Build tasks that assemble app packages"),
        (name = "deployments", description = "Deployments of app packages (launch, replay, retry, rollback)"),
        (name = "workflows", description = "The workflow instances that drive deployments, and their tasks"),
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
