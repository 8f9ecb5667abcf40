use std::path::{Path, PathBuf};
use std::process::Command;

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rsa::BoxedUint;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PrivateKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};

use super::*;

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("test-pki-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether `openssl` can be run. Under `CI` its absence fails the test; elsewhere the
/// caller skips with a note.
fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required under CI but cannot be run"
        );
        eprintln!("note: openssl not found, skipping the external check");
    }
    found
}

fn openssl_verify(root: &Path, untrusted: &Path, cert: &Path) {
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(root)
        .arg("-untrusted")
        .arg(untrusted)
        .arg(cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(": OK"),
        "openssl verify failed for {}: {stdout}{}",
        cert.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn extension<'a, T: Decode<'a, Error = der::Error> + der::oid::AssociatedOid>(
    cert: &'a Certificate,
) -> (bool, T) {
    let ext = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == T::OID)
        .unwrap_or_else(|| panic!("extension {} missing", T::OID));
    (
        ext.critical,
        T::from_der(ext.extn_value.as_bytes()).unwrap(),
    )
}

fn ski(cert: &Certificate) -> Vec<u8> {
    let (critical, ski) = extension::<SubjectKeyIdentifier>(cert);
    assert!(!critical);
    ski.0.as_bytes().to_vec()
}

fn aki(cert: &Certificate) -> Vec<u8> {
    let (critical, aki) = extension::<AuthorityKeyIdentifier>(cert);
    assert!(!critical);
    aki.key_identifier.unwrap().as_bytes().to_vec()
}

#[test]
fn every_leaf_chain_verifies_with_openssl() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::fixture();
    let dir = scratch("openssl-verify");
    let files = pki.write_pem_files(&dir).unwrap();
    openssl_verify(&files.root, &files.root, &files.intermediate);
    for kind in KeyKind::ALL {
        let key = SoftwareKey::fixture(kind);
        let leaf = dir.join(format!("{kind}.pem"));
        std::fs::write(&leaf, key.cert_pem()).unwrap();
        openssl_verify(&files.root, &files.intermediate, &leaf);
    }
    // The chain file works as the untrusted bundle too.
    let leaf = dir.join("p384.pem");
    openssl_verify(&files.root, &files.chain, &leaf);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn certificates_follow_the_profile() {
    let pki = Pki::fixture();
    let root = Certificate::from_der(pki.root_der()).unwrap();
    let intermediate = Certificate::from_der(pki.intermediate_der()).unwrap();

    assert_eq!(
        root.tbs_certificate().subject().to_string(),
        "CN=pdfsign Test Root CA,O=pdfsign tests"
    );
    assert_eq!(
        root.tbs_certificate().issuer(),
        root.tbs_certificate().subject()
    );
    assert_eq!(
        intermediate.tbs_certificate().issuer(),
        root.tbs_certificate().subject()
    );
    assert_eq!(
        intermediate.tbs_certificate().subject().to_string(),
        "CN=pdfsign Test Intermediate CA,O=pdfsign tests"
    );

    for (cert, path_len) in [(&root, None), (&intermediate, Some(0))] {
        let (critical, bc) = extension::<BasicConstraints>(cert);
        assert!(critical);
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, path_len);
        let (critical, ku) = extension::<KeyUsage>(cert);
        assert!(critical);
        assert_eq!(ku.0, KeyUsages::KeyCertSign | KeyUsages::CRLSign);
    }
    assert_eq!(aki(&root), ski(&root));
    assert_eq!(aki(&intermediate), ski(&root));

    for kind in KeyKind::ALL {
        let key = SoftwareKey::fixture(kind);
        let leaf = Certificate::from_der(key.cert_der()).unwrap();
        let tbs = leaf.tbs_certificate();
        assert_eq!(tbs.issuer(), intermediate.tbs_certificate().subject());
        assert_eq!(
            tbs.subject().to_string(),
            format!("CN=pdfsign test signer {kind},O=pdfsign tests")
        );
        assert_eq!(
            tbs.subject_public_key_info().to_der().unwrap(),
            key.spki_der()
        );
        let (critical, bc) = extension::<BasicConstraints>(&leaf);
        assert!(critical);
        assert!(!bc.ca);
        let (critical, ku) = extension::<KeyUsage>(&leaf);
        assert!(critical);
        assert_eq!(
            ku.0,
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
        );
        assert_eq!(aki(&leaf), ski(&intermediate));
        assert_eq!(ski(&leaf).len(), 20);
        // Re-encoding what we parsed gives the same bytes: the DER is canonical.
        assert_eq!(leaf.to_der().unwrap(), key.cert_der());
        // PEM and DER agree.
        let (label, der) = der::pem::decode_vec(key.cert_pem().as_bytes()).unwrap();
        assert_eq!(label, "CERTIFICATE");
        assert_eq!(der, key.cert_der());
    }
}

