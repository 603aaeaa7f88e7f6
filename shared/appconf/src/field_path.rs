//! `toFieldPaths`: where in a component's workload a parameter value goes — `spec.replicas`,
//! `spec.env.DB_HOST`, `spec.containers[0].image`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Why a value could not be set at a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldPathError(String);

fn parse(path: &str) -> Result<Vec<Segment>, FieldPathError> {
    let bad = |why: &str| FieldPathError(format!("'{path}' {why}"));
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(bad("has an empty key"));
        }
        out.push(Segment::Key(key.to_owned()));
        while !rest.is_empty() {
            let Some(end) = rest.find(']').filter(|_| rest.starts_with('[')) else {
                return Err(bad("has a malformed [index]"));
            };
            let idx = rest[1..end].parse::<usize>().map_err(|_| bad("has an index that is not a number"))?;
            out.push(Segment::Index(idx));
            rest = &rest[end + 1..];
        }
    }
    Ok(out)
}

/// Sets `value` at `path` in `root`, creating missing mappings on the way. A list index must
/// exist; a path through a string, number or list-as-mapping is an error.
pub fn set(root: &mut Value, path: &str, value: Value) -> Result<(), FieldPathError> {
    let segments = parse(path)?;
    let mut cur = root;
    let mut walked = String::new();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match seg {
            Segment::Key(k) => {
                if cur.is_null() {
                    *cur = Value::Object(Map::new());
                }
                let Value::Object(m) = cur else {
                    return Err(FieldPathError(format!("'{path}': '{walked}' is not a mapping")));
                };
                if last {
                    m.insert(k.clone(), value);
                    return Ok(());
                }
                cur = m.entry(k.clone()).or_insert(Value::Null);
                walked = if walked.is_empty() { k.clone() } else { format!("{walked}.{k}") };
            }
            Segment::Index(n) => {
                let Value::Array(items) = cur else {
                    return Err(FieldPathError(format!("'{path}': '{walked}' is not a list")));
                };
                let len = items.len();
                let Some(slot) = items.get_mut(*n) else {
                    return Err(FieldPathError(format!("'{path}': '{walked}' has {len} items, no [{n}]")));
                };
                if last {
                    *slot = value;
                    return Ok(());
                }
                cur = slot;
                walked = format!("{walked}[{n}]");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sets_keys_and_indexes_creating_mappings() {
        let mut w = json!({ "spec": { "replicas": 3, "containers": [{ "name": "a", "image": "x" }] } });
        set(&mut w, "spec.replicas", json!(1)).unwrap();
        set(&mut w, "spec.env.DB_HOST", json!("db")).unwrap();
        set(&mut w, "spec.containers[0].image", json!("y")).unwrap();
        set(&mut w, "spec.keys", json!(["A", "B"])).unwrap();
        assert_eq!(
            w,
            json!({ "spec": {
                "replicas": 1,
                "containers": [{ "name": "a", "image": "y" }],
                "env": { "DB_HOST": "db" },
                "keys": ["A", "B"],
            } })
        );
    }

    #[test]
    fn refuses_what_it_cannot_set() {
        let mut w = json!({ "spec": { "kind": "Deployment", "containers": [] } });
        let err = |w: &mut Value, p: &str| set(w, p, json!(1)).unwrap_err().to_string();
        assert!(err(&mut w, "spec.kind.x").contains("'spec.kind' is not a mapping"));
        assert!(err(&mut w, "spec.containers[0].image").contains("has 0 items"));
        assert!(err(&mut w, "spec..x").contains("empty key"));
        assert!(err(&mut w, "spec.containers[a]").contains("not a number"));
        assert!(err(&mut w, "spec.containers[0").contains("malformed"));
        assert!(err(&mut w, "spec.kind[0]").contains("'spec.kind' is not a list"));
        assert_eq!(w, json!({ "spec": { "kind": "Deployment", "containers": [] } }));
    }
}
