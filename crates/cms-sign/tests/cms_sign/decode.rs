//! Parsing hostile input: garbage, truncation, flipped bytes, wrong OIDs and structures
//! outside the profile give typed errors, never a panic.

use std::sync::Arc;

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use test_pki::{KeyKind, Pki};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use cms_sign::{
    DigestAlgorithm, Error, SignatureAlgorithm, SignatureScheme, SignedCms, SignedDataBuilder,
    SubFilter,
};

use crate::support::{TestKey, find_once};

const DATA: &[u8] = b"detached content";

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

fn sample(kind: KeyKind, scheme: SignatureScheme, digest: DigestAlgorithm) -> Vec<u8> {
    let key = Arc::new(TestKey::new(kind));
    let builder = SignedDataBuilder::new(
        key,
        SignatureAlgorithm::new(scheme, digest),
        SubFilter::CadesDetached,
    )
    .unwrap();
    builder.sign(&digest.digest(DATA)).unwrap()
}

fn p256_sample() -> Vec<u8> {
    sample(
        KeyKind::P256,
        SignatureScheme::Ecdsa,
        DigestAlgorithm::Sha256,
    )
}

/// Decodes, lets `f` change the `SignedData` and its one `SignerInfo`, re-encodes.
fn mutate(der: &[u8], f: impl FnOnce(&mut SignedData, &mut SignerInfo)) -> Vec<u8> {
    let ci = ContentInfo::from_der(der).unwrap();
    let mut sd = ci.content.decode_as::<SignedData>().unwrap();
    let mut si = sd.signer_infos.0.iter().next().unwrap().clone();
    f(&mut sd, &mut si);
    if !sd.signer_infos.0.is_empty() {
        sd.signer_infos = SignerInfos::try_from(vec![si]).unwrap();
    }
    ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&sd).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn set_signed_attributes(si: &mut SignerInfo, f: impl FnOnce(&mut Vec<Attribute>)) {
    let mut attrs: Vec<Attribute> = si.signed_attrs.take().unwrap().into_vec();
    f(&mut attrs);
    si.signed_attrs = Some(SetOfVec::try_from(attrs).unwrap());
}

#[test]
fn garbage_is_malformed() {
    for input in [
        &b""[..],
        b"\x30",
        b"\x30\x00",
        b"\x30\x80\x00\x00",
        b"\x04\x03abc",
        b"%PDF-1.7",
        &[0xff; 64],
    ] {
        assert!(
            matches!(SignedCms::from_der(input), Err(Error::Malformed { .. })),
            "{input:?}"
        );
    }
    // Pseudo-random bytes of many lengths, some starting like a SEQUENCE.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in 0..600 {
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        if len > 2 && len % 2 == 0 {
            bytes[0] = 0x30;
            bytes[1] = 0x82;
        }
        assert!(SignedCms::from_der(&bytes).is_err());
    }
}

#[test]
fn every_truncation_is_an_error() {
    for der in [
        p256_sample(),
        sample(
            KeyKind::Rsa2048,
            SignatureScheme::RsaPss,
            DigestAlgorithm::Sha512,
        ),
    ] {
        SignedCms::from_der(&der).unwrap().verify(DATA).unwrap();
        for len in 0..der.len() {
            assert!(
                matches!(
                    SignedCms::from_der(&der[..len]),
                    Err(Error::Malformed { .. })
                ),
                "prefix of {len} bytes"
            );
        }
        // Trailing bytes are refused too.
        let mut longer = der.clone();
        longer.push(0);
        assert!(matches!(
            SignedCms::from_der(&longer),
            Err(Error::Malformed { .. })
        ));
    }
}

