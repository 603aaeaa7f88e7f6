//! Typed reads from an object as the API server returns it.
//!
//! Argo CD converts the unstructured object into the typed Kubernetes struct before judging it, so
//! a field of the wrong type makes the whole assessment `Unknown` instead of being read as zero.
//! These readers keep that property without a typed model of every kind: an absent or `null`
//! field is `None` (the API server omits zero values), a field of the wrong JSON type is an error
//! naming its path.

use serde_json::{Map, Value};

/// A field that is present but not of the type Kubernetes gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expected {expected}, found {found}")]
pub(crate) struct FieldError {
    path: String,
    expected: &'static str,
    found: &'static str,
}

/// A JSON object being read, with the path it was reached by (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
}

impl<'a> Fields<'a> {
    /// The root of an object. `root` must be a JSON object; anything else reads as empty.
    pub(crate) fn root(root: &'a Value) -> Self {
        Self { map: root.as_object(), path: String::new() }
    }

    /// The sub-object at `key`; absent or `null` reads as an empty object.
    pub(crate) fn object(&self, key: &str) -> Result<Fields<'a>, FieldError> {
        match self.raw(key) {
            None => Ok(Self { map: None, path: self.child(key) }),
            Some(Value::Object(map)) => Ok(Self { map: Some(map), path: self.child(key) }),
            Some(other) => Err(self.mismatch(key, "an object", other)),
        }
    }

    /// Follows `keys` through nested objects.
    pub(crate) fn at(&self, keys: &[&str]) -> Result<Fields<'a>, FieldError> {
        keys.iter().try_fold(self.clone(), |fields, key| fields.object(key))
    }

    /// Whether this object was present (an empty object counts, absent or `null` does not).
    pub(crate) fn is_present(&self) -> bool {
        self.map.is_some()
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| self.mismatch(key, "an integer", v)),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.mismatch(key, "a string", other)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.mismatch(key, "a boolean", other)),
        }
    }

    /// The array at `key`; absent or `null` reads as empty.
    pub(crate) fn array(&self, key: &str) -> Result<&'a [Value], FieldError> {
        match self.raw(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.mismatch(key, "an array", other)),
        }
    }

    /// The objects of the array at `key`, each readable with its index in the path.
    pub(crate) fn objects(&self, key: &str) -> Result<Vec<Fields<'a>>, FieldError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Fields { map: Some(map), path: self.child(&format!("{key}[{i}]")) }),
                other => Err(self.mismatch(&format!("{key}[{i}]"), "an object", other)),
            })
            .collect()
    }

    /// `status.conditions` (or any list of conditions) read into [`Condition`]s.
    pub(crate) fn conditions(&self) -> Result<Vec<Condition<'a>>, FieldError> {
        self.objects("conditions")?.iter().map(Condition::read).collect()
    }

    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn mismatch(&self, key: &str, expected: &'static str, found: &Value) -> FieldError {
        FieldError { path: self.child(key), expected, found: json_type(found) }
    }
}

/// One entry of a `conditions` list; absent strings read as empty, as in the typed API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Condition<'a> {
    pub(crate) kind: &'a str,
    pub(crate) status: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) message: &'a str,
}

impl<'a> Condition<'a> {
    fn read(fields: &Fields<'a>) -> Result<Self, FieldError> {
        Ok(Self {
            kind: fields.str("type")?.unwrap_or_default(),
            status: fields.str("status")?.unwrap_or_default(),
            reason: fields.str("reason")?.unwrap_or_default(),
            message: fields.str("message")?.unwrap_or_default(),
        })
    }

    pub(crate) fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The first condition of type `kind`.
pub(crate) fn find<'c, 'a>(conditions: &'c [Condition<'a>], kind: &str) -> Option<&'c Condition<'a>> {
    conditions.iter().find(|c| c.kind == kind)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
