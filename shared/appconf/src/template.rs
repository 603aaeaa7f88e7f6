//! `{{ Global.X }}` templates in the strings of parameter values, workloads and traits.
//!
//! Only references to globals are understood (`{{ Global.X }}`, spaces optional), which is all
//! SREWorks' own packages and launch files use in the parts the executor deploys. Anything else
//! between `{{` and `}}` (filters, other variables) is reported, never left in an object.
//!
//! A string is rendered as text, as Jinja does: numbers and booleans become their text. A string
//! that is exactly one reference to a list or mapping is replaced by that value (text could not
//! hold it); such a value inside longer text is an error.

use std::fmt;

use serde_json::Value;

/// What a lookup of a global gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lookup {
    Found(Value),
    /// No such global.
    Undefined,
    /// Defined, but its own value could not be rendered; that was reported already.
    Failed,
}

/// One problem found while rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// What was referenced (`Global.X`), or the expression as written.
    pub reference: String,
    /// Where: `workload spec.env.X`, `trait 'gateway.trait.abm.io' spec.serviceName`…
    pub at: String,
    pub kind: ProblemKind,
}

/// Why a reference could not be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// No parameter value or built-in of that name.
    Undefined,
    /// The value refers back to itself through other globals.
    Cycle,
    /// A list or mapping inside longer text.
    NotText,
    /// Not `Global.X` (a filter, another variable…).
    Unsupported,
    /// `{{` without `}}`.
    Unterminated,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Undefined => "undefined",
            ProblemKind::Cycle => "defined in terms of itself",
            ProblemKind::NotText => "a list or mapping cannot be part of text",
            ProblemKind::Unsupported => "only {{ Global.NAME }} is supported",
            ProblemKind::Unterminated => "'{{' without '}}'",
        })
    }
}

