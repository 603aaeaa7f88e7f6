//! The authorization matrix of the auth service.
//!
//! `token`, `revoke` and `jwks` are deliberately absent: they are unauthenticated by design (the
//! token endpoint authenticates clients and users itself, and the JWKS is public), so no role
//! decides over them.
//!
//! Every operation here is checked against [`sw_authz::Scope::Global`]: users, clients and signing
//! keys are platform-wide, so an `admin` binding limited to one app or team does not manage them.

use sw_authz::Principal;
use sw_contracts::auth::Role;

/// An operation of the auth service that needs a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /v1/me`.
    Me,
    UsersList,
    UsersCreate,
    /// `GET /v1/users/{username}` — also allowed to the user themselves, see [`may_get_user`].
    UsersGet,
    UsersUpdate,
    UsersDelete,
    UsersRolesSet,
    ClientsList,
    ClientsCreate,
    ClientsGet,
    ClientsDelete,
    ClientsRotateSecret,
    ClientsRolesSet,
    KeysList,
    KeysRotate,
}

impl Op {
    /// Every operation, for the exhaustive matrix test.
    pub const ALL: [Op; 15] = [
        Op::Me,
        Op::UsersList,
        Op::UsersCreate,
        Op::UsersGet,
        Op::UsersUpdate,
        Op::UsersDelete,
        Op::UsersRolesSet,
        Op::ClientsList,
        Op::ClientsCreate,
        Op::ClientsGet,
        Op::ClientsDelete,
        Op::ClientsRotateSecret,
        Op::ClientsRolesSet,
        Op::KeysList,
        Op::KeysRotate,
    ];
}

/// May `role` perform `op`? `admin` may do everything; every role may ask who it is; the rest
/// (users, clients, keys) is admin only. (`me` handlers accept any valid token, even one without
/// role bindings, since a principal may always learn who it is; the row here documents that.)
pub fn allowed(role: Role, op: Op) -> bool {
    match (role, op) {
        (Role::Admin, _) => true,
        (Role::Operator | Role::Developer | Role::Viewer, Op::Me) => true,
        (
            Role::Operator | Role::Developer | Role::Viewer,
            Op::UsersList
            | Op::UsersCreate
            | Op::UsersGet
            | Op::UsersUpdate
            | Op::UsersDelete
            | Op::UsersRolesSet
            | Op::ClientsList
            | Op::ClientsCreate
            | Op::ClientsGet
            | Op::ClientsDelete
            | Op::ClientsRotateSecret
            | Op::ClientsRolesSet
            | Op::KeysList
            | Op::KeysRotate,
        ) => false,
    }
}

/// A user may read their own record whatever their roles; anyone else needs [`Op::UsersGet`].
pub fn may_get_user(principal: &Principal, username: &str) -> bool {
    principal.username() == Some(username) || principal.can(allowed, Op::UsersGet, sw_authz::Scope::Global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sw_contracts::AppId;
    use sw_contracts::auth::RoleBinding;

    /// The expected matrix, written out row by row: (op, [admin, operator, developer, viewer]).
    const EXPECTED: [(Op, [bool; 4]); 15] = [
        (Op::Me, [true, true, true, true]),
        (Op::UsersList, [true, false, false, false]),
        (Op::UsersCreate, [true, false, false, false]),
        (Op::UsersGet, [true, false, false, false]),
        (Op::UsersUpdate, [true, false, false, false]),
        (Op::UsersDelete, [true, false, false, false]),
        (Op::UsersRolesSet, [true, false, false, false]),
        (Op::ClientsList, [true, false, false, false]),
        (Op::ClientsCreate, [true, false, false, false]),
        (Op::ClientsGet, [true, false, false, false]),
        (Op::ClientsDelete, [true, false, false, false]),
        (Op::ClientsRotateSecret, [true, false, false, false]),
        (Op::ClientsRolesSet, [true, false, false, false]),
        (Op::KeysList, [true, false, false, false]),
        (Op::KeysRotate, [true, false, false, false]),
    ];

    #[test]
    fn matrix_is_exactly_the_expected_table() {
        // Every op appears exactly once in the table.
        for op in Op::ALL {
            assert_eq!(EXPECTED.iter().filter(|(o, _)| *o == op).count(), 1, "{op:?}");
        }
        let roles = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];
        assert_eq!(roles, Role::ALL, "the table's columns must follow Role::ALL");
        for (op, row) in EXPECTED {
            for (role, want) in roles.iter().zip(row) {
                assert_eq!(allowed(*role, op), want, "{role} {op:?}");
            }
        }
    }

    fn principal(subject: &str, roles: Vec<RoleBinding>) -> Principal {
        Principal { subject: subject.into(), client_id: "swcli".into(), roles, jti: "j".into(), exp: 0 }
    }

    #[test]
    fn users_read_themselves_but_nobody_else() {
        let alice = principal("user:alice", vec![]);
        assert!(may_get_user(&alice, "alice"));
        assert!(!may_get_user(&alice, "bob"));
        let client = principal("client:alice", vec![]);
        assert!(!may_get_user(&client, "alice"), "a client named like a user is not that user");
        let admin = principal("user:root", vec![RoleBinding::global(Role::Admin)]);
        assert!(may_get_user(&admin, "bob"));
    }

    #[test]
    fn a_scoped_admin_does_not_manage_users() {
        let app_admin = principal(
            "user:a",
            vec![RoleBinding { role: Role::Admin, team: None, app: Some(AppId::parse("shop").unwrap()) }],
        );
        assert!(!may_get_user(&app_admin, "bob"));
        assert!(!app_admin.can(allowed, Op::UsersCreate, sw_authz::Scope::Global));
    }
}
