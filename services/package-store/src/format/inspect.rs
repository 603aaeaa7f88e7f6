//! Inspection of an uploaded app package: one pass over every entry; nested zips are written to
//! temporary files as they are decompressed and inspected from there, so memory use does not grow
//! with the package.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sw_contracts::AppId;
use tempfile::{NamedTempFile, TempPath};

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

/// A package that passed every check, with each component zip spooled to a temporary file.
#[derive(Debug)]
pub struct SpooledPackage {
    pub package: InspectedPackage,
    /// One file per `package.components`, in the same order, holding that component zip's bytes
    /// exactly as they are in the package. Each file is deleted when its `TempPath` is dropped.
    pub component_files: Vec<TempPath>,
}

/// Validates an app package zip and returns its meta and component digests.
///
/// The same checks as [`inspect_app_zip_spooled`]; the spooled component files (in the system
/// temporary folder) are deleted before this returns.
pub fn inspect_app_zip<R: Read + Seek>(
    reader: R,
    expected_app_id: Option<&AppId>,
    limits: &Limits,
) -> Result<InspectedPackage, FormatError> {
    inspect_app_zip_spooled(reader, expected_app_id, limits, None).map(|s| s.package)
}

/// Validates an app package zip, returns its meta and component digests, and keeps each
/// component zip in a temporary file under `spool_dir` (the system temporary folder when `None`).
///
/// Checks, in order: the central directory (entry count, safe names, no symlinks, no duplicates);
/// every entry decompressed once, counting real bytes against `max_total_uncompressed` and
/// `max_ratio`; nested zips (by `.zip` name or zip magic) written to a temporary file while they
/// are decompressed (so memory stays flat whatever their size), then inspected from there the same
/// way up to `max_nesting` levels and required to hold a `meta.yaml` that is guarded YAML; the root
/// `meta.yaml` parsed with [`parse_meta`]; the `appId` against `expected_app_id`; every
/// `componentPackages[].relativePath` present as a nested zip; and, with `strict_md5`, the declared
/// MD5s. A failed read of a zip entry is reported as `zip_corrupt`: inflate and CRC failures surface
/// as I/O errors and cannot be told apart from the reader's own. Failing to write the temporary
/// files is `package_read_failed` (500): our storage, not the package.
pub fn inspect_app_zip_spooled<R: Read + Seek>(
    mut reader: R,
    expected_app_id: Option<&AppId>,
    limits: &Limits,
    spool_dir: Option<&Path>,
) -> Result<SpooledPackage, FormatError> {
    let compressed_size = reader.seek(SeekFrom::End(0)).map_err(FormatError::Io)?;
    let mut spent = 0u64;
    let mut ctx = Walk { limits, spool_dir, spent: &mut spent };
    let mut outer = walk(reader, "package", 0, &mut ctx)?;
    let meta_bytes = outer.meta.take().ok_or_else(|| FormatError::MetaMissing { zip: "package".into() })?;
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
    let mut component_files = Vec::with_capacity(meta.component_packages.len());
    for c in &meta.component_packages {
        // `relativePath`s are unique (checked by `parse_meta`), so each nested zip is taken once.
        let Some(nested) = outer.nested.remove(&c.relative_path) else {
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
        component_files.push(nested.file);
    }
    let package = InspectedPackage {
        meta,
        components,
        entries: outer.entries,
        compressed_size,
        uncompressed_size: spent,
    };
    Ok(SpooledPackage { package, component_files })
}

/// What every level of the walk shares.
struct Walk<'a> {
    limits: &'a Limits,
    spool_dir: Option<&'a Path>,
    /// Bytes decompressed so far over the whole package.
    spent: &'a mut u64,
}

/// What one pass over a zip found.
struct ZipSummary {
    entries: u64,
    uncompressed: u64,
    names: HashSet<String>,
    meta: Option<Vec<u8>>,
    nested: HashMap<String, NestedZip>,
}

/// A nested zip that passed its own inspection, still on disk.
struct NestedZip {
    size: u64,
    md5: String,
    sha256: String,
    entries: u64,
    uncompressed: u64,
    file: TempPath,
}

/// Where the bytes of the entry being read go.
enum Sink {
    /// Counted and dropped.
    Discard,
    /// `meta.yaml`, kept in memory up to `max_meta_bytes`.
    Meta(Vec<u8>),
    /// A nested zip, written to a temporary file and digested on the way.
    Nested(Box<Spool>),
}

