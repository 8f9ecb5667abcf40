//! The same signatures made by keys on a SoftHSM2 token, through a test-only adapter from
//! `p11-session`'s `SigningKey` to the key trait (the façade owns the real one).

use std::sync::Arc;

use cms_sign::{
    CmsSigner, KeyAlgorithm, KeyError, SignRequest, SignatureScheme, SignedCms, SignedDataBuilder,
    SubFilter,
};
use p11_session::{KeyQuery, Mechanism, MechanismType, PssParams, SigningKey, Token, TokenQuery};
use p11_testkit::{KeyKind, TestToken};

use crate::support::{
    algorithms, content, key_algorithm, openssl_available, openssl_verify, scratch,
};

/// A token key as the key trait sees it: the mechanism of DESIGN.md per scheme, the
/// hashing done here.
struct TokenKey {
    key: SigningKey,
    algorithm: KeyAlgorithm,
    chain: Vec<Vec<u8>>,
}

impl CmsSigner for TokenKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn certificate(&self) -> &[u8] {
        self.key.certificate_der()
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        let digest = request.algorithm.digest;
        let (mechanism, input) = match request.algorithm.scheme {
            SignatureScheme::RsaPkcs1v15 => {
                let mut info = digest.digest_info_prefix().to_vec();
                info.extend_from_slice(request.digest);
                (Mechanism::new(MechanismType::RSA_PKCS), info)
            }
            SignatureScheme::RsaPss => {
                let hash = match request.digest.len() {
                    32 => MechanismType::SHA256,
                    48 => MechanismType::SHA384,
                    _ => MechanismType::SHA512,
                };
                let params = PssParams::for_hash(hash).ok_or("no PSS parameters")?;
                (
                    Mechanism::pss(MechanismType::RSA_PKCS_PSS, params),
                    request.digest.to_vec(),
                )
            }
            SignatureScheme::Ecdsa => (
                Mechanism::new(MechanismType::ECDSA),
                request.digest.to_vec(),
            ),
        };
        Ok(self.key.sign(&mechanism, &input)?)
    }
}

/// Every key type and digest, signed on SoftHSM2: OpenSSL and the crate's verifier accept
/// it, and reject changed content.
#[test]
fn token_keys_sign_every_algorithm() {
    let token = TestToken::builder("cms_token_keys")
        .key(KeyKind::Rsa2048)
        .key(KeyKind::Rsa3072)
        .key(KeyKind::P256)
        .key(KeyKind::P384)
        .key(KeyKind::P521)
        .build();
    let shared = Token::open(&token.module, &TokenQuery::Serial(token.serial.clone())).unwrap();
    let lease = shared.login(token.user_pin.as_bytes()).unwrap();
    let openssl = openssl_available();
    let dir = scratch("softhsm");
    let data = content(5_000);
    let mut changed = data.clone();
    changed[100] ^= 0x80;
    let mut signed = 0;
    for test_key in &token.keys {
        let key = Arc::new(TokenKey {
            key: lease.key(&KeyQuery::Label(test_key.label.clone())).unwrap(),
            algorithm: key_algorithm(test_key.kind),
            chain: vec![p11_testkit::Pki::fixture().intermediate_der().to_vec()],
        });
        assert_eq!(key.certificate(), test_key.cert_der.as_slice());
        for algorithm in algorithms(test_key.kind) {
            let name = format!(
                "token-{}-{:?}-{:?}",
                test_key.kind, algorithm.scheme, algorithm.digest
            );
            let builder = SignedDataBuilder::new(key.clone(), algorithm, SubFilter::CadesDetached)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let der = builder
                .sign(&algorithm.digest.digest(&data))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(der.len() <= builder.size_bound().unwrap(), "{name}");
            let parsed = SignedCms::from_der(&der).unwrap();
            parsed
                .verify(&data)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(parsed.verify(&changed).is_err(), "{name}");
            if openssl {
                openssl_verify(&dir, &name, &der, &data)
                    .unwrap_or_else(|e| panic!("{name}: openssl rejected it: {e}"));
                assert!(
                    openssl_verify(&dir, &name, &der, &changed).is_err(),
                    "{name}"
                );
            }
            signed += 1;
        }
    }
    assert_eq!(signed, 2 * 6 + 3 * 3);
    assert_eq!(shared.metrics().snapshot().logins, 1);
}
