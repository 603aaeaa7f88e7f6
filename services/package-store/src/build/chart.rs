//! Uploaded chart archives (`.tgz`, `.tar.gz`, `.zip`, or a plain tar), read without trusting them.
//!
//! An archive is never unpacked onto disk by its entry names: it is streamed twice, once to check
//! it ([`inspect_chart_archive`]) and once to copy its files into a component zip under `chart/`.
//! Both passes apply the same rules: entry names are normalised (`./` dropped) and must stay inside
//! the chart (no `..`, no absolute paths, no drive letters, backslashes or control characters);
//! only regular files and folders are accepted (no symlinks, hard links or devices); no name twice,
//! no file where a folder is needed; the entry count and the bytes that really come out are capped;
//! and no file may itself be a zip, because the package format allows only one level of nesting.
//! The chart is the archive root if it holds `Chart.yaml`, or the single top-level folder that does
//! (`helm package` and `tar czf x.tgz mychart/` both produce that).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use super::error::BuildError;
use super::limits::BuildLimits;

const CHART_FILE: &str = "Chart.yaml";
const MAX_NAME_LEN: usize = 1024;
const CHUNK: usize = 64 * 1024;

/// What an uploaded chart holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartInfo {
    /// `name` from `Chart.yaml`.
    pub name: String,
    /// `version` from `Chart.yaml`.
    pub version: String,
    /// Regular files in the chart.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// The top-level folder the chart sits in inside the archive, if not at its root.
    pub(super) root: Option<String>,
}

/// Checks an uploaded chart archive for `component` and reads its `Chart.yaml`. Cheap enough to
/// run when the upload arrives, so a bad chart fails the request rather than the build later.
pub fn inspect_chart_archive(
    component: &str,
    path: &Path,
    limits: &BuildLimits,
) -> Result<ChartInfo, BuildError> {
    let mut files = HashSet::new();
    let mut chart_yamls: Vec<(String, Vec<u8>)> = Vec::new();
    let mut bytes = 0u64;
    walk(component, path, limits, &mut |name, reader| {
        let depth = name.matches('/').count();
        let is_chart_yaml = name.rsplit('/').next() == Some(CHART_FILE) && depth <= 1;
        let copied = if is_chart_yaml {
            let mut buf = Vec::new();
            let n = reader
                .take(limits.max_spec_bytes + 1)
                .read_to_end(&mut buf)
                .map_err(|e| unreadable(component, &e))? as u64;
            if n > limits.max_spec_bytes {
                return Err(BuildError::TooLarge {
                    what: format!("{CHART_FILE} of {component}"),
                    limit: limits.max_spec_bytes,
                });
            }
            chart_yamls.push((name.to_owned(), buf));
            n
        } else {
            pump(component, reader, &mut io::sink())?
        };
        bytes += copied;
        files.insert(name.to_owned());
        Ok(())
    })?;
    let root = chart_root(&files).ok_or_else(|| BuildError::Chart {
        component: component.to_owned(),
        reason: format!("has no {CHART_FILE} at its root or inside a single top-level folder"),
    })?;
    let wanted = match &root {
        Some(dir) => format!("{dir}/{CHART_FILE}"),
        None => CHART_FILE.to_owned(),
    };
    let text = chart_yamls.iter().find(|(n, _)| *n == wanted).map(|(_, b)| b.as_slice()).unwrap_or_default();
    let (name, version) = parse_chart_yaml(component, text, limits)?;
    Ok(ChartInfo { name, version, files: files.len() as u64, bytes, root })
}

/// Copies the chart's files into `zip` under `prefix` (e.g. `chart/`), re-applying every check.
pub(super) fn copy_chart<W: Write + Seek>(
    component: &str,
    path: &Path,
    info: &ChartInfo,
    limits: &BuildLimits,
    zip: &mut zip::ZipWriter<W>,
    prefix: &str,
) -> Result<(), BuildError> {
    let options = super::assemble::file_options(limits.max_chart_uncompressed_bytes, true);
    walk(component, path, limits, &mut |name, reader| {
        let rel = match &info.root {
            Some(dir) => name.strip_prefix(dir.as_str()).and_then(|r| r.strip_prefix('/')),
            None => Some(name),
        }
        .ok_or_else(|| BuildError::Chart {
            component: component.to_owned(),
            reason: format!("entry {name:?} is outside the chart folder"),
        })?;
        zip.start_file(format!("{prefix}{rel}"), options).map_err(super::assemble::zip_write_error)?;
        pump(component, reader, zip)?;
        Ok(())
    })
}

