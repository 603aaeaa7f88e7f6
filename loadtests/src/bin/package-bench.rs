//! Package import/download through the gateway beside raw S3 PUT/GET of the same bytes.
//!
//! `package-bench` is driven by `loadtests/package-bench.sh`, which starts the platform with the
//! package-store in a process of its own and passes:
//!
//!   SW_BENCH_GATEWAY   gateway base URL (http://127.0.0.1:18090)
//!   SW_BENCH_TOKEN     a bearer token allowed to import packages
//!   SW_BENCH_PS_PID    pid of the package-store process (its RSS is sampled every 20 ms)
//!   SW_BENCH_SIZES     package sizes in MiB, comma-separated (default 10,100,1024)
//!   SW_BENCH_BUCKET    a bucket for the raw S3 runs (created and emptied here)
//!   SREWORKS_S3__*     the S3 server and keys the platform uses
//!
//! Each package is a valid SREWorks app package: a `meta.yaml` and four component zips of random
//! (incompressible) bytes, the zips stored, not deflated, as packages that carry binaries are.
//! Per size it times, in this order: raw S3 PUT of the package file (one PutObject, the way
//! any client would upload it), the same bytes as a raw multipart upload (16 MiB parts, 4 at a
//! time, as the package-store writes), gateway import (streamed body, like `swcli app-package import`),
//! raw S3 GET, gateway download; and reports MiB/s, the gateway/raw ratio, and the package-store
//! process's peak RSS growth over its RSS before each operation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let gateway = env("SW_BENCH_GATEWAY")?;
    let token = env("SW_BENCH_TOKEN")?;
    let pid: u32 = env("SW_BENCH_PS_PID")?.parse().context("SW_BENCH_PS_PID")?;
    let bucket = env("SW_BENCH_BUCKET")?;
    let sizes: Vec<u64> = std::env::var("SW_BENCH_SIZES")
        .unwrap_or_else(|_| "10,100,1024".into())
        .split(',')
        .map(|s| s.trim().parse::<u64>().context("SW_BENCH_SIZES"))
        .collect::<Result<_, _>>()?;
    let s3 = s3_client()?;
    match s3.create_bucket().bucket(&bucket).send().await {
        Ok(_) => {}
        Err(e) if format!("{e:?}").contains("BucketAlready") => {}
        Err(e) => bail!("create bucket {bucket}: {e:?}"),
    }
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for (i, mib) in sizes.iter().enumerate() {
        let version = format!("1.0.{i}");
        let path = dir.path().join(format!("bench-{mib}.zip"));
        eprintln!("building a {mib} MiB package...");
        let size = write_package(&path, "bench", &version, mib * MIB)?;
        let key = format!("raw/{mib}.zip");

        let t = Instant::now();
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .content_length(size as i64)
            .body(ByteStream::from_path(&path).await?)
            .send()
            .await
            .context("raw PUT")?;
        let raw_put = t.elapsed();

        // The same bytes as a multipart upload with the package-store's part size and
        // concurrency: what S3 itself charges for multipart (s3s-fs rewrites the whole object when
        // the upload completes, which a single PUT does not).
        let t = Instant::now();
        multipart_put(&s3, &bucket, &format!("raw/{mib}-multipart.zip"), &path, size).await?;
        let raw_multipart = t.elapsed();
        s3.delete_object().bucket(&bucket).key(format!("raw/{mib}-multipart.zip")).send().await.ok();

        let rss = RssSampler::start(pid);
        let t = Instant::now();
        let file = tokio::fs::File::open(&path).await?;
        let resp = http
            .post(format!("{gateway}/v1/apps/bench/app-packages/import"))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .header("content-length", size)
            .body(reqwest::Body::wrap_stream(file_stream(file)))
            .send()
            .await
            .context("import")?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let import = t.elapsed();
        let import_rss = rss.stop();
        if status.as_u16() != 201 {
            bail!("import of {mib} MiB answered {status}: {body}");
        }
        let id = body["id"].as_u64().context("import answer has no id")?;

        let t = Instant::now();
        let got = s3.get_object().bucket(&bucket).key(&key).send().await.context("raw GET")?;
        let mut reader = got.body.into_async_read();
        let raw_bytes = drain(&mut reader).await?;
        let raw_get = t.elapsed();
        if raw_bytes != size {
            bail!("raw GET returned {raw_bytes} of {size} bytes");
        }

        let rss = RssSampler::start(pid);
        let t = Instant::now();
        let resp = http
            .get(format!("{gateway}/v1/apps/bench/app-packages/{id}/download"))
            .bearer_auth(&token)
            .send()
            .await
            .context("download")?;
        if !resp.status().is_success() {
            bail!("download answered {}", resp.status());
        }
        let mut stream = resp.bytes_stream();
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            got += chunk?.len() as u64;
        }
        let download = t.elapsed();
        let download_rss = rss.stop();
        if got != size {
            bail!("download returned {got} of {size} bytes");
        }
        s3.delete_object().bucket(&bucket).key(&key).send().await.ok();
        http.delete(format!("{gateway}/v1/apps/bench/app-packages/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .ok();
        std::fs::remove_file(&path).ok();
        rows.push(Row { size, raw_put, raw_multipart, import, raw_get, download, import_rss, download_rss });
    }
    s3.delete_bucket().bucket(&bucket).send().await.ok();

    println!();
    println!(
        "{:>9} | {:>12} {:>12} {:>12} {:>6} {:>6} | {:>12} {:>12} {:>6} | {:>12} {:>12}",
        "package",
        "raw PUT",
        "raw mpart",
        "import",
        "/PUT",
        "/mpart",
        "raw GET",
        "download",
        "/GET",
        "RSS+ import",
        "RSS+ dl"
    );
    for r in &rows {
        let put = mibps(r.size, r.raw_put);
        let mp = mibps(r.size, r.raw_multipart);
        let imp = mibps(r.size, r.import);
        let get = mibps(r.size, r.raw_get);
        let dl = mibps(r.size, r.download);
        println!(
            "{:>5} MiB | {:>6.1} MiB/s {:>6.1} MiB/s {:>6.1} MiB/s {:>5.0}% {:>5.0}% | {:>6.1} MiB/s {:>6.1} MiB/s {:>5.0}% | {:>8.1} MiB {:>8.1} MiB",
            r.size / MIB,
            put,
            mp,
            imp,
            100.0 * imp / put,
            100.0 * imp / mp,
            get,
            dl,
            100.0 * dl / get,
            r.import_rss as f64 / MIB as f64,
            r.download_rss as f64 / MIB as f64,
        );
    }
    Ok(())
}

