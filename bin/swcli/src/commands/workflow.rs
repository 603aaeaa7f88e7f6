//! `swcli workflow get|resume|terminate|retry|retry-from-task|context`.

use std::path::Path;

use reqwest::Method;
use serde_json::{Map, Value};
use sw_contracts::workflow::{RetryFromTaskQuery, TaskOut, WorkflowOut};

use super::deployment::progress::{self, step_label};
use crate::cli::{ContextArgs, WorkflowCommand};
use crate::client::Client;
use crate::error::CliError;
use crate::output::{self, Output, decode, render};

/// Runs one `workflow` subcommand.
pub async fn run(client: &mut Client, cmd: WorkflowCommand, out: Output) -> Result<String, CliError> {
    let (method, path, query, body) = match cmd {
        WorkflowCommand::Get { id } => (Method::GET, path(id), None, None),
        WorkflowCommand::Resume { id } => (Method::PUT, format!("{}/resume", path(id)), None, None),
        WorkflowCommand::Terminate { id } => (Method::PUT, format!("{}/terminate", path(id)), None, None),
        WorkflowCommand::Retry { id } => (Method::PUT, format!("{}/retry", path(id)), None, None),
        WorkflowCommand::RetryFromTask { id, task_id } => {
            (Method::PUT, format!("{}/retry-from-task", path(id)), Some(RetryFromTaskQuery { task_id }), None)
        }
        WorkflowCommand::Context(args) => {
            let patch = context_patch(read_context_file(&args).await?, args.set)?;
            (Method::PUT, format!("{}/context", path(args.id)), None, Some(Value::Object(patch)))
        }
    };
    let reply = client.call(method, &path, query.as_ref(), body.as_ref()).await?;
    render(reply, out.json, |v| Ok(workflow_details(&decode(v)?)))
}

fn path(id: u64) -> String {
    format!("/v1/workflows/{id}")
}

async fn read_context_file(args: &ContextArgs) -> Result<Option<Value>, CliError> {
    let Some(file) = &args.file else { return Ok(None) };
    let text = tokio::fs::read(file)
        .await
        .map_err(|e| CliError::File(format!("cannot read {}: {e}", file.display())))?;
    parse_context_file(file, &text).map(Some)
}

fn parse_context_file(file: &Path, text: &[u8]) -> Result<Value, CliError> {
    serde_json::from_slice(text)
        .map_err(|e| CliError::Invalid(format!("{} is not JSON: {e}", file.display())))
}

/// The merge patch `workflow context` sends: the file's object (if any), then each `--set` in
/// order, a later key replacing an earlier one.
pub fn context_patch(file: Option<Value>, set: Vec<(String, Value)>) -> Result<Map<String, Value>, CliError> {
    let mut patch = match file {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(CliError::Invalid("the context file must hold a JSON object".into())),
    };
    patch.extend(set);
    Ok(patch)
}

/// One workflow instance: its fields, its context, then its steps.
pub(crate) fn workflow_details(w: &WorkflowOut) -> String {
    let ts = output::time;
    let mut out = output::key_values(&[
        ("workflowInstanceId", w.workflow_instance_id.to_string()),
        ("deployAppId", w.deploy_app_id.to_string()),
        ("appId", w.app_id.to_string()),
        ("state", w.state.clone()),
        ("mode", w.mode.clone()),
        ("reason", w.reason.clone().unwrap_or_default()),
        ("message", w.message.clone().unwrap_or_default()),
        ("context", w.context.to_string()),
        ("createdAt", ts(&w.created_at)),
        ("updatedAt", ts(&w.updated_at)),
        ("finishedAt", w.finished_at.as_ref().map(ts).unwrap_or_default()),
        ("deadlineAt", w.deadline_at.as_ref().map(ts).unwrap_or_default()),
    ]);
    out.push_str(&steps_table(&w.tasks));
    if w.state == "SUSPEND" {
        out.push_str(&progress::suspended_hint(w));
        out.push('\n');
    }
    out
}

/// The steps of a workflow (after a blank line), in step order; nothing when there are none.
pub(crate) fn steps_table(tasks: &[TaskOut]) -> String {
    if tasks.is_empty() {
        return String::new();
    }
    let mut tasks: Vec<&TaskOut> = tasks.iter().collect();
    tasks.sort_by_key(|t| (t.step_index, t.task_id));
    let time = |t: Option<&chrono::DateTime<chrono::Utc>>| t.map(output::time).unwrap_or_default();
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.to_string(),
                step_label(t),
                t.task_type.clone(),
                t.state.clone(),
                t.attempt.to_string(),
                time(t.started_at.as_ref()),
                time(t.finished_at.as_ref()),
                progress::why(t.reason.as_deref(), t.message.as_deref()).trim().to_owned(),
            ]
        })
        .collect();
    format!(
        "\n{}",
        output::table(
            &["TASK ID", "STEP", "TYPE", "STATE", "ATTEMPT", "STARTED", "FINISHED", "MESSAGE"],
            &rows
        )
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_values_override_the_file() {
        let file = json!({"continueRollout": false, "keep": {"a": 1}});
        let patch = context_patch(
            Some(file),
            vec![("continueRollout".into(), json!(true)), ("rollback".into(), Value::Null)],
        )
        .unwrap();
        assert_eq!(
            Value::Object(patch),
            json!({"continueRollout": true, "keep": {"a": 1}, "rollback": null})
        );
        let patch = context_patch(None, vec![("a".into(), json!(1)), ("a".into(), json!(2))]).unwrap();
        assert_eq!(Value::Object(patch), json!({"a": 2}));
    }

    #[test]
    fn the_file_must_be_a_json_object() {
        let e = context_patch(Some(json!([1, 2])), vec![]).unwrap_err();
        assert!(matches!(e, CliError::Invalid(_)), "{e}");
        let e = parse_context_file(Path::new("ctx.json"), b"{not json").unwrap_err();
        assert!(e.to_string().starts_with("validation_failed: ctx.json is not JSON"), "{e}");
        assert_eq!(parse_context_file(Path::new("c"), br#"{"a":true}"#).unwrap(), json!({"a": true}));
    }

    #[test]
    fn a_suspended_workflow_shows_how_to_resume() {
        let w: WorkflowOut = serde_json::from_value(json!({
            "workflowInstanceId": 30, "deployAppId": 12, "appId": "health", "state": "SUSPEND",
            "mode": "STEP_BY_STEP", "context": {"continueRollout": false},
            "createdAt": "2026-11-26T10:00:00Z", "updatedAt": "2026-11-26T10:01:00Z",
            "tasks": [
                {"taskId": 41, "stepIndex": 1, "name": "approve", "taskType": "suspend",
                 "state": "RUNNING_SUSPEND", "attempt": 1, "startedAt": "2026-11-26T10:00:30Z"},
                {"taskId": 40, "stepIndex": 0, "taskType": "deploy", "state": "SUCCESS", "attempt": 1,
                 "startedAt": "2026-11-26T10:00:00Z", "finishedAt": "2026-11-26T10:00:30Z"}
            ]
        }))
        .unwrap();
        let text = workflow_details(&w);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&r#"context:            {"continueRollout":false}"#), "{text}");
        let header = lines.iter().position(|l| l.starts_with("TASK ID")).unwrap();
        assert!(lines[header + 1].starts_with("40       deploy-0  deploy   SUCCESS"), "{text}");
        assert!(lines[header + 2].starts_with("41       approve   suspend  RUNNING_SUSPEND"), "{text}");
        assert_eq!(lines.last(), Some(&"suspended at step approve: swcli workflow resume 30"));
    }
}
