//! The `SignedData` builder.

use std::sync::Arc;
use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::{Any, SetOfVec};
use der::{Decode, Encode, Tag};
use x509_cert::Certificate;
use x509_cert::attr::Attributes;
use x509_cert::time::Time;

use crate::algorithm::der_length_len;
use crate::attributes::AttributesTemplate;
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
/// Made once per key and configuration and reused: everything that does not change from
/// one signature to the next (the parsed certificate, the signer's identifier, the
/// signing-certificate-v2 attribute, the DER of the certificates and algorithm
/// identifiers) is computed by [`SignedDataBuilder::new`], so that
/// [`SignedDataBuilder::sign`] only builds the signed attributes, has the key sign them
/// and writes the result. The builder owns its key (an `Arc`), `sign` takes `&self`, and
/// the builder is `Send + Sync`: keep it as long as the key, and share it between threads.
///
/// The output is a DER `ContentInfo` holding `SignedData` v1 with `id-data`, no
/// encapsulated content, the signer's certificate and chain, and one `SignerInfo` v1
/// identified by issuer and serial number, whose signed attributes are content-type,
/// message-digest, signing-certificate-v2 and (PKCS#7 sub-filter, on request)
/// signing-time.
pub struct SignedDataBuilder {
    key: Arc<dyn CmsSigner>,
    key_algorithm: KeyAlgorithm,
    algorithm: SignatureAlgorithm,
    /// The signing-time attribute's value for [`SignedDataBuilder::sign`], if the
    /// sub-filter has one.
    signing_time: Option<Time>,
    signing_certificate_v2: Any,
    /// The signed attributes of a signature without signing-time, but for the digest.
    attributes: AttributesTemplate,
    public_key: PublicKey,
    encoded: Encoded,
    timestamp_reserve: usize,
    verify_after_signing: bool,
}

/// The parts of the output that every signature shares, DER-encoded once.
struct Encoded {
    /// `SignedData`'s fields before `signerInfos`: version, digestAlgorithms,
    /// encapContentInfo and the `[0] IMPLICIT` certificates.
    signed_data_head: Vec<u8>,
    /// `SignerInfo`'s fields before `signedAttrs`: version, sid, digestAlgorithm.
    signer_info_head: Vec<u8>,
    /// `SignerInfo`'s signatureAlgorithm.
    signature_algorithm: Vec<u8>,
    /// The `id-signedData` OBJECT IDENTIFIER, `ContentInfo`'s contentType.
    content_type: Vec<u8>,
}

impl std::fmt::Debug for SignedDataBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedDataBuilder")
            .field("key_algorithm", &self.key_algorithm)
            .field("algorithm", &self.algorithm)
            .field("signing_time", &self.signing_time)
            .finish_non_exhaustive()
    }
}

impl SignedDataBuilder {
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
        key: Arc<dyn CmsSigner>,
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
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
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
        let encoded = Encoded::new(algorithm, &sid, &certificates)?;
        let attributes = AttributesTemplate::new(algorithm.digest, &signing_certificate_v2)?;

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
            signing_certificate_v2,
            attributes,
            public_key,
            encoded,
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

    /// The key that signs.
    pub fn key(&self) -> &Arc<dyn CmsSigner> {
        &self.key
    }

    /// An upper bound of the length of what [`SignedDataBuilder::sign`] and
    /// [`SignedDataBuilder::sign_at`] (at any time) return, plus the reserved time-stamp
    /// room: size the PDF's `/Contents` placeholder with it.
    ///
    /// Exact but for the ECDSA signature, whose DER length varies by a few bytes, and the
    /// signing-time attribute, a UTCTime through 2049 and a longer GeneralizedTime after;
    /// the bound assumes their longest forms.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if a length overflows.
    pub fn size_bound(&self) -> Result<usize, Error> {
        let digest = vec![0u8; self.algorithm.digest.output_len()];
        let signing_time = match self.signing_time {
            Some(_) => Some(attributes::longest_signing_time()?),
            None => None,
        };
        let signed_attributes =
            attributes::build(&digest, &self.signing_certificate_v2, signing_time.as_ref())?
                .to_der()
                .map_err(Error::Encode)?;
        let signature = vec![0u8; self.algorithm.max_signature_len(self.key_algorithm)];
        let unsigned = if self.timestamp_reserve > 0 {
            Some(
                timestamp_placeholder(self.timestamp_reserve)?
                    .to_der()
                    .map_err(Error::Encode)?,
            )
        } else {
            None
        };
        let der = self.assemble(&signed_attributes, &signature, unsigned.as_deref())?;
        Ok(der.len())
    }

