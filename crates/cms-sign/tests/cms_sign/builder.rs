//! Building: every key and digest, judged by OpenSSL and by the crate; the profile's
//! structure; size bounds; refusals before signing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use test_pki::{KeyKind, Pki, SoftwareKey};

use cms_sign::{
    DigestAlgorithm, EcCurve, Error, KeyAlgorithm, SignatureAlgorithm, SignatureScheme, SignedCms,
    SignedDataBuilder, SubFilter,
};

use crate::support::{
    Behaviour, TestKey, algorithms, content, find_once, openssl_available, openssl_verify, scratch,
};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SIGNING_CERT_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

fn signed_data(der: &[u8]) -> SignedData {
    let ci = ContentInfo::from_der(der).unwrap();
    assert_eq!(ci.content_type.to_string(), "1.2.840.113549.1.7.2");
    ci.content.decode_as::<SignedData>().unwrap()
}

/// For every key kind, scheme and digest: OpenSSL and the crate accept the signature,
/// reject a changed content byte and a changed signed-attribute byte, and the size bound
/// holds within 64 bytes.
#[test]
fn every_key_and_digest_verifies_and_tampering_is_caught() {
    let openssl = openssl_available();
    let dir = scratch("matrix");
    let data = content(10_000);
    let mut tampered_content = data.clone();
    tampered_content[4321] ^= 0x01;
    let mut combinations = 0;
    let mut max_slack = 0;

    for kind in KeyKind::ALL {
        let key = Arc::new(TestKey::new(kind));
        for algorithm in algorithms(kind) {
            let name = format!("{kind}-{:?}-{:?}", algorithm.scheme, algorithm.digest);
            let builder = SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let bound = builder.size_bound().unwrap();
            let digest = algorithm.digest.digest(&data);
            let der = builder.sign(&digest).unwrap();

            assert!(der.len() <= bound, "{name}: {} > bound {bound}", der.len());
            assert!(
                bound - der.len() <= 64,
                "{name}: slack {}",
                bound - der.len()
            );
            max_slack = max_slack.max(bound - der.len());
            if kind.is_rsa() {
                assert_eq!(der.len(), bound, "{name}: RSA sizes are exact");
            }

            // The crate's verifier.
            let parsed = SignedCms::from_der(&der).unwrap();
            assert_eq!(parsed.signature_algorithm(), algorithm, "{name}");
            assert_eq!(parsed.digest_algorithm(), algorithm.digest, "{name}");
            assert_eq!(parsed.signer_certificate_der(), key.certificate_der());
            parsed
                .verify(&data)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            parsed.verify_digest(&digest).unwrap();
            assert!(matches!(
                parsed.verify(&tampered_content),
                Err(Error::MessageDigestMismatch)
            ));

            // A signed attribute changed: the message-digest now claims other content,
            // whose digest it matches, but the signature no longer covers it.
            let other_digest = algorithm.digest.digest(&tampered_content);
            let at = find_once(&der, &digest);
            let mut tampered_attribute = der.clone();
            tampered_attribute[at..at + digest.len()].copy_from_slice(&other_digest);
            let reparsed = SignedCms::from_der(&tampered_attribute).unwrap();
            assert!(
                matches!(
                    reparsed.verify(&tampered_content),
                    Err(Error::SignatureInvalid)
                ),
                "{name}"
            );
            assert!(matches!(
                reparsed.verify(&data),
                Err(Error::MessageDigestMismatch)
            ));

            if openssl {
                openssl_verify(&dir, &name, &der, &data)
                    .unwrap_or_else(|e| panic!("{name}: openssl rejected it: {e}"));
                assert!(
                    openssl_verify(&dir, &name, &der, &tampered_content).is_err(),
                    "{name}: openssl accepted changed content"
                );
                assert!(
                    openssl_verify(&dir, &name, &tampered_attribute, &tampered_content).is_err(),
                    "{name}: openssl accepted a changed signed attribute"
                );
            }
            combinations += 1;
        }
    }
    assert_eq!(combinations, 2 * 6 + 3 * 3);
    eprintln!("largest size-bound slack: {max_slack} bytes");
}

trait CertificateDer {
    fn certificate_der(&self) -> &[u8];
}

