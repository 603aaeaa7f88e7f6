//! The instance's phases, the one table of allowed edges, and the transitions that walk them.

use std::fmt;

use sw_contracts::executor::ObjectRef;

use super::{InFlight, Inventory, Op};

/// Where a component instance stands, as [`Inventory::phase`] derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Nothing recorded yet.
    New,
    /// An apply started and has not finished; nothing may be pruned.
    Applying,
    /// The last apply finished; objects earlier revisions rendered are still owned and due to go.
    Pruning,
    /// The last apply finished and every object owned is one it renders.
    Applied,
    /// A delete started and has not finished.
    Deleting,
    /// The last command was a delete and it finished: nothing is owned.
    Deleted,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::New, Phase::Applying, Phase::Pruning, Phase::Applied, Phase::Deleting, Phase::Deleted];
}

/// A transition, named after the step the service persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// [`begin`] with an apply.
    BeginApply,
    /// [`begin`] with a delete.
    BeginDelete,
    /// [`after_apply`].
    FinishApply,
    /// [`after_prune`] with at least one object (an empty prune changes nothing and is allowed
    /// everywhere).
    Prune,
    /// [`after_delete`].
    FinishDelete,
}

impl Edge {
    pub const ALL: [Edge; 5] =
        [Edge::BeginApply, Edge::BeginDelete, Edge::FinishApply, Edge::Prune, Edge::FinishDelete];
}

/// The transition table: the phases `edge` may lead to from `from`, empty when it is not allowed.
/// Where two targets are listed the data decides (whether anything is left to prune).
///
/// | from \ edge | BeginApply | BeginDelete | FinishApply      | Prune            | FinishDelete |
/// |-------------|------------|-------------|------------------|------------------|--------------|
/// | New         | Applying   | Deleting    | —                | —                | —            |
/// | Applying    | Applying   | Deleting    | Pruning, Applied | —                | —            |
/// | Pruning     | Applying   | Deleting    | —                | Pruning, Applied | —            |
/// | Applied     | Applying   | Deleting    | —                | —                | —            |
/// | Deleting    | Applying   | Deleting    | —                | Deleting         | Deleted      |
/// | Deleted     | Applying   | Deleting    | —                | —                | —            |
///
/// A command may begin from any phase (a resume, or a newer revision superseding an unfinished
/// one); [`begin`] refuses only an older one. Pruning while applying is the edge that must not exist.
pub fn targets(from: Phase, edge: Edge) -> &'static [Phase] {
    use {Edge::*, Phase::*};
    match (edge, from) {
        (BeginApply, _) => &[Applying],
        (BeginDelete, _) => &[Deleting],
        (FinishApply, Applying) => &[Pruning, Applied],
        (Prune, Pruning) => &[Pruning, Applied],
        (Prune, Deleting) => &[Deleting],
        (FinishDelete, Deleting) => &[Deleted],
        (FinishApply | Prune | FinishDelete, _) => &[],
    }
}

/// A transition the table or the data does not allow. Each is a bug in the caller; the inventory is
/// left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTransition {
    #[error("{edge:?} is not allowed from {from:?}")]
    NotAllowed { from: Phase, edge: Edge },
    #[error("cannot begin revision {revision}: revision {newest} already finished or started")]
    Stale { revision: u64, newest: u64 },
    #[error("an in-flight delete cannot carry objects of its own")]
    DeleteWithObjects,
    #[error("command {command_id:?} is not the {op:?} in flight")]
    NotInFlight { command_id: String, op: Op },
    #[error("{} is not owned", Shown(.0))]
    NotOwned(ObjectRef),
    #[error("{} is rendered by the applied revision and must not be pruned", Shown(.0))]
    Live(ObjectRef),
    #[error("cannot finish a delete while {count} owned objects remain")]
    ObjectsRemain { count: usize },
}

/// Records `in_flight` as started: the command in flight becomes it, and its objects become owned
/// before any of them is applied. Refuses a command older than the newest one finished or started.
pub fn begin(inv: &Inventory, in_flight: &InFlight) -> Result<Inventory, InvalidTransition> {
    let edge = match in_flight.op {
        Op::Apply => Edge::BeginApply,
        Op::Delete => Edge::BeginDelete,
    };
    allowed(inv, edge)?;
    if in_flight.op == Op::Delete && !in_flight.refs.is_empty() {
        return Err(InvalidTransition::DeleteWithObjects);
    }
    if let Some(newest) = inv.newest()
        && (in_flight.revision, in_flight.op) < newest
    {
        return Err(InvalidTransition::Stale { revision: in_flight.revision, newest: newest.0 });
    }
    let mut next = inv.clone();
    next.owned.extend(in_flight.refs.iter().cloned());
    next.in_flight = Some(in_flight.clone());
    Ok(checked(next, edge, inv.phase()))
}

