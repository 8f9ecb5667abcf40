//! `cargo xtask`: developer tasks for the pdfsign workspace.
//!
//! Run `cargo xtask` with no argument for the list. Never a dependency of any crate.

#![forbid(unsafe_code)]

mod bench;
mod bench_batch;
mod demo;
mod setup;
mod soak;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The result of a task: an error is printed as one line and exits 2.
type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const HELP: &str = "\
cargo xtask: developer tasks for pdfsign

USAGE:
    cargo xtask <TASK> [OPTIONS]

TASKS:
    softhsm-setup [--module PATH]
        Provision the developer SoftHSM2 token in target/softhsm/ (idempotent): token
        'pdfsign-demo', user PIN 'user-1234', one key each of RSA-2048, RSA-3072, P-256,
        P-384 and P-521 with certificates from the fixture CA chain (written as PEM to
        target/softhsm/certs/). Installs Debian's softhsm2 when missing and run as root;
        otherwise prints the command. The module path can also come from PKCS11_MODULE.
    demo [--key LABEL]
        The first command to try: provisions the developer token if needed, builds
        pdfsign, signs fixtures/sample.pdf with the token's P-256 key (or LABEL: rsa2048,
        rsa3072, p256, p384, p521) into target/demo/sample-signed.pdf, then runs
        `pdfsign verify` on it against the fixture root CA.
    test [-- CARGO TEST ARGS]
        Run every test of the workspace on fresh SoftHSM2 tokens (the test token
        directory target/softhsm-test/ is wiped first), with the validators of
        target/venv on PATH.
    bench [--quick] [session] [bytes] [bigfile] [batch]
        Measure throughput as DESIGN.md's 'Measuring' says, each figure the median of
        interleaved rounds with its spread: session (SigningKey::sign vs raw C_Sign at
        1, 2, 8 threads), bytes (Signer::sign_bytes in memory vs raw C_Sign, RSA-2048
        and P-256 at 1, 2, 8 threads), bigfile (a 100 MB PDF vs cp + openssl dgst +
        sync, peak RSS), batch (pdfsign batch vs C = 1/(1/raw + 1/io) at -j 1, 2, 8).
        All sections by default; --quick runs short rounds whose figures are only
        indicative.
    soak [--minutes N] [--latency | --no-latency] [--faults all|sign] [--threads N]
        The fault soak (issue 8), built in release: 8 threads (--threads) sign PDFs through
        the fault proxy for N minutes (default 10) while about 1% of the calls fail
        (--faults all: every call of the signing stack, the default; sign: only
        C_SignInit and C_Sign) and the token is logged out, closed and removed every few
        seconds. Fails on any corrupt, partial or leftover output, changed input, panic,
        stall of 30 s, growth of memory past the first minute's + 10%, or unexplained
        failure. Then measures batch throughput with 2 ms added to every PKCS#11 call,
        -j 1 against -j 8 (--latency: only that; --no-latency: only the soak). Tokens
        live in target/softhsm-soak/ (wiped first).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(())
        }
        Some("softhsm-setup") => setup::run(&args[1..]),
        Some(setup::PROVISION_CHILD) => setup::provision_child(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some(other) => {
            Err(format!("unknown task {other:?}; run `cargo xtask` for the list").into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cargo xtask: error: {err}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// The shared target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// `cargo`, as the one that runs us.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a command, failing with its name when it fails.
fn run_checked(command: &mut Command) -> Result {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}").into())
    }
}

/// PATH with the project's Python validators (pyHanko in target/venv) in front.
fn path_with_venv() -> std::ffi::OsString {
    let venv = target_dir().join("venv").join("bin");
    let mut paths = vec![venv];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

fn test(args: &[String]) -> Result {
    let tokens = target_dir().join("softhsm-test");
    if tokens.exists() {
        std::fs::remove_dir_all(&tokens)
            .map_err(|e| format!("cannot wipe {}: {e}", tokens.display()))?;
    }
    setup::ensure_softhsm()?;
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args.iter().skip_while(|a| *a == "--"))
        .env("SOFTHSM2_CONF", tokens.join("softhsm2.conf"))
        .env("PATH", path_with_venv());
    run_checked(&mut command)
}
