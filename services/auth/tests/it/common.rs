//! `TestApp`: the auth service running against this test's own database, subjects and Redis keys,
//! driven over NATS exactly as the gateway drives it.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sw_authz::{BusKeySource, Verifier};
use sw_bus::{Bus, BusError, CallMeta, CloudEvent, RpcEnvelope, RpcReply};
use sw_config::Config;
use sw_contracts::auth::{RoleBinding, TokenOut};
use sw_http::ApiError;
use sw_testkit::{EventTap, TestEnv};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Failed logins allowed in tests before lockout.
pub const MAX_FAILS: u64 = 3;

pub struct TestApp {
    pub env: TestEnv,
    pub bus: Bus,
    /// A verifier like every other service's: JWKS fetched from the auth service over NATS.
    pub verifier: Verifier,
    replicas: Vec<(CancellationToken, JoinHandle<Result<(), BusError>>)>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_replicas(1, tweak).await
    }

    /// `n` replicas of the service on one database, all starting at the same moment.
    pub async fn spawn_replicas(n: usize, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut env = TestEnv::new();
        env.cfg.auth.max_failed_logins = MAX_FAILS;
        env.cfg.auth.failed_login_window_secs = 60;
        tweak(&mut env.cfg);
        let bus = env.bus().await;
        let replicas = futures::future::join_all((0..n).map(|_| start(&env, &bus))).await;
        let verifier = Verifier::new(
            Arc::new(BusKeySource(bus.clone())),
            env.redis().await,
            &env.cfg.auth.issuer,
            &env.cfg.auth.audience,
        );
        Self { env, bus, verifier, replicas }
    }

    /// The configured admin password.
    pub fn admin_password(&self) -> String {
        self.env.cfg.auth.admin_password.as_ref().expect("tests configure it").expose().to_owned()
    }

    /// Calls `op` with an optional bearer token.
    pub async fn call(
        &self,
        op: &str,
        token: Option<&str>,
        envelope: RpcEnvelope,
    ) -> Result<RpcReply, ApiError> {
        let meta = CallMeta { authorization: token.map(|t| format!("Bearer {t}")), ..Default::default() };
        self.bus.call("auth", op, &meta, &envelope, None).await
    }

    /// `POST /oauth/token` from `ip` with optional Basic credentials.
    pub async fn token_from(
        &self,
        ip: &str,
        basic: Option<(&str, &str)>,
        form: Value,
    ) -> Result<RpcReply, ApiError> {
        let meta = CallMeta {
            authorization: basic.map(|(id, secret)| basic_header(id, secret)),
            client_ip: Some(ip.into()),
            ..Default::default()
        };
        self.bus.call("auth", "token", &meta, &RpcEnvelope::with_body(form), None).await
    }

    /// `POST /oauth/revoke` of `token` by the public client `swcli`.
    pub async fn revoke(&self, token: &str) -> Result<RpcReply, ApiError> {
        let form = json!({"token": token, "client_id": "swcli"});
        self.bus.call("auth", "revoke", &CallMeta::default(), &RpcEnvelope::with_body(form), None).await
    }

    /// A password login through `swcli`, from `ip`.
    pub async fn login_from(&self, ip: &str, username: &str, password: &str) -> Result<RpcReply, ApiError> {
        self.token_from(
            ip,
            None,
            json!({"grant_type": "password", "username": username, "password": password, "client_id": "swcli"}),
        )
        .await
    }

    /// A password login that must succeed.
    pub async fn login(&self, username: &str, password: &str) -> TokenOut {
        body(self.login_from("192.0.2.1", username, password).await.expect("login succeeds"))
    }

    /// An access token of the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        self.login("admin", &self.admin_password()).await.access_token
    }

    /// Creates a user (as admin) and returns it as JSON.
    pub async fn create_user(
        &self,
        admin: &str,
        username: &str,
        password: &str,
        roles: Vec<RoleBinding>,
    ) -> Value {
        let reply = self
            .call(
                "users.create",
                Some(admin),
                RpcEnvelope::with_body(json!({"username": username, "password": password, "roles": roles})),
            )
            .await
            .expect("user created");
        assert_eq!(reply.status, 201);
        reply.body.unwrap()
    }

    /// A tap on this test's `auth.*` events that has already consumed the two bootstrap events.
    pub async fn events(&self) -> EventTap {
        let mut tap = self.env.events(&self.bus, &self.bus.names().event_subject("auth.>")).await;
        let admin = next_event(&mut tap).await;
        assert_eq!((admin.name(), admin.subject.as_deref()), ("auth.user.created", Some("admin")));
        let swcli = next_event(&mut tap).await;
        assert_eq!((swcli.name(), swcli.subject.as_deref()), ("auth.client.created", Some("swcli")));
        tap
    }

    /// Stops the service (draining) and drops everything this test created.
    pub async fn finish(self) {
        for (stop, _) in &self.replicas {
            stop.cancel();
        }
        for (_, task) in self.replicas {
            task.await.expect("service task").expect("service stopped cleanly");
        }
        self.env.cleanup().await;
    }
}

/// Builds and starts one replica of the service on `env`, waiting until it answers.
pub async fn start(env: &TestEnv, bus: &Bus) -> (CancellationToken, JoinHandle<Result<(), BusError>>) {
    let verifier = Verifier::new(
        Arc::new(BusKeySource(bus.clone())),
        env.redis().await,
        &env.cfg.auth.issuer,
        &env.cfg.auth.audience,
    );
    let service =
        sw_auth::build(&env.cfg, bus.clone(), env.redis().await, verifier).await.expect("auth builds");
    let stop = CancellationToken::new();
    let task = tokio::spawn(service.run_until_stopped(stop.clone()));
    for _ in 0..100 {
        if bus.call("auth", "jwks", &CallMeta::default(), &RpcEnvelope::default(), None).await.is_ok() {
            return (stop, task);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the auth service did not start answering");
}

pub fn basic_header(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// The body of a successful reply, as `T`.
pub fn body<T: DeserializeOwned>(reply: RpcReply) -> T {
    serde_json::from_value(reply.body.expect("a body")).expect("the expected body shape")
}

/// Asserts an error answer and returns it.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T, ApiError>, status: u16, code: &str) -> ApiError {
    match result {
        Ok(r) => panic!("expected {status} {code}, got {r:?}"),
        Err(e) => {
            assert_eq!((e.status(), e.code()), (status, code), "{e}");
            e
        }
    }
}

/// The next event, which must come within a few seconds.
pub async fn next_event(tap: &mut EventTap) -> CloudEvent {
    tap.next(Duration::from_secs(10)).await.expect("an event").0
}

/// Asserts the next event's name and subject and returns its data.
pub async fn expect_event(tap: &mut EventTap, name: &str, subject: &str) -> Value {
    let ev = next_event(tap).await;
    assert_eq!((ev.name(), ev.subject.as_deref()), (name, Some(subject)), "{ev:?}");
    assert_eq!(ev.source, "/sreworks/auth");
    let text = ev.data.to_string();
    // Field names like passwordHash/secretHash, and PHC strings, must never appear.
    for secret_marker in ["$argon2", "Hash", "hash"] {
        assert!(!text.contains(secret_marker), "event data must not carry secrets: {text}");
    }
    ev.data
}

/// Asserts that no further event arrives.
pub async fn expect_no_event(tap: &mut EventTap) {
    if let Some((ev, _)) = tap.next(Duration::from_millis(700)).await {
        panic!("unexpected event {ev:?}");
    }
}
