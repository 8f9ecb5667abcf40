//! Digest, signature and key algorithms, and their `AlgorithmIdentifier`s.

use std::fmt;

use der::Sequence;
use der::asn1::{Any, ObjectIdentifier};
use sha2::Digest as _;
use spki::{AlgorithmIdentifier, AlgorithmIdentifierOwned};

use crate::Error;
use crate::oid;

/// A digest algorithm of the profile: SHA-256, SHA-384 or SHA-512.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-256 (`id-sha256`, 2.16.840.1.101.3.4.2.1).
    Sha256,
    /// SHA-384 (`id-sha384`, 2.16.840.1.101.3.4.2.2).
    Sha384,
    /// SHA-512 (`id-sha512`, 2.16.840.1.101.3.4.2.3).
    Sha512,
}

impl DigestAlgorithm {
    /// Every supported digest algorithm.
    pub const ALL: [DigestAlgorithm; 3] = [
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ];

    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha256 => oid::SHA256,
            DigestAlgorithm::Sha384 => oid::SHA384,
            DigestAlgorithm::Sha512 => oid::SHA512,
        }
    }

    /// The digest length in bytes (32, 48 or 64).
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// Hashes `data` in one go.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The algorithm named by `oid`, if supported.
    pub fn from_oid(oid: ObjectIdentifier) -> Option<DigestAlgorithm> {
        DigestAlgorithm::ALL.into_iter().find(|d| d.oid() == oid)
    }

    /// The `AlgorithmIdentifier` with absent parameters, as RFC 5754 section 2 requires of
    /// generated SHA-2 identifiers.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }

    /// Reads a digest `AlgorithmIdentifier`; parameters may be absent or NULL (RFC 5754).
    pub(crate) fn from_identifier(id: &AlgorithmIdentifierOwned) -> Result<Self, Error> {
        let digest = DigestAlgorithm::from_oid(id.oid)
            .ok_or(Error::UnsupportedDigestAlgorithm { oid: id.oid })?;
        match &id.parameters {
            None => Ok(digest),
            Some(p) if p.is_null() => Ok(digest),
            Some(_) => Err(Error::UnexpectedAlgorithmParameters { oid: id.oid }),
        }
    }

    /// The DER `DigestInfo` prefix of PKCS#1 v1.5 (RFC 8017 section 9.2, note 1): what goes
    /// before the hash when a token's raw `CKM_RSA_PKCS` signs a `DigestInfo`.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            DigestAlgorithm::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            DigestAlgorithm::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            DigestAlgorithm::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        })
    }
}

/// A NIST prime curve of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// P-256 (`prime256v1`, `secp256r1`).
    P256,
    /// P-384 (`secp384r1`).
    P384,
    /// P-521 (`secp521r1`).
    P521,
}

impl EcCurve {
    /// The named-curve object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            EcCurve::P256 => oid::SECP256R1,
            EcCurve::P384 => oid::SECP384R1,
            EcCurve::P521 => oid::SECP521R1,
        }
    }

    /// The curve named by `oid`, if supported.
    pub fn from_oid(oid: ObjectIdentifier) -> Option<EcCurve> {
        [EcCurve::P256, EcCurve::P384, EcCurve::P521]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    /// The size in bytes of a field element and of the group order: the width of `r` and
    /// of `s` in a raw `r || s` signature (32, 48, 66).
    pub fn scalar_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }

    /// The bit length of the group order.
    fn order_bits(self) -> usize {
        match self {
            EcCurve::P256 => 256,
            EcCurve::P384 => 384,
            EcCurve::P521 => 521,
        }
    }

    /// The longest DER `Ecdsa-Sig-Value` a signature on this curve can take: two INTEGERs
    /// each at most `order_bits + 1` bits long (a leading zero for a high bit).
    pub fn max_der_signature_len(self) -> usize {
        let int_len = (self.order_bits() + 1).div_ceil(8);
        let int_tlv = 1 + der_length_len(int_len) + int_len;
        let content = 2 * int_tlv;
        1 + der_length_len(content) + content
    }
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        })
    }
}

/// What kind of key signs: what a [`CmsSigner`](crate::CmsSigner) reports about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// An RSA key.
    Rsa {
        /// The modulus length in bits (e.g. 2048).
        modulus_bits: u32,
    },
    /// An EC key on a named curve.
    Ec(EcCurve),
}

