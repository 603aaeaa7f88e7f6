//! Test helpers: re-zip the SREWorks fixture, build well-formed packages, and hand-craft hostile zips.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

/// `../shared/fixtures/sreworks/apps/health/build`, from this crate's manifest dir.
pub fn health_fixture() -> PathBuf {
    sw_testkit::fixtures_dir().join("sreworks/apps/health/build")
}

/// Re-zips an unpacked SREWorks package: each `X.zip.dir/` folder becomes the nested zip `X.zip`,
/// every other file is stored as is, then the outer zip is built. Nothing is fixed up.
pub fn pack_fixture_dir(path: &Path) -> Vec<u8> {
    pack_fixture_dir_with(path, &[])
}

/// Like [`pack_fixture_dir`], plus `extra` entries (name, bytes) added to the outer zip.
pub fn pack_fixture_dir_with(path: &Path, extra: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut outer: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, full) in sorted_children(path) {
        if full.is_dir() {
            let zip_name = name.strip_suffix(".dir").expect("fixture folders are named *.zip.dir").to_owned();
            let files: Vec<(String, Vec<u8>)> = walk_files(&full, "");
            outer.push((zip_name, deflated_zip(&files)));
        } else {
            outer.push((name, std::fs::read(&full).unwrap()));
        }
    }
    outer.extend(extra.iter().cloned());
    deflated_zip(&outer)
}

fn sorted_children(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    out.sort();
    out
}

fn walk_files(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, full) in sorted_children(dir) {
        let rel = format!("{prefix}{name}");
        if full.is_dir() {
            out.extend(walk_files(&full, &format!("{rel}/")));
        } else {
            out.push((rel, std::fs::read(&full).unwrap()));
        }
    }
    out
}

/// A deflated zip of `(name, bytes)` entries, written by the `zip` crate.
pub fn deflated_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).large_file(false);
    for (name, bytes) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Shorthand for [`deflated_zip`] with `&str` names.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    deflated_zip(&entries.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect::<Vec<_>>())
}

/// A component zip with a minimal OAM Component `meta.yaml`.
pub fn component_zip(name: &str) -> Vec<u8> {
    let meta = format!(
        "apiVersion: core.oam.dev/v1alpha2\nkind: Component\nmetadata:\n  name: {name}\nspec: {{}}\n"
    );
    zip_of(&[("meta.yaml", meta.as_bytes())])
}

/// An app `meta.yaml` listing `(TYPE, name, relativePath, packageMd5)` components.
pub fn app_meta(app: &str, components: &[(&str, &str, &str, Option<&str>)]) -> String {
    let mut s = format!(
        "appId: {app}\npackageVersion: 1.0.0+1\npackageCreator: '42'\ntags: [on-sale]\ncomponentPackages:\n"
    );
    if components.is_empty() {
        s = format!("appId: {app}\npackageVersion: 1.0.0+1\ncomponentPackages: []\n");
    }
    for (ty, name, path, md5) in components {
        s.push_str(&format!("- componentType: {ty}\n  componentName: {name}\n  packageVersion: 2.0.0\n  relativePath: {path}\n"));
        if let Some(m) = md5 {
            s.push_str(&format!("  packageMd5: {m}\n"));
        }
    }
    s
}

/// A well-formed one-component package for app `demo`, its component zip carrying `md5`.
pub fn demo_package(md5: Option<&str>) -> Vec<u8> {
    let meta = app_meta("demo", &[("K8S_MICROSERVICE", "api", "K8S_MICROSERVICE_api.zip", md5)]);
    zip_of(&[("meta.yaml", meta.as_bytes()), ("K8S_MICROSERVICE_api.zip", &component_zip("api"))])
}

/// A raw entry for [`raw_zip`]: name bytes, data (stored), optional unix mode.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub data: &'a [u8],
    pub unix_mode: Option<u32>,
}

/// Hand-writes a stored zip, so tests can produce what well-behaved writers refuse to: duplicate
/// names, absolute or `..` paths, backslashes, symlink modes.
pub fn raw_zip(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let crc = crc32(e.data);
        let len = e.data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(e.name);
        out.extend_from_slice(e.data);

        let made_by: u16 = if e.unix_mode.is_some() { (3 << 8) | 20 } else { 20 };
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&made_by.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x21u16.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        central.extend_from_slice(&(e.unix_mode.unwrap_or(0) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// MD5 of `bytes`, lowercase hex (tests compute it independently of the library's reporting).
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}
