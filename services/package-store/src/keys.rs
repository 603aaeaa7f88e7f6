//! Where things live in the bucket, and which names may become part of a key.
//!
//! - `apps/{appId}/{packageVersion}.zip` — an app package exactly as uploaded or built;
//! - `components/{appId}/{TYPE}/{name}/{version}.zip` — a component zip, shared by every app
//!   package of the app that carries the same bytes;
//! - `tasks/{taskId}/charts/{componentName}.{ext}` — the chart archives a build task was given,
//!   kept until the task ends.
//!
//! Names come from untrusted `meta.yaml`s and queries, so every segment is held to a small
//! alphabet before it reaches a key: S3 itself would take anything, but file-backed servers map
//! keys to paths, and `..` or a `/` inside a name must never change which object is meant.

/// Prefix of app package zips.
pub const APPS_PREFIX: &str = "apps/";
/// Prefix of component zips.
pub const COMPONENTS_PREFIX: &str = "components/";
/// Prefix of build task inputs.
pub const TASKS_PREFIX: &str = "tasks/";

/// The key of an app package zip.
pub fn app_zip(app_id: &str, package_version: &str) -> String {
    format!("{APPS_PREFIX}{app_id}/{package_version}.zip")
}

/// The key of a component zip.
pub fn component_zip(app_id: &str, component_type: &str, component_name: &str, version: &str) -> String {
    format!("{COMPONENTS_PREFIX}{app_id}/{component_type}/{component_name}/{version}.zip")
}

/// The key of a chart archive uploaded for build task `task_id` (`ext`: `tgz`, `tar` or `zip`).
pub fn task_chart(task_id: i64, component_name: &str, ext: &str) -> String {
    format!("{TASKS_PREFIX}{task_id}/charts/{component_name}.{ext}")
}

/// The build task a key under [`TASKS_PREFIX`] belongs to.
pub fn task_of_key(key: &str) -> Option<i64> {
    key.strip_prefix(TASKS_PREFIX)?.split('/').next()?.parse().ok()
}

/// Longest component type and name accepted (the key must fit the 512-character column).
pub const MAX_TYPE_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 128;

/// Checks that `value` may be one segment of a key: 1 to `max` characters of `A-Z a-z 0-9 . _ @
/// + -`, and not `.` or `..`. Returns a message naming what is wrong.
pub fn check_segment(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value == "." || value == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-')) {
        return Err("may only hold letters, digits and . _ @ + -".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        assert_eq!(app_zip("health", "1.0.0+1"), "apps/health/1.0.0+1.zip");
        assert_eq!(
            component_zip("health", "RESOURCE_ADDON", "system-env@system-env", "1.1.4+2"),
            "components/health/RESOURCE_ADDON/system-env@system-env/1.1.4+2.zip"
        );
        let chart = task_chart(42, "web", "tgz");
        assert_eq!(chart, "tasks/42/charts/web.tgz");
        assert_eq!(task_of_key(&chart), Some(42));
        assert_eq!(task_of_key("tasks/x/charts/web.tgz"), None);
        assert_eq!(task_of_key("apps/42/1.zip"), None);
    }

    #[test]
    fn segments_are_checked() {
        for ok in ["health", "system-env@system-env", "22.5.1+20231013224500845346", "K8S_MICROSERVICE", "a"]
        {
            assert!(check_segment(ok, 128).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a\\b", "ä", "a\0", "%2e%2e"] {
            assert!(check_segment(bad, 128).is_err(), "{bad:?}");
        }
        assert!(check_segment(&"x".repeat(129), 128).is_err());
    }
}
