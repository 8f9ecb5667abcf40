//! Shared helpers of the end-to-end tests, written once: the `pdfsign` binary, scratch
//! directories, test tokens named by URIs, and the independent validators that judge
//! every output — poppler's `pdfsig`, `qpdf --check`, `openssl cms -verify` over the
//! `/ByteRange` bytes, and pyHanko's validator.
//!
//! A validator that is not installed fails the test under `CI` and is skipped with a
//! printed note otherwise (`.ci/run` installs them all; pyHanko lives in
//! `target/venv/bin`, which `cargo xtask test` puts on `PATH`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub use p11_testkit::{KeyKind, Pki, TestToken};

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

/// The validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// poppler's `pdfsig`.
    Pdfsig,
    /// `qpdf`.
    Qpdf,
    /// `openssl`.
    Openssl,
    /// pyHanko's command line, `pyhanko` (in `target/venv/bin` or on `PATH`).
    Pyhanko,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Pdfsig => "pdfsig",
            Tool::Qpdf => "qpdf",
            Tool::Openssl => "openssl",
            Tool::Pyhanko => "pyhanko",
        }
    }

    /// Where the tool is, if installed.
    pub fn path(self) -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if self == Tool::Pyhanko {
            dirs.push(root().join("target").join("venv").join("bin"));
        }
        dirs.into_iter()
            .map(|d| d.join(self.name()))
            .find(|p| p.is_file())
    }

    /// Whether the tool can be used. Missing: a failure under `CI`, else a printed note.
    ///
    /// # Panics
    /// Under `CI`, when the tool is missing.
    pub fn available(self) -> bool {
        if self.path().is_some() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is required under CI and is missing (see .ci/run)",
            self.name()
        );
        eprintln!(
            "note: {} is not installed: its checks are skipped",
            self.name()
        );
        false
    }

    fn command(self) -> Command {
        Command::new(self.path().unwrap_or_else(|| PathBuf::from(self.name())))
    }
}

/// One signature as `pdfsig` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfsigSignature {
    /// "Signature is Valid."
    pub valid: bool,
    /// "Total document signed".
    pub total_document: bool,
}

/// The signatures `pdfsig` finds (empty if it finds none). `Err` when it cannot read the
/// file at all.
pub fn pdfsig(pdf: &Path) -> Result<Vec<PdfsigSignature>, String> {
    let out = run(Tool::Pdfsig.command().arg(pdf));
    if out.stdout.contains("does not contain any signatures") {
        return Ok(Vec::new());
    }
    if !out.stdout.contains("Signature #") {
        return Err(format!(
            "pdfsig could not read {}:\n{}",
            pdf.display(),
            out.all()
        ));
    }
    Ok(out
        .stdout
        .split("Signature #")
        .skip(1)
        // Empty signature fields are listed too: "The signature form field is not signed."
        .filter(|section| !section.contains("is not signed"))
        .map(|section| PdfsigSignature {
            valid: section.contains("Signature Validation: Signature is Valid."),
            total_document: section.contains("Total document signed"),
        })
        .collect())
}

/// A signature as found in the file's bytes: its `/ByteRange` and the DER in the gap.
#[derive(Debug, Clone)]
pub struct RawSignature {
    /// The four `/ByteRange` numbers.
    pub byte_range: [usize; 4],
    /// The `/Contents` DER, without the zero padding.
    pub der: Vec<u8>,
}

impl RawSignature {
    /// The signed bytes.
    pub fn content(&self, pdf: &[u8]) -> Vec<u8> {
        let [a, b, c, d] = self.byte_range;
        [&pdf[a..a + b], &pdf[c..c + d]].concat()
    }
}

/// Every `/ByteRange [a b c d]` in the file (in file order), with the DER its gap holds.
pub fn raw_signatures(pdf: &[u8]) -> Vec<RawSignature> {
    let needle = b"/ByteRange";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = pdf[at..].windows(needle.len()).position(|w| w == needle) {
        let start = at + found + needle.len();
        at = start;
        let Some(close) = pdf[start..].iter().position(|&b| b == b']') else {
            break;
        };
        let text = String::from_utf8_lossy(&pdf[start..start + close]);
        let numbers: Vec<usize> = text
            .trim()
            .trim_start_matches('[')
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [a, b, c, d] = numbers[..] else { continue };
        if a + b >= c || c + d > pdf.len() || pdf[a + b] != b'<' || pdf[c - 1] != b'>' {
            continue;
        }
        let hex = &pdf[a + b + 1..c - 1];
        let Some(mut der) = decode_hex(hex) else {
            continue;
        };
        if let Some(len) = der_len(&der) {
            der.truncate(len);
        }
        out.push(RawSignature {
            byte_range: [a, b, c, d],
            der,
        });
    }
    out
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(*pair.get(1)?)?))
        .collect()
}

fn der_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    let len = der
        .get(2..2 + count)?
        .iter()
        .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    Some(2 + count + len)
}

