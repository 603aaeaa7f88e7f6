//! `swcli app-package …`: import, build, list, get, get-latest, download, delete, launch-yaml,
//! task get.
//!
//! Packages move as streams: `import` and `build` send files chunk by chunk ([`transfer`]),
//! `download` writes chunk by chunk to a temp file that becomes the target only once complete and
//! verified ([`download`]); Helm charts named by a build are packed to temp files ([`chart`]).
//! Everything else is a plain JSON call rendered like `swcli app`.

mod build;
pub mod chart;
pub mod download;
mod import;
pub mod transfer;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sw_contracts::packages::{
    AppPackageListQuery, AppPackageOut, AppPackageTaskOut, DownloadUrlOut, DownloadUrlQuery, LatestVersionOut,
};
use sw_contracts::{AppId, Page};

use crate::cli::{AppPackageCommand, DownloadArgs, PackageTaskCommand};
use crate::client::Client;
use crate::error::CliError;
use crate::output::{self, Output, decode, render};

/// Largest page `get-latest --tags` asks for while searching.
const SEARCH_PAGE_SIZE: u64 = 100;

/// Runs one `app-package` subcommand.
pub async fn run(client: &mut Client, cmd: AppPackageCommand, out: Output) -> Result<String, CliError> {
    match cmd {
        AppPackageCommand::Import(args) => import::import(client, args, out).await,
        AppPackageCommand::Build(args) => build::build(client, args, out).await,
        AppPackageCommand::GetLatest { app, tags } if tags.is_empty() => {
            let path = format!("{}/app-packages/latest-version", app_base(&app.app)?);
            let body = client.call(Method::GET, &path, None::<&()>, None).await?;
            render(body, out.json, |v| Ok(latest_details(&decode(v)?)))
        }
        AppPackageCommand::GetLatest { app, tags } => latest_with_tags(client, &app.app, &tags, out).await,
        AppPackageCommand::List { app, version, tag, page, page_size } => {
            let path = format!("{}/app-packages", app_base(&app.app)?);
            let q = AppPackageListQuery { version, tag, page, page_size };
            let body = client.call(Method::GET, &path, Some(&q), None).await?;
            render(body, out.json, |v| Ok(list_table(&decode(v)?)))
        }
        AppPackageCommand::Get { app, id } => {
            let path = package_path(&app.app, id.id)?;
            let body = client.call(Method::GET, &path, None::<&()>, None).await?;
            render(body, out.json, |v| Ok(package_details(&decode(v)?)))
        }
        AppPackageCommand::Download(args) => download(client, args, out).await,
        AppPackageCommand::Delete { app, id } => {
            let path = package_path(&app.app, id.id)?;
            client.call(Method::DELETE, &path, None::<&()>, None).await?;
            // 204 has no body; `--json` prints a small object so scripts always get valid JSON.
            Ok(if out.json {
                output::json(&json!({"appId": app.app, "id": id.id, "deleted": true}))
            } else {
                format!("Deleted app package {} of {}.\n", id.id, app.app)
            })
        }
        AppPackageCommand::LaunchYaml { app, id } => {
            let url = client.url(&format!("{}/launch-yaml", package_path(&app.app, id.id)?));
            let resp = client.execute(|http| Ok(http.get(&url))).await?;
            let mut text = resp.text().await?;
            Ok(if out.json {
                output::json(&json!({"appId": app.app, "appPackageId": id.id, "launchYaml": text}))
            } else {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            })
        }
        AppPackageCommand::Task(PackageTaskCommand::Get { app, id }) => {
            let path = format!("{}/app-package-tasks/{id}", app_base(&app.app)?);
            let body = client.call(Method::GET, &path, None::<&()>, None).await?;
            render(body, out.json, |v| Ok(task_details(&decode(v)?)))
        }
    }
}

/// `/v1/apps/{appId}`, with the id checked so nothing odd ends up in the path.
pub(crate) fn app_base(app: &str) -> Result<String, CliError> {
    let id = AppId::parse(app).map_err(|e| CliError::Invalid(format!("appId: {e}")))?;
    Ok(format!("/v1/apps/{id}"))
}

fn package_path(app: &str, id: u64) -> Result<String, CliError> {
    Ok(format!("{}/app-packages/{id}", app_base(app)?))
}

/// `get-latest --tags`: the newest package carrying every tag (as SREWorks' swcli prints it).
/// The API filters by one tag; the others are checked here, page by page, newest first.
async fn latest_with_tags(
    client: &mut Client,
    app: &str,
    tags: &[String],
    out: Output,
) -> Result<String, CliError> {
    let path = format!("{}/app-packages", app_base(app)?);
    let mut page = 1;
    loop {
        let q = AppPackageListQuery {
            version: None,
            tag: tags.first().cloned(),
            page: Some(page),
            page_size: Some(SEARCH_PAGE_SIZE),
        };
        let body = client.call(Method::GET, &path, Some(&q), None).await?;
        let body = body.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
        let items = body.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
        let listed: Page<AppPackageOut> = decode(body)?;
        for (raw, pkg) in items.into_iter().zip(&listed.items) {
            if tags.iter().all(|t| pkg.tags.contains(t)) {
                return render(Some(raw), out.json, |_| Ok(package_details(pkg)));
            }
        }
        if listed.items.is_empty() || page.saturating_mul(listed.page_size) >= listed.total {
            return Err(CliError::Api {
                status: 404,
                code: "package_not_found".into(),
                detail: format!("{app} has no package tagged {}", tags.join(", ")),
            });
        }
        page += 1;
    }
}

