//! `TestApp`: a running appmeta with its own database, subjects and Redis keys, typed call
//! helpers that state the status they expect, and a tap on the service's events.

use std::time::Duration;

use serde_json::Value;
use sw_bus::{Bus, BusError, CallMeta, CloudEvent, RpcEnvelope, RpcReply};
use sw_contracts::auth::{Role, RoleBinding};
use sw_contracts::{AppId, Name};
use sw_http::ApiError;
use sw_testkit::{EventTap, TestEnv, TestKeys};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long to wait for an event that must come.
const EVENT_WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub env: TestEnv,
    pub bus: Bus,
    pub keys: TestKeys,
    /// A global admin's token.
    pub admin: String,
    events: EventTap,
    stop: CancellationToken,
    server: JoinHandle<Result<(), BusError>>,
}

impl TestApp {
    /// Builds and starts appmeta and waits until it answers.
    pub async fn spawn() -> Self {
        let env = TestEnv::new();
        let bus = env.bus().await;
        let keys = TestKeys::new();
        let verifier = keys.verifier(&env).await;
        let service = sw_appmeta::build(&env.cfg, bus.clone(), env.redis().await, verifier)
            .await
            .expect("appmeta builds");
        assert!(service.router_ops().contains(&"apps.list".to_owned()));
        let stop = CancellationToken::new();
        let server = tokio::spawn(service.run_until_stopped(stop.clone()));
        let events = env.events(&bus, &bus.names().event_subject("appmeta.>")).await;
        let admin = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        let app = Self { env, bus, keys, admin, events, stop, server };
        app.wait_until_answering().await;
        app
    }

    async fn wait_until_answering(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.call("namespaces.list", Some(&self.admin), req()).await {
                Ok(_) => return,
                Err(e) if e.status() == 503 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("appmeta did not start answering: {e}"),
            }
        }
    }

    /// A token for user `tester` with `roles`.
    pub fn token(&self, roles: Vec<RoleBinding>) -> String {
        self.keys.token(&self.env.cfg, roles)
    }

    /// Calls `op` with `token` as bearer (none when `None`).
    pub async fn call(
        &self,
        op: &str,
        token: Option<&str>,
        envelope: RpcEnvelope,
    ) -> Result<RpcReply, ApiError> {
        let meta = CallMeta {
            authorization: token.map(|t| format!("Bearer {t}")),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            ..Default::default()
        };
        self.bus.call("appmeta", op, &meta, &envelope, Some(Duration::from_secs(10))).await
    }

    /// Calls `op` and asserts the success `status`; returns the reply.
    pub async fn expect(&self, op: &str, token: &str, envelope: RpcEnvelope, status: u16) -> RpcReply {
        match self.call(op, Some(token), envelope).await {
            Ok(r) => {
                assert_eq!(r.status, status, "{op}: {:?}", r.body);
                r
            }
            Err(e) => panic!("{op}: expected {status}, got {e} {:?}", e.problem().errors),
        }
    }

    /// Calls `op` and returns the JSON body of a success with `status`.
    pub async fn ok(&self, op: &str, token: &str, envelope: RpcEnvelope, status: u16) -> Value {
        self.expect(op, token, envelope, status).await.body.unwrap_or(Value::Null)
    }

    /// Calls `op` and asserts it fails with `status` and `code`.
    pub async fn fail(
        &self,
        op: &str,
        token: Option<&str>,
        envelope: RpcEnvelope,
        status: u16,
        code: &str,
    ) -> ApiError {
        match self.call(op, token, envelope).await {
            Ok(r) => panic!("{op}: expected {status} {code}, got {} {:?}", r.status, r.body),
            Err(e) => {
                assert_eq!((e.status(), e.code()), (status, code), "{op}: {e}");
                e
            }
        }
    }

    /// Asserts a 422 naming exactly `fields` (in order).
    pub async fn invalid(&self, op: &str, token: &str, envelope: RpcEnvelope, fields: &[&str]) {
        let e = self.fail(op, Some(token), envelope, 422, "validation_failed").await;
        assert_eq!(field_names(&e), fields, "{op}: {e}");
    }

    /// The next event of the service, which must arrive.
    pub async fn next_event(&mut self) -> CloudEvent {
        let (ev, headers) = self.events.next(EVENT_WAIT).await.expect("an event");
        assert_eq!(
            headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_owned()),
            Some(ev.id.clone())
        );
        assert_eq!(ev.source, "/sreworks/appmeta");
        assert_eq!(
            ev.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        ev
    }

    /// The next event, asserting its name and subject.
    pub async fn event(&mut self, name: &str, subject: &str) -> Value {
        let ev = self.next_event().await;
        assert_eq!((ev.name(), ev.subject.as_deref()), (name, Some(subject)), "{:?}", ev.data);
        ev.data
    }

    /// Asserts no event is waiting (after a short grace).
    pub async fn no_event(&mut self) {
        if let Some((ev, _)) = self.events.next(Duration::from_millis(500)).await {
            panic!("unexpected event {} {:?}", ev.type_, ev.data);
        }
    }

    /// Stops the service (draining) and drops everything the test created.
    pub async fn stop(self) {
        self.stop.cancel();
        self.server.await.expect("server task").expect("server stops cleanly");
        self.env.cleanup().await;
    }
}

/// Adds a JSON body to an envelope with params.
pub trait Json {
    fn json(self, body: Value) -> RpcEnvelope;
}

impl Json for RpcEnvelope {
    fn json(mut self, body: Value) -> RpcEnvelope {
        self.body = Some(body);
        self
    }
}

/// An envelope without params, query or body.
pub fn req() -> RpcEnvelope {
    RpcEnvelope::default()
}

/// An envelope with a JSON body.
pub fn body(v: Value) -> RpcEnvelope {
    RpcEnvelope::with_body(v)
}

pub fn field_names(e: &ApiError) -> Vec<String> {
    e.problem().errors.iter().map(|f| f.field.clone()).collect()
}

pub fn global(role: Role) -> RoleBinding {
    RoleBinding::global(role)
}

pub fn team(role: Role, team: &str) -> RoleBinding {
    RoleBinding { role, team: Some(Name::parse(team).unwrap()), app: None }
}

pub fn app(role: Role, app: &str) -> RoleBinding {
    RoleBinding { role, team: None, app: Some(AppId::parse(app).unwrap()) }
}

/// The `items[*].<key>` strings of a page.
pub fn ids(page: &Value, key: &str) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i[key].as_str().unwrap().to_owned()).collect()
}
