//! `swcli deployment launch|list|get|retry|terminate|rollback|replay`.
//!
//! `launch` sends the launch YAML as it is read (`application/yaml`, or `application/json` for a
//! `.json` file) with the placement in the query. The commands that start a deployment (`launch`,
//! `replay`, `rollback`, `retry`) can `--wait`: [`wait`] polls the deployment and prints what
//! changed ([`progress`]) until it ends.

pub mod progress;
mod wait;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sw_contracts::workflow::{
    DeploymentActionQuery, DeploymentDetailOut, DeploymentKind, DeploymentLaunched, DeploymentListQuery,
    DeploymentOut, LaunchQuery,
};
use sw_contracts::{AppId, Page};

use super::workflow::steps_table;
use crate::cli::{ActionArgs, DeploymentCommand, LaunchArgs, WaitArgs};
use crate::client::{self, Client};
use crate::error::CliError;
use crate::output::{self, Output, decode, render};

/// Runs one `deployment` subcommand.
pub async fn run(client: &mut Client, cmd: DeploymentCommand, out: Output) -> Result<String, CliError> {
    match cmd {
        DeploymentCommand::Launch(args) => launch(client, args, out).await,
        DeploymentCommand::List { app, app_instance_name, state, page, page_size } => {
            let q = DeploymentListQuery {
                app_id: app.as_deref().map(parse_app).transpose()?,
                app_instance_name,
                state,
                page,
                page_size,
            };
            let body = client.call(Method::GET, "/v1/deployments", Some(&q), None).await?;
            render(body, out.json, |v| Ok(list_table(&decode(v)?)))
        }
        DeploymentCommand::Get { id } => {
            let body = client.call(Method::GET, &path(id), None::<&()>, None).await?;
            render(body, out.json, |v| Ok(details(&decode(v)?)))
        }
        DeploymentCommand::Retry(a) => {
            let body = action(client, "retry", &a).await?;
            let d: DeploymentOut = decode(body.clone())?;
            if !a.wait.wait {
                return Ok(if out.json { output::json(&body) } else { deployment_fields(&d) });
            }
            wait::note(
                out,
                &format!("deployment {} retried (workflow {})", d.deploy_app_id, d.workflow_instance_id),
            );
            follow(client, d.deploy_app_id, &a.wait, out).await
        }
        DeploymentCommand::Terminate { id } => {
            let body =
                client.call(Method::POST, &format!("{}/terminate", path(id)), None::<&()>, None).await?;
            render(body, out.json, |v| Ok(deployment_fields(&decode(v)?)))
        }
        DeploymentCommand::Rollback(a) => {
            let body = action(client, "rollback", &a).await?;
            started(client, body, &a.wait, out).await
        }
        DeploymentCommand::Replay(a) => {
            let body = action(client, "replay", &a).await?;
            started(client, body, &a.wait, out).await
        }
    }
}

fn path(id: u64) -> String {
    format!("/v1/deployments/{id}")
}

fn parse_app(app: &str) -> Result<AppId, CliError> {
    AppId::parse(app).map_err(|e| CliError::Invalid(format!("appId: {e}")))
}

/// `POST /v1/deployments/{id}/{verb}[?force=true]`; its JSON reply.
async fn action(client: &mut Client, verb: &str, a: &ActionArgs) -> Result<Value, CliError> {
    let q = DeploymentActionQuery { force: a.force.then_some(true) };
    let body = client.call(Method::POST, &format!("{}/{verb}", path(a.id)), Some(&q), None).await?;
    body.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))
}

/// `launch`: the file as the body, the placement in the query.
async fn launch(client: &mut Client, args: LaunchArgs, out: Output) -> Result<String, CliError> {
    let q = LaunchQuery {
        app_package_id: args.app_package_id,
        app_id: args.app.as_deref().map(parse_app).transpose()?,
        package_version: args.package_version,
        cluster_id: args.cluster,
        namespace_id: args.namespace,
        stage_id: args.stage,
        app_instance_name: args.app_instance_name,
        auto_environment: args.auto_environment.then_some(true),
    };
    // A launch YAML is small; what is sent is exactly what was read.
    let yaml = Bytes::from(
        tokio::fs::read(&args.path)
            .await
            .map_err(|e| CliError::File(format!("cannot read {}: {e}", args.path.display())))?,
    );
    let mime = media_type(&args.path);
    let url = client.url("/v1/deployments/launch");
    let resp = client
        .execute(|http| Ok(http.post(&url).query(&q).header(CONTENT_TYPE, mime).body(yaml.clone())))
        .await?;
    let body =
        client::read(resp).await?.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
    started(client, body, &args.wait, out).await
}

