//! The command line (clap derive).

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

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

    #[test]
    fn labels_split_at_the_first_equals() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), String::new())));
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }
}
