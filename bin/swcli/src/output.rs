//! Human-readable output: aligned tables and key-value lines; `--json` passthrough of replies.

use serde_json::Value;

use crate::error::CliError;

/// How a command reports: what it prints on stdout and whether it may draw on stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    /// Print the API's JSON reply instead of a table.
    pub json: bool,
    /// Draw progress bars and spinners on stderr (only when it is a terminal and neither `--json`
    /// nor `--quiet` was given, so pipelines and logs stay clean).
    pub progress: bool,
    /// Print progress lines on stderr (one per change while `--wait` follows a deployment):
    /// unless `--json` or `--quiet`, terminal or not, so CI logs show them.
    pub notes: bool,
}

impl Output {
    /// Decides whether progress may be drawn from the flags and whether stderr is a terminal.
    pub fn new(json: bool, quiet: bool, stderr_is_terminal: bool) -> Output {
        Output { json, progress: stderr_is_terminal && !json && !quiet, notes: !json && !quiet }
    }
}

/// Renders rows under a header, each column as wide as its widest cell, separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Renders `key: value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count() + 1).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"))).collect::<String>()
}

/// The line under a list table when it does not show every item, e.g. `(21–40 of 95; page 2 of size 20)`.
pub fn page_note(shown: u64, page: u64, page_size: u64, total: u64) -> String {
    if shown >= total {
        return String::new();
    }
    let first = page.saturating_sub(1) * page_size;
    format!("({}–{} of {total}; page {page} of size {page_size})\n", first + 1, first + shown)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Display only: the rounding of a float is fine here.
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An RFC 3339 timestamp to the second, in UTC.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `--json` prints the reply as received (pretty); otherwise `human` renders it.
pub fn render(
    body: Option<Value>,
    as_json: bool,
    human: impl FnOnce(Value) -> Result<String, CliError>,
) -> Result<String, CliError> {
    let body = body.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
    if as_json { Ok(json(&body)) } else { human(body) }
}

/// Pretty JSON with a final newline.
pub fn json(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()))
}

/// Decodes a reply into its documented type.
pub fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, CliError> {
    serde_json::from_value(v)
        .map_err(|e| CliError::Unexpected(format!("the reply does not match the API: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["health".into(), "Health".into()], vec!["a".into(), "".into()]];
        assert_eq!(table(&["APP", "NAME"], &rows), "APP     NAME\nhealth  Health\na\n");
    }

    #[test]
    fn key_values_align() {
        assert_eq!(key_values(&[("a", "1".into()), ("long", "2".into())]), "a:    1\nlong: 2\n");
    }

    #[test]
    fn page_note_only_when_items_are_hidden() {
        assert_eq!(page_note(3, 1, 20, 3), "");
        assert_eq!(page_note(20, 2, 20, 95), "(21–40 of 95; page 2 of size 20)\n");
    }

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 + 300 * 1024), "5.3 MiB");
    }

    #[test]
    fn progress_only_on_a_terminal_without_json_or_quiet() {
        assert!(Output::new(false, false, true).progress);
        assert!(!Output::new(false, false, false).progress);
        assert!(!Output::new(true, false, true).progress);
        assert!(!Output::new(false, true, true).progress);
    }

    #[test]
    fn notes_unless_json_or_quiet() {
        assert!(Output::new(false, false, false).notes);
        assert!(!Output::new(true, false, true).notes);
        assert!(!Output::new(false, true, true).notes);
    }
}
