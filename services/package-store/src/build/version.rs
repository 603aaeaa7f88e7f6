//! SREWorks package versions: `x.y.z+YYYYMMDDHHMMSSffffff`.
//!
//! AppManager stamps every build with the UTC time in microseconds as semver build metadata, so two
//! builds of the same `x.y.z` still sort by when they were made. We keep that form: a version is
//! three plain numbers and an optional build part, ordered by the numbers and then by the build.
//! Pre-release tags (`1.2.3-rc1`) are not part of the SREWorks scheme and are refused rather than
//! silently misordered.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Longest version string accepted; packages are stored under keys that contain it.
pub const MAX_VERSION_LEN: usize = 128;

/// A parsed `x.y.z[+build]` version. Fields are private so every value went through [`Version::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    build: Option<String>,
}

/// A version string that is not `x.y.z` or `x.y.z+build`; maps to problem code `invalid_version`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct VersionError {
    input: String,
    reason: String,
}

impl VersionError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        // Echo at most a prefix of hostile input back into messages.
        let input: String = input.chars().take(MAX_VERSION_LEN).collect();
        Self { input, reason: reason.into() }
    }

    /// The stable machine code for problem+json.
    pub fn code(&self) -> &'static str {
        "invalid_version"
    }

    /// Always 422: the client sent a version it can fix.
    pub fn status(&self) -> u16 {
        422
    }

    /// The offending input (truncated to [`MAX_VERSION_LEN`] characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was refused, for humans.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Version {
    /// Parses `x.y.z` or `x.y.z+build` where x, y, z are decimal numbers without leading zeros
    /// (`1.02.3` would otherwise equal `1.2.3` yet be a different key) and build is non-empty
    /// `[0-9A-Za-z.-]`.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        if input.is_empty() {
            return Err(VersionError::new(input, "must not be empty; expected x.y.z or x.y.z+build"));
        }
        if input.len() > MAX_VERSION_LEN {
            return Err(VersionError::new(input, format!("longer than {MAX_VERSION_LEN} characters")));
        }
        let (core, build) = match input.split_once('+') {
            Some((core, build)) => (core, Some(build)),
            None => (input, None),
        };
        if core.contains('-') {
            return Err(VersionError::new(input, "pre-release versions (x.y.z-tag) are not supported"));
        }
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 {
            return Err(VersionError::new(
                input,
                format!("expected three numbers x.y.z before any '+', found {} part(s)", parts.len()),
            ));
        }
        let mut nums = [0u64; 3];
        for (slot, (part, what)) in nums.iter_mut().zip(parts.iter().zip(["major", "minor", "patch"])) {
            *slot = parse_number(part).map_err(|why| VersionError::new(input, format!("{what} {why}")))?;
        }
        let build = match build {
            None => None,
            Some("") => return Err(VersionError::new(input, "build part after '+' must not be empty")),
            Some(b) if !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-') => {
                return Err(VersionError::new(
                    input,
                    "build part after '+' may only hold letters, digits, '.' and '-'",
                ));
            }
            Some(b) => Some(b.to_owned()),
        };
        Ok(Self { major: nums[0], minor: nums[1], patch: nums[2], build })
    }

    /// `x.y.z` with `+build` set to `build` (which must itself be valid).
    pub fn new(major: u64, minor: u64, patch: u64, build: Option<&str>) -> Result<Self, VersionError> {
        let text = match build {
            Some(b) => format!("{major}.{minor}.{patch}+{b}"),
            None => format!("{major}.{minor}.{patch}"),
        };
        Self::parse(&text)
    }

    pub fn major(&self) -> u64 {
        self.major
    }
    pub fn minor(&self) -> u64 {
        self.minor
    }
    pub fn patch(&self) -> u64 {
        self.patch
    }
    /// The part after `+`, if any (a timestamp for SREWorks builds).
    pub fn build(&self) -> Option<&str> {
        self.build.as_deref()
    }
}

/// `"0"` or a digit string without a leading zero that fits a `u64`.
fn parse_number(part: &str) -> Result<u64, &'static str> {
    if part.is_empty() {
        return Err("is empty");
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a decimal number");
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err("must not have leading zeros");
    }
    part.parse().map_err(|_| "is too large")
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(b) = &self.build {
            write!(f, "+{b}")?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Ord for Version {
    /// Semver on x.y.z; then no build before a build; then builds that are both all digits by
    /// numeric value (timestamps, whatever their length), otherwise byte-wise; finally byte-wise so
    /// the order agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(
            || match (&self.build, &other.build) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => compare_builds(a, b),
            },
        )
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn compare_builds(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    let by_value = if numeric(a) && numeric(b) {
        let (ta, tb) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
    } else {
        Ordering::Equal
    };
    by_value.then_with(|| a.cmp(b))
}

