//! The transition table edge by edge: every allowed (from, edge, to) is reached from a sample
//! inventory, every forbidden pair is refused; then each data check of the transitions.

use std::collections::HashSet;

use super::*;

/// The table of the docs, written out again: `targets` must say exactly this.
#[test]
fn the_table_is_the_documented_one() {
    use {Edge::*, Phase::*};
    let expected: [(Phase, [&[Phase]; 5]); 6] = [
        (New, [&[Applying], &[Deleting], &[], &[], &[]]),
        (Applying, [&[Applying], &[Deleting], &[Pruning, Applied], &[], &[]]),
        (Pruning, [&[Applying], &[Deleting], &[], &[Pruning, Applied], &[]]),
        (Applied, [&[Applying], &[Deleting], &[], &[], &[]]),
        (Deleting, [&[Applying], &[Deleting], &[], &[Deleting], &[Deleted]]),
        (Deleted, [&[Applying], &[Deleting], &[], &[], &[]]),
    ];
    assert_eq!(expected.map(|(p, _)| p), Phase::ALL);
    for (from, row) in expected {
        for (edge, to) in Edge::ALL.into_iter().zip(row) {
            assert_eq!(targets(from, edge), to, "{from:?} --{edge:?}-->");
        }
    }
    assert_eq!(targets(Applying, Prune), &[] as &[Phase], "pruning while applying must not exist");
}

/// Inventories in every phase, several ways in where there are several.
fn samples() -> Vec<Inventory> {
    let v1 = [config_map("web-config"), deployment("web"), service("web")];
    let v2 = [deployment("web")];
    let new = Inventory::default();
    let applying_first = started(&new, "c1", 1, &v1);
    let applied_v1 = applied(&new, "c1", 1, &v1);
    let applying_over = started(&applied_v1, "c2", 2, &v2);
    let pruning = after_apply(&applying_over, "c2").unwrap();
    let pruning_one_left = after_prune(&pruning, &[config_map("web-config")]).unwrap();
    let applied_v2 = after_prune(&pruning_one_left, &[service("web")]).unwrap();
    let deleting = begin(&applied_v1, &InFlight::delete("d3", 3)).unwrap();
    let deleting_emptied = after_prune(&deleting, &v1).unwrap();
    let deleting_over_apply = begin(&applying_over, &InFlight::delete("d3", 3)).unwrap();
    let deleted_v3 = after_delete(&deleting_emptied, "d3").unwrap();
    let applying_after_delete = started(&deleted_v3, "c4", 4, &v2);
    vec![
        new,
        applying_first,
        applying_over,
        applying_after_delete,
        pruning,
        pruning_one_left,
        applied_v1,
        applied_v2,
        deleting,
        deleting_emptied,
        deleting_over_apply,
        deleted_v3,
    ]
}

/// Every way `edge` can be taken from `inv` with data that is valid for it (so only the table can
/// refuse), or with placeholder data when there is none (the table must refuse first).
fn attempts(inv: &Inventory, edge: Edge) -> Vec<Result<Inventory, InvalidTransition>> {
    let next_revision = inv.newest().map_or(1, |(r, _)| r + 1);
    let in_flight_id = inv.in_flight.as_ref().map_or("none".to_owned(), |f| f.command_id.clone());
    match edge {
        Edge::BeginApply => {
            vec![begin(inv, &InFlight::apply("next", next_revision, set(&[deployment("web")])))]
        }
        Edge::BeginDelete => vec![begin(inv, &InFlight::delete("next", next_revision))],
        Edge::FinishApply => vec![after_apply(inv, &in_flight_id)],
        Edge::Prune => {
            let prunable: Vec<ObjectRef> = match inv.phase() {
                Phase::Deleting => inv.owned.iter().cloned().collect(),
                _ => inv.pending_prune(),
            };
            if prunable.is_empty() {
                let any = inv.owned.first().cloned().unwrap_or_else(|| config_map("elsewhere"));
                vec![after_prune(inv, &[any])]
            } else {
                vec![after_prune(inv, &prunable[..1]), after_prune(inv, &prunable)]
            }
        }
        Edge::FinishDelete => vec![after_delete(inv, &in_flight_id)],
    }
}

