//! Shared helpers of the end-to-end tests, written once: the `pdfsign` binary, scratch
//! directories, test tokens named by URIs, the fixture PKI as files, and [`judge`], which
//! hands every output to the independent validators of the `pdf-validators` crate —
//! poppler's `pdfsig`, `qpdf --check`, `openssl cms -verify` over the `/ByteRange`
//! bytes, and pyHanko's validator.
//!
//! A validator that is not installed fails the test under `CI` and is skipped with a
//! printed note otherwise (`.ci/run` installs them all; pyHanko lives in
//! `target/venv/bin`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub use p11_testkit::{KeyKind, Pki, TestToken};
use pdf_validators::{Judge, PyHanko};

pub mod soak;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `fixtures/sample.pdf`.
pub fn sample_pdf() -> PathBuf {
    root().join("fixtures").join("sample.pdf")
}

/// The `pdfsign` binary, built once per test process in the test's own profile
/// (`PDFSIGN_BIN` names a prebuilt one instead).
///
/// # Panics
/// If cargo cannot build it: no end-to-end test can run without it.
pub fn pdfsign_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("PDFSIGN_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let profile = profile_of(std::env::current_exe().ok().as_deref());
        let output = Command::new(&cargo)
            .args([
                "build",
                "--package",
                "pdfsign",
                "--bin",
                "pdfsign",
                "--profile",
                &profile,
            ])
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(root().join("Cargo.toml"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
        assert!(
            output.status.success(),
            "building pdfsign failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
            .find_map(|l| {
                let rest = l.split_once("\"executable\":\"")?.1;
                Some(PathBuf::from(rest.split_once('"')?.0))
            })
            .expect("cargo reported no pdfsign executable")
    })
}

/// The cargo profile of a program under `target/` (`target/debug/deps/x` is `dev`).
fn profile_of(exe: Option<&Path>) -> String {
    let Some(mut dir) = exe.and_then(Path::parent) else {
        return "dev".to_owned();
    };
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    }
}

/// A `pdfsign` command with a clean environment for PINs and modules (the test's
/// `SOFTHSM2_CONF`, set by cargo, is inherited).
pub fn pdfsign() -> Command {
    let mut command = Command::new(pdfsign_binary());
    command
        .env_remove("PDFSIGN_PIN")
        .env_remove("PKCS11_MODULE")
        .env_remove("RUST_LOG");
    command
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Standard output as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.all()))
    }
}

/// Runs a command to completion.
///
/// # Panics
/// If it cannot be started.
pub fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A directory of its own for one test, under `target/e2e-scratch/`, removed when
/// dropped (kept if the test panicked, to look at).
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A fresh directory named after the test.
    ///
    /// # Panics
    /// If it cannot be made.
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = root()
            .join("target")
            .join("e2e-scratch")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Scratch { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The fixture CA chain as PEM files in `dir`.
pub struct PkiFiles {
    /// The root CA certificate: the trust anchor.
    pub root: PathBuf,
    /// The intermediate CA certificate.
    pub intermediate: PathBuf,
}

/// Writes the fixture root and intermediate certificates into `dir`.
///
/// # Panics
/// If they cannot be written.
pub fn pki_files(dir: &Path) -> PkiFiles {
    let files = Pki::fixture()
        .write_pem_files(dir)
        .unwrap_or_else(|e| panic!("writing the fixture PKI into {}: {e}", dir.display()));
    PkiFiles {
        root: files.root,
        intermediate: files.intermediate,
    }
}

/// Writes the token's user PIN into a file only its owner can read, for `pin-source`.
///
/// # Panics
/// If it cannot be written.
pub fn pin_file(dir: &Path, pin: &str) -> PathBuf {
    let path = dir.join("pin.txt");
    std::fs::write(&path, format!("{pin}\n")).expect("writing the PIN file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

/// What most end-to-end tests start from: a token named after the test holding `keys`,
/// a scratch directory of the same name, and in it a file with the user PIN (for
/// `pin-source`).
///
/// # Panics
/// If the token cannot be made or the PIN file written.
pub fn setup(test: &str, keys: &[KeyKind]) -> (TestToken, Scratch, PathBuf) {
    let token = keys
        .iter()
        .fold(TestToken::builder(test), |builder, &kind| builder.key(kind))
        .build();
    let scratch = Scratch::new(test);
    let pin = pin_file(scratch.path(), &token.user_pin);
    (token, scratch, pin)
}

/// The SoftHSM2 module of the tests.
///
/// # Panics
/// If SoftHSM2 is not installed.
pub fn module_path() -> PathBuf {
    p11_testkit::softhsm_module_path()
        .expect("SoftHSM2 is not installed (apt-get install softhsm2)")
}

/// A URI naming the key labelled `object` on `token`, with the module and a PIN source.
pub fn key_uri(token: &TestToken, object: &str, pin_file: &Path) -> String {
    format!(
        "pkcs11:token={};object={object}?module-path={}&pin-source=file:{}",
        token.label,
        module_path().display(),
        pin_file.display()
    )
}

/// Judges a signed PDF by every fast validator that is installed: `pdfsig` (every
/// signature valid, the last covering the whole document), `qpdf --check`, and
/// `openssl cms -verify` of each signature against `pki.root`; with `pyhanko`, pyHanko
/// too. See [`pdf_validators::Judge`].
///
/// # Panics
/// With every validator's complaint, if any complains.
pub fn judge(pdf: &Path, pki: &PkiFiles, scratch: &Path, pyhanko: bool) {
    Judge {
        roots: &pki.root,
        intermediate: &pki.intermediate,
        scratch,
        signatures: None,
        pyhanko: if pyhanko {
            PyHanko::Strict
        } else {
            PyHanko::Skip
        },
    }
    .assert_valid(pdf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_of_test_programs() {
        assert_eq!(
            profile_of(Some(Path::new("/w/target/debug/deps/e2e-01"))),
            "dev"
        );
        assert_eq!(
            profile_of(Some(Path::new("/w/target/release/deps/e2e-01"))),
            "release"
        );
    }
}
