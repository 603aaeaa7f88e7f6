//! The command line (clap derive).

pub mod deployment;

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};
use clap_complete::Shell;
pub use deployment::{ActionArgs, ContextArgs, DeploymentCommand, LaunchArgs, WaitArgs, WorkflowCommand};

/// swcli — the sreworks command-line client.
#[derive(Debug, Parser)]
#[command(name = "swcli", version, about = "The sreworks command-line client")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and output flags, accepted before or after the subcommand.
///
/// Environment variables are read by `config::Settings::resolve`, not by clap, so that `--help`
/// can never print a secret taken from the environment.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Gateway URL [env: SWCLI_ENDPOINT] [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// OAuth client id [env: SWCLI_CLIENT_ID] [default: swcli].
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// OAuth client secret; when set, login uses client credentials [env: SWCLI_CLIENT_SECRET].
    #[arg(long, global = true, value_name = "SECRET")]
    pub client_secret: Option<String>,
    /// Username for the password grant [env: SWCLI_USERNAME].
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// Password for the password grant; prefer SWCLI_PASSWORD or `login --password-stdin`, since
    /// flags are visible to other local users [env: SWCLI_PASSWORD].
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// Print the JSON reply of the API instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Draw no progress bars or spinners on stderr (they are drawn only on a terminal anyway).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The config file [env: SWCLI_CONFIG] [default: ~/.swcli.yaml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in and store the tokens in the config file.
    Login {
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Applications.
    #[command(subcommand)]
    App(AppCommand),
    /// App packages: import, build, list, download.
    #[command(subcommand, name = "app-package")]
    AppPackage(AppPackageCommand),
    /// Deployments: launch, follow, retry, roll back.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Workflow instances: resume, retry, set context values.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells completions are generated for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(s: CompletionShell) -> Shell {
        match s {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// `swcli app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List applications.
    List {
        /// Only apps of this team.
        #[arg(long)]
        team: Option<String>,
        /// Substring of appId or name.
        #[arg(long)]
        search: Option<String>,
        /// Page number, from 1.
        #[arg(long)]
        page: Option<u64>,
        /// Items per page, 1–500.
        #[arg(long)]
        page_size: Option<u64>,
    },
    /// Show one application.
    Get {
        /// The appId.
        app: String,
    },
    /// Create an application.
    Create {
        /// The appId: a lowercase DNS label.
        app: String,
        /// Display name (defaults to the appId).
        #[arg(long)]
        name: Option<String>,
        /// Owning team.
        #[arg(long)]
        team: Option<String>,
        /// Free text, at most 4096 characters.
        #[arg(long)]
        description: Option<String>,
        /// A label `key=value`; repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Delete an application.
    Delete {
        /// The appId.
        app: String,
    },
}

/// `swcli app-package …`. Flag names follow SREWorks' own swcli (`--app-id`/`-a`, `--filepath`/`-f`,
/// `--path`/`-p`, `--tags`/`-t`, `--print-only-app-package-id=true`) so its scripts keep working.
#[derive(Debug, Subcommand)]
pub enum AppPackageCommand {
    /// Upload a finished app package zip.
    Import(ImportArgs),
    /// Build an app package on the platform from a build.yaml (and the local Helm charts it names).
    Build(BuildArgs),
    /// Show the newest package of an app and the version the next build gets.
    GetLatest {
        #[command(flatten)]
        app: AppArg,
        /// Instead: show the newest package carrying every one of these tags; repeatable.
        #[arg(short = 't', long = "tags", visible_alias = "tag", value_name = "TAG", value_parser = parse_tag)]
        tags: Vec<String>,
    },
    /// List the packages of an app, newest first.
    List {
        #[command(flatten)]
        app: AppArg,
        /// Only this exact version.
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Only packages carrying this tag.
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// Page number, from 1.
        #[arg(long)]
        page: Option<u64>,
        /// Items per page, 1–500.
        #[arg(long)]
        page_size: Option<u64>,
    },
    /// Show one package and its components.
    Get {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        id: PackageIdArg,
    },
    /// Download a package zip (or print a presigned URL for it).
    Download(DownloadArgs),
    /// Delete a package.
    Delete {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        id: PackageIdArg,
    },
    /// Print the launch YAML of a package.
    LaunchYaml {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        id: PackageIdArg,
    },
    /// Build tasks.
    #[command(subcommand)]
    Task(PackageTaskCommand),
}

/// `swcli app-package task …`.
#[derive(Debug, Subcommand)]
pub enum PackageTaskCommand {
    /// Show one build task.
    Get {
        #[command(flatten)]
        app: AppArg,
        /// The task id.
        #[arg(long, visible_alias = "task-id", value_name = "ID")]
        id: u64,
    },
}

/// `-a/--app-id APP`, required.
#[derive(Debug, Clone, Args)]
pub struct AppArg {
    /// The appId.
    #[arg(short = 'a', long = "app-id", visible_alias = "app", value_name = "APP")]
    pub app: String,
}

/// `--id ID` of an app package.
#[derive(Debug, Clone, Args)]
pub struct PackageIdArg {
    /// The app package id.
    #[arg(long, visible_alias = "app-package-id", value_name = "ID")]
    pub id: u64,
}

/// `swcli app-package import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The appId; without it the app named in the package's meta.yaml is used.
    #[arg(short = 'a', long = "app-id", visible_alias = "app", value_name = "APP")]
    pub app: Option<String>,
    /// The package zip (streamed, never read into memory).
    #[arg(short = 'f', long = "filepath", visible_alias = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Give the package the next version (latest patch + 1) instead of its own.
    #[arg(short = 'r', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub reset_version: bool,
    /// Store the package under this version instead of its own.
    #[arg(long, value_name = "VERSION", conflicts_with = "reset_version", value_parser = parse_non_blank)]
    pub package_version: Option<String>,
    /// Replace an existing package of the same version.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub force: bool,
    /// Print only the new package's id (for scripts).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub print_only_app_package_id: bool,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// `swcli app-package build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// The build.yaml; `chartPath`s of HELM components are relative to its folder.
    #[arg(short = 'p', long = "path", value_name = "FILE", default_value = "build.yaml")]
    pub path: PathBuf,
    /// A tag for the package, e.g. `release=stable`; repeatable.
    #[arg(short = 't', long = "tags", visible_alias = "tag", value_name = "TAG", value_parser = parse_tag)]
    pub tags: Vec<String>,
    /// The package version (`x.y.z` gets a timestamp appended); default: latest patch + 1.
    #[arg(long, value_name = "VERSION", value_parser = parse_non_blank)]
    pub version: Option<String>,
    /// Wait until the task succeeds or fails.
    #[arg(short = 'w', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub wait: bool,
    /// How long --wait waits at most.
    #[arg(long, value_name = "SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait_max_seconds: u64,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// `swcli app-package download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub id: PackageIdArg,
    /// Where to save it (a file, or an existing folder); default: the name the gateway gives,
    /// `{appId}-{version}.zip`, in the current folder.
    #[arg(short = 'o', long, value_name = "FILE", conflicts_with = "url_only")]
    pub output: Option<PathBuf>,
    /// Print a presigned URL for the zip instead of downloading it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub url_only: bool,
    /// Lifetime of the presigned URL (with --url-only).
    #[arg(long, value_name = "SECONDS", requires = "url_only", value_parser = clap::value_parser!(u64).range(1..))]
    pub expires_in: Option<u64>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// Limits of an upload or download.
#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// Deadline of the whole transfer, including the platform's processing; a transfer that
    /// moves no bytes for 60 s fails earlier.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub timeout: u64,
}

/// A package tag: not empty, no surrounding spaces, no comma (tags travel comma-separated).
pub fn parse_tag(s: &str) -> Result<String, String> {
    if s.is_empty() || s.trim() != s || s.contains(',') {
        return Err(format!(
            "invalid tag {s:?}: not empty, no surrounding spaces, no comma (e.g. release=stable)"
        ));
    }
    Ok(s.to_owned())
}

pub(crate) fn parse_non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() { Err("must not be empty".into()) } else { Ok(s.to_owned()) }
}