/// `application/json` for a `.json` file, else `application/yaml`.
fn media_type(path: &Path) -> &'static str {
    match path.extension() {
        Some(e) if e.eq_ignore_ascii_case("json") => "application/json",
        _ => "application/yaml",
    }
}

/// After a launch, replay or rollback: prints the new deployment, or with `--wait` follows it.
async fn started(client: &mut Client, body: Value, w: &WaitArgs, out: Output) -> Result<String, CliError> {
    let launched: DeploymentLaunched = decode(body.clone())?;
    if !w.wait {
        return Ok(if out.json { output::json(&body) } else { launched_text(&launched) });
    }
    wait::note(out, launched_text(&launched).trim_end());
    follow(client, launched.deploy_app_id, w, out).await
}

async fn follow(client: &mut Client, id: u64, w: &WaitArgs, out: Output) -> Result<String, CliError> {
    wait::follow(client, id, Duration::from_secs(w.wait_max_seconds), out).await
}

/// `deployment 12 created (workflow 12)`, whether it is queued, and the warnings.
fn launched_text(l: &DeploymentLaunched) -> String {
    let mut out = format!("deployment {} created (workflow {})\n", l.deploy_app_id, l.workflow_instance_id);
    if l.queued {
        out.push_str(
            "queued: another deployment of this app instance is running; this one starts after it\n",
        );
    }
    for w in &l.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

fn list_table(page: &Page<DeploymentOut>) -> String {
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|d| {
            vec![
                d.deploy_app_id.to_string(),
                d.app_id.to_string(),
                d.app_instance_name.clone(),
                d.state.clone(),
                d.package_version.clone(),
                output::time(&d.created_at),
            ]
        })
        .collect();
    let mut out = output::table(&["ID", "APP", "INSTANCE", "STATE", "PACKAGE VERSION", "CREATED"], &rows);
    out.push_str(&output::page_note(page.items.len() as u64, page.page, page.page_size, page.total));
    out
}

fn kind_text(d: &DeploymentOut) -> String {
    let kind = match d.kind {
        DeploymentKind::Launch => "LAUNCH",
        DeploymentKind::Replay => "REPLAY",
        DeploymentKind::Rollback => "ROLLBACK",
    };
    match d.source_deploy_app_id {
        Some(src) => format!("{kind} of deployment {src}"),
        None => kind.to_owned(),
    }
}

/// A deployment's own fields.
fn deployment_fields(d: &DeploymentOut) -> String {
    output::key_values(&deployment_pairs(d))
}

fn deployment_pairs(d: &DeploymentOut) -> Vec<(&'static str, String)> {
    let ts = output::time;
    vec![
        ("deployAppId", d.deploy_app_id.to_string()),
        ("appId", d.app_id.to_string()),
        ("appInstanceName", d.app_instance_name.clone()),
        ("appPackageId", d.app_package_id.to_string()),
        ("packageVersion", d.package_version.clone()),
        ("clusterId", d.cluster_id.clone()),
        ("namespaceId", d.namespace_id.clone()),
        ("stageId", d.stage_id.clone().unwrap_or_default()),
        ("state", d.state.clone()),
        ("reason", d.reason.clone().unwrap_or_default()),
        ("message", d.message.clone().unwrap_or_default()),
        ("kind", kind_text(d)),
        ("pinned", d.pinned.to_string()),
        ("workflowInstanceId", d.workflow_instance_id.to_string()),
        ("createdBy", d.created_by.clone()),
        ("createdAt", ts(&d.created_at)),
        ("updatedAt", ts(&d.updated_at)),
        ("finishedAt", d.finished_at.as_ref().map(ts).unwrap_or_default()),
        ("deadlineAt", d.deadline_at.as_ref().map(ts).unwrap_or_default()),
    ]
}

