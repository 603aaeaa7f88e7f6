//! Jinja templates (`{{ Global.X }}`, `{{ Global.X | default('y') | upper }}`) in the strings of
//! parameter values, workloads and traits, rendered with [minijinja].
//!
//! Each string is a template rendered against a context whose `Global` is a map of the globals it
//! references (the caller's lookup gives them: built-ins and parameter values), with
//! [`UndefinedBehavior::Strict`] so nothing undefined is silently empty. Before rendering, the
//! variables a template references are collected ([`Template::undeclared_variables`]) and looked
//! up, so every unresolved reference of a string is reported at once, not the first only:
//! - `Global.X` that no global defines is [`ProblemKind::Undefined`], unless the template copes
//!   with it (`default`, `is defined`) and renders anyway;
//! - any other variable (`{{ options.appId }}`) is a variable Jinja would look up too, and this
//!   context has none but `Global`: [`ProblemKind::Undefined`] as well;
//! - `Global` on its own (`{{ Global[name] }}`, a loop over it) cannot be checked before
//!   rendering: [`ProblemKind::Unsupported`];
//! - a template that does not parse is [`ProblemKind::Syntax`], with minijinja's message.
//!
//! A string is rendered as text, as Jinja does: numbers and booleans become their text, `none`
//! empty text. A string that is exactly one expression (`{{ Global.X }}`, spaces inside allowed)
//! whose value is a list or mapping is replaced by that value (text could not hold it); a list or
//! mapping printed inside longer text is [`ProblemKind::NotText`] (`| tojson` makes it text).
//!
//! Templates come from launch files and packages, so the environment is safe for untrusted
//! input: no loader and no templates (`include`, `import`, `extends` find nothing), no
//! auto-escaping, and a fuel limit so a hostile loop ends with an error.

use std::collections::BTreeMap;
use std::fmt;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Template, UndefinedBehavior};
use serde_json::Value;

/// Instructions one string may execute. SREWorks' templates take a handful; a loop over a large
/// range runs out.
const FUEL: u64 = 50_000;

/// The error detail of the formatter refusing a list or mapping inside text.
const NOT_TEXT: &str = "a list or mapping cannot be part of text";

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
    /// What was referenced (`Global.X`, `options.x`); for a template that does not parse or
    /// fails while rendering, minijinja's message.
    pub reference: String,
    /// Where: `workload spec.env.X`, `trait 'gateway.trait.abm.io' spec.serviceName`…
    pub at: String,
    pub kind: ProblemKind,
}

/// Why a reference could not be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// No parameter value or built-in of that name (or a variable other than `Global`).
    Undefined,
    /// The value refers back to itself through other globals.
    Cycle,
    /// A list or mapping inside longer text.
    NotText,
    /// `Global` used as a whole (`Global[name]`): what it refers to cannot be checked.
    Unsupported,
    /// Not a valid Jinja template (`{{` without `}}`…).
    Syntax,
    /// Rendering failed: a filter refused its input, the fuel ran out…
    Render,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Undefined => "undefined",
            ProblemKind::Cycle => "defined in terms of itself",
            ProblemKind::NotText => NOT_TEXT,
            ProblemKind::Unsupported => "only Global.NAME references are supported",
            ProblemKind::Syntax => "not a valid template",
            ProblemKind::Render => "rendering failed",
        })
    }
}

/// The environment every string is rendered in: builtin filters and tests, no loader, strict
/// undefined, fuel-limited.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Seq | ValueKind::Map => Err(Error::new(ErrorKind::InvalidOperation, NOT_TEXT)),
        ValueKind::None => Ok(()),
        // `true`, not Python's `True`: what YAML, Kubernetes and SREWorks' own (Jinjava) renderer
        // write.
        ValueKind::Bool => out.write_str(if value.is_true() { "true" } else { "false" }).map_err(Error::from),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env
}

