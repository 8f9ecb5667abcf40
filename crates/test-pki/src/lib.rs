//! Test-only PKI: the fixture CA chain, leaf certificates and software keys (not published).
//!
//! The workspace's tests need certificates that validators (OpenSSL, pyHanko, poppler)
//! accept, made the same way every run. This crate builds them in Rust, with
//! `x509-cert`'s builder, from the committed keys in `fixtures/keys`:
//!
//! - [`Pki`]: a root CA and an intermediate CA (both P-256, ECDSA with SHA-256), built once
//!   per process ([`Pki::fixture`]); [`Pki::issue_leaf`] issues a signer certificate for any
//!   RSA or EC public key, e.g. one living on a SoftHSM2 token.
//! - [`SoftwareKey`]: one of the leaf keys named by [`KeyKind`], with its certificate, signing
//!   helpers over a prehashed digest and the raw private components for importing it into a
//!   token.
//!
//! Everything is deterministic: fixed serial numbers (a leaf's is derived from its name
//! and key), a fixed validity (2025-01-01 to 2045-01-01) and RFC 6979 ECDSA, so the same
//! inputs give the same bytes.
//!
//! The profile follows DESIGN.md ("Tests"): CAs have `CA:TRUE` (the intermediate with
//! `pathlen:0`) and keyUsage keyCertSign + cRLSign; leaves have `CA:FALSE` and keyUsage
//! digitalSignature + nonRepudiation; basicConstraints and keyUsage are critical; every
//! certificate carries a subject and an authority key identifier.
//!
//! ```
//! use test_pki::{KeyKind, Pki, SoftwareKey};
//!
//! let pki = Pki::fixture();
//! let key = SoftwareKey::fixture(KeyKind::P256);
//! let leaf = pki.issue_leaf("Another signer", key.spki_der());
//! assert_ne!(leaf, key.cert_der());
//! assert_eq!(key.sign_ecdsa(&[7u8; 32])?.len(), 64);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod key;
mod pki;

use std::fmt;
use std::path::PathBuf;

pub use crate::key::{EcComponents, RsaComponents, SoftwareKey};
pub use crate::pki::{PemFiles, Pki};

/// The fixture leaf keys, one per key type the signer supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA, 2048-bit modulus (`fixtures/keys/rsa2048.pem`).
    Rsa2048,
    /// RSA, 3072-bit modulus (`fixtures/keys/rsa3072.pem`).
    Rsa3072,
    /// ECDSA on NIST P-256 (`fixtures/keys/p256.pem`).
    P256,
    /// ECDSA on NIST P-384 (`fixtures/keys/p384.pem`).
    P384,
    /// ECDSA on NIST P-521 (`fixtures/keys/p521.pem`).
    P521,
}

impl KeyKind {
    /// Every key kind, RSA first.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::P256,
        KeyKind::P384,
        KeyKind::P521,
    ];

    /// A short lower-case label, also the fixture's file stem: `"rsa2048"`, `"p256"`, ...
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 => "rsa2048",
            KeyKind::Rsa3072 => "rsa3072",
            KeyKind::P256 => "p256",
            KeyKind::P384 => "p384",
            KeyKind::P521 => "p521",
        }
    }

    /// Whether this is an RSA key (otherwise it is an EC key).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyKind::Rsa2048 | KeyKind::Rsa3072)
    }

    /// RSA modulus size or EC field size in bits.
    pub fn bits(self) -> u32 {
        match self {
            KeyKind::Rsa2048 => 2048,
            KeyKind::Rsa3072 => 3072,
            KeyKind::P256 => 256,
            KeyKind::P384 => 384,
            KeyKind::P521 => 521,
        }
    }

    /// The signature length in bytes: the modulus size for RSA, `2 ×` the field size
    /// for a raw ECDSA `r || s`.
    pub fn signature_len(self) -> usize {
        match self {
            KeyKind::Rsa2048 => 256,
            KeyKind::Rsa3072 => 384,
            KeyKind::P256 => 64,
            KeyKind::P384 => 96,
            KeyKind::P521 => 132,
        }
    }

    /// Path of the key's PKCS#8 PEM file in `fixtures/keys`.
    pub fn key_path(self) -> PathBuf {
        fixtures_dir()
            .join("keys")
            .join(format!("{}.pem", self.label()))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The workspace's `fixtures/` directory (found from this crate's manifest directory, so it
/// works whatever the current directory of the test process).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("fixtures")
}

/// What went wrong in a test-PKI operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A fixture file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A fixture key file is not an unencrypted PKCS#8 `PRIVATE KEY` PEM of its kind.
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// DER encoding or decoding failed (e.g. `issue_leaf` got bytes that are not an SPKI).
    Der(der::Error),
    /// A public key could not be encoded as a `SubjectPublicKeyInfo`.
    Spki(spki::Error),
    /// The certificate builder refused its input.
    Builder(x509_cert::builder::Error),
    /// A signing helper was called on a key of the wrong type (e.g. ECDSA on RSA).
    WrongKeyType {
        /// The key's kind.
        kind: KeyKind,
        /// The operation asked for.
        operation: &'static str,
    },
    /// A prehashed digest is not 32, 48 or 64 bytes long (SHA-256, -384, -512).
    DigestLength(usize),
    /// The RSA operation failed.
    Rsa(rsa::Error),
    /// The ECDSA operation failed.
    Ecdsa(signature::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "reading {}: {source}", path.display()),
            Error::BadKeyFile { path, reason } => {
                write!(f, "{} is not a usable PKCS#8 key: {reason}", path.display())
            }
            Error::Der(e) => write!(f, "DER: {e}"),
            Error::Spki(e) => write!(f, "SubjectPublicKeyInfo: {e}"),
            Error::Builder(e) => write!(f, "certificate builder: {e}"),
            Error::WrongKeyType { kind, operation } => {
                write!(f, "{operation} is not possible with a {kind} key")
            }
            Error::DigestLength(len) => write!(
                f,
                "a {len}-byte digest is none of SHA-256, SHA-384, SHA-512"
            ),
            Error::Rsa(e) => write!(f, "RSA: {e}"),
            Error::Ecdsa(e) => write!(f, "ECDSA: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Der(e) => Some(e),
            Error::Spki(e) => Some(e),
            Error::Builder(e) => Some(e),
            Error::Rsa(e) => Some(e),
            Error::Ecdsa(e) => Some(e),
            Error::BadKeyFile { .. } | Error::WrongKeyType { .. } | Error::DigestLength(_) => None,
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::Der(e)
    }
}

impl From<spki::Error> for Error {
    fn from(e: spki::Error) -> Self {
        Error::Spki(e)
    }
}

impl From<x509_cert::builder::Error> for Error {
    fn from(e: x509_cert::builder::Error) -> Self {
        Error::Builder(e)
    }
}

#[cfg(test)]
mod tests;
