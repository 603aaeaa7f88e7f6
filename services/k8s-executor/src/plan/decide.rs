//! The decisions: what to do with an apply or delete command given the inventory.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use sw_contracts::executor::{K8sApplyCommand, K8sDeleteCommand, ObjectRef};

use super::{InFlight, Inventory, Op};
use crate::render::Rendered;

/// An apply command as the plan sees it: its identity and the objects its revision renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyInput {
    pub command_id: String,
    pub revision: u64,
    /// In apply order; duplicates are ignored.
    pub refs: Vec<ObjectRef>,
}

impl ApplyInput {
    /// `cmd` as rendered into `rendered`.
    pub fn new(cmd: &K8sApplyCommand, rendered: &Rendered) -> Self {
        Self { command_id: cmd.command_id.clone(), revision: cmd.revision, refs: rendered.refs.clone() }
    }
}

/// A delete command as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteInput {
    pub command_id: String,
    pub revision: u64,
}

impl From<&K8sDeleteCommand> for DeleteInput {
    fn from(cmd: &K8sDeleteCommand) -> Self {
        Self { command_id: cmd.command_id.clone(), revision: cmd.revision }
    }
}

/// Why a command is refused. Refusing has no side effect; the service reports it as `failed` with
/// [`Refusal::reason`] and acks the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An older revision than one that already finished or started.
    #[error(
        "revision {revision} is older than revision {last}, which the executor already applied or started"
    )]
    StaleRevision { revision: u64, last: u64 },
    /// Another command with the same revision renders other objects.
    #[error("revision {revision} was already applied with other objects; a change needs a new revision")]
    RevisionConflict { revision: u64 },
    /// The command id was already used by a command with another revision or operation.
    #[error("command id {command_id:?} was already used for another revision or operation")]
    CommandIdReused { command_id: String },
}

impl Refusal {
    /// The machine reason of the `failed` result ([`sw_contracts::executor::ComponentResult::reason`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::StaleRevision { .. } => "StaleRevision",
            Refusal::RevisionConflict { .. } => "RevisionConflict",
            Refusal::CommandIdReused { .. } => "CommandIdReused",
        }
    }
}

/// What to do with an apply command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyDecision {
    /// Persist [`super::begin`] with `record_in_flight`, apply every object, persist
    /// [`super::after_apply`], then — only then — delete `then_prune` and persist
    /// [`super::after_prune`]. `then_prune` is `owned − refs`: it never holds an object this revision
    /// renders. Also the answer to a redelivery found in flight (a resume).
    Apply {
        record_in_flight: InFlight,
        then_prune: Vec<ObjectRef>,
    },
    /// The command already finished: report its result again. `finish_prune` is what its prune left
    /// undone (usually nothing): delete it and persist [`super::after_prune`].
    Replay {
        finish_prune: Vec<ObjectRef>,
    },
    Refuse(Refusal),
}

/// What to do with a delete command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteDecision {
    /// Persist [`super::begin`] with `record_in_flight`, delete every object in `delete` (everything
    /// owned, including what an unfinished apply may have created), persist [`super::after_prune`]
    /// and [`super::after_delete`].
    Delete {
        record_in_flight: InFlight,
        delete: Vec<ObjectRef>,
    },
    /// The delete already finished: report `deleted` again.
    Replay,
    Refuse(Refusal),
}

/// Decides what to do with `cmd` given `inv`; see the module docs for the rules.
pub fn decide_apply(inv: &Inventory, cmd: ApplyInput) -> ApplyDecision {
    let refs: BTreeSet<ObjectRef> = cmd.refs.into_iter().collect();
    let go = |refs: BTreeSet<ObjectRef>| {
        let then_prune = inv.owned.difference(&refs).cloned().collect();
        ApplyDecision::Apply {
            record_in_flight: InFlight::apply(&cmd.command_id, cmd.revision, refs),
            then_prune,
        }
    };
    match seen(inv, &cmd.command_id, Op::Apply, cmd.revision) {
        Some(Seen::InFlight) => return go(refs),
        Some(Seen::Finished) => return ApplyDecision::Replay { finish_prune: inv.pending_prune() },
        Some(Seen::Reused) => return ApplyDecision::Refuse(reused(cmd.command_id)),
        None => {}
    }
    match order(inv, cmd.revision, Op::Apply) {
        Ordering::Less => ApplyDecision::Refuse(stale(inv, cmd.revision)),
        Ordering::Equal if refs != *newest_refs(inv) => {
            ApplyDecision::Refuse(Refusal::RevisionConflict { revision: cmd.revision })
        }
        Ordering::Equal | Ordering::Greater => go(refs),
    }
}

/// Decides what to do with `cmd` given `inv`: delete everything owned, unless the command is stale or
/// already done.
pub fn decide_delete(inv: &Inventory, cmd: DeleteInput) -> DeleteDecision {
    let go = || DeleteDecision::Delete {
        record_in_flight: InFlight::delete(&cmd.command_id, cmd.revision),
        delete: inv.owned.iter().cloned().collect(),
    };
    match seen(inv, &cmd.command_id, Op::Delete, cmd.revision) {
        Some(Seen::InFlight) => return go(),
        Some(Seen::Finished) => return DeleteDecision::Replay,
        Some(Seen::Reused) => return DeleteDecision::Refuse(reused(cmd.command_id)),
        None => {}
    }
    match order(inv, cmd.revision, Op::Delete) {
        Ordering::Less => DeleteDecision::Refuse(stale(inv, cmd.revision)),
        // Deleting twice deletes what is left, which is nothing once the first one finished.
        Ordering::Equal | Ordering::Greater => go(),
    }
}

/// Whether the inventory knows the command by its id.
enum Seen {
    /// It is the command in flight: resume it.
    InFlight,
    /// It is the last command that finished: replay it.
    Finished,
    /// The id is known with another revision or operation.
    Reused,
}

fn seen(inv: &Inventory, command_id: &str, op: Op, revision: u64) -> Option<Seen> {
    if let Some(f) = &inv.in_flight
        && f.command_id == command_id
    {
        return Some(if (f.op, f.revision) == (op, revision) { Seen::InFlight } else { Seen::Reused });
    }
    if inv.last_command_id.as_deref() == Some(command_id) {
        return Some(if inv.finished() == Some((revision, op)) { Seen::Finished } else { Seen::Reused });
    }
    None
}

/// How a command at `(revision, op)` compares with the newest one finished or started; greater when
/// there is none.
fn order(inv: &Inventory, revision: u64, op: Op) -> Ordering {
    inv.newest().map_or(Ordering::Greater, |newest| (revision, op).cmp(&newest))
}

/// The objects of the newest apply: the one in flight if it is the newest, else the last finished.
fn newest_refs(inv: &Inventory) -> &BTreeSet<ObjectRef> {
    match &inv.in_flight {
        Some(f) if Some((f.revision, f.op)) == inv.newest() => &f.refs,
        _ => &inv.applied,
    }
}

fn stale(inv: &Inventory, revision: u64) -> Refusal {
    let last = inv.newest().map_or(0, |(r, _)| r);
    Refusal::StaleRevision { revision, last }
}

fn reused(command_id: String) -> Refusal {
    Refusal::CommandIdReused { command_id }
}
