//! Software signing keys from `fixtures/keys`, with their leaf certificates.

use std::fs;
use std::sync::OnceLock;

use der::pem::LineEnding;
use der::{Decode, EncodePem};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::pkcs1::RsaPrivateKeyRef;
use sha2::{Sha256, Sha384, Sha512};
use signature::hazmat::PrehashSigner;
use x509_cert::Certificate;

use crate::{Error, KeyKind, Pki};

/// DER of the named-curve OIDs, as `CKA_EC_PARAMS` wants them.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

/// A fixture leaf key in software, with its certificate issued by the fixture intermediate.
///
/// Its signing helpers take a prehashed digest and pick the hash from its length
/// (32, 48, 64 bytes: SHA-256, -384, -512), as a PKCS#11 token's `CKM_RSA_PKCS`,
/// `CKM_RSA_PKCS_PSS` and `CKM_ECDSA` would be used.
pub struct SoftwareKey {
    kind: KeyKind,
    pkcs8_der: Vec<u8>,
    spki_der: Vec<u8>,
    cert_der: Vec<u8>,
    cert_pem: String,
    rsa_components: Option<RsaComponents>,
    secret: Secret,
}

enum Secret {
    Rsa(rsa::PrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

/// The raw components of an RSA private key, big-endian without leading zeros, as
/// `C_CreateObject` wants them (`CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaComponents {
    /// `n`, the modulus.
    pub modulus: Vec<u8>,
    /// `e`, the public exponent.
    pub public_exponent: Vec<u8>,
    /// `d`, the private exponent.
    pub private_exponent: Vec<u8>,
    /// `p`, the first prime.
    pub prime_1: Vec<u8>,
    /// `q`, the second prime.
    pub prime_2: Vec<u8>,
    /// `d mod (p - 1)`.
    pub exponent_1: Vec<u8>,
    /// `d mod (q - 1)`.
    pub exponent_2: Vec<u8>,
    /// `q⁻¹ mod p`.
    pub coefficient: Vec<u8>,
}

/// The raw components of an EC private key, as `C_CreateObject` wants them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcComponents {
    /// `CKA_EC_PARAMS`: the DER-encoded named-curve OID.
    pub params_der: Vec<u8>,
    /// `CKA_VALUE`: the private scalar, big-endian, the field's size.
    pub private_value: Vec<u8>,
    /// The public point, uncompressed SEC 1 (`04 || x || y`).
    pub public_point: Vec<u8>,
}

impl EcComponents {
    /// `CKA_EC_POINT` of the public key: the uncompressed point wrapped in a DER
    /// OCTET STRING, as PKCS#11 stores it.
    pub fn public_point_der(&self) -> Vec<u8> {
        let mut out = vec![0x04];
        let len = self.public_point.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            // An uncompressed P-521 point is 133 bytes: one length byte after 0x81.
            out.push(0x81);
            out.push(len as u8);
        }
        out.extend_from_slice(&self.public_point);
        out
    }
}

impl SoftwareKey {
    /// The process-wide key of `kind`, loaded on first use, with a leaf certificate whose
    /// subject is `CN=pdfsign test signer <label>,O=pdfsign tests`.
    ///
    /// # Panics
    ///
    /// If the committed fixture key is missing or unreadable: the tests cannot run then.
    pub fn fixture(kind: KeyKind) -> &'static SoftwareKey {
        static KEYS: [OnceLock<SoftwareKey>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let slot = match kind {
            KeyKind::Rsa2048 => &KEYS[0],
            KeyKind::Rsa3072 => &KEYS[1],
            KeyKind::P256 => &KEYS[2],
            KeyKind::P384 => &KEYS[3],
            KeyKind::P521 => &KEYS[4],
        };
        slot.get_or_init(|| match SoftwareKey::load(kind, Pki::fixture()) {
            Ok(key) => key,
            Err(e) => panic!("cannot load the {kind} fixture key: {e}"),
        })
    }

