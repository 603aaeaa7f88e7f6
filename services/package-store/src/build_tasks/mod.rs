//! Build tasks: a `build.yaml` (and chart archives) in, an app package out, in the background.
//!
//! How a task moves:
//! 1. **create** ([`create`]): `package-tasks.create` receives the streamed request
//!    ([`receive`]), validates the binders (every problem listed: `invalid_build`,
//!    `image_build_unsupported`) and inspects each chart archive, so bad input fails the request
//!    and not the task. It picks the version (explicit, or the next after both the app's packages
//!    and its live tasks), then in one transaction inserts the row — whose id names the chart
//!    keys `tasks/{taskId}/charts/{componentName}.{ext}` — uploads the charts, and commits the
//!    row `CREATED` with its `package.task.created` event. On failure the uploaded charts are
//!    deleted and the row rolled back. Answer: 202 with the task and its `Location`.
//! 2. **run** ([`worker`]): `build_workers` loops per process, woken on create and every second,
//!    claim the oldest `CREATED` task — or a `RUNNING` one whose worker stopped renewing its
//!    lease — by compare-and-swap on the row's `version` (`RUNNING`, lease 30 s, attempts + 1,
//!    `package.task.running`). The lease is renewed while the worker downloads the charts,
//!    assembles the package ([`crate::build::assemble`]) and imports it through the normal import
//!    pipeline (`package.app.built`).
//! 3. **finish** ([`rows`]): `SUCCESS` with the package id, or `FAILURE` with the reason; each
//!    with its event, each checked against [`PackageTaskStatus::can_become`]. A task past its
//!    deadline ends `Timeout`; one taken more than [`MAX_ATTEMPTS`] times fails.
//!
//! Chart objects are deleted as soon as their task ends (whatever the outcome: a retry is a new
//! task with a new upload). What a crash leaves — charts of a finished task, or of a task whose
//! creation never committed — is removed by the janitor.
//!
//! Events of a task have the CloudEvent subject `{appId}/tasks/{taskId}`.
//!
//! [`PackageTaskStatus::can_become`]: sw_contracts::packages::PackageTaskStatus::can_become

pub(crate) mod create;
pub(crate) mod receive;
pub(crate) mod rows;
pub(crate) mod worker;

use std::time::Duration;

use sw_contracts::FieldError;
use sw_contracts::Problem;
use sw_http::ApiError;

use crate::build::BuildError;

/// A task taken more often than this (each take is a worker that started it and vanished) fails.
pub const MAX_ATTEMPTS: i32 = 3;
/// How long a claim holds a task without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a worker renews its lease while it builds.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// How often idle workers look for tasks (besides being woken by a create in this process).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `error_message` stored, in bytes.
const MAX_ERROR_MESSAGE: usize = 4000;

/// The CloudEvent subject of a task.
pub(crate) fn subject(app_id: &str, task_id: i64) -> String {
    format!("{app_id}/tasks/{task_id}")
}

/// 422 `invalid_build` listing `errors`.
pub(crate) fn invalid_build(errors: Vec<FieldError>) -> ApiError {
    build_problem(BuildError::Invalid { errors })
}

/// The problem for a refused build: the error's own status and code, with its field list.
pub(crate) fn build_problem(e: BuildError) -> ApiError {
    if let BuildError::Io(io) = &e {
        return ApiError::internal(io);
    }
    let mut problem = Problem::new(e.status(), e.code(), Some(e.to_string()));
    problem.errors = e.field_errors();
    ApiError::from(problem)
}

/// What a failed task says about why: the problem's code and detail, then its fields.
pub(crate) fn failure_message(e: &ApiError) -> String {
    let p = e.problem();
    let mut msg = format!("{}: {}", p.code, p.detail.as_deref().unwrap_or(&p.title));
    for f in &p.errors {
        msg.push_str(&format!("; {}: {}", f.field, f.message));
    }
    truncate(msg)
}

/// Cuts `msg` to what the column keeps, at a character boundary.
pub(crate) fn truncate(mut msg: String) -> String {
    if msg.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE - 3;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push_str("...");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_keep_code_status_and_fields() {
        let e = invalid_build(vec![FieldError::new("documents[0].componentName", "is required")]);
        assert_eq!((e.status(), e.code()), (422, "invalid_build"));
        assert_eq!(e.problem().errors[0].field, "documents[0].componentName");
        let e = build_problem(BuildError::ImageBuildUnsupported { errors: vec![FieldError::new("a", "b")] });
        assert_eq!((e.status(), e.code(), e.problem().errors.len()), (422, "image_build_unsupported", 1));
        let e = build_problem(BuildError::Io(std::io::Error::other("disk full")));
        assert_eq!((e.status(), e.code()), (500, "internal"));
        assert!(!e.problem().detail.as_deref().unwrap().contains("disk"));
    }

    #[test]
    fn failure_messages_name_the_code_and_fit_the_column() {
        let e = ApiError::conflict("package_version_exists", "App demo already has package version 1.0.0+1.");
        assert_eq!(
            failure_message(&e),
            "package_version_exists: App demo already has package version 1.0.0+1."
        );
        let long = truncate("é".repeat(3000));
        assert!(long.len() <= MAX_ERROR_MESSAGE && long.ends_with("..."));
    }
}
