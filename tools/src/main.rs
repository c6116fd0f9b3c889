//! `cairn`: the command-line tool of the Cairn message store.
//!
//! This file only parses the command line, runs the chosen command and turns its outcome
//! into an exit status (0 success, 1 failure or damage found, 2 usage error, 130 Ctrl-C; see
//! [`outcome`]). Online commands are in [`commands`] over the HTTP client in [`api`];
//! offline commands on a stopped server's data directory are in [`offline`]. Everything
//! printed to stdout goes through [`output`] (a closed pipe is a quiet exit, not a panic).

#[macro_use]
mod output;

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
    let result = commands::run(cli);
    output::flush();
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => outcome::report_error(&err),
    }
}
