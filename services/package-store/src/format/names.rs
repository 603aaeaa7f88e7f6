//! Entry names and our own walk of the central directory.
//!
//! The walk runs before `zip::ZipArchive` is built: the crate allocates per entry and silently keeps
//! only the last of two same-named entries, so the count limit, duplicate names, unsafe paths and
//! symlink modes are all decided here from the raw central-directory records.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::error::FormatError;
use super::limits::Limits;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_LEN: u64 = 22;
const CENTRAL_LEN: usize = 46;
/// Unix file-type bits and the symlink type, in the high half of the external attributes.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
/// `version made by` host 3 = Unix: only then do the high external-attribute bits carry a mode.
const HOST_UNIX: u8 = 3;

/// Why a name is unsafe (the caller turns it into `PathTraversal`).
#[derive(Debug)]
pub(crate) struct UnsafeName;

/// Accepts a relative, forward-slash path without `.`/`..` components, empty components (except a
/// trailing `/` for directories), backslashes, drive letters or control characters.
pub(crate) fn check_name(raw: &[u8]) -> Result<(), UnsafeName> {
    if raw.is_empty() || raw[0] == b'/' || raw.iter().any(|&b| b == b'\\' || b < 0x20 || b == 0x7f) {
        return Err(UnsafeName);
    }
    // `C:foo` is drive-relative on Windows.
    if raw.len() >= 2 && raw[1] == b':' && raw[0].is_ascii_alphabetic() {
        return Err(UnsafeName);
    }
    let body = raw.strip_suffix(b"/").unwrap_or(raw);
    for part in body.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." || part == b".." {
            return Err(UnsafeName);
        }
    }
    Ok(())
}

/// What the central directory says about one entry.
#[derive(Debug)]
pub(crate) struct CentralEntry {
    pub name: String,
}

/// Walks the central directory of the zip in `reader` and applies the structural checks. Leaves the
/// reader at an unspecified position.
pub(crate) fn scan_central_directory<R: Read + Seek>(
    reader: &mut R,
    limits: &Limits,
) -> Result<Vec<CentralEntry>, FormatError> {
    let len = reader.seek(SeekFrom::End(0)).map_err(FormatError::Io)?;
    if len < EOCD_LEN {
        return Err(FormatError::Corrupt("too short to be a zip".into()));
    }
    // The EOCD is followed by a comment of at most 65535 bytes.
    let tail_len = len.min(EOCD_LEN + 65_535);
    let tail_start = len - tail_len;
    reader.seek(SeekFrom::Start(tail_start)).map_err(FormatError::Io)?;
    let mut tail = vec![0u8; tail_len as usize];
    read_exact(reader, &mut tail)?;
    let eocd_at = (0..=tail.len() - EOCD_LEN as usize)
        .rev()
        .find(|&i| {
            u32le(&tail[i..]) == EOCD_SIG
                && i + EOCD_LEN as usize + u16le(&tail[i + 20..]) as usize == tail.len()
        })
        .ok_or_else(|| FormatError::Corrupt("no end of central directory record".into()))?;
    let eocd = &tail[eocd_at..];
    let eocd_pos = tail_start + eocd_at as u64;
    if u16le(&eocd[4..]) != 0 || u16le(&eocd[6..]) != 0 {
        return Err(FormatError::Unsupported("multi-disk archive".into()));
    }
    let (mut count, mut cd_size, mut cd_offset) =
        (u64::from(u16le(&eocd[10..])), u64::from(u32le(&eocd[12..])), u64::from(u32le(&eocd[16..])));
    let mut cd_end_limit = eocd_pos;
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        // Zip64: the locator sits right before the EOCD and points at the zip64 EOCD record.
        let loc = eocd_at
            .checked_sub(20)
            .map(|at| &tail[at..at + 20])
            .filter(|l| u32le(l) == ZIP64_LOCATOR_SIG)
            .ok_or_else(|| FormatError::Corrupt("zip64 locator missing".into()))?;
        let z64_pos = u64le(&loc[8..]);
        if z64_pos + 56 > eocd_pos {
            return Err(FormatError::Corrupt("zip64 record out of range".into()));
        }
        reader.seek(SeekFrom::Start(z64_pos)).map_err(FormatError::Io)?;
        let mut z64 = [0u8; 56];
        read_exact(reader, &mut z64)?;
        if u32le(&z64) != ZIP64_EOCD_SIG {
            return Err(FormatError::Corrupt("zip64 end of central directory missing".into()));
        }
        (count, cd_size, cd_offset) = (u64le(&z64[32..]), u64le(&z64[40..]), u64le(&z64[48..]));
        cd_end_limit = z64_pos;
    }
    if count > limits.max_entries {
        return Err(FormatError::TooManyEntries { count, limit: limits.max_entries });
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > cd_end_limit) {
        return Err(FormatError::Corrupt("central directory out of range".into()));
    }
    reader.seek(SeekFrom::Start(cd_offset)).map_err(FormatError::Io)?;
    let mut cd = BufReader::new(reader.take(cd_size));
    let mut entries = Vec::with_capacity(count as usize);
    let mut seen = HashSet::with_capacity(count as usize);
    for _ in 0..count {
        let mut h = [0u8; CENTRAL_LEN];
        read_exact(&mut cd, &mut h)?;
        if u32le(&h) != CENTRAL_SIG {
            return Err(FormatError::Corrupt("bad central directory header".into()));
        }
        let host = h[5];
        let external = u32le(&h[38..]);
        let (name_len, extra_len, comment_len) = (u16le(&h[28..]), u16le(&h[30..]), u16le(&h[32..]));
        let mut raw = vec![0u8; name_len as usize];
        read_exact(&mut cd, &mut raw)?;
        let mut skip = vec![0u8; extra_len as usize + comment_len as usize];
        read_exact(&mut cd, &mut skip)?;
        // Names are UTF-8 (flag bit 11) or CP437; the checks above are on bytes, and a lossy
        // rendering is enough for messages and for matching `relativePath` (ASCII in practice).
        let name = String::from_utf8_lossy(&raw).into_owned();
        if check_name(&raw).is_err() {
            return Err(FormatError::PathTraversal { name });
        }
        if host == HOST_UNIX && (external >> 16) & S_IFMT == S_IFLNK {
            return Err(FormatError::Symlink { name });
        }
        if !seen.insert(raw) {
            return Err(FormatError::DuplicateEntry { name });
        }
        entries.push(CentralEntry { name });
    }
    Ok(entries)
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), FormatError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FormatError::Corrupt("truncated central directory".into()),
        _ => FormatError::Io(e),
    })
}

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u64le(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        for ok in ["meta.yaml", "a/b.zip", "dir/", "K8S_MICROSERVICE_health.zip", "x..y", "@a/..b"] {
            assert!(check_name(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn unsafe_names() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "a\\..\\x",
            "C:x",
            "c:/x",
            "a//b",
            "./a",
            "a/./b",
            "a\0b",
            "a\nb",
        ] {
            assert!(check_name(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever is accepted never climbs out of the extraction root.
        #[test]
        fn accepted_names_stay_inside(name in "[a-zA-Z0-9./\\\\:_-]{0,24}") {
            if check_name(name.as_bytes()).is_ok() {
                let p = std::path::Path::new(&name);
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
