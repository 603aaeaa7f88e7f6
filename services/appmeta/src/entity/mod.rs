//! sea-orm entities of the appmeta tables, and their conversion to the public DTOs.
//!
//! Rows keep ids as plain strings and labels/specs as JSON text; the conversions parse them back
//! into the contract types, so a row that does not parse (a bug, or a hand-edited row) surfaces as
//! a [`CorruptRow`] (500) instead of a malformed answer.

pub mod app;
pub mod cluster;
pub mod component;
pub mod namespace;
pub mod stage;

use sw_contracts::appmeta::Labels;
use sw_contracts::{AppId, Name};

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

pub(crate) fn labels_to_db(labels: &Labels) -> String {
    // A map of strings always serialises.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn labels_from_db(text: &str) -> Result<Labels, CorruptRow> {
    serde_json::from_str(text).map_err(|e| CorruptRow::new("labels", e))
}

pub(crate) fn app_id_from_db(s: &str) -> Result<AppId, CorruptRow> {
    AppId::parse(s).map_err(|e| CorruptRow::new("appId", e))
}

pub(crate) fn name_from_db(what: &'static str, s: &str) -> Result<Name, CorruptRow> {
    Name::parse(s).map_err(|e| CorruptRow::new(what, e))
}
