//! The route table: every HTTP endpoint of the platform and the service operation it forwards to.
//!
//! This one table builds the axum router; the OpenAPI document is checked against it by a test,
//! so an endpoint cannot be routed without being documented or documented without being routed.

use axum::http::Method;

/// What the request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body is read (GET, DELETE).
    None,
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded` (OAuth endpoints).
    Form,
    /// A document sent as YAML ([`DOCUMENT_BODY`]) or as JSON, read whole within
    /// `gateway.body_limit_bytes`; the service receives it as JSON either way (a launch file).
    Document,
    /// A body of any size streamed to the service as it arrives ([`sw_bus::Bus::call_streaming`]),
    /// never buffered and not bound by `gateway.body_limit_bytes` (the service enforces its own
    /// limit). `accepts` lists the media types taken; anything else is a 415 before any byte is read.
    /// `Idempotency-Key` is refused with a 422: the body cannot be fingerprinted without buffering it.
    Stream { accepts: &'static [&'static str] },
    /// No body; the service answers with where the bytes are ([`sw_contracts::packages::DownloadSourceOut`])
    /// and the gateway streams them from storage to the client ([`crate::download`]).
    Download,
}

/// A raw app package zip.
pub const ZIP_BODY: &[&str] =
    &["application/octet-stream", "application/zip", "application/x-zip-compressed"];
/// An HTML-style upload form (the package in the part named `file`).
pub const MULTIPART_BODY: &[&str] = &["multipart/form-data"];
/// A build task: `build.yaml` as YAML, the same as JSON, or a form with chart archives.
pub const BUILD_BODY: &[&str] =
    &["application/yaml", "application/x-yaml", "text/yaml", "application/json", "multipart/form-data"];

/// What a [`BodyKind::Document`] may be sent as (besides `+json` and `+yaml` suffixes).
pub const DOCUMENT_BODY: &[&str] =
    &["application/yaml", "application/x-yaml", "text/yaml", "application/json"];

/// One endpoint.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// axum path syntax (`/v1/apps/{appId}`), identical to the OpenAPI path.
    pub path: &'static str,
    pub service: &'static str,
    pub op: &'static str,
    pub body: BodyKind,
    /// Whether the gateway requires a bearer token before forwarding (the service checks again).
    pub authenticated: bool,
}

const fn r(
    method: Method,
    path: &'static str,
    service: &'static str,
    op: &'static str,
    body: BodyKind,
) -> Route {
    Route { method, path, service, op, body, authenticated: true }
}

const fn anon(
    method: Method,
    path: &'static str,
    service: &'static str,
    op: &'static str,
    body: BodyKind,
) -> Route {
    Route { method, path, service, op, body, authenticated: false }
}

use BodyKind::{Document, Download, Form, Json, None as NoBody};

const PKG: &str = "package-store";
const WF: &str = "workflow";

const fn stream(accepts: &'static [&'static str]) -> BodyKind {
    BodyKind::Stream { accepts }
}

/// Every forwarded endpoint.
pub fn table() -> Vec<Route> {
    vec![
        // auth: OAuth 2.0 and keys
        anon(Method::POST, "/oauth/token", "auth", "token", Form),
        anon(Method::POST, "/oauth/revoke", "auth", "revoke", Form),
        anon(Method::GET, "/.well-known/jwks.json", "auth", "jwks", NoBody),
        r(Method::GET, "/v1/me", "auth", "me", NoBody),
        r(Method::GET, "/v1/users", "auth", "users.list", NoBody),
        r(Method::POST, "/v1/users", "auth", "users.create", Json),
        r(Method::GET, "/v1/users/{username}", "auth", "users.get", NoBody),
        r(Method::PATCH, "/v1/users/{username}", "auth", "users.update", Json),
        r(Method::DELETE, "/v1/users/{username}", "auth", "users.delete", NoBody),
        r(Method::PUT, "/v1/users/{username}/roles", "auth", "users.roles.set", Json),
        r(Method::GET, "/v1/clients", "auth", "clients.list", NoBody),
        r(Method::POST, "/v1/clients", "auth", "clients.create", Json),
        r(Method::GET, "/v1/clients/{clientId}", "auth", "clients.get", NoBody),
        r(Method::DELETE, "/v1/clients/{clientId}", "auth", "clients.delete", NoBody),
        r(Method::POST, "/v1/clients/{clientId}/secret", "auth", "clients.rotate-secret", NoBody),
        r(Method::PUT, "/v1/clients/{clientId}/roles", "auth", "clients.roles.set", Json),
        r(Method::GET, "/v1/auth/keys", "auth", "keys.list", NoBody),
        r(Method::POST, "/v1/auth/keys/rotate", "auth", "keys.rotate", NoBody),
        // appmeta: apps and components
        r(Method::GET, "/v1/apps", "appmeta", "apps.list", NoBody),
        r(Method::POST, "/v1/apps", "appmeta", "apps.create", Json),
        r(Method::GET, "/v1/apps/{appId}", "appmeta", "apps.get", NoBody),
        r(Method::PATCH, "/v1/apps/{appId}", "appmeta", "apps.update", Json),
        r(Method::DELETE, "/v1/apps/{appId}", "appmeta", "apps.delete", NoBody),
        r(Method::GET, "/v1/apps/{appId}/components", "appmeta", "components.list", NoBody),
        r(Method::POST, "/v1/apps/{appId}/components", "appmeta", "components.create", Json),
        r(Method::GET, "/v1/apps/{appId}/components/{componentName}", "appmeta", "components.get", NoBody),
        r(Method::PATCH, "/v1/apps/{appId}/components/{componentName}", "appmeta", "components.update", Json),
        r(
            Method::DELETE,
            "/v1/apps/{appId}/components/{componentName}",
            "appmeta",
            "components.delete",
            NoBody,
        ),
        // appmeta: namespaces, stages, clusters
        r(Method::GET, "/v1/namespaces", "appmeta", "namespaces.list", NoBody),
        r(Method::POST, "/v1/namespaces", "appmeta", "namespaces.create", Json),
        r(Method::GET, "/v1/namespaces/{namespaceId}", "appmeta", "namespaces.get", NoBody),
        r(Method::PATCH, "/v1/namespaces/{namespaceId}", "appmeta", "namespaces.update", Json),
        r(Method::DELETE, "/v1/namespaces/{namespaceId}", "appmeta", "namespaces.delete", NoBody),
        r(Method::GET, "/v1/namespaces/{namespaceId}/stages", "appmeta", "stages.list", NoBody),
        r(Method::POST, "/v1/namespaces/{namespaceId}/stages", "appmeta", "stages.create", Json),
        r(Method::GET, "/v1/namespaces/{namespaceId}/stages/{stageId}", "appmeta", "stages.get", NoBody),
        r(Method::PATCH, "/v1/namespaces/{namespaceId}/stages/{stageId}", "appmeta", "stages.update", Json),
        r(
            Method::DELETE,
            "/v1/namespaces/{namespaceId}/stages/{stageId}",
            "appmeta",
            "stages.delete",
            NoBody,
        ),
        r(Method::GET, "/v1/clusters", "appmeta", "clusters.list", NoBody),
        r(Method::POST, "/v1/clusters", "appmeta", "clusters.create", Json),
        r(Method::GET, "/v1/clusters/{clusterId}", "appmeta", "clusters.get", NoBody),
        r(Method::PATCH, "/v1/clusters/{clusterId}", "appmeta", "clusters.update", Json),
        r(Method::DELETE, "/v1/clusters/{clusterId}", "appmeta", "clusters.delete", NoBody),
        // k8s-executor: whether it reaches a cluster with the stored credentials
        r(Method::POST, "/v1/clusters/{clusterId}/probe", "k8s-executor", "clusters.probe", NoBody),
        // package-store: app packages and build tasks
        r(Method::POST, "/v1/apps/{appId}/app-packages/import", PKG, "packages.import", stream(ZIP_BODY)),
        r(Method::POST, "/v1/app-packages/import", PKG, "packages.import", stream(MULTIPART_BODY)),
        r(Method::GET, "/v1/apps/{appId}/app-packages", PKG, "packages.list", NoBody),
        r(
            Method::GET,
            "/v1/apps/{appId}/app-packages/latest-version",
            PKG,
            "packages.latest-version",
            NoBody,
        ),
        r(Method::GET, "/v1/apps/{appId}/app-packages/{appPackageId}", PKG, "packages.get", NoBody),
        r(
            Method::GET,
            "/v1/apps/{appId}/app-packages/{appPackageId}/components",
            PKG,
            "packages.components",
            NoBody,
        ),
        r(Method::DELETE, "/v1/apps/{appId}/app-packages/{appPackageId}", PKG, "packages.delete", NoBody),
        r(
            Method::GET,
            "/v1/apps/{appId}/app-packages/{appPackageId}/launch-yaml",
            PKG,
            "packages.launch-yaml",
            NoBody,
        ),
        r(
            Method::GET,
            "/v1/apps/{appId}/app-packages/{appPackageId}/download",
            PKG,
            "packages.download",
            Download,
        ),
        r(
            Method::GET,
            "/v1/apps/{appId}/app-packages/{appPackageId}/download-url",
            PKG,
            "packages.download-url",
            NoBody,
        ),
        r(
            Method::POST,
            "/v1/apps/{appId}/app-package-tasks",
            PKG,
            "package-tasks.create",
            stream(BUILD_BODY),
        ),
        r(Method::GET, "/v1/apps/{appId}/app-package-tasks", PKG, "package-tasks.list", NoBody),
        r(Method::GET, "/v1/apps/{appId}/app-package-tasks/{taskId}", PKG, "package-tasks.get", NoBody),
        // workflow: deployments and the workflow instances that drive them
        r(Method::POST, "/v1/deployments/launch", WF, "deployments.launch", Document),
        r(Method::GET, "/v1/deployments", WF, "deployments.list", NoBody),
        r(Method::GET, "/v1/deployments/{deployAppId}", WF, "deployments.get", NoBody),
        r(Method::POST, "/v1/deployments/{deployAppId}/replay", WF, "deployments.replay", NoBody),
        r(Method::POST, "/v1/deployments/{deployAppId}/retry", WF, "deployments.retry", NoBody),
        r(Method::POST, "/v1/deployments/{deployAppId}/terminate", WF, "deployments.terminate", NoBody),
        r(Method::POST, "/v1/deployments/{deployAppId}/rollback", WF, "deployments.rollback", NoBody),
        r(Method::GET, "/v1/workflows/{workflowInstanceId}", WF, "workflows.get", NoBody),
        r(Method::PUT, "/v1/workflows/{workflowInstanceId}/resume", WF, "workflows.resume", NoBody),
        r(Method::PUT, "/v1/workflows/{workflowInstanceId}/terminate", WF, "workflows.terminate", NoBody),
        r(Method::PUT, "/v1/workflows/{workflowInstanceId}/retry", WF, "workflows.retry", NoBody),
        r(
            Method::PUT,
            "/v1/workflows/{workflowInstanceId}/retry-from-task",
            WF,
            "workflows.retry-from-task",
            NoBody,
        ),
        r(Method::PUT, "/v1/workflows/{workflowInstanceId}/context", WF, "workflows.context", Json),
        r(
            Method::PUT,
            "/v1/workflows/{workflowInstanceId}/tasks/{taskId}/suspend",
            WF,
            "workflows.task-suspend",
            NoBody,
        ),
        r(
            Method::PUT,
            "/v1/workflows/{workflowInstanceId}/tasks/{taskId}/terminate",
            WF,
            "workflows.task-terminate",
            NoBody,
        ),
    ]
}
