//! Certification path building and checking for `verify`: from the signer's certificate
//! through the certificates the CMS carries to a trust root the user gave.
//!
//! Checked for every link (RFC 5280 section 6, simplified to what a PDF signature needs):
//! the issuer's signature over the certificate, validity at the claimed signing time, on
//! CA certificates `basicConstraints` `cA` and (when `keyUsage` is present) `keyCertSign`
//! and the path length, on the signer's certificate `digitalSignature` or
//! `nonRepudiation` (when `keyUsage` is present), and no unknown critical extension.
//! Revocation is not checked, and is reported as such.

use std::time::SystemTime;

use cms_sign::{PublicKey, SignatureAlgorithm};
use der::{Decode, Encode};
use serde::Serialize;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::time::format_rfc3339;

/// The longest path tried; real ones have two to four certificates.
const MAX_PATH: usize = 8;

/// Extensions understood well enough to accept them critical.
const KNOWN_CRITICAL: &[&str] = &[
    "2.5.29.15", // keyUsage
    "2.5.29.19", // basicConstraints
    "2.5.29.37", // extKeyUsage (any value: a PDF signature has no single EKU)
    "2.5.29.17", // subjectAltName
    "2.5.29.32", // certificatePolicies (any policy accepted)
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.35", // authorityKeyIdentifier
];

/// One certificate of the path, and what was found about it.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// The certificate's subject, RFC 4514.
    pub subject: String,
    /// Its issuer, RFC 4514.
    pub issuer: String,
    /// `notBefore`, RFC 3339.
    pub not_before: String,
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// Whether this certificate is one of the trust roots given.
    pub trust_root: bool,
    /// What is wrong with it, empty when nothing is.
    pub problems: Vec<String>,
}

/// The outcome of path validation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainStatus {
    /// A path to a trust root was found and every check passed.
    Trusted,
    /// No trust root was given, so trust was not checked.
    NotChecked,
    /// The path is broken or ends nowhere trusted; the reasons are in the links and
    /// `reason`.
    Untrusted {
        /// The first thing that failed.
        reason: String,
    },
}

/// The path from the signer to a trust root, as far as it could be built.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Trusted, not checked, or why not.
    pub status: ChainStatus,
    /// Signer first.
    pub links: Vec<Link>,
    /// Revocation (CRL, OCSP) is not checked by pdfsign.
    pub revocation: &'static str,
}

impl ChainReport {
    /// Whether the path was found and checked good.
    pub fn is_trusted(&self) -> bool {
        matches!(self.status, ChainStatus::Trusted)
    }
}

/// Builds and checks the path from `signer` to one of `roots`, through `intermediates`,
/// at `time`.
pub(crate) fn validate(
    signer: &Certificate,
    intermediates: &[Certificate],
    roots: &[Certificate],
    time: SystemTime,
) -> ChainReport {
    let mut path: Vec<&Certificate> = vec![signer];
    let mut failure: Option<String> = None;
    // Whether the last certificate in `path` is a trust root.
    let mut anchored = is_root(signer, roots);
    while !anchored && failure.is_none() {
        let Some(&current) = path.last() else { break };
        if path.len() >= MAX_PATH {
            failure = Some(format!("no trust root within {MAX_PATH} certificates"));
            break;
        }
        match find_issuer(current, roots, intermediates, &path) {
            Ok((issuer, is_anchor)) => {
                path.push(issuer);
                anchored = is_anchor;
            }
            Err(reason) => failure = Some(reason),
        }
    }

    let mut links: Vec<Link> = path
        .iter()
        .map(|c| describe(c, roots.iter().any(|r| same(r, c))))
        .collect();
    // Per-certificate checks, even when the path is incomplete: they explain more.
    for (index, certificate) in path.iter().enumerate() {
        let link = &mut links[index];
        check_validity(certificate, time, &mut link.problems);
        check_critical_extensions(certificate, &mut link.problems);
        if index == 0 {
            check_signer_usage(certificate, &mut link.problems);
        } else {
            // CAs between this one and the signer, not counting the signer.
            let below = index - 1;
            check_ca(certificate, below, &mut link.problems);
        }
    }

    let status = if roots.is_empty() {
        ChainStatus::NotChecked
    } else if let Some(reason) = failure {
        ChainStatus::Untrusted { reason }
    } else if let Some(link) = links.iter().find(|l| !l.problems.is_empty()) {
        ChainStatus::Untrusted {
            reason: format!("{}: {}", link.subject, link.problems.join("; ")),
        }
    } else {
        ChainStatus::Trusted
    };
    ChainReport {
        status,
        links,
        revocation: "not checked",
    }
}

