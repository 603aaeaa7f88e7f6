//! Deadline arithmetic before, at and after the deadline, and around the edges of the clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
}

fn rolling() -> Assessment {
    Assessment::new(
        Health::Progressing,
        "Waiting for deployment \"health\" rollout to finish: 1 of 3 updated replicas are available...",
    )
}

#[test]
fn deadline_before_at_and_after() {
    let start = at("2025-11-03T10:00:00Z");
    let deadline = Deadline::from_secs(start, 300);
    assert_eq!(deadline.started_at(), start);
    assert_eq!(deadline.expires_at(), Some(at("2025-11-03T10:05:00Z")));

    // Before: time left, keep watching.
    let before = at("2025-11-03T10:04:59.250Z");
    assert!(!deadline.is_expired(before));
    assert_eq!(deadline.remaining(before), Duration::from_millis(750));
    assert_eq!(deadline.judge(&rolling(), before), Verdict::Wait { remaining: Duration::from_millis(750) });
    assert_eq!(deadline.judge(&rolling(), start), Verdict::Wait { remaining: Duration::from_secs(300) });

    // At: the whole limit has been used.
    let exactly = at("2025-11-03T10:05:00Z");
    assert!(deadline.is_expired(exactly));
    assert_eq!(deadline.remaining(exactly), Duration::ZERO);
    let timed_out = Verdict::TimedOut {
        message:
            "not healthy within 300s: Progressing: Waiting for deployment \"health\" rollout to finish: \
                  1 of 3 updated replicas are available..."
                .to_owned(),
    };
    assert_eq!(deadline.judge(&rolling(), exactly), timed_out);

    // After.
    let after = at("2025-11-03T10:07:30Z");
    assert!(deadline.is_expired(after));
    assert_eq!(deadline.remaining(after), Duration::ZERO);
    assert_eq!(deadline.judge(&rolling(), after), timed_out);
}

#[test]
fn deadline_healthy_is_final_even_late() {
    let start = at("2025-11-03T10:00:00Z");
    let deadline = Deadline::from_secs(start, 60);
    for now in [start, at("2025-11-03T10:01:00Z"), at("2025-11-03T11:00:00Z")] {
        assert_eq!(deadline.judge(&Assessment::healthy(), now), Verdict::Healthy, "at {now}");
    }
}

#[test]
fn deadline_every_unhealthy_state_times_out() {
    let start = at("2025-11-03T10:00:00Z");
    let deadline = Deadline::from_secs(start, 60);
    let late = at("2025-11-03T10:01:00Z");
    let cases = [
        (
            Assessment::new(Health::Degraded, "container \"health\" is waiting: CrashLoopBackOff"),
            "not healthy within 60s: Degraded: container \"health\" is waiting: CrashLoopBackOff",
        ),
        (
            Assessment::new(Health::Suspended, "Deployment is paused"),
            "not healthy within 60s: Suspended: Deployment is paused",
        ),
        (Assessment::missing(), "not healthy within 60s: Missing: object not found"),
        (Assessment { health: Health::Unknown, message: None }, "not healthy within 60s: Unknown"),
    ];
    for (assessment, message) in cases {
        assert!(
            matches!(deadline.judge(&assessment, start), Verdict::Wait { .. }),
            "{assessment:?} before the deadline"
        );
        assert_eq!(deadline.judge(&assessment, late), Verdict::TimedOut { message: message.to_owned() });
    }
    assert_eq!(TIMEOUT_REASON, "Timeout");
}

#[test]
fn deadline_edges() {
    let start = at("2025-11-03T10:00:00Z");

    // A zero limit is spent at the start.
    let none = Deadline::from_secs(start, 0);
    assert!(none.is_expired(start));
    assert!(matches!(none.judge(&rolling(), start), Verdict::TimedOut { .. }));

    // A clock stepped back before the start leaves more time, never less.
    let deadline = Deadline::from_secs(start, 60);
    let earlier = start - TimeDelta::seconds(30);
    assert!(!deadline.is_expired(earlier));
    assert_eq!(deadline.remaining(earlier), Duration::from_secs(90));

    // Sub-second limits are kept.
    let short = Deadline::new(start, Duration::from_millis(1500));
    assert!(!short.is_expired(start + TimeDelta::milliseconds(1499)));
    assert!(short.is_expired(start + TimeDelta::milliseconds(1500)));

    // A limit past the end of representable time never expires instead of overflowing.
    for endless in [Deadline::from_secs(start, u64::MAX), Deadline::new(start, Duration::MAX)] {
        assert_eq!(endless.expires_at(), None);
        assert!(!endless.is_expired(DateTime::<Utc>::MAX_UTC));
        assert_eq!(endless.remaining(start), Duration::MAX);
        assert!(matches!(endless.judge(&rolling(), start), Verdict::Wait { .. }));
    }
}
