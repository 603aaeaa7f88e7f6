//! The scenario bodies, each run on the emulator and (where it makes sense) on a real cluster.
//! What only the emulator can show — the request log — is checked when the backend is the emulator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use sw_contracts::executor::{Health, ObjectRef};
use sw_k8s_executor::render::{
    ANNOTATION_REVISION, LABEL_APP_ID, LABEL_COMPONENT, LABEL_COMPONENT_INSTANCE, LABEL_INSTANCE,
    LABEL_MANAGED_BY, LABEL_STAGE, owner_selector,
};
use sw_k8s_executor::store::Store;

use crate::executor::{ALL, Executor, NO_CONFIGMAP, Parts, Timing, component, refs};
use crate::harness::{Backend, Logged, api_path};

const APPLIED: &str = "executor.component.applied";
const FAILED: &str = "executor.component.failed";
const DELETED: &str = "executor.component.deleted";
const HEALTHY: &str = "executor.component.healthy";
/// How long a real cluster's controllers may take to delete an object or roll out a pod.
const CLUSTER_SETTLE: Duration = Duration::from_secs(120);

/// The emulator's request log after `since`, writes only (the health watch's reads pass).
async fn writes_since(backend: &Backend, since: Option<u64>) -> Option<Vec<Logged>> {
    let e = backend.emulator_only()?;
    Some(e.requests(since).await.into_iter().filter(Logged::is_write).collect())
}

/// The id of the emulator's last logged request (`None` on a real cluster).
async fn log_mark(backend: &Backend) -> Option<u64> {
    match backend.emulator_only() {
        Some(e) => Some(e.last_request_id().await),
        None => None,
    }
}

fn revision_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["annotations"][ANNOTATION_REVISION].as_str()
}

/// Every object of `want` exists, labelled as the instance's and annotated with `revision`.
async fn assert_live(x: &Executor, want: &[ObjectRef], revision: &str) {
    for r in want {
        let live = x.live(r).await.unwrap_or_else(|| panic!("{} {} does not exist", r.kind, r.name));
        assert_eq!(revision_of(&live), Some(revision), "{} {}: {}", r.kind, r.name, live["metadata"]);
        let labels = &live["metadata"]["labels"];
        for (key, value) in [
            (LABEL_MANAGED_BY, "sreworks"),
            (LABEL_APP_ID, "shop"),
            (LABEL_STAGE, "prod"),
            (LABEL_COMPONENT, "web"),
            (LABEL_INSTANCE, "shop-prod"),
            (LABEL_COMPONENT_INSTANCE, "web"),
        ] {
            assert_eq!(labels[key], value, "label {key} of {} {}: {labels}", r.kind, r.name);
        }
    }
}

