//! `TestApp`: a running package-store with its own database, subjects, Redis keys and bucket,
//! typed call helpers that state the status they expect, a tap on the service's events, and
//! direct views of the bucket and the tables (to prove nothing was left behind).

use std::time::Duration;

use bytes::Bytes;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use sw_bus::{Bus, BusError, CallMeta, CloudEvent, RpcEnvelope, RpcReply, StreamOptions};
use sw_config::Config;
use sw_contracts::AppId;
use sw_contracts::auth::{Role, RoleBinding};
use sw_http::ApiError;
use sw_package_store::{Importer, Janitor};
use sw_testkit::{EventTap, TestEnv, TestKeys};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "package-store";
const EVENT_WAIT: Duration = Duration::from_secs(10);
pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

pub struct TestApp {
    pub env: TestEnv,
    pub bus: Bus,
    pub keys: TestKeys,
    /// A global admin's token.
    pub admin: String,
    pub importer: Importer,
    pub janitor: Janitor,
    pub db: DatabaseConnection,
    /// A client on the real S3 server (even when the service was given a dead endpoint).
    pub s3: aws_sdk_s3::Client,
    events: EventTap,
    stop: CancellationToken,
    server: JoinHandle<Result<(), BusError>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts package-store with the test's configuration changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut env = TestEnv::new();
        let s3 = sw_package_store::storage::s3_client(&env.cfg.s3, None);
        tweak(&mut env.cfg);
        env.cfg.validate().expect("valid tweaked config");
        let bus = env.bus().await;
        let keys = TestKeys::new();
        let verifier = keys.verifier(&env).await;
        let service = sw_package_store::build(&env.cfg, bus.clone(), env.redis().await, verifier)
            .await
            .expect("package-store builds");
        assert!(service.router_ops().contains(&"packages.import".to_owned()));
        let importer = service.importer();
        let janitor = service.janitor();
        let db = service.db();
        let stop = CancellationToken::new();
        let server = tokio::spawn(service.run_until_stopped(stop.clone()));
        let events = env.events(&bus, &bus.names().event_subject("package.>")).await;
        let admin = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
        let app = Self { env, bus, keys, admin, importer, janitor, db, s3, events, stop, server };
        app.wait_until_answering().await;
        app
    }

    async fn wait_until_answering(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.call("packages.list", Some(&self.admin), in_app("probe")).await {
                Ok(_) => return,
                Err(e) if e.status() == 503 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("package-store did not start answering: {e}"),
            }
        }
    }

    pub fn token(&self, roles: Vec<RoleBinding>) -> String {
        self.keys.token(&self.env.cfg, roles)
    }

    fn meta(token: Option<&str>) -> CallMeta {
        CallMeta {
            authorization: token.map(|t| format!("Bearer {t}")),
            traceparent: Some(TRACEPARENT.into()),
            ..Default::default()
        }
    }

    pub async fn call(
        &self,
        op: &str,
        token: Option<&str>,
        envelope: RpcEnvelope,
    ) -> Result<RpcReply, ApiError> {
        self.bus.call(SERVICE, op, &Self::meta(token), &envelope, Some(Duration::from_secs(30))).await
    }

    /// Calls `op` as admin and returns the JSON body of a success with `status`.
    pub async fn ok(&self, op: &str, envelope: RpcEnvelope, status: u16) -> Value {
        match self.call(op, Some(&self.admin), envelope).await {
            Ok(r) => {
                assert_eq!(r.status, status, "{op}: {:?}", r.body);
                r.body.unwrap_or(Value::Null)
            }
            Err(e) => panic!("{op}: expected {status}, got {e}"),
        }
    }

    /// Calls `op` as admin and asserts it fails with `status` and `code`.
    pub async fn fail(&self, op: &str, envelope: RpcEnvelope, status: u16, code: &str) -> ApiError {
        match self.call(op, Some(&self.admin), envelope).await {
            Ok(r) => panic!("{op}: expected {status} {code}, got {} {:?}", r.status, r.body),
            Err(e) => {
                assert_eq!((e.status(), e.code()), (status, code), "{op}: {e}");
                e
            }
        }
    }

    /// Streams `body` to `packages.import` (into `app` when given) with `content_type`.
    pub async fn import_body(
        &self,
        app: Option<&str>,
        query: &str,
        body: &[u8],
        content_type: &str,
        token: Option<&str>,
    ) -> Result<RpcReply, ApiError> {
        self.stream("packages.import", app, query, body, content_type, token).await
    }

    /// Streams `body` to the streaming operation `op` (with the `appId` parameter when given),
    /// as the gateway does: the envelope's `body` says the content type and length.
    pub async fn stream(
        &self,
        op: &str,
        app: Option<&str>,
        query: &str,
        body: &[u8],
        content_type: &str,
        token: Option<&str>,
    ) -> Result<RpcReply, ApiError> {
        let mut envelope = RpcEnvelope::default().query(query);
        if let Some(a) = app {
            envelope = envelope.param("appId", a);
        }
        envelope.body = Some(json!({"contentType": content_type, "contentLength": body.len()}));
        // Small pieces, so bodies of a few hundred KiB already take several chunks.
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            body.chunks(100 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let opts = StreamOptions {
            final_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(10),
        };
        self.bus
            .call_streaming(SERVICE, op, &Self::meta(token), &envelope, futures::stream::iter(chunks), opts)
            .await
    }

    /// Imports a zip into `app` as admin.
    pub async fn import(&self, app: &str, query: &str, zip: &[u8]) -> Result<RpcReply, ApiError> {
        self.import_body(Some(app), query, zip, "application/zip", Some(&self.admin)).await
    }

    /// Imports a zip into `app` as admin and returns the 201 body.
    pub async fn imported(&self, app: &str, query: &str, zip: &[u8]) -> Value {
        match self.import(app, query, zip).await {
            Ok(r) => {
                assert_eq!(r.status, 201, "{:?}", r.body);
                let body = r.body.unwrap();
                assert_eq!(
                    r.headers.get("Location").map(String::as_str),
                    Some(format!("/v1/apps/{app}/app-packages/{}", body["id"]).as_str())
                );
                body
            }
            Err(e) => panic!("import into {app}: {e} {:?}", e.problem().errors),
        }
    }

    /// Asserts an import into `app` fails with `status` and `code`.
    pub async fn refused(&self, app: &str, query: &str, zip: &[u8], status: u16, code: &str) -> ApiError {
        match self.import(app, query, zip).await {
            Ok(r) => panic!("expected {status} {code}, got {} {:?}", r.status, r.body),
            Err(e) => {
                assert_eq!((e.status(), e.code()), (status, code), "{e}");
                e
            }
        }
    }

    /// The next event, asserting its name and subject; returns its data.
    pub async fn event(&mut self, name: &str, subject: &str) -> Value {
        let (ev, _) = self.events.next(EVENT_WAIT).await.expect("an event");
        assert_eq!((ev.name(), ev.subject.as_deref()), (name, Some(subject)), "{:?}", ev.data);
        assert_eq!(ev.source, "/sreworks/package-store");
        ev.data
    }

    /// The next event, whatever it is.
    pub async fn next_event(&mut self) -> CloudEvent {
        self.events.next(EVENT_WAIT).await.expect("an event").0
    }

    /// Asserts no event is waiting (after a short grace).
    pub async fn no_event(&mut self) {
        if let Some((ev, _)) = self.events.next(Duration::from_millis(500)).await {
            panic!("unexpected event {} {:?}", ev.type_, ev.data);
        }
    }

    /// Every key in the test's bucket, sorted (none when the bucket does not exist).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.env.cfg.s3.bucket)
                .set_continuation_token(token.take())
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => return keys,
                Err(e) => panic!("listing the bucket: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
            };
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// The bytes of `key`.
    pub async fn object(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.env.cfg.s3.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
        out.body.collect().await.expect("object body").into_bytes().to_vec()
    }

    /// Rows in each package table: (app_package, component_package, app_package_component).
    pub async fn rows(&self) -> (i64, i64, i64) {
        let mut n = [0i64; 3];
        for (i, t) in ["app_package", "component_package", "app_package_component"].iter().enumerate() {
            let row = self
                .db
                .query_one(Statement::from_string(DbBackend::MySql, format!("SELECT COUNT(*) AS n FROM {t}")))
                .await
                .expect("count")
                .expect("a row");
            n[i] = row.try_get::<i64>("", "n").expect("n");
        }
        (n[0], n[1], n[2])
    }

    /// Asserts the bucket holds no object and the tables no row.
    pub async fn nothing_left(&self) {
        assert_eq!(self.keys().await, Vec::<String>::new(), "objects left behind");
        assert_eq!(self.rows().await, (0, 0, 0), "rows left behind");
    }

    /// Stops the service (draining) and drops everything the test created, bucket included.
    pub async fn stop(self) {
        let keys = self.keys().await;
        self.stop.cancel();
        self.server.await.expect("server task").expect("server stops cleanly");
        let bucket = self.env.cfg.s3.bucket.clone();
        for k in keys {
            let _ = self.s3.delete_object().bucket(&bucket).key(k).send().await;
        }
        let _ = self.s3.delete_bucket().bucket(&bucket).send().await;
        self.env.cleanup().await;
    }
}

/// An envelope with the `appId` path parameter.
pub fn in_app(app: &str) -> RpcEnvelope {
    RpcEnvelope::default().param("appId", app)
}

/// An envelope naming one package.
pub fn package(app: &str, id: &Value) -> RpcEnvelope {
    in_app(app).param("appPackageId", id.to_string())
}

pub fn app_binding(role: Role, app: &str) -> RoleBinding {
    RoleBinding { role, team: None, app: Some(AppId::parse(app).unwrap()) }
}

/// The bytes of entry `name` of `zip`.
pub fn entry(zip: &[u8], name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let mut f = archive.by_name(name).unwrap_or_else(|_| panic!("{name} in the zip"));
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A `multipart/form-data` body with text `fields` and the zip as part `file`; returns the body
/// and its Content-Type.
pub fn multipart(fields: &[(&str, &str)], zip: &[u8]) -> (Vec<u8>, String) {
    let boundary = "sw-test-boundary-7d93";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"package.zip\"\r\n\
             Content-Type: application/zip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}
