//! Inspection of an uploaded app package: one pass over every entry, nested zips opened in memory.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Seek, SeekFrom};

use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sw_contracts::AppId;

use super::error::FormatError;
use super::limits::Limits;
use super::meta::{AppPackageMeta, parse_meta, parse_yaml_guarded};
use super::names::scan_central_directory;

/// The name of the meta file at the root of the package and of every component zip.
pub const META_FILE: &str = "meta.yaml";
const CHUNK: usize = 64 * 1024;

/// A package that passed every check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedPackage {
    /// The parsed top-level `meta.yaml`.
    pub meta: AppPackageMeta,
    /// One item per `componentPackages[]`, in the same order.
    pub components: Vec<InspectedComponent>,
    /// Entries in the outer zip.
    pub entries: u64,
    /// Size of the package as uploaded.
    pub compressed_size: u64,
    /// Bytes decompressed while inspecting: outer entries plus the entries of every nested zip.
    pub uncompressed_size: u64,
}

/// A component zip found in the package, with its digests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedComponent {
    pub component_type: String,
    pub component_name: String,
    pub package_version: String,
    pub relative_path: String,
    /// Size of the component zip in bytes.
    pub size: u64,
    /// MD5 of the component zip (lowercase hex), what SREWorks records as `packageMd5`.
    pub md5: String,
    /// SHA-256 of the component zip (lowercase hex), for our own content addressing.
    pub sha256: String,
    /// How `md5` compares with the declared `packageMd5`.
    pub md5_check: Md5Check,
    /// Entries in the component zip.
    pub entries: u64,
    /// Decompressed bytes of the component zip's entries.
    pub uncompressed_size: u64,
}

/// The outcome of comparing a component's MD5 with its declared `packageMd5`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Md5Check {
    /// The declared MD5 is the MD5 of the bytes.
    Matched,
    /// A well-formed MD5 was declared and differs (an error only with `Limits::strict_md5`).
    Mismatched { declared: String },
    /// No `packageMd5`, or not 32 lowercase hex digits: nothing to verify.
    NotDeclared,
}

/// Validates an app package zip and returns its meta and component digests.
///
/// Checks, in order: the central directory (entry count, safe names, no symlinks, no duplicates);
/// every entry decompressed once, counting real bytes against `max_total_uncompressed` and
/// `max_ratio`; nested zips (by `.zip` name or zip magic) inspected the same way up to
/// `max_nesting` levels and required to hold a `meta.yaml` that is guarded YAML; the root
/// `meta.yaml` parsed with [`parse_meta`]; the `appId` against `expected_app_id`; every
/// `componentPackages[].relativePath` present as a nested zip; and, with `strict_md5`, the declared
/// MD5s. A failed read of a zip entry is reported as `zip_corrupt`: inflate and CRC failures surface
/// as I/O errors and cannot be told apart from the reader's own.
pub fn inspect_app_zip<R: Read + Seek>(
    mut reader: R,
    expected_app_id: Option<&AppId>,
    limits: &Limits,
) -> Result<InspectedPackage, FormatError> {
    let compressed_size = reader.seek(SeekFrom::End(0)).map_err(FormatError::Io)?;
    let mut spent = 0u64;
    let outer = walk(reader, "package", 0, limits, &mut spent)?;
    let meta_bytes = outer.meta.ok_or_else(|| FormatError::MetaMissing { zip: "package".into() })?;
    let meta = parse_meta(&meta_bytes, limits)?;
    if let Some(expected) = expected_app_id
        && expected != &meta.app_id
    {
        return Err(FormatError::MetaAppIdMismatch {
            expected: expected.to_string(),
            found: meta.app_id.to_string(),
        });
    }
    let mut components = Vec::with_capacity(meta.component_packages.len());
    for c in &meta.component_packages {
        let Some(nested) = outer.nested.get(&c.relative_path) else {
            if outer.names.contains(&c.relative_path) {
                return Err(FormatError::Corrupt(format!(
                    "component {} at {:?} is not a zip",
                    c.label(),
                    c.relative_path
                )));
            }
            return Err(FormatError::ComponentMissing {
                component: c.label(),
                path: c.relative_path.clone(),
            });
        };
        let md5_check = match c.declared_md5() {
            None => Md5Check::NotDeclared,
            Some(d) if d == nested.md5 => Md5Check::Matched,
            Some(d) => Md5Check::Mismatched { declared: d.to_owned() },
        };
        if let (true, Md5Check::Mismatched { declared }) = (limits.strict_md5, &md5_check) {
            return Err(FormatError::ComponentMd5Mismatch {
                component: c.label(),
                declared: declared.clone(),
                actual: nested.md5.clone(),
            });
        }
        components.push(InspectedComponent {
            component_type: c.component_type.clone(),
            component_name: c.component_name.clone(),
            package_version: c.package_version.clone(),
            relative_path: c.relative_path.clone(),
            size: nested.size,
            md5: nested.md5.clone(),
            sha256: nested.sha256.clone(),
            md5_check,
            entries: nested.entries,
            uncompressed_size: nested.uncompressed,
        });
    }
    Ok(InspectedPackage {
        meta,
        components,
        entries: outer.entries,
        compressed_size,
        uncompressed_size: spent,
    })
}

