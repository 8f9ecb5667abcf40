//! Incremental-update PDF signature writer that keeps every earlier byte and signature.
//!
//! `pdf-sig` appends a signature to a PDF as an incremental update: the output is the
//! input, byte for byte, followed by the new and rewritten objects (signature
//! dictionary, signature field merged with its widget, the page's `/Annots`, the
//! AcroForm), a cross-reference section of the same kind as the input's newest, and a
//! trailer with `/Prev`. Earlier signatures stay valid, since the bytes they cover are
//! untouched.
//!
//! It knows nothing of CMS or PKCS#11: a [`SignatureContainer`] turns the digest of the
//! signed byte ranges into DER bytes (a CMS `SignedData`, built elsewhere).
//!
//! - [`sign`] signs in one call; [`prepare`] and [`PreparedFile::finish`] do it in two
//!   phases, so that a remote signer or a queue can sit between them;
//!   [`PreparedFile::embed`] and [`PendingFile::commit`] split the last step, so that
//!   the fsync can happen on another thread while the next file is signed;
//!   [`prepare_bytes`] does the same for a PDF in memory (the signed PDF is built once,
//!   at its exact size, when the container is there), and [`prepare_stream`] over any
//!   `Read + Seek` input and `Write + Seek` output.
//! - [`SignOptions`] (built with [`SignOptionsBuilder`]) says what the signature looks
//!   like: `/SubFilter`, time, name, reason, field, visible rectangle.
//! - [`reader::Document`] is the lazy reader underneath: it reads the cross-reference
//!   chain and then only the objects asked for, by offset, so memory follows the
//!   objects touched, not the file size.
//!
//! ```
//! use pdf_sig::{ContainerSpec, DigestAlgorithm, SignOptions, prepare_bytes};
//!
//! let input = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pdf/lopdf-table.pdf"));
//! let options = SignOptions::builder().reason("Approved").build()?;
//! let spec = ContainerSpec::new(DigestAlgorithm::Sha256, 8192);
//! let prepared = prepare_bytes(input, &options, spec)?;
//! assert_eq!(prepared.digest().len(), 32);
//! // A real container is a CMS SignedData over `prepared.digest()`.
//! let (output, report) = prepared.finish(&[0x30, 0x03, 0x02, 0x01, 0x01])?;
//! assert!(output.starts_with(input));
//! assert_eq!(report.field_name, "Signature1");
//! assert_eq!(report.byte_range.ranges()[1].end, output.len() as u64);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it does not do: encrypted documents are refused ([`Error::Encrypted`]), broken
//! cross-reference data is reported rather than reconstructed, and visible appearances
//! use Helvetica with WinAnsiEncoding only (other characters show as `?`, with a
//! [`Warning`]).
//!
//! Guarded against hostile input, with the limits of [`limits`]: nesting, stream sizes
//! and cross-reference entries are bounded, every offset and length is checked against
//! the file size, loops in `/Prev` chains, references and page trees are errors, and no
//! input makes it panic. A document certified with DocMDP `/P 1` is refused
//! ([`Error::CertifiedNoChanges`]), and a field locked by an earlier signature's
//! `/Lock` is never filled.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dict;
mod error;
mod increment;
mod layout;
pub mod limits;
mod options;
pub mod reader;
mod sign;
mod syntax;
mod text;

pub use error::{Error, ObjectId, Result};
pub use layout::ByteRange;
pub use options::{Rect, SignOptions, SignOptionsBuilder, SubFilter};
pub use sign::{
    PendingFile, PreparedBytes, PreparedFile, PreparedSignature, PreparedStream, SignReport,
    digest_byte_range, prepare, prepare_bytes, prepare_stream, sign,
};

/// The digest algorithm over the signed byte ranges. It must be the one the
/// signature container puts in its `digestAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256 (FIPS 180-4), 32 bytes.
    Sha256,
    /// SHA-384 (FIPS 180-4), 48 bytes.
    Sha384,
    /// SHA-512 (FIPS 180-4), 64 bytes.
    Sha512,
}

impl DigestAlgorithm {
    /// The digest's length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }
}

/// Something that turns a digest into a DER signature container (a CMS `SignedData`
/// for `/SubFilter` `ETSI.CAdES.detached` or `adbe.pkcs7.detached`).
///
/// `pdf-sig` sizes the `/Contents` placeholder from [`SignatureContainer::max_len`]
/// before it hashes, then hands the digest to [`SignatureContainer::sign_digest`].
pub trait SignatureContainer: Send + Sync {
    /// The digest algorithm the container signs over.
    fn digest_algorithm(&self) -> DigestAlgorithm;

    /// An upper bound of the DER container's length in bytes.
    fn max_len(&self) -> usize;

    /// Produces the DER container for `digest`, the digest of the signed byte ranges.
    ///
    /// # Errors
    ///
    /// Whatever stops the container from being made (a token error, a remote signer
    /// that is down, ...); [`sign`] wraps it in [`Error::Container`].
    fn sign_digest(
        &self,
        digest: &[u8],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

/// What the `/Contents` placeholder is sized for: the digest algorithm and the
/// container's upper bound, for the two-phase [`prepare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerSpec {
    digest_algorithm: DigestAlgorithm,
    max_len: usize,
}

impl ContainerSpec {
    /// A container of at most `max_len` DER bytes over a `digest_algorithm` digest.
    pub fn new(digest_algorithm: DigestAlgorithm, max_len: usize) -> Self {
        ContainerSpec {
            digest_algorithm,
            max_len,
        }
    }

    /// What `container` says of itself.
    pub fn of(container: &dyn SignatureContainer) -> Self {
        ContainerSpec::new(container.digest_algorithm(), container.max_len())
    }

    /// The digest algorithm.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    /// The container's upper bound in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// Something the caller should know about a signature that was made all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The visible appearance could not show some characters of a text (the standard
    /// fonts show WinAnsiEncoding only); they became `?`. The signature dictionary keeps
    /// the full text.
    CharactersReplaced {
        /// Which text: "name", "reason", "location" or "date".
        what: &'static str,
        /// How many characters were replaced.
        count: usize,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::CharactersReplaced { what, count } => write!(
                f,
                "the visible signature shows {count} character(s) of the {what} as '?': the standard fonts show WinAnsiEncoding only"
            ),
        }
    }
}