    /// Signs `content_digest` (the digest, under this builder's digest algorithm, of the
    /// detached content: for a PDF, of its `/ByteRange`) and returns the DER
    /// `ContentInfo`. A signing-time attribute, if the sub-filter has one, holds the time
    /// given to [`SignedDataBuilder::new`].
    ///
    /// # Errors
    ///
    /// [`Error::DigestLength`], [`Error::Key`] if the key fails,
    /// [`Error::SignatureLength`] / [`Error::MalformedEcdsaSignature`] for what it
    /// returned, [`Error::SignatureRejectedAfterSigning`] if the signature does not
    /// verify, [`Error::Encode`].
    pub fn sign(&self, content_digest: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_with(&*self.key, content_digest, self.signing_time.as_ref())
    }

    /// As [`SignedDataBuilder::sign`], for a signature claimed at `time`: a builder made
    /// with a signing-time attribute (`SubFilter::Pkcs7Detached` with a time) puts `time`
    /// in it instead of the time it was made with. Without one (`CadesDetached`, or no
    /// time asked for), `time` is not in the CMS: it belongs in the PDF's `/M`.
    ///
    /// # Errors
    ///
    /// As [`SignedDataBuilder::sign`]; [`Error::SigningTimeOutOfRange`].
    pub fn sign_at(&self, content_digest: &[u8], time: SystemTime) -> Result<Vec<u8>, Error> {
        self.sign_at_with(&*self.key, content_digest, time)
    }

    /// As [`SignedDataBuilder::sign_at`], with `key` signing in place of the builder's
    /// key: one that acts for it (the same certificate), such as a handle on a signature
    /// the key already started (`p11-session`'s `StartedSign`).
    ///
    /// # Errors
    ///
    /// As [`SignedDataBuilder::sign_at`]; [`Error::OtherKey`] if `key` has another
    /// certificate than the builder's key.
    pub fn sign_at_using(
        &self,
        key: &dyn CmsSigner,
        content_digest: &[u8],
        time: SystemTime,
    ) -> Result<Vec<u8>, Error> {
        if key.certificate() != self.key.certificate() {
            return Err(Error::OtherKey);
        }
        self.sign_at_with(key, content_digest, time)
    }

    /// [`SignedDataBuilder::sign_at`] with `key`, known to act for the builder's.
    fn sign_at_with(
        &self,
        key: &dyn CmsSigner,
        content_digest: &[u8],
        time: SystemTime,
    ) -> Result<Vec<u8>, Error> {
        match self.signing_time {
            Some(_) => self.sign_with(key, content_digest, Some(&attributes::signing_time(time)?)),
            None => self.sign_with(key, content_digest, None),
        }
    }

