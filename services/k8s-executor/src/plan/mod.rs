//! What the executor does with a command, given what it recorded before — pure, no I/O.
//!
//! Peers got this wrong in three ways this module is built against: rapid A→B→A revisions whose
//! garbage collection deleted objects the final A still rendered (KubeVela #6746, #7278); an older
//! revision arriving late and being applied over a newer one; and a command redelivered after a crash
//! mid-apply ending in a state neither revision describes.
//!
//! # The record
//! For each component instance the executor keeps an [`Inventory`] (stored in `sw_executor`): the last
//! command that finished (revision, id, whether it was a delete), the objects that command rendered
//! ([`Inventory::applied`]), the command whose side effects have started but not finished
//! ([`Inventory::in_flight`], the crash window), and [`Inventory::owned`] — every object the executor
//! may have created for this instance, across revisions, until it is seen deleted. `owned` is the only
//! source of what may ever be deleted.
//!
//! # How a command moves through it
//! The service loads the inventory, asks [`decide_apply`] or [`decide_delete`], and then walks the
//! answer step by step, persisting each transition *before* the side effect it allows:
//!
//! 1. [`ApplyDecision::Apply`]: persist [`begin`] (records the command in flight and adds its objects
//!    to `owned` — write-ahead, so an object is owned before it can exist); server-side apply every
//!    object; persist [`after_apply`]; delete `then_prune`; persist [`after_prune`]; report and ack.
//! 2. [`DeleteDecision::Delete`]: persist [`begin`]; delete every object in `delete`; persist
//!    [`after_prune`] then [`after_delete`]; report and ack.
//! 3. [`ApplyDecision::Replay`] / [`DeleteDecision::Replay`]: the command already finished. Report
//!    the same result; the only work is a prune the first delivery started and did not finish.
//! 4. `Refuse`: report the [`Refusal`] and ack; nothing is touched.
//!
//! A crash between any two steps leaves a persisted inventory from which the redelivered command (or a
//! newer one) decides correctly: a command found in flight resumes — applies again, which server-side
//! apply makes harmless, and only then prunes; a prune cut short is finished by the replay or folded into
//! the next revision's prune.
//!
//! # Ordering
//! Commands are ordered by `(revision, op)` with a delete after an apply of the same revision. A
//! command older than the newest one finished *or started* is refused as stale: once revision R has
//! touched the cluster nothing older may, so a late revision can never land on top of a newer one
//! even while the newer one is still in flight. Equal revisions: the same command id is a redelivery
//! (resume or replay); another id with the same objects is a new request for the same state — the
//! workflow retrying a step — and is applied again (a no-op when nothing drifted, a repair when
//! something did; a replay would answer a retry with the very result that made it retry); another id
//! with *different* objects is refused as a [`Refusal::RevisionConflict`], since two commands
//! disagree about what revision R is and nothing here can tell which is right.
//!
//! # Safety
//! - A prune deletes only `owned − applied`, only after the new revision's apply finished, and never
//!   an object the newest revision renders: A→B→A prunes B-only objects after the second A is applied
//!   and never touches what A renders ([`after_prune`] refuses to drop a live object).
//! - Nothing outside `owned` is deleted. `owned` can hold a name someone else also created; the
//!   service still checks an object's ownership labels ([`crate::render::owner_selector`]) before
//!   deleting it.
//! - The revision of the last finished command never decreases.
//!
//! The transitions are legal only as [`Phase`]'s table ([`targets`]) allows. They assume the service
//! serialises the transitions of one component instance (an optimistic version column on the stored
//! inventory, checked on every write: a worker whose write loses stops before acting).

mod decide;
mod transition;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sw_contracts::executor::ObjectRef;

pub use decide::{
    ApplyDecision, ApplyInput, DeleteDecision, DeleteInput, Refusal, decide_apply, decide_delete,
};
pub use transition::{
    Edge, InvalidTransition, Phase, after_apply, after_delete, after_prune, begin, targets,
};

/// What a command does to the component instance.
///
/// Ordered: a delete comes after an apply of the same revision, so a delete at R supersedes an apply
/// at R and an apply at R arriving after a delete at R is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    Apply,
    Delete,
}

/// A command whose side effects have started and not finished: between [`begin`] and
/// [`after_apply`] / [`after_delete`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub op: Op,
    pub revision: u64,
    pub command_id: String,
    /// The objects an apply renders; always empty for a delete (it removes what is `owned`).
    pub refs: BTreeSet<ObjectRef>,
}