#[test]
fn every_edge_of_the_table_is_taken_and_every_other_refused() {
    let mut reached: HashSet<(Phase, Edge, Phase)> = HashSet::new();
    let mut phases_seen: HashSet<Phase> = HashSet::new();
    for inv in samples() {
        assert_eq!(inv.inconsistency(), None, "{inv:?}");
        let from = inv.phase();
        phases_seen.insert(from);
        for edge in Edge::ALL {
            let allowed = targets(from, edge);
            for attempt in attempts(&inv, edge) {
                match attempt {
                    Ok(next) => {
                        assert!(allowed.contains(&next.phase()), "{from:?} --{edge:?}--> {:?}", next.phase());
                        assert_eq!(next.inconsistency(), None);
                        reached.insert((from, edge, next.phase()));
                    }
                    Err(InvalidTransition::NotAllowed { from: f, edge: e }) => {
                        assert_eq!((f, e), (from, edge));
                        assert!(
                            allowed.is_empty(),
                            "{from:?} --{edge:?}--> was refused although the table allows it"
                        );
                    }
                    // Data this sample cannot offer (objects left when finishing a delete).
                    Err(e) => assert!(!allowed.is_empty(), "{from:?} --{edge:?}-->: {e}"),
                }
            }
        }
    }
    assert_eq!(phases_seen.len(), Phase::ALL.len());
    for from in Phase::ALL {
        for edge in Edge::ALL {
            for to in targets(from, edge) {
                assert!(reached.contains(&(from, edge, *to)), "{from:?} --{edge:?}--> {to:?} never reached");
            }
        }
    }
}

#[test]
fn begin_refuses_an_older_command_and_a_delete_with_objects() {
    let inv = applied(&Inventory::default(), "c1", 5, &[deployment("web")]);
    assert_eq!(
        begin(&inv, &InFlight::apply("c0", 4, set(&[deployment("web")]))),
        Err(InvalidTransition::Stale { revision: 4, newest: 5 })
    );
    let deleting = begin(&inv, &InFlight::delete("d6", 6)).unwrap();
    assert_eq!(
        begin(&deleting, &InFlight::apply("c6", 6, set(&[deployment("web")]))),
        Err(InvalidTransition::Stale { revision: 6, newest: 6 }),
        "an apply at 6 is older than a delete at 6"
    );
    let mut with_objects = InFlight::delete("d7", 7);
    with_objects.refs.insert(config_map("not-ours"));
    assert_eq!(begin(&inv, &with_objects), Err(InvalidTransition::DeleteWithObjects));
}

#[test]
fn begin_owns_objects_before_they_are_applied() {
    let inv = applied(&Inventory::default(), "c1", 1, &[deployment("web")]);
    let next = begin(&inv, &InFlight::apply("c2", 2, set(&[deployment("web"), service("web")]))).unwrap();
    assert_eq!(next.owned, set(&[deployment("web"), service("web")]));
    assert_eq!(next.applied, set(&[deployment("web")]), "not applied yet");
    assert_eq!(next.applied_revision, Some(1));
}

#[test]
fn after_apply_refuses_an_apply_that_is_not_the_one_in_flight() {
    let inv = started(&Inventory::default(), "c1", 1, &[deployment("web")]);
    // Superseded by revision 2: the worker that ran revision 1 must not record it over 2.
    let superseded = started(&inv, "c2", 2, &[service("web")]);
    assert_eq!(
        after_apply(&superseded, "c1"),
        Err(InvalidTransition::NotInFlight { command_id: "c1".into(), op: Op::Apply })
    );
    let deleting = begin(&inv, &InFlight::delete("d2", 2)).unwrap();
    assert_eq!(
        after_apply(&deleting, "d2"),
        Err(InvalidTransition::NotAllowed { from: Phase::Deleting, edge: Edge::FinishApply })
    );
    assert_eq!(
        after_delete(&superseded, "c2"),
        Err(InvalidTransition::NotAllowed { from: Phase::Applying, edge: Edge::FinishDelete })
    );
    let deleting = begin(&superseded, &InFlight::delete("d3", 3)).unwrap();
    assert_eq!(
        after_delete(&deleting, "d2"),
        Err(InvalidTransition::NotInFlight { command_id: "d2".into(), op: Op::Delete })
    );
}

#[test]
fn after_apply_records_the_revision_and_its_objects() {
    let inv = applied(&Inventory::default(), "c1", 1, &[deployment("web"), service("web")]);
    let next = after_apply(&started(&inv, "c2", 2, &[deployment("web")]), "c2").unwrap();
    assert_eq!(next.applied_revision, Some(2));
    assert_eq!(next.last_command_id.as_deref(), Some("c2"));
    assert_eq!(next.applied, set(&[deployment("web")]));
    assert_eq!(next.owned, set(&[deployment("web"), service("web")]));
    assert_eq!(next.in_flight, None);
    assert_eq!(next.pending_prune(), vec![service("web")]);
}

