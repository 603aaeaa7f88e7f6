//! The `deployment` and `workflow` command lines.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, ArgGroup, Args, Subcommand};
use serde_json::Value;

use super::{parse_label, parse_non_blank};

/// `swcli deployment …`.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Deploy an app package with a launch YAML (an ApplicationConfiguration).
    Launch(LaunchArgs),
    /// List deployments, newest first.
    List {
        /// Only deployments of this app.
        #[arg(short = 'a', long = "app-id", visible_alias = "app", value_name = "APP")]
        app: Option<String>,
        /// Only deployments of this app instance.
        #[arg(long, value_name = "NAME")]
        app_instance_name: Option<String>,
        /// Only deployments in this state (e.g. RUNNING, FAILURE).
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// Page number, from 1.
        #[arg(long)]
        page: Option<u64>,
        /// Items per page, 1–500.
        #[arg(long)]
        page_size: Option<u64>,
    },
    /// Show one deployment with its components and workflow steps.
    Get {
        /// The deployment id (deployAppId).
        id: u64,
    },
    /// Run a failed deployment again, from its failed step.
    Retry(ActionArgs),
    /// Stop a running deployment.
    Terminate {
        /// The deployment id (deployAppId).
        id: u64,
    },
    /// Deploy again what an earlier deployment deployed, pinning the app instance to it.
    Rollback(ActionArgs),
    /// Start a new deployment with the same package and launch YAML as an earlier one.
    Replay(ActionArgs),
}

/// `swcli deployment launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The appId; default: the launch YAML's `metadata.annotations.appId`.
    #[arg(short = 'a', long = "app-id", visible_alias = "app", value_name = "APP")]
    pub app: Option<String>,
    /// The app package to deploy; default: `--package-version`, else the YAML's
    /// `metadata.annotations.appPackageId`, else the app's newest package.
    #[arg(long, value_name = "ID", conflicts_with = "package_version")]
    pub app_package_id: Option<u64>,
    /// The app package by version instead of id.
    #[arg(long, value_name = "VERSION", value_parser = parse_non_blank)]
    pub package_version: Option<String>,
    /// The launch YAML (an ApplicationConfiguration); sent as it is.
    #[arg(short = 'p', long = "path", value_name = "FILE", default_value = "launch.yaml")]
    pub path: PathBuf,
    /// The cluster to deploy to (wins over the YAML).
    #[arg(long, visible_alias = "cluster-id", value_name = "CLUSTER", value_parser = parse_non_blank)]
    pub cluster: Option<String>,
    /// The namespace to deploy to (wins over the YAML).
    #[arg(long, visible_alias = "namespace-id", value_name = "NAMESPACE", value_parser = parse_non_blank)]
    pub namespace: Option<String>,
    /// The stage to deploy to (wins over the YAML).
    #[arg(long, visible_alias = "stage-id", value_name = "STAGE", value_parser = parse_non_blank)]
    pub stage: Option<String>,
    /// The app instance's name (wins over the YAML).
    #[arg(long, value_name = "NAME", value_parser = parse_non_blank)]
    pub app_instance_name: Option<String>,
    /// Create the namespace and stage when they do not exist (else a missing one is refused).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub auto_environment: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `retry`, `rollback` and `replay` of a deployment.
#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The deployment id (deployAppId).
    pub id: u64,
    /// Act even though a rollback pinned the app instance to another revision.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and its limit, for commands that start a deployment.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Follow the deployment, printing each change, until it ends (or waits for an operator).
    #[arg(short = 'w', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub wait: bool,
    /// How long --wait waits at most; the deployment keeps running after that.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait_max_seconds: u64,
}

/// `swcli workflow …`.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Show one workflow instance, its context and its steps.
    Get {
        /// The workflow instance id.
        id: u64,
    },
    /// Continue a suspended workflow.
    Resume {
        /// The workflow instance id.
        id: u64,
    },
    /// Stop a workflow (and its deployment).
    Terminate {
        /// The workflow instance id.
        id: u64,
    },
    /// Run a failed workflow again from its failed step.
    Retry {
        /// The workflow instance id.
        id: u64,
    },
    /// Run a workflow again from one of its steps, with the context saved when that step first started.
    RetryFromTask {
        /// The workflow instance id.
        id: u64,
        /// The step (task) to start from.
        #[arg(long, value_name = "ID")]
        task_id: u64,
    },
    /// Merge values into a workflow's context (e.g. `--set continueRollout=true`).
    Context(ContextArgs),
}

