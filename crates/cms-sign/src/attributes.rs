//! Signed attributes: content-type, message-digest, signing-time and the ESS
//! signing-certificate-v2 (RFC 5035), built and read back.

use std::time::{Duration, SystemTime};

use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::{DigestAlgorithm, Error, oid};

/// `ESSCertIDv2` (RFC 5035 section 4):
///
/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm  AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash       Hash,
///     issuerSerial   IssuerSerial OPTIONAL }
/// Hash ::= OCTET STRING
/// ```
///
/// DER omits a field equal to its DEFAULT, so `hash_algorithm` is `None` for SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// `IssuerSerial` (RFC 5035 section 4):
///
/// ```text
/// IssuerSerial ::= SEQUENCE {
///     issuer         GeneralNames,
///     serialNumber   CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct IssuerSerial {
    issuer: GeneralNames,
    serial_number: SerialNumber,
}

/// `SigningCertificateV2` (RFC 5035 section 3):
///
/// ```text
/// SigningCertificateV2 ::= SEQUENCE {
///     certs        SEQUENCE OF ESSCertIDv2,
///     policies     SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Vec<Any>>,
}

/// The value of the signing-certificate-v2 attribute for `certificate` (whose DER is
/// `certificate_der`): one `ESSCertIDv2` with the certificate's hash under `digest` and
/// its issuer (one `directoryName`) and serial number.
pub(crate) fn signing_certificate_v2(
    certificate: &Certificate,
    certificate_der: &[u8],
    digest: DigestAlgorithm,
) -> Result<Any, Error> {
    let tbs = certificate.tbs_certificate();
    let id = EssCertIdV2 {
        hash_algorithm: match digest {
            DigestAlgorithm::Sha256 => None,
            other => Some(other.algorithm_identifier()),
        },
        cert_hash: OctetString::new(digest.digest(certificate_der)).map_err(Error::Encode)?,
        issuer_serial: Some(IssuerSerial {
            issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
            serial_number: tbs.serial_number().clone(),
        }),
    };
    Any::encode_from(&SigningCertificateV2 {
        certs: vec![id],
        policies: None,
    })
    .map_err(Error::Encode)
}

/// The signing time as an X.509 `Time` (UTCTime through 2049, GeneralizedTime after),
/// in whole seconds.
pub(crate) fn signing_time(time: SystemTime) -> Result<Time, Error> {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::SigningTimeOutOfRange)?;
    let whole = Duration::from_secs(since_epoch.as_secs());
    let date_time =
        der::DateTime::from_unix_duration(whole).map_err(|_| Error::SigningTimeOutOfRange)?;
    Ok(Time::from(date_time))
}

/// A signing time whose encoding is as long as any: a GeneralizedTime, which X.509
/// `Time` (and so signing-time, RFC 5652 section 11.3) uses from 2050 on, two digits
/// longer than a UTCTime.
pub(crate) fn longest_signing_time() -> Result<Time, Error> {
    // 2050-01-01T00:00:00Z.
    signing_time(SystemTime::UNIX_EPOCH + Duration::from_secs(2_524_608_000))
}

/// The signed attributes, as a DER `SET OF` (sorted by their encodings, as DER demands):
/// content-type `id-data`, message-digest, signing-certificate-v2 and, if given,
/// signing-time.
pub(crate) fn build(
    content_digest: &[u8],
    signing_certificate_v2: &Any,
    signing_time: Option<&Time>,
) -> Result<Attributes, Error> {
    let mut attributes = vec![
        attribute(oid::CONTENT_TYPE, Any::encode_from(&oid::ID_DATA))?,
        attribute(
            oid::MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(content_digest).map_err(Error::Encode)?),
        )?,
        attribute(
            oid::SIGNING_CERTIFICATE_V2,
            Ok(signing_certificate_v2.clone()),
        )?,
    ];
    if let Some(time) = signing_time {
        attributes.push(attribute(oid::SIGNING_TIME, Any::encode_from(time))?);
    }
    SetOfVec::try_from(attributes).map_err(Error::Encode)
}

/// The signed attributes without signing-time, encoded once with the message digest
/// left to fill in for each signature.
///
/// Every attribute but message-digest is the same for every signature, and DER sorts the
/// SET OF by the attributes' encodings, which differ in their length or type before any
/// digest byte: the digest sits at the same offset whatever its value.
/// [`AttributesTemplate::new`] checks it: the encodings with an all-zero and an all-one
/// digest must differ in exactly the digest's bytes.
pub(crate) struct AttributesTemplate {
    der: Vec<u8>,
    digest: std::ops::Range<usize>,
}

impl AttributesTemplate {
    pub(crate) fn new(
        digest: DigestAlgorithm,
        signing_certificate_v2: &Any,
    ) -> Result<AttributesTemplate, Error> {
        let len = digest.output_len();
        let encode = |fill: u8| {
            build(&vec![fill; len], signing_certificate_v2, None)?
                .to_der()
                .map_err(Error::Encode)
        };
        let (zeros, ones) = (encode(0x00)?, encode(0xff)?);
        let moved = Error::Unreachable("the message digest moves with its value");
        let start = zeros
            .iter()
            .zip(&ones)
            .position(|(a, b)| a != b)
            .ok_or(Error::Unreachable(
                "the message digest is not in the attributes",
            ))?;
        let digest = start..start + len;
        let only_the_digest_differs = zeros.len() == ones.len()
            && zeros.get(digest.end..) == ones.get(digest.end..)
            && ones
                .get(digest.clone())
                .is_some_and(|bytes| bytes.iter().all(|&b| b == 0xff));
        if !only_the_digest_differs {
            return Err(moved);
        }
        Ok(AttributesTemplate { der: zeros, digest })
    }