/// Why the walk stopped inside a guarded read; checked before any other error.
#[derive(Debug, Clone)]
enum Trip {
    TooLarge,
    NestedZip(String),
}

type Visit<'v> = dyn FnMut(&str, &mut dyn Read) -> Result<(), BuildError> + 'v;

/// Streams every regular file of the archive to `visit` with its normalised name, enforcing the
/// module's rules.
fn walk(component: &str, path: &Path, limits: &BuildLimits, visit: &mut Visit<'_>) -> Result<(), BuildError> {
    let bad = |reason: String| BuildError::Chart { component: component.to_owned(), reason };
    let mut file = File::open(path).map_err(BuildError::Io)?;
    let size = file.metadata().map_err(BuildError::Io)?.len();
    if size > limits.max_chart_bytes {
        return Err(BuildError::TooLarge {
            what: format!("the chart archive of {component}"),
            limit: limits.max_chart_bytes,
        });
    }
    let mut head = [0u8; 512];
    let n = read_up_to(&mut file, &mut head).map_err(BuildError::Io)?;
    file.seek(SeekFrom::Start(0)).map_err(BuildError::Io)?;
    let head = &head[..n];
    let mut state = WalkState {
        component,
        limits,
        trip: Rc::new(RefCell::new(None)),
        budget: Rc::new(RefCell::new(limits.max_chart_uncompressed_bytes)),
        entries: 0,
        files: HashSet::new(),
        dirs: HashSet::new(),
    };
    let result = if head.starts_with(&[0x1f, 0x8b]) {
        // The tar stream itself (headers, padding, skipped data) is capped too, not just file data.
        let cap = limits
            .max_chart_uncompressed_bytes
            .saturating_add(limits.max_chart_entries.saturating_add(1).saturating_mul(4096))
            .saturating_add(1 << 20);
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        let capped = Capped { inner: gz, left: cap, trip: state.trip.clone() };
        walk_tar(tar::Archive::new(capped), &mut state, visit)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        walk_zip(file, &mut state, visit)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        walk_tar(tar::Archive::new(BufReader::new(file)), &mut state, visit)
    } else {
        Err(bad("is not a .tgz, .tar.gz or .zip archive".into()))
    };
    let tripped = state.trip.borrow().clone();
    match tripped {
        Some(Trip::TooLarge) => Err(BuildError::TooLarge {
            what: format!("the unpacked chart of {component}"),
            limit: limits.max_chart_uncompressed_bytes,
        }),
        Some(Trip::NestedZip(name)) => Err(bad(format!(
            "file {name:?} is a zip archive; a package may nest zips only one level deep, so pack it another way"
        ))),
        None => result,
    }
}

struct WalkState<'a> {
    component: &'a str,
    limits: &'a BuildLimits,
    trip: Rc<RefCell<Option<Trip>>>,
    /// Bytes of file data still allowed.
    budget: Rc<RefCell<u64>>,
    entries: u64,
    files: HashSet<String>,
    dirs: HashSet<String>,
}

impl WalkState<'_> {
    fn bad(&self, reason: String) -> BuildError {
        BuildError::Chart { component: self.component.to_owned(), reason }
    }

    fn count_entry(&mut self) -> Result<(), BuildError> {
        self.entries += 1;
        if self.entries > self.limits.max_chart_entries {
            return Err(BuildError::TooLarge {
                what: format!("the number of entries in the chart archive of {}", self.component),
                limit: self.limits.max_chart_entries,
            });
        }
        Ok(())
    }

    /// Registers a regular file; refuses duplicates and file/folder clashes.
    fn add_file(&mut self, name: &str) -> Result<(), BuildError> {
        if name.to_ascii_lowercase().ends_with(".zip") {
            return Err(self.bad(format!(
                "file {name:?} is a zip archive; a package may nest zips only one level deep, so pack it another way"
            )));
        }
        if self.dirs.contains(name) || !self.files.insert(name.to_owned()) {
            return Err(self.bad(format!("entry {name:?} appears more than once")));
        }
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            if self.files.contains(dir) {
                return Err(self.bad(format!("{dir:?} is both a file and a folder")));
            }
            self.dirs.insert(dir.to_owned());
            at += i + 1;
        }
        Ok(())
    }

    fn guarded<R: Read>(&self, inner: R, name: &str) -> Guarded<R> {
        Guarded {
            inner,
            budget: self.budget.clone(),
            trip: self.trip.clone(),
            name: name.to_owned(),
            head: Vec::new(),
        }
    }
}

