//! The one error type of the build library, with stable machine codes.

use sw_contracts::FieldError;

use super::version::VersionError;

/// How many field problems `Display` spells out before summarising the rest; the full list is in
/// [`BuildError::field_errors`].
const SHOWN_IN_MESSAGE: usize = 10;

/// Why a build spec or a build was refused. `code()` is stable (clients match on it); messages are
/// for humans and never carry server paths.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build spec has problems; every one found is listed, each with the path of its field.
    #[error("the build spec is invalid: {}", summarise(.errors))]
    Invalid { errors: Vec<FieldError> },
    /// At least one container carries a `build` block. The list holds those and every other problem
    /// found, so one round trip fixes all of them.
    #[error(
        "building container images is not supported: build images in your CI, push them to a \
         registry and reference them with `image`; {}",
        summarise(.errors)
    )]
    ImageBuildUnsupported { errors: Vec<FieldError> },
    /// A chart archive cannot be used (unsafe entry, not a chart, corrupt…).
    #[error("chart of component {component:?} is unusable: {reason}")]
    Chart { component: String, reason: String },
    /// An input is over a size or count limit.
    #[error("{what} is larger than the limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    /// The package version is not `x.y.z[+build]`.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The assembled package fails the import inspection (e.g. a chart too large for a package);
    /// the format error's own code and status apply.
    #[error("the built package would not import: {0}")]
    Package(#[source] crate::format::FormatError),
    /// Reading an uploaded file or writing the output failed (not the client's fault).
    #[error("build I/O failed: {0}")]
    Io(#[source] std::io::Error),
}

impl BuildError {
    /// The stable machine code for problem+json.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } | Self::Chart { .. } => "invalid_build",
            Self::ImageBuildUnsupported { .. } => "image_build_unsupported",
            Self::TooLarge { .. } => "package_too_large",
            Self::Version(e) => e.code(),
            Self::Package(e) => e.code(),
            Self::Io(_) => "build_io_failed",
        }
    }

    /// The HTTP status: 413 for limits, 500 for our own I/O, 422 for what the client can fix.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Io(_) => 500,
            Self::Version(e) => e.status(),
            Self::Package(e) => e.status(),
            Self::Invalid { .. } | Self::ImageBuildUnsupported { .. } | Self::Chart { .. } => 422,
        }
    }

    /// The field problems for the problem+json `errors` list (empty for errors about no field).
    /// A chart problem is reported on the upload part, `chart.<componentName>`.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid { errors } | Self::ImageBuildUnsupported { errors } => errors.clone(),
            Self::Chart { component, reason } => {
                vec![FieldError::new(
                    format!("{}{component}", super::binder::CHART_PART_PREFIX),
                    reason.clone(),
                )]
            }
            Self::TooLarge { .. } | Self::Version(_) | Self::Package(_) | Self::Io(_) => Vec::new(),
        }
    }
}

fn summarise(errors: &[FieldError]) -> String {
    let mut parts: Vec<String> =
        errors.iter().take(SHOWN_IN_MESSAGE).map(|e| format!("{}: {}", e.field, e.message)).collect();
    if errors.len() > SHOWN_IN_MESSAGE {
        parts.push(format!("and {} more", errors.len() - SHOWN_IN_MESSAGE));
    }
    if parts.is_empty() { "no details".to_owned() } else { parts.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let invalid = BuildError::Invalid { errors: vec![FieldError::new("a", "b")] };
        assert_eq!((invalid.code(), invalid.status()), ("invalid_build", 422));
        assert_eq!(invalid.to_string(), "the build spec is invalid: a: b");
        let refused = BuildError::ImageBuildUnsupported { errors: vec![] };
        assert_eq!((refused.code(), refused.status()), ("image_build_unsupported", 422));
        assert!(refused.to_string().contains("in your CI"));
        let chart = BuildError::Chart { component: "g".into(), reason: "r".into() };
        assert_eq!(chart.field_errors(), vec![FieldError::new("chart.g", "r")]);
        assert_eq!(BuildError::TooLarge { what: "x".into(), limit: 1 }.status(), 413);
        let io = BuildError::Io(std::io::Error::other("disk"));
        assert_eq!((io.code(), io.status()), ("build_io_failed", 500));
    }

    #[test]
    fn long_lists_are_summarised() {
        let errors = (0..15).map(|i| FieldError::new(format!("f{i}"), "bad")).collect();
        let msg = BuildError::Invalid { errors }.to_string();
        assert!(msg.contains("f9: bad") && !msg.contains("f10") && msg.ends_with("and 5 more"), "{msg}");
    }
}
