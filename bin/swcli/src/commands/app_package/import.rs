//! `swcli app-package import`: the zip streamed from disk as the request body.
//!
//! With an appId it is the raw body (`application/octet-stream`, Content-Length from the file);
//! without one it is the `file` part of a multipart form, also streamed with its length known so
//! the form's Content-Length is too. The options travel in the query either way.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::multipart::{Form, Part};
use sw_contracts::packages::{AppPackageOut, ImportQuery};

use super::transfer::{Meter, open_upload};
use super::{app_base, package_details};
use crate::cli::ImportArgs;
use crate::client::{self, Client};
use crate::error::CliError;
use crate::output::{Output, decode, render};

/// Runs `import`.
pub async fn import(client: &mut Client, args: ImportArgs, out: Output) -> Result<String, CliError> {
    let path = match &args.app {
        Some(app) => format!("{}/app-packages/import", app_base(app)?),
        None => "/v1/app-packages/import".to_owned(),
    };
    let url = client.url(&path);
    let query = ImportQuery {
        package_version: args.package_version.clone(),
        force: args.force.then_some(true),
        reset_version: args.reset_version.then_some(true),
    };
    // Checked once up front so a missing file fails before any token is fetched.
    let (_, len) = open_upload(&args.file)?;
    let timeout = Duration::from_secs(args.transfer.timeout);
    let file_name = upload_name(&args.file);
    let meter = Meter::new(Some(len), "uploading", out.progress);
    let sent = meter
        .watch(client.execute(|http| {
            // Reopened for every attempt: a retried request streams the file from its start.
            let (file, len) = open_upload(&args.file)?;
            meter.restart();
            let body = meter.file_body(file, &args.file);
            let req = http.post(&url).query(&query).timeout(timeout);
            Ok(if args.app.is_some() {
                req.header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, len).body(body)
            } else {
                let part = Part::stream_with_length(body, len)
                    .file_name(file_name.clone())
                    .mime_str("application/zip")
                    .map_err(|e| CliError::Unexpected(e.to_string()))?;
                req.multipart(Form::new().part("file", part))
            })
        }))
        .await;
    meter.clear();
    let body = client::read(sent?).await?;
    if args.print_only_app_package_id {
        let body = body.ok_or_else(|| CliError::Unexpected("the reply has no body".into()))?;
        let pkg: AppPackageOut = decode(body)?;
        return Ok(format!("{}\n", pkg.id));
    }
    render(body, out.json, |v| Ok(package_details(&decode(v)?)))
}

/// The file name sent with a multipart upload (the platform reads the app from the zip itself).
fn upload_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "package.zip".to_owned(), |n| n.to_string_lossy().into_owned())
}