/// Renders every string inside `v` (mapping keys are left alone). `at` names where `v` is; the
/// paths of nested strings are appended to it.
pub(crate) fn render(
    v: &Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Lookup,
    problems: &mut Vec<TemplateProblem>,
) -> Value {
    render_in(&environment(), v, at, lookup, problems)
}

fn render_in(
    env: &Environment<'static>,
    v: &Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Lookup,
    problems: &mut Vec<TemplateProblem>,
) -> Value {
    match v {
        Value::String(s) => render_str(env, s, at, lookup, problems),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| render_in(env, x, &format!("{at}[{i}]"), lookup, problems))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let sep = if at.is_empty() || at.ends_with(' ') { "" } else { "." };
                    (k.clone(), render_in(env, x, &format!("{at}{sep}{k}"), lookup, problems))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The expression of a string that is exactly `{{ expression }}`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    let nested = ["{{", "}}", "{%", "%}", "{#"].iter().any(|d| inner.contains(d));
    (!nested && !inner.starts_with('-') && !inner.ends_with('-')).then(|| inner.trim())
}

/// What a template references, looked up.
struct Context {
    /// The `Global` map: the referenced globals that are defined.
    globals: BTreeMap<String, Value>,
    /// References nothing defines, in name order.
    undefined: Vec<String>,
    /// A referenced global failed (its problems are reported already), or `Global` is used in a
    /// way that cannot be checked (reported here): the string is not rendered.
    failed: bool,
}

/// Looks up every variable `tmpl` references, before rendering, so all problems are known at once.
fn context(
    env: &Environment<'static>,
    tmpl: &Template<'_, '_>,
    lookup: &dyn Fn(&str) -> Lookup,
    problem: &mut dyn FnMut(String, ProblemKind),
) -> Context {
    let mut names: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    names.sort();
    let mut cx = Context { globals: BTreeMap::new(), undefined: Vec::new(), failed: false };
    for name in names {
        let (root, rest) = name.split_once('.').unwrap_or((&name, ""));
        if root != "Global" {
            // `range`, `dict`, `namespace`… are the environment's own.
            if !env.globals().any(|(g, _)| g == root) {
                cx.undefined.push(name.clone());
            }
            continue;
        }
        let key = rest.split('.').next().unwrap_or_default();
        if key.is_empty() {
            problem(name.clone(), ProblemKind::Unsupported);
            cx.failed = true;
            continue;
        }
        if cx.globals.contains_key(key) || cx.undefined.iter().any(|u| *u == format!("Global.{key}")) {
            continue;
        }
        match lookup(key) {
            Lookup::Found(v) => {
                cx.globals.insert(key.to_owned(), v);
            }
            Lookup::Undefined => cx.undefined.push(format!("Global.{key}")),
            Lookup::Failed => cx.failed = true,
        }
    }
    cx
}