/// The SREWorks build stamp for `now`: `YYYYMMDDHHMMSSffffff` in UTC (20 digits, microseconds).
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y%m%d%H%M%S%6f").to_string()
}

/// The version for a new package of an app whose newest package is `latest`: its patch + 1 with a
/// fresh timestamp, or `1.0.0+<ts>` for the first package. A `latest` that does not parse (imported
/// from elsewhere) is treated like no package at all, since there is no number to bump; callers
/// should pick `latest` with [`max_version`], which skips such strings.
pub fn next_version(latest: Option<&str>, now: DateTime<Utc>) -> String {
    let (major, minor, patch) = match latest.map(Version::parse) {
        Some(Ok(v)) => (v.major, v.minor, v.patch.saturating_add(1)),
        _ => (1, 0, 0),
    };
    format!("{major}.{minor}.{patch}+{}", timestamp(now))
}

/// Normalises a version the client asked for: `x.y.z` gets `+<timestamp(now)>` appended, a full
/// `x.y.z+build` is kept as given (after trimming whitespace); anything else is `invalid_version`.
pub fn normalize_explicit(input: &str, now: DateTime<Utc>) -> Result<String, VersionError> {
    let v = Version::parse(input.trim())?;
    Ok(match v.build {
        Some(_) => v.to_string(),
        None => format!("{v}+{}", timestamp(now)),
    })
}