/// Names of the objects of `kind_path` (e.g. `configmaps`) in the test namespace carrying the
/// instance's owner labels.
async fn owned_names(x: &Executor, group_version_path: &str, plural: &str) -> Vec<String> {
    let selector = owner_selector(&x.target()).replace('/', "%2F").replace('=', "%3D").replace(',', "%2C");
    let path = format!("{group_version_path}/namespaces/{}/{plural}?labelSelector={selector}", x.namespace);
    let list =
        x.backend.send("GET", &path, "", Value::Null).await.unwrap_or_else(|e| panic!("list {plural}: {e}"));
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|o| o["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

pub async fn a_microservice_is_server_side_applied_with_ownership_labels(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    let since = log_mark(&x.backend).await;
    x.send_apply(&x.apply("cmd-1", 1, component(ALL, 1))).await;

    let (name, applied) = x.next_result().await;
    assert_eq!(name, APPLIED, "{applied:?}");
    assert_eq!((applied.command_id.as_str(), applied.revision), ("cmd-1", 1));
    assert_eq!(applied.reason, None, "{applied:?}");
    let want = refs(&x.namespace, ALL);
    assert_eq!(applied.objects, want);
    assert!(applied.pruned.is_empty());
    assert_live(&x, &want, "1").await;

    if let Some(writes) = writes_since(&x.backend, since).await {
        let paths: Vec<&str> = writes.iter().map(|w| w.path.as_str()).collect();
        let want_paths: Vec<String> = want.iter().map(api_path).collect();
        assert_eq!(paths, want_paths, "one apply per object, in render order, nothing else");
        for w in &writes {
            assert_eq!(w.method, "PATCH", "{w:?}");
            assert_eq!(w.query.get("fieldManager").map(String::as_str), Some("sreworks"), "{w:?}");
            assert!(!w.query.contains_key("force"), "never forced: {w:?}");
            let content_type = w.content_type.as_deref().unwrap_or_default();
            assert!(content_type.starts_with("application/apply-patch+yaml"), "{w:?}");
            assert_eq!(revision_of(&w.body), Some("1"), "{w:?}");
        }
    }
    x.no_more_results().await;
    x.stop().await;
}

/// KubeVela #6746/#7278: A→B→A sent in a burst. B's prune of the ConfigMap may only happen while B
/// is the newest revision the executor has started; once A again is, nothing A renders is deleted.
pub async fn rapid_a_b_a_revisions_never_delete_what_the_newest_renders(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    let since = log_mark(&x.backend).await;
    let parts_of = |revision: u64| if revision == 2 { NO_CONFIGMAP } else { ALL };
    let commands: Vec<_> =
        (1..=3).map(|rev| x.apply(&format!("cmd-{rev}"), rev, component(parts_of(rev), 1))).collect();
    for cmd in &commands {
        x.send_apply(cmd).await;
    }

    // The executor works on several commands at once, so a later revision may start before an
    // earlier one: the earlier one is then refused as stale, never applied over it.
    let mut results = BTreeMap::new();
    for _ in 0..3 {
        let (name, result) = x.next_result().await;
        if name != APPLIED {
            assert_eq!(name, FAILED, "{result:?}");
            assert_eq!(result.reason.as_deref(), Some("StaleRevision"), "{result:?}");
            assert_ne!(result.revision, 3, "the newest revision is never stale: {result:?}");
            continue;
        }
        results.insert(result.revision, result);
    }
    assert!(results.contains_key(&3), "the newest revision is applied: {results:?}");
    let configmap = refs(&x.namespace, ALL)[0].clone();
    if let Some(r1) = results.get(&1) {
        assert!(r1.pruned.is_empty(), "{r1:?}");
    }
    // B prunes the ConfigMap only A renders — when A was applied before it (else there is none).
    let a_then_b = results.contains_key(&1) && results.contains_key(&2);
    if let Some(r2) = results.get(&2) {
        let expected = if a_then_b { vec![configmap.clone()] } else { Vec::new() };
        assert_eq!(r2.pruned, expected, "{r2:?}");
    }
    assert!(results[&3].pruned.is_empty(), "the second A prunes nothing: {:?}", results[&3]);
    assert_eq!(results[&3].objects, refs(&x.namespace, ALL));
    assert_live(&x, &refs(&x.namespace, ALL), "3").await;

    if let Some(writes) = writes_since(&x.backend, since).await {
        // Walk the log: a DELETE must never hit an object that the newest revision applied so far
        // renders.
        let mut newest = 0u64;
        for w in &writes {
            match w.method.as_str() {
                "PATCH" => {
                    let rev =
                        revision_of(&w.body).and_then(|r| r.parse().ok()).expect("a revision annotation");
                    newest = newest.max(rev);
                }
                "DELETE" => {
                    let rendered: Vec<String> =
                        refs(&x.namespace, parts_of(newest)).iter().map(api_path).collect();
                    assert!(
                        !rendered.contains(&w.path),
                        "DELETE {} while revision {newest}, which renders it, was applied",
                        w.path
                    );
                }
                other => panic!("unexpected {other} {}", w.path),
            }
        }
        let deletes: Vec<String> =
            writes.iter().filter(|w| w.method == "DELETE").map(|w| w.path.clone()).collect();
        let expected: Vec<String> = if a_then_b { vec![api_path(&configmap)] } else { Vec::new() };
        assert_eq!(deletes, expected, "only B's prune deletes, and only when A then B were applied");
        let last_cm_write = writes.iter().rev().find(|w| w.path == api_path(&configmap)).expect("writes");
        assert_eq!((last_cm_write.method.as_str(), revision_of(&last_cm_write.body)), ("PATCH", Some("3")));
    }
    x.no_more_results().await;
    x.stop().await;
}

pub async fn an_older_revision_arriving_late_is_refused_and_changes_nothing(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    x.send_apply(&x.apply("cmd-5", 5, component(ALL, 1))).await;
    let (name, applied) = x.next_result().await;
    assert_eq!((name.as_str(), applied.revision), (APPLIED, 5), "{applied:?}");
    let since = log_mark(&x.backend).await;

    // Revision 3 would scale to 2 and drop the ConfigMap.
    x.send_apply(&x.apply("cmd-3", 3, component(NO_CONFIGMAP, 2))).await;
    let (name, refused) = x.next_result().await;
    assert_eq!(name, FAILED, "{refused:?}");
    assert_eq!((refused.command_id.as_str(), refused.revision), ("cmd-3", 3));
    assert_eq!(refused.reason.as_deref(), Some("StaleRevision"), "{refused:?}");
    assert!(refused.message.as_deref().is_some_and(|m| m.contains("revision 5")), "{refused:?}");
    assert!(refused.pruned.is_empty());

    let all = refs(&x.namespace, ALL);
    assert_live(&x, &all, "5").await;
    let deployment = x.live(&all[1]).await.expect("the Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1, "still revision 5's spec");
    if let Some(writes) = writes_since(&x.backend, since).await {
        assert!(writes.is_empty(), "a refused revision writes nothing: {writes:?}");
    }
    x.no_more_results().await;
    x.stop().await;
}

pub async fn prune_and_delete_remove_exactly_the_instances_objects(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    let since = log_mark(&x.backend).await;
    x.send_apply(&x.apply("cmd-1", 1, component(ALL, 1))).await;
    assert_eq!(x.next_result().await.0, APPLIED);
    let ours = refs(&x.namespace, ALL);

    // Someone else creates a ConfigMap carrying every one of the instance's labels (and even its
    // revision annotation); the executor never created it, so it is not in the inventory.
    let our_configmap = x.live(&ours[0]).await.expect("our ConfigMap");
    let stranger_path = format!("/api/v1/namespaces/{}/configmaps/shop-prod-web-extra", x.namespace);
    let stranger = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "shop-prod-web-extra",
            "labels": our_configmap["metadata"]["labels"],
            "annotations": { ANNOTATION_REVISION: "1" },
        },
        "data": { "mine": "not sreworks'" },
    });
    let create = format!("/api/v1/namespaces/{}/configmaps?fieldManager=someone-else", x.namespace);
    x.backend.send("POST", &create, "application/json", stranger).await.expect("the stranger's ConfigMap");

    x.send_apply(&x.apply("cmd-2", 2, component(NO_CONFIGMAP, 1))).await;
    let (name, second) = x.next_result().await;
    assert_eq!(name, APPLIED, "{second:?}");
    assert_eq!(second.pruned, [ours[0].clone()], "only our ConfigMap is pruned");
    x.backend.wait_gone(&api_path(&ours[0]), CLUSTER_SETTLE).await;
    assert!(x.backend.get(&stranger_path).await.is_some(), "the stranger's ConfigMap survives the prune");

    x.send_delete("cmd-3", 3).await;
    let (name, deleted) = x.next_result().await;
    assert_eq!(name, DELETED, "{deleted:?}");
    let pruned: BTreeSet<ObjectRef> = deleted.pruned.iter().cloned().collect();
    assert_eq!(pruned, ours[1..].iter().cloned().collect(), "the delete removes the Deployment and Service");
    for r in &ours[1..] {
        x.backend.wait_gone(&api_path(r), CLUSTER_SETTLE).await;
    }
    assert_eq!(owned_names(&x, "/api/v1", "configmaps").await, ["shop-prod-web-extra"]);
    assert!(owned_names(&x, "/apis/apps/v1", "deployments").await.is_empty());
    assert!(owned_names(&x, "/api/v1", "services").await.is_empty());

    if let Some(writes) = writes_since(&x.backend, since).await {
        let mut deletes: Vec<&str> =
            writes.iter().filter(|w| w.method == "DELETE").map(|w| w.path.as_str()).collect();
        deletes.sort_unstable();
        let mut want: Vec<String> = ours.iter().map(api_path).collect();
        want.sort();
        assert_eq!(deletes, want, "each of the instance's objects deleted once, nothing else");
        assert!(writes.iter().all(|w| w.method != "DELETE" || w.path != stranger_path));
    }
    x.no_more_results().await;
    x.stop().await;
}

