//! CMS `SignedData` (RFC 5652) for PAdES baseline signatures, signed through a key trait.
//!
//! A PDF signature's `/Contents` is a detached CMS `SignedData`. This crate builds exactly
//! the profile that PAdES baseline B-B validators expect, for RSA (PKCS#1 v1.5 and PSS)
//! and ECDSA (P-256, P-384, P-521) keys with SHA-256, -384 and -512, and reads such
//! signatures back and verifies them. It knows nothing of PDF or PKCS#11: it asks a key
//! for a signature through the [`CmsSigner`] trait.
//!
//! - [`SignedDataBuilder`]: made once for a key, an algorithm and a [`SubFilter`], and
//!   kept: its [`size_bound`](SignedDataBuilder::size_bound) sizes the PDF placeholder
//!   before signing, and [`sign`](SignedDataBuilder::sign) (or
//!   [`sign_at`](SignedDataBuilder::sign_at), for a signing time per signature) turns a
//!   content digest into DER.
//! - [`CmsSigner`] and [`SignRequest`]: the seam. The key receives the signed attributes
//!   and their digest, and returns an RSA signature or ECDSA's raw `r || s`.
//! - [`SignedCms`]: parses a `SignedData` back, reports its algorithms, certificates and
//!   [`SignedAttributes`], and [`verify`](SignedCms::verify)s it.
//! - [`add_timestamp_token`]: adds a RFC 3161 token as an unsigned attribute (PAdES B-T).
//! - [`PublicKey`]: an RSA or EC key read from a `SubjectPublicKeyInfo`, which verifies a
//!   signature of the profile's algorithms over a message or its digest, e.g. an issuer's
//!   signature over a certificate.
//!
//! ```text
//! content digest ──► signed attributes (DER SET) ──► key signs ──► SignerInfo ──► ContentInfo DER
//!                    content-type, message-digest,     (CmsSigner)
//!                    signing-certificate-v2
//! ```
//!
//! It does not validate certificate paths, check revocation, or verify time-stamp tokens.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use cms_sign::{
//!     CmsSigner, DigestAlgorithm, EcCurve, KeyAlgorithm, KeyError, SignRequest,
//!     SignatureAlgorithm, SignatureScheme, SignedCms, SignedDataBuilder, SubFilter,
//! };
//! use test_pki::{KeyKind, Pki, SoftwareKey};
//!
//! /// A software P-384 key from the test fixtures, signing like a token's `CKM_ECDSA`.
//! struct Fixture {
//!     key: &'static SoftwareKey,
//!     chain: Vec<Vec<u8>>,
//! }
//!
//! impl CmsSigner for Fixture {
//!     fn key_algorithm(&self) -> KeyAlgorithm {
//!         KeyAlgorithm::Ec(EcCurve::P384)
//!     }
//!     fn certificate(&self) -> &[u8] {
//!         self.key.cert_der()
//!     }
//!     fn chain(&self) -> &[Vec<u8>] {
//!         &self.chain
//!     }
//!     fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
//!         Ok(self.key.sign_ecdsa(request.digest)?)
//!     }
//! }
//!
//! let key = Fixture {
//!     key: SoftwareKey::fixture(KeyKind::P384),
//!     chain: vec![Pki::fixture().intermediate_der().to_vec()],
//! };
//! let algorithm = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha384);
//! let builder = SignedDataBuilder::new(Arc::new(key), algorithm, SubFilter::CadesDetached)?;
//!
//! let content = b"the bytes of the PDF's /ByteRange";
//! let bound = builder.size_bound()?;
//! let der = builder.sign(&DigestAlgorithm::Sha384.digest(content))?;
//! assert!(der.len() <= bound);
//!
//! let parsed = SignedCms::from_der(&der)?;
//! assert_eq!(parsed.signature_algorithm(), algorithm);
//! assert_eq!(parsed.signed_attributes().signing_time, None);
//! parsed.verify(content)?;
//! assert!(parsed.verify(b"other bytes").is_err());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod algorithm;
mod attributes;
mod builder;
mod ecdsa;
mod error;
mod key;
mod oid;
mod parse;
mod public_key;

pub use crate::algorithm::{
    DigestAlgorithm, EcCurve, KeyAlgorithm, SignatureAlgorithm, SignatureScheme,
};
pub use crate::attributes::{SignedAttributes, SigningCertificate};
pub use crate::builder::{SignedDataBuilder, SubFilter};
pub use crate::error::{Error, KeyError};
pub use crate::key::{CmsSigner, SignRequest};
pub use crate::parse::{SignedCms, add_timestamp_token};
pub use crate::public_key::PublicKey;

/// The `x509-cert` crate, whose types [`SignedCms`] returns.
pub use x509_cert;
