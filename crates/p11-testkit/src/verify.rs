//! Verifying a token's signature in Rust with the certificate's public key, independent
//! of the token.

use der::Decode;
use sha2::{Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::DecodePublicKey;
use x509_cert::Certificate;

use crate::Error;

/// How a signature was made over a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSA PKCS#1 v1.5 over a DigestInfo (`CKM_RSA_PKCS` over DigestInfo, or
    /// `CKM_SHA*_RSA_PKCS`).
    Pkcs1v15,
    /// RSA-PSS, MGF1 with the same hash, salt as long as the hash.
    Pss,
    /// ECDSA, raw `r || s` (`CKM_ECDSA`).
    Ecdsa,
}

/// Verifies `signature` over `digest` (32, 48 or 64 bytes: SHA-256, -384, -512) with the
/// public key of the certificate `cert_der`.
///
/// # Errors
/// If the signature does not verify, or the inputs do not fit together.
pub fn verify_prehash(
    cert_der: &[u8],
    scheme: Scheme,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    let cert = Certificate::from_der(cert_der)?;
    let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())?;
    match scheme {
        Scheme::Pkcs1v15 => {
            let sig = rsa::pkcs1v15::Signature::try_from(signature)?;
            match digest.len() {
                32 => rsa::pkcs1v15::VerifyingKey::<Sha256>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                48 => rsa::pkcs1v15::VerifyingKey::<Sha384>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                64 => rsa::pkcs1v15::VerifyingKey::<Sha512>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                n => return Err(format!("no hash has a {n}-byte digest").into()),
            }
        }
        Scheme::Pss => {
            let sig = rsa::pss::Signature::try_from(signature)?;
            match digest.len() {
                32 => rsa::pss::VerifyingKey::<Sha256>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                48 => rsa::pss::VerifyingKey::<Sha384>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                64 => rsa::pss::VerifyingKey::<Sha512>::from_public_key_der(&spki)?
                    .verify_prehash(digest, &sig)?,
                n => return Err(format!("no hash has a {n}-byte digest").into()),
            }
        }
        Scheme::Ecdsa => {
            let point = cert
                .tbs_certificate()
                .subject_public_key_info()
                .subject_public_key
                .as_bytes()
                .ok_or("EC public key is not a whole number of bytes")?;
            match signature.len() {
                64 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)?
                    .verify_prehash(digest, &p256::ecdsa::Signature::from_slice(signature)?)?,
                96 => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)?
                    .verify_prehash(digest, &p384::ecdsa::Signature::from_slice(signature)?)?,
                132 => p521::ecdsa::VerifyingKey::from_sec1_bytes(point)?
                    .verify_prehash(digest, &p521::ecdsa::Signature::from_slice(signature)?)?,
                n => return Err(format!("no supported curve gives {n}-byte signatures").into()),
            }
        }
    }
    Ok(())
}
