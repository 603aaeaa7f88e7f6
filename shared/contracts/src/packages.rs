//! DTOs of the package-store service: app packages, their component packages, build tasks.
//!
//! An app package is a zip in the SREWorks format: a `meta.yaml` naming the app, its version and
//! its component packages, each a nested `<TYPE>_<name>.zip` with its own `meta.yaml`. Package ids
//! are numbers, as in SREWorks AppManager (`appPackageId`), so scripts written for it keep working.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ids::AppId;

/// How the package came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PackageSource {
    /// Uploaded as a finished zip (`.../app-packages/import`).
    Import,
    /// Assembled by a build task (`.../app-package-tasks`).
    Build,
}

/// How a component zip's MD5 compares with the `packageMd5` its app `meta.yaml` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Md5Status {
    /// The declared MD5 is the MD5 of the stored bytes.
    Matched,
    /// A well-formed MD5 was declared and differs (accepted unless strict MD5 checking is on:
    /// SREWorks re-zips packages on export, which changes the bytes but not the content).
    Mismatched,
    /// Nothing (or nothing well-formed) was declared.
    NotDeclared,
}

/// One component package inside an app package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPackageOut {
    /// `K8S_MICROSERVICE`, `K8S_JOB`, `HELM`, `INTERNAL_ADDON`, `RESOURCE_ADDON`, …
    #[schema(example = "K8S_MICROSERVICE")]
    pub component_type: String,
    /// The component name (SREWorks allows `@`, e.g. `system-env@system-env`).
    #[schema(example = "health")]
    pub component_name: String,
    /// The component package version.
    #[schema(example = "22.5.1+20231013224500845346")]
    pub package_version: String,
    /// Path of the component zip inside the app package.
    #[schema(example = "K8S_MICROSERVICE_health.zip")]
    pub relative_path: String,
    /// Size of the component zip in bytes.
    pub size: u64,
    /// MD5 of the component zip (lowercase hex), as SREWorks records it in `packageMd5`.
    pub md5: String,
    /// SHA-256 of the component zip (lowercase hex).
    pub sha256: String,
    /// How `md5` compares with the declared `packageMd5`.
    pub md5_status: Md5Status,
}

/// An app package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPackageOut {
    /// The package id (`appPackageId`).
    #[schema(example = 42)]
    pub id: u64,
    #[schema(example = "health")]
    pub app_id: AppId,
    /// `x.y.z+YYYYMMDDHHMMSSffffff` for packages we build; imports keep the version they carry.
    #[schema(example = "22.3.5+20231013225826568980")]
    pub package_version: String,
    /// `packageCreator` from `meta.yaml`, or the user who built the package.
    pub package_creator: Option<String>,
    /// Tags, e.g. `release=sreworks/x86_64`.
    pub tags: Vec<String>,
    pub source: PackageSource,
    /// Size of the app package zip in bytes.
    pub size: u64,
    /// SHA-256 of the app package zip (lowercase hex); what `download` serves hashes to this.
    pub sha256: String,
    /// The component packages, in `meta.yaml` order.
    pub components: Vec<ComponentPackageOut>,
    /// The principal that imported or built it (`user:alice`, `client:ci`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Filters of `GET /v1/apps/{appId}/app-packages`; newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppPackageListQuery {
    /// Only this exact version.
    #[serde(default)]
    pub version: Option<String>,
    /// Only packages carrying this tag (exact match).
    #[serde(default)]
    pub tag: Option<String>,
    /// 1-based page number.
    #[serde(default)]
    pub page: Option<u64>,
    /// Items per page, 1–500 (default 20).
    #[serde(default)]
    pub page_size: Option<u64>,
}

/// Query of the import endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Store the package under this version instead of the one in `meta.yaml`.
    #[serde(default)]
    pub package_version: Option<String>,
    /// Replace an existing package of the same version (otherwise that is a 409).
    #[serde(default)]
    pub force: Option<bool>,
    /// Assign the next version (the latest one's patch + 1, with a new timestamp) instead of the
    /// one in `meta.yaml`.
    #[serde(default)]
    pub reset_version: Option<bool>,
}

