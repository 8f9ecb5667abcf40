//! The signer's public key, read from its certificate, and signature verification.

use der::Encode;
use p256::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;

use crate::{DigestAlgorithm, EcCurve, Error, KeyAlgorithm, SignatureAlgorithm, SignatureScheme};
use crate::{ecdsa, oid};

/// A public key the profile can verify with.
pub(crate) enum PublicKey {
    Rsa(Box<rsa::PublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an RSA (`rsaEncryption`) or EC (`id-ecPublicKey` on P-256, P-384, P-521)
    /// public key.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, Error> {
        let der = spki.to_der().map_err(Error::Encode)?;
        match spki.algorithm.oid {
            oid::RSA_ENCRYPTION => rsa::PublicKey::from_public_key_der(&der)
                .map(|k| PublicKey::Rsa(Box::new(k)))
                .map_err(|_| Error::InvalidPublicKey),
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
                Ok(match curve {
                    EcCurve::P256 => PublicKey::P256(
                        p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                    EcCurve::P384 => PublicKey::P384(
                        p384::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                    EcCurve::P521 => PublicKey::P521(
                        p521::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(invalid)?,
                    ),
                })
            }
            other => Err(Error::UnsupportedPublicKey { oid: other }),
        }
    }

    /// What kind of key this is.
    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Rsa(k) => KeyAlgorithm::Rsa {
                modulus_bits: k.n().bit_width(),
            },
            PublicKey::P256(_) => KeyAlgorithm::Ec(EcCurve::P256),
            PublicKey::P384(_) => KeyAlgorithm::Ec(EcCurve::P384),
            PublicKey::P521(_) => KeyAlgorithm::Ec(EcCurve::P521),
        }
    }

    /// Verifies `signature` (RSA: the raw signature; ECDSA: a DER `Ecdsa-Sig-Value`) over
    /// a message whose `algorithm.digest` hash is `hash`.
    pub(crate) fn verify(
        &self,
        algorithm: SignatureAlgorithm,
        hash: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        algorithm.check_key(self.algorithm())?;
        fn invalid<E>(_: E) -> Error {
            Error::SignatureInvalid
        }
        match (self, algorithm.scheme) {
            (PublicKey::Rsa(k), SignatureScheme::RsaPkcs1v15) => match algorithm.digest {
                DigestAlgorithm::Sha256 => k.pkcs1v15_verify_prehash::<Sha256>(hash, signature),
                DigestAlgorithm::Sha384 => k.pkcs1v15_verify_prehash::<Sha384>(hash, signature),
                DigestAlgorithm::Sha512 => k.pkcs1v15_verify_prehash::<Sha512>(hash, signature),
            }
            .map_err(invalid),
            (PublicKey::Rsa(k), SignatureScheme::RsaPss) => match algorithm.digest {
                DigestAlgorithm::Sha256 => k.pss_verify_prehash::<Sha256>(hash, signature),
                DigestAlgorithm::Sha384 => k.pss_verify_prehash::<Sha384>(hash, signature),
                DigestAlgorithm::Sha512 => k.pss_verify_prehash::<Sha512>(hash, signature),
            }
            .map_err(invalid),
            (PublicKey::P256(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P256, signature)?;
                let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(hash, &sig).map_err(invalid)
            }
            (PublicKey::P384(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P384, signature)?;
                let sig = p384::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(hash, &sig).map_err(invalid)
            }
            (PublicKey::P521(k), SignatureScheme::Ecdsa) => {
                let raw = ecdsa::to_raw(EcCurve::P521, signature)?;
                let sig = p521::ecdsa::Signature::from_slice(&raw).map_err(invalid)?;
                k.verify_prehash(hash, &sig).map_err(invalid)
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