    /// The DER `SET OF` signed attributes for `content_digest`.
    pub(crate) fn fill(&self, content_digest: &[u8]) -> Result<Vec<u8>, Error> {
        let mut der = self.der.clone();
        let slot = der
            .get_mut(self.digest.clone())
            .filter(|slot| slot.len() == content_digest.len())
            .ok_or(Error::Unreachable(
                "the digest was checked against its algorithm",
            ))?;
        slot.copy_from_slice(content_digest);
        Ok(der)
    }
}

/// An attribute with one value.
pub(crate) fn attribute(
    oid: ObjectIdentifier,
    value: der::Result<Any>,
) -> Result<Attribute, Error> {
    let value = value.map_err(Error::Encode)?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(Error::Encode)?,
    })
}

/// The only value of the attribute `oid` in `attributes`, if it occurs.
pub(crate) fn single_value(
    attributes: &Attributes,
    oid: ObjectIdentifier,
) -> Result<Option<&Any>, Error> {
    let mut found = attributes.iter().filter(|a| a.oid == oid);
    let Some(attribute) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attribute.values.len() != 1 {
        return Err(Error::AttributeCardinality { oid });
    }
    Ok(attribute.values.iter().next())
}

/// The signed attributes of a `SignerInfo`, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAttributes {
    /// content-type: `id-data` (1.2.840.113549.1.7.1) in this profile.
    pub content_type: ObjectIdentifier,
    /// message-digest: the digest of the detached content.
    pub message_digest: Vec<u8>,
    /// signing-time, if present (never in CAdES signatures).
    pub signing_time: Option<SystemTime>,
    /// The first `ESSCertIDv2` of signing-certificate-v2, if present.
    pub signing_certificate: Option<SigningCertificate>,
    /// Object identifiers of the other signed attributes, in DER order.
    pub other: Vec<ObjectIdentifier>,
}

/// The certificate a signing-certificate-v2 attribute designates (RFC 5035).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningCertificate {
    /// The hash algorithm over the certificate (SHA-256 when the DER DEFAULT omits it).
    pub hash_algorithm: DigestAlgorithm,
    /// The hash of the certificate's DER.
    pub cert_hash: Vec<u8>,
    /// `issuerSerial`, if present: the issuer's directory name(s) and the serial number.
    pub issuer_serial: Option<(Vec<Name>, SerialNumber)>,
}

impl SigningCertificate {
    /// Whether this designates `certificate` (DER `certificate_der`): its hash matches,
    /// and so do the issuer and serial number when present.
    pub fn matches(&self, certificate: &Certificate, certificate_der: &[u8]) -> bool {
        if self.hash_algorithm.digest(certificate_der) != self.cert_hash {
            return false;
        }
        match &self.issuer_serial {
            None => true,
            Some((issuers, serial)) => {
                let tbs = certificate.tbs_certificate();
                serial == tbs.serial_number() && issuers.iter().any(|n| n == tbs.issuer())
            }
        }
    }
}

impl SignedAttributes {
    /// Reads the attributes the profile knows; others are listed in `other`.
    pub(crate) fn parse(attributes: &Attributes) -> Result<SignedAttributes, Error> {
        let malformed = |what| move |source| Error::Malformed { what, source };
        let content_type = single_value(attributes, oid::CONTENT_TYPE)?
            .ok_or(Error::MissingAttribute {
                name: "content-type",
            })?
            .decode_as::<ObjectIdentifier>()
            .map_err(malformed("content-type attribute"))?;
        let message_digest = single_value(attributes, oid::MESSAGE_DIGEST)?
            .ok_or(Error::MissingAttribute {
                name: "message-digest",
            })?
            .decode_as::<OctetString>()
            .map_err(malformed("message-digest attribute"))?
            .into_bytes()
            .into_vec();
        let signing_time = match single_value(attributes, oid::SIGNING_TIME)? {
            None => None,
            Some(value) => {
                let time = Time::from_der(&value.to_der().map_err(Error::Encode)?)
                    .map_err(malformed("signing-time attribute"))?;
                Some(time.to_system_time())
            }
        };
        let signing_certificate = match single_value(attributes, oid::SIGNING_CERTIFICATE_V2)? {
            None => None,
            Some(value) => {
                let v2 = value
                    .decode_as::<SigningCertificateV2>()
                    .map_err(malformed("signing-certificate-v2 attribute"))?;
                let first = v2
                    .certs
                    .into_iter()
                    .next()
                    .ok_or(Error::EmptySigningCertificate)?;
                let hash_algorithm = match &first.hash_algorithm {
                    None => DigestAlgorithm::Sha256,
                    Some(id) => DigestAlgorithm::from_identifier(id)?,
                };
                let issuer_serial = first.issuer_serial.map(|is| {
                    let names = is
                        .issuer
                        .into_iter()
                        .filter_map(|g| match g {
                            GeneralName::DirectoryName(name) => Some(name),
                            _ => None,
                        })
                        .collect();
                    (names, is.serial_number)
                });
                Some(SigningCertificate {
                    hash_algorithm,
                    cert_hash: first.cert_hash.into_bytes().into_vec(),
                    issuer_serial,
                })
            }
        };
        let known = [
            oid::CONTENT_TYPE,
            oid::MESSAGE_DIGEST,
            oid::SIGNING_TIME,
            oid::SIGNING_CERTIFICATE_V2,
        ];
        let other = attributes
            .iter()
            .map(|a| a.oid)
            .filter(|o| !known.contains(o))
            .collect();
        Ok(SignedAttributes {
            content_type,
            message_digest,
            signing_time,
            signing_certificate,
            other,
        })
    }
}