impl CertificateDer for TestKey {
    fn certificate_der(&self) -> &[u8] {
        cms_sign::CmsSigner::certificate(self)
    }
}

/// The encoding follows DESIGN.md's profile field by field.
#[test]
fn output_follows_the_profile() {
    for (kind, algorithm) in [
        (
            KeyKind::P256,
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256),
        ),
        (
            KeyKind::Rsa2048,
            SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha384),
        ),
        (
            KeyKind::P521,
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha512),
        ),
        (
            KeyKind::Rsa3072,
            SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha256),
        ),
    ] {
        let key = Arc::new(TestKey::new(kind));
        let builder =
            SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached).unwrap();
        let digest = algorithm.digest.digest(b"profile");
        let der = builder.sign(&digest).unwrap();
        let sd = signed_data(&der);

        // SignedData v1, one digest algorithm (absent parameters), id-data, detached.
        assert_eq!(sd.version, CmsVersion::V1);
        let digest_algorithms: Vec<_> = sd.digest_algorithms.iter().collect();
        assert_eq!(digest_algorithms.len(), 1);
        assert_eq!(digest_algorithms[0].oid, algorithm.digest.oid());
        assert!(digest_algorithms[0].parameters.is_none());
        assert_eq!(sd.encap_content_info.econtent_type, ID_DATA);
        assert!(sd.encap_content_info.econtent.is_none());
        assert!(sd.crls.is_none());

        // Certificates: the signer and the intermediate.
        let certs: Vec<Vec<u8>> = sd
            .certificates
            .as_ref()
            .unwrap()
            .0
            .iter()
            .map(|c| match c {
                CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                CertificateChoices::Other(_) => panic!("unexpected certificate format"),
            })
            .collect();
        assert_eq!(certs.len(), 2);
        assert!(certs.contains(&SoftwareKey::fixture(kind).cert_der().to_vec()));
        assert!(certs.contains(&Pki::fixture().intermediate_der().to_vec()));

        // One SignerInfo v1, issuerAndSerialNumber, the same digest algorithm.
        let signer_infos: Vec<_> = sd.signer_infos.0.iter().collect();
        assert_eq!(signer_infos.len(), 1);
        let si = signer_infos[0];
        assert_eq!(si.version, CmsVersion::V1);
        let leaf = x509_cert::Certificate::from_der(SoftwareKey::fixture(kind).cert_der()).unwrap();
        match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                assert_eq!(&isn.issuer, leaf.tbs_certificate().issuer());
                assert_eq!(&isn.serial_number, leaf.tbs_certificate().serial_number());
            }
            SignerIdentifier::SubjectKeyIdentifier(_) => {
                panic!("sid must be issuerAndSerialNumber")
            }
        }
        assert_eq!(si.digest_alg.oid, algorithm.digest.oid());
        assert!(si.unsigned_attrs.is_none());

        // Signed attributes: exactly content-type, message-digest, signing-certificate-v2.
        let attrs = si.signed_attrs.as_ref().unwrap();
        let mut oids: Vec<_> = attrs.iter().map(|a| a.oid).collect();
        oids.sort();
        let mut expected = vec![CONTENT_TYPE, MESSAGE_DIGEST, SIGNING_CERT_V2];
        expected.sort();
        assert_eq!(oids, expected);
        for a in attrs.iter() {
            assert_eq!(a.values.len(), 1);
        }

        // The signed bytes are the embedded bytes under a SET tag, sorted as DER.
        let message = key.last_message.lock().unwrap().clone();
        assert_eq!(message[0], 0x31);
        let embedded = attrs.to_der().unwrap();
        assert_eq!(message, embedded);
        let header_len = if message[1] & 0x80 == 0 {
            2
        } else {
            2 + usize::from(message[1] & 0x7f)
        };
        let body_at = find_once(&der, &message[header_len..]);
        assert_eq!(
            der[body_at - header_len],
            0xa0,
            "[0] IMPLICIT when embedded"
        );
        assert_eq!(
            &der[body_at - header_len + 1..body_at],
            &message[1..header_len]
        );
        let encodings: Vec<Vec<u8>> = attrs.iter().map(|a| a.to_der().unwrap()).collect();
        assert!(encodings.windows(2).all(|w| w[0] < w[1]), "sorted as DER");
        let parsed = SignedCms::from_der(&der).unwrap();
        assert_eq!(parsed.signed_attributes_der(), message.as_slice());

        // ESSCertIDv2: hashAlgorithm omitted for SHA-256 (DER DEFAULT), present otherwise;
        // issuerSerial with one directoryName.
        let ess = attrs
            .iter()
            .find(|a| a.oid == SIGNING_CERT_V2)
            .unwrap()
            .values
            .iter()
            .next()
            .unwrap()
            .to_der()
            .unwrap();
        // SigningCertificateV2 SEQUENCE { certs SEQUENCE OF { ESSCertIDv2 SEQUENCE { ...
        let first_field_tag = skip_headers(&ess, 3);
        if algorithm.digest == DigestAlgorithm::Sha256 {
            assert_eq!(
                first_field_tag, 0x04,
                "certHash first: hashAlgorithm omitted"
            );
        } else {
            assert_eq!(first_field_tag, 0x30, "hashAlgorithm present");
        }
        let signing_certificate = parsed
            .signed_attributes()
            .signing_certificate
            .clone()
            .unwrap();
        assert_eq!(signing_certificate.hash_algorithm, algorithm.digest);
        assert_eq!(
            signing_certificate.cert_hash,
            algorithm
                .digest
                .digest(SoftwareKey::fixture(kind).cert_der())
        );
        let (names, serial) = signing_certificate.issuer_serial.clone().unwrap();
        assert_eq!(names, vec![leaf.tbs_certificate().issuer().clone()]);
        assert_eq!(&serial, leaf.tbs_certificate().serial_number());
        // GeneralNames holding one [4] directoryName.
        let issuer_serial_at = find_once(&ess, &leaf.tbs_certificate().issuer().to_der().unwrap());
        assert_eq!(ess[issuer_serial_at - 2], 0xa4);

        // The signature algorithm identifier.
        let sig_alg = &si.signature_algorithm;
        match algorithm.scheme {
            SignatureScheme::RsaPkcs1v15 => {
                assert_eq!(sig_alg.oid.to_string(), "1.2.840.113549.1.1.11");
                assert!(sig_alg.parameters.as_ref().unwrap().is_null());
            }
            SignatureScheme::RsaPss => {
                assert_eq!(sig_alg.oid.to_string(), "1.2.840.113549.1.1.10");
                let params = sig_alg.parameters.as_ref().unwrap().to_der().unwrap();
                // [0] sha384, [1] mgf1(sha384), [2] 48; no [3] (default trailer).
                let sha384 = DigestAlgorithm::Sha384.oid().to_der().unwrap();
                assert_eq!(
                    params
                        .windows(sha384.len())
                        .filter(|w| *w == sha384.as_slice())
                        .count(),
                    2
                );
                assert!(params.windows(3).any(|w| w == [0xa2, 0x03, 0x02]));
                assert!(params.ends_with(&[0x02, 0x01, 48]));
                assert!(!params.windows(2).any(|w| w == [0xa3, 0x03]));
            }
            SignatureScheme::Ecdsa => {
                let expected = match algorithm.digest {
                    DigestAlgorithm::Sha256 => "1.2.840.10045.4.3.2",
                    DigestAlgorithm::Sha384 => "1.2.840.10045.4.3.3",
                    DigestAlgorithm::Sha512 => "1.2.840.10045.4.3.4",
                };
                assert_eq!(sig_alg.oid.to_string(), expected);
                assert!(sig_alg.parameters.is_none());
            }
        }
    }
}

