//! One test per decision: apply, prune set, resume, replay, stale and conflicting commands, deletes.

use serde_json::json;
use sw_contracts::executor::{ComponentTarget, K8sApplyCommand, K8sDeleteCommand, RenderedComponent};
use sw_contracts::ids::AppId;

use super::*;

fn web_v1() -> Vec<ObjectRef> {
    vec![config_map("web-config"), deployment("web"), service("web")]
}

#[test]
fn first_apply_records_its_objects_and_prunes_nothing() {
    let decision = decide_apply(&Inventory::default(), apply_input("c1", 1, &web_v1()));
    assert_eq!(
        decision,
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c1", 1, set(&web_v1())),
            then_prune: vec![]
        }
    );
}

#[test]
fn a_newer_revision_prunes_only_what_it_no_longer_renders() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    // Revision 2 drops the ConfigMap and the Service and adds a Secret-backed ConfigMap.
    let v2 = [deployment("web"), config_map("web-env")];
    let ApplyDecision::Apply { record_in_flight, then_prune } = decide_apply(&inv, apply_input("c2", 2, &v2))
    else {
        panic!("not applied");
    };
    assert_eq!(record_in_flight, InFlight::apply("c2", 2, set(&v2)));
    assert_eq!(then_prune, vec![config_map("web-config"), service("web")]);
    assert!(then_prune.iter().all(|r| !v2.contains(r)));
}

#[test]
fn duplicates_in_the_rendered_refs_are_one_object() {
    let refs = [deployment("web"), deployment("web")];
    let ApplyDecision::Apply { record_in_flight, .. } =
        decide_apply(&Inventory::default(), apply_input("c1", 1, &refs))
    else {
        panic!("not applied");
    };
    assert_eq!(record_in_flight.refs, set(&[deployment("web")]));
}

#[test]
fn an_older_revision_than_the_applied_one_is_refused() {
    let inv = applied(&applied(&Inventory::default(), "c1", 1, &web_v1()), "c3", 3, &web_v1());
    let refusal = Refusal::StaleRevision { revision: 2, last: 3 };
    assert_eq!(decide_apply(&inv, apply_input("c2", 2, &web_v1())), ApplyDecision::Refuse(refusal.clone()));
    assert_eq!(refusal.reason(), "StaleRevision");
    assert_eq!(
        refusal.to_string(),
        "revision 2 is older than revision 3, which the executor already applied or started"
    );
}

#[test]
fn an_older_revision_than_the_one_in_flight_is_refused() {
    // Revision 3 crashed mid-apply; revision 2 arrives late. Applying it would land the older
    // revision over objects revision 3 already changed.
    let inv = started(&applied(&Inventory::default(), "c1", 1, &web_v1()), "c3", 3, &[deployment("web")]);
    assert_eq!(
        decide_apply(&inv, apply_input("c2", 2, &web_v1())),
        ApplyDecision::Refuse(Refusal::StaleRevision { revision: 2, last: 3 })
    );
}

#[test]
fn a_redelivery_of_the_finished_command_replays_without_side_effects() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    assert_eq!(
        decide_apply(&inv, apply_input("c1", 1, &web_v1())),
        ApplyDecision::Replay { finish_prune: vec![] }
    );
}

#[test]
fn a_redelivery_after_a_crash_before_the_prune_finishes_that_prune() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let v2 = [deployment("web")];
    let inv = after_apply(&started(&inv, "c2", 2, &v2), "c2").unwrap();
    assert_eq!(inv.phase(), Phase::Pruning);
    assert_eq!(
        decide_apply(&inv, apply_input("c2", 2, &v2)),
        ApplyDecision::Replay { finish_prune: vec![config_map("web-config"), service("web")] }
    );
}

#[test]
fn a_redelivery_found_in_flight_resumes_apply_before_prune() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let v2 = [deployment("web"), config_map("web-env")];
    let crashed = started(&inv, "c2", 2, &v2);
    assert_eq!(crashed.phase(), Phase::Applying);
    assert_eq!(crashed.pending_prune(), vec![], "nothing is pruned while an apply is in flight");
    assert_eq!(
        decide_apply(&crashed, apply_input("c2", 2, &v2)),
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c2", 2, set(&v2)),
            then_prune: vec![config_map("web-config"), service("web")],
        }
    );
}