impl KeyAlgorithm {
    /// The length of a raw signature by this key: the modulus length in bytes for RSA,
    /// `2 ×` [`EcCurve::scalar_len`] for ECDSA's `r || s`.
    pub fn raw_signature_len(self) -> usize {
        match self {
            KeyAlgorithm::Rsa { modulus_bits } => (modulus_bits as usize).div_ceil(8),
            KeyAlgorithm::Ec(curve) => 2 * curve.scalar_len(),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa { modulus_bits } => write!(f, "RSA-{modulus_bits}"),
            KeyAlgorithm::Ec(curve) => write!(f, "EC {curve}"),
        }
    }
}

/// How the signature is made from the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 (`sha*WithRSAEncryption`).
    RsaPkcs1v15,
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash.
    RsaPss,
    /// ECDSA (`ecdsa-with-SHA*`).
    Ecdsa,
}

/// A signature algorithm: a scheme and the digest it signs with. In this profile the
/// digest is also the `digestAlgorithm` of the `SignerInfo`, the hash in PSS's parameters
/// and the hash of the content (the PDF's `/ByteRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignatureAlgorithm {
    /// The signature scheme.
    pub scheme: SignatureScheme,
    /// The digest algorithm, used everywhere a digest appears.
    pub digest: DigestAlgorithm,
}

impl SignatureAlgorithm {
    /// A scheme with a digest.
    pub const fn new(scheme: SignatureScheme, digest: DigestAlgorithm) -> Self {
        SignatureAlgorithm { scheme, digest }
    }

    /// The usual algorithm for a key: PKCS#1 v1.5 for RSA, ECDSA for EC keys.
    pub fn default_for(key: KeyAlgorithm, digest: DigestAlgorithm) -> Self {
        let scheme = match key {
            KeyAlgorithm::Rsa { .. } => SignatureScheme::RsaPkcs1v15,
            KeyAlgorithm::Ec(_) => SignatureScheme::Ecdsa,
        };
        SignatureAlgorithm { scheme, digest }
    }

    /// Checks that a key of kind `key` can make this signature.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedCombination`] for an RSA scheme on an EC key or ECDSA on an RSA
    /// key, or an RSA modulus too short for the encoding (RFC 8017 sections 9.1.1 and 9.2).
    pub fn check_key(self, key: KeyAlgorithm) -> Result<(), Error> {
        let unsupported = |reason| Error::UnsupportedCombination {
            key,
            algorithm: self,
            reason,
        };
        let hash_len = self.digest.output_len();
        match (self.scheme, key) {
            (SignatureScheme::RsaPkcs1v15, KeyAlgorithm::Rsa { modulus_bits }) => {
                // emLen >= tLen + 11, tLen = DigestInfo length.
                let t_len = self.digest.digest_info_prefix().len() + hash_len;
                if (modulus_bits as usize).div_ceil(8) < t_len + 11 {
                    return Err(unsupported("the modulus is too short for this digest"));
                }
                Ok(())
            }
            (SignatureScheme::RsaPss, KeyAlgorithm::Rsa { modulus_bits }) => {
                // emLen >= hLen + sLen + 2 with sLen = hLen, emLen = ceil((modBits - 1) / 8).
                if (modulus_bits as usize).saturating_sub(1).div_ceil(8) < 2 * hash_len + 2 {
                    return Err(unsupported("the modulus is too short for this digest"));
                }
                Ok(())
            }
            (SignatureScheme::Ecdsa, KeyAlgorithm::Ec(_)) => Ok(()),
            (SignatureScheme::Ecdsa, KeyAlgorithm::Rsa { .. }) => {
                Err(unsupported("ECDSA needs an EC key"))
            }
            (_, KeyAlgorithm::Ec(_)) => Err(unsupported("RSA schemes need an RSA key")),
        }
    }

    /// The longest `SignatureValue` this algorithm gives with `key`: the modulus length
    /// for RSA, the longest DER `Ecdsa-Sig-Value` for ECDSA.
    pub fn max_signature_len(self, key: KeyAlgorithm) -> usize {
        match key {
            KeyAlgorithm::Rsa { .. } => key.raw_signature_len(),
            KeyAlgorithm::Ec(curve) => curve.max_der_signature_len(),
        }
    }