pub async fn a_field_another_manager_owns_fails_as_a_conflict_and_is_not_forced(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    x.send_apply(&x.apply("cmd-1", 1, component(NO_CONFIGMAP, 1))).await;
    assert_eq!(x.next_result().await.0, APPLIED);
    let deployment = refs(&x.namespace, NO_CONFIGMAP)[0].clone();
    let path = api_path(&deployment);

    // An autoscaler-like client takes spec.replicas over with another value.
    x.backend
        .send(
            "PATCH",
            &format!("{path}?fieldManager=scaler"),
            "application/merge-patch+json",
            json!({ "spec": { "replicas": 3 } }),
        )
        .await
        .expect("the scaler's patch");
    let since = log_mark(&x.backend).await;

    x.send_apply(&x.apply("cmd-2", 2, component(NO_CONFIGMAP, 1))).await;
    let (name, failed) = x.next_result().await;
    assert_eq!(name, FAILED, "{failed:?}");
    assert_eq!((failed.command_id.as_str(), failed.revision), ("cmd-2", 2));
    assert_eq!(failed.reason.as_deref(), Some("ApplyConflict"), "{failed:?}");
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("replicas")), "{failed:?}");

    let live = x.live(&deployment).await.expect("the Deployment");
    assert_eq!(live["spec"]["replicas"], 3, "the scaler's value stays");
    assert_eq!(revision_of(&live), Some("1"), "revision 2 did not land");
    if let Some(writes) = writes_since(&x.backend, since).await {
        let paths: Vec<(&str, &str)> = writes.iter().map(|w| (w.method.as_str(), w.path.as_str())).collect();
        assert_eq!(paths, [("PATCH", path.as_str())], "the apply stops at the conflict, nothing deleted");
        assert!(writes.iter().all(|w| !w.query.contains_key("force")), "never forced: {writes:?}");
    }
    x.no_more_results().await;
    x.stop().await;
}