/// The greatest of `versions` by [`Version`] order, skipping strings that do not parse.
pub fn max_version<'a, I>(versions: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    versions
        .into_iter()
        .filter_map(|s| Version::parse(s).ok().map(|v| (v, s)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(micros).single().unwrap()
    }

    fn fixed_now() -> DateTime<Utc> {
        // 2023-10-13T22:45:00.845346Z, the stamp of the health fixture.
        Utc.with_ymd_and_hms(2023, 10, 13, 22, 45, 0).unwrap() + chrono::Duration::microseconds(845_346)
    }

    #[test]
    fn timestamp_is_sreworks_shape() {
        assert_eq!(timestamp(fixed_now()), "20231013224500845346");
        assert_eq!(timestamp(at(0)), "19700101000000000000");
        assert_eq!(timestamp(at(1)), "19700101000000000001");
    }

    #[test]
    fn parses_sreworks_versions() {
        let v = Version::parse("22.5.1+20231013224500845346").unwrap();
        assert_eq!((v.major(), v.minor(), v.patch()), (22, 5, 1));
        assert_eq!(v.build(), Some("20231013224500845346"));
        assert_eq!(v.to_string(), "22.5.1+20231013224500845346");
        let plain: Version = "0.0.0".parse().unwrap();
        assert_eq!(plain.build(), None);
    }

    #[test]
    fn rejects_junk_with_a_reason() {
        for (bad, needle) in [
            ("", "empty"),
            ("1.2", "three numbers"),
            ("1.2.3.4", "three numbers"),
            ("v1.2.3", "major must be a decimal"),
            ("1.x.3", "minor must be a decimal"),
            ("1..3", "minor is empty"),
            ("1.2.03", "leading zeros"),
            ("1.2.3+", "must not be empty"),
            ("1.2.3+a/b", "letters, digits"),
            ("1.2.3+a+b", "letters, digits"),
            ("1.2.3-rc1", "pre-release"),
            (" 1.2.3", "major must be a decimal"),
            ("99999999999999999999.0.0", "too large"),
            ("1.2.3+日本", "letters, digits"),
        ] {
            let err = Version::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_version");
            assert_eq!(err.status(), 422);
            assert!(err.to_string().contains(needle), "{bad:?}: {err}");
        }
        let long = format!("1.2.3+{}", "9".repeat(MAX_VERSION_LEN));
        assert!(Version::parse(&long).unwrap_err().reason().contains("longer"));
    }

    #[test]
    fn orders_by_semver_then_build() {
        let sorted = [
            "1.0.0",
            "1.0.0+20231013224500000000",
            "1.0.0+20231013224500000001",
            "1.0.1+19700101000000000000",
            "1.2.0+1",
            "1.10.0+1",
            "2.0.0",
            "22.3.5+20231013225826568980",
        ];
        for w in sorted.windows(2) {
            let (a, b) = (Version::parse(w[0]).unwrap(), Version::parse(w[1]).unwrap());
            assert!(a < b, "{a} < {b}");
        }
        // Numeric builds by value, not by text.
        assert!(Version::parse("1.0.0+9").unwrap() < Version::parse("1.0.0+10").unwrap());
        assert!(Version::parse("1.0.0+abc").unwrap() < Version::parse("1.0.0+abd").unwrap());
    }

    #[test]
    fn next_version_bumps_patch() {
        let now = fixed_now();
        assert_eq!(next_version(None, now), "1.0.0+20231013224500845346");
        assert_eq!(next_version(Some("22.3.5+20231013225826568980"), now), "22.3.6+20231013224500845346");
        assert_eq!(next_version(Some("2.1.9"), now), "2.1.10+20231013224500845346");
        assert_eq!(next_version(Some("not-a-version"), now), "1.0.0+20231013224500845346");
    }

    #[test]
    fn normalize_explicit_appends_or_keeps() {
        let now = fixed_now();
        assert_eq!(normalize_explicit("1.2.3", now).unwrap(), "1.2.3+20231013224500845346");
        assert_eq!(normalize_explicit(" 1.2.3 ", now).unwrap(), "1.2.3+20231013224500845346");
        assert_eq!(normalize_explicit("1.2.3+42", now).unwrap(), "1.2.3+42");
        for bad in ["latest", "1.2", "", "1.2.3+"] {
            assert_eq!(normalize_explicit(bad, now).unwrap_err().code(), "invalid_version");
        }
    }

    #[test]
    fn max_version_skips_junk() {
        let list = ["1.0.0+2", "junk", "1.0.0+10", "0.9.9+99"];
        assert_eq!(max_version(list), Some("1.0.0+10"));
        assert_eq!(max_version(["junk"]), None);
        assert_eq!(max_version(std::iter::empty::<&str>()), None);
    }

    fn version_strategy() -> impl Strategy<Value = (u64, u64, u64, Option<String>)> {
        (any::<u64>(), any::<u64>(), any::<u64>(), proptest::option::of("[0-9A-Za-z.-]{1,24}"))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Version::parse(&s);
        }

        #[test]
        fn display_round_trips((ma, mi, pa, b) in version_strategy()) {
            let v = Version::new(ma, mi, pa, b.as_deref()).unwrap();
            let again = Version::parse(&v.to_string()).unwrap();
            prop_assert_eq!(&again, &v);
            prop_assert_eq!((again.major(), again.minor(), again.patch()), (ma, mi, pa));
        }

        #[test]
        fn order_follows_numbers_first(a in version_strategy(), b in version_strategy()) {
            let va = Version::new(a.0, a.1, a.2, a.3.as_deref()).unwrap();
            let vb = Version::new(b.0, b.1, b.2, b.3.as_deref()).unwrap();
            let by_numbers = (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2));
            if by_numbers != Ordering::Equal {
                prop_assert_eq!(va.cmp(&vb), by_numbers);
            }
            prop_assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
            prop_assert_eq!(va.cmp(&vb) == Ordering::Equal, va == vb);
        }

        #[test]
        fn timestamps_sort_like_time(x in 0i64..253_402_300_799_000_000, y in 0i64..253_402_300_799_000_000) {
            let (tx, ty) = (timestamp(at(x)), timestamp(at(y)));
            prop_assert_eq!(tx.len(), 20);
            let (vx, vy) = (Version::new(1, 0, 0, Some(&tx)).unwrap(), Version::new(1, 0, 0, Some(&ty)).unwrap());
            prop_assert_eq!(vx.cmp(&vy), x.cmp(&y));
        }

        #[test]
        fn next_is_greater_than_latest((ma, mi, pa, b) in version_strategy(), t in 0i64..253_402_300_799_000_000) {
            prop_assume!(pa < u64::MAX);
            let latest = Version::new(ma, mi, pa, b.as_deref()).unwrap().to_string();
            let next = next_version(Some(&latest), at(t));
            let parsed = Version::parse(&next).unwrap();
            prop_assert!(parsed > Version::parse(&latest).unwrap());
            prop_assert_eq!(parsed.patch(), pa + 1);
            let stamp = timestamp(at(t));
            prop_assert_eq!(parsed.build(), Some(stamp.as_str()));
        }

        #[test]
        fn normalize_is_idempotent((ma, mi, pa, b) in version_strategy(), t in 0i64..253_402_300_799_000_000) {
            let input = Version::new(ma, mi, pa, b.as_deref()).unwrap().to_string();
            let once = normalize_explicit(&input, at(t)).unwrap();
            prop_assert!(Version::parse(&once).unwrap().build().is_some());
            prop_assert_eq!(normalize_explicit(&once, at(t + 1)).unwrap(), once);
        }
    }
}
