//! The subcommands. Each returns the text to print on stdout.

pub mod app;
pub mod app_package;
pub mod deployment;
pub mod login;
pub mod workflow;