/// `download`: the zip to a file, or with `--url-only` a presigned URL.
async fn download(client: &mut Client, args: DownloadArgs, out: Output) -> Result<String, CliError> {
    let base = package_path(&args.app.app, args.id.id)?;
    if args.url_only {
        let q = DownloadUrlQuery { expires_in: args.expires_in };
        let body = client.call(Method::GET, &format!("{base}/download-url"), Some(&q), None).await?;
        return render(body, out.json, |v| {
            let u: DownloadUrlOut = decode(v)?;
            Ok(format!("{}\n", u.url))
        });
    }
    let url = client.url(&format!("{base}/download"));
    let timeout = Duration::from_secs(args.transfer.timeout);
    let resp = client.execute(|http| Ok(http.get(&url).timeout(timeout))).await?;
    let expected = download::announced_checksum(resp.headers())?;
    let name = match download::suggested_name(resp.headers()) {
        Some(n) => n,
        // The gateway names the file; should a proxy drop the header, ask for the version.
        None if args.output.as_ref().is_none_or(|p| p.is_dir()) => {
            let body = client.call(Method::GET, &base, None::<&()>, None).await?;
            let body = body.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
            let pkg: AppPackageOut = decode(body)?;
            format!("{}-{}.zip", pkg.app_id, pkg.package_version)
        }
        None => String::new(),
    };
    let target = download::target_path(args.output.as_deref(), &name);
    let meter = transfer::Meter::new(resp.content_length(), "downloading", out.progress);
    let saved = download::save(resp, &target, expected.as_deref(), &meter).await;
    meter.clear();
    Ok(saved?.render(out.json))
}

fn tags_text(tags: &[String]) -> String {
    tags.join(",")
}

fn list_table(page: &Page<AppPackageOut>) -> String {
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.package_version.clone(),
                source_text(p),
                tags_text(&p.tags),
                p.components.len().to_string(),
                output::bytes(p.size),
                output::time(&p.created_at),
            ]
        })
        .collect();
    let mut out = output::table(&["ID", "VERSION", "SOURCE", "TAGS", "COMPONENTS", "SIZE", "CREATED"], &rows);
    out.push_str(&output::page_note(page.items.len() as u64, page.page, page.page_size, page.total));
    out
}

fn source_text(p: &AppPackageOut) -> String {
    match p.source {
        sw_contracts::packages::PackageSource::Import => "import".into(),
        sw_contracts::packages::PackageSource::Build => "build".into(),
    }
}

/// One package: its fields, then a table of its components.
pub(crate) fn package_details(p: &AppPackageOut) -> String {
    let mut out = output::key_values(&[
        ("id", p.id.to_string()),
        ("appId", p.app_id.to_string()),
        ("packageVersion", p.package_version.clone()),
        ("source", source_text(p)),
        ("tags", tags_text(&p.tags)),
        ("size", format!("{} ({} bytes)", output::bytes(p.size), p.size)),
        ("sha256", p.sha256.clone()),
        ("packageCreator", p.package_creator.clone().unwrap_or_default()),
        ("createdBy", p.created_by.clone()),
        ("createdAt", output::time(&p.created_at)),
    ]);
    if !p.components.is_empty() {
        let rows: Vec<Vec<String>> = p
            .components
            .iter()
            .map(|c| {
                let md5 = match c.md5_status {
                    sw_contracts::packages::Md5Status::Matched => "matched",
                    sw_contracts::packages::Md5Status::Mismatched => "mismatched",
                    sw_contracts::packages::Md5Status::NotDeclared => "not declared",
                };
                vec![
                    c.component_type.clone(),
                    c.component_name.clone(),
                    c.package_version.clone(),
                    output::bytes(c.size),
                    md5.to_owned(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&output::table(&["TYPE", "NAME", "VERSION", "SIZE", "MD5"], &rows));
    }
    out
}

fn latest_details(l: &LatestVersionOut) -> String {
    output::key_values(&[
        ("appId", l.app_id.to_string()),
        ("packageVersion", l.package_version.clone()),
        ("appPackageId", l.app_package_id.to_string()),
        ("nextVersion", l.next_version.clone()),
    ])
}

/// One build task.
pub(crate) fn task_details(t: &AppPackageTaskOut) -> String {
    let components: Vec<String> =
        t.components.iter().map(|c| format!("{}|{}", c.component_type, c.component_name)).collect();
    output::key_values(&[
        ("id", t.id.to_string()),
        ("appId", t.app_id.to_string()),
        ("status", t.status.as_str().to_owned()),
        ("packageVersion", t.package_version.clone()),
        ("tags", tags_text(&t.tags)),
        ("components", components.join(",")),
        ("appPackageId", t.app_package_id.map(|i| i.to_string()).unwrap_or_default()),
        ("errorMessage", t.error_message.clone().unwrap_or_default()),
        ("createdBy", t.created_by.clone()),
        ("createdAt", output::time(&t.created_at)),
        ("updatedAt", output::time(&t.updated_at)),
    ])
}