/// Flipping any bit pattern in any byte never panics, and every change outside the
/// intermediate CA's certificate (which this crate does not validate) is rejected by
/// parsing or by verification.
#[test]
fn every_flipped_byte_is_rejected_or_harmless() {
    let der = p256_sample();
    let intermediate = Pki::fixture().intermediate_der();
    let start = find_once(&der, intermediate);
    let inside_intermediate = start..start + intermediate.len();
    let mut rejected = 0;
    for i in 0..der.len() {
        for mask in [0x01u8, 0x80] {
            let mut changed = der.clone();
            changed[i] ^= mask;
            let outcome = SignedCms::from_der(&changed).and_then(|cms| cms.verify(DATA));
            if outcome.is_err() {
                rejected += 1;
            } else {
                assert!(
                    inside_intermediate.contains(&i),
                    "a flip of {mask:#04x} at byte {i} of {} was accepted",
                    der.len()
                );
            }
        }
    }
    assert!(rejected > der.len());
}

#[test]
fn wrong_content_types_and_structures() {
    let der = p256_sample();

    // A ContentInfo of another type.
    let data_info = ContentInfo {
        content_type: oid("1.2.840.113549.1.7.1"),
        content: Any::encode_from(&OctetString::new(b"hi".to_vec()).unwrap()).unwrap(),
    }
    .to_der()
    .unwrap();
    assert!(matches!(
        SignedCms::from_der(&data_info),
        Err(Error::NotSignedData { .. })
    ));
    // Right type, wrong content.
    let not_signed_data = ContentInfo {
        content_type: oid("1.2.840.113549.1.7.2"),
        content: Any::encode_from(&OctetString::new(b"hi".to_vec()).unwrap()).unwrap(),
    }
    .to_der()
    .unwrap();
    assert!(matches!(
        SignedCms::from_der(&not_signed_data),
        Err(Error::Malformed {
            what: "SignedData",
            ..
        })
    ));

    let encapsulated = mutate(&der, |sd, _| {
        sd.encap_content_info.econtent =
            Some(Any::encode_from(&OctetString::new(DATA.to_vec()).unwrap()).unwrap());
    });
    assert!(matches!(
        SignedCms::from_der(&encapsulated),
        Err(Error::EncapsulatedContent)
    ));

    let other_content_type = mutate(&der, |sd, _| {
        sd.encap_content_info.econtent_type = oid("1.2.840.113549.1.9.16.1.4");
    });
    assert!(matches!(
        SignedCms::from_der(&other_content_type),
        Err(Error::ContentTypeMismatch { .. })
    ));

    let no_signer = mutate(&der, |sd, _| {
        sd.signer_infos = SignerInfos(SetOfVec::new());
    });
    assert!(matches!(
        SignedCms::from_der(&no_signer),
        Err(Error::SignerCount { count: 0 })
    ));

    let two_signers = {
        let ci = ContentInfo::from_der(&der).unwrap();
        let mut sd = ci.content.decode_as::<SignedData>().unwrap();
        let first = sd.signer_infos.0.iter().next().unwrap().clone();
        let mut second = first.clone();
        second.signature = OctetString::new(vec![1, 2, 3]).unwrap();
        sd.signer_infos = SignerInfos::try_from(vec![first, second]).unwrap();
        ContentInfo {
            content_type: ci.content_type,
            content: Any::encode_from(&sd).unwrap(),
        }
        .to_der()
        .unwrap()
    };
    assert!(matches!(
        SignedCms::from_der(&two_signers),
        Err(Error::SignerCount { count: 2 })
    ));

    let no_certificates = mutate(&der, |sd, _| sd.certificates = None);
    assert!(matches!(
        SignedCms::from_der(&no_certificates),
        Err(Error::SignerCertificateMissing)
    ));

    let v3_signer = mutate(&der, |_, si| si.version = CmsVersion::V3);
    assert!(matches!(
        SignedCms::from_der(&v3_signer),
        Err(Error::UnexpectedVersion {
            structure: "SignerInfo",
            version: 3
        })
    ));
    let v0_signed_data = mutate(&der, |sd, _| sd.version = CmsVersion::V0);
    assert!(matches!(
        SignedCms::from_der(&v0_signed_data),
        Err(Error::UnexpectedVersion {
            structure: "SignedData",
            ..
        })
    ));
}

