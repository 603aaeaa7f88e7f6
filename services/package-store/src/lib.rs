//! package-store: SREWorks app packages (zips of component zips) — this first slice is the format
//! library only.
//!
//! Data moves like this: the service (next slice) streams an upload to local storage, then hands a
//! `Read + Seek` over it to [`format::inspect_app_zip`]. The inspector walks the zip's central
//! directory itself (entry count, names, symlinks, duplicates) before the `zip` crate allocates
//! anything, then decompresses every entry once, counting the bytes it really gets, parses
//! `meta.yaml` with guards, opens each nested component zip in memory (one level only) and returns an
//! [`format::InspectedPackage`] with the typed meta and a digest per component. Every rejection is a
//! [`format::FormatError`] with a stable `code()` and an HTTP `status()` for problem+json.
//!
//! No I/O beyond the reader it is given: no S3, no NATS, no HTTP.

pub mod format;

pub use format::{
    AppPackageMeta, ComponentPackageMeta, FormatError, InspectedComponent, InspectedPackage, Limits,
    Md5Check, inspect_app_zip, parse_meta,
};