/// Records that the apply `command_id` finished: its revision is the applied one and its objects are
/// live. Refuses unless that apply is the one in flight — an apply superseded by a newer command must
/// not be recorded over it.
pub fn after_apply(inv: &Inventory, command_id: &str) -> Result<Inventory, InvalidTransition> {
    allowed(inv, Edge::FinishApply)?;
    let f = in_flight(inv, command_id, Op::Apply)?;
    let mut next = inv.clone();
    next.applied_revision = Some(f.revision);
    next.last_command_id = Some(f.command_id.clone());
    next.applied = f.refs.clone();
    next.owned.extend(f.refs.iter().cloned());
    next.deleted = false;
    next.in_flight = None;
    Ok(checked(next, Edge::FinishApply, inv.phase()))
}

/// Records that `pruned` are gone from the cluster: they are no longer owned. Allowed after an apply
/// finished (never an object it renders) and during a delete; every object must be owned. An empty
/// list changes nothing.
pub fn after_prune(inv: &Inventory, pruned: &[ObjectRef]) -> Result<Inventory, InvalidTransition> {
    if pruned.is_empty() {
        return Ok(inv.clone());
    }
    allowed(inv, Edge::Prune)?;
    if let Some(r) = pruned.iter().find(|r| !inv.owned.contains(*r)) {
        return Err(InvalidTransition::NotOwned(r.clone()));
    }
    if inv.phase() == Phase::Pruning
        && let Some(r) = pruned.iter().find(|r| inv.applied.contains(*r))
    {
        return Err(InvalidTransition::Live(r.clone()));
    }
    let mut next = inv.clone();
    for r in pruned {
        next.owned.remove(r);
        // During a delete the applied objects go too; `applied` stays a subset of `owned`.
        next.applied.remove(r);
    }
    Ok(checked(next, Edge::Prune, inv.phase()))
}

/// Records that the delete `command_id` finished. Refuses unless it is the delete in flight and every
/// owned object was pruned.
pub fn after_delete(inv: &Inventory, command_id: &str) -> Result<Inventory, InvalidTransition> {
    allowed(inv, Edge::FinishDelete)?;
    let f = in_flight(inv, command_id, Op::Delete)?;
    if !inv.owned.is_empty() {
        return Err(InvalidTransition::ObjectsRemain { count: inv.owned.len() });
    }
    let mut next = inv.clone();
    next.applied_revision = Some(f.revision);
    next.last_command_id = Some(f.command_id.clone());
    next.applied.clear();
    next.deleted = true;
    next.in_flight = None;
    Ok(checked(next, Edge::FinishDelete, inv.phase()))
}

fn allowed(inv: &Inventory, edge: Edge) -> Result<(), InvalidTransition> {
    let from = inv.phase();
    if targets(from, edge).is_empty() {
        return Err(InvalidTransition::NotAllowed { from, edge });
    }
    Ok(())
}

fn in_flight<'a>(inv: &'a Inventory, command_id: &str, op: Op) -> Result<&'a InFlight, InvalidTransition> {
    inv.in_flight
        .as_ref()
        .filter(|f| f.command_id == command_id && f.op == op)
        .ok_or_else(|| InvalidTransition::NotInFlight { command_id: command_id.to_owned(), op })
}

/// The table and the transitions must agree; a disagreement is a bug here, caught by every test.
fn checked(next: Inventory, edge: Edge, from: Phase) -> Inventory {
    debug_assert!(
        targets(from, edge).contains(&next.phase()),
        "{edge:?} from {from:?} reached {:?}, which the table does not list",
        next.phase()
    );
    debug_assert_eq!(next.inconsistency(), None, "{edge:?} from {from:?} left {next:?}");
    next
}

/// An object reference in an error message.
struct Shown<'a>(&'a ObjectRef);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "{} {}", r.kind, r.api_version)?;
        match &r.namespace {
            Some(ns) => write!(f, " {ns}/{}", r.name),
            None => write!(f, " {}", r.name),
        }
    }
}