#[test]
fn a_subject_key_identifier_sid_finds_the_signer() {
    let der = p256_sample();
    let leaf =
        Certificate::from_der(SignedCms::from_der(&der).unwrap().signer_certificate_der()).unwrap();
    let (_, ski) = leaf
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    let by_ski = mutate(&der, |sd, si| {
        si.sid = SignerIdentifier::SubjectKeyIdentifier(ski);
        si.version = CmsVersion::V3;
        sd.version = CmsVersion::V3;
    });
    let parsed = SignedCms::from_der(&by_ski).unwrap();
    assert_eq!(parsed.signer_certificate(), &leaf);
    parsed.verify(DATA).unwrap();
}

#[test]
fn signed_attributes_outside_the_profile() {
    let der = p256_sample();
    let content_type = oid("1.2.840.113549.1.9.3");
    let message_digest = oid("1.2.840.113549.1.9.4");
    let signing_cert_v2 = oid("1.2.840.113549.1.9.16.2.47");

    let none = mutate(&der, |_, si| si.signed_attrs = None);
    assert!(matches!(
        SignedCms::from_der(&none),
        Err(Error::MissingSignedAttributes)
    ));

    for (missing, name) in [
        (content_type, "content-type"),
        (message_digest, "message-digest"),
    ] {
        let without = mutate(&der, |_, si| {
            set_signed_attributes(si, |attrs| attrs.retain(|a| a.oid != missing))
        });
        assert!(
            matches!(SignedCms::from_der(&without), Err(Error::MissingAttribute { name: n }) if n == name)
        );
    }

    let two_values = mutate(&der, |_, si| {
        set_signed_attributes(si, |attrs| {
            let md = attrs.iter_mut().find(|a| a.oid == message_digest).unwrap();
            md.values
                .insert(Any::encode_from(&OctetString::new(vec![0u8; 32]).unwrap()).unwrap())
                .unwrap();
        })
    });
    assert!(matches!(
        SignedCms::from_der(&two_values),
        Err(Error::AttributeCardinality { oid }) if oid == message_digest
    ));

    // Wrong content-type: parses, and verification says why it fails.
    let wrong_type = mutate(&der, |_, si| {
        set_signed_attributes(si, |attrs| {
            let ct = attrs.iter_mut().find(|a| a.oid == content_type).unwrap();
            ct.values = SetOfVec::try_from(vec![
                Any::encode_from(&oid("1.2.840.113549.1.7.2")).unwrap(),
            ])
            .unwrap();
        })
    });
    assert!(matches!(
        SignedCms::from_der(&wrong_type).unwrap().verify(DATA),
        Err(Error::ContentTypeMismatch { .. })
    ));

    // An empty SigningCertificateV2.
    let empty_ess = mutate(&der, |_, si| {
        set_signed_attributes(si, |attrs| {
            let ess = attrs.iter_mut().find(|a| a.oid == signing_cert_v2).unwrap();
            // SigningCertificateV2 { certs SEQUENCE OF {} }
            ess.values =
                SetOfVec::try_from(vec![Any::from_der(&[0x30, 0x02, 0x30, 0x00]).unwrap()])
                    .unwrap();
        })
    });
    assert!(matches!(
        SignedCms::from_der(&empty_ess),
        Err(Error::EmptySigningCertificate)
    ));

    // A certificate hash that designates another certificate.
    let parsed = SignedCms::from_der(&der).unwrap();
    let hash = parsed
        .signed_attributes()
        .signing_certificate
        .as_ref()
        .unwrap()
        .cert_hash
        .clone();
    let at = find_once(&der, &hash);
    let mut other_hash = der;
    other_hash[at] ^= 0x40;
    assert!(matches!(
        SignedCms::from_der(&other_hash).unwrap().verify(DATA),
        Err(Error::SigningCertificateMismatch)
    ));
}

