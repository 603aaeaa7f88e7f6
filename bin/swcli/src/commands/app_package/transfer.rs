//! Streamed transfers: request bodies read from files chunk by chunk, a progress bar on stderr,
//! and stall detection.
//!
//! A [`Meter`] is shared by the body stream(s) of one upload and the watchdog around the request:
//! the stream counts the bytes the HTTP stack pulls, and [`Meter::watch`] fails the request when
//! the stack has pulled nothing for [`STALL_TIMEOUT`] while body bytes remain (a dead network
//! otherwise hangs until the whole-transfer deadline). Once the body is sent, the platform's
//! processing time is bounded by that deadline alone.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
// tokio's clock, so tests can pause time.
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use crate::error::CliError;

/// A transfer that moves no bytes for this long has failed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Read size of file-backed bodies: large enough for few syscalls, small enough to bound memory.
const CHUNK: usize = 256 * 1024;

/// Progress of one transfer; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct Meter {
    inner: Arc<Inner>,
}

struct Inner {
    bar: ProgressBar,
    /// Bytes expected through the counted bodies (0 when nothing is streamed).
    total: u64,
    moved: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` of the last movement.
    last_ms: AtomicU64,
    /// The counted bodies have been read to the end.
    done: AtomicBool,
    /// The first error reading a body file: reported instead of the HTTP stack's vaguer one.
    read_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("total", &self.inner.total)
            .field("moved", &self.inner.moved.load(Ordering::Relaxed))
            .finish()
    }
}

impl Meter {
    /// A meter for `total` bytes (`None`: unknown, a spinner); the bar is drawn only when `show`.
    pub fn new(total: Option<u64>, label: &str, show: bool) -> Meter {
        let bar = if !show {
            ProgressBar::hidden()
        } else if let Some(len) = total {
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style)
        } else {
            let style = ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style)
        };
        bar.set_message(label.to_owned());
        Meter {
            inner: Arc::new(Inner {
                bar,
                total: total.unwrap_or(0),
                moved: AtomicU64::new(0),
                started: Instant::now(),
                last_ms: AtomicU64::new(0),
                done: AtomicBool::new(total == Some(0)),
                read_error: Mutex::new(None),
            }),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Starts counting from zero again (a request is being sent anew).
    pub fn restart(&self) {
        self.inner.moved.store(0, Ordering::Relaxed);
        self.inner.done.store(self.inner.total == 0, Ordering::Relaxed);
        self.inner.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.inner.bar.set_position(0);
    }

    /// Counts `n` bytes moved.
    pub fn advance(&self, n: u64) {
        let moved = self.inner.moved.fetch_add(n, Ordering::Relaxed) + n;
        self.inner.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.inner.bar.inc(n);
        if self.inner.total > 0 && moved >= self.inner.total {
            self.inner.done.store(true, Ordering::Relaxed);
        }
    }

    /// Time since bytes last moved.
    fn idle(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.inner.last_ms.load(Ordering::Relaxed)))
    }

    /// Removes the bar from the terminal.
    pub fn clear(&self) {
        self.inner.bar.finish_and_clear();
    }

    /// A request body streaming `file` (opened fresh by the caller) and counting what is read.
    pub fn file_body(&self, file: std::fs::File, path: &Path) -> reqwest::Body {
        let meter = self.clone();
        let path = path.display().to_string();
        let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), CHUNK).map(move |r| {
            match &r {
                Ok(chunk) => meter.advance(chunk.len() as u64),
                Err(e) => {
                    let mut slot = meter.inner.read_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert_with(|| format!("cannot read {path}: {e}"));
                }
            }
            r
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// Runs the request `fut`, failing it when the body stops moving for [`STALL_TIMEOUT`], and
    /// reporting a local read error as such rather than as a network failure.
    pub async fn watch<T>(&self, fut: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
        let stalled = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !self.inner.done.load(Ordering::Relaxed) && self.idle() >= STALL_TIMEOUT {
                    return;
                }
            }
        };
        let result = tokio::select! {
            r = fut => r,
            () = stalled => Err(CliError::TimedOut {
                code: "upload_stalled",
                detail: format!(
                    "no bytes could be sent for {} s ({} of {} sent)",
                    STALL_TIMEOUT.as_secs(),
                    self.inner.moved.load(Ordering::Relaxed),
                    self.inner.total
                ),
            }),
        };
        let read_error = self.inner.read_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (result, read_error) {
            (Err(_), Some(detail)) => Err(CliError::File(detail)),
            (r, _) => r,
        }
    }
}

/// Opens a file to upload and returns it with its length; it must be a regular file.
pub fn open_upload(path: &Path) -> Result<(std::fs::File, u64), CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::File(format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata().map_err(|e| CliError::File(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(CliError::File(format!("{} is not a regular file", path.display())));
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_body_counts_every_byte_and_ends_done() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut tmp, &data).unwrap();
        let (file, len) = open_upload(tmp.path()).unwrap();
        assert_eq!(len, data.len() as u64);
        let meter = Meter::new(Some(len), "test", false);
        meter.restart();
        let body = meter.file_body(file, tmp.path());
        let mut stream = http_body_stream(body);
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
        assert_eq!(meter.inner.moved.load(Ordering::Relaxed), len);
        assert!(meter.inner.done.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_body_that_stops_moving_is_reported_as_stalled() {
        tokio::time::pause();
        let meter = Meter::new(Some(10), "test", false);
        meter.restart();
        // The request never pulls the body: after the stall timeout the watch gives up.
        let never = std::future::pending::<Result<(), CliError>>();
        let err = meter.watch(never).await.unwrap_err();
        assert!(matches!(err, CliError::TimedOut { code: "upload_stalled", .. }), "{err}");
    }

    #[tokio::test]
    async fn nothing_to_stream_never_stalls() {
        tokio::time::pause();
        let meter = Meter::new(Some(0), "test", false);
        let slow = async {
            tokio::time::sleep(STALL_TIMEOUT * 3).await;
            Ok::<_, CliError>(7)
        };
        assert_eq!(meter.watch(slow).await.unwrap(), 7);
    }

    #[test]
    fn directories_are_not_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(open_upload(dir.path()), Err(CliError::File(_))));
        assert!(matches!(open_upload(&dir.path().join("missing.zip")), Err(CliError::File(_))));
    }

    /// The body as a stream of chunks, the way the HTTP stack reads it.
    fn http_body_stream(
        body: reqwest::Body,
    ) -> impl futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Unpin {
        Box::pin(futures::stream::unfold(body, |mut body| async move {
            use http_body_util::BodyExt;
            loop {
                match body.frame().await? {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), body));
                        }
                    }
                    Err(e) => return Some((Err(e), body)),
                }
            }
        }))
    }
}
