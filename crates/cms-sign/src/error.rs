//! The crate's error type.

use der::asn1::ObjectIdentifier;

use crate::{DigestAlgorithm, KeyAlgorithm, SignatureAlgorithm};

/// The error a key's `sign` returns: whatever the key's implementation reports.
pub type KeyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building, parsing or verifying a `SignedData`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Before signing.
    /// The key cannot make this signature (e.g. PSS on an EC key, ECDSA on an RSA key, a
    /// modulus too short for the digest). Nothing was signed.
    #[error("a {key} key cannot sign with {algorithm}: {reason}")]
    UnsupportedCombination {
        /// What the key is.
        key: KeyAlgorithm,
        /// What was asked for.
        algorithm: SignatureAlgorithm,
        /// Why not.
        reason: &'static str,
    },
    /// The key says it does not allow this algorithm (e.g. its `CKA_ALLOWED_MECHANISMS`).
    /// Nothing was signed.
    #[error("the key does not allow {algorithm}")]
    AlgorithmNotAllowed {
        /// What was asked for.
        algorithm: SignatureAlgorithm,
    },
    /// The key's certificate holds another kind of key than the key reports.
    #[error("the key reports {key} but its certificate holds {certificate}")]
    CertificateKeyMismatch {
        /// What the key reports.
        key: KeyAlgorithm,
        /// What the certificate's public key is.
        certificate: KeyAlgorithm,
    },
    /// A key given to sign for a builder has another certificate than the builder's key.
    #[error("the key given to sign has another certificate than the builder's key")]
    OtherKey,
    /// A digest has the wrong length for its algorithm.
    #[error("a {algorithm} digest is {expected} bytes, got {actual}")]
    DigestLength {
        /// The digest algorithm.
        algorithm: DigestAlgorithm,
        /// Its output length.
        expected: usize,
        /// The length given.
        actual: usize,
    },

    // While signing.
    /// The key failed to sign.
    #[error("the key failed to sign")]
    Key(#[source] KeyError),
    /// The key returned a signature of the wrong length (RSA: not the modulus length;
    /// ECDSA: neither `2 ×` the scalar length as raw `r || s` nor a DER `Ecdsa-Sig-Value`).
    #[error("the key returned a {actual}-byte signature, expected {expected} bytes")]
    SignatureLength {
        /// The expected length (for ECDSA, of the raw form).
        expected: usize,
        /// The returned length.
        actual: usize,
    },
    /// An ECDSA signature is not a valid `r || s` or `Ecdsa-Sig-Value` for the curve
    /// (zero, too long, not DER).
    #[error("malformed ECDSA signature: {reason}")]
    MalformedEcdsaSignature {
        /// What is wrong.
        reason: &'static str,
    },
    /// The key's signature does not verify under its certificate's public key: the key and
    /// the certificate do not belong together, or the key signed something else.
    #[error("the key's signature does not verify with its certificate's public key")]
    SignatureRejectedAfterSigning,
    /// Encoding DER failed (a length overflowed).
    #[error("DER encoding failed")]
    Encode(#[source] der::Error),

    // Parsing.
    /// The input is not valid DER for the structure named.
    #[error("malformed {what}")]
    Malformed {
        /// Which structure failed to decode.
        what: &'static str,
        /// The decoder's error (it carries the byte position).
        #[source]
        source: der::Error,
    },
    /// The `ContentInfo` holds something else than `SignedData`.
    #[error("the ContentInfo's content type is {content_type}, not id-signedData")]
    NotSignedData {
        /// The content type found.
        content_type: ObjectIdentifier,
    },
    /// An internal invariant did not hold (a bug: please report it).
    #[error("internal error: {0}")]
    Unreachable(&'static str),
    /// The `SignedData` is not detached: it encapsulates its content.
    #[error("the SignedData encapsulates its content; a detached signature was expected")]
    EncapsulatedContent,
    /// The `SignedData` has not exactly one `SignerInfo`.
    #[error("the SignedData has {count} signers, expected exactly one")]
    SignerCount {
        /// How many there are.
        count: usize,
    },
    /// A `version` field that does not fit the structure (RFC 5652 sections 5.1, 5.3).
    #[error("{structure} version {version} does not fit its contents")]
    UnexpectedVersion {
        /// `"SignedData"` or `"SignerInfo"`.
        structure: &'static str,
        /// The version found.
        version: u8,
    },
    /// The `SignerInfo`'s digest algorithm is missing from the `SignedData`'s
    /// `digestAlgorithms`.
    #[error("{algorithm} is missing from the SignedData's digestAlgorithms")]
    DigestAlgorithmNotListed {
        /// The `SignerInfo`'s digest algorithm.
        algorithm: DigestAlgorithm,
    },
    /// A digest algorithm other than SHA-256, -384, -512.
    #[error("unsupported digest algorithm {oid}")]
    UnsupportedDigestAlgorithm {
        /// Its object identifier.
        oid: ObjectIdentifier,
    },
    /// A signature algorithm other than those of the profile.
    #[error("unsupported signature algorithm {oid}")]
    UnsupportedSignatureAlgorithm {
        /// Its object identifier.
        oid: ObjectIdentifier,
    },
    /// An algorithm identifier carries parameters where none (or NULL) belong.
    #[error("unexpected parameters for algorithm {oid}")]
    UnexpectedAlgorithmParameters {
        /// The algorithm's object identifier.
        oid: ObjectIdentifier,
    },
    /// RSASSA-PSS parameters outside the profile (hash, MGF1 with the same hash,
    /// salt = hash length, trailer 1).
    #[error("unsupported RSASSA-PSS parameters: {reason}")]
    UnsupportedPssParameters {
        /// What is wrong.
        reason: &'static str,
    },
    /// The signature algorithm's hash differs from the `digestAlgorithm`.
    #[error("digestAlgorithm is {digest_algorithm} but the signature uses {signature_hash}")]
    InconsistentDigestAlgorithms {
        /// The `SignerInfo`'s `digestAlgorithm`.
        digest_algorithm: DigestAlgorithm,
        /// The hash of the signature algorithm.
        signature_hash: DigestAlgorithm,
    },
    /// The `SignerInfo` has no signed attributes (the profile requires them).
    #[error("the SignerInfo has no signed attributes")]
    MissingSignedAttributes,
    /// A required signed attribute is missing.
    #[error("the signed attribute {name} is missing")]
    MissingAttribute {
        /// The attribute's name, e.g. `"message-digest"`.
        name: &'static str,
    },
    /// An attribute occurs more than once, or has not exactly one value.
    #[error("the attribute {oid} must occur once with exactly one value")]
    AttributeCardinality {
        /// The attribute's object identifier.
        oid: ObjectIdentifier,
    },
    /// The signing-certificate-v2 attribute lists no certificate.
    #[error("the signing-certificate-v2 attribute lists no certificate")]
    EmptySigningCertificate,
    /// The content type (the content-type attribute or `eContentType`) is not `id-data`.
    #[error("the content type is {found}, not id-data")]
    ContentTypeMismatch {
        /// The content type found.
        found: ObjectIdentifier,
    },
    /// The message-digest attribute differs from the digest of the content.
    #[error("the message-digest attribute does not match the content's digest")]
    MessageDigestMismatch,
    /// The signing-certificate-v2 attribute does not identify the signer's certificate.
    #[error("the signing-certificate-v2 attribute does not match the signer's certificate")]
    SigningCertificateMismatch,
    /// No certificate in the `SignedData` matches the `SignerInfo`'s `sid`.
    #[error("the signer's certificate is not in the SignedData")]
    SignerCertificateMissing,
    /// The signer's public key is of an unsupported type or curve.
    #[error("unsupported public key algorithm {oid}")]
    UnsupportedPublicKey {
        /// The key algorithm or curve object identifier.
        oid: ObjectIdentifier,
    },
    /// A public key (the signer's, or a certificate issuer's) does not decode.
    #[error("the public key is invalid")]
    InvalidPublicKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    SignatureInvalid,

    // Time stamps and signing time.
    /// The signing time cannot be encoded (before 1950 or after 9999).
    #[error("the signing time is out of the encodable range")]
    SigningTimeOutOfRange,
    /// `add_timestamp_token` was given a `SignedData` whose re-encoding would change
    /// its bytes (it is not DER), which would break its signature.
    #[error("the SignedData is not in canonical DER; adding an attribute would alter it")]
    NonCanonicalEncoding,
    /// The `SignerInfo` already carries a signature time-stamp token.
    #[error("the SignerInfo already has a signature time-stamp token")]
    TimestampAlreadyPresent,
    /// A time-stamp token is not a DER `ContentInfo` holding `SignedData`.
    #[error("the time-stamp token is not a DER ContentInfo holding SignedData")]
    InvalidTimestampToken,
}