/// A nested zip being written to its temporary file.
struct Spool {
    file: NamedTempFile,
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

impl Spool {
    fn new(dir: Option<&Path>) -> Result<Self, FormatError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("sw-component-").suffix(".zip");
        let file = match dir {
            Some(d) => builder.tempfile_in(d),
            None => builder.tempfile(),
        }
        .map_err(FormatError::Io)?;
        Ok(Self { file, md5: Md5::new(), sha256: Sha256::new(), size: 0 })
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        self.md5.update(chunk);
        self.sha256.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).map_err(FormatError::Io)
    }
}

/// Inspects one zip at nesting `depth` (0 = the package), charging decompressed bytes to
/// `ctx.spent`.
fn walk<R: Read + Seek>(
    mut reader: R,
    label: &str,
    depth: u32,
    ctx: &mut Walk<'_>,
) -> Result<ZipSummary, FormatError> {
    let limits = ctx.limits;
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
        let too_deep =
            || FormatError::NestedTooDeep { name: format!("{label}/{name}"), limit: limits.max_nesting };
        let mut produced = 0u64;
        let mut sink = Sink::Discard;
        let mut first = true;
        loop {
            let n = read_full(&mut file, &mut buf)
                .map_err(|e| FormatError::Corrupt(format!("{label}: entry {name:?}: {e}")))?;
            if n == 0 {
                break;
            }
            produced += n as u64;
            *ctx.spent += n as u64;
            if *ctx.spent > limits.max_total_uncompressed {
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
            let chunk = &buf[..n];
            if first {
                first = false;
                if is_meta {
                    sink = Sink::Meta(Vec::new());
                } else if zip_by_name || chunk.starts_with(b"PK\x03\x04") || chunk.starts_with(b"PK\x05\x06")
                {
                    // Refused before spooling a byte: deeper zips are never opened anyway.
                    if depth >= limits.max_nesting {
                        return Err(too_deep());
                    }
                    sink = Sink::Nested(Box::new(Spool::new(ctx.spool_dir)?));
                }
            }
            match &mut sink {
                Sink::Discard => {}
                Sink::Meta(k) => {
                    if (k.len() + n) as u64 > limits.max_meta_bytes {
                        return Err(FormatError::MetaTooLarge { limit: limits.max_meta_bytes });
                    }
                    k.extend_from_slice(chunk);
                }
                Sink::Nested(spool) => spool.write(chunk)?,
            }
        }
        drop(file);
        summary.uncompressed += produced;
        summary.names.insert(name.clone());
        // An empty `.zip` entry is still a (corrupt) nested zip.
        if zip_by_name && !is_meta && matches!(sink, Sink::Discard) {
            if depth >= limits.max_nesting {
                return Err(too_deep());
            }
            sink = Sink::Nested(Box::new(Spool::new(ctx.spool_dir)?));
        }
        match sink {
            Sink::Discard => {}
            Sink::Meta(bytes) => summary.meta = Some(bytes),
            Sink::Nested(spool) => {
                let nested = inspect_nested(*spool, &name, depth + 1, ctx)?;
                summary.nested.insert(name, nested);
            }
        }
    }
    Ok(summary)
}

/// Inspects a nested zip from its temporary file.
fn inspect_nested(
    spool: Spool,
    name: &str,
    depth: u32,
    ctx: &mut Walk<'_>,
) -> Result<NestedZip, FormatError> {
    let Spool { mut file, md5, sha256, size } = spool;
    file.flush().map_err(FormatError::Io)?;
    let md5 = hex::encode(md5.finalize());
    let sha256 = hex::encode(sha256.finalize());
    let inner = {
        let handle = file.as_file_mut();
        handle.seek(SeekFrom::Start(0)).map_err(FormatError::Io)?;
        walk(BufReader::with_capacity(CHUNK, handle), name, depth, ctx)?
    };
    let meta = inner.meta.ok_or_else(|| FormatError::MetaMissing { zip: name.to_owned() })?;
    let value = parse_yaml_guarded(&meta, ctx.limits).map_err(|e| match e {
        FormatError::MetaInvalid(msg) => FormatError::MetaInvalid(format!("{name}/{META_FILE}: {msg}")),
        other => other,
    })?;
    if !value.is_mapping() {
        return Err(FormatError::MetaInvalid(format!("{name}/{META_FILE}: not a mapping")));
    }
    // Keep the path, close the handle: a package may hold many component zips.
    let file = file.into_temp_path();
    Ok(NestedZip { size, md5, sha256, entries: inner.entries, uncompressed: inner.uncompressed, file })
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
