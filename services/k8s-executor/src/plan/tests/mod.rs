//! Tests of the plan: every decision ([`decide`]), every edge of the transition table
//! ([`transition`]), and random command sequences with crashes and redeliveries run against a fake
//! cluster ([`simulation`]).

mod decide;
mod simulation;
mod transition;

use std::collections::BTreeSet;

use sw_contracts::executor::ObjectRef;

use super::*;

fn object(api_version: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("apps".into()),
        name: name.into(),
    }
}

fn deployment(name: &str) -> ObjectRef {
    object("apps/v1", "Deployment", name)
}

fn service(name: &str) -> ObjectRef {
    object("v1", "Service", name)
}

fn config_map(name: &str) -> ObjectRef {
    object("v1", "ConfigMap", name)
}

fn set(refs: &[ObjectRef]) -> BTreeSet<ObjectRef> {
    refs.iter().cloned().collect()
}

fn apply_input(command_id: &str, revision: u64, refs: &[ObjectRef]) -> ApplyInput {
    ApplyInput { command_id: command_id.into(), revision, refs: refs.to_vec() }
}

fn delete_input(command_id: &str, revision: u64) -> DeleteInput {
    DeleteInput { command_id: command_id.into(), revision }
}

/// Runs an apply to the end as the service would, asserting it was decided as an apply.
fn applied(inv: &Inventory, command_id: &str, revision: u64, refs: &[ObjectRef]) -> Inventory {
    let ApplyDecision::Apply { record_in_flight, then_prune } =
        decide_apply(inv, apply_input(command_id, revision, refs))
    else {
        panic!("{command_id} at {revision} was not applied");
    };
    let inv = begin(inv, &record_in_flight).unwrap();
    let inv = after_apply(&inv, command_id).unwrap();
    after_prune(&inv, &then_prune).unwrap()
}

/// Runs a delete to the end as the service would.
fn deleted(inv: &Inventory, command_id: &str, revision: u64) -> Inventory {
    let DeleteDecision::Delete { record_in_flight, delete } =
        decide_delete(inv, delete_input(command_id, revision))
    else {
        panic!("{command_id} at {revision} was not deleted");
    };
    let inv = begin(inv, &record_in_flight).unwrap();
    let inv = after_prune(&inv, &delete).unwrap();
    after_delete(&inv, command_id).unwrap()
}

/// Starts an apply and stops there, as a crash right after [`begin`] was persisted would.
fn started(inv: &Inventory, command_id: &str, revision: u64, refs: &[ObjectRef]) -> Inventory {
    begin(inv, &InFlight::apply(command_id, revision, set(refs))).unwrap()
}