    /// Loads `fixtures/keys/<label>.pem` and issues its certificate from `pki`.
    ///
    /// # Errors
    ///
    /// If the file is missing or is not a PKCS#8 key of that kind.
    pub fn load(kind: KeyKind, pki: &Pki) -> Result<SoftwareKey, Error> {
        let path = kind.key_path();
        let pem = fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |reason: String| Error::BadKeyFile {
            path: path.clone(),
            reason,
        };
        let (label, pkcs8_der) =
            der::pem::decode_vec(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if label != "PRIVATE KEY" {
            return Err(bad(format!("PEM label {label:?}, not \"PRIVATE KEY\"")));
        }
        let (secret, spki) = match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 => {
                let key =
                    rsa::PrivateKey::from_pkcs8_der(&pkcs8_der).map_err(|e| bad(e.to_string()))?;
                let spki = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| bad(e.to_string()))?;
                let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
                if bits != kind.bits() as usize {
                    return Err(bad(format!("a {bits}-bit RSA key")));
                }
                (Secret::Rsa(key), spki)
            }
            KeyKind::P256 => {
                let key =
                    p256::SecretKey::from_pkcs8_der(&pkcs8_der).map_err(|e| bad(e.to_string()))?;
                let spki = key
                    .public_key()
                    .to_public_key_der()
                    .map_err(|e| bad(e.to_string()))?;
                (Secret::P256(key.into()), spki)
            }
            KeyKind::P384 => {
                let key =
                    p384::SecretKey::from_pkcs8_der(&pkcs8_der).map_err(|e| bad(e.to_string()))?;
                let spki = key
                    .public_key()
                    .to_public_key_der()
                    .map_err(|e| bad(e.to_string()))?;
                (Secret::P384(key.into()), spki)
            }
            KeyKind::P521 => {
                let key =
                    p521::SecretKey::from_pkcs8_der(&pkcs8_der).map_err(|e| bad(e.to_string()))?;
                let spki = key
                    .public_key()
                    .to_public_key_der()
                    .map_err(|e| bad(e.to_string()))?;
                (Secret::P521(key.into()), spki)
            }
        };
        let rsa_components = if kind.is_rsa() {
            Some(rsa_components(&pkcs8_der)?)
        } else {
            None
        };
        let spki_der = spki.as_bytes().to_vec();
        let cert_der =
            pki.try_issue_leaf(&format!("pdfsign test signer {}", kind.label()), &spki_der)?;
        let cert_pem = Certificate::from_der(&cert_der)?.to_pem(LineEnding::LF)?;
        Ok(SoftwareKey {
            kind,
            pkcs8_der,
            spki_der,
            cert_der,
            cert_pem,
            rsa_components,
            secret,
        })
    }

    /// Which fixture key this is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The private key, PKCS#8 DER (unencrypted).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// The public key, DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's leaf certificate (issued by the fixture intermediate), DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The key's leaf certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// RSASSA-PKCS1-v1_5 over a prehashed digest (the DigestInfo is built here, as for
    /// `CKM_RSA_PKCS`). Deterministic.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKeyType`] on an EC key, [`Error::DigestLength`] for a digest that is
    /// not 32, 48 or 64 bytes, [`Error::Rsa`] if the operation fails.
    pub fn sign_pkcs1v15(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.rsa("RSA PKCS#1 v1.5 signing")?;
        match digest.len() {
            32 => key.pkcs1v15_sign_prehash::<Sha256>(digest),
            48 => key.pkcs1v15_sign_prehash::<Sha384>(digest),
            64 => key.pkcs1v15_sign_prehash::<Sha512>(digest),
            len => return Err(Error::DigestLength(len)),
        }
        .map_err(Error::Rsa)
    }

    /// RSASSA-PSS over a prehashed digest: MGF1 with the digest's hash, salt as long as the
    /// digest (as for `CKM_RSA_PKCS_PSS`). Randomised by its salt.
    ///
    /// # Errors
    ///
    /// As [`SoftwareKey::sign_pkcs1v15`].
    pub fn sign_pss(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.rsa("RSA-PSS signing")?;
        match digest.len() {
            32 => key.pss_sign_prehash::<Sha256>(digest),
            48 => key.pss_sign_prehash::<Sha384>(digest),
            64 => key.pss_sign_prehash::<Sha512>(digest),
            len => return Err(Error::DigestLength(len)),
        }
        .map_err(Error::Rsa)
    }

    /// ECDSA over a prehashed digest (RFC 6979, deterministic), returning the raw
    /// `r || s`, each the field's size, as `CKM_ECDSA` does.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKeyType`] on an RSA key, [`Error::DigestLength`] for a digest that is
    /// not 32, 48 or 64 bytes, [`Error::Ecdsa`] if the operation fails.
    pub fn sign_ecdsa(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        if !matches!(digest.len(), 32 | 48 | 64) {
            return Err(Error::DigestLength(digest.len()));
        }
        let raw = match &self.secret {
            Secret::Rsa(_) => {
                return Err(Error::WrongKeyType {
                    kind: self.kind,
                    operation: "ECDSA signing",
                });
            }
            Secret::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(digest).map_err(Error::Ecdsa)?;
                sig.to_bytes().to_vec()
            }
            Secret::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(digest).map_err(Error::Ecdsa)?;
                sig.to_bytes().to_vec()
            }
            Secret::P521(k) => {
                let sig: p521::ecdsa::Signature = k.sign_prehash(digest).map_err(Error::Ecdsa)?;
                sig.to_bytes().to_vec()
            }
        };
        Ok(raw)
    }

    /// The RSA private components, or `None` for an EC key.
    pub fn rsa_components(&self) -> Option<&RsaComponents> {
        self.rsa_components.as_ref()
    }

    /// The EC private components, or `None` for an RSA key.
    pub fn ec_components(&self) -> Option<EcComponents> {
        let (params, private_value, public_point) = match &self.secret {
            Secret::Rsa(_) => return None,
            Secret::P256(k) => (
                P256_PARAMS,
                k.to_bytes().to_vec(),
                k.verifying_key()
                    .as_affine()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
            Secret::P384(k) => (
                P384_PARAMS,
                k.to_bytes().to_vec(),
                k.verifying_key()
                    .as_affine()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
            Secret::P521(k) => (
                P521_PARAMS,
                k.to_bytes().to_vec(),
                k.verifying_key()
                    .as_affine()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
        };
        Some(EcComponents {
            params_der: params.to_vec(),
            private_value,
            public_point,
        })
    }

    fn rsa(&self, operation: &'static str) -> Result<&rsa::PrivateKey, Error> {
        match &self.secret {
            Secret::Rsa(key) => Ok(key),
            _ => Err(Error::WrongKeyType {
                kind: self.kind,
                operation,
            }),
        }
    }
}

/// Reads the PKCS#1 `RSAPrivateKey` inside a PKCS#8 RSA key.
fn rsa_components(pkcs8_der: &[u8]) -> Result<RsaComponents, Error> {
    let info = rsa::pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der)?;
    let key = RsaPrivateKeyRef::from_der(info.private_key.as_bytes())?;
    Ok(RsaComponents {
        modulus: key.modulus.as_bytes().to_vec(),
        public_exponent: key.public_exponent.as_bytes().to_vec(),
        private_exponent: key.private_exponent.as_bytes().to_vec(),
        prime_1: key.prime1.as_bytes().to_vec(),
        prime_2: key.prime2.as_bytes().to_vec(),
        exponent_1: key.exponent1.as_bytes().to_vec(),
        exponent_2: key.exponent2.as_bytes().to_vec(),
        coefficient: key.coefficient.as_bytes().to_vec(),
    })
}