impl InFlight {
    /// An apply of `refs` as `revision`.
    pub fn apply(command_id: impl Into<String>, revision: u64, refs: BTreeSet<ObjectRef>) -> Self {
        Self { op: Op::Apply, revision, command_id: command_id.into(), refs }
    }

    /// A delete at `revision`.
    pub fn delete(command_id: impl Into<String>, revision: u64) -> Self {
        Self { op: Op::Delete, revision, command_id: command_id.into(), refs: BTreeSet::new() }
    }
}

/// What the executor recorded for one component instance. A fresh instance is
/// [`Inventory::default()`].
///
/// The fields are public so the store can map them to columns; change them only through [`begin`],
/// [`after_apply`], [`after_prune`] and [`after_delete`], which keep them consistent
/// ([`Inventory::inconsistency`] says how a stored one is not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// The revision of the last command that finished: an apply, or the delete when `deleted`.
    pub applied_revision: Option<u64>,
    /// The id of that command. Only the last one is remembered: a redelivery of an older command is
    /// refused as stale, which has no side effect either.
    pub last_command_id: Option<String>,
    /// The objects the last finished apply rendered (less any a delete since removed): live, never
    /// pruned. Empty after a delete.
    pub applied: BTreeSet<ObjectRef>,
    /// A command that started and did not finish.
    pub in_flight: Option<InFlight>,
    /// Every object the executor may have created for this instance and has not seen deleted; a
    /// superset of `applied` and of the in-flight refs.
    pub owned: BTreeSet<ObjectRef>,
    /// Whether the last finished command was a delete.
    pub deleted: bool,
}

impl Inventory {
    /// Where the instance stands; see [`Phase`].
    pub fn phase(&self) -> Phase {
        match &self.in_flight {
            Some(f) if f.op == Op::Apply => Phase::Applying,
            Some(_) => Phase::Deleting,
            None if self.deleted => Phase::Deleted,
            None if self.applied_revision.is_none() => Phase::New,
            None if self.owned != self.applied => Phase::Pruning,
            None => Phase::Applied,
        }
    }

    /// The last finished command's `(revision, op)`.
    pub fn finished(&self) -> Option<(u64, Op)> {
        let op = if self.deleted { Op::Delete } else { Op::Apply };
        self.applied_revision.map(|r| (r, op))
    }

    /// The newest `(revision, op)` that has finished or started; anything older is stale.
    pub fn newest(&self) -> Option<(u64, Op)> {
        let started = self.in_flight.as_ref().map(|f| (f.revision, f.op));
        self.finished().max(started)
    }

    /// Objects left over from earlier revisions that the last finished apply no longer renders, in
    /// order; empty unless the phase is [`Phase::Pruning`] (nothing is pruned while a command is in
    /// flight: the in-flight command's own prune covers them once its apply finished).
    pub fn pending_prune(&self) -> Vec<ObjectRef> {
        if self.phase() != Phase::Pruning {
            return Vec::new();
        }
        self.owned.difference(&self.applied).cloned().collect()
    }

    /// Why this inventory cannot have come from the transitions, or `None` when it can. The store
    /// checks it on load: a row edited by hand must not drive deletions.
    pub fn inconsistency(&self) -> Option<&'static str> {
        let in_flight_refs = self.in_flight.iter().flat_map(|f| &f.refs);
        let problem = if !self.applied.is_subset(&self.owned) {
            "applied objects missing from owned"
        } else if in_flight_refs.clone().any(|r| !self.owned.contains(r)) {
            "in-flight objects missing from owned"
        } else if self.in_flight.as_ref().is_some_and(|f| f.op == Op::Delete && !f.refs.is_empty()) {
            "an in-flight delete with objects of its own"
        } else if self.applied_revision.is_some() != self.last_command_id.is_some() {
            "a finished revision without its command id, or the reverse"
        } else if self.applied_revision.is_none() && (self.deleted || !self.applied.is_empty()) {
            "deleted or applied objects without a finished revision"
        } else if self.deleted && !self.applied.is_empty() {
            "applied objects after a delete"
        } else if self.in_flight.is_some()
            && self.newest() != self.in_flight.as_ref().map(|f| (f.revision, f.op))
        {
            "the command in flight is older than the last finished one"
        } else if matches!(self.phase(), Phase::New | Phase::Deleted) && !self.owned.is_empty() {
            "owned objects with nothing applied or in flight"
        } else {
            return None;
        };
        Some(problem)
    }
}