/// The tag of the element reached after entering `depth` nested headers.
fn skip_headers(der: &[u8], depth: usize) -> u8 {
    let mut at = 0;
    for _ in 0..depth {
        let len_byte = der[at + 1];
        at += 2 + if len_byte & 0x80 != 0 {
            usize::from(len_byte & 0x7f)
        } else {
            0
        };
    }
    der[at]
}

#[test]
fn signing_time_only_for_pkcs7_on_request() {
    let openssl = openssl_available();
    let dir = scratch("signing-time");
    let key = Arc::new(TestKey::new(KeyKind::P256));
    let algorithm = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256);
    let data = content(777);
    let digest = DigestAlgorithm::Sha256.digest(&data);
    // 2026-11-23T12:34:56.789Z: the fraction is dropped.
    let when = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_437_296_789);

    let cases = [
        (SubFilter::CadesDetached, None),
        (SubFilter::Pkcs7Detached { signing_time: None }, None),
        (
            SubFilter::Pkcs7Detached {
                signing_time: Some(when),
            },
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_437_296)),
        ),
    ];
    for (i, (sub_filter, expected)) in cases.into_iter().enumerate() {
        let builder = SignedDataBuilder::new(key.clone(), algorithm, sub_filter).unwrap();
        let bound = builder.size_bound().unwrap();
        let der = builder.sign(&digest).unwrap();
        assert!(der.len() <= bound && bound - der.len() <= 64);
        let parsed = SignedCms::from_der(&der).unwrap();
        assert_eq!(parsed.signed_attributes().signing_time, expected);
        assert_eq!(
            signed_data(&der)
                .signer_infos
                .0
                .iter()
                .next()
                .unwrap()
                .signed_attrs
                .as_ref()
                .unwrap()
                .iter()
                .any(|a| a.oid == SIGNING_TIME),
            expected.is_some()
        );
        assert!(parsed.signed_attributes().other.is_empty());
        parsed.verify(&data).unwrap();
        if openssl {
            openssl_verify(&dir, &format!("case{i}"), &der, &data).unwrap();
        }

        // Another time per signature: it replaces the builder's, where there is one, and
        // the bound still holds for a GeneralizedTime (from 2050 on).
        for later in [1_900_000_000, 2_600_000_000] {
            let later = SystemTime::UNIX_EPOCH + Duration::from_secs(later);
            let der = builder.sign_at(&digest, later).unwrap();
            assert!(der.len() <= bound, "case {i}");
            let parsed = SignedCms::from_der(&der).unwrap();
            assert_eq!(
                parsed.signed_attributes().signing_time,
                expected.map(|_| later),
                "case {i}"
            );
            parsed.verify(&data).unwrap();
        }
    }
    assert_eq!(SubFilter::CadesDetached.pdf_name(), "ETSI.CAdES.detached");
    assert_eq!(
        SubFilter::Pkcs7Detached { signing_time: None }.pdf_name(),
        "adbe.pkcs7.detached"
    );
    // A time before 1970 cannot be a signing time here.
    let early = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    assert!(matches!(
        SignedDataBuilder::new(
            key,
            algorithm,
            SubFilter::Pkcs7Detached {
                signing_time: Some(early)
            }
        ),
        Err(Error::SigningTimeOutOfRange)
    ));
}

