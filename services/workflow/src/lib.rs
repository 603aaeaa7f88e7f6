//! The workflow service: SREWorks AppManager's deployments and workflows.
//!
//! This first slice holds only the pure state machines ([`state`]): the lifecycle of a deployment,
//! of each component it deploys, of a workflow instance and of each task in it, with the state names
//! SREWorks users know. The service that drives them (commands over NATS, storage in MySQL,
//! deadlines, the operator actions resume / terminate / retry / rollback) comes next and will change
//! a state only through `next(trigger)`, publishing every accepted transition as an event.

pub mod state;
