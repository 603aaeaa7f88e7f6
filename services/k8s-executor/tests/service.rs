//! The executor service end to end: commands on this test's real commands stream, the inventory,
//! results and outbox in its real `{id}_executor` database, events read back from its events stream.
//! The cluster is a `tower_test` mock API server (see `common`).

mod common;

use common::{DEPLOYMENT, SERVICE, TestExecutor, apply, target, web};
use serde_json::json;
use sw_contracts::executor::K8sDeleteCommand;

#[tokio::test]
async fn an_apply_command_is_applied_and_its_redelivery_replays_the_result_without_a_second_patch() {
    let mut x = TestExecutor::spawn().await;
    let cmd = apply("cmd-1", 1, web(true));
    x.send_apply(&cmd).await;

    let (name, first) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{first:?}");
    assert_eq!(first.command_id, "cmd-1");
    assert_eq!(first.revision, 1);
    let objects: Vec<(&str, &str)> =
        first.objects.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect();
    assert_eq!(objects, [("Deployment", "shop-prod-web"), ("Service", "shop-prod-web")]);
    assert!(first.pruned.is_empty());
    assert_eq!(x.requests("PATCH"), [format!("PATCH {DEPLOYMENT}"), format!("PATCH {SERVICE}")]);

    x.resend_apply(&cmd, "cmd-1-redelivered").await;
    let (name, again) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    assert_eq!(again, first, "a redelivery reports the recorded result");
    assert_eq!(x.requests("PATCH").len(), 2, "no second apply: {:?}", x.requests(""));
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn an_older_revision_after_a_newer_one_is_refused_as_stale_and_touches_nothing() {
    let mut x = TestExecutor::spawn().await;
    x.send_apply(&apply("cmd-2", 2, web(true))).await;
    let (name, _) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    // The health watcher reads (GET) meanwhile; the refused command must change nothing.
    let before = (x.requests("PATCH"), x.requests("DELETE"));

    x.send_apply(&apply("cmd-1", 1, web(false))).await;
    let (name, refused) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(refused.command_id, "cmd-1");
    assert_eq!(refused.revision, 1);
    assert_eq!(refused.reason.as_deref(), Some("StaleRevision"));
    assert!(refused.message.as_deref().is_some_and(|m| m.contains("revision 2")), "{refused:?}");
    let after = (x.requests("PATCH"), x.requests("DELETE"));
    assert_eq!(after, before, "a refused command sends nothing to the cluster");
    assert_eq!(x.live(), [SERVICE.to_owned(), DEPLOYMENT.to_owned()]);
    x.stop().await;
}

#[tokio::test]
async fn a_helm_component_fails_as_unsupported_without_calling_the_cluster() {
    let mut x = TestExecutor::spawn().await;
    let mut helm = web(false);
    helm.component_type = "HELM".into();
    helm.workload = json!({ "chart": "nginx" });
    x.send_apply(&apply("cmd-helm", 1, helm)).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("unsupported_component_type"));
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("HELM")), "{failed:?}");
    assert!(failed.objects.is_empty());
    assert!(x.requests("").is_empty(), "nothing sent: {:?}", x.requests(""));
    x.stop().await;
}

#[tokio::test]
async fn a_new_revision_prunes_what_it_no_longer_renders_and_a_delete_removes_the_rest() {
    let mut x = TestExecutor::spawn().await;
    x.send_apply(&apply("cmd-1", 1, web(true))).await;
    assert_eq!(x.next_event().await.0, "executor.component.applied");

    x.send_apply(&apply("cmd-2", 2, web(false))).await;
    let (name, second) = x.next_event().await;
    assert_eq!(name, "executor.component.applied");
    let pruned: Vec<&str> = second.pruned.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(pruned, ["Service"]);
    assert_eq!(x.live(), [DEPLOYMENT.to_owned()]);

    let delete = K8sDeleteCommand { command_id: "cmd-3".into(), target: target(), revision: 3 };
    x.send_delete(&delete).await;
    let (name, deleted) = x.next_event().await;
    assert_eq!(name, "executor.component.deleted");
    let pruned: Vec<&str> = deleted.pruned.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(pruned, ["Deployment"]);
    assert!(x.live().is_empty(), "left: {:?}", x.live());
    x.stop().await;
}

