//! Finding the proxy library for a test: `PKCS11_FAULT_MODULE`, or build it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable that names a ready-built proxy library, so that the xtask
/// (or CI) builds it once and tests skip the cargo call.
pub const MODULE_ENV: &str = "PKCS11_FAULT_MODULE";

/// Why the proxy library could not be found or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `PKCS11_FAULT_MODULE` names a file that does not exist.
    #[error("{MODULE_ENV}={} does not exist", path.display())]
    Missing {
        /// The path it named.
        path: PathBuf,
    },
    /// Cargo could not be started.
    #[error("cannot run {cargo}: {message}")]
    Spawn {
        /// The cargo program tried.
        cargo: String,
        /// The system's error.
        message: String,
    },
    /// `cargo build -p p11-fault` failed.
    #[error("`cargo build -p p11-fault` failed ({status}):\n{stderr}")]
    Cargo {
        /// The exit status.
        status: String,
        /// Cargo's diagnostics.
        stderr: String,
    },
    /// Cargo succeeded but reported no library file.
    #[error("`cargo build -p p11-fault` reported no {DLL} artifact", DLL = std::env::consts::DLL_SUFFIX)]
    NoArtifact,
}

/// The proxy library's path: `PKCS11_FAULT_MODULE` if set, otherwise the result of
/// `cargo build -p p11-fault --lib` in the same profile as the running test (the
/// profile is read from the test executable's place under `target/`; cargo itself
/// decides the target directory, honouring `CARGO_TARGET_DIR`, and reports the file).
/// Built once per process.
///
/// There is no skip: a test that asked for the proxy cannot run without it, under `CI`
/// or not, so every failure panics with cargo's diagnostics.
///
/// # Panics
/// If the library cannot be found or built.
pub fn build_proxy() -> PathBuf {
    match try_build_proxy() {
        Ok(path) => path,
        Err(e) => panic!(
            "p11-fault: the fault proxy is required and missing{}: {e}",
            if std::env::var_os("CI").is_some() {
                " (CI)"
            } else {
                ""
            }
        ),
    }
}

/// [`build_proxy`] without the panic.
///
/// # Errors
/// A [`BuildError`].
pub fn try_build_proxy() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os(MODULE_ENV) {
                let path = PathBuf::from(path);
                return if path.is_file() {
                    Ok(path)
                } else {
                    Err(BuildError::Missing { path })
                };
            }
            let exe = std::env::current_exe().ok();
            cargo_build(&profile_of(exe.as_deref()))
        })
        .clone()
}

/// The cargo profile a program under `target/` was built with: `target/debug/deps/x`
/// is `dev`, `target/release/x` is `release`, `target/<triple>/bench/deps/x` is
/// `bench`. Anything else (not built by cargo) is `dev`.
fn profile_of(exe: Option<&Path>) -> String {
    let Some(mut dir) = exe.and_then(Path::parent) else {
        return "dev".to_owned();
    };
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
        && let Some(parent) = dir.parent()
    {
        dir = parent;
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    }
}

fn cargo_build(profile: &str) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // This crate lives at crates/p11-fault in the workspace.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(&cargo)
        .args([
            "build",
            "--package",
            "p11-fault",
            "--lib",
            "--profile",
            profile,
        ])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(|e| BuildError::Spawn {
            cargo: cargo.clone(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(BuildError::Cargo {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    artifact(&String::from_utf8_lossy(&output.stdout)).ok_or(BuildError::NoArtifact)
}

/// The cdylib's path from cargo's JSON messages: the `compiler-artifact` message of
/// p11-fault lists its files, one of which ends in the platform's library suffix.
fn artifact(json_lines: &str) -> Option<PathBuf> {
    let suffix = std::env::consts::DLL_SUFFIX;
    let file = format!("{}p11_fault{suffix}", std::env::consts::DLL_PREFIX);
    json_lines
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .flat_map(|l| {
            let files = l.split_once("\"filenames\":[").map_or("", |(_, rest)| rest);
            let files = files.split_once(']').map_or("", |(list, _)| list);
            files
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_owned())
                .collect::<Vec<_>>()
        })
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n == file.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_the_executable_path() {
        let p = |s: &str| profile_of(Some(Path::new(s)));
        assert_eq!(p("/w/target/debug/deps/proxy-0123"), "dev");
        assert_eq!(p("/w/target/release/deps/proxy-0123"), "release");
        assert_eq!(p("/w/target/release/xtask"), "release");
        assert_eq!(
            p("/w/target/x86_64-unknown-linux-gnu/bench/deps/b"),
            "bench"
        );
        assert_eq!(p("/w/target/debug/examples/e"), "dev");
        assert_eq!(profile_of(None), "dev");
    }

    #[test]
    fn the_artifact_comes_from_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","package_id":"x","target":{"name":"p11_fault"},"filenames":["/w/target/debug/libp11_fault.so","/w/target/debug/libp11_fault.rlib"],"fresh":true}
{"reason":"build-finished","success":true}"#;
        if std::env::consts::DLL_SUFFIX == ".so" {
            assert_eq!(
                artifact(json),
                Some(PathBuf::from("/w/target/debug/libp11_fault.so"))
            );
        }
        assert_eq!(
            artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
    }
}
