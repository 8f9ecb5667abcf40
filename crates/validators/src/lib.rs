//! The independent validators that judge signed PDFs in the workspace's tests (not
//! published): poppler's `pdfsig`, `qpdf --check`, `openssl cms -verify` over the
//! `/ByteRange` bytes, and pyHanko's validator.
//!
//! They are external programs run over files, so this crate depends on none of ours: it
//! reads the signatures' `/ByteRange` and DER from the file's bytes itself
//! ([`signatures`], [`raw_signatures`]). Each validator has a function that runs it and
//! returns its verdict ([`pdfsig`], [`qpdf_check`], [`openssl_verify`],
//! [`pyhanko_validate`]); a [`Judge`] runs them all and names every complaint at once.
//!
//! A validator that is not installed fails the test when the environment sets `CI`
//! ([`required`]), and is skipped with a printed note otherwise. `.ci/run` installs them
//! all; pyHanko lives in the workspace's `target/venv/bin` (or anywhere on `PATH`).
//!
//! ```no_run
//! use std::path::Path;
//!
//! use pdf_validators::{Judge, PyHanko, Tool, pdfsig};
//!
//! let judge = Judge {
//!     // The trust anchors (one PEM file, several certificates allowed) and the
//!     // intermediate certificate the signatures' chains need.
//!     roots: Path::new("pki/root.pem"),
//!     intermediate: Path::new("pki/intermediate.pem"),
//!     // Where openssl's inputs are written (and removed again).
//!     scratch: Path::new("target/scratch"),
//!     // Exactly one signature, the last covering the whole file.
//!     signatures: Some(1),
//!     pyhanko: PyHanko::Strict,
//! };
//! judge.assert_valid(Path::new("signed.pdf"));
//!
//! // One validator alone, for a file that must fail.
//! if Tool::Pdfsig.available() {
//!     assert!(!pdfsig(Path::new("tampered.pdf")).unwrap()[0].valid);
//! }
//! ```

#![forbid(unsafe_code)]

use std::fmt::Debug;
use std::path::Path;

mod byte_range;
mod tool;

pub use byte_range::{RawSignature, raw_signatures, signatures};
pub use tool::{Tool, required};

use tool::run;

/// One signature as `pdfsig` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfsigSignature {
    /// "Signature is Valid."
    pub valid: bool,
    /// "Total document signed".
    pub total_document: bool,
}

/// The signatures `pdfsig` finds (empty if it finds none; empty signature fields are not
/// counted). `Err` when it cannot read the file at all.
///
/// # Panics
/// If `pdfsig` cannot be started.
pub fn pdfsig(pdf: &Path) -> Result<Vec<PdfsigSignature>, String> {
    let out = run(Tool::Pdfsig.command().arg(pdf));
    if out.stdout.contains("does not contain any signatures") {
        return Ok(Vec::new());
    }
    if !out.stdout.contains("Signature #") {
        return Err(format!(
            "pdfsig could not read {}:\n{}",
            pdf.display(),
            out.all
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

/// `qpdf --check`: it must succeed and find "No syntax or stream encoding errors".
///
/// # Panics
/// If `qpdf` cannot be started.
pub fn qpdf_check(pdf: &Path) -> Result<(), String> {
    let out = run(Tool::Qpdf.command().arg("--check").arg(pdf));
    if out.success && out.stdout.contains("No syntax or stream encoding errors") {
        Ok(())
    } else {
        Err(format!("qpdf --check {}:\n{}", pdf.display(), out.all))
    }
}

/// `openssl cms -verify -binary -inform DER -content <ByteRange bytes> -CAfile roots
/// -purpose any` on every signature of the file (as [`raw_signatures`] finds them): each
/// must succeed and say "Verification successful". The DER and the signed bytes are
/// written into `scratch` (named after the file) and removed again.
///
/// # Panics
/// If `openssl` cannot be started.
pub fn openssl_verify(pdf: &Path, roots: &Path, scratch: &Path) -> Result<(), String> {
    let bytes = std::fs::read(pdf).map_err(|e| format!("reading {}: {e}", pdf.display()))?;
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
        std::fs::write(&content, signature.signed_bytes(&bytes)).map_err(|e| e.to_string())?;
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
            .arg(roots));
        let _ = std::fs::remove_file(&der);
        let _ = std::fs::remove_file(&content);
        if !out.success || !out.stderr.contains("Verification successful") {
            return Err(format!(
                "openssl cms -verify, signature {i} of {}:\n{}",
                pdf.display(),
                out.all
            ));
        }
    }
    Ok(())
}

/// `pyhanko sign validate --no-revocation-check [--no-strict-syntax] --trust ROOTS
/// --trust-replace --other-certs INTERMEDIATE FILE`: it must succeed, and every
/// signature's status line must say `INTACT:TRUSTED` (none `UNTRUSTED`). Returns the
/// status lines, one a signature.
///
/// `strict_syntax: false` adds `--no-strict-syntax`: pyHanko refuses hybrid-reference
/// files without it.
///
/// # Panics
/// If `pyhanko` cannot be started.
pub fn pyhanko_validate(
    pdf: &Path,
    roots: &Path,
    intermediate: &Path,
    strict_syntax: bool,
) -> Result<Vec<String>, String> {
    let out = run(Tool::Pyhanko
        .command()
        .args(["sign", "validate", "--no-revocation-check"])
        .args(if strict_syntax {
            &[][..]
        } else {
            &["--no-strict-syntax"][..]
        })
        .arg("--trust")
        .arg(roots)
        .arg("--trust-replace")
        .arg("--other-certs")
        .arg(intermediate)
        .arg(pdf));
    let lines: Vec<String> = out
        .stdout
        .lines()
        .filter(|line| line.contains(':'))
        .map(str::to_owned)
        .collect();
    if out.success
        && !lines.is_empty()
        && lines.iter().all(|line| line.contains(":INTACT:TRUSTED,"))
        && !out.stdout.contains("UNTRUSTED")
    {
        Ok(lines)
    } else {
        Err(format!(
            "pyhanko sign validate {}:\n{}",
            pdf.display(),
            out.all
        ))
    }
}

/// Whether and how pyHanko (about 0.8 s a call) judges a file too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyHanko {
    /// Not asked.
    Skip,
    /// Asked with its default, strict syntax.
    Strict,
    /// `--no-strict-syntax`: pyHanko refuses hybrid-reference files without it.
    Lenient,
}

/// Judges a signed PDF by every validator that is installed (and every one under `CI`).
///
/// Each finds no fault: `pdfsig` (every signature valid, the last covering the total
/// document), `qpdf --check`, `openssl cms -verify` of each signature against `roots`,
/// and pyHanko unless [`PyHanko::Skip`]. With `signatures: Some(n)` the file holds
/// exactly `n`: every `/ByteRange` in its bytes is a well-formed signature
/// ([`signatures`]), the last covers the whole file, and `pdfsig` and pyHanko count `n`.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// The trust anchors: a PEM file, which may hold several certificates.
    pub roots: &'a Path,
    /// The intermediate certificate(s) the chains need, as PEM (for pyHanko).
    pub intermediate: &'a Path,
    /// An existing directory for openssl's input files (removed after each run).
    pub scratch: &'a Path,
    /// How many signatures the file holds, when the test knows.
    pub signatures: Option<usize>,
    /// Whether and how pyHanko judges too.
    pub pyhanko: PyHanko,
}