struct Row {
    size: u64,
    raw_put: Duration,
    raw_multipart: Duration,
    import: Duration,
    raw_get: Duration,
    download: Duration,
    import_rss: u64,
    download_rss: u64,
}

fn mibps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64().max(1e-9)
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (run loadtests/package-bench.sh)"))
}

fn s3_client() -> anyhow::Result<aws_sdk_s3::Client> {
    let endpoint = env("SREWORKS_S3__ENDPOINT")?;
    let creds = aws_sdk_s3::config::Credentials::new(
        env("SREWORKS_S3__ACCESS_KEY_ID")?,
        env("SREWORKS_S3__SECRET_ACCESS_KEY")?,
        None,
        None,
        "bench",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(
            std::env::var("SREWORKS_S3__REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .http_client(http)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

/// A file as a stream of 256 KiB chunks (never the whole file in memory).
fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            // Stop after the first error: reqwest aborts the request with it.
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Multipart upload of `path` in 16 MiB parts, 4 at a time (the package-store's settings).
async fn multipart_put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
) -> anyhow::Result<()> {
    use aws_sdk_s3::primitives::Length;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    const PART: u64 = 16 * MIB;
    let up = s3.create_multipart_upload().bucket(bucket).key(key).send().await.context("create multipart")?;
    let id = up.upload_id().context("no upload id")?.to_owned();
    let count = size.div_ceil(PART).max(1);
    let parts: Vec<CompletedPart> = futures::stream::iter(0..count)
        .map(|i| {
            let id = id.clone();
            async move {
                let offset = i * PART;
                let len = PART.min(size - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await?;
                let number = i as i32 + 1;
                let out = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(number)
                    .content_length(len as i64)
                    .body(body)
                    .send()
                    .await?;
                Ok::<_, anyhow::Error>(
                    CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build(),
                )
            }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .context("complete multipart")?;
    Ok(())
}

async fn drain<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).await?;
        if k == 0 {
            return Ok(n);
        }
        n += k as u64;
    }
}

/// Writes a SREWorks app package of about `target` bytes and returns its exact size.
fn write_package(path: &Path, app: &str, version: &str, target: u64) -> anyhow::Result<u64> {
    use zip::write::SimpleFileOptions;
    let stored =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    let parts = 4u64;
    let per = target / parts;
    let tmp = path.with_extension("parts");
    std::fs::create_dir_all(&tmp)?;
    let mut components = Vec::new();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ target);
    for i in 0..parts {
        let name = format!("part{i}");
        let file = tmp.join(format!("K8S_MICROSERVICE_{name}.zip"));
        let mut z = zip::ZipWriter::new(std::fs::File::create(&file)?);
        z.start_file("meta.yaml", stored)?;
        writeln!(
            z,
            "apiVersion: core.oam.dev/v1alpha2\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  workload:\n    kind: Microservice"
        )?;
        z.start_file("payload.bin", stored)?;
        let mut left = per;
        let mut buf = vec![0u8; MIB as usize];
        while left > 0 {
            let n = left.min(MIB) as usize;
            rng.fill(&mut buf[..n]);
            z.write_all(&buf[..n])?;
            left -= n as u64;
        }
        z.finish()?;
        let md5 = md5_of(&file)?;
        components.push((name, file, md5));
    }
    let mut meta = format!(
        "appId: {app}\npackageVersion: {version}\npackageCreator: bench\ntags: []\ncomponentPackages:\n"
    );
    for (name, _, md5) in &components {
        meta.push_str(&format!(
            "- componentType: K8S_MICROSERVICE\n  componentName: {name}\n  packageVersion: {version}\n  relativePath: K8S_MICROSERVICE_{name}.zip\n  packageMd5: {md5}\n"
        ));
    }
    let mut z = zip::ZipWriter::new(std::fs::File::create(path)?);
    z.start_file("meta.yaml", stored)?;
    z.write_all(meta.as_bytes())?;
    for (name, file, _) in &components {
        z.start_file(format!("K8S_MICROSERVICE_{name}.zip"), stored)?;
        std::io::copy(&mut std::fs::File::open(file)?, &mut z)?;
    }
    z.finish()?;
    std::fs::remove_dir_all(&tmp).ok();
    Ok(std::fs::metadata(path)?.len())
}

fn md5_of(path: &PathBuf) -> anyhow::Result<String> {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

struct XorShift(u64);

impl XorShift {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// Samples a process's resident set every 20 ms; `stop` returns the peak growth over the first
/// sample.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    base: u64,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let base = rss_bytes(pid).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(base));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss_bytes(pid) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { stop, peak, base, handle: Some(handle) }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().ok();
        }
        self.peak.load(Ordering::Relaxed).saturating_sub(self.base)
    }
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
