//! `swcli`: the sreworks command-line client.
//!
//! How a command runs: [`main_with`] parses the command line ([`cli`]), reads the config file and
//! applies precedence (file → `SWCLI_*` environment → flags, see [`config`]), builds a [`Client`]
//! that finds or renews a bearer token (stored session → refresh token → configured credentials),
//! calls the gateway over HTTP, and renders the reply as a table or raw JSON ([`commands`],
//! [`output`]). Package uploads and downloads stream between files and the network, never holding
//! a package in memory (`commands::app_package`). `deployment … --wait` polls the deployment and
//! prints a line on stderr per change of a step, component or the deployment itself
//! (`commands::deployment`). Errors become one line `error: <code>: <detail>` on stderr and a distinct exit
//! code ([`error`]).

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use clap::{CommandFactory, Parser};

pub use cli::Cli;
pub use client::Client;
pub use error::CliError;

/// Runs a parsed command with `env` as the environment; returns what to print on stdout.
pub async fn run(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<String, CliError> {
    let g = &cli.global;
    let path = match &g.config {
        Some(p) => p.clone(),
        None => config::config_path(&env)?,
    };
    let file = config::load(&path)?;
    let flags = config::Overrides {
        endpoint: g.endpoint.clone(),
        client_id: g.client_id.clone(),
        client_secret: g.client_secret.clone(),
        username: g.username.clone(),
        password: g.password.clone(),
    };
    let settings = config::Settings::resolve(&file, &env, &flags);
    let as_json = g.json;
    let out = output::Output::new(g.json, g.quiet, std::io::stderr().is_terminal());
    let mut client = Client::new(settings, path, file)?;
    match cli.command {
        cli::Command::Login { password_stdin } => {
            commands::login::login(&mut client, password_stdin, as_json).await
        }
        cli::Command::App(cmd) => commands::app::run(&mut client, cmd, as_json).await,
        cli::Command::AppPackage(cmd) => commands::app_package::run(&mut client, cmd, out).await,
        cli::Command::Deployment(cmd) => commands::deployment::run(&mut client, cmd, out).await,
        cli::Command::Workflow(cmd) => commands::workflow::run(&mut client, cmd, out).await,
        cli::Command::Completions { shell } => Ok(completions(shell)),
    }
}

/// The completion script for `shell`.
pub fn completions(shell: cli::CompletionShell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(clap_complete::Shell::from(shell), &mut Cli::command(), "swcli", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Parses a command line (`args[0]` is the program name).
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// The whole program: parses `args`, runs, prints, and returns the exit code.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
        }
    };
    // Completions need no runtime, config or network.
    if let cli::Command::Completions { shell } = cli.command {
        return print_out(&completions(shell));
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return error::EXIT_OTHER;
        }
    };
    match rt.block_on(run(cli, |k| std::env::var(k).ok())) {
        Ok(out) => print_out(&out),
        Err(e) => {
            if let Some(out) = e.stdout() {
                print_out(out);
            }
            // One line, whatever the server put in the detail.
            let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("error: {msg}");
            e.exit_code()
        }
    }
}

fn print_out(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`swcli app list | head`) is not worth an error message.
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => error::EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => error::EXIT_OK,
        Err(e) => {
            eprintln!("error: stdout: {e}");
            error::EXIT_OTHER
        }
    }
}
