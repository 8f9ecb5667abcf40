//! The `SignedData` builder.

use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Tag};
use x509_cert::Certificate;
use x509_cert::attr::Attributes;
use x509_cert::time::Time;

use crate::algorithm::der_length_len;
use crate::public_key::PublicKey;
use crate::{
    CmsSigner, Error, KeyAlgorithm, SignRequest, SignatureAlgorithm, SignatureScheme, attributes,
    ecdsa, oid,
};

/// The PDF signature sub-filter the `SignedData` is made for; it decides the signing-time
/// attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubFilter {
    /// `/SubFilter /ETSI.CAdES.detached` (PAdES): never a signing-time attribute
    /// (ETSI EN 319 142-1); the claimed time goes in the signature dictionary's `/M`.
    CadesDetached,
    /// `/SubFilter /adbe.pkcs7.detached`: a signing-time attribute only if given, and then
    /// equal to `/M`.
    Pkcs7Detached {
        /// The signing time to claim, if any (whole seconds are kept).
        signing_time: Option<SystemTime>,
    },
}

impl SubFilter {
    /// The PDF name, without the slash: `ETSI.CAdES.detached` or `adbe.pkcs7.detached`.
    pub fn pdf_name(self) -> &'static str {
        match self {
            SubFilter::CadesDetached => "ETSI.CAdES.detached",
            SubFilter::Pkcs7Detached { .. } => "adbe.pkcs7.detached",
        }
    }
}

/// Builds detached CMS `SignedData` (RFC 5652) in the PAdES baseline profile, signing
/// through a [`CmsSigner`].
///
/// Made once per key and configuration and reused: [`SignedDataBuilder::sign`] takes
/// `&self`, and the builder is `Send + Sync` so threads can share it.
///
/// The output is a DER `ContentInfo` holding `SignedData` v1 with `id-data`, no
/// encapsulated content, the signer's certificate and chain, and one `SignerInfo` v1
/// identified by issuer and serial number, whose signed attributes are content-type,
/// message-digest, signing-certificate-v2 and (PKCS#7 sub-filter, on request)
/// signing-time.
pub struct SignedDataBuilder<'k> {
    key: &'k dyn CmsSigner,
    key_algorithm: KeyAlgorithm,
    algorithm: SignatureAlgorithm,
    signing_time: Option<Time>,
    sid: IssuerAndSerialNumber,
    certificates: CertificateSet,
    signing_certificate_v2: Any,
    public_key: PublicKey,
    timestamp_reserve: usize,
    verify_after_signing: bool,
}

impl<'k> SignedDataBuilder<'k> {
    /// A builder for `key` signing with `algorithm`, for `sub_filter`.
    ///
    /// Checks everything that can be checked before signing: that the key can make and
    /// allows `algorithm`, and that its certificate parses and holds the key it reports.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedCombination`], [`Error::AlgorithmNotAllowed`],
    /// [`Error::Malformed`] for a certificate that does not parse,
    /// [`Error::UnsupportedPublicKey`] / [`Error::InvalidPublicKey`] for its key,
    /// [`Error::CertificateKeyMismatch`], [`Error::SigningTimeOutOfRange`].
    pub fn new(
        key: &'k dyn CmsSigner,
        algorithm: SignatureAlgorithm,
        sub_filter: SubFilter,
    ) -> Result<Self, Error> {
        let key_algorithm = key.key_algorithm();
        algorithm.check_key(key_algorithm)?;
        if !key.supports(algorithm) {
            return Err(Error::AlgorithmNotAllowed { algorithm });
        }

        let certificate_der = key.certificate();
        let certificate =
            Certificate::from_der(certificate_der).map_err(|source| Error::Malformed {
                what: "signer certificate",
                source,
            })?;
        let tbs = certificate.tbs_certificate();
        let public_key = PublicKey::from_spki(tbs.subject_public_key_info())?;
        if public_key.algorithm() != key_algorithm {
            return Err(Error::CertificateKeyMismatch {
                key: key_algorithm,
                certificate: public_key.algorithm(),
            });
        }
        let sid = IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        };
        let signing_certificate_v2 =
            attributes::signing_certificate_v2(&certificate, certificate_der, algorithm.digest)?;

        let mut certificates = vec![CertificateChoices::Certificate(certificate)];
        let mut seen = vec![certificate_der];
        for der in key.chain() {
            if seen.contains(&der.as_slice()) {
                continue;
            }
            seen.push(der);
            let cert = Certificate::from_der(der).map_err(|source| Error::Malformed {
                what: "chain certificate",
                source,
            })?;
            certificates.push(CertificateChoices::Certificate(cert));
        }
        let certificates = CertificateSet::try_from(certificates).map_err(Error::Encode)?;

        let signing_time = match sub_filter {
            SubFilter::CadesDetached | SubFilter::Pkcs7Detached { signing_time: None } => None,
            SubFilter::Pkcs7Detached {
                signing_time: Some(time),
            } => Some(attributes::signing_time(time)?),
        };

