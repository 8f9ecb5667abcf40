//! Finding the validators, the rule for a missing one, and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// poppler's `pdfsig`.
    Pdfsig,
    /// `qpdf`.
    Qpdf,
    /// `openssl`.
    Openssl,
    /// pyHanko's command line, `pyhanko` (in the workspace's `target/venv/bin`, where
    /// `.ci/run` installs it, or on `PATH`).
    Pyhanko,
}

impl Tool {
    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Pdfsig => "pdfsig",
            Tool::Qpdf => "qpdf",
            Tool::Openssl => "openssl",
            Tool::Pyhanko => "pyhanko",
        }
    }

    /// Where the tool is, if installed: pyHanko of `target/venv` first, else the first
    /// on `PATH`.
    pub fn path(self) -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if self == Tool::Pyhanko {
            dirs.push(workspace_root().join("target").join("venv").join("bin"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        dirs.into_iter()
            .map(|d| d.join(self.name()))
            .find(|p| p.is_file())
    }

    /// Whether the tool can be used. Missing: a failure under `CI` (see [`required`]),
    /// else a printed note and its checks are skipped.
    ///
    /// # Panics
    /// Under `CI`, when the tool is missing.
    pub fn available(self) -> bool {
        if self.path().is_some() {
            return true;
        }
        assert!(
            !required(),
            "{} is required under CI and is missing (see .ci/run)",
            self.name()
        );
        eprintln!(
            "note: {} is not installed: its checks are skipped",
            self.name()
        );
        false
    }

    /// A command running the tool (by its bare name when it is not found, so that
    /// running it fails with the system's word for it).
    pub fn command(self) -> Command {
        Command::new(self.path().unwrap_or_else(|| PathBuf::from(self.name())))
    }
}

/// Whether every validator must be present: when the environment sets `CI` (as
/// `.ci/run` does), a missing one fails the test instead of being skipped.
pub fn required() -> bool {
    std::env::var_os("CI").is_some()
}

/// The workspace this crate is built in: `target/venv` is under it.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), Path::to_path_buf)
}

/// What a finished validator said.
pub(crate) struct Said {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Exit code and both streams, for messages.
    pub(crate) all: String,
}

/// Runs a validator to completion.
///
/// # Panics
/// If it cannot be started.
pub(crate) fn run(command: &mut Command) -> Said {
    let output: Output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    Said {
        success: output.status.success(),
        all: format!("exit {code}\n--- stdout\n{stdout}--- stderr\n{stderr}"),
        stdout,
        stderr,
    }
}
