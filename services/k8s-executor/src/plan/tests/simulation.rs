//! The plan driven the way the service will drive it, against a fake cluster (a set of live objects),
//! with commands delivered out of order, twice, and cut short by crashes.
//!
//! A delivery turns the decision into the service's steps (persist, apply, delete, ack); a crash
//! after `k` steps drops the rest, and an unacked command is delivered again, as JetStream does. Every
//! step is checked against the invariants:
//! 1. a prune never deletes an object the most recently applied revision renders, and never runs
//!    before the apply it follows has finished;
//! 2. nothing outside `owned` is ever deleted (the foreign objects in the namespace survive);
//! 3. the applied revision — and the newest revision started — never decrease;
//! 4. once every command has been delivered to completion, the cluster holds exactly the objects of
//!    the newest command (none if it was a delete), and the inventory says the same;
//! 5. A→B→A ends with A's objects live and B-only objects pruned, and never deletes what both render.
//!
//! Also after every step: the inventory is consistent and every object of ours in the cluster is
//! owned (an object is recorded before it can exist, so nothing is ever orphaned).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;

/// Every object a revision of the simulated component may render.
fn universe() -> Vec<ObjectRef> {
    vec![
        deployment("web"),
        service("web"),
        config_map("web-config"),
        config_map("web-env"),
        object("networking.k8s.io/v1", "Ingress", "web"),
        object("v1", "PersistentVolumeClaim", "web-data"),
    ]
}

/// Objects someone else created in the same namespace.
fn foreign() -> BTreeSet<ObjectRef> {
    set(&[config_map("team-settings"), deployment("other-app")])
}

#[derive(Debug, Clone)]
struct Command {
    id: String,
    op: Op,
    revision: u64,
}

fn apply_cmd(id: &str, revision: u64) -> Command {
    Command { id: id.into(), op: Op::Apply, revision }
}

fn delete_cmd(id: &str, revision: u64) -> Command {
    Command { id: id.into(), op: Op::Delete, revision }
}

/// One thing the service does, in order; a crash can fall between any two.
#[derive(Debug, Clone)]
enum Step {
    Begin(InFlight),
    Put(ObjectRef),
    FinishApply,
    Delete { object: ObjectRef, prune: bool },
    FinishPrune(Vec<ObjectRef>),
    FinishDelete,
    Ack,
}

struct World {
    /// `revisions[r - 1]`: what revision `r` renders (one content per revision, as the workflow
    /// guarantees).
    revisions: Vec<Vec<ObjectRef>>,
    commands: Vec<Command>,
    /// The stored inventory: what survives a crash.
    inv: Inventory,
    cluster: BTreeSet<ObjectRef>,
    acked: Vec<bool>,
    /// The objects of the last apply seen to finish, tracked by the test rather than read from the
    /// inventory; `None` after a delete finished.
    live: Option<BTreeSet<ObjectRef>>,
    /// Every object deleted, for the A→B→A checks.
    deletions: Vec<ObjectRef>,
    /// What happened, printed when an invariant fails.
    log: Vec<String>,
}

impl World {
    fn new(revisions: Vec<Vec<ObjectRef>>, commands: Vec<Command>) -> Self {
        let acked = vec![false; commands.len()];
        Self {
            revisions,
            commands,
            inv: Inventory::default(),
            cluster: foreign(),
            acked,
            live: None,
            deletions: Vec::new(),
            log: Vec::new(),
        }
    }

    fn refs(&self, revision: u64) -> Vec<ObjectRef> {
        self.revisions[usize::try_from(revision - 1).unwrap()].clone()
    }

    fn ours(&self) -> BTreeSet<ObjectRef> {
        self.cluster.difference(&foreign()).cloned().collect()
    }

