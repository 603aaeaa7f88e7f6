//! The inventory store against the real MariaDB: each test has its own `{id}_executor` database.

mod common;

use std::collections::BTreeSet;

use common::target_of as target;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sw_contracts::executor::{ComponentResult, Health, ObjectRef};
use sw_k8s_executor::plan::{
    self, ApplyDecision, ApplyInput, InFlight, Inventory, Phase, after_apply, after_prune, begin,
    decide_apply,
};
use sw_k8s_executor::store::{SERVICE, Store, StoreError};
use sw_testkit::TestEnv;

async fn open(env: &TestEnv) -> Store {
    Store::open(&env.cfg.database).await.expect("executor database migrates")
}

fn object(kind: &str, name: &str) -> ObjectRef {
    let api_version = if kind == "Service" { "v1" } else { "apps/v1" };
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

/// An instance with revision 1 of `refs` applied, as the transitions produce it.
fn applied(command_id: &str, revision: u64, refs: &[ObjectRef]) -> Inventory {
    let refs: BTreeSet<ObjectRef> = refs.iter().cloned().collect();
    let started = begin(&Inventory::default(), &InFlight::apply(command_id, revision, refs)).expect("begin");
    after_apply(&started, command_id).expect("after_apply")
}

fn is_conflict(r: &Result<u64, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

#[tokio::test]
async fn inventory_round_trips_and_versions_advance() {
    let env = TestEnv::new();
    let store = open(&env).await;
    let web = target("web");

    assert_eq!(store.load(&web).await.expect("load"), (Inventory::default(), 0));
    let first = applied("cmd-1", 1, &[object("Deployment", "web"), object("Service", "web")]);
    assert_eq!(store.save(&web, &first, 0).await.expect("first save"), 1);
    assert_eq!(store.load(&web).await.expect("load"), (first.clone(), 1));

    let second =
        begin(&first, &InFlight::apply("cmd-2", 2, [object("Deployment", "web")].into())).expect("begin");
    assert_eq!(store.save(&web, &second, 1).await.expect("second save"), 2);
    assert_eq!(store.load(&web).await.expect("load"), (second, 2));

    // Another component instance of the same app instance is a row of its own.
    assert_eq!(store.load(&target("worker")).await.expect("load"), (Inventory::default(), 0));
    env.cleanup().await;
}

#[tokio::test]
async fn of_two_writers_from_one_version_exactly_one_wins() {
    let env = TestEnv::new();
    let (a, b) = (open(&env).await, open(&env).await);
    let web = target("web");
    let base = applied("cmd-1", 1, &[object("Deployment", "web")]);
    a.save(&web, &base, 0).await.expect("first save");

    for round in 1..=5u64 {
        let (inv, version) = a.load(&web).await.expect("load");
        // Each round writes twice: the winner's begin and its finish.
        assert_eq!(version, 2 * round - 1);
        let next_a =
            begin(&inv, &InFlight::apply(format!("a-{round}"), round + 1, inv.applied.clone())).expect("a");
        let next_b =
            begin(&inv, &InFlight::apply(format!("b-{round}"), round + 1, inv.applied.clone())).expect("b");
        let (ra, rb) = tokio::join!(a.save(&web, &next_a, version), b.save(&web, &next_b, version));
        assert!(ra.is_ok() != rb.is_ok(), "exactly one writer wins: {ra:?} {rb:?}");
        assert!(is_conflict(&ra) || is_conflict(&rb), "the loser gets a conflict: {ra:?} {rb:?}");
        let winner = if ra.is_ok() { &next_a } else { &next_b };
        // Finish the winner's command so the next round starts from a settled inventory.
        let id = winner.in_flight.as_ref().expect("in flight").command_id.clone();
        let done = after_apply(winner, &id).expect("after_apply");
        assert_eq!(a.load(&web).await.expect("load"), (winner.clone(), version + 1));
        a.save(&web, &done, version + 1).await.expect("finish");
    }
    // A writer still holding an old version can never overwrite.
    let (inv, version) = b.load(&web).await.expect("load");
    assert!(is_conflict(&b.save(&web, &inv, version - 1).await));
    assert!(is_conflict(&b.save(&web, &inv, version + 1).await));
    assert_eq!(b.load(&web).await.expect("load"), (inv, version));
    env.cleanup().await;
}

#[tokio::test]
async fn of_two_first_saves_one_conflicts() {
    let env = TestEnv::new();
    let (a, b) = (open(&env).await, open(&env).await);
    for i in 0..5 {
        let t = target(&format!("race-{i}"));
        let inv_a = applied("a", 1, &[object("Deployment", "from-a")]);
        let inv_b = applied("b", 1, &[object("Deployment", "from-b")]);
        let (ra, rb) = tokio::join!(a.save(&t, &inv_a, 0), b.save(&t, &inv_b, 0));
        assert!(ra.is_ok() != rb.is_ok(), "exactly one first save wins: {ra:?} {rb:?}");
        assert!(is_conflict(&ra) || is_conflict(&rb), "{ra:?} {rb:?}");
        let winner = if ra.is_ok() { inv_a } else { inv_b };
        assert_eq!(a.load(&t).await.expect("load"), (winner, 1));
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_stored_inventory_that_is_inconsistent_or_unreadable_is_refused() {
    let env = TestEnv::new();
    let store = open(&env).await;
    let db = env.db(SERVICE).await;
    let web = target("web");
    let good = applied("cmd-1", 1, &[object("Deployment", "web")]);
    store.save(&web, &good, 0).await.expect("save");

    // Applied objects that are not owned: a prune could then never be computed correctly.
    let mut bad = good.clone();
    bad.owned.clear();
    assert!(matches!(store.save(&web, &bad, 1).await, Err(StoreError::Invalid { .. })));
    assert_eq!(store.load(&web).await.expect("unchanged"), (good, 1));

    let edit = |json: String| {
        Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE component_inventory SET inventory = ? WHERE component_instance = 'web'",
            [json.into()],
        )
    };
    db.execute(edit(serde_json::to_string(&bad).expect("json"))).await.expect("edit row");
    match store.load(&web).await {
        Err(StoreError::Corrupt { problem, .. }) => assert!(problem.contains("owned"), "{problem}"),
        other => panic!("an inconsistent row must be refused, got {other:?}"),
    }
    db.execute(edit("{not json".into())).await.expect("edit row");
    assert!(matches!(store.load(&web).await, Err(StoreError::Corrupt { .. })));
    env.cleanup().await;
}

#[tokio::test]
async fn results_are_recorded_once_and_replayed() {
    let env = TestEnv::new();
    let store = open(&env).await;
    let web = target("web");
    let result = ComponentResult {
        command_id: "cmd-1".into(),
        target: web.clone(),
        revision: 3,
        health: Health::Progressing,
        reason: None,
        message: None,
        objects: vec![object("Deployment", "web")],
        pruned: vec![object("Service", "old")],
    };
    assert_eq!(store.result_of("cmd-1").await.expect("read"), None);

    let first =
        store.record_result("cmd-1", &web, 3, "executor.component.applied", &result).await.expect("record");
    assert_eq!(store.result_of("cmd-1").await.expect("read"), Some(first.clone()));
    assert_eq!(
        (first.event_type.as_str(), first.revision, &first.result),
        ("executor.component.applied", 3, &result)
    );

    // A second replica finishing the same command gets the first result back and changes nothing.
    let mut other = result.clone();
    other.health = Health::Degraded;
    other.reason = Some("Timeout".into());
    let again =
        store.record_result("cmd-1", &web, 3, "executor.component.failed", &other).await.expect("again");
    assert_eq!(again, first);
    assert_eq!(store.result_of("cmd-1").await.expect("read"), Some(first));
    assert_eq!(store.result_of("cmd-2").await.expect("read"), None);
    env.cleanup().await;
}

/// Revision 2 replaces {web, old} by {web, new}; the executor "crashes" after every persisted step
/// (the store is dropped and opened again, the command redelivered) and still ends consistent, with
/// `old` pruned only after revision 2 applied.
#[tokio::test]
async fn an_apply_cut_short_after_every_step_resumes_from_the_store() {
    let env = TestEnv::new();
    let web = target("web");
    let rev1 = applied("cmd-1", 1, &[object("Deployment", "web"), object("Service", "old")]);
    open(&env).await.save(&web, &rev1, 0).await.expect("revision 1");
    let cmd = ApplyInput {
        command_id: "cmd-2".into(),
        revision: 2,
        refs: vec![object("Deployment", "web"), object("Service", "new")],
    };
    let mut pruned_at_step = None;

    // Each pass is one delivery of cmd-2 that does exactly one step, then crashes.
    for step in 1..=10 {
        let store = open(&env).await;
        let (inv, version) = store.load(&web).await.expect("load after crash");
        assert_eq!(inv.inconsistency(), None);
        let next = match decide_apply(&inv, cmd.clone()) {
            ApplyDecision::Apply { record_in_flight, then_prune } => {
                assert_eq!(then_prune, vec![object("Service", "old")]);
                if inv.in_flight.as_ref() == Some(&record_in_flight) {
                    after_apply(&inv, &cmd.command_id).expect("after_apply")
                } else {
                    begin(&inv, &record_in_flight).expect("begin")
                }
            }
            ApplyDecision::Replay { finish_prune } if finish_prune.is_empty() => {
                assert_eq!(inv.phase(), Phase::Applied);
                break;
            }
            ApplyDecision::Replay { finish_prune } => {
                assert!(finish_prune.iter().all(|r| !inv.applied.contains(r)), "never prune a live object");
                pruned_at_step = Some(step);
                after_prune(&inv, &finish_prune).expect("after_prune")
            }
            ApplyDecision::Refuse(r) => panic!("redelivery refused: {r}"),
        };
        store.save(&web, &next, version).await.expect("save");
        drop(store);
        assert!(step < 10, "the command never finished");
    }

    let (fin, _) = open(&env).await.load(&web).await.expect("final load");
    assert_eq!(pruned_at_step, Some(3), "begin, apply, then prune");
    assert_eq!(fin.inconsistency(), None);
    assert_eq!(fin.phase(), plan::Phase::Applied);
    assert_eq!(fin.applied_revision, Some(2));
    let want: BTreeSet<ObjectRef> = cmd.refs.iter().cloned().collect();
    assert_eq!((fin.applied, fin.owned), (want.clone(), want));
    env.cleanup().await;
}
