//! Software keys: a PKCS#8 PEM private key and its certificate, signing through the same
//! [`cms_sign::CmsSigner`] trait as a token's key. For tests, and for users without a
//! token.

use std::path::Path;

use cms_sign::{
    CmsSigner, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm, SignatureScheme,
};
use der::Decode;
use p256::pkcs8::DecodePrivateKey;
use sha2::{Sha256, Sha384, Sha512};
use signature::hazmat::PrehashSigner;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

enum Secret {
    Rsa(Box<rsa::PrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

/// A private key in memory with its certificate and chain.
pub struct SoftwareKey {
    secret: Secret,
    algorithm: KeyAlgorithm,
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// A key from PKCS#8 DER (unencrypted `PrivateKeyInfo`), with its certificate and the
    /// chain above it (DER, nearest first).
    ///
    /// # Errors
    /// [`Error::UnsupportedKey`] for a key that is not RSA or EC on P-256, P-384, P-521.
    pub fn from_pkcs8_der(
        pkcs8: &[u8],
        certificate: Vec<u8>,
        chain: Vec<Vec<u8>>,
    ) -> Result<SoftwareKey> {
        let (secret, algorithm) = if let Ok(key) = rsa::PrivateKey::from_pkcs8_der(pkcs8) {
            let bits = rsa::traits::PublicKeyParts::n(&key).bit_width();
            (
                Secret::Rsa(Box::new(key)),
                KeyAlgorithm::Rsa { modulus_bits: bits },
            )
        } else if let Ok(key) = p256::SecretKey::from_pkcs8_der(pkcs8) {
            (Secret::P256(key.into()), KeyAlgorithm::Ec(EcCurve::P256))
        } else if let Ok(key) = p384::SecretKey::from_pkcs8_der(pkcs8) {
            (Secret::P384(key.into()), KeyAlgorithm::Ec(EcCurve::P384))
        } else if let Ok(key) = p521::SecretKey::from_pkcs8_der(pkcs8) {
            (Secret::P521(key.into()), KeyAlgorithm::Ec(EcCurve::P521))
        } else {
            return Err(Error::UnsupportedKey {
                what: "not an RSA key nor an EC key on P-256, P-384 or P-521 (PKCS#8)".into(),
            });
        };
        Ok(SoftwareKey {
            secret,
            algorithm,
            certificate,
            chain,
        })
    }

    /// Loads a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`) and a PEM file holding the
    /// signer's certificate first, then optionally its chain; `chain_file`, if given,
    /// adds more chain certificates.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read, [`Error::KeyFile`] if it does not hold
    /// what it should, [`Error::UnsupportedKey`].
    pub fn from_pem_files(
        key_file: &Path,
        cert_file: &Path,
        chain_file: Option<&Path>,
    ) -> Result<SoftwareKey> {
        let pem = Zeroizing::new(read(key_file)?);
        let bad = |reason: String| Error::KeyFile {
            path: key_file.to_path_buf(),
            reason,
        };
        let (label, der) = der::pem::decode_vec(&pem).map_err(|e| bad(format!("not PEM: {e}")))?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(bad(format!(
                "a {label:?} PEM block; pdfsign reads unencrypted PKCS#8 \"PRIVATE KEY\" \
                 (convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8.pem)"
            )));
        }
        let mut certificates = read_certificates(cert_file)?;
        if certificates.is_empty() {
            return Err(Error::KeyFile {
                path: cert_file.to_path_buf(),
                reason: "holds no CERTIFICATE PEM block".into(),
            });
        }
        let certificate = certificates.remove(0);
        if let Some(chain_file) = chain_file {
            certificates.extend(read_certificates(chain_file)?);
        }
        SoftwareKey::from_pkcs8_der(&der, certificate, certificates)
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        during: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file, DER, in order; each one must parse.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::KeyFile`] for a block that is not
/// a certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>> {
    let pem = read(path)?;
    let text = String::from_utf8_lossy(&pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start..];
        let end = after.find(END).ok_or_else(|| Error::KeyFile {
            path: path.to_path_buf(),
            reason: "a CERTIFICATE block has no END line".into(),
        })? + END.len();
        let block = &after[..end];
        let (_, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| Error::KeyFile {
            path: path.to_path_buf(),
            reason: format!("bad CERTIFICATE PEM block: {e}"),
        })?;
        x509_cert::Certificate::from_der(&der).map_err(|e| Error::KeyFile {
            path: path.to_path_buf(),
            reason: format!("a CERTIFICATE block does not parse: {e}"),
        })?;
        out.push(der);
        rest = &after[end..];
    }
    Ok(out)
}

impl CmsSigner for SoftwareKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        sign_prehash(&self.secret, request.algorithm, request.digest)
    }
}

fn sign_prehash(
    secret: &Secret,
    algorithm: SignatureAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, KeyError> {
    use cms_sign::DigestAlgorithm as D;
    Ok(match (secret, algorithm.scheme) {
        (Secret::Rsa(key), SignatureScheme::RsaPkcs1v15) => match algorithm.digest {
            D::Sha256 => key.pkcs1v15_sign_prehash::<Sha256>(digest)?,
            D::Sha384 => key.pkcs1v15_sign_prehash::<Sha384>(digest)?,
            D::Sha512 => key.pkcs1v15_sign_prehash::<Sha512>(digest)?,
        },
        (Secret::Rsa(key), SignatureScheme::RsaPss) => match algorithm.digest {
            D::Sha256 => key.pss_sign_prehash::<Sha256>(digest)?,
            D::Sha384 => key.pss_sign_prehash::<Sha384>(digest)?,
            D::Sha512 => key.pss_sign_prehash::<Sha512>(digest)?,
        },
        (Secret::P256(key), SignatureScheme::Ecdsa) => {
            let signature: p256::ecdsa::Signature = key.sign_prehash(digest)?;
            signature.to_bytes().to_vec()
        }
        (Secret::P384(key), SignatureScheme::Ecdsa) => {
            let signature: p384::ecdsa::Signature = key.sign_prehash(digest)?;
            signature.to_bytes().to_vec()
        }
        (Secret::P521(key), SignatureScheme::Ecdsa) => {
            let signature: p521::ecdsa::Signature = key.sign_prehash(digest)?;
            signature.to_bytes().to_vec()
        }
        // The builder checks the scheme against the key before it asks us to sign.
        (_, scheme) => return Err(format!("{scheme:?} does not fit this key").into()),
    })
}
