//! Room for and addition of a RFC 3161 signature time-stamp token (PAdES B-T).

use std::sync::Arc;

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use test_pki::KeyKind;

use cms_sign::{
    DigestAlgorithm, Error, SignatureAlgorithm, SignedCms, SignedDataBuilder, SubFilter,
    add_timestamp_token,
};

use crate::support::{TestKey, content, key_algorithm, openssl_available, openssl_verify, scratch};

/// A stand-in token: a DER `ContentInfo` holding a `SignedData` whose encapsulated
/// TSTInfo is `fill` bytes long (the real thing is a TSA's signed `TSTInfo`).
fn token(fill: usize) -> Vec<u8> {
    let signed_data = SignedData {
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![DigestAlgorithm::Sha256.algorithm_identifier()])
            .unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4"),
            econtent: Some(Any::encode_from(&OctetString::new(vec![0x5a; fill]).unwrap()).unwrap()),
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2"),
        content: Any::encode_from(&signed_data).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// With room reserved for a token of N bytes, the signature with the token added fits
/// the bound, within 64 bytes, across the DER length-encoding boundaries.
#[test]
fn reserved_room_fits_the_token() {
    let openssl = openssl_available();
    let dir = scratch("timestamp");
    let data = content(2048);
    let mut checked = 0;
    for kind in [KeyKind::P521, KeyKind::Rsa3072] {
        let key = Arc::new(TestKey::new(kind));
        let algorithm =
            SignatureAlgorithm::default_for(key_algorithm(kind), DigestAlgorithm::Sha256);
        let digest = algorithm.digest.digest(&data);
        for fill in [0, 60, 100, 200, 1_000, 6_000, 65_000, 70_000] {
            let token = token(fill);
            let mut builder =
                SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached).unwrap();
            let plain_bound = builder.size_bound().unwrap();
            let bound = builder.reserve_timestamp(token.len()).size_bound().unwrap();
            assert!(bound > plain_bound + token.len());
            let signed = builder.sign(&digest).unwrap();
            let stamped = add_timestamp_token(&signed, &token).unwrap();
            assert!(
                stamped.len() <= bound,
                "{kind} {fill}: {} > {bound}",
                stamped.len()
            );
            assert!(
                bound - stamped.len() <= 64,
                "{kind} {fill}: slack {}",
                bound - stamped.len()
            );
            if kind.is_rsa() {
                assert_eq!(stamped.len(), bound, "exact for RSA");
            }

            let before = SignedCms::from_der(&signed).unwrap();
            let after = SignedCms::from_der(&stamped).unwrap();
            assert_eq!(before.timestamp_token(), None);
            assert_eq!(after.timestamp_token(), Some(token.as_slice()));
            assert_eq!(after.signature(), before.signature());
            assert_eq!(
                after.signed_attributes_der(),
                before.signed_attributes_der()
            );
            after.verify(&data).unwrap();
            if openssl && (fill == 100 || fill == 6_000) {
                openssl_verify(&dir, &format!("{kind}-{fill}"), &stamped, &data).unwrap();
            }

            assert!(matches!(
                add_timestamp_token(&stamped, &token),
                Err(Error::TimestampAlreadyPresent)
            ));
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn tokens_must_be_signed_data() {
    let key = Arc::new(TestKey::new(KeyKind::P256));
    let algorithm =
        SignatureAlgorithm::default_for(key_algorithm(KeyKind::P256), DigestAlgorithm::Sha256);
    let signed = SignedDataBuilder::new(key, algorithm, SubFilter::CadesDetached)
        .unwrap()
        .sign(&DigestAlgorithm::Sha256.digest(b"x"))
        .unwrap();

    let data_info = ContentInfo {
        content_type: ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1"),
        content: Any::encode_from(&OctetString::new(b"tst".to_vec()).unwrap()).unwrap(),
    }
    .to_der()
    .unwrap();
    let mut truncated = token(10);
    truncated.pop();
    for bad in [&b""[..], b"\x30\x00", b"garbage", &data_info, &truncated] {
        assert!(
            matches!(
                add_timestamp_token(&signed, bad),
                Err(Error::InvalidTimestampToken)
            ),
            "{bad:?}"
        );
    }
    // The SignedData itself must parse.
    assert!(matches!(
        add_timestamp_token(&signed[..signed.len() - 1], &token(10)),
        Err(Error::Malformed { .. })
    ));
    // Our own SignedData is a valid token shape too.
    let stamped = add_timestamp_token(&signed, &signed).unwrap();
    assert_eq!(
        SignedCms::from_der(&stamped).unwrap().timestamp_token(),
        Some(signed.as_slice())
    );
    // A token is reported even when the signature was not made by this crate.
    assert!(ContentInfo::from_der(&stamped).is_ok());
    assert!(Any::from_der(&stamped).unwrap().to_der().unwrap() == stamped);
}