fn same(a: &Certificate, b: &Certificate) -> bool {
    a == b
}

fn is_root(certificate: &Certificate, roots: &[Certificate]) -> bool {
    roots.iter().any(|root| same(root, certificate))
}

/// The certificate among roots (first) and intermediates whose subject is `child`'s
/// issuer, whose key identifier fits, and whose key verifies `child`'s signature.
fn find_issuer<'a>(
    child: &Certificate,
    roots: &'a [Certificate],
    intermediates: &'a [Certificate],
    path: &[&Certificate],
) -> Result<(&'a Certificate, bool), String> {
    let wanted = child.tbs_certificate().issuer();
    let authority_key = authority_key_id(child);
    let mut last_error = None;
    let candidates = roots
        .iter()
        .map(|c| (c, true))
        .chain(intermediates.iter().map(|c| (c, false)));
    for (candidate, is_anchor) in candidates {
        if candidate.tbs_certificate().subject() != wanted
            || path.iter().any(|c| same(c, candidate))
        {
            continue;
        }
        if let (Some(wanted_id), Some(id)) = (&authority_key, subject_key_id(candidate))
            && *wanted_id != id
        {
            continue;
        }
        match verify_signature(child, candidate) {
            Ok(()) => return Ok((candidate, is_anchor || is_root(candidate, roots))),
            Err(e) => {
                last_error = Some(format!(
                    "the signature of {} by {} is invalid: {e}",
                    name(child.tbs_certificate().subject()),
                    name(candidate.tbs_certificate().subject())
                ))
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        format!(
            "no certificate of issuer {} (neither in the signature nor among the trust roots)",
            name(wanted)
        )
    }))
}

/// Checks `issuer`'s signature over `certificate`. `Err` says why it does not verify.
fn verify_signature(certificate: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let key = PublicKey::from_spki(issuer.tbs_certificate().subject_public_key_info())
        .map_err(signature_error)?;
    let tbs = certificate
        .tbs_certificate()
        .to_der()
        .map_err(|e| format!("re-encoding the certificate: {e}"))?;
    let signature = certificate
        .signature()
        .as_bytes()
        .ok_or("the signature is not a whole number of bytes")?;
    let algorithm = certificate_signature_algorithm(certificate)?;
    key.verify(algorithm, &tbs, signature)
        .map_err(signature_error)
}

/// The algorithm of a certificate's signature: `sha{256,384,512}WithRSAEncryption`,
/// `ecdsa-with-SHA{256,384,512}` or RSASSA-PSS with SHA-2 parameters, as cms-sign reads
/// them. The identifier outside the signed part must equal the one inside it (RFC 5280,
/// 4.1.1.2), or a forger could swap it.
fn certificate_signature_algorithm(
    certificate: &Certificate,
) -> Result<SignatureAlgorithm, String> {
    let outer = certificate.signature_algorithm();
    if outer != certificate.tbs_certificate().signature() {
        return Err("the certificate's two signature algorithm fields differ".to_owned());
    }
    SignatureAlgorithm::from_algorithm_identifier(outer).map_err(|error| match error {
        cms_sign::Error::UnsupportedSignatureAlgorithm { oid } => {
            format!("unsupported certificate signature algorithm {oid}")
        }
        other => format!("certificate signature algorithm {}: {other}", outer.oid),
    })
}

