//! Who may do what with deployments and workflows.
//!
//! Deployments belong to an app and are checked in `Scope::App { app, team }` with the team appmeta
//! had for the app at launch.

use sw_contracts::auth::Role;

/// Every operation the workflow service authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read deployments and workflows.
    Read,
    /// Launch, replay, roll back, and operate workflows (resume, retry, terminate, context).
    Deploy,
}

/// True when `role` may perform `op`.
pub fn allowed(role: Role, op: Op) -> bool {
    match op {
        Op::Read => true,
        Op::Deploy => matches!(role, Role::Admin | Role::Operator | Role::Developer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_read_and_only_builders_deploy() {
        for role in [Role::Admin, Role::Operator, Role::Developer, Role::Viewer] {
            assert!(allowed(role, Op::Read));
        }
        assert!(allowed(Role::Developer, Op::Deploy));
        assert!(!allowed(Role::Viewer, Op::Deploy));
    }
}