#[test]
fn keys_may_hash_themselves_or_return_der() {
    let data = content(1234);
    for (kind, behaviour) in [
        (KeyKind::Rsa2048, Behaviour::HashAndSign),
        (KeyKind::P384, Behaviour::HashAndSign),
        (KeyKind::P256, Behaviour::EcdsaDer),
        (KeyKind::P521, Behaviour::EcdsaDer),
    ] {
        let key = Arc::new(TestKey::with_behaviour(kind, behaviour));
        for algorithm in crate::support::algorithms(kind) {
            let builder =
                SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached).unwrap();
            let der = builder.sign(&algorithm.digest.digest(&data)).unwrap();
            assert!(der.len() <= builder.size_bound().unwrap());
            SignedCms::from_der(&der).unwrap().verify(&data).unwrap();
        }
    }
}

#[test]
fn unsupported_combinations_are_refused_before_signing() {
    let ec = Arc::new(TestKey::new(KeyKind::P256));
    let rsa = Arc::new(TestKey::new(KeyKind::Rsa2048));
    let pss = SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha256);
    let pkcs1 = SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha512);
    let ecdsa = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256);

    for (key, algorithm) in [(&ec, pss), (&ec, pkcs1), (&rsa, ecdsa)] {
        assert!(matches!(
            SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached),
            Err(Error::UnsupportedCombination { .. })
        ));
    }
    assert_eq!(ec.calls() + rsa.calls(), 0);

    // A modulus too short for the encoding.
    let small = KeyAlgorithm::Rsa { modulus_bits: 1024 };
    assert!(matches!(
        SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha512).check_key(small),
        Err(Error::UnsupportedCombination { .. })
    ));
    SignatureAlgorithm::new(SignatureScheme::RsaPss, DigestAlgorithm::Sha384)
        .check_key(small)
        .unwrap();
    let tiny = KeyAlgorithm::Rsa { modulus_bits: 512 };
    assert!(
        SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha512)
            .check_key(tiny)
            .is_err()
    );

    // The key forbids the algorithm (e.g. CKA_ALLOWED_MECHANISMS).
    let mut restricted = TestKey::new(KeyKind::Rsa3072);
    restricted.allowed = Some(vec![pss]);
    let restricted = Arc::new(restricted);
    assert!(matches!(
        SignedDataBuilder::new(restricted.clone(), pkcs1, SubFilter::CadesDetached),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
    SignedDataBuilder::new(restricted, pss, SubFilter::CadesDetached).unwrap();

    // The key says it is another key than its certificate holds.
    let mut liar = TestKey::new(KeyKind::P384);
    liar.reported = KeyAlgorithm::Ec(EcCurve::P256);
    let liar = Arc::new(liar);
    assert!(matches!(
        SignedDataBuilder::new(liar, ecdsa, SubFilter::CadesDetached),
        Err(Error::CertificateKeyMismatch {
            key: KeyAlgorithm::Ec(EcCurve::P256),
            certificate: KeyAlgorithm::Ec(EcCurve::P384)
        })
    ));
    let mut liar = TestKey::new(KeyKind::Rsa3072);
    liar.reported = KeyAlgorithm::Rsa { modulus_bits: 2048 };
    let liar = Arc::new(liar);
    assert!(matches!(
        SignedDataBuilder::new(liar, pkcs1, SubFilter::CadesDetached),
        Err(Error::CertificateKeyMismatch { .. })
    ));

    // A certificate that is not DER.
    let broken = Arc::new(TestKey::with_certificate(
        KeyKind::P256,
        b"not a certificate".to_vec(),
    ));
    assert!(matches!(
        SignedDataBuilder::new(broken, ecdsa, SubFilter::CadesDetached),
        Err(Error::Malformed { .. })
    ));

    // A digest of the wrong length never reaches the key.
    let builder = SignedDataBuilder::new(ec.clone(), ecdsa, SubFilter::CadesDetached).unwrap();
    assert!(matches!(
        builder.sign(&[0u8; 48]),
        Err(Error::DigestLength {
            expected: 32,
            actual: 48,
            ..
        })
    ));
    assert_eq!(ec.calls(), 0);
}

#[test]
fn bad_signatures_from_the_key_are_caught() {
    let digest = DigestAlgorithm::Sha256.digest(b"x");
    let cases = [
        (KeyKind::P521, Behaviour::Truncate(2), "short P-521 r||s"),
        (KeyKind::Rsa2048, Behaviour::Truncate(1), "short RSA"),
        (KeyKind::P256, Behaviour::Garbage, "garbage ECDSA"),
        (KeyKind::Rsa3072, Behaviour::Garbage, "garbage RSA"),
        (KeyKind::P384, Behaviour::Fail, "failing key"),
    ];
    for (kind, behaviour, what) in cases {
        let key = Arc::new(TestKey::with_behaviour(kind, behaviour));
        let algorithm = SignatureAlgorithm::default_for(key.reported, DigestAlgorithm::Sha256);
        let builder =
            SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached).unwrap();
        let result = builder.sign(&digest);
        match behaviour {
            Behaviour::Truncate(_) => assert!(
                matches!(result, Err(Error::SignatureLength { .. })),
                "{what}: {result:?}"
            ),
            Behaviour::Garbage => assert!(
                matches!(result, Err(Error::SignatureRejectedAfterSigning)),
                "{what}: {result:?}"
            ),
            _ => {
                let Err(Error::Key(source)) = result else {
                    panic!("{what}: {result:?}")
                };
                assert_eq!(source.to_string(), "the token is unplugged");
            }
        }
    }
    // A P-521 raw signature two bytes short is refused by its exact length.
    let key = Arc::new(TestKey::with_behaviour(
        KeyKind::P521,
        Behaviour::Truncate(2),
    ));
    let builder = SignedDataBuilder::new(
        key,
        SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha512),
        SubFilter::CadesDetached,
    )
    .unwrap();
    assert!(matches!(
        builder.sign(&DigestAlgorithm::Sha512.digest(b"x")),
        Err(Error::SignatureLength {
            expected: 132,
            actual: 130
        })
    ));
}