/// Renders one string: checks its references, then evaluates it (keeping a list or mapping that
/// is the whole string) or renders it as text.
fn render_str(
    env: &Environment<'static>,
    s: &str,
    at: &str,
    lookup: &dyn Fn(&str) -> Lookup,
    problems: &mut Vec<TemplateProblem>,
) -> Value {
    if !["{{", "{%", "{#"].iter().any(|d| s.contains(d)) {
        return Value::String(s.to_owned());
    }
    let unchanged = || Value::String(s.to_owned());
    let mut problem =
        |reference: String, kind| problems.push(TemplateProblem { reference, at: at.to_owned(), kind });
    let tmpl = match env.template_from_str(s) {
        Ok(t) => t,
        Err(e) => {
            problem(e.to_string(), ProblemKind::Syntax);
            return unchanged();
        }
    };
    let cx = context(env, &tmpl, lookup, &mut problem);
    if cx.failed {
        // Undefined references are still worth reporting together with the other problems.
        for name in cx.undefined {
            problem(name, ProblemKind::Undefined);
        }
        return unchanged();
    }
    let vars = minijinja::context! { Global => minijinja::Value::from(minijinja::value::Serde(&cx.globals)) };
    if let Some(expr) = single_expression(s)
        && let Ok(compiled) = env.compile_expression(expr)
        && let Ok(v) = compiled.eval(vars.clone())
        && matches!(v.kind(), ValueKind::Seq | ValueKind::Map)
    {
        match serde_json::to_value(&v) {
            Ok(structure) => return structure,
            Err(e) => {
                problem(format!("{expr}: {e}"), ProblemKind::Render);
                return unchanged();
            }
        }
    }
    let e = match tmpl.render(vars) {
        Ok(text) => return Value::String(text),
        Err(e) => e,
    };
    // The references nothing defines are why it failed, or at least worth knowing along with it.
    let undefined_only = !cx.undefined.is_empty() && e.kind() == ErrorKind::UndefinedError;
    for name in cx.undefined {
        problem(name, ProblemKind::Undefined);
    }
    if undefined_only {
        return unchanged();
    }
    if e.kind() == ErrorKind::InvalidOperation && e.detail() == Some(NOT_TEXT) {
        // The formatter does not know the expression: name the referenced lists and mappings.
        let lists: Vec<&String> = cx
            .globals
            .iter()
            .filter(|(_, v)| matches!(v, Value::Array(_) | Value::Object(_)))
            .map(|(k, _)| k)
            .collect();
        if lists.is_empty() {
            problem(s.to_owned(), ProblemKind::NotText);
        }
        for name in lists {
            problem(format!("Global.{name}"), ProblemKind::NotText);
        }
    } else {
        problem(e.to_string(), ProblemKind::Render);
    }
    unchanged()
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
            "NONE" => Lookup::Found(Value::Null),
            "LIST" => Lookup::Found(json!(["a", "b"])),
            "MAP" => Lookup::Found(json!({ "k": "v", "n": 1 })),
            "BROKEN" => Lookup::Failed,
            _ => Lookup::Undefined,
        }
    }

    fn run(v: Value) -> (Value, Vec<TemplateProblem>) {
        let mut p = Vec::new();
        let out = render(&v, "workload ", &globals, &mut p);
        (out, p)
    }

    fn kinds(p: Vec<TemplateProblem>) -> Vec<(String, String, ProblemKind)> {
        p.into_iter().map(|p| (p.reference, p.at, p.kind)).collect()
    }

    #[test]
    fn both_spacings_render_and_scalars_become_text() {
        let (out, p) = run(json!({
            "host": "{{Global.STAGE_ID}}-dataops-mysql",
            "svc": "{{ Global.STAGE_ID }}-health-health",
            "port": "{{ Global.PORT }}",
            "flag": "{{ Global.ON }}",
            "none": "x{{ Global.NONE }}",
            "keys": "{{ Global.LIST }}",
            "map": "{{  Global.MAP\n}}",
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
                "none": "x",
                "keys": ["a", "b"],
                "map": { "k": "v", "n": 1 },
                "n": 3,
            })
        );
    }

    #[test]
    fn jinja_filters_and_defaults_work() {
        let (out, p) = run(json!({
            "d": "{{ Global.NOPE | default('y') }}",
            "defined": "{% if Global.NOPE is defined %}a{% else %}b{% endif %}",
            "u": "{{ Global.STAGE_ID | upper }}-{{ 'ABC' | lower }}",
            "r": "{{ Global.STAGE_ID | replace('pr', 'x') }}",
            "i": "{{ ('12' | int) + Global.PORT }}",
            "j": "{{ Global.LIST | tojson }}",
            "first": "{{ Global.LIST | first }}",
            "loop": "{% for x in Global.LIST %}{{ x }};{% endfor %}",
            "attr": "{{ Global.MAP.k }}-{{ Global.MAP['n'] }}",
        }));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            out,
            json!({
                "d": "y",
                "defined": "b",
                "u": "PROD-abc",
                "r": "xod",
                "i": "3318",
                "j": "[\"a\", \"b\"]",
                "first": "a",
                "loop": "a;b;",
                "attr": "v-1",
            })
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_place() {
        let (_, p) = run(json!({
            "env": { "A": "{{ Global.NOPE }}", "B": "x{{ Global.NOPE }}y{{ Global.ALSO }}" },
            "list": ["{{ Global.LIST }}-suffix"],
            "c": "{{ options.appId }}",
            "d": "{{ Global.BROKEN }}",
            "dyn": "{{ Global['STAGE' ~ '_ID'] }}",
            "mix": "{{ Global.BROKEN }}{{ Global.NOPE }}",
            "both": "{{ Global.LIST }}-{{ Global.NOPE | default('') }}{{ Global.ALSO }}",
        }));
        // serde_json keeps insertion order in this workspace (`preserve_order`); within one
        // string, references are in name order.
        assert_eq!(
            kinds(p),
            vec![
                ("Global.NOPE".into(), "workload env.A".into(), ProblemKind::Undefined),
                ("Global.ALSO".into(), "workload env.B".into(), ProblemKind::Undefined),
                ("Global.NOPE".into(), "workload env.B".into(), ProblemKind::Undefined),
                ("Global.LIST".into(), "workload list[0]".into(), ProblemKind::NotText),
                ("options.appId".into(), "workload c".into(), ProblemKind::Undefined),
                ("Global".into(), "workload dyn".into(), ProblemKind::Unsupported),
                ("Global.NOPE".into(), "workload mix".into(), ProblemKind::Undefined),
                // The list fails first; the undefined references are listed all the same.
                ("Global.ALSO".into(), "workload both".into(), ProblemKind::Undefined),
                ("Global.NOPE".into(), "workload both".into(), ProblemKind::Undefined),
                ("Global.LIST".into(), "workload both".into(), ProblemKind::NotText),
            ]
        );
    }

    #[test]
    fn syntax_errors_carry_minijinjas_message() {
        let (out, p) = run(json!({ "e": "{{ Global.X", "f": "{% if %}" }));
        assert_eq!(out, json!({ "e": "{{ Global.X", "f": "{% if %}" }));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| p.kind == ProblemKind::Syntax), "{p:?}");
        assert_eq!((p[0].at.as_str(), p[1].at.as_str()), ("workload e", "workload f"));
        assert!(p[0].reference.contains("syntax error"), "{p:?}");
    }

    #[test]
    fn untrusted_templates_cannot_load_anything_or_loop_forever() {
        let (_, p) = run(json!({
            "inc": "{% include '/etc/passwd' %}",
            "imp": "{% import 'x.j2' as x %}{{ x }}",
            "ext": "{% extends 'base' %}",
            "spin": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "bad": "{{ 'x' | int }}",
        }));
        let got = kinds(p);
        assert_eq!(got.len(), 5, "{got:?}");
        // Without the `multi_template` feature these statements do not even parse.
        for (i, statement) in ["include", "import", "extends"].iter().enumerate() {
            assert_eq!(got[i].2, ProblemKind::Syntax, "{got:?}");
            assert!(got[i].0.contains(&format!("unknown statement {statement}")), "{got:?}");
        }
        assert_eq!(got[3].2, ProblemKind::Render, "{got:?}");
        assert!(got[3].0.contains("fuel"), "{got:?}");
        assert_eq!((got[4].1.as_str(), got[4].2), ("workload bad", ProblemKind::Render), "{got:?}");
    }

    proptest::proptest! {
        #[test]
        fn text_without_braces_is_unchanged(s in "[^{}]{0,60}") {
            let (out, p) = run(Value::String(s.clone()));
            proptest::prop_assert!(p.is_empty());
            proptest::prop_assert_eq!(out, Value::String(s));
        }

        #[test]
        fn rendering_never_panics(s in "\\PC{0,60}") {
            let _ = run(Value::String(s));
        }
    }
}
