//! `swcli app list|get|create|delete`.

use reqwest::Method;
use sw_contracts::appmeta::{AppIn, AppListQuery, AppOut, Labels};
use sw_contracts::{AppId, Name, Page};

use crate::cli::AppCommand;
use crate::client::Client;
use crate::error::CliError;
use crate::output::{self, decode, render};

/// Runs one `app` subcommand.
pub async fn run(client: &mut Client, cmd: AppCommand, as_json: bool) -> Result<String, CliError> {
    match cmd {
        AppCommand::List { team, search, page, page_size } => {
            let q = AppListQuery { page, page_size, team, search, label: None };
            let body = client.call(Method::GET, "/v1/apps", Some(&q), None).await?;
            render(body, as_json, |v| {
                let page: Page<AppOut> = decode(v)?;
                Ok(list_table(&page))
            })
        }
        AppCommand::Get { app } => {
            let path = app_path(&app)?;
            let body = client.call(Method::GET, &path, None::<&()>, None).await?;
            render(body, as_json, |v| Ok(details(&decode(v)?)))
        }
        AppCommand::Create { app, name, team, description, labels } => {
            let app_in = AppIn {
                app_id: AppId::parse(&app).map_err(|e| CliError::Invalid(format!("appId: {e}")))?,
                name,
                description,
                team: team
                    .map(|t| Name::parse(&t))
                    .transpose()
                    .map_err(|e| CliError::Invalid(format!("team: {e}")))?,
                labels: labels.into_iter().collect::<Labels>(),
            };
            let body = serde_json::to_value(&app_in).map_err(|e| CliError::Invalid(e.to_string()))?;
            let reply = client.call(Method::POST, "/v1/apps", None::<&()>, Some(&body)).await?;
            render(reply, as_json, |v| Ok(details(&decode(v)?)))
        }
        AppCommand::Delete { app } => {
            let path = app_path(&app)?;
            client.call(Method::DELETE, &path, None::<&()>, None).await?;
            // 204 has no body; `--json` prints a small object so scripts always get valid JSON.
            Ok(if as_json {
                format!("{}\n", serde_json::json!({"appId": app, "deleted": true}))
            } else {
                format!("Deleted app {app}.\n")
            })
        }
    }
}

/// `/v1/apps/{appId}`, with the id checked so nothing odd ends up in the path.
fn app_path(app: &str) -> Result<String, CliError> {
    let id = AppId::parse(app).map_err(|e| CliError::Invalid(format!("appId: {e}")))?;
    Ok(format!("/v1/apps/{id}"))
}

fn labels_text(labels: &Labels) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn list_table(page: &Page<AppOut>) -> String {
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|a| {
            vec![
                a.app_id.to_string(),
                a.name.clone(),
                a.team.as_ref().map(ToString::to_string).unwrap_or_default(),
                labels_text(&a.labels),
                a.version.to_string(),
                output::time(&a.updated_at),
            ]
        })
        .collect();
    let mut out = output::table(&["APP ID", "NAME", "TEAM", "LABELS", "VERSION", "UPDATED"], &rows);
    out.push_str(&output::page_note(page.items.len() as u64, page.page, page.page_size, page.total));
    out
}

fn details(a: &AppOut) -> String {
    let ts = output::time;
    output::key_values(&[
        ("appId", a.app_id.to_string()),
        ("name", a.name.clone()),
        ("description", a.description.clone().unwrap_or_default()),
        ("team", a.team.as_ref().map(ToString::to_string).unwrap_or_default()),
        ("labels", labels_text(&a.labels)),
        ("version", a.version.to_string()),
        ("createdAt", ts(&a.created_at)),
        ("updatedAt", ts(&a.updated_at)),
    ])
}
