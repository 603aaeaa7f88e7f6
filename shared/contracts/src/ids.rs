//! Identifiers parsed at the boundary: once constructed they are known to be valid.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error(
        "may contain only lowercase letters, digits and '-', and must start with a letter and end with a letter or digit"
    )]
    BadCharacters,
}

/// The accepted form, as a regular expression (published in the API schema).
pub const LABEL_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Checks a lowercase DNS-label-like identifier (RFC 1123 label, starting with a letter).
fn check_label(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong(max));
    }
    let b = s.as_bytes();
    let ok_inner = b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    let ok_first = b[0].is_ascii_lowercase();
    let last = b[b.len() - 1];
    let ok_last = last.is_ascii_lowercase() || last.is_ascii_digit();
    if ok_inner && ok_first && ok_last { Ok(()) } else { Err(IdError::BadCharacters) }
}

macro_rules! label_id {
    ($(#[$m:meta])* $name:ident, $max:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value.
            pub const MAX_LEN: usize = $max;
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_label(s, $max).map(|()| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(LABEL_PATTERN))
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .description(Some(concat!("A lowercase DNS label of at most ", stringify!($max), " characters.")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

label_id!(
    /// An application id: a lowercase DNS label (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
    AppId,
    63
);

label_id!(
    /// A name of a namespace, stage, cluster, team or component: a lowercase DNS label of at most 63 characters.
    Name,
    63
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "health", "sreworks-app1", "a1", &"a".repeat(63)] {
            assert!(AppId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(AppId::parse(""), Err(IdError::Empty));
        assert_eq!(AppId::parse(&"a".repeat(64)), Err(IdError::TooLong(63)));
        for bad in ["A", "1abc", "-a", "a-", "a_b", "a.b", "a b", "ä", "../x", "a/b"] {
            assert_eq!(AppId::parse(bad), Err(IdError::BadCharacters), "{bad}");
        }
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<AppId>("\"ok-id\"").is_ok());
        assert!(serde_json::from_str::<AppId>("\"Bad\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(id) = AppId::parse(&s) {
                proptest::prop_assert_eq!(id.as_str(), s.as_str());
                proptest::prop_assert!(id.as_str().len() <= 63);
            }
        }

        #[test]
        fn valid_labels_always_parse(s in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?") {
            proptest::prop_assert!(AppId::parse(&s).is_ok());
        }
    }
}
