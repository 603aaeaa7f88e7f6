//! `meta.yaml`: the typed app-package meta and the guarded YAML parser.
//!
//! Leniency rule: unknown fields are ignored (SREWorks adds fields between releases), the fields we
//! rely on are required and checked (`appId`, `packageVersion`, and per component `componentType`,
//! `componentName`, `packageVersion`, `relativePath`).

use serde::{Deserialize, Serialize};
use sw_contracts::AppId;

use super::error::FormatError;
use super::limits::Limits;
use super::names;

/// The top-level `meta.yaml` of an app package, as SREWorks AppManager writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPackageMeta {
    /// The app this package belongs to.
    pub app_id: AppId,
    /// The app package version, e.g. `22.3.5+20231013225826568980`.
    pub package_version: String,
    /// Who built the package (an SREWorks user id); kept as text.
    #[serde(default)]
    pub package_creator: Option<String>,
    /// Free-form tags such as `release=sreworks/x86_64`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The component packages, each a nested zip in the package.
    #[serde(default)]
    pub component_packages: Vec<ComponentPackageMeta>,
}

/// One `componentPackages[]` item of the app `meta.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPackageMeta {
    /// `K8S_MICROSERVICE`, `INTERNAL_ADDON`, `RESOURCE_ADDON`, `HELM`, … (upper case, digits, `_`).
    pub component_type: String,
    /// The component name; SREWorks allows `@` (`system-env@system-env`), so this is not a DNS label.
    pub component_name: String,
    /// The component package version.
    pub package_version: String,
    /// Path of the component zip inside the app package, e.g. `K8S_MICROSERVICE_health.zip`.
    pub relative_path: String,
    /// MD5 of the component zip as recorded at build time (hex); see `Limits::strict_md5`.
    #[serde(default)]
    pub package_md5: Option<String>,
    /// Who built the component package.
    #[serde(default)]
    pub package_creator: Option<String>,
    /// The OAM Component document, as a YAML string.
    #[serde(default)]
    pub package_ext: Option<String>,
    /// Build options, as a JSON string.
    #[serde(default)]
    pub package_options: Option<String>,
}

impl ComponentPackageMeta {
    /// `TYPE|name`, the way SREWorks names a component in messages and dependencies.
    pub fn label(&self) -> String {
        format!("{}|{}", self.component_type, self.component_name)
    }

