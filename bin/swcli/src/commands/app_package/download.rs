//! `swcli app-package download`: the zip streamed from the gateway to a temp file next to the
//! target, hashed on the way, checked against `x-checksum-sha256`, then renamed into place — so
//! the target is either the complete, verified package or untouched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{CONTENT_DISPOSITION, HeaderMap};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::transfer::{Meter, STALL_TIMEOUT};
use crate::error::CliError;

/// The header carrying the SHA-256 (hex) of the bytes served.
pub const CHECKSUM_HEADER: &str = "x-checksum-sha256";

/// What was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Whether the gateway announced a checksum (which then matched).
    pub verified: bool,
}

impl Saved {
    pub fn render(&self, as_json: bool) -> String {
        if as_json {
            crate::output::json(&json!({
                "path": self.path.display().to_string(),
                "size": self.size,
                "sha256": self.sha256,
                "verified": self.verified,
            }))
        } else {
            format!(
                "Saved {} ({}, sha256 {}{}).\n",
                self.path.display(),
                crate::output::bytes(self.size),
                self.sha256,
                if self.verified { ", verified" } else { ", not announced by the gateway" }
            )
        }
    }
}

/// The checksum announced in `headers`, if any (lowercase hex); a malformed one is an error.
pub fn announced_checksum(headers: &HeaderMap) -> Result<Option<String>, CliError> {
    let Some(v) = headers.get(CHECKSUM_HEADER) else { return Ok(None) };
    let s = v.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(s))
    } else {
        Err(CliError::Unexpected(format!("{CHECKSUM_HEADER} is not a SHA-256: {s:?}")))
    }
}

/// The file name a `Content-Disposition` header suggests (`filename*` preferred), reduced to a
/// plain name: anything with a path separator, a leading dot or control characters is ignored,
/// so a server can never make swcli write outside the chosen folder.
pub fn suggested_name(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_DISPOSITION)?.to_str().ok()?;
    let mut plain = None;
    let mut extended = None;
    for param in split_params(v).into_iter().skip(1) {
        let Some((k, val)) = param.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "filename" => plain = Some(unquote(val.trim())),
            "filename*" => {
                // RFC 8187: charset'language'percent-encoded
                let val = val.trim();
                let mut parts = val.splitn(3, '\'');
                let (charset, _lang, enc) = (parts.next()?, parts.next()?, parts.next()?);
                if charset.eq_ignore_ascii_case("utf-8") {
                    extended = percent_decode(enc);
                }
            }
            _ => {}
        }
    }
    extended.or(plain).filter(|n| safe_name(n))
}

/// Splits at `;` outside double quotes.
fn split_params(v: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in v.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
            }
            out
        }
        None => s.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn safe_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && !n.contains(['/', '\\'])
        && !n.chars().any(char::is_control)
        && n.len() <= 255
}

/// Where to save: `output` itself, or `name` inside it when it is an existing folder, or `name`
/// in the current folder when no output was given.
pub fn target_path(output: Option<&Path>, name: &str) -> PathBuf {
    match output {
        Some(p) if p.is_dir() => p.join(name),
        Some(p) => p.to_owned(),
        None => PathBuf::from(name),
    }
}

/// Streams `resp`'s body into `target` (see the module doc). `expected` is the announced
/// checksum; each chunk must arrive within [`STALL_TIMEOUT`].
pub async fn save(
    resp: reqwest::Response,
    target: &Path,
    expected: Option<&str>,
    meter: &Meter,
) -> Result<Saved, CliError> {
    save_stream(resp.bytes_stream(), target, expected, meter, STALL_TIMEOUT).await
}