/// What went wrong with the issuer's key or its signature, for a [`Link`]'s reason.
fn signature_error(error: cms_sign::Error) -> String {
    match error {
        cms_sign::Error::InvalidPublicKey => "the issuer's public key does not decode".to_owned(),
        cms_sign::Error::UnsupportedPublicKey { oid } => {
            format!("unsupported public key algorithm or curve {oid}")
        }
        cms_sign::Error::UnsupportedCombination {
            key,
            algorithm,
            reason,
        } => format!("{algorithm} does not fit the issuer's {key} key: {reason}"),
        other => other.to_string(),
    }
}

fn authority_key_id(certificate: &Certificate) -> Option<Vec<u8>> {
    let (_, aki) = certificate
        .tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()??;
    aki.key_identifier.map(|id| id.as_bytes().to_vec())
}

fn subject_key_id(certificate: &Certificate) -> Option<Vec<u8>> {
    let (_, ski) = certificate
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .ok()??;
    Some(ski.0.as_bytes().to_vec())
}

fn describe(certificate: &Certificate, trust_root: bool) -> Link {
    let tbs = certificate.tbs_certificate();
    Link {
        subject: name(tbs.subject()),
        issuer: name(tbs.issuer()),
        not_before: format_rfc3339(tbs.validity().not_before.to_system_time()),
        not_after: format_rfc3339(tbs.validity().not_after.to_system_time()),
        trust_root,
        problems: Vec::new(),
    }
}

fn check_validity(certificate: &Certificate, time: SystemTime, problems: &mut Vec<String>) {
    let validity = certificate.tbs_certificate().validity();
    if time < validity.not_before.to_system_time() {
        problems.push(format!(
            "not yet valid at the signing time {} (from {})",
            format_rfc3339(time),
            format_rfc3339(validity.not_before.to_system_time())
        ));
    }
    if time > validity.not_after.to_system_time() {
        problems.push(format!(
            "expired at the signing time {} (until {})",
            format_rfc3339(time),
            format_rfc3339(validity.not_after.to_system_time())
        ));
    }
}

fn check_critical_extensions(certificate: &Certificate, problems: &mut Vec<String>) {
    for extension in certificate
        .tbs_certificate()
        .extensions()
        .map(|e| e.as_slice())
        .unwrap_or_default()
    {
        let oid = extension.extn_id.to_string();
        if extension.critical && !KNOWN_CRITICAL.contains(&oid.as_str()) {
            problems.push(format!("unknown critical extension {oid}"));
        }
    }
}

fn key_usage(certificate: &Certificate, problems: &mut Vec<String>) -> Option<KeyUsage> {
    match certificate.tbs_certificate().get_extension::<KeyUsage>() {
        Ok(found) => found.map(|(_, usage)| usage),
        Err(e) => {
            problems.push(format!("keyUsage does not parse: {e}"));
            None
        }
    }
}

fn check_signer_usage(certificate: &Certificate, problems: &mut Vec<String>) {
    if let Some(usage) = key_usage(certificate, problems)
        && !usage.digital_signature()
        && !usage.non_repudiation()
    {
        problems.push("keyUsage has neither digitalSignature nor nonRepudiation".to_owned());
    }
}

fn check_ca(certificate: &Certificate, cas_below: usize, problems: &mut Vec<String>) {
    match certificate
        .tbs_certificate()
        .get_extension::<BasicConstraints>()
    {
        Ok(Some((_, constraints))) if constraints.ca => {
            if let Some(limit) = constraints.path_len_constraint
                && cas_below > usize::from(limit)
            {
                problems.push(format!(
                    "pathLenConstraint {limit} exceeded ({cas_below} CA certificates below)"
                ));
            }
        }
        Ok(_) => problems.push("issues certificates but basicConstraints has no cA".to_owned()),
        Err(e) => problems.push(format!("basicConstraints does not parse: {e}")),
    }
    if let Some(usage) = key_usage(certificate, problems)
        && !usage.key_cert_sign()
    {
        problems.push("issues certificates but keyUsage lacks keyCertSign".to_owned());
    }
}

