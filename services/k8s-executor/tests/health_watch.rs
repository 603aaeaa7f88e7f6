//! The health watch after `applied`, end to end (real NATS and MariaDB, a mock API server whose
//! objects' status the tests set), and the watch store's lease and compare-and-swap rules.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{DEPLOYMENT, TestExecutor, apply, target, target_of, web};
use serde_json::{Value, json};
use sw_contracts::executor::{ComponentResult, Health, K8sDeleteCommand, ObjectRef, RenderedComponent};
use sw_k8s_executor::health::{Assessment, TIMEOUT_REASON};
use sw_k8s_executor::service::WatchSettings;
use sw_k8s_executor::store::{NewWatch, SERVICE, Store, Upserted};
use sw_testkit::TestEnv;

/// A short poll, so a test sees several checks within its quiet periods.
fn settings() -> WatchSettings {
    WatchSettings {
        poll: Duration::from_millis(200),
        lease: Duration::from_secs(5),
        ..WatchSettings::default()
    }
}

async fn spawn() -> TestExecutor {
    TestExecutor::spawn_with(5, settings()).await
}

fn rolled_out() -> Value {
    json!({ "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1 })
}

fn stuck() -> Value {
    json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0,
        "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }],
    })
}

fn deployment_of(component: &str) -> String {
    format!("/apis/apps/v1/namespaces/shop/deployments/shop-prod-{component}")
}

async fn expect_event(x: &mut TestExecutor, name: &str) -> ComponentResult {
    let (got, result) = x.next_event().await;
    assert_eq!(got, name, "{result:?}");
    result
}

/// Waits until a check of the watch has seen `health`.
async fn seen(x: &TestExecutor, health: Health) {
    let t = target();
    x.wait_for_watch(&t, |w| w.observed.as_ref().is_some_and(|a| a.health == health)).await;
}