    /// The service's steps for command `idx`, decided on the stored inventory.
    fn plan(&self, idx: usize) -> Result<Vec<Step>, TestCaseError> {
        let cmd = &self.commands[idx];
        let mut steps = Vec::new();
        match cmd.op {
            Op::Apply => {
                let refs = self.refs(cmd.revision);
                let input = apply_input(&cmd.id, cmd.revision, &refs);
                match decide_apply(&self.inv, input) {
                    ApplyDecision::Apply { record_in_flight, then_prune } => {
                        prop_assert!(
                            then_prune.iter().all(|r| !refs.contains(r)),
                            "prune set {then_prune:?} holds objects of the revision applied"
                        );
                        steps.push(Step::Begin(record_in_flight));
                        steps.extend(refs.into_iter().map(Step::Put));
                        steps.push(Step::FinishApply);
                        steps.extend(
                            then_prune.iter().map(|r| Step::Delete { object: r.clone(), prune: true }),
                        );
                        steps.push(Step::FinishPrune(then_prune));
                    }
                    ApplyDecision::Replay { finish_prune } => {
                        steps.extend(
                            finish_prune.iter().map(|r| Step::Delete { object: r.clone(), prune: true }),
                        );
                        steps.push(Step::FinishPrune(finish_prune));
                    }
                    ApplyDecision::Refuse(refusal) => self.check_refusal(cmd, &refusal)?,
                }
            }
            Op::Delete => match decide_delete(&self.inv, delete_input(&cmd.id, cmd.revision)) {
                DeleteDecision::Delete { record_in_flight, delete } => {
                    steps.push(Step::Begin(record_in_flight));
                    steps.extend(delete.iter().map(|r| Step::Delete { object: r.clone(), prune: false }));
                    steps.push(Step::FinishPrune(delete));
                    steps.push(Step::FinishDelete);
                }
                DeleteDecision::Replay => {}
                DeleteDecision::Refuse(refusal) => self.check_refusal(cmd, &refusal)?,
            },
        }
        steps.push(Step::Ack);
        Ok(steps)
    }

    /// Every command here has a unique id and one content per revision, so the only refusal is an
    /// older command than one finished or started.
    fn check_refusal(&self, cmd: &Command, refusal: &Refusal) -> Result<(), TestCaseError> {
        let newest = self.inv.newest();
        prop_assert!(
            matches!(refusal, Refusal::StaleRevision { .. }) && newest > Some((cmd.revision, cmd.op)),
            "{cmd:?} refused with {refusal:?} although the newest is {newest:?}"
        );
        Ok(())
    }

    /// Delivers command `idx`; `crash: Some(k)` stops it after `k % steps` steps, so it always stops
    /// before its ack.
    fn deliver(&mut self, idx: usize, crash: Option<usize>) -> Result<(), TestCaseError> {
        // A command delivered again was not acked after all (the ack was lost): it stays pending
        // until this delivery acks it.
        self.acked[idx] = false;
        let steps = self.plan(idx)?;
        let run = crash.map_or(steps.len(), |k| k % steps.len());
        self.log.push(format!("deliver {:?} ({} of {} steps)", self.commands[idx], run, steps.len()));
        for step in steps.into_iter().take(run) {
            self.step(idx, step)?;
            self.check_always()?;
        }
        Ok(())
    }

    fn step(&mut self, idx: usize, step: Step) -> Result<(), TestCaseError> {
        let id = self.commands[idx].id.clone();
        match step {
            Step::Begin(f) => self.persist(begin(&self.inv, &f))?,
            Step::Put(object) => {
                prop_assert_eq!(self.inv.phase(), Phase::Applying);
                prop_assert!(self.inv.owned.contains(&object), "{object:?} applied before it was owned");
                self.cluster.insert(object);
            }
            Step::FinishApply => {
                let refs = self.inv.in_flight.as_ref().map(|f| f.refs.clone());
                self.persist(after_apply(&self.inv, &id))?;
                self.live = refs;
            }
            Step::Delete { object, prune } => {
                // (2) Only what we own, never someone else's.
                prop_assert!(self.inv.owned.contains(&object), "deleting {object:?}, which is not owned");
                prop_assert!(!foreign().contains(&object));
                if prune {
                    // (1) Only after the apply finished, never a live object.
                    prop_assert_eq!(self.inv.phase(), Phase::Pruning, "pruning {:?}", object);
                    prop_assert!(self.inv.pending_prune().contains(&object));
                    prop_assert!(
                        !self.live.as_ref().is_some_and(|live| live.contains(&object)),
                        "pruning {object:?}, which the last applied revision renders"
                    );
                } else {
                    prop_assert_eq!(self.inv.phase(), Phase::Deleting);
                }
                self.cluster.remove(&object);
                self.deletions.push(object);
            }
            Step::FinishPrune(pruned) => self.persist(after_prune(&self.inv, &pruned))?,
            Step::FinishDelete => {
                self.persist(after_delete(&self.inv, &id))?;
                self.live = None;
            }
            Step::Ack => self.acked[idx] = true,
        }
        Ok(())
    }

    fn persist(&mut self, next: Result<Inventory, InvalidTransition>) -> Result<(), TestCaseError> {
        let next = next.map_err(|e| TestCaseError::fail(format!("transition refused: {e}")))?;
        prop_assert_eq!(next.inconsistency(), None);
        // (3) Never backwards.
        prop_assert!(next.applied_revision >= self.inv.applied_revision, "applied revision went back");
        prop_assert!(next.newest() >= self.inv.newest(), "newest revision went back");
        self.inv = next;
        Ok(())
    }

