//! The `pdfsign` command-line tool: `sign`, `batch`, `verify`, `list`.
//!
//! Run `pdfsign --help`. Everything here is glue over the `pdfsign` library.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
