//! The seam: the key trait the builder signs through.

use crate::{KeyAlgorithm, KeyError, SignatureAlgorithm};

/// What the builder asks a key to sign.
///
/// Both the message and its digest are given, so that a key can use whichever its
/// mechanism needs: a PKCS#11 token hashes locally and signs `digest` with `CKM_RSA_PKCS`
/// (over [`DigestAlgorithm::digest_info_prefix`](crate::DigestAlgorithm::digest_info_prefix)
/// `|| digest`), `CKM_RSA_PKCS_PSS` or `CKM_ECDSA`, while a key restricted to
/// hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`, ...) signs `message`.
#[derive(Clone, Copy, Debug)]
pub struct SignRequest<'a> {
    /// The bytes to sign: the DER `SET OF` signed attributes (RFC 5652 section 5.4).
    pub message: &'a [u8],
    /// `message` hashed with `algorithm.digest`.
    pub digest: &'a [u8],
    /// The signature to make. For RSASSA-PSS: MGF1 with the same hash, salt as long as
    /// the hash.
    pub algorithm: SignatureAlgorithm,
}

/// A private key that signs for the builder: a PKCS#11 key, a software key, a remote
/// signer.
///
/// The trait is object-safe and the builder holds an `Arc<dyn CmsSigner>`; implementations are
/// `Send + Sync` so that one key serves many threads.
///
/// ```
/// use cms_sign::{CmsSigner, EcCurve, KeyAlgorithm, KeyError, SignRequest};
///
/// /// A key living elsewhere (sketch): returns what the remote service returns.
/// struct Remote {
///     certificate: Vec<u8>,
/// }
///
/// impl CmsSigner for Remote {
///     fn key_algorithm(&self) -> KeyAlgorithm {
///         KeyAlgorithm::Ec(EcCurve::P256)
///     }
///     fn certificate(&self) -> &[u8] {
///         &self.certificate
///     }
///     fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
///         Err(format!("not connected ({} bytes to sign)", request.digest.len()).into())
///     }
/// }
/// # let _: &dyn CmsSigner = &Remote { certificate: Vec::new() };
/// ```
pub trait CmsSigner: Send + Sync {
    /// The kind of key: RSA with its modulus length, or EC with its curve. It must match
    /// the certificate's public key.
    fn key_algorithm(&self) -> KeyAlgorithm;

    /// The signer's certificate, DER.
    fn certificate(&self) -> &[u8];

    /// The certificates above the signer's, DER, nearest first (intermediates, optionally
    /// the root). They go into the `SignedData` with the signer's. None by default.
    fn chain(&self) -> &[Vec<u8>] {
        &[]
    }

    /// Whether the key allows `algorithm` (e.g. from `CKA_ALLOWED_MECHANISMS`). The
    /// builder asks before signing and refuses with a typed error. All by default.
    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        let _ = algorithm;
        true
    }

    /// Signs. Returns for RSA the signature of the modulus' length; for ECDSA the raw
    /// `r || s` (each half the curve's scalar length, as `CKM_ECDSA` returns it) or a DER
    /// `Ecdsa-Sig-Value`.
    ///
    /// # Errors
    ///
    /// Whatever the key reports; the builder wraps it in [`Error::Key`](crate::Error::Key).
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError>;
}
