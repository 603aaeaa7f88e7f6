//! Reading loosely typed specs (`serde_json::Value`) field by field while collecting problems.
//!
//! Specs come from launch YAML after templating, so numbers often arrive as strings (`'3306'`); the
//! readers accept a numeric string wherever a number is expected and report everything else with
//! the field's path.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{Part, Problem};

/// Problems found so far.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, at: &At, message: impl Into<String>) {
        self.0.push(Problem { part: at.part.clone(), field: at.path.clone(), message: message.into() });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// A field's location: the part of the command and the path inside it.
#[derive(Debug, Clone)]
pub(super) struct At {
    part: Part,
    path: String,
}

impl At {
    pub(super) fn new(part: Part, path: &str) -> Self {
        At { part, path: path.to_owned() }
    }

    pub(super) fn key(&self, key: &str) -> At {
        let path = if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) };
        At { part: self.part.clone(), path }
    }

    /// The part as a whole (no field).
    pub(super) fn whole(&self) -> At {
        At { part: self.part.clone(), path: String::new() }
    }

    pub(super) fn index(&self, i: usize) -> At {
        At { part: self.part.clone(), path: format!("{}[{i}]", self.path) }
    }
}

/// An object whose fields are read with their paths.
#[derive(Clone, Copy)]
pub(super) struct Obj<'v, 'a> {
    pub(super) map: &'v Map<String, Value>,
    pub(super) at: &'a At,
}

impl<'v> Obj<'v, '_> {
    pub(super) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Reports every key not in `accepted`.
    pub(super) fn only(&self, p: &mut Problems, accepted: &[&str]) {
        for key in self.map.keys() {
            if !accepted.contains(&key.as_str()) {
                p.add(&self.at.key(key), format!("unknown field (accepted: {})", accepted.join(", ")));
            }
        }
    }

    pub(super) fn required(&self, p: &mut Problems, key: &str) -> Option<&'v Value> {
        let v = self.get(key);
        if v.is_none() {
            p.add(&self.at.key(key), "is required");
        }
        v
    }

    pub(super) fn string(&self, p: &mut Problems, key: &str) -> Option<String> {
        self.get(key).and_then(|v| string(p, &self.at.key(key), v))
    }

    pub(super) fn uint(&self, p: &mut Problems, key: &str, max: u64) -> Option<u64> {
        self.get(key).and_then(|v| uint(p, &self.at.key(key), v, max))
    }

    pub(super) fn boolean(&self, p: &mut Problems, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            _ => {
                p.add(&self.at.key(key), "must be true or false");
                None
            }
        }
    }

    pub(super) fn array(&self, p: &mut Problems, key: &str) -> Option<&'v Vec<Value>> {
        let v = self.get(key)?;
        let a = v.as_array();
        if a.is_none() {
            p.add(&self.at.key(key), "must be a list");
        }
        a
    }

    pub(super) fn object(&self, p: &mut Problems, key: &str) -> Option<&'v Map<String, Value>> {
        self.get(key).and_then(|v| object(p, &self.at.key(key), v))
    }
}

pub(super) fn object<'v>(p: &mut Problems, at: &At, v: &'v Value) -> Option<&'v Map<String, Value>> {
    let o = v.as_object();
    if o.is_none() {
        p.add(at, "must be an object");
    }
    o
}

pub(super) fn string(p: &mut Problems, at: &At, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            p.add(at, "must be a string");
            None
        }
    }
}

/// A string, number or boolean as text (env values, ConfigMap data, selector values).
pub(super) fn scalar(p: &mut Problems, at: &At, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            p.add(at, "must be a string, number or boolean");
            None
        }
    }
}

/// A non-negative integer up to `max`, given as a number or a numeric string.
pub(super) fn uint(p: &mut Problems, at: &At, v: &Value, max: u64) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= max => Some(n),
        _ => {
            p.add(at, format!("must be a whole number from 0 to {max}"));
            None
        }
    }
}