/// RFC 4514 form of a name.
pub(crate) fn name(name: &Name) -> String {
    name.to_string()
}

/// The (first) common name of a name.
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.common_name().ok()?.map(String::from)
}

/// Parses DER certificates, skipping none: a bad one is an error naming its position.
pub(crate) fn parse_all(ders: &[Vec<u8>]) -> Result<Vec<Certificate>, String> {
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            Certificate::from_der(der).map_err(|e| format!("certificate {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use p11_testkit::{KeyKind, Pki, SoftwareKey};

    use super::*;

    #[test]
    fn issuer_signatures_verify_with_the_issuers_key_only() {
        let pki = Pki::fixture();
        let root = Certificate::from_der(pki.root_der()).unwrap();
        let intermediate = Certificate::from_der(pki.intermediate_der()).unwrap();
        let leaf =
            Certificate::from_der(SoftwareKey::fixture(KeyKind::Rsa2048).cert_der()).unwrap();
        assert_eq!(verify_signature(&intermediate, &root), Ok(()));
        assert_eq!(verify_signature(&root, &root), Ok(()));
        assert_eq!(verify_signature(&leaf, &intermediate), Ok(()));
        assert_eq!(
            verify_signature(&leaf, &root),
            Err("the signature does not verify".to_owned())
        );
        // ecdsa-with-SHA256 with an RSA issuer key.
        assert_eq!(
            verify_signature(&intermediate, &leaf),
            Err(
                "ECDSA with SHA-256 does not fit the issuer's RSA-2048 key: ECDSA needs an EC key"
                    .to_owned()
            )
        );
    }

    /// An RSA-PSS chain made by OpenSSL (fixtures/README.md): a self-signed root
    /// (SHA-256), a leaf (SHA-384, salt as long as the hash), and the same leaf with a
    /// 20-byte salt, which cms-sign does not verify.
    #[test]
    fn rsa_pss_certificates_verify() {
        let read = |name: &str| {
            let path = format!("{}/../../fixtures/pss/{name}", env!("CARGO_MANIFEST_DIR"));
            let pem = std::fs::read_to_string(path).unwrap();
            let (_, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
            Certificate::from_der(&der).unwrap()
        };
        let (root, leaf, short_salt) =
            (read("root.pem"), read("leaf.pem"), read("leaf-salt20.pem"));
        assert_eq!(verify_signature(&root, &root), Ok(()));
        assert_eq!(verify_signature(&leaf, &root), Ok(()));
        assert_eq!(
            verify_signature(&leaf, &leaf),
            Err("the signature does not verify".to_owned())
        );
        let refused = verify_signature(&short_salt, &root).unwrap_err();
        assert!(refused.contains("salt"), "{refused}");
    }

    #[test]
    fn certificate_signature_algorithms() {
        use cms_sign::{DigestAlgorithm::*, SignatureScheme::*};
        use der::asn1::ObjectIdentifier;
        for (scheme, digest) in [
            (RsaPkcs1v15, Sha256),
            (RsaPkcs1v15, Sha384),
            (RsaPkcs1v15, Sha512),
            (RsaPss, Sha256),
            (RsaPss, Sha512),
            (Ecdsa, Sha256),
            (Ecdsa, Sha384),
            (Ecdsa, Sha512),
        ] {
            let algorithm = SignatureAlgorithm::new(scheme, digest);
            let id = algorithm.algorithm_identifier().unwrap();
            assert_eq!(
                SignatureAlgorithm::from_algorithm_identifier(&id).ok(),
                Some(algorithm)
            );
        }
        // sha1WithRSAEncryption and the bare rsaEncryption (which names no hash): refused.
        for oid in ["1.2.840.113549.1.1.5", "1.2.840.113549.1.1.1"] {
            let id = x509_cert::spki::AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap(oid),
                parameters: None,
            };
            assert!(
                SignatureAlgorithm::from_algorithm_identifier(&id).is_err(),
                "{oid}"
            );
        }
    }
}