/// A piece of a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    /// `{{ Global.NAME }}`: the NAME.
    Global(&'a str),
    /// Any other `{{ … }}`: the expression, trimmed.
    Other(&'a str),
    /// `{{` and the rest of the string.
    Unterminated(&'a str),
}

/// Splits `s` into text and template pieces.
pub(crate) fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push(Piece::Unterminated(&rest[start..]));
            return out;
        };
        let expr = after[..end].trim();
        match expr.strip_prefix("Global.") {
            Some(name) if is_name(name) => out.push(Piece::Global(name)),
            _ => out.push(Piece::Other(expr)),
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// Parameter names: letters, digits, `_` and `-`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Renders every string inside `v` (mapping keys are left alone). `at` names where `v` is; the
/// paths of nested strings are appended to it.
pub(crate) fn render(
    v: &Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Lookup,
    problems: &mut Vec<TemplateProblem>,
) -> Value {
    match v {
        Value::String(s) => render_str(s, at, lookup, problems),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| render(x, &format!("{at}[{i}]"), lookup, problems))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let sep = if at.is_empty() || at.ends_with(' ') { "" } else { "." };
                    (k.clone(), render(x, &format!("{at}{sep}{k}"), lookup, problems))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn render_str(
    s: &str,
    at: &str,
    lookup: &dyn Fn(&str) -> Lookup,
    problems: &mut Vec<TemplateProblem>,
) -> Value {
    let parts = pieces(s);
    let mut problem =
        |reference: String, kind| problems.push(TemplateProblem { reference, at: at.to_owned(), kind });
    if let [Piece::Global(name)] = parts.as_slice() {
        return match lookup(name) {
            Lookup::Found(v @ (Value::Array(_) | Value::Object(_))) => v,
            Lookup::Found(v) => Value::String(text(&v)),
            Lookup::Undefined => {
                problem(format!("Global.{name}"), ProblemKind::Undefined);
                Value::String(s.to_owned())
            }
            Lookup::Failed => Value::String(s.to_owned()),
        };
    }
    let mut out = String::with_capacity(s.len());
    for p in parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Global(name) => match lookup(name) {
                Lookup::Found(v @ (Value::Array(_) | Value::Object(_))) => {
                    problem(format!("Global.{name}"), ProblemKind::NotText);
                    out.push_str(&v.to_string());
                }
                Lookup::Found(v) => out.push_str(&text(&v)),
                Lookup::Undefined => problem(format!("Global.{name}"), ProblemKind::Undefined),
                Lookup::Failed => {}
            },
            Piece::Other(expr) => problem(expr.to_owned(), ProblemKind::Unsupported),
            Piece::Unterminated(rest) => problem(rest.to_owned(), ProblemKind::Unterminated),
        }
    }
    Value::String(out)
}

/// A scalar as Jinja prints it (null as empty text).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn globals(name: &str) -> Lookup {
        match name {
            "STAGE_ID" => Lookup::Found(json!("prod")),
            "PORT" => Lookup::Found(json!(3306)),
            "ON" => Lookup::Found(json!(true)),
            "LIST" => Lookup::Found(json!(["a", "b"])),
            "BROKEN" => Lookup::Failed,
            _ => Lookup::Undefined,
        }
    }

    fn run(v: Value) -> (Value, Vec<TemplateProblem>) {
        let mut p = Vec::new();
        let out = render(&v, "workload ", &globals, &mut p);
        (out, p)
    }

    #[test]
    fn splits_text_and_references() {
        assert_eq!(
            pieces("{{Global.A}}-x-{{ Global.B_2 }}{{ options.c }}"),
            vec![Piece::Global("A"), Piece::Text("-x-"), Piece::Global("B_2"), Piece::Other("options.c")]
        );
        assert_eq!(pieces("plain"), vec![Piece::Text("plain")]);
        assert_eq!(pieces("a {{ Global.X"), vec![Piece::Text("a "), Piece::Unterminated("{{ Global.X")]);
        assert_eq!(pieces("{{ Global.X | default('y') }}"), vec![Piece::Other("Global.X | default('y')")]);
    }

    #[test]
    fn both_spacings_render_and_scalars_become_text() {
        let (out, p) = run(json!({
            "host": "{{Global.STAGE_ID}}-dataops-mysql",
            "svc": "{{ Global.STAGE_ID }}-health-health",
            "port": "{{ Global.PORT }}",
            "flag": "{{ Global.ON }}",
            "keys": "{{ Global.LIST }}",
            "n": 3,
        }));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            out,
            json!({
                "host": "prod-dataops-mysql",
                "svc": "prod-health-health",
                "port": "3306",
                "flag": "true",
                "keys": ["a", "b"],
                "n": 3,
            })
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_place() {
        let (_, p) = run(json!({
            "env": { "A": "{{ Global.NOPE }}", "B": "x{{ Global.NOPE }}y" },
            "list": ["{{ Global.LIST }}-suffix"],
            "c": "{{ options.appId }}",
            "d": "{{ Global.BROKEN }}",
            "e": "{{ Global.X",
        }));
        // serde_json keeps insertion order in this workspace (`preserve_order`).
        let got: Vec<(String, String, ProblemKind)> =
            p.into_iter().map(|p| (p.reference, p.at, p.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("Global.NOPE".into(), "workload env.A".into(), ProblemKind::Undefined),
                ("Global.NOPE".into(), "workload env.B".into(), ProblemKind::Undefined),
                ("Global.LIST".into(), "workload list[0]".into(), ProblemKind::NotText),
                ("options.appId".into(), "workload c".into(), ProblemKind::Unsupported),
                ("{{ Global.X".into(), "workload e".into(), ProblemKind::Unterminated),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn text_without_braces_is_unchanged(s in "[^{}]{0,60}") {
            let (out, p) = run(Value::String(s.clone()));
            proptest::prop_assert!(p.is_empty());
            proptest::prop_assert_eq!(out, Value::String(s));
        }

        #[test]
        fn pieces_never_panic(s in "\\PC{0,60}") {
            let _ = pieces(&s);
        }
    }
}