/// The executor dies while the Deployment's apply hangs (the ConfigMap is applied already, the
/// command is in flight in the inventory, the consumer's transaction is open). A new executor on
/// the same database and durable consumer gets the redelivery and finishes it: one `applied`, every
/// object there, an inventory with nothing in flight.
pub async fn killed_mid_apply(backend: Backend) {
    let mut x = Executor::prepare(backend).await;
    let all = refs(&x.namespace, ALL);
    let deployment = api_path(&all[1]);
    let e = x.backend.emulator_only().expect("the delay control is the emulator's");
    assert!(deployment.chars().all(|c| c.is_ascii_alphanumeric() || "/-".contains(c)), "no regex specials");
    e.delay("PATCH", &format!("^{deployment}$"), 300).await;
    let since = e.last_request_id().await;

    let killable = x.start_killable(Timing { ack_wait: Duration::from_secs(10) });
    x.send_apply(&x.apply("cmd-1", 1, component(ALL, 1))).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = x.backend.emulator_only().expect("emulator");
        if e.requests(Some(since)).await.iter().any(|r| r.method == "PATCH" && r.path == deployment) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the Deployment's apply never reached the API");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    killable.kill();
    let store = Store::open(&x.env.cfg.database).await.expect("the executor's database");
    let (crashed, _) = store.load(&x.target()).await.expect("the inventory");
    let in_flight = crashed.in_flight.as_ref().map(|f| (f.command_id.as_str(), f.revision));
    assert_eq!(in_flight, Some(("cmd-1", 1)), "killed mid-apply: {crashed:?}");
    assert_eq!(crashed.applied_revision, None, "{crashed:?}");
    x.backend.emulator_only().expect("emulator").release_delays().await;

    // A short ack wait: the killed executor's delivery is redelivered soon.
    x.start(Timing { ack_wait: Duration::from_secs(2) }).await;
    let (name, applied) = x.next_result().await;
    assert_eq!(name, APPLIED, "{applied:?}");
    assert_eq!((applied.command_id.as_str(), applied.revision), ("cmd-1", 1));
    assert_eq!(applied.objects, all);
    x.no_more_results().await;
    assert_live(&x, &all, "1").await;

    let (inventory, _) = store.load(&x.target()).await.expect("the inventory");
    assert_eq!(inventory.inconsistency(), None, "{inventory:?}");
    assert_eq!(inventory.applied_revision, Some(1), "{inventory:?}");
    assert_eq!(inventory.last_command_id.as_deref(), Some("cmd-1"));
    assert_eq!(inventory.in_flight, None, "nothing left in flight: {inventory:?}");
    let all_set: BTreeSet<ObjectRef> = all.iter().cloned().collect();
    assert_eq!(inventory.applied, all_set);
    assert_eq!(inventory.owned, all_set);
    assert!(!inventory.deleted);

    let writes = writes_since(&x.backend, Some(since)).await.expect("emulator");
    assert!(writes.iter().all(|w| w.method == "PATCH"), "nothing deleted: {writes:?}");
    let deployment_patches = writes.iter().filter(|w| w.path == deployment).count();
    assert!(deployment_patches >= 2, "the held apply and the resumed one: {writes:?}");
    x.stop().await;
}