/// Parses `key=value` (the value may itself contain `=`).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("swcli").chain(args.iter().copied()))
    }

    fn package(args: &[&str]) -> AppPackageCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            Command::AppPackage(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn import_takes_sreworks_spellings() {
        // As SREWorks' own scripts call it.
        let AppPackageCommand::Import(a) = package(&[
            "app-package",
            "import",
            "--app-id=health",
            "--filepath",
            "/root/build.zip",
            "--print-only-app-package-id=true",
            "--reset-version=true",
        ]) else {
            panic!()
        };
        assert_eq!(a.app.as_deref(), Some("health"));
        assert_eq!(a.file, PathBuf::from("/root/build.zip"));
        assert!(a.print_only_app_package_id && a.reset_version && !a.force);
        assert_eq!(a.transfer.timeout, 3600);

        let AppPackageCommand::Import(a) =
            package(&["app-package", "import", "-f", "p.zip", "--force", "--package-version", "1.2.3"])
        else {
            panic!()
        };
        assert_eq!(a.app, None);
        assert!(a.force && !a.reset_version && !a.print_only_app_package_id);
        assert_eq!(a.package_version.as_deref(), Some("1.2.3"));

        let AppPackageCommand::Import(a) =
            package(&["app-package", "import", "-a", "x", "-f", "p.zip", "-r", "--force=false"])
        else {
            panic!()
        };
        assert!(a.reset_version && !a.force);
    }

    #[test]
    fn import_rejects_contradictions() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["app-package", "import", "-a", "x"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["app-package", "import", "-f", "p.zip", "--reset-version", "--package-version", "1.0.0"]),
            clap::error::ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["app-package", "import", "-f", "p.zip", "--force=maybe"]),
            clap::error::ErrorKind::ValueValidation
        );
        assert!(parse(&["app-package", "import", "-f", "p.zip", "--package-version", " "]).is_err());
        // A boolean's value needs `=`, so a stray word is not silently taken as one.
        assert!(parse(&["app-package", "import", "-f", "p.zip", "--force", "false"]).is_err());
    }

    #[test]
    fn build_defaults_and_tags() {
        let AppPackageCommand::Build(b) = package(&["app-package", "build", "-a", "health"]) else {
            panic!()
        };
        assert_eq!(b.app.app, "health");
        assert_eq!(b.path, PathBuf::from("build.yaml"));
        assert!(b.tags.is_empty() && !b.wait && b.version.is_none());
        assert_eq!(b.wait_max_seconds, 600);

        let AppPackageCommand::Build(b) = package(&[
            "app-package",
            "build",
            "--app-id",
            "health",
            "-p",
            "sub/build.yaml",
            "-t",
            "release=stable",
            "--tags",
            "arch=x86",
            "--version",
            "1.2.0",
            "--wait=true",
            "--wait-max-seconds",
            "30",
        ]) else {
            panic!()
        };
        assert_eq!(b.tags, ["release=stable", "arch=x86"]);
        assert_eq!(b.path, PathBuf::from("sub/build.yaml"));
        assert_eq!(b.version.as_deref(), Some("1.2.0"));
        assert!(b.wait);
        assert_eq!(b.wait_max_seconds, 30);

        assert!(parse(&["app-package", "build", "-a", "x", "-t", "a=1,b=2"]).is_err());
        assert!(parse(&["app-package", "build", "-a", "x", "-t", " a=1"]).is_err());
        assert!(parse(&["app-package", "build", "-a", "x", "--wait-max-seconds", "0"]).is_err());
        assert!(parse(&["app-package", "build", "-t", "a=1"]).is_err(), "the app is required");
    }

    #[test]
    fn download_modes() {
        let AppPackageCommand::Download(d) =
            package(&["app-package", "download", "-a", "health", "--id", "42", "-o", "out.zip"])
        else {
            panic!()
        };
        assert_eq!(
            (d.id.id, d.output.as_deref(), d.url_only),
            (42, Some(std::path::Path::new("out.zip")), false)
        );

        let AppPackageCommand::Download(d) = package(&[
            "app-package",
            "download",
            "-a",
            "health",
            "--app-package-id",
            "42",
            "--url-only",
            "--expires-in",
            "60",
        ]) else {
            panic!()
        };
        assert!(d.url_only);
        assert_eq!(d.expires_in, Some(60));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["app-package", "download", "-a", "h", "--id", "1", "--expires-in", "60"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["app-package", "download", "-a", "h", "--id", "1", "--url-only", "-o", "x.zip"]),
            clap::error::ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["app-package", "download", "-a", "h", "--id", "x"]),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn the_small_commands_parse() {
        assert!(matches!(
            package(&["app-package", "get-latest", "-a", "h"]),
            AppPackageCommand::GetLatest { app, tags } if app.app == "h" && tags.is_empty()
        ));
        assert!(matches!(
            package(&["app-package", "get-latest", "-a", "h", "-t", "a=1", "-t", "b=2"]),
            AppPackageCommand::GetLatest { tags, .. } if tags == ["a=1", "b=2"]
        ));
        assert!(matches!(
            package(&["app-package", "list", "-a", "h", "--version", "1.0.0+1", "--tag", "t", "--page", "2", "--page-size", "5"]),
            AppPackageCommand::List { version: Some(v), tag: Some(t), page: Some(2), page_size: Some(5), .. }
                if v == "1.0.0+1" && t == "t"
        ));
        assert!(
            matches!(package(&["app-package", "get", "-a", "h", "--id", "7"]), AppPackageCommand::Get { id, .. } if id.id == 7)
        );
        assert!(matches!(
            package(&["app-package", "delete", "--app", "h", "--id", "7"]),
            AppPackageCommand::Delete { .. }
        ));
        assert!(matches!(
            package(&["app-package", "launch-yaml", "-a", "h", "--id", "7"]),
            AppPackageCommand::LaunchYaml { .. }
        ));
        assert!(matches!(
            package(&["app-package", "task", "get", "-a", "h", "--task-id", "9"]),
            AppPackageCommand::Task(PackageTaskCommand::Get { id: 9, .. })
        ));
        assert!(parse(&["app-package", "get", "-a", "h"]).is_err(), "the id is required");
    }

    #[test]
    fn quiet_and_config_are_global() {
        let cli = parse(&["app-package", "list", "-a", "h", "-q", "--config", "/etc/swcli.yaml", "--json"])
            .unwrap();
        assert!(cli.global.quiet && cli.global.json);
        assert_eq!(cli.global.config, Some(PathBuf::from("/etc/swcli.yaml")));
    }

    #[test]
    fn completions_cover_the_commands() {
        let mut buf = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "swcli", &mut buf);
        let script = String::from_utf8(buf).unwrap();
        for word in [
            "app-package",
            "get-latest",
            "launch-yaml",
            "--print-only-app-package-id",
            "--wait-max-seconds",
            "deployment",
            "--app-instance-name",
            "retry-from-task",
        ] {
            assert!(script.contains(word), "{word} is not completed");
        }
    }

    #[test]
    fn labels_split_at_the_first_equals() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), String::new())));
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }
}
