//! Reading a detached `SignedData` back, verifying it, and adding a time-stamp token.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use der::asn1::{Any, AnyRef, SetOfVec};
use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::attributes::{self, SignedAttributes};
use crate::public_key::PublicKey;
use crate::{DigestAlgorithm, Error, KeyAlgorithm, SignatureAlgorithm, oid};

/// A detached CMS `SignedData` with one signer, parsed: what `pdfsign verify` and the tests
/// look at.
///
/// Parsing checks the structure and the algorithms; [`SignedCms::verify`] and
/// [`SignedCms::verify_digest`] check the content, the attributes and the signature.
/// Certificate path validation (trust, validity, revocation) is not done here.
#[derive(Clone, Debug)]
pub struct SignedCms {
    digest_algorithm: DigestAlgorithm,
    signature_algorithm: SignatureAlgorithm,
    signer: Certificate,
    signer_der: Vec<u8>,
    chain: Vec<Certificate>,
    signed_attributes: SignedAttributes,
    /// The signed attributes exactly as they were signed: their bytes as found, under a
    /// `SET OF` tag instead of `[0]`.
    signed_attributes_der: Vec<u8>,
    signature: Vec<u8>,
    timestamp_token: Option<Vec<u8>>,
}

impl SignedCms {
    /// Parses a DER `ContentInfo` holding a detached `SignedData` with exactly one signer.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for bad or truncated DER, [`Error::NotSignedData`],
    /// [`Error::EncapsulatedContent`], [`Error::SignerCount`],
    /// [`Error::UnsupportedDigestAlgorithm`], [`Error::UnsupportedSignatureAlgorithm`],
    /// [`Error::UnexpectedAlgorithmParameters`], [`Error::UnsupportedPssParameters`],
    /// [`Error::InconsistentDigestAlgorithms`], [`Error::SignerCertificateMissing`],
    /// [`Error::MissingSignedAttributes`], [`Error::MissingAttribute`],
    /// [`Error::AttributeCardinality`], [`Error::EmptySigningCertificate`].
    pub fn from_der(der: &[u8]) -> Result<SignedCms, Error> {
        let (signed_data, signer_info) = decode(der)?;

        let digest_algorithm = DigestAlgorithm::from_identifier(&signer_info.digest_alg)?;
        if !signed_data
            .digest_algorithms
            .iter()
            .any(|id| id.oid == signer_info.digest_alg.oid)
        {
            return Err(Error::DigestAlgorithmNotListed {
                algorithm: digest_algorithm,
            });
        }
        let signature_algorithm = SignatureAlgorithm::from_identifier(
            &signer_info.signature_algorithm,
            digest_algorithm,
        )?;

        let mut certificates: Vec<Certificate> = signed_data
            .certificates
            .iter()
            .flat_map(|set| set.0.iter())
            .filter_map(|choice| match choice {
                CertificateChoices::Certificate(cert) => Some(cert.clone()),
                CertificateChoices::Other(_) => None,
            })
            .collect();
        let signer_index = certificates
            .iter()
            .position(|cert| identifies(&signer_info.sid, cert))
            .ok_or(Error::SignerCertificateMissing)?;
        let signer = certificates.remove(signer_index);
        let signer_der = signer.to_der().map_err(Error::Encode)?;
        let chain = order_chain(&signer, certificates);

        let attributes = signer_info
            .signed_attrs
            .as_ref()
            .ok_or(Error::MissingSignedAttributes)?;
        let signed_attributes = SignedAttributes::parse(attributes)?;
        let signed_attributes_der = raw_signed_attributes(der)?;

        let timestamp_token = match &signer_info.unsigned_attrs {
            None => None,
            Some(unsigned) => {
                match attributes::single_value(unsigned, oid::SIGNATURE_TIME_STAMP_TOKEN)? {
                    None => None,
                    Some(token) => Some(token.to_der().map_err(Error::Encode)?),
                }
            }
        };

        Ok(SignedCms {
            digest_algorithm,
            signature_algorithm,
            signer,
            signer_der,
            chain,
            signed_attributes,
            signed_attributes_der,
            signature: signer_info.signature.as_bytes().to_vec(),
            timestamp_token,
        })
    }