/// Signed attributes out of DER order (some producers write them so): verification
/// hashes them as found, never re-sorted, so what the signer signed is what is checked.
#[test]
fn unsorted_signed_attributes_are_hashed_as_found() {
    let der = sample(
        KeyKind::Rsa2048,
        SignatureScheme::RsaPkcs1v15,
        DigestAlgorithm::Sha256,
    );
    let parsed = SignedCms::from_der(&der).unwrap();
    let set = parsed.signed_attributes_der().to_vec();
    // Swap the first two attributes inside the SET's content.
    let header = if set[1] & 0x80 == 0 {
        2
    } else {
        2 + usize::from(set[1] & 0x7f)
    };
    let body = &set[header..];
    assert!(body[1] < 0x80);
    let first_len = 2 + usize::from(body[1]);
    let (first, rest) = body.split_at(first_len);
    let second_len = 2 + usize::from(rest[1]);
    let (second, tail) = rest.split_at(second_len);
    let swapped = [second, first, tail].concat();
    let at = find_once(&der, body);
    let mut unsorted = der.clone();
    unsorted[at..at + body.len()].copy_from_slice(&swapped);

    // The sorted set was signed: the unsorted one does not verify.
    let cms = SignedCms::from_der(&unsorted).unwrap();
    assert_eq!(&cms.signed_attributes_der()[header..], swapped.as_slice());
    assert!(matches!(cms.verify(DATA), Err(Error::SignatureInvalid)));
    // Adding a time-stamp would re-sort, altering signed bytes: refused.
    assert!(matches!(
        cms_sign::add_timestamp_token(&unsorted, &der),
        Err(Error::NonCanonicalEncoding)
    ));

    // A producer that signed the unsorted set as it wrote it: that verifies.
    let key = test_pki::SoftwareKey::fixture(KeyKind::Rsa2048);
    let resigned = key
        .sign_pkcs1v15(&DigestAlgorithm::Sha256.digest(cms.signed_attributes_der()))
        .unwrap();
    let sig_at = find_once(&unsorted, cms.signature());
    unsorted[sig_at..sig_at + resigned.len()].copy_from_slice(&resigned);
    SignedCms::from_der(&unsorted)
        .unwrap()
        .verify(DATA)
        .unwrap();
}