#[test]
fn output_is_deterministic() {
    let pki = Pki::fixture();
    let again = Pki::build(&fixtures_dir().join("keys")).unwrap();
    assert_eq!(again.root_der(), pki.root_der());
    assert_eq!(again.intermediate_der(), pki.intermediate_der());
    assert_eq!(again.root_pem(), pki.root_pem());

    let key = SoftwareKey::fixture(KeyKind::P256);
    let a = pki.issue_leaf("Alice", key.spki_der());
    let b = again.issue_leaf("Alice", key.spki_der());
    assert_eq!(a, b);
    let c = pki.issue_leaf("Bob", key.spki_der());
    let serial = |der: &[u8]| {
        Certificate::from_der(der)
            .unwrap()
            .tbs_certificate()
            .serial_number()
            .as_bytes()
            .to_vec()
    };
    assert_ne!(serial(&a), serial(&c));
    assert_eq!(serial(&a).len(), 16);

    let validity = *Certificate::from_der(&a)
        .unwrap()
        .tbs_certificate()
        .validity();
    assert_eq!(validity.not_before.to_string(), "2025-01-01T00:00:00Z");
    assert_eq!(validity.not_after.to_string(), "2045-01-01T00:00:00Z");

    assert_eq!(
        pki.chain_pem(),
        format!("{}{}", pki.intermediate_pem(), pki.root_pem())
    );
    assert_eq!(
        pki.chain_der(),
        vec![pki.intermediate_der().to_vec(), pki.root_der().to_vec()]
    );
}

#[test]
fn leaf_names_are_escaped_and_bad_keys_refused() {
    let pki = Pki::fixture();
    let key = SoftwareKey::fixture(KeyKind::Rsa2048);
    let cert = pki.issue_leaf("Doe, John + \"Q\"", key.spki_der());
    let cert = Certificate::from_der(&cert).unwrap();
    let cn = cert
        .tbs_certificate()
        .subject()
        .common_name()
        .unwrap()
        .unwrap();
    assert_eq!(cn.value(), "Doe, John + \"Q\"");

    assert!(matches!(
        pki.try_issue_leaf("x", b"\x30\x03\x02\x01"),
        Err(Error::Der(_))
    ));
    assert!(matches!(
        pki.try_issue_leaf("x", b"garbage"),
        Err(Error::Der(_))
    ));
}