/// What one pass over a zip found.
struct ZipSummary {
    entries: u64,
    uncompressed: u64,
    names: HashSet<String>,
    meta: Option<Vec<u8>>,
    nested: HashMap<String, NestedZip>,
}

/// A nested zip that passed its own inspection.
struct NestedZip {
    size: u64,
    md5: String,
    sha256: String,
    entries: u64,
    uncompressed: u64,
}

/// Inspects one zip at nesting `depth` (0 = the package), charging decompressed bytes to `spent`.
fn walk<R: Read + Seek>(
    mut reader: R,
    label: &str,
    depth: u32,
    limits: &Limits,
    spent: &mut u64,
) -> Result<ZipSummary, FormatError> {
    let central = scan_central_directory(&mut reader, limits)?;
    reader.seek(SeekFrom::Start(0)).map_err(FormatError::Io)?;
    let mut archive = zip::ZipArchive::new(reader).map_err(FormatError::from_zip)?;
    if archive.len() != central.len() {
        return Err(FormatError::Corrupt(format!(
            "{label}: central directory disagrees with the zip reader"
        )));
    }
    let mut summary = ZipSummary {
        entries: central.len() as u64,
        uncompressed: 0,
        names: HashSet::with_capacity(central.len()),
        meta: None,
        nested: HashMap::new(),
    };
    let mut buf = vec![0u8; CHUNK];
    for (i, entry) in central.iter().enumerate() {
        let mut file = archive.by_index(i).map_err(FormatError::from_zip)?;
        let name = entry.name.clone();
        if file.name() != name {
            return Err(FormatError::Corrupt(format!("{label}: entry {i} changed name between reads")));
        }
        let compressed = file.compressed_size();
        let is_meta = name == META_FILE;
        let zip_by_name = name.to_ascii_lowercase().ends_with(".zip");
        let mut produced = 0u64;
        let mut kept: Option<Vec<u8>> = None;
        let mut first = true;
        loop {
            let n = read_full(&mut file, &mut buf)
                .map_err(|e| FormatError::Corrupt(format!("{label}: entry {name:?}: {e}")))?;
            if n == 0 {
                break;
            }
            produced += n as u64;
            *spent += n as u64;
            if *spent > limits.max_total_uncompressed {
                return Err(FormatError::Bomb {
                    name,
                    reason: format!(
                        "more than {} bytes decompressed in total",
                        limits.max_total_uncompressed
                    ),
                });
            }
            if produced > limits.ratio_grace_bytes
                && produced > limits.max_ratio.saturating_mul(compressed.max(1))
            {
                return Err(FormatError::Bomb {
                    name,
                    reason: format!("compression ratio over {}", limits.max_ratio),
                });
            }
            if first {
                first = false;
                let chunk = &buf[..n];
                if is_meta
                    || zip_by_name
                    || chunk.starts_with(b"PK\x03\x04")
                    || chunk.starts_with(b"PK\x05\x06")
                {
                    kept = Some(Vec::new());
                }
            }
            if let Some(k) = kept.as_mut() {
                if is_meta && (k.len() + n) as u64 > limits.max_meta_bytes {
                    return Err(FormatError::MetaTooLarge { limit: limits.max_meta_bytes });
                }
                k.extend_from_slice(&buf[..n]);
            }
        }
        summary.uncompressed += produced;
        summary.names.insert(name.clone());
        let kept = if zip_by_name && kept.is_none() { Some(Vec::new()) } else { kept };
        match kept {
            Some(bytes) if is_meta => summary.meta = Some(bytes),
            Some(bytes) => {
                if depth >= limits.max_nesting {
                    return Err(FormatError::NestedTooDeep {
                        name: format!("{label}/{name}"),
                        limit: limits.max_nesting,
                    });
                }
                let nested = inspect_nested(bytes, &name, depth + 1, limits, spent)?;
                summary.nested.insert(name, nested);
            }
            None => {}
        }
    }
    Ok(summary)
}

/// Inspects a nested zip held in memory and digests its bytes.
fn inspect_nested(
    bytes: Vec<u8>,
    name: &str,
    depth: u32,
    limits: &Limits,
    spent: &mut u64,
) -> Result<NestedZip, FormatError> {
    let md5 = hex::encode(Md5::digest(&bytes));
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let inner = walk(Cursor::new(bytes), name, depth, limits, spent)?;
    let meta = inner.meta.ok_or_else(|| FormatError::MetaMissing { zip: name.to_owned() })?;
    let value = parse_yaml_guarded(&meta, limits).map_err(|e| match e {
        FormatError::MetaInvalid(msg) => FormatError::MetaInvalid(format!("{name}/{META_FILE}: {msg}")),
        other => other,
    })?;
    if !value.is_mapping() {
        return Err(FormatError::MetaInvalid(format!("{name}/{META_FILE}: not a mapping")));
    }
    Ok(NestedZip { size, md5, sha256, entries: inner.entries, uncompressed: inner.uncompressed })
}

/// Reads until `buf` is full or the reader is exhausted (so the zip-magic sniff sees 4 bytes).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
