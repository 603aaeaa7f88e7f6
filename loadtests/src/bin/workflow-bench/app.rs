//! The benchmark's app: a synthetic package of three `K8S_MANIFESTS` components, one ConfigMap
//! each, and the launch file that applies them one step after the other.
//!
//! ConfigMaps are healthy as soon as they exist (no rollout to complete), so the emulator and a
//! driver playing a controller stay out of the measured path; each launch names its own app
//! instance, and the ConfigMap names carry it (`{{ Global.APP_INSTANCE_NAME }}-cfg-a`), so the 200
//! launches neither queue behind each other nor touch each other's objects.

use std::io::Write;

use zip::write::SimpleFileOptions;

/// The app every launch deploys.
pub const APP_ID: &str = "wfbench";
/// The components, in the order of their steps.
pub const COMPONENTS: [&str; 3] = ["cfg-a", "cfg-b", "cfg-c"];
/// Their type.
const COMPONENT_TYPE: &str = "K8S_MANIFESTS";

/// What the report says the app is.
pub fn describe() -> String {
    format!(
        "{} {COMPONENT_TYPE} components ({}), one ConfigMap each (healthy once applied, no rollout), \
         each in its own apply-components step (STEP_BY_STEP)",
        COMPONENTS.len(),
        COMPONENTS.join(", ")
    )
}

/// The app package zip: `meta.yaml` listing the components, and per component a nested
/// `<TYPE>_<name>.zip` holding its `meta.yaml` (an OAM Component with `spec.workload`).
pub fn package() -> anyhow::Result<Vec<u8>> {
    let mut meta = format!("appId: {APP_ID}\npackageVersion: 1.0.0\ncomponentPackages:\n");
    let mut nested = Vec::new();
    for name in COMPONENTS {
        let path = format!("{COMPONENT_TYPE}_{name}.zip");
        meta.push_str(&format!(
            "- componentType: {COMPONENT_TYPE}\n  componentName: {name}\n  packageVersion: 1.0.0\n  relativePath: {path}\n"
        ));
        nested.push((path, zip_of(&[("meta.yaml", &component_meta(name))])?));
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("meta.yaml", SimpleFileOptions::default())?;
    w.write_all(meta.as_bytes())?;
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (path, bytes) in nested {
        w.start_file(path, stored)?;
        w.write_all(&bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

fn component_meta(name: &str) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1alpha2
kind: Component
metadata:
  name: manifests-{APP_ID}-{name}
spec:
  workload:
    apiVersion: apps.abm.io/v1
    kind: Manifests
    metadata:
      name: PLACEHOLDER_NAME
    spec:
      manifests:
        - apiVersion: v1
          kind: ConfigMap
          metadata:
            name: "{{{{ Global.APP_INSTANCE_NAME }}}}-{name}"
          data:
            component: {name}
            settings.yaml: "level: info\nretries: 3\n"
"#
    )
}

fn zip_of(entries: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in entries {
        w.start_file(*name, SimpleFileOptions::default())?;
        w.write_all(text.as_bytes())?;
    }
    Ok(w.finish()?.into_inner())
}

/// The launch file: the three components, each applied by its own step, in order.
pub fn launch_file() -> String {
    let mut s = format!(
        "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\nmetadata:\n  name: {APP_ID}\n  \
         annotations:\n    appId: {APP_ID}\nspec:\n  components:\n"
    );
    for name in COMPONENTS {
        s.push_str(&format!("    - revisionName: {COMPONENT_TYPE}|{name}|_\n"));
    }
    s.push_str("  workflow:\n    steps:\n");
    for name in COMPONENTS {
        s.push_str(&format!(
            "      - type: apply-components\n        name: {name}\n        properties:\n          \
             components: [{{type: {COMPONENT_TYPE}, name: {name}}}]\n"
        ));
    }
    s
}
