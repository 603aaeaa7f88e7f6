//! The workload of a component package: `spec.workload` of the `meta.yaml` in a component zip, the
//! object a deployment of the component starts from (`sreworks render` and `packages.components`).

use std::io::{Read, Seek};

use serde_json::Value;

use super::error::FormatError;
use super::inspect::META_FILE;
use super::limits::Limits;
use super::meta::parse_yaml_guarded;

/// `spec.workload` of the `meta.yaml` at the root of the component zip read by `reader`, or `None`
/// when the component declares none (an addon's `meta.yaml` may have no workload).
///
/// The YAML is read within `limits.max_meta_bytes` (counted as it decompresses) and the alias
/// guard of the package checks, then normalised with [`sw_appconf::model::normalize`] so that an
/// unquoted `{{ x }}` reads back as the text `{{ x }}`. A workload that is present but not a
/// mapping is `meta_invalid`.
pub fn component_workload<R: Read + Seek>(reader: R, limits: &Limits) -> Result<Option<Value>, FormatError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(FormatError::from_zip)?;
    let entry = match archive.by_name(META_FILE) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(FormatError::MetaMissing { zip: "the component zip".into() });
        }
        Err(e) => return Err(FormatError::from_zip(e)),
    };
    let mut bytes = Vec::new();
    entry
        .take(limits.max_meta_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FormatError::Corrupt(format!("{META_FILE}: {e}")))?;
    let raw = parse_yaml_guarded(&bytes, limits)?;
    let normalized = sw_appconf::model::normalize(raw)
        .map_err(|(path, message)| FormatError::MetaInvalid(format!("{path}: {message}")))?;
    let meta: Value =
        serde_yaml::from_value(normalized).map_err(|e| FormatError::MetaInvalid(e.to_string()))?;
    if !meta.is_object() {
        return Err(FormatError::MetaInvalid("not a mapping".into()));
    }
    match meta.get("spec").and_then(|s| s.get("workload")) {
        None | Some(Value::Null) => Ok(None),
        Some(w @ Value::Object(_)) => Ok(Some(w.clone())),
        Some(_) => Err(FormatError::MetaInvalid("spec.workload is not a mapping".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::{SimpleFileOptions, ZipWriter};

    use super::*;

    fn zip_of(entries: &[(&str, &str)]) -> Cursor<Vec<u8>> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, text) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        Cursor::new(w.finish().unwrap().into_inner())
    }

    fn workload_of(meta: &str) -> Result<Option<Value>, FormatError> {
        component_workload(zip_of(&[("meta.yaml", meta), ("other.txt", "x")]), &Limits::default())
    }

    #[test]
    fn the_workload_is_returned_with_unquoted_templates_read_back_as_text() {
        let meta = "kind: Component\nspec:\n  images: []\n  workload:\n    apiVersion: apps.abm.io/v1\n    kind: Microservice\n    spec:\n      replicas: 1\n      env:\n        HOST: {{ Global.DB_HOST }}\n        PORT: '{{ Global.DB_PORT }}'\n";
        let w = workload_of(meta).unwrap().expect("a workload");
        assert_eq!(w["kind"], "Microservice");
        assert_eq!(w["spec"]["replicas"], 1);
        assert_eq!(w["spec"]["env"]["HOST"], "{{ Global.DB_HOST }}");
        assert_eq!(w["spec"]["env"]["PORT"], "{{ Global.DB_PORT }}");
        assert!(w.get("images").is_none(), "only spec.workload: {w}");
    }

    #[test]
    fn no_workload_is_none() {
        assert_eq!(workload_of("kind: Component\nspec: {}\n").unwrap(), None);
        assert_eq!(workload_of("kind: Component\nspec:\n  workload:\n").unwrap(), None);
        assert_eq!(workload_of("kind: Component\n").unwrap(), None);
    }

    #[test]
    fn malformed_meta_yamls_are_refused_with_their_code() {
        for (meta, code) in [
            ("spec:\n  workload: [1, 2]\n", "meta_invalid"),
            ("spec:\n  workload: text\n", "meta_invalid"),
            ("- a list\n", "meta_invalid"),
            ("spec: {workload: {a: 1}\n", "meta_invalid"),
            ("spec:\n  workload:\n    ? [a, b]\n    : 1\n", "meta_invalid"),
        ] {
            let err = workload_of(meta).unwrap_err();
            assert_eq!(err.code(), code, "{meta:?}: {err}");
        }
    }

    #[test]
    fn the_meta_size_limit_holds_whatever_the_entry_claims() {
        let big = format!("spec:\n  workload:\n    note: '{}'\n", "x".repeat(4096));
        let limits = Limits { max_meta_bytes: 1024, ..Limits::default() };
        let err = component_workload(zip_of(&[("meta.yaml", &big)]), &limits).unwrap_err();
        assert_eq!(err.code(), "meta_too_large");
    }

    #[test]
    fn a_zip_without_meta_yaml_or_not_a_zip_is_refused() {
        let err = component_workload(zip_of(&[("other.yaml", "a: 1")]), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "meta_missing");
        let err = component_workload(Cursor::new(b"not a zip".to_vec()), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "zip_corrupt");
    }
}