    /// The declared MD5 when it is well formed (32 lowercase hex digits), else `None`.
    pub fn declared_md5(&self) -> Option<&str> {
        self.package_md5
            .as_deref()
            .filter(|m| m.len() == 32 && m.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    }
}

/// Parses and checks an app `meta.yaml`.
///
/// Rejects input over `limits.max_meta_bytes` (`meta_too_large`), YAML whose alias expansion makes
/// the value much larger than the text (`meta_invalid`; serde_yaml additionally aborts runaway alias
/// repetition itself), missing or malformed required fields, and unsafe `relativePath`s.
pub fn parse_meta(bytes: &[u8], limits: &Limits) -> Result<AppPackageMeta, FormatError> {
    let value = parse_yaml_guarded(bytes, limits)?;
    let meta: AppPackageMeta =
        serde_yaml::from_value(value).map_err(|e| FormatError::MetaInvalid(e.to_string()))?;
    validate(&meta)?;
    Ok(meta)
}

/// Parses YAML into a generic value within the size limit and the expansion guard.
pub(crate) fn parse_yaml_guarded(bytes: &[u8], limits: &Limits) -> Result<serde_yaml::Value, FormatError> {
    if bytes.len() as u64 > limits.max_meta_bytes {
        return Err(FormatError::MetaTooLarge { limit: limits.max_meta_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FormatError::MetaInvalid("not UTF-8".into()))?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| FormatError::MetaInvalid(e.to_string()))?;
    // Without aliases every node and every string byte comes from at least one input byte, so a
    // value "weighing" more than twice the text (plus slack for tiny documents) was built by alias
    // expansion. serde_yaml caps repetition at 100x the event count; this cap is far tighter.
    let budget = 2 * bytes.len() as u64 + 1024;
    if weigh(&value, budget).is_none() {
        return Err(FormatError::MetaInvalid("document expands far beyond its size (YAML aliases)".into()));
    }
    Ok(value)
}

/// Nodes plus string bytes of `value`, or `None` once over `budget` (stops early).
fn weigh(value: &serde_yaml::Value, budget: u64) -> Option<u64> {
    use serde_yaml::Value;
    let mut total: u64 = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += 1;
        match v {
            Value::String(s) => total += s.len() as u64,
            Value::Sequence(items) => stack.extend(items.iter()),
            Value::Mapping(map) => {
                for (k, v) in map {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Value::Tagged(t) => {
                total += t.tag.to_string().len() as u64;
                stack.push(&t.value);
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        if total > budget {
            return None;
        }
    }
    Some(total)
}

fn validate(meta: &AppPackageMeta) -> Result<(), FormatError> {
    let invalid = |msg: String| Err(FormatError::MetaInvalid(msg));
    if meta.package_version.trim().is_empty() {
        return invalid("packageVersion must not be empty".into());
    }
    let mut paths = std::collections::HashSet::new();
    for (i, c) in meta.component_packages.iter().enumerate() {
        let at = format!("componentPackages[{i}]");
        let type_ok = !c.component_type.is_empty()
            && c.component_type.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !type_ok {
            return invalid(format!("{at}.componentType must be upper case letters, digits and '_'"));
        }
        if c.component_name.trim().is_empty() || c.component_name.contains(['/', '\\', '|']) {
            return invalid(format!("{at}.componentName must be non-empty without '/', '\\' or '|'"));
        }
        if c.package_version.trim().is_empty() {
            return invalid(format!("{at}.packageVersion must not be empty"));
        }
        if names::check_name(c.relative_path.as_bytes()).is_err() || c.relative_path.ends_with('/') {
            return invalid(format!("{at}.relativePath {:?} is not a safe file path", c.relative_path));
        }
        if !paths.insert(c.relative_path.as_str()) {
            return invalid(format!("{at}.relativePath {:?} is listed twice", c.relative_path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "appId: demo\npackageVersion: 1.0.0\nextra: {a: 1}\ncomponentPackages:\n- componentType: K8S_MICROSERVICE\n  componentName: api\n  packageVersion: 1.0.0\n  relativePath: K8S_MICROSERVICE_api.zip\n  somethingNew: true\n";

    #[test]
    fn accepts_unknown_fields_and_defaults() {
        let meta = parse_meta(MINIMAL.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(meta.app_id.as_str(), "demo");
        assert!(meta.tags.is_empty());
        assert_eq!(meta.component_packages[0].label(), "K8S_MICROSERVICE|api");
        assert_eq!(meta.component_packages[0].declared_md5(), None);
    }

    #[test]
    fn requires_the_fields_we_rely_on() {
        for (doc, needle) in [
            ("packageVersion: '1'\n", "appId"),
            ("appId: demo\npackageVersion: 1.10\n", "expected a string"),
            ("appId: demo\n", "packageVersion"),
            ("appId: Not_A_Label\npackageVersion: '1'\n", "lowercase"),
            ("appId: demo\npackageVersion: ''\n", "packageVersion"),
            (
                "appId: demo\npackageVersion: '1'\ncomponentPackages:\n- componentType: x\n  componentName: a\n  packageVersion: '1'\n  relativePath: a.zip\n",
                "componentType",
            ),
            (
                "appId: demo\npackageVersion: '1'\ncomponentPackages:\n- componentType: X\n  componentName: a\n  packageVersion: '1'\n  relativePath: ../a.zip\n",
                "relativePath",
            ),
            (
                "appId: demo\npackageVersion: '1'\ncomponentPackages:\n- componentType: X\n  componentName: a\n  packageVersion: '1'\n",
                "relativePath",
            ),
            ("- just\n- a list\n", "invalid type"),
        ] {
            let err = parse_meta(doc.as_bytes(), &Limits::default()).unwrap_err();
            assert_eq!(err.code(), "meta_invalid", "{doc}");
            assert!(err.to_string().contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn declared_md5_must_be_lowercase_hex() {
        let mut meta = parse_meta(MINIMAL.as_bytes(), &Limits::default()).unwrap();
        let c = &mut meta.component_packages[0];
        c.package_md5 = Some("eadb2e2f42a1fedaaf5257872913064b".into());
        assert!(c.declared_md5().is_some());
        c.package_md5 = Some("EADB2E2F42A1FEDAAF5257872913064B".into());
        assert!(c.declared_md5().is_none());
        c.package_md5 = Some("abc".into());
        assert!(c.declared_md5().is_none());
    }

    #[test]
    fn size_limit_is_checked_before_parsing() {
        let limits = Limits { max_meta_bytes: 10, ..Limits::default() };
        let err = parse_meta(MINIMAL.as_bytes(), &limits).unwrap_err();
        assert_eq!(err.code(), "meta_too_large");
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn modest_alias_expansion_is_rejected() {
        // 30 aliases of a 200-byte string: serde_yaml allows it, our weight check does not.
        let mut doc = format!("appId: demo\npackageVersion: '1'\nx: &a \"{}\"\ny: [", "z".repeat(200));
        doc.push_str(&vec!["*a"; 30].join(","));
        doc.push_str("]\n");
        let err = parse_meta(doc.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "meta_invalid");
        assert!(err.to_string().contains("expands"), "{err}");
    }
}
