//! sea-orm entities of the package tables, and their conversion to the public DTOs.
//!
//! Rows keep ids and enums as plain strings and tags/meta as JSON text; the conversions parse
//! them back, so a row that does not parse surfaces as a [`CorruptRow`] (500) instead of a
//! malformed answer.

pub mod app_package;
pub mod app_package_component;
pub mod component_package;
pub mod package_task;

use sw_contracts::packages::{Md5Status, PackageSource};

/// A stored row that does not convert back into its DTO.
#[derive(Debug, thiserror::Error)]
#[error("stored {what} is invalid: {message}")]
pub struct CorruptRow {
    what: &'static str,
    message: String,
}

impl CorruptRow {
    pub(crate) fn new(what: &'static str, message: impl ToString) -> Self {
        Self { what, message: message.to_string() }
    }
}

/// `app_package.status`.
pub const IMPORTING: &str = "IMPORTING";
/// `app_package.status` and `component_package.status`.
pub const READY: &str = "READY";
/// `component_package.status` until an import uploaded the object.
pub const PENDING: &str = "PENDING";

pub(crate) fn source_to_db(s: PackageSource) -> &'static str {
    match s {
        PackageSource::Import => "IMPORT",
        PackageSource::Build => "BUILD",
    }
}

pub(crate) fn source_from_db(s: &str) -> Result<PackageSource, CorruptRow> {
    match s {
        "IMPORT" => Ok(PackageSource::Import),
        "BUILD" => Ok(PackageSource::Build),
        other => Err(CorruptRow::new("source", other)),
    }
}

pub(crate) fn md5_status_to_db(s: Md5Status) -> &'static str {
    match s {
        Md5Status::Matched => "MATCHED",
        Md5Status::Mismatched => "MISMATCHED",
        Md5Status::NotDeclared => "NOT_DECLARED",
    }
}

pub(crate) fn md5_status_from_db(s: &str) -> Result<Md5Status, CorruptRow> {
    match s {
        "MATCHED" => Ok(Md5Status::Matched),
        "MISMATCHED" => Ok(Md5Status::Mismatched),
        "NOT_DECLARED" => Ok(Md5Status::NotDeclared),
        other => Err(CorruptRow::new("md5Status", other)),
    }
}

/// A non-negative size or id column as the `u64` of the DTOs.
pub(crate) fn unsigned(what: &'static str, v: i64) -> Result<u64, CorruptRow> {
    u64::try_from(v).map_err(|_| CorruptRow::new(what, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for s in [PackageSource::Import, PackageSource::Build] {
            assert_eq!(source_from_db(source_to_db(s)).unwrap(), s);
        }
        for s in [Md5Status::Matched, Md5Status::Mismatched, Md5Status::NotDeclared] {
            assert_eq!(md5_status_from_db(md5_status_to_db(s)).unwrap(), s);
        }
        assert!(source_from_db("X").is_err());
        assert!(md5_status_from_db("").is_err());
        assert!(unsigned("size", -1).is_err());
    }
}
