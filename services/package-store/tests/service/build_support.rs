//! Helpers of the build task tests: calls to `package-tasks.*`, build specs and chart archives,
//! rows a crashed worker would leave behind, and a multipart form writer.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use sw_bus::RpcReply;
use sw_http::ApiError;
use sw_package_store::build::{BuildLimits, binders_from_yaml};

use crate::support::{TestApp, in_app, package};

pub const YAML: &str = "application/yaml";
pub const JSON: &str = "application/json";
const TASK_WAIT: Duration = Duration::from_secs(60);

/// A one-container microservice `name` (image `reg.example.com/<name>:1.0`).
pub fn microservice_yaml(name: &str) -> String {
    format!(
        "componentType: K8S_MICROSERVICE\ncomponentName: {name}\noptions:\n  replicas: 2\n  containers:\n    - name: {name}\n      image: reg.example.com/{name}:1.0\n      ports: [{{containerPort: 8080}}]\n  env: [DB_HOST]\n"
    )
}

/// The files of a small Helm chart named `name`, under folder `name/` as `helm package` lays
/// them out.
pub fn chart_files(name: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n").into_bytes(),
        ),
        (format!("{name}/values.yaml"), b"replicas: 1\n".to_vec()),
        (
            format!("{name}/templates/service.yaml"),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports: [{{port: 80}}]\n"
            )
            .into_bytes(),
        ),
    ]
}

