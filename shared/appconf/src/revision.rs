//! Component revision names: SREWorks writes `TYPE|name|version` (`K8S_MICROSERVICE|health|_`),
//! where `_` means "the version in the app package being deployed"; dependencies name a
//! component without the version (`RESOURCE_ADDON|system-env@system-env`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a revision name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revisionName '{given}' {reason} (expected TYPE|name|version, version '_' for the package's)")]
pub struct RevisionNameError {
    /// The text as given.
    pub given: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Which version of the component a launch file asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSel {
    /// `_`: whatever version the app package holds.
    Package,
    /// A specific package version.
    Exact(String),
}

/// A parsed `TYPE|name|version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevisionName {
    component_type: String,
    name: String,
    version: VersionSel,
}

impl RevisionName {
    /// Parses `TYPE|name|version`. The type is upper-case letters, digits and `_`; the name is
    /// anything without `|` or whitespace (SREWorks uses `@` in addon names); the version is `_` or
    /// a version without `|`.
    pub fn parse(s: &str) -> Result<Self, RevisionNameError> {
        let err = |reason| RevisionNameError { given: s.to_owned(), reason };
        let parts: Vec<&str> = s.split('|').collect();
        let [ty, name, version] = parts.as_slice() else {
            return Err(err("must have exactly three '|'-separated parts"));
        };
        if ty.is_empty() || !ty.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return Err(err("has a component type that is not UPPER_CASE"));
        }
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(err("has an empty name or one with whitespace"));
        }
        if version.is_empty() || version.chars().any(char::is_whitespace) {
            return Err(err("has an empty version or one with whitespace"));
        }
        let version =
            if *version == "_" { VersionSel::Package } else { VersionSel::Exact((*version).to_owned()) };
        Ok(Self { component_type: (*ty).to_owned(), name: (*name).to_owned(), version })
    }

    /// `K8S_MICROSERVICE`, `K8S_JOB`, `HELM`, `RESOURCE_ADDON`…
    pub fn component_type(&self) -> &str {
        &self.component_type
    }

    /// The component name (`health`, `system-env@system-env`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version asked for.
    pub fn version(&self) -> &VersionSel {
        &self.version
    }

    /// `TYPE|name`, how dependencies and messages name the component.
    pub fn label(&self) -> String {
        format!("{}|{}", self.component_type, self.name)
    }
}

impl fmt::Display for RevisionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match &self.version {
            VersionSel::Package => "_",
            VersionSel::Exact(v) => v,
        };
        write!(f, "{}|{}|{v}", self.component_type, self.name)
    }
}

impl Serialize for RevisionName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RevisionName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RevisionName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_sreworks_writes() {
        let r = RevisionName::parse("K8S_MICROSERVICE|health|_").unwrap();
        assert_eq!(
            (r.component_type(), r.name(), r.version()),
            ("K8S_MICROSERVICE", "health", &VersionSel::Package)
        );
        assert_eq!(r.label(), "K8S_MICROSERVICE|health");
        let r = RevisionName::parse("RESOURCE_ADDON|system-env@system-env|1.0").unwrap();
        assert_eq!(r.name(), "system-env@system-env");
        assert_eq!(r.version(), &VersionSel::Exact("1.0".into()));
        let r = RevisionName::parse("ABM_HELM|helm-demo-chart@0.0.1@test|_").unwrap();
        assert_eq!(r.to_string(), "ABM_HELM|helm-demo-chart@0.0.1@test|_");
    }

    #[test]
    fn refuses_malformed_names() {
        for bad in [
            "",
            "K8S_MICROSERVICE|health",
            "K8S_MICROSERVICE|health|_|x",
            "k8s|health|_",
            "|health|_",
            "K8S_JOB||_",
            "K8S_JOB|a b|_",
            "K8S_JOB|job|",
        ] {
            assert!(RevisionName::parse(bad).is_err(), "{bad:?}");
        }
        let e = RevisionName::parse("HELM|x").unwrap_err();
        assert!(e.to_string().contains("'HELM|x'"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,40}") {
            if let Ok(r) = RevisionName::parse(&s) {
                proptest::prop_assert_eq!(r.to_string(), s);
            }
        }

        #[test]
        fn valid_names_parse(ty in "[A-Z][A-Z0-9_]{0,20}", name in "[a-z0-9@._-]{1,30}", v in "(_|[0-9][0-9.+]{0,20})") {
            let r = RevisionName::parse(&format!("{ty}|{name}|{v}")).unwrap();
            proptest::prop_assert_eq!(r.name(), name.as_str());
        }
    }
}
