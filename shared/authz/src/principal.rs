//! The verified caller and role checks.

use sw_contracts::auth::{Role, RoleBinding};
use sw_http::ApiError;

/// What an operation acts on, for scoping role bindings.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Platform-wide (users, clients, clusters, namespaces, listing everything).
    Global,
    /// One app, owned by `team` if it has one.
    App { app: &'a str, team: Option<&'a str> },
    /// One team.
    Team(&'a str),
}

/// A caller whose token has been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `user:<username>` or `client:<clientId>`.
    pub subject: String,
    pub client_id: String,
    pub roles: Vec<RoleBinding>,
    /// Token id and expiry (for revocation and `whoami`).
    pub jti: String,
    pub exp: i64,
}

impl Principal {
    /// The username for users, `None` for clients.
    pub fn username(&self) -> Option<&str> {
        self.subject.strip_prefix("user:")
    }

    /// The roles that apply in `scope`: global bindings always; team bindings for that team (or the
    /// app's team); app bindings for that app.
    pub fn roles_in<'a>(&'a self, scope: Scope<'a>) -> impl Iterator<Item = Role> + 'a {
        self.roles
            .iter()
            .filter(move |b| match (scope, b.team.as_ref(), b.app.as_ref()) {
                (_, None, None) => true,
                (Scope::App { app, .. }, None, Some(a)) => a.as_str() == app,
                (Scope::App { team: Some(t), .. }, Some(bt), None) => bt.as_str() == t,
                (Scope::Team(t), Some(bt), None) => bt.as_str() == t,
                _ => false,
            })
            .map(|b| b.role)
    }

    /// True when any role that applies in `scope` is allowed `op` by `matrix`.
    pub fn can<Op: Copy>(&self, matrix: fn(Role, Op) -> bool, op: Op, scope: Scope<'_>) -> bool {
        self.roles_in(scope).any(|r| matrix(r, op))
    }

    /// 403 unless [`Principal::can`].
    pub fn require<Op: Copy + std::fmt::Debug>(
        &self,
        matrix: fn(Role, Op) -> bool,
        op: Op,
        scope: Scope<'_>,
    ) -> Result<(), ApiError> {
        if self.can(matrix, op, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("Your roles do not allow {op:?} here.")))
        }
    }

    /// True when some binding (of any scope) allows `op`: for list endpoints that then filter rows.
    pub fn can_anywhere<Op: Copy>(&self, matrix: fn(Role, Op) -> bool, op: Op) -> bool {
        self.roles.iter().any(|b| matrix(b.role, op))
    }

    /// Apps and teams on which a scoped binding allows `op` (for filtering lists).
    pub fn scoped_grants<Op: Copy>(
        &self,
        matrix: fn(Role, Op) -> bool,
        op: Op,
    ) -> (Vec<String>, Vec<String>) {
        let mut apps = Vec::new();
        let mut teams = Vec::new();
        for b in self.roles.iter().filter(|b| matrix(b.role, op)) {
            if let Some(a) = &b.app {
                apps.push(a.to_string());
            } else if let Some(t) = &b.team {
                teams.push(t.to_string());
            }
        }
        (apps, teams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sw_contracts::{AppId, Name};

    fn p(roles: Vec<RoleBinding>) -> Principal {
        Principal { subject: "user:u".into(), client_id: "swcli".into(), roles, jti: "j".into(), exp: 0 }
    }

    fn write(r: Role, _: ()) -> bool {
        matches!(r, Role::Admin | Role::Developer)
    }

    #[test]
    fn scoped_bindings_apply_only_in_their_scope() {
        let app_dev =
            p(vec![RoleBinding { role: Role::Developer, team: None, app: Some(AppId::parse("a").unwrap()) }]);
        assert!(app_dev.can(write, (), Scope::App { app: "a", team: None }));
        assert!(!app_dev.can(write, (), Scope::App { app: "b", team: None }));
        assert!(!app_dev.can(write, (), Scope::Global));

        let team_dev =
            p(vec![RoleBinding { role: Role::Developer, team: Some(Name::parse("t").unwrap()), app: None }]);
        assert!(team_dev.can(write, (), Scope::App { app: "x", team: Some("t") }));
        assert!(!team_dev.can(write, (), Scope::App { app: "x", team: Some("u") }));
        assert!(!team_dev.can(write, (), Scope::App { app: "x", team: None }));
        assert!(team_dev.can(write, (), Scope::Team("t")));

        let global_viewer = p(vec![RoleBinding::global(Role::Viewer)]);
        assert!(!global_viewer.can(write, (), Scope::App { app: "a", team: None }));
        assert_eq!(global_viewer.require(write, (), Scope::Global).unwrap_err().status(), 403);
    }
}