#[test]
fn a_resume_that_renders_other_objects_prunes_the_first_attempts_leftovers() {
    // The executor was upgraded between the crash and the redelivery and names an object differently:
    // what the first attempt may have created is owned, and goes once the new objects are applied.
    let crashed = started(&Inventory::default(), "c1", 1, &[deployment("web"), service("web-old")]);
    assert_eq!(
        decide_apply(&crashed, apply_input("c1", 1, &[deployment("web"), service("web")])),
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c1", 1, set(&[deployment("web"), service("web")])),
            then_prune: vec![service("web-old")],
        }
    );
}

#[test]
fn the_same_revision_under_a_new_command_id_is_applied_again() {
    // The workflow retries a step: same revision, same objects, new command id.
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    assert_eq!(
        decide_apply(&inv, apply_input("c1-retry", 1, &web_v1())),
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c1-retry", 1, set(&web_v1())),
            then_prune: vec![]
        }
    );
    // Also while another command for that revision is in flight.
    let crashed = started(&inv, "c2", 2, &web_v1());
    assert!(matches!(
        decide_apply(&crashed, apply_input("c2-retry", 2, &web_v1())),
        ApplyDecision::Apply { .. }
    ));
}

#[test]
fn the_same_revision_with_other_objects_is_a_conflict() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let refusal = Refusal::RevisionConflict { revision: 1 };
    assert_eq!(
        decide_apply(&inv, apply_input("c1b", 1, &[deployment("web")])),
        ApplyDecision::Refuse(refusal.clone())
    );
    assert_eq!(refusal.reason(), "RevisionConflict");
    // Against the revision in flight too.
    let crashed = started(&inv, "c2", 2, &[deployment("web")]);
    assert_eq!(
        decide_apply(&crashed, apply_input("c2b", 2, &web_v1())),
        ApplyDecision::Refuse(Refusal::RevisionConflict { revision: 2 })
    );
}

#[test]
fn a_command_id_reused_for_another_revision_or_operation_is_refused() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let reused = ApplyDecision::Refuse(Refusal::CommandIdReused { command_id: "c1".into() });
    assert_eq!(decide_apply(&inv, apply_input("c1", 2, &web_v1())), reused);
    assert_eq!(
        decide_delete(&inv, delete_input("c1", 1)),
        DeleteDecision::Refuse(Refusal::CommandIdReused { command_id: "c1".into() })
    );
    let crashed = started(&inv, "c2", 2, &web_v1());
    assert_eq!(
        decide_apply(&crashed, apply_input("c2", 3, &web_v1())),
        ApplyDecision::Refuse(Refusal::CommandIdReused { command_id: "c2".into() })
    );
    assert_eq!(Refusal::CommandIdReused { command_id: "c2".into() }.reason(), "CommandIdReused");
}

#[test]
fn a_redelivery_of_the_last_finished_command_replays_while_a_newer_one_is_in_flight() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let crashed = started(&inv, "c2", 2, &[deployment("web")]);
    // The replay must not prune: revision 2's apply has not finished.
    assert_eq!(
        decide_apply(&crashed, apply_input("c1", 1, &web_v1())),
        ApplyDecision::Replay { finish_prune: vec![] }
    );
}

#[test]
fn an_apply_after_a_delete_needs_a_newer_revision() {
    let inv = deleted(&applied(&Inventory::default(), "c1", 1, &web_v1()), "d2", 2);
    // A delete at 2 supersedes an apply at 2: that apply arriving late must not bring objects back.
    for (id, revision) in [("c1-late", 1), ("c2-late", 2)] {
        assert_eq!(
            decide_apply(&inv, apply_input(id, revision, &web_v1())),
            ApplyDecision::Refuse(Refusal::StaleRevision { revision, last: 2 })
        );
    }
    assert_eq!(
        decide_apply(&inv, apply_input("c3", 3, &web_v1())),
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c3", 3, set(&web_v1())),
            then_prune: vec![]
        }
    );
}

#[test]
fn a_delete_removes_everything_owned_including_an_unfinished_applys_objects() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let crashed = started(&inv, "c2", 2, &[deployment("web"), config_map("web-env")]);
    assert_eq!(
        decide_delete(&crashed, delete_input("d3", 3)),
        DeleteDecision::Delete {
            record_in_flight: InFlight::delete("d3", 3),
            // In `ObjectRef` order: apiVersion first.
            delete: vec![deployment("web"), config_map("web-config"), config_map("web-env"), service("web")],
        }
    );
}