#[test]
fn wrong_algorithm_identifiers() {
    let ecdsa = p256_sample();
    let pss = sample(
        KeyKind::Rsa2048,
        SignatureScheme::RsaPss,
        DigestAlgorithm::Sha256,
    );
    let sha1 = AlgorithmIdentifierOwned {
        oid: oid("1.3.14.3.2.26"),
        parameters: None,
    };

    let sha1_digest = mutate(&ecdsa, |sd, si| {
        si.digest_alg = sha1.clone();
        sd.digest_algorithms = SetOfVec::try_from(vec![sha1.clone()]).unwrap();
    });
    assert!(matches!(
        SignedCms::from_der(&sha1_digest),
        Err(Error::UnsupportedDigestAlgorithm { .. })
    ));

    let unlisted = mutate(&ecdsa, |sd, _| {
        sd.digest_algorithms =
            SetOfVec::try_from(vec![DigestAlgorithm::Sha384.algorithm_identifier()]).unwrap();
    });
    assert!(matches!(
        SignedCms::from_der(&unlisted),
        Err(Error::DigestAlgorithmNotListed { .. })
    ));

    let md5_rsa = mutate(&ecdsa, |_, si| {
        si.signature_algorithm = AlgorithmIdentifierOwned {
            oid: oid("1.2.840.113549.1.1.4"),
            parameters: Some(Any::null()),
        };
    });
    assert!(matches!(
        SignedCms::from_der(&md5_rsa),
        Err(Error::UnsupportedSignatureAlgorithm { .. })
    ));

    let inconsistent = mutate(&ecdsa, |sd, si| {
        si.digest_alg = DigestAlgorithm::Sha384.algorithm_identifier();
        sd.digest_algorithms =
            SetOfVec::try_from(vec![DigestAlgorithm::Sha384.algorithm_identifier()]).unwrap();
    });
    assert!(matches!(
        SignedCms::from_der(&inconsistent),
        Err(Error::InconsistentDigestAlgorithms {
            digest_algorithm: DigestAlgorithm::Sha384,
            signature_hash: DigestAlgorithm::Sha256
        })
    ));

    let ecdsa_with_null = mutate(&ecdsa, |_, si| {
        si.signature_algorithm.parameters = Some(Any::null());
    });
    assert!(matches!(
        SignedCms::from_der(&ecdsa_with_null),
        Err(Error::UnexpectedAlgorithmParameters { .. })
    ));

    // NULL digest parameters are accepted (RFC 5754), absent ones are what we write.
    let null_digest_params = mutate(&ecdsa, |sd, si| {
        si.digest_alg.parameters = Some(Any::null());
        sd.digest_algorithms = SetOfVec::try_from(vec![si.digest_alg.clone()]).unwrap();
    });
    SignedCms::from_der(&null_digest_params)
        .unwrap()
        .verify(DATA)
        .unwrap();

    // An ECDSA signature algorithm on an RSA key: parses, refuses to verify.
    let ecdsa_on_rsa = mutate(&pss, |_, si| {
        si.signature_algorithm = AlgorithmIdentifierOwned {
            oid: oid("1.2.840.10045.4.3.2"),
            parameters: None,
        };
    });
    assert!(matches!(
        SignedCms::from_der(&ecdsa_on_rsa).unwrap().verify(DATA),
        Err(Error::UnsupportedCombination { .. })
    ));

    // PSS parameters outside the profile.
    let pss_params = ContentInfo::from_der(&pss)
        .unwrap()
        .content
        .decode_as::<SignedData>()
        .unwrap()
        .signer_infos
        .0
        .iter()
        .next()
        .unwrap()
        .signature_algorithm
        .parameters
        .clone()
        .unwrap()
        .to_der()
        .unwrap();
    let salt = [0xa2, 0x03, 0x02, 0x01, 0x20];
    let at = find_once(&pss_params, &salt);
    let mut salt_20 = pss_params.clone();
    salt_20[at + 4] = 20;
    let mut no_mgf_hash = pss_params.clone();
    // Make MGF1 use SHA-384 while the hash is SHA-256.
    let sha256 = DigestAlgorithm::Sha256.oid().to_der().unwrap();
    let mgf_at = pss_params
        .windows(sha256.len())
        .enumerate()
        .filter(|(_, w)| *w == sha256.as_slice())
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    no_mgf_hash[mgf_at + sha256.len() - 1] = 0x02;
    for (params, what) in [
        (Some(salt_20), "salt"),
        (Some(no_mgf_hash), "mgf"),
        (None, "absent"),
        (Some(vec![0x30, 0x00]), "sha1 defaults"),
    ] {
        let changed = mutate(&pss, |_, si| {
            si.signature_algorithm.parameters = params.map(|p| Any::from_der(&p).unwrap());
        });
        assert!(
            matches!(
                SignedCms::from_der(&changed),
                Err(Error::UnsupportedPssParameters { .. })
            ),
            "{what}"
        );
    }
}

#[test]
fn verify_rejects_a_digest_of_the_wrong_length() {
    let parsed = SignedCms::from_der(&p256_sample()).unwrap();
    assert!(matches!(
        parsed.verify_digest(&[0u8; 20]),
        Err(Error::DigestLength {
            expected: 32,
            actual: 20,
            ..
        })
    ));
}