    /// The `SignerInfo`'s digest algorithm (also the signature's hash).
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    /// The signature algorithm.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.signature_algorithm
    }

    /// The signer's certificate.
    pub fn signer_certificate(&self) -> &Certificate {
        &self.signer
    }

    /// The signer's certificate, DER.
    pub fn signer_certificate_der(&self) -> &[u8] {
        &self.signer_der
    }

    /// The signer's key algorithm, from its certificate.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedPublicKey`] or [`Error::InvalidPublicKey`].
    pub fn signer_key_algorithm(&self) -> Result<KeyAlgorithm, Error> {
        Ok(
            PublicKey::from_spki(self.signer.tbs_certificate().subject_public_key_info())?
                .algorithm(),
        )
    }

    /// The other certificates, ordered up from the signer's issuer as far as issuer names
    /// link them; certificates outside that path follow in their encoded order.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// The signed attributes.
    pub fn signed_attributes(&self) -> &SignedAttributes {
        &self.signed_attributes
    }

    /// The DER bytes the signature covers: the signed attributes as a `SET OF`.
    pub fn signed_attributes_der(&self) -> &[u8] {
        &self.signed_attributes_der
    }

    /// The `SignerInfo`'s signature value (for ECDSA a DER `Ecdsa-Sig-Value`). A RFC 3161
    /// time-stamp request for PAdES B-T imprints the hash of these bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signature time-stamp token (unsigned attribute
    /// `id-aa-signatureTimeStampToken`), DER, if present. It is reported, not verified.
    pub fn timestamp_token(&self) -> Option<&[u8]> {
        self.timestamp_token.as_deref()
    }

    /// Verifies against the detached `content`: hashes it, then [`SignedCms::verify_digest`].
    ///
    /// # Errors
    ///
    /// As [`SignedCms::verify_digest`].
    pub fn verify(&self, content: &[u8]) -> Result<(), Error> {
        self.verify_digest(&self.digest_algorithm.digest(content))
    }

    /// Verifies against the digest of the detached content: the content-type is
    /// `id-data`, the message-digest equals `content_digest`, signing-certificate-v2 (if
    /// present) designates the signer's certificate, and the signature over the signed
    /// attributes verifies with the certificate's public key.
    ///
    /// # Errors
    ///
    /// [`Error::DigestLength`], [`Error::ContentTypeMismatch`],
    /// [`Error::MessageDigestMismatch`], [`Error::SigningCertificateMismatch`],
    /// [`Error::UnsupportedPublicKey`], [`Error::InvalidPublicKey`],
    /// [`Error::UnsupportedCombination`], [`Error::MalformedEcdsaSignature`],
    /// [`Error::SignatureInvalid`].
    pub fn verify_digest(&self, content_digest: &[u8]) -> Result<(), Error> {
        let digest = self.digest_algorithm;
        if content_digest.len() != digest.output_len() {
            return Err(Error::DigestLength {
                algorithm: digest,
                expected: digest.output_len(),
                actual: content_digest.len(),
            });
        }
        let attributes = &self.signed_attributes;
        if attributes.content_type != oid::ID_DATA {
            return Err(Error::ContentTypeMismatch {
                found: attributes.content_type,
            });
        }
        if attributes.message_digest != content_digest {
            return Err(Error::MessageDigestMismatch);
        }
        if let Some(signing_certificate) = &attributes.signing_certificate
            && !signing_certificate.matches(&self.signer, &self.signer_der)
        {
            return Err(Error::SigningCertificateMismatch);
        }
        let public_key =
            PublicKey::from_spki(self.signer.tbs_certificate().subject_public_key_info())?;
        let hash = digest.digest(&self.signed_attributes_der);
        public_key.verify_digest(self.signature_algorithm, &hash, &self.signature)
    }
}

