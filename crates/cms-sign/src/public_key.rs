//! Public keys read from a `SubjectPublicKeyInfo`, and signature verification with them.

use std::fmt;

use der::Encode;
use p256::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;

use crate::{DigestAlgorithm, EcCurve, Error, KeyAlgorithm, SignatureAlgorithm, SignatureScheme};
use crate::{ecdsa, oid};

/// A public key that verifies the profile's signatures: an RSA key, or an EC key on P-256,
/// P-384 or P-521.
///
/// [`SignedCms::verify`](crate::SignedCms::verify) uses one for the signer's certificate;
/// it serves as well for any other signature made with the profile's algorithms, such as an
/// issuer's signature over a certificate. It checks signatures only: it says nothing about
/// whom the key belongs to.
///
/// Signature values are what X.509 and CMS carry: for RSA the signature octets (PKCS#1
/// v1.5, or PSS with MGF1 over the signature's hash and a salt as long as the hash), for
/// ECDSA a DER `Ecdsa-Sig-Value`.
///
/// # Example
///
/// The fixture root CA's key verifies its signature over the intermediate CA's
/// certificate, and an RSA key verifies a PSS signature over a digest:
///
/// ```
/// use cms_sign::x509_cert::Certificate;
/// use cms_sign::x509_cert::der::{Decode, Encode};
/// use cms_sign::{
///     DigestAlgorithm, EcCurve, KeyAlgorithm, PublicKey, SignatureAlgorithm, SignatureScheme,
/// };
/// use test_pki::{KeyKind, Pki, SoftwareKey};
///
/// let pki = Pki::fixture();
/// let root = Certificate::from_der(pki.root_der())?;
/// let intermediate = Certificate::from_der(pki.intermediate_der())?;
///
/// let key = PublicKey::from_spki(root.tbs_certificate().subject_public_key_info())?;
/// assert_eq!(key.algorithm(), KeyAlgorithm::Ec(EcCurve::P256));
/// // ecdsa-with-SHA256 over the DER tbsCertificate.
/// let algorithm = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256);
/// let tbs = intermediate.tbs_certificate().to_der()?;
/// let signature = intermediate.signature().as_bytes().ok_or("not whole bytes")?;
/// key.verify(algorithm, &tbs, signature)?;
/// assert!(key.verify(algorithm, b"other bytes", signature).is_err());
///
/// let rsa = SoftwareKey::fixture(KeyKind::Rsa2048);
/// let key = PublicKey::from_spki(&Decode::from_der(rsa.spki_der())?)?;
/// let algorithm = SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha384);
/// let digest = DigestAlgorithm::Sha384.digest(b"a message");
/// key.verify_digest(algorithm, &digest, &rsa.sign_pss(&digest)?)?;
/// // A PSS signature is not a PKCS#1 v1.5 one.
/// let pkcs1 = SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha384);
/// assert!(key.verify_digest(pkcs1, &digest, &rsa.sign_pss(&digest)?).is_err());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PublicKey {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Rsa(Box<rsa::PublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an RSA (`rsaEncryption`) or EC (`id-ecPublicKey` on P-256, P-384, P-521)
    /// public key, such as a certificate's `subjectPublicKeyInfo`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedPublicKey`] for another key algorithm or curve (the error
    /// carries its object identifier), [`Error::InvalidPublicKey`] for a key that does not
    /// decode (or an EC key without a named curve), [`Error::Encode`] if the
    /// `SubjectPublicKeyInfo` cannot be re-encoded.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, Error> {
        let der = spki.to_der().map_err(Error::Encode)?;
        let inner = match spki.algorithm.oid {
            oid::RSA_ENCRYPTION => rsa::PublicKey::from_public_key_der(&der)
                .map(|k| Inner::Rsa(Box::new(k)))
                .map_err(|_| Error::InvalidPublicKey)?,
            oid::EC_PUBLIC_KEY => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                    .ok_or(Error::InvalidPublicKey)?;
                let curve = EcCurve::from_oid(curve_oid)
                    .ok_or(Error::UnsupportedPublicKey { oid: curve_oid })?;
                let invalid = |_| Error::InvalidPublicKey;
                match curve {
                    EcCurve::P256 => Inner::P256(
                        p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                    EcCurve::P384 => Inner::P384(
                        p384::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                    EcCurve::P521 => Inner::P521(
                        p521::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                }
            }
            other => return Err(Error::UnsupportedPublicKey { oid: other }),
        };
        Ok(PublicKey { inner })
    }

    /// What kind of key this is: RSA with its modulus length, or EC on its curve.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match &self.inner {
            Inner::Rsa(k) => KeyAlgorithm::Rsa {
                modulus_bits: k.n().bit_width(),
            },
            Inner::P256(_) => KeyAlgorithm::Ec(EcCurve::P256),
            Inner::P384(_) => KeyAlgorithm::Ec(EcCurve::P384),
            Inner::P521(_) => KeyAlgorithm::Ec(EcCurve::P521),
        }
    }

    /// Verifies `signature` (RSA: the signature octets; ECDSA: a DER `Ecdsa-Sig-Value`)
    /// over `message`, which it hashes with `algorithm.digest`.
    ///
    /// # Errors
    ///
    /// As [`PublicKey::verify_digest`], but never [`Error::DigestLength`].
    pub fn verify(
        &self,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        self.verify_digest(algorithm, &algorithm.digest.digest(message), signature)
    }

    /// Verifies `signature` (RSA: the signature octets; ECDSA: a DER `Ecdsa-Sig-Value`)
    /// over a message whose `algorithm.digest` hash is `digest`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedCombination`] if the scheme does not fit the key (ECDSA with an
    /// RSA key, an RSA scheme with an EC key, a modulus too short for the digest),
    /// [`Error::DigestLength`] if `digest` is not as long as `algorithm.digest`'s output,
    /// [`Error::MalformedEcdsaSignature`] for an ECDSA signature that is not a DER
    /// `Ecdsa-Sig-Value` for the curve, [`Error::SignatureInvalid`] if the signature does
    /// not verify.
    pub fn verify_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        algorithm.check_key(self.algorithm())?;
        let expected = algorithm.digest.output_len();
        if digest.len() != expected {
            return Err(Error::DigestLength {
                algorithm: algorithm.digest,
                expected,
                actual: digest.len(),
            });
        }
        fn invalid<E>(_: E) -> Error {
            Error::SignatureInvalid
        }
        match (&self.inner, algorithm.scheme) {
            (Inner::Rsa(k), SignatureScheme::RsaPkcs1v15) => match algorithm.digest {
                DigestAlgorithm::Sha256 => k.pkcs1v15_verify_prehash::<Sha256>(digest, signature),
                DigestAlgorithm::Sha384 => k.pkcs1v15_verify_prehash::<Sha384>(digest, signature),
                DigestAlgorithm::Sha512 => k.pkcs1v15_verify_prehash::<Sha512>(digest, signature),
            }
            .map_err(invalid),
            (Inner::Rsa(k), SignatureScheme::RsaPss) => match algorithm.digest {
                DigestAlgorithm::Sha256 => k.pss_verify_prehash::<Sha256>(digest, signature),
                DigestAlgorithm::Sha384 => k.pss_verify_prehash::<Sha384>(digest, signature),
                DigestAlgorithm::Sha512 => k.pss_verify_prehash::<Sha512>(digest, signature),
            }
            .map_err(invalid),
            (Inner::P256(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P256, signature)?;
                let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(digest, &sig).map_err(invalid)
            }
            (Inner::P384(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P384, signature)?;
                let sig = p384::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(digest, &sig).map_err(invalid)
            }
            (Inner::P521(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P521, signature)?;
                let sig = p521::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(digest, &sig).map_err(invalid)
            }
            // `check_key` above refused every other pairing.
            _ => Err(Error::UnsupportedCombination {
                key: self.algorithm(),
                algorithm,
                reason: "the scheme does not fit the key",
            }),
        }
    }
}

impl fmt::Debug for PublicKey {
    /// The kind of key, e.g. `PublicKey(RSA-2048)`, without the key's numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.algorithm())
    }
}
