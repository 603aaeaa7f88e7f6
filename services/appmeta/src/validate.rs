//! Field checks shared by every resource. Each check appends to an [`Errors`] list so one 422
//! names every invalid field at once.

use serde::de::DeserializeOwned;
use serde_json::Value;
use sw_contracts::appmeta::{ClusterCredentials, Labels};
use sw_contracts::{FieldError, Name};
use sw_http::ApiError;

/// Longest display name, in characters.
pub const NAME_MAX: usize = 128;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 4096;
/// Most labels on one resource.
pub const LABELS_MAX: usize = 64;
/// Longest label key, in characters.
pub const LABEL_KEY_MAX: usize = 63;
/// Longest label value, in characters.
pub const LABEL_VALUE_MAX: usize = 255;
/// Longest cluster API URL.
pub const API_URL_MAX: usize = 2048;
/// Largest bearer token, in bytes.
pub const TOKEN_MAX: usize = 16 * 1024;
/// Largest CA certificate bundle, in bytes.
pub const CA_CERT_MAX: usize = 64 * 1024;
/// Largest kubeconfig document, in bytes.
pub const KUBECONFIG_MAX: usize = 256 * 1024;

/// Field errors collected while checking one request.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }
    /// `Ok` when nothing was wrong, else one 422 listing every field.
    ///
    /// (Every error pushed so far comes first, so fields appear in the order they were checked.)
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::validation(self.0)) }
    }
}

/// Stands in for an invalid id while the rest of the body is parsed; the request fails anyway.
const PLACEHOLDER_ID: &str = "invalid-id";

/// Parses a request body into `T`, checking the id members named in `ids` first.
///
/// serde reports an invalid id without naming its field (the id types reject it with a bare
/// message), so ids are checked here, each error named after its member and the value replaced
/// by a placeholder, so the rest of the body can still be parsed and checked: the caller adds its
/// own field checks to `errs` and one 422 lists everything. A body serde rejects (unknown or
/// missing members) fails here, with the id errors found so far included.
pub fn parse_body<T: DeserializeOwned>(
    body: Option<Value>,
    ids: &[&str],
    errs: &mut Errors,
) -> Result<T, ApiError> {
    let mut body = body;
    if let Some(Value::Object(map)) = &mut body {
        for &field in ids {
            let problem = match map.get(field) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Name::parse(s).err().map(|e| e.to_string()),
                Some(_) => Some("must be a string".to_owned()),
            };
            if let Some(message) = problem {
                errs.push(field, message);
                map.insert(field.to_owned(), Value::String(PLACEHOLDER_ID.to_owned()));
            }
        }
    }
    sw_http::parse_body(body).map_err(|e| {
        if e.status() == 422 && !errs.is_empty() {
            let mut all = std::mem::take(&mut errs.0);
            all.extend(e.problem().errors.iter().cloned());
            ApiError::validation(all)
        } else {
            e
        }
    })
}

/// A display name: 1–128 characters, not only whitespace.
pub fn name(errs: &mut Errors, field: &str, value: &str) {
    let n = value.chars().count();
    if n == 0 || value.trim().is_empty() {
        errs.push(field, "must not be empty");
    } else if n > NAME_MAX {
        errs.push(field, format!("must be at most {NAME_MAX} characters"));
    }
}

/// A description: at most 4096 characters.
pub fn description(errs: &mut Errors, field: &str, value: Option<&str>) {
    if value.is_some_and(|v| v.chars().count() > DESCRIPTION_MAX) {
        errs.push(field, format!("must be at most {DESCRIPTION_MAX} characters"));
    }
}

/// The members most resources share, each checked when present: `name` per [`name`],
/// `description` per [`description`] and `labels` per [`labels`], in that order.
pub fn display(errs: &mut Errors, name: Option<&str>, description: Option<&str>, labels: Option<&Labels>) {
    if let Some(n) = name {
        self::name(errs, "name", n);
    }
    self::description(errs, "description", description);
    if let Some(l) = labels {
        self::labels(errs, "labels", l);
    }
}

/// True for a label key: 1–63 characters of `[A-Za-z0-9._/-]`.
pub fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= LABEL_KEY_MAX
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

/// Labels: at most 64, keys per [`is_label_key`], values at most 255 characters.
pub fn labels(errs: &mut Errors, field: &str, labels: &Labels) {
    if labels.len() > LABELS_MAX {
        errs.push(field, format!("at most {LABELS_MAX} labels are allowed"));
    }
    for (k, v) in labels {
        if !is_label_key(k) {
            errs.push(
                format!("{field}.{k}"),
                format!("label keys must be 1–{LABEL_KEY_MAX} characters of letters, digits, '.', '_', '/' and '-'"),
            );
        }
        if v.chars().count() > LABEL_VALUE_MAX {
            errs.push(
                format!("{field}.{k}"),
                format!("label values must be at most {LABEL_VALUE_MAX} characters"),
            );
        }
    }
}