    fn sign_with(
        &self,
        key: &dyn CmsSigner,
        content_digest: &[u8],
        signing_time: Option<&Time>,
    ) -> Result<Vec<u8>, Error> {
        let digest = self.algorithm.digest;
        if content_digest.len() != digest.output_len() {
            return Err(Error::DigestLength {
                algorithm: digest,
                expected: digest.output_len(),
                actual: content_digest.len(),
            });
        }
        // The bytes signed are the DER of the SET OF (RFC 5652 section 5.4); embedded, the
        // same content bytes follow an [0] IMPLICIT tag instead.
        let message = match signing_time {
            None => self.attributes.fill(content_digest)?,
            Some(time) => {
                attributes::build(content_digest, &self.signing_certificate_v2, Some(time))?
                    .to_der()
                    .map_err(Error::Encode)?
            }
        };
        let message_hash = digest.digest(&message);
        let raw = key
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
                .verify_digest(self.algorithm, &message_hash, &signature)
                .map_err(|_| Error::SignatureRejectedAfterSigning)?;
        }
        self.assemble(&message, &signature, None)
    }

    /// The DER `ContentInfo` around one `SignerInfo` with these signed attributes (their
    /// DER `SET OF`), signature and unsigned attributes (their DER `SET OF`, if any):
    ///
    /// ```text
    /// ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT SignedData }
    /// SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    ///     [0] IMPLICIT certificates, signerInfos SET OF SignerInfo }
    /// SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] IMPLICIT signedAttrs,
    ///     signatureAlgorithm, signature OCTET STRING, [1] IMPLICIT unsignedAttrs OPTIONAL }
    /// ```
    ///
    /// The shared parts were encoded once by [`Encoded::new`]; only the lengths and the
    /// per-signature parts are written here.
    fn assemble(
        &self,
        signed_attributes: &[u8],
        signature: &[u8],
        unsigned_attributes: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let encoded = &self.encoded;
        // Retagging keeps the length: each attribute SET's TLV is as long under its
        // context tag.
        let signer_info = encoded.signer_info_head.len()
            + signed_attributes.len()
            + encoded.signature_algorithm.len()
            + tlv_len(signature.len())
            + unsigned_attributes.map_or(0, <[u8]>::len);
        let signer_infos = tlv_len(signer_info);
        let signed_data = encoded.signed_data_head.len() + tlv_len(signer_infos);
        let content = tlv_len(signed_data);
        let content_info = encoded.content_type.len() + tlv_len(content);

        let mut out = Vec::with_capacity(tlv_len(content_info));
        write_header(&mut out, SEQUENCE, content_info)?;
        out.extend_from_slice(&encoded.content_type);
        write_header(&mut out, CONTEXT_0, content)?;
        write_header(&mut out, SEQUENCE, signed_data)?;
        out.extend_from_slice(&encoded.signed_data_head);
        write_header(&mut out, SET, signer_infos)?;
        write_header(&mut out, SEQUENCE, signer_info)?;
        out.extend_from_slice(&encoded.signer_info_head);
        write_retagged(&mut out, CONTEXT_0, signed_attributes)?;
        out.extend_from_slice(&encoded.signature_algorithm);
        write_header(&mut out, OCTET_STRING, signature.len())?;
        out.extend_from_slice(signature);
        if let Some(unsigned) = unsigned_attributes {
            write_retagged(&mut out, CONTEXT_1, unsigned)?;
        }
        Ok(out)
    }
}

impl Encoded {
    fn new(
        algorithm: SignatureAlgorithm,
        sid: &SignerIdentifier,
        certificates: &CertificateSet,
    ) -> Result<Encoded, Error> {
        let digest_algorithm = algorithm.digest.algorithm_identifier();
        let version = CmsVersion::V1.to_der().map_err(Error::Encode)?;

        let mut signed_data_head = version.clone();
        SetOfVec::try_from(vec![digest_algorithm.clone()])
            .and_then(|set| set.encode_to_vec(&mut signed_data_head))
            .map_err(Error::Encode)?;
        EncapsulatedContentInfo {
            econtent_type: oid::ID_DATA,
            econtent: None,
        }
        .encode_to_vec(&mut signed_data_head)
        .map_err(Error::Encode)?;
        let certificates = certificates.to_der().map_err(Error::Encode)?;
        write_retagged(&mut signed_data_head, CONTEXT_0, &certificates)?;

        let mut signer_info_head = version;
        sid.encode_to_vec(&mut signer_info_head)
            .and_then(|_| digest_algorithm.encode_to_vec(&mut signer_info_head))
            .map_err(Error::Encode)?;

        Ok(Encoded {
            signed_data_head,
            signer_info_head,
            signature_algorithm: algorithm
                .algorithm_identifier()?
                .to_der()
                .map_err(Error::Encode)?,
            content_type: oid::ID_SIGNED_DATA.to_der().map_err(Error::Encode)?,
        })
    }
}

/// Identifier octets of the TLVs written by hand (X.690 8.1.2): universal SEQUENCE, SET
/// and OCTET STRING, and the constructed context-specific `[0]` and `[1]`.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OCTET_STRING: u8 = 0x04;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;

/// The length of a TLV with a one-octet tag (all of ours) and `len` bytes of value.
fn tlv_len(len: usize) -> usize {
    1 + der_length_len(len) + len
}