/// `GET /v1/apps/{appId}/app-packages/latest-version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestVersionOut {
    pub app_id: AppId,
    /// The newest package's version.
    pub package_version: String,
    /// The newest package's id.
    pub app_package_id: u64,
    /// What a build without an explicit version would be numbered (patch + 1, timestamp now).
    pub next_version: String,
}

/// Query of `GET .../{appPackageId}/download-url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadUrlQuery {
    /// Lifetime of the URL in seconds (1 – the configured maximum; default from configuration).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A presigned S3 URL for the package zip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrlOut {
    /// `GET` this URL (no credentials needed) until `expiresAt`; `Range` works.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub size: u64,
    pub sha256: String,
}

/// Where the gateway fetches a package's bytes from (internal: `packages.download`). The URL is
/// presigned for the endpoint the platform itself reaches, with a short lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadSourceOut {
    pub url: String,
    pub size: u64,
    pub sha256: String,
    /// File name for `Content-Disposition`: `{appId}-{packageVersion}.zip` (`+` kept).
    pub filename: String,
}

/// A package was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPackageDeleted {
    pub id: u64,
    pub app_id: AppId,
    pub package_version: String,
}

// ---------------------------------------------------------------- build tasks

/// The state of a build task: `CREATED → RUNNING → SUCCESS | FAILURE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PackageTaskStatus {
    Created,
    Running,
    Success,
    Failure,
}

impl PackageTaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATED" => Self::Created,
            "RUNNING" => Self::Running,
            "SUCCESS" => Self::Success,
            "FAILURE" => Self::Failure,
            _ => return None,
        })
    }

    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failure)
    }

    /// The one transition table of build tasks.
    pub fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Created, Self::Running)
                | (Self::Created, Self::Failure)
                | (Self::Running, Self::Success)
                | (Self::Running, Self::Failure)
                // A worker that died mid-build: another one takes the task over from the start.
                | (Self::Running, Self::Running)
        )
    }
}

/// A component named in a build task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageTaskComponent {
    pub component_type: String,
    pub component_name: String,
}

/// A build task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPackageTaskOut {
    /// The task id.
    pub id: u64,
    pub app_id: AppId,
    pub status: PackageTaskStatus,
    /// The version the package gets (assigned when the task is created).
    pub package_version: String,
    pub tags: Vec<String>,
    /// The components to assemble, in build.yaml order.
    pub components: Vec<PackageTaskComponent>,
    /// The package built, once `SUCCESS`.
    pub app_package_id: Option<u64>,
    /// Why the task failed, once `FAILURE`.
    pub error_message: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of `GET /v1/apps/{appId}/app-package-tasks`; newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PackageTaskListQuery {
    /// Only tasks in this state.
    #[serde(default)]
    pub status: Option<PackageTaskStatus>,
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub page_size: Option<u64>,
}

/// Query of `POST /v1/apps/{appId}/app-package-tasks` (for YAML and multipart bodies; a JSON body
/// carries the same fields itself).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PackageTaskQuery {
    /// The version to give the package (`x.y.z` gets `+timestamp` appended); default: the latest
    /// package's patch + 1.
    #[serde(default)]
    pub version: Option<String>,
    /// Tags, comma-separated.
    #[serde(default)]
    pub tags: Option<String>,
}

/// `POST /v1/apps/{appId}/app-package-tasks` as JSON: the ComponentBinder documents of a
/// `build.yaml`, as objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPackageTaskIn {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// ComponentBinder documents: `componentType`, `componentName`, `options` (…).
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<serde_json::Value>,
}

/// `GET /v1/apps/{appId}/app-packages/{appPackageId}/components`: what a package holds for each
/// component, as the workflow service resolves a launch against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentWorkloadOut {
    /// `K8S_MICROSERVICE`, `K8S_JOB`, `HELM`, `RESOURCE_ADDON`…
    pub component_type: String,
    pub component_name: String,
    pub package_version: String,
    /// `spec.workload` of the component package's `meta.yaml` (apiVersion, kind, metadata, spec),
    /// with unquoted `{{ x }}` read back as text; `null` when the meta.yaml has none (addons).
    #[schema(value_type = Object)]
    pub workload: serde_json::Value,
}