/// Adds a RFC 3161 time-stamp token (`token`: the DER `ContentInfo` a TSA returned) as
/// the unsigned attribute `id-aa-signatureTimeStampToken` of the one `SignerInfo` of the
/// DER `SignedData` `cms`, and returns the new DER. The signed parts are unchanged.
///
/// The token is checked to be a DER `ContentInfo` holding `SignedData`; its content is
/// not verified.
///
/// # Errors
///
/// [`Error::Malformed`], [`Error::NotSignedData`], [`Error::SignerCount`] for `cms`;
/// [`Error::NonCanonicalEncoding`] if `cms` is not DER (re-encoding it would alter the
/// signed bytes); [`Error::InvalidTimestampToken`]; [`Error::TimestampAlreadyPresent`].
pub fn add_timestamp_token(cms: &[u8], token: &[u8]) -> Result<Vec<u8>, Error> {
    let (mut signed_data, mut signer_info) = decode(cms)?;
    let canonical = reencode(&signed_data)?;
    if canonical != cms {
        return Err(Error::NonCanonicalEncoding);
    }

    let token_info = ContentInfo::from_der(token).map_err(|_| Error::InvalidTimestampToken)?;
    if token_info.content_type != oid::ID_SIGNED_DATA
        || token_info.content.decode_as::<SignedData>().is_err()
    {
        return Err(Error::InvalidTimestampToken);
    }
    let token = Any::from_der(token).map_err(|_| Error::InvalidTimestampToken)?;
    let attribute = attributes::attribute(oid::SIGNATURE_TIME_STAMP_TOKEN, Ok(token))?;

    let unsigned = match signer_info.unsigned_attrs.take() {
        None => SetOfVec::try_from(vec![attribute]).map_err(Error::Encode)?,
        Some(mut unsigned) => {
            if unsigned
                .iter()
                .any(|a| a.oid == oid::SIGNATURE_TIME_STAMP_TOKEN)
            {
                return Err(Error::TimestampAlreadyPresent);
            }
            unsigned.insert(attribute).map_err(Error::Encode)?;
            unsigned
        }
    };
    signer_info.unsigned_attrs = Some(unsigned);
    signed_data.signer_infos = SignerInfos::try_from(vec![signer_info]).map_err(Error::Encode)?;
    reencode(&signed_data)
}

/// Decodes the `ContentInfo`, its `SignedData` and its one `SignerInfo`.
fn decode(der: &[u8]) -> Result<(SignedData, SignerInfo), Error> {
    let content_info = ContentInfo::from_der(der).map_err(|source| Error::Malformed {
        what: "ContentInfo",
        source,
    })?;
    if content_info.content_type != oid::ID_SIGNED_DATA {
        return Err(Error::NotSignedData {
            content_type: content_info.content_type,
        });
    }
    let signed_data = content_info
        .content
        .decode_as::<SignedData>()
        .map_err(|source| Error::Malformed {
            what: "SignedData",
            source,
        })?;
    if signed_data.encap_content_info.econtent.is_some() {
        return Err(Error::EncapsulatedContent);
    }
    if signed_data.encap_content_info.econtent_type != oid::ID_DATA {
        return Err(Error::ContentTypeMismatch {
            found: signed_data.encap_content_info.econtent_type,
        });
    }
    let count = signed_data.signer_infos.0.len();
    let signer_info = match signed_data.signer_infos.0.iter().next() {
        Some(signer_info) if count == 1 => signer_info.clone(),
        _ => return Err(Error::SignerCount { count }),
    };
    // RFC 5652 sections 5.1 and 5.3: SignerInfo v1 goes with issuerAndSerialNumber, v3 with
    // subjectKeyIdentifier; SignedData is v3 if a SignerInfo is, v1 otherwise (no
    // attribute or other certificates here).
    let signer_version = match signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    if signer_info.version != signer_version {
        return Err(Error::UnexpectedVersion {
            structure: "SignerInfo",
            version: signer_info.version as u8,
        });
    }
    if signed_data.version != signer_version {
        return Err(Error::UnexpectedVersion {
            structure: "SignedData",
            version: signed_data.version as u8,
        });
    }
    Ok((signed_data, signer_info))
}

