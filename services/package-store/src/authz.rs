//! The authorization matrix of package-store: which role may do which operation.
//!
//! Packages belong to an app and are checked in `Scope::App { app, team: None }`: global and
//! app-scoped bindings count. Team bindings do not, because the app's team lives in appmeta and
//! package-store makes no call to another service on a request path; a team member who needs
//! packages gets an app binding.

use sw_authz::{Principal, Scope};
use sw_contracts::AppId;
use sw_contracts::auth::Role;
use sw_http::ApiError;

/// Every operation package-store authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// List, get, latest version, launch YAML, download; read build tasks.
    PackageRead,
    /// Import a package, or build one (create a build task).
    PackageWrite,
    PackageDelete,
}

impl Op {
    /// Every operation, for exhaustive tests.
    pub const ALL: [Op; 3] = [Op::PackageRead, Op::PackageWrite, Op::PackageDelete];
}

/// True when `role` may perform `op` (in whatever scope the binding applies).
pub fn allowed(role: Role, op: Op) -> bool {
    use Op::*;
    use Role::*;
    match (role, op) {
        (_, PackageRead) => true,
        // Packages are shipped by the people who build the app.
        (Admin | Operator | Developer, PackageWrite | PackageDelete) => true,
        (Viewer, PackageWrite | PackageDelete) => false,
    }
}

/// 403 unless the caller may do `op` on packages of `app`.
pub fn require(principal: &Principal, op: Op, app: &AppId) -> Result<(), ApiError> {
    principal.require(allowed, op, Scope::App { app: app.as_str(), team: None })
}

#[cfg(test)]
mod tests {
    use sw_contracts::Name;
    use sw_contracts::auth::RoleBinding;

    use super::*;

    /// The expected matrix written out in full: (op, [admin, operator, developer, viewer]).
    const EXPECTED: [(Op, [bool; 4]); 3] = [
        (Op::PackageRead, [true, true, true, true]),
        (Op::PackageWrite, [true, true, true, false]),
        (Op::PackageDelete, [true, true, true, false]),
    ];

    #[test]
    fn matrix_matches_the_table_for_every_role_and_op() {
        assert_eq!(Role::ALL, [Role::Admin, Role::Operator, Role::Developer, Role::Viewer], "column order");
        for op in Op::ALL {
            let (_, row) = EXPECTED.iter().find(|(o, _)| *o == op).expect("op in table");
            for (role, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, op), *want, "{role} {op:?}");
            }
        }
    }

    fn principal(roles: Vec<RoleBinding>) -> Principal {
        Principal { subject: "user:u".into(), client_id: "c".into(), roles, jti: "j".into(), exp: 0 }
    }

    #[test]
    fn app_bindings_count_only_for_their_app_and_team_bindings_not_at_all() {
        let demo = AppId::parse("demo").unwrap();
        let other = AppId::parse("other").unwrap();
        let dev_on_demo =
            principal(vec![RoleBinding { role: Role::Developer, team: None, app: Some(demo.clone()) }]);
        assert!(require(&dev_on_demo, Op::PackageWrite, &demo).is_ok());
        assert_eq!(require(&dev_on_demo, Op::PackageRead, &other).unwrap_err().status(), 403);
        let team = principal(vec![RoleBinding {
            role: Role::Admin,
            team: Some(Name::parse("payments").unwrap()),
            app: None,
        }]);
        assert_eq!(require(&team, Op::PackageRead, &demo).unwrap_err().status(), 403);
        let viewer = principal(vec![RoleBinding::global(Role::Viewer)]);
        assert!(require(&viewer, Op::PackageRead, &demo).is_ok());
        assert_eq!(require(&viewer, Op::PackageDelete, &demo).unwrap_err().status(), 403);
    }
}