    fn check_always(&self) -> Result<(), TestCaseError> {
        prop_assert!(foreign().is_subset(&self.cluster), "a foreign object was deleted");
        prop_assert!(
            self.ours().is_subset(&self.inv.owned),
            "orphaned: {:?}",
            self.ours().difference(&self.inv.owned)
        );
        Ok(())
    }

    /// Delivers every unacked command without a crash, as JetStream redelivers until acked.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for idx in 0..self.commands.len() {
            if !self.acked[idx] {
                self.deliver(idx, None)?;
            }
        }
        Ok(())
    }

    /// (4) The cluster and the inventory hold exactly what the newest command asks for.
    fn check_settled(&self) -> Result<(), TestCaseError> {
        prop_assert!(self.acked.iter().all(|a| *a));
        let newest = self.commands.iter().max_by_key(|c| (c.revision, c.op)).unwrap();
        let expected = match newest.op {
            Op::Apply => self.refs(newest.revision).into_iter().collect(),
            Op::Delete => BTreeSet::new(),
        };
        prop_assert_eq!(&self.ours(), &expected, "newest command {:?}", newest);
        prop_assert_eq!(&self.inv.owned, &expected);
        prop_assert_eq!(self.inv.in_flight.as_ref(), None);
        prop_assert_eq!(self.inv.applied_revision, Some(newest.revision));
        prop_assert_eq!(self.inv.deleted, newest.op == Op::Delete);
        let settled = if newest.op == Op::Apply { Phase::Applied } else { Phase::Deleted };
        prop_assert_eq!(self.inv.phase(), settled);
        Ok(())
    }

    fn explain(&self) -> String {
        self.log.join("\n")
    }
}

/// Runs `deliveries` then drains, checking every invariant; fails with the delivery log.
fn run(world: &mut World, deliveries: &[(usize, Option<usize>)]) -> Result<(), TestCaseError> {
    let result = (|| {
        for &(idx, crash) in deliveries {
            world.deliver(idx, crash)?;
        }
        world.drain()?;
        world.check_settled()
    })();
    result.map_err(|e| TestCaseError::fail(format!("{e}\n{}", world.explain())))
}

fn any_revision_table(revisions: usize) -> impl Strategy<Value = Vec<Vec<ObjectRef>>> {
    let universe = universe();
    proptest::collection::vec(proptest::collection::vec(any::<bool>(), universe.len()), revisions).prop_map(
        move |masks| {
            masks
                .into_iter()
                .map(|mask| {
                    universe.iter().zip(mask).filter(|(_, keep)| *keep).map(|(r, _)| r.clone()).collect()
                })
                .collect()
        },
    )
}

fn any_commands() -> impl Strategy<Value = Vec<Command>> {
    let op = prop_oneof![4 => Just(Op::Apply), 1 => Just(Op::Delete)];
    proptest::collection::vec((op, 1..=5u64), 1..8).prop_map(|cmds| {
        cmds.into_iter()
            .enumerate()
            .map(|(i, (op, revision))| Command { id: format!("cmd-{i}"), op, revision })
            .collect()
    })
}

