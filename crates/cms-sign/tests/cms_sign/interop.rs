//! Signatures made by OpenSSL, read and verified by the crate.

use std::process::Command;

use der::asn1::ObjectIdentifier;
use test_pki::{KeyKind, SoftwareKey};

use cms_sign::{DigestAlgorithm, SignatureAlgorithm, SignatureScheme, SignedCms};

use crate::support::{content, openssl_available, scratch};

const SMIME_CAPABILITIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.15");

#[test]
fn openssl_signatures_parse_and_verify() {
    if !openssl_available() {
        return;
    }
    let dir = scratch("interop");
    let data = content(5000);
    let data_path = dir.join("data.bin");
    std::fs::write(&data_path, &data).unwrap();
    let cases: [(KeyKind, &str, &[&str], SignatureAlgorithm); 5] = [
        (
            KeyKind::Rsa2048,
            "sha256",
            &[],
            SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha256),
        ),
        (
            KeyKind::Rsa3072,
            "sha384",
            &[
                "-keyopt",
                "rsa_padding_mode:pss",
                "-keyopt",
                "rsa_pss_saltlen:-1",
            ],
            SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha384),
        ),
        (
            KeyKind::P256,
            "sha256",
            &["-cades"],
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256),
        ),
        (
            KeyKind::P384,
            "sha512",
            &["-cades"],
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha512),
        ),
        (
            KeyKind::P521,
            "sha512",
            &[],
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha512),
        ),
    ];
    for (kind, md, extra, expected) in cases {
        let key = SoftwareKey::fixture(kind);
        let cert = dir.join(format!("{kind}.crt"));
        std::fs::write(&cert, key.cert_pem()).unwrap();
        let out = dir.join(format!("{kind}.p7s"));
        let status = Command::new("openssl")
            .args([
                "cms", "-sign", "-binary", "-outform", "DER", "-md", md, "-in",
            ])
            .arg(&data_path)
            .arg("-signer")
            .arg(&cert)
            .arg("-inkey")
            .arg(kind.key_path())
            .args(extra)
            .arg("-out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "openssl cms -sign for {kind}");
        let der = std::fs::read(&out).unwrap();

        let parsed = SignedCms::from_der(&der).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(parsed.signature_algorithm(), expected, "{kind}");
        assert_eq!(parsed.signer_certificate_der(), key.cert_der());
        let attributes = parsed.signed_attributes();
        assert!(
            attributes.signing_time.is_some(),
            "OpenSSL adds signing-time"
        );
        assert!(attributes.other.contains(&SMIME_CAPABILITIES));
        assert_eq!(
            attributes.signing_certificate.is_some(),
            extra.contains(&"-cades"),
            "{kind}"
        );
        parsed
            .verify(&data)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let mut changed = data.clone();
        changed[0] ^= 1;
        assert!(parsed.verify(&changed).is_err());
    }
}