#[test]
fn a_key_signing_under_another_certificate_is_caught() {
    // The P-256 key presents the certificate of another P-256 public key.
    let other_spki = {
        let secret = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
        p256::pkcs8::EncodePublicKey::to_public_key_der(&secret.public_key()).unwrap()
    };
    let other_cert = Pki::fixture().issue_leaf("somebody else", other_spki.as_bytes());
    let key = Arc::new(TestKey::with_certificate(KeyKind::P256, other_cert));
    let algorithm = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256);
    let digest = DigestAlgorithm::Sha256.digest(b"content");
    let mut builder = SignedDataBuilder::new(key, algorithm, SubFilter::CadesDetached).unwrap();
    assert!(matches!(
        builder.sign(&digest),
        Err(Error::SignatureRejectedAfterSigning)
    ));
    // Without the self-check the bad signature goes out, and verification catches it.
    let der = builder.verify_after_signing(false).sign(&digest).unwrap();
    assert!(matches!(
        SignedCms::from_der(&der).unwrap().verify(b"content"),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn one_builder_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SignedDataBuilder>();
    assert_send_sync::<SignedCms>();
    assert_send_sync::<Error>();

    let key = Arc::new(TestKey::new(KeyKind::P256));
    let algorithm = SignatureAlgorithm::new(SignatureScheme::Ecdsa, DigestAlgorithm::Sha256);
    let builder = SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let builder = &builder;
            scope.spawn(move || {
                for i in 0..10u8 {
                    let data = [t, i, 1, 2, 3];
                    let der = builder
                        .sign(&DigestAlgorithm::Sha256.digest(&data))
                        .unwrap();
                    SignedCms::from_der(&der).unwrap().verify(&data).unwrap();
                }
            });
        }
    });
    assert_eq!(key.calls(), 40);
}