/// Writes the identifier and length octets of a TLV whose value, `len` bytes, follows:
/// the length in DER's shortest form (X.690 8.1.3, 10.1), as [`der_length_len`] counts
/// it.
fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) -> Result<(), Error> {
    let len = u32::try_from(len)
        .map_err(|_| Error::Unreachable("no part of a signature container reaches 4 GiB"))?;
    out.push(tag);
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let octets = len.to_be_bytes();
            let long = octets
                .get(len.leading_zeros() as usize / 8..)
                .unwrap_or_default();
            // One to four length octets: 0x81 to 0x84.
            out.push(0x80 | long.len() as u8);
            out.extend_from_slice(long);
        }
    }
    Ok(())
}

/// Writes `der`, one TLV with a one-octet tag, under `tag` instead: IMPLICIT tagging of
/// an encoded value, whose length octets and value stay as they are.
fn write_retagged(out: &mut Vec<u8>, tag: u8, der: &[u8]) -> Result<(), Error> {
    match der.split_first() {
        // Tag number 31 in the first octet announces a multi-octet tag.
        Some((&first, rest)) if first & 0x1f != 0x1f => {
            out.push(tag);
            out.extend_from_slice(rest);
            Ok(())
        }
        _ => Err(Error::Unreachable("a SET OF has a one-octet tag")),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cms::content_info::ContentInfo;
    use cms::signed_data::{SignedData, SignerInfo, SignerInfos};
    use der::asn1::OctetString;
    use test_pki::{KeyKind, Pki, SoftwareKey};

    use super::*;
    use crate::{DigestAlgorithm, KeyError};

    /// A fixture key whose chain repeats its own certificate (which must be left out).
    struct Fixture {
        key: &'static SoftwareKey,
        chain: Vec<Vec<u8>>,
    }

    impl CmsSigner for Fixture {
        fn key_algorithm(&self) -> KeyAlgorithm {
            match self.key.kind() {
                KeyKind::Rsa2048 => KeyAlgorithm::Rsa { modulus_bits: 2048 },
                KeyKind::Rsa3072 => KeyAlgorithm::Rsa { modulus_bits: 3072 },
                KeyKind::P256 => KeyAlgorithm::Ec(crate::EcCurve::P256),
                KeyKind::P384 => KeyAlgorithm::Ec(crate::EcCurve::P384),
                KeyKind::P521 => KeyAlgorithm::Ec(crate::EcCurve::P521),
            }
        }
        fn certificate(&self) -> &[u8] {
            self.key.cert_der()
        }
        fn chain(&self) -> &[Vec<u8>] {
            &self.chain
        }
        fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
            Ok(match request.algorithm.scheme {
                SignatureScheme::RsaPkcs1v15 => self.key.sign_pkcs1v15(request.digest)?,
                SignatureScheme::RsaPss => self.key.sign_pss(request.digest)?,
                SignatureScheme::Ecdsa => self.key.sign_ecdsa(request.digest)?,
            })
        }
    }

    /// The same `ContentInfo` built from `cms`'s types and encoded by `der`: what the
    /// builder wrote before it kept the shared parts encoded.
    fn typed(builder: &SignedDataBuilder, der: &[u8]) -> Vec<u8> {
        let parsed = ContentInfo::from_der(der).unwrap();
        let parsed: SignedData = parsed.content.decode_as().unwrap();
        let parsed_info = parsed.signer_infos.0.get(0).unwrap().clone();

        let key = builder.key();
        let certificate = Certificate::from_der(key.certificate()).unwrap();
        let tbs = certificate.tbs_certificate();
        let sid = IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        };
        let mut certificates = vec![CertificateChoices::Certificate(certificate)];
        certificates.extend(
            key.chain()
                .iter()
                .filter(|der| der.as_slice() != key.certificate())
                .map(|der| CertificateChoices::Certificate(Certificate::from_der(der).unwrap())),
        );
        let digest_algorithm = builder.algorithm.digest.algorithm_identifier();
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(sid),
            digest_alg: digest_algorithm.clone(),
            signed_attrs: parsed_info.signed_attrs,
            signature_algorithm: builder.algorithm.algorithm_identifier().unwrap(),
            signature: OctetString::new(parsed_info.signature.as_bytes()).unwrap(),
            unsigned_attrs: parsed_info.unsigned_attrs,
        };
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![digest_algorithm]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid::ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet::try_from(certificates).unwrap()),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info]).unwrap(),
        };
        ContentInfo {
            content_type: oid::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn the_attributes_template_is_the_attributes_built() {
        let key: Arc<dyn CmsSigner> = Arc::new(Fixture {
            key: SoftwareKey::fixture(KeyKind::P256),
            chain: Vec::new(),
        });
        for digest in DigestAlgorithm::ALL {
            let algorithm = SignatureAlgorithm::default_for(key.key_algorithm(), digest);
            let builder =
                SignedDataBuilder::new(Arc::clone(&key), algorithm, SubFilter::CadesDetached)
                    .unwrap();
            let len = digest.output_len();
            let mut digests = vec![vec![0x00; len], vec![0xff; len], vec![0x30; len]];
            digests.extend((0u8..8).map(|seed| {
                (0..len)
                    .map(|i| {
                        (i as u8)
                            .wrapping_mul(37)
                            .wrapping_add(seed.wrapping_mul(91))
                    })
                    .collect()
            }));
            for content_digest in digests {
                let built =
                    attributes::build(&content_digest, &builder.signing_certificate_v2, None)
                        .unwrap()
                        .to_der()
                        .unwrap();
                assert_eq!(builder.attributes.fill(&content_digest).unwrap(), built);
            }
        }
    }

    #[test]
    fn output_is_the_typed_encoding_and_within_the_bound() {
        let before_2050 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after_2050 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_600_000_000);
        for kind in KeyKind::ALL {
            let software = SoftwareKey::fixture(kind);
            let key: Arc<dyn CmsSigner> = Arc::new(Fixture {
                key: software,
                chain: vec![
                    Pki::fixture().intermediate_der().to_vec(),
                    software.cert_der().to_vec(),
                ],
            });
            let algorithm =
                SignatureAlgorithm::default_for(key.key_algorithm(), DigestAlgorithm::Sha384);
            for sub_filter in [
                SubFilter::CadesDetached,
                SubFilter::Pkcs7Detached {
                    signing_time: Some(before_2050),
                },
            ] {
                let mut builder =
                    SignedDataBuilder::new(Arc::clone(&key), algorithm, sub_filter).unwrap();
                let digest = vec![0x5a; 48];
                let mut outputs = vec![
                    builder.sign(&digest).unwrap(),
                    builder.sign_at(&digest, after_2050).unwrap(),
                ];
                let bound = builder.size_bound().unwrap();
                // Room for a time-stamp token: lengths of two and of three octets.
                let reserve = if kind.is_rsa() { 70_000 } else { 3000 };
                builder.reserve_timestamp(reserve);
                // The longest form of everything: the bound is reached exactly.
                let longest_time = builder
                    .signing_time
                    .as_ref()
                    .map(|_| attributes::longest_signing_time().unwrap());
                let signed_attributes = attributes::build(
                    &digest,
                    &builder.signing_certificate_v2,
                    longest_time.as_ref(),
                )
                .unwrap()
                .to_der()
                .unwrap();
                let unsigned = timestamp_placeholder(reserve).unwrap().to_der().unwrap();
                let signature = vec![0x11; algorithm.max_signature_len(key.key_algorithm())];
                outputs.push(
                    builder
                        .assemble(&signed_attributes, &signature, Some(&unsigned))
                        .unwrap(),
                );
                assert_eq!(
                    outputs[2].len(),
                    builder.size_bound().unwrap(),
                    "{kind} {sub_filter:?}"
                );
                for (i, der) in outputs.iter().enumerate() {
                    assert_eq!(
                        der,
                        &typed(&builder, der),
                        "{kind} {sub_filter:?} output {i}"
                    );
                    if i < 2 {
                        assert!(der.len() <= bound, "{kind} {sub_filter:?} output {i}");
                    }
                }
                let time_lengths = outputs[..2].iter().map(Vec::len).collect::<Vec<_>>();
                let expected_growth = if builder.signing_time.is_some() { 2 } else { 0 };
                assert!(
                    time_lengths[1].abs_diff(time_lengths[0] + expected_growth) <= 2,
                    "{kind} {sub_filter:?}: {time_lengths:?}"
                );
            }
        }
    }
}
