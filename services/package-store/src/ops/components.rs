//! `packages.components`: the workload of every component of a package, in the package's order —
//! what the workflow service resolves a launch YAML against.
//!
//! Each component zip is downloaded from S3 to a temporary file (never held in memory), checked
//! against the SHA-256 its row records, and its `meta.yaml` read on a blocking thread with
//! [`component_workload`]. The bytes of a `(key, sha256)` never change, so the workload is kept in
//! a small [`WorkloadCache`]: launching the same package again reads nothing from S3.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::packages::ComponentWorkloadOut;
use sw_http::ApiError;

use super::package_param;
use super::packages::authorized;
use crate::authz::Op;
use crate::ctx::Ctx;
use crate::entity::{component_package, unsigned};
use crate::format::{FormatError, component_workload};
use crate::store::{self, corrupt};

/// Component zips downloaded at once for one request.
const DOWNLOADS_IN_FLIGHT: usize = 4;
/// Most workloads the cache keeps.
pub(crate) const CACHE_MAX_ENTRIES: usize = 256;
/// Most bytes of workload JSON the cache keeps (a `meta.yaml` may be up to `max_meta_bytes`).
pub(crate) const CACHE_MAX_BYTES: usize = 32 * 1024 * 1024;

pub(super) async fn components(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let row = store::find_ready(&ctx.db, &app, package_param(&call)?).await?;
    let components = store::components_of(&ctx.db, &row).await?;
    let ctx = &ctx;
    let out: Vec<ComponentWorkloadOut> = futures::stream::iter(components)
        .map(|c| async move {
            let workload = workload(ctx, &c).await?;
            Ok::<_, ApiError>(ComponentWorkloadOut {
                component_type: c.component_type,
                component_name: c.component_name,
                package_version: c.package_version,
                workload: Value::clone(&workload),
            })
        })
        .buffered(DOWNLOADS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(RpcReply::ok(out))
}

/// The workload of component `c` (`null` when it has none), from the cache or from S3.
async fn workload(ctx: &Ctx, c: &component_package::Model) -> Result<Arc<Value>, ApiError> {
    if let Some(w) = ctx.workloads.get(&c.s3_key, &c.sha256) {
        return Ok(w);
    }
    let (workload, sha256) = download(ctx, c).await?;
    let workload = Arc::new(workload.unwrap_or(Value::Null));
    // Only bytes that are what the row says are remembered under its digest (a forced re-import
    // may have replaced the object since the row was read).
    if sha256 == c.sha256 {
        ctx.workloads.insert(&c.s3_key, &c.sha256, workload.clone());
    }
    Ok(workload)
}

/// Downloads the component zip (at most the size its row records) to a temporary file and reads
/// its workload; returns it with the SHA-256 of the bytes read.
async fn download(ctx: &Ctx, c: &component_package::Model) -> Result<(Option<Value>, String), ApiError> {
    let size = unsigned("size", c.size).map_err(corrupt)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix("sw-workload-").suffix(".zip");
    let file = match &ctx.cfg.spool_dir {
        Some(d) => builder.tempfile_in(d),
        None => builder.tempfile(),
    }
    .map_err(|e| ApiError::internal(&e))?;
    // Deleted when dropped, whatever happens below.
    let path = file.into_temp_path();
    ctx.storage.get_to_file_capped(&c.s3_key, &path, size).await?;
    let limits = ctx.limits();
    let read = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(FormatError::Io)?;
        let sha256 = sha256_of(&mut file).map_err(FormatError::Io)?;
        file.seek(SeekFrom::Start(0)).map_err(FormatError::Io)?;
        let workload = component_workload(BufReader::new(file), &limits)?;
        Ok::<_, FormatError>((workload, sha256))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    read.map_err(|e| problem(c, e))
}

fn sha256_of(file: &mut std::fs::File) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// A stored component whose `meta.yaml` cannot be read for a launch: 422 with the format's code
/// (the package has to be fixed and imported again); our own disk failing is 500.
fn problem(c: &component_package::Model, e: FormatError) -> ApiError {
    match e {
        FormatError::Io(_) => ApiError::internal(&e),
        other => ApiError::new(
            422,
            other.code(),
            format!("Component {}|{} of the package: {other}", c.component_type, c.component_name),
        ),
    }
}

/// Workloads by `(s3 key, sha256)`, least recently used evicted first, bounded by entry count and
/// by the bytes of their JSON.
pub(crate) struct WorkloadCache {
    inner: Mutex<CacheInner>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, CacheEntry>,
    bytes: usize,
    /// Bumped on every use; an entry's `used` is the tick of its last use.
    tick: u64,
}

struct CacheEntry {
    value: Arc<Value>,
    bytes: usize,
    used: u64,
}

impl std::fmt::Debug for WorkloadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = {
            let inner = self.lock();
            (inner.entries.len(), inner.bytes)
        };
        f.debug_struct("WorkloadCache").field("entries", &entries).field("bytes", &bytes).finish()
    }
}