/// A TCP/UDP port number, 1–65535.
pub(super) fn port(p: &mut Problems, at: &At, v: &Value) -> Option<u16> {
    match uint(&mut Problems::default(), at, v, u64::from(u16::MAX)) {
        Some(n) if n >= 1 => u16::try_from(n).ok(),
        _ => {
            p.add(at, "must be a port number from 1 to 65535");
            None
        }
    }
}

/// A port given by number or by name (`targetPort`, `servicePort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PortRef {
    Number(u16),
    Name(String),
}

impl PortRef {
    pub(super) fn to_value(&self) -> Value {
        match self {
            PortRef::Number(n) => Value::from(*n),
            PortRef::Name(s) => Value::from(s.as_str()),
        }
    }
}

pub(super) fn port_ref(p: &mut Problems, at: &At, v: &Value) -> Option<PortRef> {
    let is_number = v.is_number() || v.as_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
    if is_number {
        return port(p, at, v).map(PortRef::Number);
    }
    match v.as_str() {
        Some(s) if super::names::is_port_name(s) => Some(PortRef::Name(s.to_owned())),
        _ => {
            p.add(at, "must be a port number from 1 to 65535 or a port name");
            None
        }
    }
}

/// A list of strings (`command`, `args`).
pub(super) fn strings(p: &mut Problems, at: &At, v: &Value) -> Option<Vec<String>> {
    let Some(items) = v.as_array() else {
        p.add(at, "must be a list of strings");
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // Templating turns `- 8080` into a number; the container runtime wants text.
        out.push(scalar(p, &at.index(i), item)?);
    }
    Some(out)
}

/// A map of scalars as text, sorted by key (env maps, ConfigMap data, label maps).
pub(super) fn scalar_map(p: &mut Problems, at: &At, v: &Value) -> Option<BTreeMap<String, String>> {
    let m = object(p, at, v)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in m {
        match scalar(p, &at.key(k), v) {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A label map: valid keys and values, sorted by key.
pub(super) fn label_map(p: &mut Problems, at: &At, v: &Value) -> Option<BTreeMap<String, String>> {
    let m = scalar_map(p, at, v)?;
    let mut ok = true;
    for (k, v) in &m {
        if !super::names::is_label_key(k) {
            p.add(&at.key(k), "is not a valid label key");
            ok = false;
        } else if !super::names::is_label_value(v) {
            p.add(&at.key(k), "is not a valid label value (at most 63 of [A-Za-z0-9._-], alphanumeric ends)");
            ok = false;
        }
    }
    ok.then_some(m)
}

/// An annotation map: valid keys, any text values, sorted by key.
pub(super) fn annotation_map(p: &mut Problems, at: &At, v: &Value) -> Option<BTreeMap<String, String>> {
    let m = scalar_map(p, at, v)?;
    let mut ok = true;
    for k in m.keys() {
        if !super::names::is_label_key(k) {
            p.add(&at.key(k), "is not a valid annotation key");
            ok = false;
        }
    }
    ok.then_some(m)
}

/// A resource quantity (`500m`, `1.5`, `2Gi`, `1e3`) as Kubernetes parses it, as text.
pub(super) fn quantity(p: &mut Problems, at: &At, v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if is_quantity(&s) {
        Some(s)
    } else {
        p.add(at, "must be a quantity such as 500m, 1, 256Mi or 2Gi");
        None
    }
}

fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["1", "0.5", "500m", "2Gi", "1e3", "128974848", "+1", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1.2.3", "1GB", "abc", "1e", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn numbers_may_be_strings_but_must_fit() {
        let at = At::new(Part::Workload, "replicas");
        let mut p = Problems::default();
        assert_eq!(uint(&mut p, &at, &Value::from("3"), 10), Some(3));
        assert_eq!(uint(&mut p, &at, &Value::from(11), 10), None);
        assert_eq!(port(&mut p, &at, &Value::from(0)), None);
        assert_eq!(port_ref(&mut p, &at, &Value::from("http")), Some(PortRef::Name("http".into())));
        assert_eq!(port_ref(&mut p, &at, &Value::from("7001")), Some(PortRef::Number(7001)));
        let problems = p.into_vec();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].to_string(), "workload: replicas: must be a whole number from 0 to 10");
    }
}