/// `qpdf --check`.
pub fn qpdf_check(pdf: &Path) -> Result<(), String> {
    let out = run(Tool::Qpdf.command().arg("--check").arg(pdf));
    if out.code == 0 && out.stdout.contains("No syntax or stream encoding errors") {
        Ok(())
    } else {
        Err(format!("qpdf --check {}:\n{}", pdf.display(), out.all()))
    }
}

/// `openssl cms -verify -binary -inform DER -content <ByteRange bytes> -CAfile root
/// -purpose any` on every signature of the file.
pub fn openssl_verify(pdf: &Path, root: &Path, scratch: &Path) -> Result<(), String> {
    let bytes = std::fs::read(pdf).map_err(|e| e.to_string())?;
    let signatures = raw_signatures(&bytes);
    if signatures.is_empty() {
        return Err(format!(
            "{}: no signature found in the bytes",
            pdf.display()
        ));
    }
    let stem = pdf
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (i, signature) in signatures.iter().enumerate() {
        let der = scratch.join(format!("{stem}.{i}.p7s"));
        let content = scratch.join(format!("{stem}.{i}.content"));
        std::fs::write(&der, &signature.der).map_err(|e| e.to_string())?;
        std::fs::write(&content, signature.content(&bytes)).map_err(|e| e.to_string())?;
        let out = run(Tool::Openssl
            .command()
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
                "-in",
            ])
            .arg(&der)
            .arg("-content")
            .arg(&content)
            .arg("-CAfile")
            .arg(root));
        let _ = std::fs::remove_file(&der);
        let _ = std::fs::remove_file(&content);
        if out.code != 0 || !out.stderr.contains("Verification successful") {
            return Err(format!(
                "openssl cms -verify, signature {i} of {}:\n{}",
                pdf.display(),
                out.all()
            ));
        }
    }
    Ok(())
}

/// `pyhanko sign validate --no-revocation-check --trust ROOT --trust-replace
/// --other-certs INT FILE`: the last signature must be INTACT and TRUSTED.
pub fn pyhanko_validate(pdf: &Path, pki: &PkiFiles) -> Result<(), String> {
    let out = run(Tool::Pyhanko
        .command()
        .args(["sign", "validate", "--no-revocation-check", "--trust"])
        .arg(&pki.root)
        .arg("--trust-replace")
        .arg("--other-certs")
        .arg(&pki.intermediate)
        .arg(pdf));
    if out.code == 0
        && out.stdout.contains("INTACT")
        && out.stdout.contains("TRUSTED")
        && !out.stdout.contains("UNTRUSTED")
    {
        Ok(())
    } else {
        Err(format!(
            "pyhanko sign validate {}:\n{}",
            pdf.display(),
            out.all()
        ))
    }
}

/// Judges a signed PDF by every fast validator that is installed: `pdfsig` (every
/// signature valid, the last covering the whole document), `qpdf --check`, and
/// `openssl cms -verify` of each signature against `pki.root`; with `pyhanko`, pyHanko
/// too.
///
/// # Panics
/// With every validator's complaint, if any complains.
pub fn judge(pdf: &Path, pki: &PkiFiles, scratch: &Path, pyhanko: bool) {
    let mut problems = Vec::new();
    if Tool::Pdfsig.available() {
        match pdfsig(pdf) {
            Ok(signatures) if signatures.is_empty() => {
                problems.push("pdfsig finds no signature".to_owned())
            }
            Ok(signatures) => {
                if !signatures.iter().all(|s| s.valid) {
                    problems.push(format!(
                        "pdfsig: not every signature is valid: {signatures:?}"
                    ));
                }
                if !signatures.last().is_some_and(|s| s.total_document) {
                    problems.push(
                        "pdfsig: the last signature does not cover the total document".to_owned(),
                    );
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if Tool::Qpdf.available()
        && let Err(e) = qpdf_check(pdf)
    {
        problems.push(e);
    }
    if Tool::Openssl.available()
        && let Err(e) = openssl_verify(pdf, &pki.root, scratch)
    {
        problems.push(e);
    }
    if pyhanko
        && Tool::Pyhanko.available()
        && let Err(e) = pyhanko_validate(pdf, pki)
    {
        problems.push(e);
    }
    assert!(
        problems.is_empty(),
        "{}: {}",
        pdf.display(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_byte_ranges_and_der() {
        // A /ByteRange whose gap is not a hex string is skipped.
        assert!(
            raw_signatures(b"%PDF-1.7 /ByteRange [0 10 20 5] xx<3003020101000000>yyyyy").is_empty()
        );
        // The gap [30, 40) is exactly `<30030201>`; the DER is cut at its own length.
        let mut file = b"%PDF /ByteRange [0 30 40 2] ".to_vec();
        file.resize(30, b' ');
        file.extend_from_slice(b"<30020201>");
        file.extend_from_slice(b"ab");
        let found = raw_signatures(&file);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].byte_range, [0, 30, 40, 2]);
        assert_eq!(found[0].der, [0x30, 0x02, 0x02, 0x01]);
        assert_eq!(found[0].content(&file).len(), 32);
        assert_eq!(der_len(&[0x30, 0x82, 0x01, 0x00]), Some(260));
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