fn reencode(signed_data: &SignedData) -> Result<Vec<u8>, Error> {
    ContentInfo {
        content_type: oid::ID_SIGNED_DATA,
        content: Any::encode_from(signed_data).map_err(Error::Encode)?,
    }
    .to_der()
    .map_err(Error::Encode)
}

/// Whether `sid` designates `cert`.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            &isn.issuer == tbs.issuer() && &isn.serial_number == tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => matches!(
            tbs.get_extension::<SubjectKeyIdentifier>(),
            Ok(Some((_, found))) if &found == ski
        ),
    }
}

/// Orders `others` from the signer's issuer upwards, as far as names link them.
fn order_chain(signer: &Certificate, mut others: Vec<Certificate>) -> Vec<Certificate> {
    let mut chain = Vec::with_capacity(others.len());
    let mut current = signer.tbs_certificate().clone();
    while current.issuer() != current.subject() {
        let Some(i) = others
            .iter()
            .position(|c| c.tbs_certificate().subject() == current.issuer())
        else {
            break;
        };
        let next = others.remove(i);
        current = next.tbs_certificate().clone();
        chain.push(next);
    }
    chain.extend(others);
    chain
}

/// The signed attributes exactly as encoded in `der` (which `decode` accepted), re-tagged
/// as the `SET OF` that was signed (RFC 5652 section 5.4). Read from the bytes, not
/// re-encoded, so a signature over unsorted attributes still verifies as signed.
fn raw_signed_attributes(der: &[u8]) -> Result<Vec<u8>, Error> {
    let malformed = |source| Error::Malformed {
        what: "SignedData",
        source,
    };
    // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
    let content_info = AnyRef::from_der(der).map_err(malformed)?;
    let explicit = nth_child(content_info.value(), 1)?;
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    //   [0] certificates OPTIONAL, [1] crls OPTIONAL, signerInfos SET OF }
    let signed_data = AnyRef::from_der(explicit.value()).map_err(malformed)?;
    let signer_infos = children(signed_data.value())?
        .into_iter()
        .rev()
        .find(|c| c.tag() == Tag::Set)
        .ok_or(Error::MissingSignedAttributes)?;
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, ... }
    let signer_info = AnyRef::from_der(signer_infos.value()).map_err(malformed)?;
    let signed_attributes = children(signer_info.value())?
        .into_iter()
        .nth(3)
        .filter(|c| {
            c.tag()
                == Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber(0),
                }
        })
        .ok_or(Error::MissingSignedAttributes)?;
    AnyRef::new(Tag::Set, signed_attributes.value())
        .and_then(|set| set.to_der())
        .map_err(Error::Encode)
}

/// The TLVs inside a constructed value.
fn children(value: &[u8]) -> Result<Vec<AnyRef<'_>>, Error> {
    let malformed = |source| Error::Malformed {
        what: "SignedData",
        source,
    };
    let mut reader = SliceReader::new(value).map_err(malformed)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(reader.decode::<AnyRef<'_>>().map_err(malformed)?);
    }
    Ok(out)
}

fn nth_child(value: &[u8], n: usize) -> Result<AnyRef<'_>, Error> {
    children(value)?
        .into_iter()
        .nth(n)
        .ok_or(Error::Unreachable(
            "decoding accepted the ContentInfo, so it has a content field",
        ))
}
