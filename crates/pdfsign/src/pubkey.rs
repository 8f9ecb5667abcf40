//! Certificate signature verification for path building: an issuer's public key checks a
//! certificate's signature over its `tbsCertificate`.
//!
//! `cms-sign` verifies the CMS signature itself; it keeps its public-key type private, so
//! the façade has this small one for certificates.

use der::Encode;
use der::asn1::ObjectIdentifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// A public key that can check certificate signatures.
pub(crate) enum PublicKey {
    Rsa(Box<rsa::PublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an RSA or EC (P-256, P-384, P-521) `SubjectPublicKeyInfo`.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, String> {
        let der = spki.to_der().map_err(|e| format!("public key: {e}"))?;
        let bad = |e: spki::Error| format!("public key: {e}");
        match spki.algorithm.oid {
            RSA_ENCRYPTION => rsa::PublicKey::from_public_key_der(&der)
                .map(|k| PublicKey::Rsa(Box::new(k)))
                .map_err(bad),
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                match curve {
                    Some(P256) => p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                        .map(PublicKey::P256)
                        .map_err(bad),
                    Some(P384) => p384::ecdsa::VerifyingKey::from_public_key_der(&der)
                        .map(PublicKey::P384)
                        .map_err(bad),
                    Some(P521) => p521::ecdsa::VerifyingKey::from_public_key_der(&der)
                        .map(PublicKey::P521)
                        .map_err(bad),
                    _ => Err("EC public key on an unsupported curve".to_owned()),
                }
            }
            other => Err(format!("unsupported public key algorithm {other}")),
        }
    }

    /// Checks that `certificate` was signed by this key. `Err` says why not.
    pub(crate) fn verify_certificate(&self, certificate: &Certificate) -> Result<(), String> {
        let tbs = certificate
            .tbs_certificate()
            .to_der()
            .map_err(|e| format!("re-encoding the certificate: {e}"))?;
        let algorithm = certificate.signature_algorithm();
        let signature = certificate
            .signature()
            .as_bytes()
            .ok_or("the signature is not a whole number of bytes")?;
        let (rsa, hash) = match algorithm.oid {
            SHA256_WITH_RSA => (true, Hash::Sha256),
            SHA384_WITH_RSA => (true, Hash::Sha384),
            SHA512_WITH_RSA => (true, Hash::Sha512),
            ECDSA_WITH_SHA256 => (false, Hash::Sha256),
            ECDSA_WITH_SHA384 => (false, Hash::Sha384),
            ECDSA_WITH_SHA512 => (false, Hash::Sha512),
            other => {
                return Err(format!(
                    "unsupported certificate signature algorithm {other}"
                ));
            }
        };
        let hashed = hash.digest(&tbs);
        fn invalid<E>(_: E) -> String {
            "the signature does not verify".to_owned()
        }
        match (self, rsa) {
            (PublicKey::Rsa(key), true) => match hash {
                Hash::Sha256 => key.pkcs1v15_verify_prehash::<Sha256>(&hashed, signature),
                Hash::Sha384 => key.pkcs1v15_verify_prehash::<Sha384>(&hashed, signature),
                Hash::Sha512 => key.pkcs1v15_verify_prehash::<Sha512>(&hashed, signature),
            }
            .map_err(invalid),
            (PublicKey::P256(key), false) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(invalid)?;
                key.verify_prehash(&hashed, &sig).map_err(invalid)
            }
            (PublicKey::P384(key), false) => {
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(invalid)?;
                key.verify_prehash(&hashed, &sig).map_err(invalid)
            }
            (PublicKey::P521(key), false) => {
                let sig = p521::ecdsa::Signature::from_der(signature).map_err(invalid)?;
                key.verify_prehash(&hashed, &sig).map_err(invalid)
            }
            _ => Err("the signature algorithm does not fit the issuer's key".to_owned()),
        }
    }
}
