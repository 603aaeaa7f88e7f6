//! What a build may cost: the spec and every uploaded chart are untrusted input.

/// Size and count limits of one build. [`BuildLimits::from_config`] derives them from the service
/// configuration; `Default` matches the configuration defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLimits {
    /// Largest build spec (`build.yaml` text), and largest `Chart.yaml`, in bytes.
    pub max_spec_bytes: u64,
    /// Most components in one build.
    pub max_components: usize,
    /// Largest uploaded chart archive, in bytes (as stored).
    pub max_chart_bytes: u64,
    /// Most bytes a chart archive may unpack to, counted as they come out (headers are not
    /// trusted).
    pub max_chart_uncompressed_bytes: u64,
    /// Most entries in one chart archive.
    pub max_chart_entries: u64,
}

/// Charts are YAML templates, which compress well; 16x leaves room for that without letting a
/// small archive unpack into something huge.
const CHART_EXPANSION: u64 = 16;

impl BuildLimits {
    /// Limits for the service: `max_meta_bytes` bounds the spec, `max_chart_bytes` the archive,
    /// and the unpacked chart may not exceed what an import would accept for a whole package.
    pub fn from_config(cfg: &sw_config::PackageStoreConfig) -> Self {
        Self {
            max_spec_bytes: cfg.max_meta_bytes,
            max_components: 200,
            max_chart_bytes: cfg.max_chart_bytes,
            max_chart_uncompressed_bytes: cfg
                .max_chart_bytes
                .saturating_mul(CHART_EXPANSION)
                .min(cfg.max_uncompressed_bytes),
            max_chart_entries: cfg.max_entries,
        }
    }
}

impl Default for BuildLimits {
    fn default() -> Self {
        Self::from_config(&sw_config::PackageStoreConfig::default())
    }
}
