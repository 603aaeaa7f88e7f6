//! The SREWorks fixtures as the e2e tests upload them.
//!
//! The `health` fixture (`../shared/fixtures/sreworks/apps/health/build/`) is the unpacked package:
//! each `<TYPE>_<name>.zip.dir/` folder is re-zipped into the nested `<TYPE>_<name>.zip`. It lacks the
//! folders of its three `INTERNAL_ADDON` components, so those get stand-in zips holding a
//! `meta.yaml`; everything else is used as it is.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the health package's Deployment lands on the emulator when launched with
/// `launch-example.yaml` into namespace `sreworks`, stage `prod`.
pub const HEALTH_DEPLOYMENT: &str = "/apis/apps/v1/namespaces/sreworks/deployments/prod-health-health";
/// Its Ingress.
pub const HEALTH_INGRESS: &str =
    "/apis/networking.k8s.io/v1/namespaces/sreworks/ingresses/prod-health-health";

/// The events of an undisturbed launch of the health package with `launch-example.yaml`, in order
/// (the four state machines, one deploy step, one component).
pub const HEALTH_LAUNCH_EVENTS: [&str; 16] = [
    "deployment.app.created",
    "workflow.instance.pending",
    "deployment.app.component-checking",
    "deployment.app.backup-checking",
    "deployment.app.processing",
    "workflow.instance.preprocessing",
    "workflow.instance.running",
    "workflow.task.running",
    "deployment.app.waiting",
    "deployment.component.processing",
    "workflow.task.waiting",
    "deployment.component.running",
    "deployment.component.succeeded",
    "workflow.task.succeeded",
    "workflow.instance.succeeded",
    "deployment.app.succeeded",
];

/// The unpacked health package.
pub fn fixture() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks/apps/health/build")
}

const MISSING: [&str; 3] =
    ["INTERNAL_ADDON_productopsv2", "INTERNAL_ADDON_developmentmeta", "INTERNAL_ADDON_appmeta"];

/// Zips the files of `dir` (recursively, sorted) into memory.
fn zip_dir(dir: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, path) in files {
        w.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(&std::fs::read(path).unwrap()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            out.push((p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"), p));
        }
    }
}

/// The package and its component zips by entry name.
pub fn health_package() -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let mut components = BTreeMap::new();
    let mut plain = Vec::new();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(zip_name) = name.strip_suffix(".dir") {
            components.insert(zip_name.to_owned(), zip_dir(&p));
        } else {
            plain.push((name, std::fs::read(&p).unwrap()));
        }
    }
    for m in MISSING {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("meta.yaml", zip::write::SimpleFileOptions::default()).unwrap();
        write!(w, "apiVersion: core.oam.dev/v1alpha2\nkind: Component\nmetadata:\n  name: {m}\n").unwrap();
        components.insert(format!("{m}.zip"), w.finish().unwrap().into_inner());
    }
    plain.sort();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in &plain {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(bytes).unwrap();
    }
    for (name, bytes) in &components {
        let stored =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file(name.as_str(), stored).unwrap();
        w.write_all(bytes).unwrap();
    }
    (w.finish().unwrap().into_inner(), components)
}
