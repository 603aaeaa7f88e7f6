//! The subcommands. Each returns the text to print on stdout.

pub mod app;
pub mod login;
