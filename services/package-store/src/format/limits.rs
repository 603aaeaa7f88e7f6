//! Resource limits applied while inspecting an untrusted package.

/// What an inspection may cost. Defaults suit real SREWorks packages (a few MB, tens of entries) with
/// wide headroom; the service may raise `max_total_uncompressed` for packages that carry images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one zip (outer or nested), checked from the central directory before any
    /// entry is read.
    pub max_entries: u64,
    /// Most decompressed bytes over the whole package, outer and nested entries together, counted
    /// while reading (header sizes are never trusted).
    pub max_total_uncompressed: u64,
    /// Largest decompressed/compressed ratio of one entry, enforced once the entry has produced
    /// `ratio_grace_bytes` (small, very compressible files such as YAML are fine).
    pub max_ratio: u64,
    /// Decompressed bytes an entry may produce before `max_ratio` applies.
    pub ratio_grace_bytes: u64,
    /// Largest `meta.yaml` (outer or component) in bytes.
    pub max_meta_bytes: u64,
    /// How deep zips may nest: 1 = the package's component zips, and no zip inside those.
    pub max_nesting: u32,
    /// Verify each well-formed (`[0-9a-f]{32}`) `packageMd5` against the component zip's bytes.
    /// Off by default: SREWorks' own bootstrap re-zips the `*.zip.dir` folders of its built-in apps,
    /// so their recorded MD5s never match the bytes that arrive (zips are not byte-reproducible).
    /// The result is reported per component either way ([`crate::format::Md5Check`]).
    pub strict_md5: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_uncompressed: 1024 * 1024 * 1024,
            max_ratio: 100,
            ratio_grace_bytes: 1024 * 1024,
            max_meta_bytes: 1024 * 1024,
            max_nesting: 1,
            strict_md5: false,
        }
    }
}
