//! The authorization matrix of appmeta: which role may do which operation.
//!
//! The matrix says nothing about scope; handlers pass the scope the operation acts on to
//! [`sw_authz::Principal::require`], which considers only the bindings that apply there:
//! apps and components are checked in `Scope::App { app, team }` (so app- and team-scoped
//! bindings count), namespaces, stages and clusters in `Scope::Global` (so only global bindings
//! count).

use sw_contracts::auth::Role;

/// Every operation appmeta authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AppRead,
    AppCreate,
    AppUpdate,
    AppDelete,
    ComponentRead,
    ComponentCreate,
    ComponentUpdate,
    ComponentDelete,
    NamespaceRead,
    NamespaceCreate,
    NamespaceUpdate,
    NamespaceDelete,
    StageRead,
    StageCreate,
    StageUpdate,
    StageDelete,
    ClusterRead,
    ClusterCreate,
    ClusterUpdate,
    ClusterDelete,
}

impl Op {
    /// Every operation, for exhaustive tests.
    pub const ALL: [Op; 20] = [
        Op::AppRead,
        Op::AppCreate,
        Op::AppUpdate,
        Op::AppDelete,
        Op::ComponentRead,
        Op::ComponentCreate,
        Op::ComponentUpdate,
        Op::ComponentDelete,
        Op::NamespaceRead,
        Op::NamespaceCreate,
        Op::NamespaceUpdate,
        Op::NamespaceDelete,
        Op::StageRead,
        Op::StageCreate,
        Op::StageUpdate,
        Op::StageDelete,
        Op::ClusterRead,
        Op::ClusterCreate,
        Op::ClusterUpdate,
        Op::ClusterDelete,
    ];
}

/// True when `role` may perform `op` (in whatever scope the binding applies).
pub fn allowed(role: Role, op: Op) -> bool {
    use Op::*;
    use Role::*;
    match (role, op) {
        // Everyone may read; for namespaces, stages and clusters only global bindings apply.
        (_, AppRead | ComponentRead | NamespaceRead | StageRead | ClusterRead) => true,
        // Apps are built and shipped by developers within their scope.
        (Admin | Operator | Developer, AppCreate | AppUpdate | AppDelete) => true,
        (Admin | Operator | Developer, ComponentCreate | ComponentUpdate | ComponentDelete) => true,
        // Where things run is the platform operators' business.
        (Admin | Operator, NamespaceCreate | NamespaceUpdate | NamespaceDelete) => true,
        (Admin | Operator, StageCreate | StageUpdate | StageDelete) => true,
        (Admin | Operator, ClusterCreate | ClusterUpdate | ClusterDelete) => true,
        (Developer | Viewer, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected matrix written out in full: (op, [admin, operator, developer, viewer]).
    const EXPECTED: [(Op, [bool; 4]); 20] = [
        (Op::AppRead, [true, true, true, true]),
        (Op::AppCreate, [true, true, true, false]),
        (Op::AppUpdate, [true, true, true, false]),
        (Op::AppDelete, [true, true, true, false]),
        (Op::ComponentRead, [true, true, true, true]),
        (Op::ComponentCreate, [true, true, true, false]),
        (Op::ComponentUpdate, [true, true, true, false]),
        (Op::ComponentDelete, [true, true, true, false]),
        (Op::NamespaceRead, [true, true, true, true]),
        (Op::NamespaceCreate, [true, true, false, false]),
        (Op::NamespaceUpdate, [true, true, false, false]),
        (Op::NamespaceDelete, [true, true, false, false]),
        (Op::StageRead, [true, true, true, true]),
        (Op::StageCreate, [true, true, false, false]),
        (Op::StageUpdate, [true, true, false, false]),
        (Op::StageDelete, [true, true, false, false]),
        (Op::ClusterRead, [true, true, true, true]),
        (Op::ClusterCreate, [true, true, false, false]),
        (Op::ClusterUpdate, [true, true, false, false]),
        (Op::ClusterDelete, [true, true, false, false]),
    ];

    #[test]
    fn matrix_matches_the_table_for_every_role_and_op() {
        assert_eq!(
            Role::ALL,
            [Role::Admin, Role::Operator, Role::Developer, Role::Viewer],
            "table column order"
        );
        for op in Op::ALL {
            let (_, row) = EXPECTED
                .iter()
                .find(|(o, _)| *o == op)
                .unwrap_or_else(|| panic!("{op:?} missing from table"));
            for (role, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, op), *want, "{role} {op:?}");
            }
        }
        let mut ops: Vec<_> = EXPECTED.iter().map(|(o, _)| format!("{o:?}")).collect();
        ops.sort();
        ops.dedup();
        assert_eq!(ops.len(), Op::ALL.len(), "each op appears once in the table");
    }

    /// A new variant fails to compile here until it is added to `Op::ALL` (and so to the table).
    #[test]
    fn all_lists_every_variant() {
        for (i, op) in Op::ALL.into_iter().enumerate() {
            let at = match op {
                Op::AppRead => 0,
                Op::AppCreate => 1,
                Op::AppUpdate => 2,
                Op::AppDelete => 3,
                Op::ComponentRead => 4,
                Op::ComponentCreate => 5,
                Op::ComponentUpdate => 6,
                Op::ComponentDelete => 7,
                Op::NamespaceRead => 8,
                Op::NamespaceCreate => 9,
                Op::NamespaceUpdate => 10,
                Op::NamespaceDelete => 11,
                Op::StageRead => 12,
                Op::StageCreate => 13,
                Op::StageUpdate => 14,
                Op::StageDelete => 15,
                Op::ClusterRead => 16,
                Op::ClusterCreate => 17,
                Op::ClusterUpdate => 18,
                Op::ClusterDelete => 19,
            };
            assert_eq!(at, i, "{op:?}");
        }
    }
}