    /// The `signatureAlgorithm` identifier: `sha*WithRSAEncryption` with NULL parameters,
    /// `id-RSASSA-PSS` with explicit parameters (hash, MGF1 with the same hash, salt = hash
    /// length, trailer 1), or `ecdsa-with-SHA*` with absent parameters.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the PSS parameters cannot be encoded (does not happen with the
    /// supported digests).
    pub fn algorithm_identifier(self) -> Result<AlgorithmIdentifierOwned, Error> {
        let (oid, parameters) = match self.scheme {
            SignatureScheme::RsaPkcs1v15 => (
                match self.digest {
                    DigestAlgorithm::Sha256 => oid::SHA256_WITH_RSA,
                    DigestAlgorithm::Sha384 => oid::SHA384_WITH_RSA,
                    DigestAlgorithm::Sha512 => oid::SHA512_WITH_RSA,
                },
                Some(Any::null()),
            ),
            SignatureScheme::RsaPss => (
                oid::RSASSA_PSS,
                Some(
                    Any::encode_from(&PssParameters::for_digest(self.digest))
                        .map_err(Error::Encode)?,
                ),
            ),
            SignatureScheme::Ecdsa => (
                match self.digest {
                    DigestAlgorithm::Sha256 => oid::ECDSA_WITH_SHA256,
                    DigestAlgorithm::Sha384 => oid::ECDSA_WITH_SHA384,
                    DigestAlgorithm::Sha512 => oid::ECDSA_WITH_SHA512,
                },
                None,
            ),
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }

    /// Reads a `SignerInfo`'s `signatureAlgorithm`, given its `digestAlgorithm`.
    ///
    /// Also accepts the bare `rsaEncryption` OID that OpenSSL writes for PKCS#1 v1.5 (the
    /// hash then comes from `digestAlgorithm`). The signature's hash must equal `digest`.
    pub(crate) fn from_identifier(
        id: &AlgorithmIdentifierOwned,
        digest: DigestAlgorithm,
    ) -> Result<Self, Error> {
        let algorithm = SignatureAlgorithm::read_identifier(id, Some(digest))?;
        if algorithm.digest != digest {
            return Err(Error::InconsistentDigestAlgorithms {
                digest_algorithm: digest,
                signature_hash: algorithm.digest,
            });
        }
        Ok(algorithm)
    }

    /// Reads a signature `AlgorithmIdentifier` that names its own hash, such as a
    /// certificate's `signatureAlgorithm`: `sha{256,384,512}WithRSAEncryption`,
    /// `ecdsa-with-SHA{256,384,512}`, or `id-RSASSA-PSS` whose parameters are those this
    /// crate signs with (SHA-2, MGF1 with the same hash, a salt as long as the hash,
    /// trailer field 1).
    ///
    /// ```
    /// use cms_sign::{DigestAlgorithm, SignatureAlgorithm, SignatureScheme};
    ///
    /// let pss = SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha384);
    /// let id = pss.algorithm_identifier()?;
    /// assert_eq!(SignatureAlgorithm::from_algorithm_identifier(&id)?, pss);
    /// # Ok::<(), cms_sign::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedSignatureAlgorithm`] for any other OID, the bare
    /// `rsaEncryption` among them (it names no hash);
    /// [`Error::UnexpectedAlgorithmParameters`], [`Error::UnsupportedPssParameters`] and
    /// [`Error::Malformed`] for parameters that do not fit.
    pub fn from_algorithm_identifier(id: &AlgorithmIdentifierOwned) -> Result<Self, Error> {
        SignatureAlgorithm::read_identifier(id, None)
    }

    /// The scheme and hash `id` names; `bare_rsa_digest` is the hash for the bare
    /// `rsaEncryption` OID, which is refused without one.
    fn read_identifier(
        id: &AlgorithmIdentifierOwned,
        bare_rsa_digest: Option<DigestAlgorithm>,
    ) -> Result<Self, Error> {
        let null_or_absent = || match &id.parameters {
            None => Ok(()),
            Some(p) if p.is_null() => Ok(()),
            Some(_) => Err(Error::UnexpectedAlgorithmParameters { oid: id.oid }),
        };
        let absent = || match &id.parameters {
            None => Ok(()),
            Some(_) => Err(Error::UnexpectedAlgorithmParameters { oid: id.oid }),
        };
        let (scheme, digest) = match id.oid {
            oid::RSA_ENCRYPTION => {
                let digest =
                    bare_rsa_digest.ok_or(Error::UnsupportedSignatureAlgorithm { oid: id.oid })?;
                null_or_absent()?;
                (SignatureScheme::RsaPkcs1v15, digest)
            }
            oid::SHA256_WITH_RSA => {
                null_or_absent()?;
                (SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha256)
            }
            oid::SHA384_WITH_RSA => {
                null_or_absent()?;
                (SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha384)
            }
            oid::SHA512_WITH_RSA => {
                null_or_absent()?;
                (SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha512)
            }
            oid::ECDSA_WITH_SHA256 => {
                absent()?;
                (SignatureScheme::Ecdsa, DigestAlgorithm::Sha256)
            }
            oid::ECDSA_WITH_SHA384 => {
                absent()?;
                (SignatureScheme::Ecdsa, DigestAlgorithm::Sha384)
            }
            oid::ECDSA_WITH_SHA512 => {
                absent()?;
                (SignatureScheme::Ecdsa, DigestAlgorithm::Sha512)
            }
            oid::RSASSA_PSS => {
                let params = id
                    .parameters
                    .as_ref()
                    .ok_or(Error::UnsupportedPssParameters {
                        reason: "parameters are missing",
                    })?;
                let params =
                    params
                        .decode_as::<PssParameters>()
                        .map_err(|source| Error::Malformed {
                            what: "RSASSA-PSS-params",
                            source,
                        })?;
                (SignatureScheme::RsaPss, params.digest()?)
            }
            other => return Err(Error::UnsupportedSignatureAlgorithm { oid: other }),
        };
        Ok(SignatureAlgorithm { scheme, digest })
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            SignatureScheme::RsaPkcs1v15 => write!(f, "RSA PKCS#1 v1.5 with {}", self.digest),
            SignatureScheme::RsaPss => write!(f, "RSASSA-PSS with {}", self.digest),
            SignatureScheme::Ecdsa => write!(f, "ECDSA with {}", self.digest),
        }
    }
}