/// A cluster API server URL: `https://host[:port][/path]`, or `http://` only for a loopback host
/// (local test clusters such as kind).
pub fn api_url(errs: &mut Errors, field: &str, url: &str) {
    if url.len() > API_URL_MAX {
        errs.push(field, format!("must be at most {API_URL_MAX} characters"));
        return;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errs.push(field, "must not contain whitespace");
        return;
    }
    let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        errs.push(field, "must start with https://");
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        errs.push(field, "must not carry credentials; put them in `credentials`");
        return;
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:6443`.
        Some(inner) => match inner.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, rest)) if rest.starts_with(':') => (h, Some(&rest[1..])),
            _ => {
                errs.push(field, "has an invalid host");
                return;
            }
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        errs.push(field, "has an invalid port");
        return;
    }
    let ipv6 = authority.starts_with('[');
    let host_ok = if ipv6 {
        host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if host.is_empty() || !host_ok {
        errs.push(field, "must name a host");
        return;
    }
    if !secure && !matches!(host, "127.0.0.1" | "localhost") {
        errs.push(field, "must use https:// (http:// is allowed only for 127.0.0.1 and localhost)");
    }
}

/// Cluster credentials. `api_url` is the URL the cluster will have after the request.
/// Messages never quote the credentials.
pub fn credentials(errs: &mut Errors, creds: &ClusterCredentials, api_url: Option<&str>) {
    match creds {
        ClusterCredentials::Token { token, ca_cert, .. } => {
            if token.trim().is_empty() {
                errs.push("credentials.token", "must not be empty");
            } else if token.len() > TOKEN_MAX {
                errs.push("credentials.token", format!("must be at most {TOKEN_MAX} bytes"));
            } else if token.chars().any(char::is_whitespace) {
                errs.push("credentials.token", "must not contain whitespace");
            }
            if let Some(ca) = ca_cert {
                if ca.len() > CA_CERT_MAX {
                    errs.push("credentials.caCert", format!("must be at most {CA_CERT_MAX} bytes"));
                } else if !ca.contains("-----BEGIN CERTIFICATE-----") {
                    errs.push("credentials.caCert", "must be a PEM certificate");
                }
            }
            if api_url.is_none() {
                errs.push("apiUrl", "is required with token credentials");
            }
        }
        ClusterCredentials::Kubeconfig { kubeconfig } => {
            if kubeconfig.len() > KUBECONFIG_MAX {
                errs.push("credentials.kubeconfig", format!("must be at most {KUBECONFIG_MAX} bytes"));
            } else if let Err(message) = check_kubeconfig(kubeconfig) {
                errs.push("credentials.kubeconfig", message);
            }
        }
    }
}

/// A kubeconfig must be a YAML mapping with `clusters`, `users` and `contexts` lists.
fn check_kubeconfig(doc: &str) -> Result<(), String> {
    // The parser's message may quote the document; report only where it failed.
    let value: serde_yaml::Value = serde_yaml::from_str(doc).map_err(|e| match e.location() {
        Some(l) => format!("is not valid YAML (line {}, column {})", l.line(), l.column()),
        None => "is not valid YAML".to_owned(),
    })?;
    let map = value.as_mapping().ok_or("must be a YAML mapping")?;
    let missing: Vec<&str> = ["clusters", "users", "contexts"]
        .into_iter()
        .filter(|k| !map.get(*k).is_some_and(serde_yaml::Value::is_sequence))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(format!("must have the lists {}", missing.join(", "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl FnOnce(&mut Errors)) -> Vec<String> {
        let mut e = Errors::new();
        f(&mut e);
        e.fields().into_iter().map(str::to_owned).collect()
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        app_id: Name,
        #[serde(default)]
        team: Option<Name>,
        name: Option<String>,
    }

    #[test]
    fn body_ids_are_named_and_the_rest_still_parses() {
        let mut e = Errors::new();
        let v: In = parse_body(
            Some(serde_json::json!({"appId": "Bad_Id", "team": 7, "name": ""})),
            &["appId", "team"],
            &mut e,
        )
        .unwrap();
        assert_eq!(e.fields(), ["appId", "team"]);
        name(&mut e, "name", v.name.as_deref().unwrap());
        assert_eq!(e.fields(), ["appId", "team", "name"]);

        let mut e = Errors::new();
        let err =
            parse_body::<In>(Some(serde_json::json!({"appId": "Bad_Id", "extra": 1})), &["appId"], &mut e)
                .unwrap_err();
        let fields: Vec<_> = err.problem().errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["appId", "extra"]);

        let mut e = Errors::new();
        let v: In =
            parse_body(Some(serde_json::json!({"appId": "ok", "team": null})), &["appId", "team"], &mut e)
                .unwrap();
        assert!(e.is_empty() && v.team.is_none());
        assert_eq!(parse_body::<In>(None, &["appId"], &mut Errors::new()).unwrap_err().status(), 400);
    }

    #[test]
    fn names_and_descriptions() {
        assert!(check(|e| name(e, "name", "Health")).is_empty());
        assert!(check(|e| name(e, "name", &"é".repeat(128))).is_empty(), "characters, not bytes");
        assert_eq!(check(|e| name(e, "name", "")), ["name"]);
        assert_eq!(check(|e| name(e, "name", "   ")), ["name"]);
        assert_eq!(check(|e| name(e, "name", &"a".repeat(129))), ["name"]);
        assert!(check(|e| description(e, "description", Some(&"x".repeat(4096)))).is_empty());
        assert_eq!(check(|e| description(e, "description", Some(&"x".repeat(4097)))), ["description"]);
    }

    #[test]
    fn label_rules() {
        let ok: Labels =
            [("app.kubernetes.io/name".to_owned(), "x".to_owned()), ("A_b-1".into(), "".into())].into();
        assert!(check(|e| labels(e, "labels", &ok)).is_empty());
        let bad: Labels = [
            ("".to_owned(), "v".to_owned()),
            ("has space".into(), "v".into()),
            ("k".repeat(64), "v".into()),
            ("long".into(), "v".repeat(256)),
        ]
        .into();
        let fields = check(|e| labels(e, "labels", &bad));
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert!(fields.contains(&"labels.long".to_owned()));
        let many: Labels = (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(check(|e| labels(e, "labels", &many)), ["labels"]);
    }

    #[test]
    fn api_urls() {
        for ok in [
            "https://k8s.example.com",
            "https://10.0.0.1:6443",
            "https://k8s.example.com:443/prefix",
            "http://127.0.0.1:6443",
            "http://localhost:8001",
            "https://[::1]:6443",
        ] {
            assert!(check(|e| api_url(e, "apiUrl", ok)).is_empty(), "{ok}");
        }
        for bad in [
            "http://k8s.example.com",
            "http://10.0.0.1:6443",
            "ftp://x",
            "k8s.example.com",
            "https://",
            "https://host:0",
            "https://host:99999",
            "https://user:pw@host",
            "https://ho st",
            "http://localhost.evil.com",
        ] {
            assert_eq!(check(|e| api_url(e, "apiUrl", bad)), ["apiUrl"], "{bad}");
        }
    }

    #[test]
    fn token_credentials() {
        let t = |token: &str, ca: Option<&str>| ClusterCredentials::Token {
            token: token.into(),
            ca_cert: ca.map(str::to_owned),
            insecure_skip_tls_verify: false,
        };
        assert!(check(|e| credentials(e, &t("abc", None), Some("https://h"))).is_empty());
        assert_eq!(check(|e| credentials(e, &t("", None), Some("https://h"))), ["credentials.token"]);
        assert_eq!(check(|e| credentials(e, &t("abc", None), None)), ["apiUrl"]);
        assert_eq!(
            check(|e| credentials(e, &t("abc", Some("nope")), Some("https://h"))),
            ["credentials.caCert"]
        );
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(check(|e| credentials(e, &t("abc", Some(pem)), Some("https://h"))).is_empty());
    }

    #[test]
    fn kubeconfig_credentials() {
        let k = |doc: &str| ClusterCredentials::Kubeconfig { kubeconfig: doc.into() };
        let good = "apiVersion: v1\nclusters: []\nusers: []\ncontexts: []\ncurrent-context: x\n";
        assert!(check(|e| credentials(e, &k(good), None)).is_empty(), "apiUrl is optional with a kubeconfig");
        for bad in [
            "clusters: [\n",
            "just a string",
            "clusters: []\nusers: []\n",
            "clusters: x\nusers: []\ncontexts: []\n",
        ] {
            assert_eq!(check(|e| credentials(e, &k(bad), None)), ["credentials.kubeconfig"], "{bad}");
        }
        let mut e = Errors::new();
        credentials(&mut e, &k("secret-value: [\n"), None);
        let err = e.finish().unwrap_err();
        assert!(
            !err.problem().errors[0].message.contains("secret-value"),
            "messages never quote credentials"
        );
    }
}