fn walk_tar<R: Read>(
    mut archive: tar::Archive<R>,
    state: &mut WalkState<'_>,
    visit: &mut Visit<'_>,
) -> Result<(), BuildError> {
    let entries = archive.entries().map_err(|e| state.bad(format!("is not a readable tar archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| state.bad(format!("is not a readable tar archive: {e}")))?;
        state.count_entry()?;
        let ty = entry.header().entry_type();
        let raw = entry.path_bytes().into_owned();
        let name = normalise(&raw).map_err(|why| state.bad(why))?;
        use tar::EntryType as T;
        match ty {
            T::XGlobalHeader => continue,
            T::Directory => continue,
            T::Regular | T::Continuous => {}
            T::Symlink | T::Link => {
                return Err(state.bad(format!(
                    "entry {} is a link; only regular files and folders are allowed",
                    show(&raw)
                )));
            }
            other => {
                return Err(state.bad(format!(
                    "entry {} has unsupported type {:?}; only regular files and folders are allowed",
                    show(&raw),
                    other
                )));
            }
        }
        let Some(name) = name else { continue };
        state.add_file(&name)?;
        let mut reader = state.guarded(entry, &name);
        visit(&name, &mut reader)?;
    }
    Ok(())
}

fn walk_zip(file: File, state: &mut WalkState<'_>, visit: &mut Visit<'_>) -> Result<(), BuildError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| state.bad(format!("is not a readable zip archive: {e}")))?;
    for i in 0..archive.len() {
        state.count_entry()?;
        let entry = archive.by_index(i).map_err(|e| state.bad(format!("entry {i} cannot be read: {e}")))?;
        let raw = entry.name_raw().to_vec();
        let name = normalise(&raw).map_err(|why| state.bad(why))?;
        if entry.is_symlink() {
            return Err(state
                .bad(format!("entry {} is a link; only regular files and folders are allowed", show(&raw))));
        }
        if entry.is_dir() {
            continue;
        }
        let Some(name) = name else { continue };
        state.add_file(&name)?;
        let mut reader = state.guarded(entry, &name);
        visit(&name, &mut reader)?;
    }
    Ok(())
}

/// The safe, normalised form of an entry name: `None` for the archive root itself (`./`).
fn normalise(raw: &[u8]) -> Result<Option<String>, String> {
    let shown = show(raw);
    let text = std::str::from_utf8(raw).map_err(|_| format!("entry {shown} has a name that is not UTF-8"))?;
    if text.len() > MAX_NAME_LEN {
        return Err(format!("entry {shown} has a name longer than {MAX_NAME_LEN} bytes"));
    }
    if text.starts_with('/') || text.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!("entry {shown} has an unsafe path"));
    }
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(format!("entry {shown} has an unsafe path"));
    }
    if let Some(first) = parts.first()
        && first.len() >= 2
        && first.as_bytes()[1] == b':'
        && first.as_bytes()[0].is_ascii_alphabetic()
    {
        return Err(format!("entry {shown} has an unsafe path"));
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

fn show(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(200)]);
    format!("{text:?}")
}

/// Where the chart is: `Some(None)` at the root, `Some(Some(dir))` in the single top-level folder.
fn chart_root(files: &HashSet<String>) -> Option<Option<String>> {
    if files.contains(CHART_FILE) {
        return Some(None);
    }
    let mut tops = files.iter().map(|f| f.split('/').next().unwrap_or_default());
    let first = tops.next()?;
    if tops.all(|t| t == first)
        && files.iter().all(|f| f.contains('/'))
        && files.contains(&format!("{first}/{CHART_FILE}"))
    {
        return Some(Some(first.to_owned()));
    }
    None
}

