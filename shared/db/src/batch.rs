//! Several writes in one round trip.
//!
//! A prepared statement holds one statement, so a transaction that writes to four tables pays four
//! round trips for them, each a sleep and a wake-up on both sides; under load the wake-ups are what
//! costs. A [`Batch`] collects ordinary statements (`?` placeholders and their values, as for
//! [`ConnectionTrait::execute`]) and sends them as one multi-statement text query, every value
//! written as a literal that cannot be anything but a value:
//!
//! - strings as hexadecimal utf8mb4 literals (`_utf8mb4 X'68C3A9'`): no quoting or escaping rule
//!   is involved, so no value can end its literal;
//! - integers and floats in Rust's decimal form, booleans as 0/1, times as quoted ISO digits,
//!   `NULL` for none;
//! - any other kind of value is refused (nothing is sent).
//!
//! The server runs the statements in order and stops at the first that fails; the error is the
//! batch's. Run a batch inside a transaction so that a failure leaves nothing half-written.
//!
//! What a batch reports is the sum of the rows its statements matched (the connections report
//! matched rows, not changed ones). For compare-and-swap updates, whose guards each match at most
//! their own rows by primary key, that sum equals the number of rows guarded exactly when every
//! guard held: put such updates in a batch of their own.

use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// Statements to run in one round trip (see the module).
#[derive(Debug, Default)]
pub struct Batch {
    sql: String,
    statements: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `stmt`, its placeholders replaced by its values as literals. Refused (the batch
    /// unchanged) when a value has a kind a batch does not write, or the placeholders and values
    /// do not pair up.
    pub fn push(&mut self, stmt: &Statement) -> Result<(), DbErr> {
        let values: &[Value] = stmt.values.as_ref().map_or(&[], |v| v.0.as_slice());
        let rendered = render(&stmt.sql, values)?;
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(&rendered);
        self.statements += 1;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// How many statements are in the batch.
    pub fn len(&self) -> usize {
        self.statements
    }

    /// Runs the statements through `conn` in one round trip; the rows they matched, summed. An
    /// empty batch sends nothing.
    pub async fn execute<C: ConnectionTrait>(self, conn: &C) -> Result<u64, DbErr> {
        if self.statements == 0 {
            return Ok(0);
        }
        Ok(conn.execute_unprepared(&self.sql).await?.rows_affected())
    }

    /// The SQL the batch sends (for tests and debugging; it holds the values).
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// `sql` with each placeholder outside quotes replaced by the literal of the next value.
fn render(sql: &str, values: &[Value]) -> Result<String, DbErr> {
    let mut out = String::with_capacity(sql.len() + values.len() * 16);
    let mut next = values.iter();
    let mut quote: Option<char> = None;
    for ch in sql.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if matches!(ch, '\'' | '"' | '`') => quote = Some(ch),
            None if ch == ';' => return Err(refused("a statement of a batch holds one statement")),
            None if ch == '?' => {
                let v = next.next().ok_or_else(|| refused("more placeholders than values"))?;
                literal(&mut out, v)?;
                continue;
            }
            None => {}
        }
        out.push(ch);
    }
    if quote.is_some() {
        return Err(refused("an unterminated quote"));
    }
    if next.next().is_some() {
        return Err(refused("more values than placeholders"));
    }
    Ok(out)
}

fn refused(why: &str) -> DbErr {
    DbErr::Custom(format!("statement not batched: {why}"))
}

/// Writes the SQL literal of `v`.
fn literal(out: &mut String, v: &Value) -> Result<(), DbErr> {
    use std::fmt::Write as _;
    macro_rules! number {
        ($n:expr) => {
            match $n {
                Some(n) => write!(out, "{n}"),
                None => write!(out, "NULL"),
            }
        };
    }
    let written = match v {
        Value::Bool(b) => number!(b.map(u8::from)),
        Value::TinyInt(n) => number!(n),
        Value::SmallInt(n) => number!(n),
        Value::Int(n) => number!(n),
        Value::BigInt(n) => number!(n),
        Value::TinyUnsigned(n) => number!(n),
        Value::SmallUnsigned(n) => number!(n),
        Value::Unsigned(n) => number!(n),
        Value::BigUnsigned(n) => number!(n),
        Value::Float(Some(f)) if !f.is_finite() => return Err(refused("a float that is not finite")),
        Value::Double(Some(f)) if !f.is_finite() => return Err(refused("a float that is not finite")),
        Value::Float(n) => number!(n),
        Value::Double(n) => number!(n),
        Value::String(s) => {
            text(out, s.as_deref().map(String::as_bytes));
            Ok(())
        }
        Value::Char(c) => {
            let mut buf = [0u8; 4];
            text(out, c.map(|c| c.encode_utf8(&mut buf).as_bytes()));
            Ok(())
        }
        Value::Json(j) => {
            let s = j.as_deref().map(|j| j.to_string());
            text(out, s.as_deref().map(str::as_bytes));
            Ok(())
        }
        Value::ChronoDateTimeUtc(t) => match t {
            Some(t) => write!(out, "'{}'", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")),
            None => write!(out, "NULL"),
        },
        Value::ChronoDateTime(t) => match t {
            Some(t) => write!(out, "'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")),
            None => write!(out, "NULL"),
        },
        other => return Err(refused(&format!("a value of a kind batches do not write ({other:?})"))),
    };
    written.map_err(|e| refused(&e.to_string()))
}

/// A string as a hexadecimal utf8mb4 literal (`_utf8mb4 X''` for the empty string), or `NULL`.
fn text(out: &mut String, bytes: Option<&[u8]>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let Some(bytes) = bytes else {
        out.push_str("NULL");
        return;
    };
    out.reserve(bytes.len() * 2 + 12);
    out.push_str("_utf8mb4 X'");
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Statement, Value};

