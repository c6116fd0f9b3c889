//! `cairn`: the command-line tool of the Cairn message store.
//!
//! This file only parses the command line, runs the chosen command and turns its outcome
//! into an exit status (0 success, 1 failure or damage found, 2 usage error; see
//! [`outcome`]). Online commands are in [`commands`] over the HTTP client in [`api`];
//! offline commands on a stopped server's data directory are in [`offline`].

mod api;
mod cli;
mod commands;
mod offline;
mod outcome;
mod table;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => outcome::report_error(&err),
    }
}
