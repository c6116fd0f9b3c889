//! Writing to standard output without panicking: the `outln!` and `out!` macros every
//! command prints with, in place of `println!` and `print!`.
//!
//! `println!` panics when stdout cannot be written, and Rust ignores `SIGPIPE`, so
//! `cairn consume orders | head` died with a panic and a backtrace once `head` had its lines.
//! Here a closed pipe ends the process quietly with status 0, as `rg`, `fd` and a C tool
//! killed by `SIGPIPE` without `pipefail` look to a shell: the reader asked for no more. Any
//! other write error (a full disk behind `> file`) is one error line and status 1.

use std::fmt;
use std::io::{self, Write as _};

/// `println!` that never panics: see the module documentation.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics: see the module documentation.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// Writes to stdout (line-buffered as `println!` is); ends the process on failure.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Flushes stdout at the end of a command (a last line without a newline, or a pipe).
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        stdout_failed(&e);
    }
}

fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(i32::from(crate::outcome::EXIT_FAILURE));
}
