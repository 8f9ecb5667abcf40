//! Object identifiers of the profile.

use der::asn1::ObjectIdentifier;

const fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

/// `id-sha256` (RFC 5754).
pub(crate) const SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.1");
/// `id-sha384` (RFC 5754).
pub(crate) const SHA384: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.2");
/// `id-sha512` (RFC 5754).
pub(crate) const SHA512: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.3");

/// `rsaEncryption` (RFC 8017).
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier = oid("1.2.840.113549.1.1.1");
/// `id-mgf1` (RFC 8017).
pub(crate) const MGF1: ObjectIdentifier = oid("1.2.840.113549.1.1.8");
/// `id-RSASSA-PSS` (RFC 8017).
pub(crate) const RSASSA_PSS: ObjectIdentifier = oid("1.2.840.113549.1.1.10");
/// `sha256WithRSAEncryption` (RFC 8017).
pub(crate) const SHA256_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.11");
/// `sha384WithRSAEncryption` (RFC 8017).
pub(crate) const SHA384_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.12");
/// `sha512WithRSAEncryption` (RFC 8017).
pub(crate) const SHA512_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.13");

/// `id-ecPublicKey` (RFC 5480).
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier = oid("1.2.840.10045.2.1");
/// `secp256r1` (RFC 5480).
pub(crate) const SECP256R1: ObjectIdentifier = oid("1.2.840.10045.3.1.7");
/// `secp384r1` (RFC 5480).
pub(crate) const SECP384R1: ObjectIdentifier = oid("1.3.132.0.34");
/// `secp521r1` (RFC 5480).
pub(crate) const SECP521R1: ObjectIdentifier = oid("1.3.132.0.35");
/// `ecdsa-with-SHA256` (RFC 5758).
pub(crate) const ECDSA_WITH_SHA256: ObjectIdentifier = oid("1.2.840.10045.4.3.2");
/// `ecdsa-with-SHA384` (RFC 5758).
pub(crate) const ECDSA_WITH_SHA384: ObjectIdentifier = oid("1.2.840.10045.4.3.3");
/// `ecdsa-with-SHA512` (RFC 5758).
pub(crate) const ECDSA_WITH_SHA512: ObjectIdentifier = oid("1.2.840.10045.4.3.4");

/// `id-data` (RFC 5652 section 4).
pub(crate) const ID_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.1");
/// `id-signedData` (RFC 5652 section 5.1).
pub(crate) const ID_SIGNED_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.2");

/// `id-contentType` (RFC 5652 section 11.1).
pub(crate) const CONTENT_TYPE: ObjectIdentifier = oid("1.2.840.113549.1.9.3");
/// `id-messageDigest` (RFC 5652 section 11.2).
pub(crate) const MESSAGE_DIGEST: ObjectIdentifier = oid("1.2.840.113549.1.9.4");
/// `id-signingTime` (RFC 5652 section 11.3).
pub(crate) const SIGNING_TIME: ObjectIdentifier = oid("1.2.840.113549.1.9.5");
/// `id-aa-signingCertificateV2` (RFC 5035 section 3).
pub(crate) const SIGNING_CERTIFICATE_V2: ObjectIdentifier = oid("1.2.840.113549.1.9.16.2.47");
/// `id-aa-signatureTimeStampToken` (RFC 3161 appendix A).
pub(crate) const SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier = oid("1.2.840.113549.1.9.16.2.14");