#[test]
fn a_delete_at_the_applied_revision_is_accepted_and_an_older_one_refused() {
    let inv = applied(&Inventory::default(), "c1", 2, &web_v1());
    assert!(matches!(decide_delete(&inv, delete_input("d2", 2)), DeleteDecision::Delete { .. }));
    assert_eq!(
        decide_delete(&inv, delete_input("d1", 1)),
        DeleteDecision::Refuse(Refusal::StaleRevision { revision: 1, last: 2 })
    );
    // Also older than an apply in flight.
    let crashed = started(&inv, "c4", 4, &web_v1());
    assert_eq!(
        decide_delete(&crashed, delete_input("d3", 3)),
        DeleteDecision::Refuse(Refusal::StaleRevision { revision: 3, last: 4 })
    );
}

#[test]
fn a_delete_of_an_instance_never_applied_deletes_nothing_and_blocks_older_applies() {
    let inv = Inventory::default();
    assert_eq!(
        decide_delete(&inv, delete_input("d1", 5)),
        DeleteDecision::Delete { record_in_flight: InFlight::delete("d1", 5), delete: vec![] }
    );
    let inv = deleted(&inv, "d1", 5);
    assert_eq!(inv.phase(), Phase::Deleted);
    assert!(matches!(decide_apply(&inv, apply_input("c4", 4, &web_v1())), ApplyDecision::Refuse(_)));
}

#[test]
fn a_delete_redelivered_resumes_in_flight_and_replays_once_finished() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let DeleteDecision::Delete { record_in_flight, delete } = decide_delete(&inv, delete_input("d2", 2))
    else {
        panic!("not deleted");
    };
    // Crash after deleting the first object and recording it.
    let crashed = after_prune(&begin(&inv, &record_in_flight).unwrap(), &delete[..1]).unwrap();
    assert_eq!(
        decide_delete(&crashed, delete_input("d2", 2)),
        DeleteDecision::Delete { record_in_flight: InFlight::delete("d2", 2), delete: delete[1..].to_vec() }
    );
    let done = deleted(&crashed, "d2", 2);
    assert_eq!(decide_delete(&done, delete_input("d2", 2)), DeleteDecision::Replay);
    // Another delete at the same revision has nothing left to delete.
    assert_eq!(
        decide_delete(&done, delete_input("d2-retry", 2)),
        DeleteDecision::Delete { record_in_flight: InFlight::delete("d2-retry", 2), delete: vec![] }
    );
}

#[test]
fn a_newer_apply_supersedes_an_unfinished_delete() {
    let inv = applied(&Inventory::default(), "c1", 1, &web_v1());
    let deleting = begin(&inv, &InFlight::delete("d2", 2)).unwrap();
    let deleting = after_prune(&deleting, &[config_map("web-config")]).unwrap();
    assert_eq!(
        decide_apply(&deleting, apply_input("c3", 3, &[deployment("web")])),
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply("c3", 3, set(&[deployment("web")])),
            then_prune: vec![service("web")],
        }
    );
    // An older apply does not.
    assert!(matches!(decide_apply(&deleting, apply_input("c1b", 1, &web_v1())), ApplyDecision::Refuse(_)));
}

#[test]
fn inputs_come_from_the_commands() {
    let target = ComponentTarget {
        cluster_id: "c1".into(),
        namespace: "apps".into(),
        app_id: AppId::parse("health").unwrap(),
        stage_id: None,
        app_instance: "prod-health".into(),
        component_instance: "health".into(),
    };
    let component = RenderedComponent {
        component_type: "K8S_MANIFESTS".into(),
        component_name: "health".into(),
        package_version: None,
        workload: json!({"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health-config"}, "data": {}}
        ]}),
        traits: vec![],
    };
    let cmd = K8sApplyCommand {
        command_id: "cmd-7".into(),
        target: target.clone(),
        revision: 7,
        health_deadline_secs: 60,
        component,
    };
    let rendered = crate::render::render(&cmd.target, cmd.revision, &cmd.component).unwrap();
    assert_eq!(apply_input("cmd-7", 7, &[config_map("health-config")]), ApplyInput::new(&cmd, &rendered));
    let delete = K8sDeleteCommand { command_id: "cmd-8".into(), target, revision: 8 };
    assert_eq!(DeleteInput::from(&delete), delete_input("cmd-8", 8));
}