/// [`chart_files`] as a `.tgz`.
pub fn chart_tgz(name: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in chart_files(name) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A `multipart/form-data` body, part by part.
#[derive(Default)]
pub struct Form {
    body: Vec<u8>,
}

const BOUNDARY: &str = "sw-build-boundary-41c2";

impl Form {
    pub fn text(mut self, name: &str, value: &str) -> Self {
        write!(
            self.body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
        self
    }

    pub fn file(mut self, name: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Self {
        write!(
            self.body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .unwrap();
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The body and its Content-Type.
    pub fn finish(mut self) -> (Vec<u8>, String) {
        write!(self.body, "--{BOUNDARY}--\r\n").unwrap();
        (self.body, format!("multipart/form-data; boundary={BOUNDARY}"))
    }
}

/// A task row as a worker that vanished (or never came) leaves it.
pub struct LeftBehind<'a> {
    pub app: &'a str,
    pub status: &'a str,
    pub version: &'a str,
    /// The build spec (validated here, stored as the service stores it).
    pub yaml: &'a str,
    pub attempts: i32,
    /// Owner and seconds from now (negative: expired) of the lease.
    pub lease: Option<(&'a str, i64)>,
    /// Seconds from now of the deadline (negative: passed).
    pub deadline_in: i64,
}

impl TestApp {
    /// Streams a build request for `app` as admin.
    pub async fn create_task(
        &self,
        app: &str,
        query: &str,
        body: &[u8],
        ct: &str,
    ) -> Result<RpcReply, ApiError> {
        self.stream("package-tasks.create", Some(app), query, body, ct, Some(&self.admin)).await
    }

    /// Creates a task and checks the 202 answer: `CREATED`, its `Location`.
    pub async fn created_task(&self, app: &str, query: &str, body: &[u8], ct: &str) -> Value {
        match self.create_task(app, query, body, ct).await {
            Ok(r) => {
                assert_eq!(r.status, 202, "{:?}", r.body);
                let task = r.body.unwrap();
                assert_eq!(task["status"], "CREATED", "{task}");
                assert_eq!(
                    r.headers.get("Location").map(String::as_str),
                    Some(format!("/v1/apps/{app}/app-package-tasks/{}", task["id"]).as_str())
                );
                task
            }
            Err(e) => panic!("build for {app}: {e} {:?}", e.problem().errors),
        }
    }

    /// Asserts a build request fails with `status` and `code`.
    pub async fn refused_task(
        &self,
        app: &str,
        query: &str,
        body: &[u8],
        ct: &str,
        status: u16,
        code: &str,
    ) -> ApiError {
        match self.create_task(app, query, body, ct).await {
            Ok(r) => panic!("expected {status} {code}, got {} {:?}", r.status, r.body),
            Err(e) => {
                assert_eq!((e.status(), e.code()), (status, code), "{e} {:?}", e.problem().errors);
                e
            }
        }
    }

    pub async fn task(&self, app: &str, id: &Value) -> Value {
        self.ok("package-tasks.get", in_app(app).param("taskId", id.to_string()), 200).await
    }

    /// Polls the task until it ends (at most a minute) and asserts it ended `want`.
    pub async fn wait_task(&self, app: &str, id: &Value, want: &str) -> Value {
        let until = tokio::time::Instant::now() + TASK_WAIT;
        loop {
            let task = self.task(app, id).await;
            if task["status"] == "SUCCESS" || task["status"] == "FAILURE" {
                assert_eq!(task["status"], want, "{task}");
                return task;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "task {id} still {} after {TASK_WAIT:?}",
                task["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tasks of `app` (first page, newest first).
    pub async fn tasks(&self, app: &str, query: &str) -> Value {
        self.ok("package-tasks.list", in_app(app).query(query), 200).await
    }

    /// The bytes of package `id`, fetched from the URL `packages.download` answers.
    pub async fn download(&self, app: &str, id: &Value) -> Vec<u8> {
        let source = self.ok("packages.download", package(app, id), 200).await;
        let got = reqwest::get(source["url"].as_str().unwrap()).await.unwrap();
        assert_eq!(got.status(), 200);
        got.bytes().await.unwrap().to_vec()
    }

    /// Keys under `tasks/`.
    pub async fn task_objects(&self) -> Vec<String> {
        self.keys().await.into_iter().filter(|k| k.starts_with("tasks/")).collect()
    }

    /// Waits (at most ten seconds) until no build input is stored.
    pub async fn wait_no_task_objects(&self) {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.task_objects().await;
            if left.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < until, "build inputs left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Inserts a task row as `row` says; returns its id.
    pub async fn insert_task(&self, row: LeftBehind<'_>) -> i64 {
        let binders =
            binders_from_yaml(row.yaml.as_bytes(), &HashSet::new(), &BuildLimits::default()).unwrap();
        let components: Vec<Value> = binders
            .iter()
            .map(|b| json!({"componentType": b.component_type().as_str(), "componentName": b.component_name}))
            .collect();
        let now = Utc::now();
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        let sql = "INSERT INTO package_task (app_id, status, package_version, tags, components, binders, charts, \
                   attempts, lease_owner, lease_until, deadline_at, created_by, created_at, updated_at, version) \
                   VALUES (?, ?, ?, '[]', ?, ?, '{}', ?, ?, ?, ?, 'user:tester', ?, ?, 1)";
        let values: Vec<sea_orm::Value> = vec![
            row.app.into(),
            row.status.into(),
            row.version.into(),
            serde_json::to_string(&components).unwrap().into(),
            serde_json::to_string(&binders).unwrap().into(),
            row.attempts.into(),
            row.lease.map(|(owner, _)| owner.to_owned()).into(),
            row.lease.map(|(_, secs)| at(secs)).into(),
            at(row.deadline_in).into(),
            at(-60).into(),
            at(-60).into(),
        ];
        let done =
            self.db.execute(Statement::from_sql_and_values(DbBackend::MySql, sql, values)).await.unwrap();
        done.last_insert_id() as i64
    }

    /// Runs `sql` on the service database.
    pub async fn sql(&self, sql: &str) {
        self.db.execute(Statement::from_string(DbBackend::MySql, sql)).await.unwrap();
    }

    /// One integer column of the first row `sql` selects.
    pub async fn sql_i64(&self, sql: &str, column: &str) -> i64 {
        let row =
            self.db.query_one(Statement::from_string(DbBackend::MySql, sql)).await.unwrap().expect("a row");
        row.try_get::<i64>("", column).unwrap()
    }
}