/// A component whose rollout completes is reported `healthy` after `applied` (on the emulator the
/// test plays the Deployment controller; on a real cluster the pause pod really starts).
pub async fn a_component_that_rolls_out_is_reported_healthy(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    x.send_apply(&x.apply("cmd-1", 1, component(ALL, 1))).await;
    let (name, applied) = x.next_event().await;
    assert_eq!(name, APPLIED, "{applied:?}");
    let deployment = api_path(&refs(&x.namespace, ALL)[1]);
    x.backend.complete_rollout(&deployment).await;

    let (name, healthy) = x.next_event_within(CLUSTER_SETTLE).await;
    assert_eq!(name, HEALTHY, "{healthy:?}");
    assert_eq!((healthy.command_id.as_str(), healthy.revision), ("cmd-1", 1));
    assert_eq!(healthy.health, Health::Healthy);
    assert_eq!(healthy.objects, refs(&x.namespace, ALL));
    x.no_more_events().await;
    x.stop().await;
}

/// KubeVela #7045: a component that never becomes healthy must not be waited for forever — it ends
/// `failed` with reason `Timeout` at its deadline, not before, and nothing is reported after.
pub async fn a_component_that_never_becomes_healthy_fails_with_timeout_at_its_deadline(backend: Backend) {
    let mut x = Executor::spawn(backend).await;
    let bare = Parts { service: false, configmap: false };
    let mut component = component(bare, 1);
    // An image that does not exist: a real cluster's pod never starts.
    component.workload["containers"][0]["image"] = "registry.k8s.io/pause:0.0.0-does-not-exist".into();
    let mut cmd = x.apply("cmd-1", 1, component);
    cmd.health_deadline_secs = 3;
    let sent = tokio::time::Instant::now();
    x.send_apply(&cmd).await;
    let (name, applied) = x.next_event().await;
    assert_eq!(name, APPLIED, "{applied:?}");

    let (name, failed) = x.next_event().await;
    let waited = sent.elapsed();
    assert_eq!(name, FAILED, "{failed:?}");
    assert_eq!((failed.command_id.as_str(), failed.revision), ("cmd-1", 1));
    assert_eq!(failed.reason.as_deref(), Some("Timeout"), "{failed:?}");
    assert_ne!(failed.health, Health::Healthy, "{failed:?}");
    assert!(waited >= Duration::from_secs(3), "reported after {waited:?}, before the 3 s deadline");

    // The watch is over: a rollout completing now is not reported.
    x.backend.complete_rollout(&api_path(&refs(&x.namespace, bare)[0])).await;
    x.no_more_events().await;
    x.stop().await;
}
