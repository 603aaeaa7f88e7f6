//! The one error type of the format library, with stable machine codes.

/// Why a package was rejected. `code()` is stable (clients match on it); the message is for humans
/// and names the offending entry or field, never server internals.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An entry name escapes the extraction root (`..`, absolute path, drive letter, backslash,
    /// control characters).
    #[error("zip entry {name:?} has an unsafe path")]
    PathTraversal { name: String },
    /// An entry is a symbolic link (unix mode in the external attributes).
    #[error("zip entry {name:?} is a symbolic link")]
    Symlink { name: String },
    /// Two entries share a name (extractors disagree on which one wins).
    #[error("zip entry {name:?} appears more than once")]
    DuplicateEntry { name: String },
    /// More entries than `Limits::max_entries`.
    #[error("zip has {count} entries, more than the limit of {limit}")]
    TooManyEntries { count: u64, limit: u64 },
    /// Decompressed bytes went over the total budget or an entry over the compression-ratio limit.
    #[error("zip entry {name:?} decompresses beyond the limits ({reason})")]
    Bomb { name: String, reason: String },
    /// A zip nested deeper than `Limits::max_nesting`.
    #[error("zip entry {name:?} is a zip nested deeper than {limit} level(s)")]
    NestedTooDeep { name: String, limit: u32 },
    /// The bytes are not a readable zip (truncated, bad offsets, CRC mismatch…).
    #[error("zip is corrupt: {0}")]
    Corrupt(String),
    /// The zip uses a feature we do not read (encryption, compression other than stored/deflate,
    /// multi-disk archives).
    #[error("zip uses an unsupported feature: {0}")]
    Unsupported(String),
    /// No `meta.yaml` at the root of the package (or of a component zip, named by `zip`).
    #[error("{zip} has no meta.yaml at its root")]
    MetaMissing { zip: String },
    /// `meta.yaml` is not valid YAML, lacks a required field, or expands far beyond its size.
    #[error("meta.yaml is invalid: {0}")]
    MetaInvalid(String),
    /// `meta.yaml` is larger than `Limits::max_meta_bytes`.
    #[error("meta.yaml is larger than {limit} bytes")]
    MetaTooLarge { limit: u64 },
    /// The package's `appId` is not the app it is being imported into.
    #[error("package is for app {found:?}, not {expected:?}")]
    MetaAppIdMismatch { expected: String, found: String },
    /// `componentPackages[].relativePath` names an entry the zip does not have.
    #[error("component {component} names {path:?}, which is not in the package")]
    ComponentMissing { component: String, path: String },
    /// A component zip's MD5 differs from its declared `packageMd5` (only with `strict_md5`).
    #[error("component {component} has MD5 {actual}, meta.yaml declares {declared}")]
    ComponentMd5Mismatch { component: String, declared: String, actual: String },
    /// Reading from the underlying storage failed (not the client's fault).
    #[error("reading the package failed: {0}")]
    Io(#[source] std::io::Error),
}

impl FormatError {
    /// The stable machine code for problem+json.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PathTraversal { .. } => "zip_path_traversal",
            Self::Symlink { .. } => "zip_symlink",
            Self::DuplicateEntry { .. } => "zip_duplicate_entry",
            Self::TooManyEntries { .. } => "zip_too_many_entries",
            Self::Bomb { .. } => "zip_bomb",
            Self::NestedTooDeep { .. } => "zip_nested_too_deep",
            Self::Corrupt(_) => "zip_corrupt",
            Self::Unsupported(_) => "zip_unsupported",
            Self::MetaMissing { .. } => "meta_missing",
            Self::MetaInvalid(_) => "meta_invalid",
            Self::MetaTooLarge { .. } => "meta_too_large",
            Self::MetaAppIdMismatch { .. } => "meta_app_id_mismatch",
            Self::ComponentMissing { .. } => "component_missing",
            Self::ComponentMd5Mismatch { .. } => "component_md5_mismatch",
            Self::Io(_) => "package_read_failed",
        }
    }

    /// The HTTP status: 413 for size, ratio and entry-count limits, 500 when our own storage failed,
    /// 422 for everything the client can fix in the package.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooManyEntries { .. } | Self::Bomb { .. } | Self::MetaTooLarge { .. } => 413,
            Self::Io(_) => 500,
            _ => 422,
        }
    }

    /// Maps a `zip` crate error. I/O errors raised while decompressing (bad deflate data, CRC
    /// mismatch, unexpected EOF) are the package's fault, so they are `Corrupt`, not `Io`.
    pub(crate) fn from_zip(err: zip::result::ZipError) -> Self {
        use zip::result::ZipError;
        match err {
            ZipError::UnsupportedArchive(what) => Self::Unsupported(what.to_owned()),
            ZipError::Io(e) => Self::Corrupt(e.to_string()),
            other => Self::Corrupt(other.to_string()),
        }
    }
}