/// A deployment with its workflow's state, its components and its steps.
pub(crate) fn details(d: &DeploymentDetailOut) -> String {
    let w = &d.workflow;
    let mut pairs = deployment_pairs(&d.deployment);
    let at = pairs.iter().position(|(k, _)| *k == "workflowInstanceId").map_or(pairs.len(), |i| i + 1);
    let workflow_state = format!("{}{}", w.state, progress::why(w.reason.as_deref(), w.message.as_deref()));
    pairs.insert(at, ("workflowState", workflow_state));
    let mut out = output::key_values(&pairs);
    if !d.components.is_empty() {
        let mut components: Vec<_> = d.components.iter().collect();
        components.sort_by_key(|c| c.deploy_component_id);
        let rows: Vec<Vec<String>> = components
            .iter()
            .map(|c| {
                let note = match &c.skip_reason {
                    Some(s) => format!("skipped: {s}"),
                    None => progress::why(c.reason.as_deref(), c.message.as_deref()).trim().to_owned(),
                };
                vec![
                    c.deploy_component_id.to_string(),
                    progress::component_label(c),
                    c.component_instance.clone(),
                    c.task_id.to_string(),
                    c.state.clone(),
                    c.revision.map(|r| r.to_string()).unwrap_or_default(),
                    c.attempt.to_string(),
                    note,
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&output::table(
            &["COMPONENT ID", "COMPONENT", "INSTANCE", "TASK ID", "STATE", "REVISION", "ATTEMPT", "MESSAGE"],
            &rows,
        ));
    }
    out.push_str(&steps_table(&w.tasks));
    if w.state == "SUSPEND" {
        out.push_str(&progress::suspended_hint(w));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(id: u64, state: &str) -> Value {
        json!({
            "deployAppId": id, "appId": "health", "appPackageId": 7, "packageVersion": "1.0.0+1",
            "clusterId": "master", "namespaceId": "default", "appInstanceName": "health-prod",
            "state": state, "kind": "ROLLBACK", "sourceDeployAppId": 9, "pinned": true,
            "workflowInstanceId": id + 18, "createdBy": "admin",
            "createdAt": "2026-11-26T10:00:00Z", "updatedAt": "2026-11-26T10:00:00Z"
        })
    }

    #[test]
    fn launched_says_what_was_created() {
        let l = DeploymentLaunched {
            deploy_app_id: 12,
            workflow_instance_id: 30,
            state: "CREATED".into(),
            queued: false,
            warnings: vec![],
        };
        assert_eq!(launched_text(&l), "deployment 12 created (workflow 30)\n");
        let l = DeploymentLaunched { queued: true, warnings: vec!["component x skipped".into()], ..l };
        assert_eq!(
            launched_text(&l),
            "deployment 12 created (workflow 30)\nqueued: another deployment of this app instance is running; \
             this one starts after it\nwarning: component x skipped\n"
        );
    }

    #[test]
    fn list_columns() {
        let page: Page<DeploymentOut> = serde_json::from_value(json!({
            "items": [deployment(12, "SUCCESS"), deployment(3, "FAILURE")],
            "page": 1, "pageSize": 2, "total": 5
        }))
        .unwrap();
        assert_eq!(
            list_table(&page),
            "ID  APP     INSTANCE     STATE    PACKAGE VERSION  CREATED\n\
             12  health  health-prod  SUCCESS  1.0.0+1          2026-11-26T10:00:00Z\n\
             3   health  health-prod  FAILURE  1.0.0+1          2026-11-26T10:00:00Z\n\
             (1–2 of 5; page 1 of size 2)\n"
        );
    }

    #[test]
    fn details_show_components_and_steps() {
        let mut v = deployment(12, "PROCESSING");
        let o = v.as_object_mut().unwrap();
        o.insert(
            "components".into(),
            json!([{
                "deployComponentId": 5, "deployAppId": 12, "taskId": 40,
                "componentType": "K8S_MICROSERVICE", "componentName": "server",
                "componentInstance": "server", "clusterId": "master", "namespaceId": "default",
                "state": "RUNNING", "revision": 3, "attempt": 1, "updatedAt": "2026-11-26T10:00:00Z"
            }]),
        );
        o.insert(
            "workflow".into(),
            json!({
                "workflowInstanceId": 30, "deployAppId": 12, "appId": "health", "state": "RUNNING",
                "mode": "STEP_BY_STEP", "context": {},
                "createdAt": "2026-11-26T10:00:00Z", "updatedAt": "2026-11-26T10:00:00Z",
                "tasks": [{"taskId": 40, "stepIndex": 0, "name": "deploy-local-1",
                           "taskType": "apply-components", "state": "RUNNING", "attempt": 1}]
            }),
        );
        let d: DeploymentDetailOut = serde_json::from_value(v).unwrap();
        let text = details(&d);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"kind:               ROLLBACK of deployment 9"), "{text}");
        assert!(lines.contains(&"workflowState:      RUNNING"), "{text}");
        let comp = lines.iter().position(|l| l.starts_with("COMPONENT ID")).unwrap();
        assert!(
            lines[comp + 1]
                .starts_with("5             K8S_MICROSERVICE|server  server    40       RUNNING  3"),
            "{text}"
        );
        let steps = lines.iter().position(|l| l.starts_with("TASK ID")).unwrap();
        assert!(lines[steps + 1].starts_with("40       deploy-local-1  apply-components  RUNNING"), "{text}");
        assert!(!text.contains("suspended"), "{text}");
    }

    #[test]
    fn json_files_are_sent_as_json() {
        assert_eq!(media_type(Path::new("launch.yaml")), "application/yaml");
        assert_eq!(media_type(Path::new("launch.yml")), "application/yaml");
        assert_eq!(media_type(Path::new("launch")), "application/yaml");
        assert_eq!(media_type(Path::new("conf/launch.JSON")), "application/json");
    }
}