        Ok(SignedDataBuilder {
            key,
            key_algorithm,
            algorithm,
            signing_time,
            sid,
            certificates,
            signing_certificate_v2,
            public_key,
            timestamp_reserve: 0,
            verify_after_signing: true,
        })
    }

    /// Reserves room in [`SignedDataBuilder::size_bound`] for a RFC 3161 time-stamp token
    /// of up to `token_len` bytes (its whole DER `ContentInfo`), added later with
    /// [`add_timestamp_token`](crate::add_timestamp_token). 0 (the default) reserves none.
    pub fn reserve_timestamp(&mut self, token_len: usize) -> &mut Self {
        self.timestamp_reserve = token_len;
        self
    }

    /// Whether [`SignedDataBuilder::sign`] verifies the key's signature with the
    /// certificate's public key before returning it (default: yes). It catches a key and
    /// certificate that do not belong together, and a token that signed something else,
    /// at the cost of one verification.
    pub fn verify_after_signing(&mut self, verify: bool) -> &mut Self {
        self.verify_after_signing = verify;
        self
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// An upper bound of the length of what [`SignedDataBuilder::sign`] returns, plus the
    /// reserved time-stamp room: size the PDF's `/Contents` placeholder with it.
    ///
    /// Exact but for the ECDSA signature, whose DER length varies by a few bytes; the
    /// bound assumes its longest form.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if a length overflows.
    pub fn size_bound(&self) -> Result<usize, Error> {
        let digest = vec![0u8; self.algorithm.digest.output_len()];
        let signed_attributes = self.signed_attributes(&digest)?;
        let signature = vec![0u8; self.algorithm.max_signature_len(self.key_algorithm)];
        let unsigned = if self.timestamp_reserve > 0 {
            Some(timestamp_placeholder(self.timestamp_reserve)?)
        } else {
            None
        };
        let der = self.assemble(signed_attributes, signature, unsigned)?;
        Ok(der.len())
    }

    /// Signs `content_digest` (the digest, under this builder's digest algorithm, of the
    /// detached content: for a PDF, of its `/ByteRange`) and returns the DER
    /// `ContentInfo`.
    ///
    /// # Errors
    ///
    /// [`Error::DigestLength`], [`Error::Key`] if the key fails,
    /// [`Error::SignatureLength`] / [`Error::MalformedEcdsaSignature`] for what it
    /// returned, [`Error::SignatureRejectedAfterSigning`] if the signature does not
    /// verify, [`Error::Encode`].
    pub fn sign(&self, content_digest: &[u8]) -> Result<Vec<u8>, Error> {
        let digest = self.algorithm.digest;
        if content_digest.len() != digest.output_len() {
            return Err(Error::DigestLength {
                algorithm: digest,
                expected: digest.output_len(),
                actual: content_digest.len(),
            });
        }
        let signed_attributes = self.signed_attributes(content_digest)?;
        // The bytes signed are the DER of the SET OF (RFC 5652 section 5.4); embedded, the
        // same content bytes follow an [0] IMPLICIT tag instead.
        let message = signed_attributes.to_der().map_err(Error::Encode)?;
        let message_hash = digest.digest(&message);
        let raw = self
            .key
            .sign(&SignRequest {
                message: &message,
                digest: &message_hash,
                algorithm: self.algorithm,
            })
            .map_err(Error::Key)?;
        let signature = match (self.algorithm.scheme, self.key_algorithm) {
            (SignatureScheme::Ecdsa, KeyAlgorithm::Ec(curve)) => ecdsa::to_der(curve, &raw)?,
            _ => {
                let expected = self.key_algorithm.raw_signature_len();
                if raw.len() != expected {
                    return Err(Error::SignatureLength {
                        expected,
                        actual: raw.len(),
                    });
                }
                raw
            }
        };
        if self.verify_after_signing {
            self.public_key
                .verify(self.algorithm, &message_hash, &signature)
                .map_err(|_| Error::SignatureRejectedAfterSigning)?;
        }
        self.assemble(signed_attributes, signature, None)
    }

    fn signed_attributes(&self, content_digest: &[u8]) -> Result<Attributes, Error> {
        attributes::build(
            content_digest,
            &self.signing_certificate_v2,
            self.signing_time.as_ref(),
        )
    }

    fn assemble(
        &self,
        signed_attributes: Attributes,
        signature: Vec<u8>,
        unsigned_attributes: Option<Attributes>,
    ) -> Result<Vec<u8>, Error> {
        let digest_algorithm = self.algorithm.digest.algorithm_identifier();
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(self.sid.clone()),
            digest_alg: digest_algorithm.clone(),
            signed_attrs: Some(signed_attributes),
            signature_algorithm: self.algorithm.algorithm_identifier()?,
            signature: OctetString::new(signature).map_err(Error::Encode)?,
            unsigned_attrs: unsigned_attributes,
        };
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![digest_algorithm]).map_err(Error::Encode)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid::ID_DATA,
                econtent: None,
            },
            certificates: Some(self.certificates.clone()),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(Error::Encode)?,
        };
        let content_info = ContentInfo {
            content_type: oid::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data).map_err(Error::Encode)?,
        };
        content_info.to_der().map_err(Error::Encode)
    }
}

/// Unsigned attributes holding a stand-in time-stamp token whose encoding is at least
/// `token_len` bytes long.
fn timestamp_placeholder(token_len: usize) -> Result<Attributes, Error> {
    // The smallest content length whose TLV reaches `token_len`: a TLV is at most six
    // bytes longer than its content, so start there.
    let mut content = token_len.saturating_sub(6);
    while 1 + der_length_len(content) + content < token_len {
        content += 1;
    }
    let token = Any::new(Tag::Sequence, vec![0u8; content]).map_err(Error::Encode)?;
    let attribute = attributes::attribute(oid::SIGNATURE_TIME_STAMP_TOKEN, Ok(token))?;
    SetOfVec::try_from(vec![attribute]).map_err(Error::Encode)
}
