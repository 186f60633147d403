//! Every line relcap writes to stdout or stderr goes through the macros of this module, which
//! ignore a failed write: a log read by `head`, or a closed terminal, must not stop a run
//! halfway (`eprintln!` panics on a closed pipe, leaving a partial run). The output files and
//! the manifest are the record of a run; the log only shows it. `#![deny(clippy::print_stdout,
//! clippy::print_stderr)]` in `lib.rs` keeps the standard printing macros out of the crate.

use std::fmt;
use std::io::Write;

/// Writes `args` to stderr, ignoring errors.
pub fn err(args: fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Writes `args` to stdout, ignoring errors.
pub fn out(args: fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args);
    let _ = stdout.flush();
}

/// `eprintln!` that ignores a closed stderr.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that ignores a closed stdout.
#[macro_export]
macro_rules! show {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!($($arg)*))
    };
}

/// `println!` that ignores a closed stdout.
#[macro_export]
macro_rules! showln {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