/// `swcli workflow context`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("patch").required(true).multiple(true).args(["set", "file"])))]
pub struct ContextArgs {
    /// The workflow instance id.
    pub id: u64,
    /// A value `key=value`, repeatable; the value is JSON when it parses as JSON (`true`, `3`,
    /// `{"a":1}`, `null` removes the key), else a string. Applied after --file.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_context_value)]
    pub set: Vec<(String, Value)>,
    /// A JSON object merged into the context (RFC 7396: `null` removes a key).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Parses `key=value` of `workflow context --set`: the value as JSON when it parses, else as
/// the string itself (`rollback=true` is the boolean, `name=web` the string `"web"`).
pub fn parse_context_value(s: &str) -> Result<(String, Value), String> {
    let (k, v) = parse_label(s)?;
    let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
    Ok((k, value))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;
    use serde_json::json;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("swcli").chain(args.iter().copied()))
    }

    fn deployment(args: &[&str]) -> DeploymentCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            Command::Deployment(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn workflow(args: &[&str]) -> WorkflowCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            Command::Workflow(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn kind(args: &[&str]) -> ErrorKind {
        parse(args).unwrap_err().kind()
    }

    #[test]
    fn launch_defaults() {
        let DeploymentCommand::Launch(l) = deployment(&["deployment", "launch"]) else { panic!() };
        assert_eq!(l.path, PathBuf::from("launch.yaml"));
        assert!(l.app.is_none() && l.app_package_id.is_none() && l.package_version.is_none());
        assert!(l.cluster.is_none() && l.namespace.is_none() && l.stage.is_none());
        assert!(!l.auto_environment && !l.wait.wait);
        assert_eq!(l.wait.wait_max_seconds, 1800);
    }

    #[test]
    fn launch_takes_every_placement() {
        let DeploymentCommand::Launch(l) = deployment(&[
            "deployment",
            "launch",
            "-a",
            "health",
            "--app-package-id",
            "7",
            "-p",
            "conf/launch.yaml",
            "--cluster",
            "master",
            "--namespace-id",
            "default",
            "--stage",
            "prod",
            "--app-instance-name",
            "health-prod",
            "--auto-environment",
            "--wait",
            "--wait-max-seconds",
            "60",
        ]) else {
            panic!()
        };
        assert_eq!(l.app.as_deref(), Some("health"));
        assert_eq!(l.app_package_id, Some(7));
        assert_eq!(l.path, PathBuf::from("conf/launch.yaml"));
        assert_eq!(
            (l.cluster.as_deref(), l.namespace.as_deref(), l.stage.as_deref()),
            (Some("master"), Some("default"), Some("prod"))
        );
        assert_eq!(l.app_instance_name.as_deref(), Some("health-prod"));
        assert!(l.auto_environment && l.wait.wait);
        assert_eq!(l.wait.wait_max_seconds, 60);

        let DeploymentCommand::Launch(l) = deployment(&[
            "deployment",
            "launch",
            "--app-id=health",
            "--package-version",
            "1.2.0",
            "-w=false",
        ]) else {
            panic!()
        };
        assert_eq!(l.package_version.as_deref(), Some("1.2.0"));
        assert!(!l.wait.wait);
    }

    #[test]
    fn launch_rejects_contradictions() {
        assert_eq!(
            kind(&["deployment", "launch", "--app-package-id", "1", "--package-version", "1.0.0"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(kind(&["deployment", "launch", "--app-package-id", "x"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["deployment", "launch", "--wait-max-seconds", "0"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["deployment", "launch", "--cluster", " "]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["deployment", "launch", "--wait=soon"]), ErrorKind::ValueValidation);
        // A boolean's value needs `=`, so a stray word is not silently taken as one.
        assert!(parse(&["deployment", "launch", "--wait", "true"]).is_err());
    }

    #[test]
    fn the_deployment_actions_parse() {
        assert!(matches!(
            deployment(&["deployment", "list", "-a", "health", "--app-instance-name", "i", "--state", "FAILURE",
                         "--page", "2", "--page-size", "5"]),
            DeploymentCommand::List { app: Some(a), app_instance_name: Some(i), state: Some(s), page: Some(2), page_size: Some(5) }
                if a == "health" && i == "i" && s == "FAILURE"
        ));
        assert!(matches!(
            deployment(&["deployment", "list"]),
            DeploymentCommand::List {
                app: None,
                app_instance_name: None,
                state: None,
                page: None,
                page_size: None
            }
        ));
        assert!(matches!(deployment(&["deployment", "get", "12"]), DeploymentCommand::Get { id: 12 }));
        assert!(matches!(
            deployment(&["deployment", "terminate", "12"]),
            DeploymentCommand::Terminate { id: 12 }
        ));
        assert!(matches!(
            deployment(&["deployment", "retry", "12"]),
            DeploymentCommand::Retry(ActionArgs {
                id: 12,
                force: false,
                wait: WaitArgs { wait: false, wait_max_seconds: 1800 }
            })
        ));
        assert!(matches!(
            deployment(&["deployment", "rollback", "12", "--force", "--wait"]),
            DeploymentCommand::Rollback(ActionArgs {
                id: 12,
                force: true,
                wait: WaitArgs { wait: true, .. }
            })
        ));
        assert!(matches!(
            deployment(&["deployment", "replay", "3", "--force=true", "-w", "--wait-max-seconds", "5"]),
            DeploymentCommand::Replay(ActionArgs {
                id: 3,
                force: true,
                wait: WaitArgs { wait: true, wait_max_seconds: 5 }
            })
        ));
        assert_eq!(kind(&["deployment", "get"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["deployment", "get", "twelve"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["deployment", "terminate", "1", "--wait"]), ErrorKind::UnknownArgument);
    }

    #[test]
    fn the_workflow_commands_parse() {
        assert!(matches!(workflow(&["workflow", "get", "4"]), WorkflowCommand::Get { id: 4 }));
        assert!(matches!(workflow(&["workflow", "resume", "4"]), WorkflowCommand::Resume { id: 4 }));
        assert!(matches!(workflow(&["workflow", "terminate", "4"]), WorkflowCommand::Terminate { id: 4 }));
        assert!(matches!(workflow(&["workflow", "retry", "4"]), WorkflowCommand::Retry { id: 4 }));
        assert!(matches!(
            workflow(&["workflow", "retry-from-task", "4", "--task-id", "9"]),
            WorkflowCommand::RetryFromTask { id: 4, task_id: 9 }
        ));
        assert_eq!(kind(&["workflow", "retry-from-task", "4"]), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn context_needs_a_set_or_a_file() {
        let WorkflowCommand::Context(c) = workflow(&[
            "workflow",
            "context",
            "4",
            "--set",
            "rollback=true",
            "--set",
            "name=web",
            "--file",
            "ctx.json",
        ]) else {
            panic!()
        };
        assert_eq!(c.id, 4);
        assert_eq!(c.set, [("rollback".into(), json!(true)), ("name".into(), json!("web"))]);
        assert_eq!(c.file, Some(PathBuf::from("ctx.json")));
        let WorkflowCommand::Context(c) = workflow(&["workflow", "context", "4", "--file", "ctx.json"])
        else {
            panic!()
        };
        assert!(c.set.is_empty());
        assert_eq!(kind(&["workflow", "context", "4"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["workflow", "context", "4", "--set", "novalue"]), ErrorKind::ValueValidation);
    }

    #[test]
    fn context_values_are_json_when_they_parse() {
        let v = |s: &str| parse_context_value(s).unwrap();
        assert_eq!(v("rollback=true"), ("rollback".into(), json!(true)));
        assert_eq!(v("continueRollout=false"), ("continueRollout".into(), json!(false)));
        assert_eq!(v("replicas=3"), ("replicas".into(), json!(3)));
        assert_eq!(v("ratio=0.5"), ("ratio".into(), json!(0.5)));
        assert_eq!(v("gone=null"), ("gone".into(), Value::Null));
        assert_eq!(v(r#"obj={"a":[1,"x"]}"#), ("obj".into(), json!({"a": [1, "x"]})));
        assert_eq!(v(r#"quoted="true""#), ("quoted".into(), json!("true")));
        // Not JSON: taken as the string it is.
        assert_eq!(v("name=web"), ("name".into(), json!("web")));
        assert_eq!(v("version=1.2.3"), ("version".into(), json!("1.2.3")));
        assert_eq!(v("padded=007"), ("padded".into(), json!("007")));
        assert_eq!(v("url=http://x/?a=b"), ("url".into(), json!("http://x/?a=b")));
        assert_eq!(v("empty="), ("empty".into(), json!("")));
        assert_eq!(v("half={\"a\":"), ("half".into(), json!("{\"a\":")));
        assert!(parse_context_value("=true").is_err());
        assert!(parse_context_value("flag").is_err());
    }
}