#[test]
fn after_prune_refuses_live_and_foreign_objects() {
    let inv = applied(&Inventory::default(), "c1", 1, &[deployment("web"), service("web")]);
    let pruning = after_apply(&started(&inv, "c2", 2, &[deployment("web")]), "c2").unwrap();
    let live = deployment("web");
    assert_eq!(after_prune(&pruning, &[service("web"), live.clone()]), Err(InvalidTransition::Live(live)));
    let foreign = config_map("someone-elses");
    assert_eq!(
        after_prune(&pruning, std::slice::from_ref(&foreign)),
        Err(InvalidTransition::NotOwned(foreign))
    );
    assert_eq!(InvalidTransition::NotOwned(config_map("x")).to_string(), "ConfigMap v1 apps/x is not owned");
    // Pruning before the apply finished is the edge that does not exist.
    let applying = started(&inv, "c2", 2, &[deployment("web")]);
    assert_eq!(
        after_prune(&applying, &[service("web")]),
        Err(InvalidTransition::NotAllowed { from: Phase::Applying, edge: Edge::Prune })
    );
    // An empty prune is no step at all.
    assert_eq!(after_prune(&applying, &[]), Ok(applying));
}

#[test]
fn after_delete_refuses_while_objects_remain() {
    let inv = applied(&Inventory::default(), "c1", 1, &[deployment("web"), service("web")]);
    let deleting = after_prune(&begin(&inv, &InFlight::delete("d2", 2)).unwrap(), &[service("web")]).unwrap();
    assert_eq!(deleting.applied, set(&[deployment("web")]), "what is gone is no longer live");
    assert_eq!(after_delete(&deleting, "d2"), Err(InvalidTransition::ObjectsRemain { count: 1 }));
    let done = after_delete(&after_prune(&deleting, &[deployment("web")]).unwrap(), "d2").unwrap();
    assert_eq!(
        done,
        Inventory {
            applied_revision: Some(2),
            last_command_id: Some("d2".into()),
            applied: set(&[]),
            in_flight: None,
            owned: set(&[]),
            deleted: true,
        }
    );
}

/// Edits a stored inventory the way no transition would.
type Breaking = fn(&mut Inventory);

#[test]
fn inconsistent_stored_inventories_are_detected() {
    let good = applied(&Inventory::default(), "c1", 2, &[deployment("web")]);
    assert_eq!(good.inconsistency(), None);
    let broken: [(Breaking, &str); 8] = [
        (|i| i.owned.clear(), "applied objects missing from owned"),
        (
            |i| i.in_flight = Some(InFlight::apply("c3", 3, set(&[service("web")]))),
            "in-flight objects missing from owned",
        ),
        (
            |i| {
                let mut d = InFlight::delete("d3", 3);
                d.refs.insert(deployment("web"));
                i.in_flight = Some(d);
            },
            "an in-flight delete with objects of its own",
        ),
        (|i| i.last_command_id = None, "a finished revision without its command id, or the reverse"),
        (
            |i| {
                i.applied_revision = None;
                i.last_command_id = None;
            },
            "deleted or applied objects without a finished revision",
        ),
        (|i| i.deleted = true, "applied objects after a delete"),
        (
            |i| i.in_flight = Some(InFlight::apply("c1", 1, set(&[deployment("web")]))),
            "the command in flight is older than the last finished one",
        ),
        (
            |i| {
                i.applied.clear();
                i.deleted = true;
            },
            "owned objects with nothing applied or in flight",
        ),
    ];
    for (breaking, problem) in broken {
        let mut inv = good.clone();
        breaking(&mut inv);
        assert_eq!(inv.inconsistency(), Some(problem), "{inv:?}");
    }
}

#[test]
fn the_inventory_round_trips_through_json() {
    let inv =
        started(&applied(&Inventory::default(), "c1", 1, &[deployment("web")]), "c2", 2, &[service("web")]);
    let text = serde_json::to_value(&inv).unwrap();
    assert_eq!(text["appliedRevision"], 1);
    assert_eq!(text["inFlight"]["op"], "Apply");
    assert_eq!(text["inFlight"]["commandId"], "c2");
    assert_eq!(text["owned"].as_array().unwrap().len(), 2);
    assert_eq!(serde_json::from_value::<Inventory>(text).unwrap(), inv);
}