async fn save_stream<S, E>(
    mut stream: S,
    target: &Path,
    expected: Option<&str>,
    meter: &Meter,
    stall: Duration,
) -> Result<Saved, CliError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    CliError: From<E>,
{
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let io =
        |what: &str, e: std::io::Error| CliError::File(format!("cannot {what} {}: {e}", target.display()));
    // In the target's folder, so the final rename is atomic; removed on drop unless persisted.
    let tmp = tempfile::Builder::new()
        .prefix(".swcli-download-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(|e| io("create a temp file next to", e))?;
    let file = tokio::fs::File::from_std(tmp.reopen().map_err(|e| io("write", e))?);
    let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let next = tokio::time::timeout(stall, stream.next()).await.map_err(|_| CliError::TimedOut {
            code: "download_stalled",
            detail: format!("no bytes arrived for {} s ({size} received)", stall.as_secs()),
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk?;
        hasher.update(&chunk);
        writer.write_all(&chunk).await.map_err(|e| io("write", e))?;
        size += chunk.len() as u64;
        meter.advance(chunk.len() as u64);
    }
    writer.flush().await.map_err(|e| io("write", e))?;
    let file = writer.into_inner();
    file.sync_all().await.map_err(|e| io("write", e))?;
    drop(file);
    let sha256 = hex::encode(hasher.finalize());
    if let Some(want) = expected
        && want != sha256
    {
        return Err(CliError::Checksum(format!(
            "received {size} bytes hashing to {sha256}, the gateway announced {want}; nothing was saved"
        )));
    }
    // The temp file is private (0600); a downloaded package is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io("write", e))?;
    }
    tmp.persist(target).map_err(|e| io("save", e.error))?;
    Ok(Saved { path: target.to_owned(), size, sha256, verified: expected.is_some() })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::header::HeaderValue;

    use super::*;

    fn cd(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_DISPOSITION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn file_names_come_from_content_disposition() {
        let n = |v: &str| suggested_name(&cd(v));
        assert_eq!(
            n(r#"attachment; filename="health-22.3.5+20231013225826568980.zip""#).as_deref(),
            Some("health-22.3.5+20231013225826568980.zip")
        );
        assert_eq!(n("attachment; filename=a.zip").as_deref(), Some("a.zip"));
        assert_eq!(
            n(r#"attachment; filename="fallback.zip"; filename*=UTF-8''h%C3%A9-1.0.0%2B1.zip"#).as_deref(),
            Some("hé-1.0.0+1.zip")
        );
        assert_eq!(n(r#"attachment; filename="a;b \"c\".zip""#).as_deref(), Some(r#"a;b "c".zip"#));
        // Nothing that could leave the chosen folder.
        for bad in [
            r#"attachment; filename="../../etc/passwd""#,
            r#"attachment; filename="/tmp/x.zip""#,
            r#"attachment; filename="..\\x.zip""#,
            r#"attachment; filename=".bashrc""#,
            "attachment; filename*=UTF-8''..%2Fx.zip",
            r#"attachment; filename="""#,
            "attachment",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
        assert_eq!(suggested_name(&HeaderMap::new()), None);
    }

    #[test]
    fn checksum_header_must_be_a_sha256() {
        let mut h = HeaderMap::new();
        assert_eq!(announced_checksum(&h).unwrap(), None);
        h.insert(
            CHECKSUM_HEADER,
            HeaderValue::from_static("ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789"),
        );
        assert_eq!(
            announced_checksum(&h).unwrap().unwrap(),
            "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        );
        h.insert(CHECKSUM_HEADER, HeaderValue::from_static("md5:abc"));
        assert!(announced_checksum(&h).is_err());
    }

    #[test]
    fn an_existing_folder_receives_the_suggested_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(target_path(Some(dir.path()), "a.zip"), dir.path().join("a.zip"));
        assert_eq!(target_path(Some(&dir.path().join("b.zip")), "a.zip"), dir.path().join("b.zip"));
        assert_eq!(target_path(None, "a.zip"), PathBuf::from("a.zip"));
    }

    fn chunks(parts: &[&'static [u8]]) -> impl futures::Stream<Item = Result<Bytes, CliError>> + Unpin {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_verified_download_lands_complete() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pkg.zip");
        let meter = Meter::new(Some(11), "test", false);
        let want = sha(b"hello world");
        let saved = save_stream(chunks(&[b"hello ", b"world"]), &target, Some(&want), &meter, STALL_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(saved, Saved { path: target.clone(), size: 11, sha256: want, verified: true });
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert_eq!(leftovers(dir.path()), ["pkg.zip"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[tokio::test]
    async fn a_checksum_mismatch_keeps_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pkg.zip");
        std::fs::write(&target, b"old").unwrap();
        let meter = Meter::new(None, "test", false);
        let err =
            save_stream(chunks(&[b"tampered"]), &target, Some(&sha(b"original")), &meter, STALL_TIMEOUT)
                .await
                .unwrap_err();
        assert!(matches!(err, CliError::Checksum(_)), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(leftovers(dir.path()), ["pkg.zip"]);
    }

    #[tokio::test]
    async fn a_broken_or_stalled_stream_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pkg.zip");
        let meter = Meter::new(None, "test", false);
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(CliError::Unreachable("connection reset".into())),
        ]);
        let err = save_stream(broken, &target, None, &meter, STALL_TIMEOUT).await.unwrap_err();
        assert!(matches!(err, CliError::Unreachable(_)), "{err}");
        assert!(leftovers(dir.path()).is_empty());

        let stalled = chunks(&[b"part"]).chain(futures::stream::pending());
        let err = save_stream(stalled, &target, None, &meter, Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(err, CliError::TimedOut { code: "download_stalled", .. }), "{err}");
        assert!(leftovers(dir.path()).is_empty());
    }
}