#[test]
fn digest_helpers_match_their_algorithms() {
    for digest in DigestAlgorithm::ALL {
        assert_eq!(digest.digest(b"abc").len(), digest.output_len());
        assert_eq!(DigestAlgorithm::from_oid(digest.oid()), Some(digest));
        // The DigestInfo prefix is the DER of AlgorithmIdentifier (NULL) + OCTET STRING header.
        let prefix = digest.digest_info_prefix();
        let info = [prefix, &digest.digest(b"abc")].concat();
        let decoded = der::asn1::Any::from_der(&info).unwrap();
        assert_eq!(decoded.value().len() + 2, info.len());
        let octets = OctetString::from_der(&info[prefix.len() - 2..]).unwrap();
        assert_eq!(octets.as_bytes(), digest.digest(b"abc"));
    }
}

/// Another key may sign for the builder's if it acts for it (the same certificate): the
/// container is the one the builder's own key makes. A key with another certificate is
/// refused before anything is signed.
#[test]
fn a_key_acting_for_the_builders_signs_the_same() {
    let pkcs1 = SignatureAlgorithm::new(SignatureScheme::RsaPkcs1v15, DigestAlgorithm::Sha256);
    let key = Arc::new(TestKey::new(KeyKind::Rsa2048));
    let builder = SignedDataBuilder::new(key, pkcs1, SubFilter::CadesDetached).unwrap();
    let digest = pkcs1.digest.digest(b"acting for");
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let own = builder.sign_at(&digest, time).unwrap();
    // PKCS#1 v1.5 is deterministic: the same key through another handle, the same bytes.
    let same = TestKey::new(KeyKind::Rsa2048);
    assert_eq!(builder.sign_at_using(&same, &digest, time).unwrap(), own);
    let other = TestKey::new(KeyKind::Rsa3072);
    assert!(matches!(
        builder.sign_at_using(&other, &digest, time),
        Err(Error::OtherKey)
    ));
}
