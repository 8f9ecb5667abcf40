//! p11-session against SoftHSM2: each test on its own token, each one a test that a
//! naive implementation (a login per caller, a logout per drop, no recovery, a
//! retried PIN) fails. One binary; the tests live in the modules below, the support here.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use p11_raw::{Attribute, AttributeType, AttributeValue, Module, ObjectClass};
use p11_session::{
    EcCurve, Error, KeyAlgorithm, KeyQuery, Mechanism, MechanismType, Metrics, MetricsSnapshot,
    PinFlags, PssParams, SigningKey, Token, TokenConfig, TokenQuery,
};
use p11_testkit::{KeyKind, KeySpec, Pki, Scheme, TestToken, verify_prehash};
use sha2::{Digest, Sha256};

mod concurrency;
mod keys;
mod pins;
mod recovery;

pub(crate) fn ecdsa() -> Mechanism {
    Mechanism::new(MechanismType::ECDSA)
}

pub(crate) fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// DER DigestInfo for SHA-256 (RFC 8017, section 9.2, note 1).
pub(crate) fn digest_info_sha256(digest: &[u8]) -> Vec<u8> {
    let mut info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    info.extend_from_slice(digest);
    info
}

pub(crate) fn open(test: &TestToken) -> Token {
    Token::open(&test.module, &TokenQuery::Serial(test.serial.clone())).unwrap()
}

pub(crate) fn open_with(test: &TestToken, config: &TokenConfig) -> Token {
    Token::open_with(
        &test.module,
        &TokenQuery::Serial(test.serial.clone()),
        config,
    )
    .unwrap()
}

pub(crate) fn key_of(token: &Token, test: &TestToken, label: &str) -> SigningKey {
    let lease = token.login(test.user_pin.as_bytes()).unwrap();
    // The key holds a lease of its own.
    lease.key(&KeyQuery::Label(label.into())).unwrap()
}

/// A token with one P-256 key, opened and logged in, with the key and its certificate:
/// where most tests start. Bind every field: one left unbound is dropped at once (the
/// token directory with `test`).
pub(crate) struct P256Token {
    pub(crate) test: TestToken,
    pub(crate) cert: Vec<u8>,
    pub(crate) token: Token,
    pub(crate) key: SigningKey,
}

pub(crate) fn p256_token(name: &str) -> P256Token {
    let test = TestToken::builder(name).key(KeyKind::P256).build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
    P256Token {
        test,
        cert,
        token,
        key,
    }
}

pub(crate) fn sign_and_verify(key: &SigningKey, cert: &[u8], text: &str) {
    let digest = digest(text);
    let signature = key.sign(&ecdsa(), &digest).unwrap();
    verify_prehash(cert, Scheme::Ecdsa, &digest, &signature).unwrap();
}

/// Whether the token is logged in, as a session of our own sees it.
pub(crate) fn really_logged_in(test: &TestToken) -> bool {
    let session = test.module.open_session(test.slot, false).unwrap();
    session.info().unwrap().state.user_logged_in()
}

/// The repair counters only, for comparisons.
pub(crate) fn repairs(s: &MetricsSnapshot) -> [u64; 7] {
    [
        s.repairs_session,
        s.repairs_generation,
        s.repairs_login,
        s.repairs_key,
        s.repairs_context,
        s.repairs_unfit_session,
        s.repairs_device,
    ]
}
