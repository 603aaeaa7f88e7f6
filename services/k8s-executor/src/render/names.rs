//! Object names and label values, always valid for Kubernetes.
//!
//! **Names** follow SREWorks' convention so existing launch files keep pointing at the right
//! Services (a gateway trait's `serviceName: prod-health-health` is app instance `prod-health` +
//! component instance `health`): the parts are joined with `-`, lowercased, and `_`, `.`, `@`
//! become `-`. When that is not enough — another character outside `[a-z0-9-]` (replaced by `-`),
//! a `-` at either end (trimmed), or more than the length limit — the name is cut and gets `-` and
//! the first 8 hex digits of the SHA-256 of the raw joined parts, so two different inputs that would
//! otherwise collapse to one name (or one truncated prefix) stay apart. The conventional mapping
//! itself can collide (`a_b` and `a.b` both give `a-b`), exactly as in SREWorks; ownership labels
//! carry the raw component instance, so such twins never prune each other.
//!
//! **Label values** are kept as given when already valid (≤ 63 of `[A-Za-z0-9._-]`, alphanumeric
//! at both ends, or empty); otherwise invalid characters become `-`, the ends are trimmed, the value
//! is cut, and the same hash suffix is added.

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label, and the limit of most object names we derive.
pub const MAX_NAME_LEN: usize = 63;
/// A StatefulSet's pods carry `controller-revision-hash: <name>-<10 chars>`, a label value of at
/// most 63 characters, so the StatefulSet name must leave room for it.
pub const MAX_STATEFULSET_NAME_LEN: usize = 52;
/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 63;

const HASH_LEN: usize = 8;

/// A DNS-1123 label name for `parts` of at most `max` characters (see the module docs).
pub fn object_name(parts: &[&str], max: usize) -> String {
    let raw = parts.join("-");
    let mut conventional = true;
    let mapped: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            '_' | '.' | '@' => '-',
            _ => {
                conventional = false;
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    if conventional && !trimmed.is_empty() && trimmed.len() == mapped.len() && trimmed.len() <= max {
        return trimmed.to_owned();
    }
    with_hash(trimmed, &raw, max, |b| b.is_ascii_alphanumeric())
}

/// `value` as a valid label value (see the module docs).
pub fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_owned();
    }
    let mapped: String =
        value.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    with_hash(trimmed, value, MAX_LABEL_VALUE_LEN, |b| b.is_ascii_alphanumeric())
}

/// `prefix` cut so that `-` + hash fits in `max`, plus that suffix. `prefix` is ASCII here.
fn with_hash(prefix: &str, raw: &str, max: usize, is_end: impl Fn(u8) -> bool) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    let hash: String = digest.iter().take(HASH_LEN / 2).map(|b| format!("{b:02x}")).collect();
    let keep = max.saturating_sub(HASH_LEN + 1).min(prefix.len());
    let cut = &prefix[..keep];
    let end = cut.bytes().rposition(&is_end).map_or(0, |i| i + 1);
    let cut = &cut[..end];
    if cut.is_empty() { hash } else { format!("{cut}-{hash}") }
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels of `[a-z0-9-]`.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
        })
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]` with alphanumeric ends.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= MAX_LABEL_VALUE_LEN
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// A label (or annotation) key: an optional DNS subdomain prefix and `/`, then a name part that is
/// a non-empty label value.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A container port name (IANA service name): at most 15 of `[a-z0-9-]`, at least one letter,
/// alphanumeric ends, no `--`.
pub fn is_port_name(s: &str) -> bool {
    s.len() <= 15 && is_dns1123_label(s) && s.bytes().any(|c| c.is_ascii_lowercase()) && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn conventional_names_follow_sreworks() {
        assert_eq!(object_name(&["prod-health", "health"], MAX_NAME_LEN), "prod-health-health");
        assert_eq!(object_name(&["Prod_App", "comp.v1@x"], MAX_NAME_LEN), "prod-app-comp-v1-x");
    }

    #[test]
    fn unusual_characters_and_ends_get_a_hash() {
        let a = object_name(&["my app", "web"], MAX_NAME_LEN);
        let b = object_name(&["my/app", "web"], MAX_NAME_LEN);
        assert!(a.starts_with("my-app-web-") && b.starts_with("my-app-web-"), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a.len(), "my-app-web-".len() + HASH_LEN);
        let trimmed = object_name(&["_app", "web"], MAX_NAME_LEN);
        assert!(trimmed.starts_with("app-web-") && trimmed != "app-web", "{trimmed}");
        assert!(is_dns1123_label(&object_name(&["ü", "_"], MAX_NAME_LEN)));
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "a".repeat(80);
        let n1 = object_name(&[&long, "x"], MAX_NAME_LEN);
        let n2 = object_name(&[&long, "y"], MAX_NAME_LEN);
        assert_eq!(n1.len(), MAX_NAME_LEN);
        assert_ne!(n1, n2);
        let sts = object_name(&[&long, "x"], MAX_STATEFULSET_NAME_LEN);
        assert_eq!(sts.len(), MAX_STATEFULSET_NAME_LEN);
        // A cut that ends on '-' drops it rather than producing "--hash".
        let dashes = object_name(&[&format!("{}-b", "a".repeat(53)), "c"], MAX_NAME_LEN);
        assert!(is_dns1123_label(&dashes) && !dashes.contains("--"), "{dashes}");
    }

    #[test]
    fn label_values_keep_valid_input() {
        assert_eq!(label_value("Health_1.2"), "Health_1.2");
        assert_eq!(label_value(""), "");
        let odd = label_value("a b@c");
        assert!(odd.starts_with("a-b-c-") && is_label_value(&odd), "{odd}");
        assert!(is_label_value(&label_value(&"x".repeat(100))));
        assert!(is_label_value(&label_value("-._")));
    }

    #[test]
    fn validators() {
        assert!(is_label_key("app.kubernetes.io/managed-by"));
        assert!(is_label_key("tier"));
        assert!(!is_label_key("Bad_Prefix/x"));
        assert!(!is_label_key("a/"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_port_name("http"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("a-very-long-port-name"));
    }

    proptest! {
        #[test]
        fn names_and_labels_are_always_valid(
            a in "\\PC{0,90}",
            b in "[A-Za-z0-9_.@/ -]{0,90}",
            max in 20usize..=63,
        ) {
            let n = object_name(&[&a, &b], max);
            prop_assert!(is_dns1123_label(&n), "{:?}", n);
            prop_assert!(n.len() <= max);
            prop_assert!(is_label_value(&label_value(&a)));
            prop_assert!(is_label_value(&label_value(&b)));
        }

        #[test]
        fn distinct_unconventional_inputs_get_distinct_names(a in "[a-z ]{1,40}", b in "[a-z/]{1,40}") {
            prop_assume!(a != b);
            prop_assume!(a.contains(' ') || b.contains('/'));
            prop_assert_ne!(object_name(&[&a], 63), object_name(&[&b], 63));
        }
    }
}