impl Judge<'_> {
    /// Every complaint about `pdf`, each naming the validator; empty when all agree.
    ///
    /// # Panics
    /// Under `CI`, when a validator is missing; if one cannot be started.
    pub fn problems(&self, pdf: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(expected) = self.signatures {
            problems.extend(byte_problems(pdf, expected));
        }
        if Tool::Pdfsig.available() {
            match pdfsig(pdf) {
                Ok(found) if found.is_empty() => {
                    problems.push("pdfsig finds no signature".to_owned())
                }
                Ok(found) => {
                    problems.extend(self.miscount("pdfsig", found.len(), &found));
                    if !found.iter().all(|s| s.valid) {
                        problems.push(format!("pdfsig: not every signature is valid: {found:?}"));
                    }
                    if !found.last().is_some_and(|s| s.total_document) {
                        problems.push(
                            "pdfsig: the last signature does not cover the total document"
                                .to_owned(),
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
            && let Err(e) = openssl_verify(pdf, self.roots, self.scratch)
        {
            problems.push(e);
        }
        if self.pyhanko != PyHanko::Skip && Tool::Pyhanko.available() {
            let strict_syntax = self.pyhanko == PyHanko::Strict;
            match pyhanko_validate(pdf, self.roots, self.intermediate, strict_syntax) {
                Ok(lines) => problems.extend(self.miscount("pyhanko", lines.len(), &lines)),
                Err(e) => problems.push(e),
            }
        }
        problems
    }

    /// A complaint when `tool` counts other than the signatures expected.
    fn miscount(&self, tool: &str, count: usize, seen: &dyn Debug) -> Option<String> {
        let expected = self.signatures?;
        (count != expected)
            .then(|| format!("{tool} finds {count} signatures, not {expected}: {seen:?}"))
    }

    /// Judges `pdf`.
    ///
    /// # Panics
    /// With every validator's complaint, if any complains; under `CI`, when a validator
    /// is missing.
    pub fn assert_valid(&self, pdf: &Path) {
        let problems = self.problems(pdf);
        assert!(
            problems.is_empty(),
            "{}: {}",
            pdf.display(),
            problems.join("\n")
        );
    }
}

/// The file's own bytes: `expected` well-formed signatures, the last covering it all.
fn byte_problems(pdf: &Path, expected: usize) -> Vec<String> {
    let bytes = match std::fs::read(pdf) {
        Ok(bytes) => bytes,
        Err(e) => return vec![format!("reading {}: {e}", pdf.display())],
    };
    let found = match byte_range::try_signatures(&bytes) {
        Ok(found) => found,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    if found.len() != expected {
        problems.push(format!(
            "signatures found: {}, expected {expected}",
            found.len()
        ));
    }
    if let Some(last) = found.last()
        && last.end() != bytes.len()
    {
        problems.push(format!(
            "the last signature does not cover the whole file: it ends at {} of {} bytes",
            last.end(),
            bytes.len()
        ));
    }
    problems
}