#[tokio::test]
async fn a_component_is_reported_healthy_once_its_status_flips_and_its_watch_ends() {
    let mut x = spawn().await;
    x.send_apply(&apply("cmd-1", 1, web(true))).await;
    let applied = expect_event(&mut x, "executor.component.applied").await;
    assert_eq!(applied.health, Health::Progressing, "no status yet: {applied:?}");

    // Watched, and not reported while progressing.
    seen(&x, Health::Progressing).await;
    x.no_events_for(Duration::from_secs(1)).await;

    x.set_status(DEPLOYMENT, rolled_out());
    let healthy = expect_event(&mut x, "executor.component.healthy").await;
    assert_eq!(healthy.command_id, "cmd-1");
    assert_eq!(healthy.revision, 1);
    assert_eq!(healthy.health, Health::Healthy);
    assert_eq!(healthy.reason, None);
    assert_eq!(healthy.objects, applied.objects);
    assert!(x.watch_of(&target()).await.is_none(), "the watch ended");
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_component_never_healthy_fails_with_timeout_at_its_deadline_and_not_before() {
    let mut x = spawn().await;
    let mut cmd = apply("cmd-1", 1, web(false));
    cmd.health_deadline_secs = 2;
    let start = Utc::now();
    x.send_apply(&cmd).await;
    expect_event(&mut x, "executor.component.applied").await;

    let (ev, failed) = x.next_cloud_event().await;
    assert_eq!(ev.name(), "executor.component.failed", "{failed:?}");
    assert!(ev.time >= start + TimeDelta::seconds(2), "reported at {} before the deadline", ev.time);
    assert_eq!(failed.command_id, "cmd-1");
    assert_eq!(failed.reason.as_deref(), Some(TIMEOUT_REASON));
    assert_eq!(failed.health, Health::Progressing);
    let message = failed.message.as_deref().unwrap_or_default();
    assert!(message.contains("not healthy within 2s") && message.contains("rollout"), "{message}");
    assert!(x.watch_of(&target()).await.is_none(), "the watch ended");
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn an_unreachable_cluster_does_not_end_the_watch_early_and_the_timeout_says_so() {
    let mut x = spawn().await;
    let mut cmd = apply("cmd-1", 1, web(false));
    cmd.health_deadline_secs = 2;
    let start = Utc::now();
    x.send_apply(&cmd).await;
    expect_event(&mut x, "executor.component.applied").await;
    seen(&x, Health::Progressing).await;
    x.fail_gets(true);

    let (ev, failed) = x.next_cloud_event().await;
    assert_eq!(ev.name(), "executor.component.failed", "{failed:?}");
    assert!(ev.time >= start + TimeDelta::seconds(2), "reported at {} before the deadline", ev.time);
    assert_eq!(failed.reason.as_deref(), Some(TIMEOUT_REASON));
    assert_eq!(failed.health, Health::Unknown);
    let message = failed.message.as_deref().unwrap_or_default();
    assert!(message.contains("cluster unreachable") && message.contains("503"), "{message}");
    assert!(message.contains("last seen: Progressing"), "{message}");
    x.stop().await;
}

#[tokio::test]
async fn degraded_is_reported_once_and_the_watch_goes_on_until_healthy() {
    let mut x = spawn().await;
    x.send_apply(&apply("cmd-1", 1, web(false))).await;
    expect_event(&mut x, "executor.component.applied").await;

    x.set_status(DEPLOYMENT, stuck());
    let degraded = expect_event(&mut x, "executor.component.degraded").await;
    assert_eq!(degraded.command_id, "cmd-1");
    assert_eq!(degraded.health, Health::Degraded);
    assert!(degraded.message.as_deref().is_some_and(|m| m.contains("progress deadline")), "{degraded:?}");
    // Many polls later, still degraded and still watched, but reported once.
    x.no_more_events().await;
    let w = x.watch_of(&target()).await.expect("still watched");
    assert_eq!(w.reported, Some(Health::Degraded));

    x.set_status(DEPLOYMENT, rolled_out());
    let healthy = expect_event(&mut x, "executor.component.healthy").await;
    assert_eq!(healthy.command_id, "cmd-1");
    x.no_more_events().await;
    x.stop().await;
}

/// The instance's objects replaced by one ConfigMap (healthy as soon as it exists).
fn settings_only() -> RenderedComponent {
    RenderedComponent {
        component_type: "K8S_MANIFESTS".into(),
        component_name: "web".into(),
        package_version: Some("1.0.1".into()),
        workload: json!({ "manifests": [{
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "web-settings" },
            "data": { "level": "info" },
        }] }),
        traits: Vec::new(),
    }
}

#[tokio::test]
async fn objects_healthy_as_applied_are_reported_healthy_with_applied_and_end_the_older_watch() {
    // Watches are looked at once a minute: a `healthy` within the test's wait is not the watch's.
    let slow = WatchSettings { poll: Duration::from_secs(60), ..settings() };
    let mut x = TestExecutor::spawn_with(5, slow).await;
    x.send_apply(&apply("cmd-1", 1, web(false))).await;
    expect_event(&mut x, "executor.component.applied").await;
    assert!(x.watch_of(&target()).await.is_some(), "a Deployment rolling out is watched");

    x.send_apply(&apply("cmd-2", 2, settings_only())).await;
    let applied = expect_event(&mut x, "executor.component.applied").await;
    assert_eq!((applied.command_id.as_str(), applied.health), ("cmd-2", Health::Healthy), "{applied:?}");
    // At once, not after a poll of a watch: there is none, and revision 1's ended.
    let healthy = expect_event(&mut x, "executor.component.healthy").await;
    assert_eq!((healthy.command_id.as_str(), healthy.revision), ("cmd-2", 2));
    assert_eq!(healthy.health, Health::Healthy);
    assert_eq!(healthy.objects, applied.objects);
    assert!(x.watch_of(&target()).await.is_none(), "nothing is watched");
    // Revision 1's Deployment (pruned) is never reported on, not even at its deadline.
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_newer_revision_supersedes_the_older_watch_and_a_replay_of_the_older_does_not_return() {
    let mut x = spawn().await;
    let first = apply("cmd-1", 1, web(true));
    x.send_apply(&first).await;
    expect_event(&mut x, "executor.component.applied").await;
    seen(&x, Health::Progressing).await;

    x.send_apply(&apply("cmd-2", 2, web(false))).await;
    let second = expect_event(&mut x, "executor.component.applied").await;
    assert_eq!(second.revision, 2);
    let w = x.watch_of(&target()).await.expect("watched");
    assert_eq!((w.command_id.as_str(), w.revision), ("cmd-2", 2));

    // The first command redelivered: its result is replayed, its watch is not restored.
    x.resend_apply(&first, "cmd-1-again").await;
    let replayed = expect_event(&mut x, "executor.component.applied").await;
    assert_eq!(replayed.command_id, "cmd-1");
    let w = x.watch_of(&target()).await.expect("watched");
    assert_eq!((w.command_id.as_str(), w.revision), ("cmd-2", 2));

    x.set_status(DEPLOYMENT, rolled_out());
    let healthy = expect_event(&mut x, "executor.component.healthy").await;
    assert_eq!((healthy.command_id.as_str(), healthy.revision), ("cmd-2", 2));
    assert_eq!(healthy.objects, second.objects);
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_delete_drops_the_watch_so_no_timeout_follows() {
    let mut x = spawn().await;
    let mut cmd = apply("cmd-1", 1, web(false));
    cmd.health_deadline_secs = 2;
    x.send_apply(&cmd).await;
    expect_event(&mut x, "executor.component.applied").await;

    x.send_delete(&K8sDeleteCommand { command_id: "cmd-2".into(), target: target(), revision: 2 }).await;
    expect_event(&mut x, "executor.component.deleted").await;
    assert!(x.watch_of(&target()).await.is_none(), "the delete ended the watch");
    // Past the 2 s deadline: a watch left behind would have timed out by now.
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_watch_outlives_a_restart_of_the_service() {
    let mut x = spawn().await;
    x.send_apply(&apply("cmd-1", 1, web(false))).await;
    expect_event(&mut x, "executor.component.applied").await;
    let before = x.wait_for_watch(&target(), |w| w.observed.is_some()).await;

    x.restart().await;
    let after = x.watch_of(&target()).await.expect("still watched");
    assert_eq!(after.started_at, before.started_at, "the deadline counts from the first start");
    x.set_status(DEPLOYMENT, rolled_out());
    let healthy = expect_event(&mut x, "executor.component.healthy").await;
    assert_eq!(healthy.command_id, "cmd-1");
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn two_services_on_one_database_report_each_healthy_exactly_once() {
    let mut x = spawn().await;
    let other = x.another().await;
    let components = ["web", "api", "worker"];
    for (i, c) in components.iter().enumerate() {
        let mut cmd = apply(&format!("cmd-{c}"), 1, web(false));
        cmd.target = target_of(c);
        x.send_apply(&cmd).await;
        let applied = expect_event(&mut x, "executor.component.applied").await;
        assert_eq!(applied.target.component_instance, *c, "apply {i}");
    }
    for c in components {
        x.wait_for_watch(&target_of(c), |w| w.observed.is_some()).await;
    }
    // Both replicas poll every 200 ms through the quiet period: neither reports progress.
    x.no_events_for(Duration::from_secs(1)).await;

    for c in components {
        x.set_status(&deployment_of(c), rolled_out());
    }
    let mut healthy = Vec::new();
    for _ in components {
        let r = expect_event(&mut x, "executor.component.healthy").await;
        healthy.push(r.target.component_instance);
    }
    healthy.sort();
    assert_eq!(healthy, ["api", "web", "worker"]);
    x.no_more_events().await;
    other.stop().await;
    x.stop().await;
}

// The store's rules, with the clock passed in.

fn object(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

fn new_watch(command_id: &str, revision: u64) -> NewWatch {
    NewWatch {
        command_id: command_id.into(),
        revision,
        target: target(),
        objects: vec![object("Deployment", "shop-prod-web")],
        deadline_secs: 60,
    }
}

#[tokio::test]
async fn a_redelivery_keeps_its_start_a_newer_revision_replaces_and_an_older_one_never_does() {
    let env = TestEnv::new();
    let store = Store::open(&env.cfg.database).await.expect("migrates");
    let db = env.db(SERVICE).await;
    let t0 = Utc::now();
    let t1 = t0 + TimeDelta::seconds(10);

    assert_eq!(store.upsert_watch(&db, &new_watch("cmd-1", 1), t0).await.expect("upsert"), Upserted::Started);
    assert_eq!(store.upsert_watch(&db, &new_watch("cmd-1", 1), t1).await.expect("upsert"), Upserted::Kept);
    let w = store.watch_of(&target()).await.expect("read").expect("watched");
    assert_eq!(w.started_at.timestamp_micros(), t0.timestamp_micros(), "a redelivery keeps the start");

    assert_eq!(
        store.upsert_watch(&db, &new_watch("cmd-2", 2), t1).await.expect("upsert"),
        Upserted::Replaced
    );
    assert_eq!(
        store.upsert_watch(&db, &new_watch("cmd-1", 1), t1).await.expect("upsert"),
        Upserted::Superseded
    );
    let w = store.watch_of(&target()).await.expect("read").expect("watched");
    assert_eq!((w.command_id.as_str(), w.revision), ("cmd-2", 2));
    assert_eq!(w.started_at.timestamp_micros(), t1.timestamp_micros());

    // A failure of the older revision (a refused stale command) leaves the newer watch alone.
    assert!(!store.remove_watch(&db, &target(), "cmd-1", 1).await.expect("remove"));
    assert!(store.watch_of(&target()).await.expect("read").is_some());
    assert!(store.remove_watch(&db, &target(), "cmd-3", 3).await.expect("remove"));
    assert!(store.watch_of(&target()).await.expect("read").is_none());
    env.cleanup().await;
}

#[tokio::test]
async fn a_leased_watch_is_one_owners_until_the_lease_runs_out_and_the_loser_writes_nothing() {
    let env = TestEnv::new();
    let store = Store::open(&env.cfg.database).await.expect("migrates");
    let db = env.db(SERVICE).await;
    let lease = Duration::from_secs(30);
    let t0 = Utc::now();
    store.upsert_watch(&db, &new_watch("cmd-1", 1), t0).await.expect("upsert");

    let a = store.claim_watches("a", t0, lease, 10).await.expect("claim");
    assert_eq!(a.len(), 1);
    let a = a.into_iter().next().expect("one").expect("parses");
    assert_eq!(a.lease_owner.as_deref(), Some("a"));
    assert!(
        store.claim_watches("b", t0 + TimeDelta::seconds(29), lease, 10).await.expect("claim").is_empty()
    );
    // The owner renews its own lease.
    let renewed = store.claim_watches("a", t0 + TimeDelta::seconds(1), lease, 10).await.expect("claim");
    let a = renewed.into_iter().next().expect("one").expect("parses");

    // `a` stalls past its lease: `b` takes over, and `a`'s writes on its old version fail.
    let b = store.claim_watches("b", t0 + TimeDelta::seconds(32), lease, 10).await.expect("claim");
    let b = b.into_iter().next().expect("taken over").expect("parses");
    assert!(b.version > a.version);
    let seen = Assessment::new(Health::Degraded, "stuck");
    let lost = store.touch_watch(&db, a.id, a.version, Some(&seen), Some(Health::Degraded), t0, lease).await;
    assert_eq!(lost.expect("touch"), None);
    assert!(!store.finish_watch(&db, a.id, a.version).await.expect("finish"));
    let v = store.touch_watch(&db, b.id, b.version, Some(&seen), Some(Health::Degraded), t0, lease).await;
    let v = v.expect("touch").expect("b holds it");
    let w = store.watch_of(&target()).await.expect("read").expect("watched");
    assert_eq!((w.observed, w.reported, w.version), (Some(seen), Some(Health::Degraded), v));

    // Released leases are due at once, for anyone.
    assert_eq!(store.release_watches("b").await.expect("release"), 1);
    let c = store.claim_watches("c", t0, lease, 10).await.expect("claim");
    let c = c.into_iter().next().expect("released").expect("parses");
    assert!(store.finish_watch(&db, c.id, c.version).await.expect("finish"));
    assert!(store.watch_of(&target()).await.expect("read").is_none());
    env.cleanup().await;
}

#[tokio::test]
async fn results_older_than_the_retention_are_deleted_in_bounded_batches() {
    let env = TestEnv::new();
    let store = Store::open(&env.cfg.database).await.expect("migrates");
    let result = |id: &str| ComponentResult {
        command_id: id.into(),
        target: target(),
        revision: 1,
        health: Health::Healthy,
        reason: None,
        message: None,
        objects: Vec::new(),
        pruned: Vec::new(),
    };
    for id in ["old-1", "old-2", "old-3"] {
        store
            .record_result(id, &target(), 1, "executor.component.applied", &result(id))
            .await
            .expect("record");
    }
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    store
        .record_result("new", &target(), 1, "executor.component.applied", &result("new"))
        .await
        .expect("record");

    assert_eq!(store.delete_results_before(cutoff, 2).await.expect("sweep"), 2);
    assert_eq!(store.delete_results_before(cutoff, 2).await.expect("sweep"), 1);
    assert_eq!(store.delete_results_before(cutoff, 2).await.expect("sweep"), 0);
    for id in ["old-1", "old-2", "old-3"] {
        assert!(store.result_of(id).await.expect("read").is_none(), "{id} kept");
    }
    assert!(store.result_of("new").await.expect("read").is_some(), "a recent result is kept");
    env.cleanup().await;
}