/// `RSASSA-PSS-params` (RFC 8017 appendix A.2.3; RFC 4055 section 3.1):
///
/// ```text
/// RSASSA-PSS-params ::= SEQUENCE {
///     hashAlgorithm      [0] HashAlgorithm      DEFAULT sha1,
///     maskGenAlgorithm   [1] MaskGenAlgorithm   DEFAULT mgf1SHA1,
///     saltLength         [2] INTEGER            DEFAULT 20,
///     trailerField       [3] TrailerField       DEFAULT trailerFieldBC }
/// ```
///
/// Every field is written explicitly except the trailer, whose only value is the default.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct PssParameters {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifier<AlgorithmIdentifierOwned>>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_len: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

impl PssParameters {
    /// Parameters for `digest`: hash, MGF1 with the same hash, salt = hash length. The hash
    /// identifiers carry NULL parameters, as RFC 4055's `sha256Identifier` etc. do.
    fn for_digest(digest: DigestAlgorithm) -> Self {
        let hash = AlgorithmIdentifierOwned {
            oid: digest.oid(),
            parameters: Some(Any::null()),
        };
        PssParameters {
            hash: Some(hash.clone()),
            mask_gen: Some(AlgorithmIdentifier {
                oid: oid::MGF1,
                parameters: Some(hash),
            }),
            salt_len: Some(digest.output_len() as u32),
            trailer_field: None,
        }
    }

    /// The digest of parameters that fit the profile.
    fn digest(&self) -> Result<DigestAlgorithm, Error> {
        let bad = |reason| Err(Error::UnsupportedPssParameters { reason });
        let Some(hash) = &self.hash else {
            return bad("the hash is the SHA-1 default");
        };
        let Ok(digest) = DigestAlgorithm::from_identifier(hash) else {
            return bad("the hash is not SHA-256, SHA-384 or SHA-512");
        };
        let Some(mask_gen) = &self.mask_gen else {
            return bad("the mask generation is the MGF1-SHA-1 default");
        };
        if mask_gen.oid != oid::MGF1 {
            return bad("the mask generation function is not MGF1");
        }
        match &mask_gen.parameters {
            Some(mgf_hash) if DigestAlgorithm::from_identifier(mgf_hash).ok() == Some(digest) => {}
            _ => return bad("MGF1 does not use the signature's hash"),
        }
        if self.salt_len != Some(digest.output_len() as u32) {
            return bad("the salt length is not the hash length");
        }
        if self.trailer_field.is_some_and(|t| t != 1) {
            return bad("the trailer field is not trailerFieldBC");
        }
        Ok(digest)
    }
}

/// Length of a DER length field for a content of `len` bytes.
pub(crate) fn der_length_len(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    }
}