fn parse_chart_yaml(
    component: &str,
    text: &[u8],
    limits: &BuildLimits,
) -> Result<(String, String), BuildError> {
    let bad = |reason: String| BuildError::Chart { component: component.to_owned(), reason };
    let value: serde_yaml::Value =
        serde_yaml::from_slice(text).map_err(|e| bad(format!("{CHART_FILE} is not valid YAML: {e}")))?;
    if super::binder::weigh(&value, 2 * limits.max_spec_bytes.max(text.len() as u64) + 1024).is_none() {
        return Err(bad(format!("{CHART_FILE} expands far beyond its size (YAML aliases)")));
    }
    let field = |key: &str| match value.get(key) {
        Some(serde_yaml::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let name = field("name").ok_or_else(|| bad(format!("{CHART_FILE} has no name")))?;
    let version = field("version").ok_or_else(|| bad(format!("{CHART_FILE} has no version")))?;
    Ok((name, version))
}

fn unreadable(component: &str, e: &io::Error) -> BuildError {
    BuildError::Chart { component: component.to_owned(), reason: format!("cannot be read: {e}") }
}

/// Copies `reader` to `writer`, telling a broken archive (the client's) from a failed write (ours).
fn pump<W: Write + ?Sized>(
    component: &str,
    reader: &mut dyn Read,
    writer: &mut W,
) -> Result<u64, BuildError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(component, &e)),
        };
        writer.write_all(&buf[..n]).map_err(BuildError::Io)?;
        total += n as u64;
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A reader that stops with an error once `left` bytes have been read.
struct Capped<R> {
    inner: R,
    left: u64,
    trip: Rc<RefCell<Option<Trip>>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.trip.borrow_mut().get_or_insert(Trip::TooLarge);
            return Err(io::Error::other("chart archive unpacks beyond the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The reader of one file: charges the shared byte budget and refuses zip content.
struct Guarded<R> {
    inner: R,
    budget: Rc<RefCell<u64>>,
    trip: Rc<RefCell<Option<Trip>>>,
    name: String,
    head: Vec<u8>,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        {
            let mut budget = self.budget.borrow_mut();
            if n as u64 > *budget {
                self.trip.borrow_mut().get_or_insert(Trip::TooLarge);
                return Err(io::Error::other("chart unpacks beyond the limit"));
            }
            *budget -= n as u64;
        }
        if self.head.len() < 4 {
            let take = (4 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
            if self.head.len() == 4 && (self.head == b"PK\x03\x04" || self.head == b"PK\x05\x06") {
                self.trip.borrow_mut().get_or_insert(Trip::NestedZip(self.name.clone()));
                return Err(io::Error::other("zip inside a chart"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_or_refused() {
        assert_eq!(normalise(b"./a/b.yaml").unwrap().as_deref(), Some("a/b.yaml"));
        assert_eq!(normalise(b"a//b/./c").unwrap().as_deref(), Some("a/b/c"));
        assert_eq!(normalise(b"./").unwrap(), None);
        for bad in [&b"../x"[..], b"a/../../x", b"/etc/passwd", b"a\\b", b"C:/x", b"c:x", b"a\0b", b"\xff"] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chart_roots() {
        let set = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
        assert_eq!(chart_root(&set(&["Chart.yaml", "templates/a.yaml"])), Some(None));
        assert_eq!(chart_root(&set(&["g/Chart.yaml", "g/templates/a.yaml"])), Some(Some("g".into())));
        assert_eq!(chart_root(&set(&["g/Chart.yaml", "h/x"])), None);
        assert_eq!(chart_root(&set(&["g/sub/Chart.yaml"])), None);
        assert_eq!(chart_root(&set(&[])), None);
    }

    proptest::proptest! {
        /// Whatever is accepted is a relative path of plain components.
        #[test]
        fn accepted_names_stay_inside(name in "[a-zA-Z0-9./\\\\:_-]{0,24}") {
            if let Ok(Some(n)) = normalise(name.as_bytes()) {
                let p = std::path::Path::new(&n);
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