    use super::Batch;

    fn st(sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::MySql, sql, values)
    }

    #[test]
    fn values_become_literals_that_cannot_end_early() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:43:06.123456Z").unwrap().to_utc();
        let mut b = Batch::new();
        b.push(&st(
            "UPDATE t SET a = ?, b = ?, c = ?, d = ?, e = ? WHERE id = ? AND f = ?",
            vec![
                "it's '; DROP TABLE t; --\\".into(),
                Value::String(None),
                at.into(),
                true.into(),
                (-7i64).into(),
                42u64.into(),
                "é".into(),
            ],
        ))
        .unwrap();
        b.push(&st("DELETE FROM t WHERE id = ?", vec![1i32.into()])).unwrap();
        let hex: String = "it's '; DROP TABLE t; --\\".bytes().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            b.sql(),
            format!(
                "UPDATE t SET a = _utf8mb4 X'{hex}', b = NULL, c = '2026-11-27 10:43:06.123456', d = 1, \
                 e = -7 WHERE id = 42 AND f = _utf8mb4 X'C3A9';\nDELETE FROM t WHERE id = 1"
            )
        );
        assert_eq!(b.len(), 2);
        assert_eq!(b.sql().matches(';').count(), 1, "only the separator: no value brings its own");
    }

    #[test]
    fn placeholders_inside_quotes_are_text_and_mismatches_are_refused() {
        let mut b = Batch::new();
        b.push(&st("SELECT '?', `a?`, ? FROM t", vec![3i32.into()])).unwrap();
        assert_eq!(b.sql(), "SELECT '?', `a?`, 3 FROM t");
        for (sql, values) in [
            ("SELECT ?, ?", vec![Value::from(1i32)]),
            ("SELECT ?", vec![Value::from(1i32), Value::from(2i32)]),
            ("SELECT 1; SELECT ?", vec![Value::from(1i32)]),
            ("SELECT 'open", vec![]),
            ("SELECT ?", vec![Value::Double(Some(f64::NAN))]),
            ("SELECT ?", vec![Value::Bytes(Some(Box::new(vec![1])))]),
        ] {
            let err = b.push(&st(sql, values)).expect_err(sql).to_string();
            assert!(err.contains("statement not batched"), "{sql}: {err}");
        }
        assert_eq!(b.len(), 1, "a refused statement leaves the batch as it was");
        assert_eq!(b.sql(), "SELECT '?', `a?`, 3 FROM t");
    }
}