#[test]
fn pem_files_are_written() {
    let pki = Pki::fixture();
    let dir = scratch("pem-files");
    let files = pki.write_pem_files(&dir.join("nested")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&files.root).unwrap(),
        pki.root_pem()
    );
    assert_eq!(
        std::fs::read_to_string(&files.intermediate).unwrap(),
        pki.intermediate_pem()
    );
    assert_eq!(
        std::fs::read_to_string(&files.chain).unwrap(),
        pki.chain_pem()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn digests() -> [Vec<u8>; 3] {
    let msg = b"pdfsign test message";
    [
        Sha256::digest(msg).to_vec(),
        Sha384::digest(msg).to_vec(),
        Sha512::digest(msg).to_vec(),
    ]
}

#[test]
fn rsa_helpers_sign_verifiably() {
    for kind in [KeyKind::Rsa2048, KeyKind::Rsa3072] {
        let key = SoftwareKey::fixture(kind);
        let public = rsa::PublicKey::from_public_key_der(key.spki_der()).unwrap();
        for digest in digests() {
            let sig = key.sign_pkcs1v15(&digest).unwrap();
            assert_eq!(sig.len(), kind.signature_len());
            assert_eq!(sig, key.sign_pkcs1v15(&digest).unwrap(), "deterministic");
            let pss = key.sign_pss(&digest).unwrap();
            assert_eq!(pss.len(), kind.signature_len());
            match digest.len() {
                32 => {
                    public
                        .pkcs1v15_verify_prehash::<Sha256>(&digest, &sig)
                        .unwrap();
                    public.pss_verify_prehash::<Sha256>(&digest, &pss).unwrap();
                }
                48 => {
                    public
                        .pkcs1v15_verify_prehash::<Sha384>(&digest, &sig)
                        .unwrap();
                    public.pss_verify_prehash::<Sha384>(&digest, &pss).unwrap();
                }
                _ => {
                    public
                        .pkcs1v15_verify_prehash::<Sha512>(&digest, &sig)
                        .unwrap();
                    public.pss_verify_prehash::<Sha512>(&digest, &pss).unwrap();
                }
            }
        }
        assert!(matches!(
            key.sign_pkcs1v15(&[0; 20]),
            Err(Error::DigestLength(20))
        ));
        assert!(matches!(
            key.sign_ecdsa(&[0; 32]),
            Err(Error::WrongKeyType { .. })
        ));
        assert!(key.ec_components().is_none());
    }
}

#[test]
fn ecdsa_helpers_return_raw_r_s() {
    for kind in [KeyKind::P256, KeyKind::P384, KeyKind::P521] {
        let key = SoftwareKey::fixture(kind);
        for digest in digests() {
            let sig = key.sign_ecdsa(&digest).unwrap();
            assert_eq!(sig.len(), kind.signature_len());
            assert_eq!(sig, key.sign_ecdsa(&digest).unwrap(), "RFC 6979");
            match kind {
                KeyKind::P256 => {
                    let vk =
                        p256::ecdsa::VerifyingKey::from_public_key_der(key.spki_der()).unwrap();
                    let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
                    vk.verify_prehash(&digest, &sig).unwrap();
                }
                KeyKind::P384 => {
                    let vk =
                        p384::ecdsa::VerifyingKey::from_public_key_der(key.spki_der()).unwrap();
                    let sig = p384::ecdsa::Signature::from_slice(&sig).unwrap();
                    vk.verify_prehash(&digest, &sig).unwrap();
                }
                _ => {
                    let vk =
                        p521::ecdsa::VerifyingKey::from_public_key_der(key.spki_der()).unwrap();
                    let sig = p521::ecdsa::Signature::from_slice(&sig).unwrap();
                    vk.verify_prehash(&digest, &sig).unwrap();
                }
            }
        }
        assert!(matches!(
            key.sign_ecdsa(&[0; 31]),
            Err(Error::DigestLength(31))
        ));
        assert!(matches!(
            key.sign_pss(&[0; 32]),
            Err(Error::WrongKeyType { .. })
        ));
        assert!(key.rsa_components().is_none());
    }
}

#[test]
fn rsa_components_rebuild_the_key() {
    for kind in [KeyKind::Rsa2048, KeyKind::Rsa3072] {
        let key = SoftwareKey::fixture(kind);
        let c = key.rsa_components().unwrap();
        assert_eq!(c.modulus.len() * 8, kind.bits() as usize);
        assert_eq!(c.public_exponent, [0x01, 0x00, 0x01]);
        let uint = |b: &[u8]| BoxedUint::from_be_slice_vartime(b);
        let rebuilt = rsa::PrivateKey::from_components(
            uint(&c.modulus),
            uint(&c.public_exponent),
            uint(&c.private_exponent),
            vec![uint(&c.prime_1), uint(&c.prime_2)],
        )
        .unwrap();
        let trimmed = |u: &BoxedUint| u.to_be_bytes_trimmed_vartime().to_vec();
        assert_eq!(trimmed(rebuilt.dp().unwrap()), c.exponent_1);
        assert_eq!(trimmed(rebuilt.dq().unwrap()), c.exponent_2);
        assert_eq!(trimmed(&rebuilt.qinv().unwrap().retrieve()), c.coefficient);
        let digest = Sha256::digest(b"components");
        assert_eq!(
            rebuilt.pkcs1v15_sign_prehash::<Sha256>(&digest).unwrap(),
            key.sign_pkcs1v15(&digest).unwrap()
        );
    }
}

#[test]
fn ec_components_match_the_public_key() {
    let curves = [
        (KeyKind::P256, "1.2.840.10045.3.1.7", 32),
        (KeyKind::P384, "1.3.132.0.34", 48),
        (KeyKind::P521, "1.3.132.0.35", 66),
    ];
    for (kind, oid, field_len) in curves {
        let key = SoftwareKey::fixture(kind);
        let c = key.ec_components().unwrap();
        assert_eq!(
            ObjectIdentifier::from_der(&c.params_der).unwrap(),
            ObjectIdentifier::new_unwrap(oid)
        );
        assert_eq!(c.private_value.len(), field_len);
        assert_eq!(c.public_point.len(), 1 + 2 * field_len);
        assert_eq!(c.public_point[0], 0x04);
        // The point is the SPKI's subjectPublicKey, and the scalar derives it.
        let spki = spki::SubjectPublicKeyInfoRef::from_der(key.spki_der()).unwrap();
        assert_eq!(spki.subject_public_key.raw_bytes(), c.public_point);
        let derived = match kind {
            KeyKind::P256 => p256::SecretKey::from_slice(&c.private_value)
                .unwrap()
                .public_key()
                .to_sec1_bytes(),
            KeyKind::P384 => p384::SecretKey::from_slice(&c.private_value)
                .unwrap()
                .public_key()
                .to_sec1_bytes(),
            _ => p521::SecretKey::from_slice(&c.private_value)
                .unwrap()
                .public_key()
                .to_sec1_bytes(),
        };
        assert_eq!(*derived, *c.public_point);
        let wrapped = OctetString::from_der(&c.public_point_der()).unwrap();
        assert_eq!(wrapped.as_bytes(), c.public_point);
    }
}

#[test]
fn key_kinds_are_labelled() {
    let labels: Vec<_> = KeyKind::ALL.iter().map(|k| k.label()).collect();
    assert_eq!(labels, ["rsa2048", "rsa3072", "p256", "p384", "p521"]);
    for kind in KeyKind::ALL {
        assert!(kind.key_path().is_file(), "{}", kind.key_path().display());
        assert_eq!(kind.to_string(), kind.label());
        assert_eq!(SoftwareKey::fixture(kind).kind(), kind);
        assert!(
            !SoftwareKey::fixture(kind).pkcs8_der().is_empty(),
            "{kind} PKCS#8"
        );
    }
}