#[tokio::test]
async fn a_cluster_that_is_briefly_unavailable_is_retried_and_the_command_reports_once() {
    let mut x = TestExecutor::spawn().await;
    x.fail_next_patches(&[503]);
    x.send_apply(&apply("cmd-1", 1, web(true))).await;

    let (name, applied) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{applied:?}");
    assert_eq!(applied.objects.len(), 2);
    // The 503, then the retry's two applies: the inventory kept the command in flight meanwhile.
    assert_eq!(
        x.requests("PATCH"),
        [format!("PATCH {DEPLOYMENT}"), format!("PATCH {DEPLOYMENT}"), format!("PATCH {SERVICE}")]
    );
    x.no_more_events().await;
    x.stop().await;
}

#[tokio::test]
async fn a_conflict_with_another_field_manager_fails_the_command_is_not_retried_and_holds_nothing() {
    let mut x = TestExecutor::spawn().await;
    x.fail_next_patches(&[409]);
    x.send_apply(&apply("cmd-1", 1, web(true))).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("ApplyConflict"));
    assert_eq!(x.requests("PATCH"), [format!("PATCH {DEPLOYMENT}")], "the apply stops at the conflict");
    x.no_more_events().await;
    assert_eq!(x.requests("PATCH").len(), 1, "not retried");
    // The failed command ended: the operator's next revision is not held behind it as busy.
    x.send_apply(&apply("cmd-2", 2, web(true))).await;
    let (name, applied) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{applied:?}");
    assert_eq!((applied.command_id.as_str(), applied.revision), ("cmd-2", 2));
    x.stop().await;
}

#[tokio::test]
async fn a_command_for_an_unknown_cluster_fails_without_touching_anything() {
    let mut x = TestExecutor::spawn().await;
    let mut cmd = apply("cmd-1", 1, web(false));
    cmd.target.cluster_id = "nowhere".into();
    x.send_apply(&cmd).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed");
    assert_eq!(failed.reason.as_deref(), Some("UnknownCluster"));
    assert!(x.requests("").is_empty());
    x.stop().await;
}

#[tokio::test]
async fn a_cluster_down_for_every_delivery_ends_in_a_failed_event_not_only_the_dead_letter_subject() {
    let mut x = TestExecutor::spawn_with_max_deliver(2).await;
    x.fail_next_patches(&[503, 503, 503]);
    x.send_apply(&apply("cmd-1", 1, web(false))).await;

    let (name, failed) = x.next_event().await;
    assert_eq!(name, "executor.component.failed", "{failed:?}");
    assert_eq!(failed.reason.as_deref(), Some("ClusterUnavailable"));
    assert!(failed.message.as_deref().is_some_and(|m| m.contains("503")), "{failed:?}");
    assert_eq!(x.requests("PATCH").len(), 2, "one apply per delivery");
    x.no_more_events().await;
    x.stop().await;
}

/// Another replica's command still working on the instance (its inventory row written just now)
/// holds a newer command back — retried, then on the last delivery `failed(InstanceBusy)` with
/// nothing applied — and once that work is over (the row untouched for longer than the ack wait
/// and a margin, as after a crash), a newer command takes the instance over.
#[tokio::test]
async fn a_command_waits_while_another_replica_works_on_the_instance_and_takes_over_after_it_died() {
    use sea_orm::ConnectionTrait;
    use sw_k8s_executor::plan::{self, InFlight, Inventory};

    let mut x = TestExecutor::spawn_with_max_deliver(3).await;
    let store = x.store().await;
    let other = plan::begin(&Inventory::default(), &InFlight::apply("elsewhere", 1, Default::default()))
        .expect("begin");
    store.save(&target(), &other, 0).await.expect("the other replica's step");

    x.send_apply(&apply("cmd-2", 2, web(false))).await;
    let (name, busy) = x.next_event().await;
    assert_eq!(name, "executor.component.failed", "{busy:?}");
    assert_eq!(busy.reason.as_deref(), Some("InstanceBusy"), "{busy:?}");
    assert!(busy.message.as_deref().is_some_and(|m| m.contains("elsewhere")), "{busy:?}");
    assert!(x.requests("").is_empty(), "nothing applied while busy: {:?}", x.requests(""));

    // The other replica died: its last step is now older than the ack wait (10 s here) + 5 s.
    let db = sw_db::connect(&x.env.cfg.database, sw_k8s_executor::store::SERVICE).await.expect("db");
    db.execute_unprepared("UPDATE component_inventory SET updated_at = updated_at - INTERVAL 1 MINUTE")
        .await
        .expect("age the row");
    x.send_apply(&apply("cmd-3", 3, web(false))).await;
    let (name, applied) = x.next_event().await;
    assert_eq!(name, "executor.component.applied", "{applied:?}");
    assert_eq!(applied.revision, 3);
    assert_eq!(x.requests("PATCH"), [format!("PATCH {DEPLOYMENT}")]);
    x.stop().await;
}
