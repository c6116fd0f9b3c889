//! What a command ends with, and the exit status that means it.
//!
//! The exit status is part of the CLI's contract, so scripts can rely on it:
//! `0` the command did what was asked (and, for `verify`, found nothing wrong); `1` it failed
//! (a request failed, the data directory is locked, damage was found); `2` the command line
//! was wrong (clap reports its own usage errors with 2 as well); `130` it was stopped by
//! Ctrl-C (SIGINT) — what a shell shows for a process killed by it, but after a clean stop:
//! `consume` finishes acknowledging what it printed, `bench` deletes the topic it made.

use std::process::ExitCode;

/// How a command that ran to its end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as asked.
    Ok,
    /// The command ran but found a problem it already reported (e.g. damage).
    Failed,
    /// Stopped by Ctrl-C (SIGINT), cleanly.
    Interrupted,
}

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(EXIT_FAILURE),
            Outcome::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        }
    }
}

/// Exit status of a failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status after Ctrl-C (128 + SIGINT, as shells report a process it killed).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C (SIGINT) as a stream: once made, SIGINT no longer kills the process; each one is
/// seen by the next `recv` (one pending at most), also if it came while nothing waited.
pub fn interrupts() -> anyhow::Result<tokio::signal::unix::Signal> {
    Ok(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?)
}

/// A mistake in the command line found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Prints `err` (with its causes) to stderr and returns the exit status it means.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    if err.downcast_ref::<UsageError>().is_some() {
        eprintln!("Run `cairn --help` for usage.");
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `err` and its causes on one line, `: ` between them, leaving out a cause its parent's
/// text already ends with (errors that print their source as well as returning it, such as
/// the storage crate's I/O errors, would show it twice).
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("open directory : {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_is_shown_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = anyhow::Error::new(Repeats(io)).context("cannot open data directory d");
        assert_eq!(one_line(&err), "cannot open data directory d: open directory : entity not found");
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&err), "outer: middle: inner");
    }
}