impl WorkloadCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { inner: Mutex::new(CacheInner::default()), max_entries, max_bytes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // The map is consistent after every statement; a panic elsewhere cannot break it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(s3_key: &str, sha256: &str) -> String {
        format!("{sha256}:{s3_key}")
    }

    pub(crate) fn get(&self, s3_key: &str, sha256: &str) -> Option<Arc<Value>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(&Self::key(s3_key, sha256))?;
        entry.used = tick;
        Some(entry.value.clone())
    }

    /// Keeps `value`, evicting the least recently used entries beyond the bounds. A value larger
    /// than the whole byte budget is not kept.
    pub(crate) fn insert(&self, s3_key: &str, sha256: &str, value: Arc<Value>) {
        let bytes = serde_json::to_vec(&*value).map(|v| v.len()).unwrap_or(usize::MAX);
        if bytes > self.max_bytes || self.max_entries == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let used = inner.tick;
        if let Some(old) = inner.entries.insert(Self::key(s3_key, sha256), CacheEntry { value, bytes, used })
        {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        while inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes {
            // A linear scan: a few hundred entries, and only when full.
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn value(n: usize) -> Arc<Value> {
        Arc::new(json!({ "n": n }))
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let cache = WorkloadCache::new(2, usize::MAX);
        cache.insert("a", "1", value(1));
        cache.insert("b", "2", value(2));
        assert_eq!(cache.get("a", "1").as_deref(), Some(&json!({"n": 1})));
        cache.insert("c", "3", value(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b", "2").is_none(), "b was the least recently used");
        assert!(cache.get("a", "1").is_some());
        assert!(cache.get("c", "3").is_some());
    }

    #[test]
    fn the_digest_is_part_of_the_key() {
        let cache = WorkloadCache::new(8, usize::MAX);
        cache.insert("components/x.zip", "1", value(1));
        assert!(cache.get("components/x.zip", "2").is_none());
        cache.insert("components/x.zip", "2", value(2));
        assert_eq!(cache.get("components/x.zip", "2").as_deref(), Some(&json!({"n": 2})));
        assert_eq!(cache.get("components/x.zip", "1").as_deref(), Some(&json!({"n": 1})));
    }

    #[test]
    fn the_byte_budget_holds() {
        let one = serde_json::to_vec(&*value(1)).unwrap().len();
        let cache = WorkloadCache::new(100, 3 * one);
        for i in 1..=5 {
            cache.insert(&format!("k{i}"), "s", value(i));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("k1", "s").is_none() && cache.get("k2", "s").is_none());
        assert!(cache.get("k5", "s").is_some());
        assert_eq!(cache.lock().bytes, 3 * one);
        // Replacing an entry does not count it twice.
        cache.insert("k5", "s", value(5));
        assert_eq!((cache.len(), cache.lock().bytes), (3, 3 * one));
        // Too large for the whole budget: not kept, nothing evicted for it.
        cache.insert("big", "s", Arc::new(json!({ "x": "y".repeat(4 * one) })));
        assert!(cache.get("big", "s").is_none());
        assert_eq!(cache.len(), 3);
    }
}