fn any_deliveries() -> impl Strategy<Value = Vec<(prop::sample::Index, Option<usize>)>> {
    proptest::collection::vec(
        (any::<prop::sample::Index>(), proptest::option::weighted(0.5, any::<usize>())),
        0..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Invariants 1–4 over random commands: revisions out of order, the same revision under several
    /// ids, deletes, duplicate deliveries and crashes at any step.
    #[test]
    fn random_commands_with_crashes_and_redeliveries_converge_safely(
        revisions in any_revision_table(5),
        commands in any_commands(),
        deliveries in any_deliveries(),
    ) {
        let deliveries: Vec<(usize, Option<usize>)> =
            deliveries.into_iter().map(|(i, crash)| (i.index(commands.len()), crash)).collect();
        let mut world = World::new(revisions, commands);
        run(&mut world, &deliveries)?;
    }

    /// Invariant 5: A→B→A in any arrival order, with crashes and duplicates, ends with A live, B-only
    /// objects pruned, and nothing both render ever deleted.
    #[test]
    fn a_b_a_ends_with_a_live_and_b_only_objects_pruned(
        revisions in any_revision_table(2),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        crashes in proptest::collection::vec(proptest::option::weighted(0.6, any::<usize>()), 3),
        duplicates in proptest::collection::vec((0usize..3, proptest::option::of(any::<usize>())), 0..4),
    ) {
        let (a, b) = (revisions[0].clone(), revisions[1].clone());
        let commands = vec![apply_cmd("a", 1), apply_cmd("b", 2), apply_cmd("a-again", 3)];
        let mut world = World::new(vec![a.clone(), b.clone(), a.clone()], commands);
        let deliveries: Vec<(usize, Option<usize>)> =
            order.iter().map(|&i| (i, crashes[i])).chain(duplicates).collect();
        run(&mut world, &deliveries)?;
        prop_assert_eq!(world.ours(), set(&a));
        for both in a.iter().filter(|r| b.contains(r)) {
            prop_assert!(!world.deletions.contains(both), "{:?} is rendered by A and B and was deleted\n{}", both, world.explain());
        }
    }
}

#[test]
fn rapid_a_b_a_with_b_cut_short_keeps_a_and_prunes_b() {
    let a = vec![deployment("web"), config_map("web-config")];
    let b = vec![deployment("web"), config_map("web-env"), service("web")];
    let commands = vec![apply_cmd("a", 1), apply_cmd("b", 2), apply_cmd("a-again", 3)];
    let b_steps_before_finish = 1 + b.len(); // begin, then every object applied
    for b_crash in 0..=b_steps_before_finish + 3 {
        let mut world = World::new(vec![a.clone(), b.clone(), a.clone()], commands.clone());
        world.deliver(0, None).unwrap();
        world.deliver(1, Some(b_crash)).unwrap();
        world.deliver(2, None).unwrap();
        assert_eq!(world.ours(), set(&a), "B crashed after {b_crash} steps\n{}", world.explain());
        assert_eq!(world.inv.owned, set(&a));
        // B, redelivered late, is refused and changes nothing.
        world.drain().unwrap();
        world.check_settled().unwrap();
        assert!(!world.deletions.contains(&deployment("web")));
    }
}

#[test]
fn an_older_revision_arriving_late_is_refused() {
    let revisions =
        vec![vec![deployment("web")], vec![deployment("web"), service("web")], vec![config_map("x")]];
    let commands = vec![apply_cmd("c1", 1), apply_cmd("c3", 3), apply_cmd("c2", 2)];
    let mut world = World::new(revisions, commands);
    world.deliver(0, None).unwrap();
    world.deliver(1, None).unwrap();
    let before = world.cluster.clone();
    assert_eq!(
        decide_apply(&world.inv, apply_input("c2", 2, &[deployment("web"), service("web")])),
        ApplyDecision::Refuse(Refusal::StaleRevision { revision: 2, last: 3 })
    );
    world.deliver(2, None).unwrap();
    assert_eq!(world.cluster, before);
    world.check_settled().unwrap();
}

/// A crash at every possible step of an apply, once or twice, then redelivery: always the same end.
#[test]
fn an_apply_killed_at_any_step_and_redelivered_ends_in_one_consistent_state() {
    let revisions = vec![
        vec![deployment("web"), service("web"), config_map("web-config")],
        vec![deployment("web"), config_map("web-env")],
    ];
    let commands = vec![apply_cmd("c1", 1), apply_cmd("c2", 2)];
    let steps = {
        let mut world = World::new(revisions.clone(), commands.clone());
        world.deliver(0, None).unwrap();
        world.plan(1).unwrap().len()
    };
    assert_eq!(steps, 8, "begin, 2 puts, finish apply, 2 prunes, finish prune, ack");
    for first in 0..steps {
        for second in 0..steps {
            let mut world = World::new(revisions.clone(), commands.clone());
            world.deliver(0, None).unwrap();
            world.deliver(1, Some(first)).unwrap();
            world.deliver(1, Some(second)).unwrap();
            world.drain().unwrap();
            world.check_settled().unwrap();
            assert_eq!(world.ours(), set(&revisions[1]), "crashes after {first} and {second} steps");
        }
    }
}

#[test]
fn a_delete_killed_at_any_step_and_redelivered_removes_everything_ours() {
    let revisions = vec![vec![deployment("web"), service("web"), config_map("web-config")]];
    let commands = vec![apply_cmd("c1", 1), delete_cmd("d2", 2)];
    for crash in 0..7 {
        let mut world = World::new(revisions.clone(), commands.clone());
        world.deliver(0, None).unwrap();
        world.deliver(1, Some(crash)).unwrap();
        world.drain().unwrap();
        world.check_settled().unwrap();
        assert_eq!(world.cluster, foreign());
    }
}
