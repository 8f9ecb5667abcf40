//! Tokens and keys: found by label, serial, slot, CKA_ID, subject; the facts a façade needs.

use super::*;

#[test]
fn types_are_send_and_sync_as_documented() {
    fn clone_send_sync<T: Clone + Send + Sync>() {}
    fn send<T: Send>() {}
    clone_send_sync::<Token>();
    clone_send_sync::<SigningKey>();
    clone_send_sync::<p11_session::LoginLease>();
    send::<p11_session::PooledSession<'static>>();
    send::<Error>();

    // A pooled session must not be Sync: if it were, both impls below would apply and
    // the call would be ambiguous, which does not compile.
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
    <p11_session::PooledSession<'static> as AmbiguousIfSync<_>>::check();
}

#[test]
fn tokens_are_found_by_label_serial_or_slot_and_shared() {
    let test = TestToken::builder("tokens_are_found").build();
    let by_label = Token::open(&test.module, &TokenQuery::Label(test.label.clone())).unwrap();
    let by_serial = open(&test);
    let by_slot = Token::open(&test.module, &TokenQuery::Slot(test.slot)).unwrap();
    assert!(by_label.same_token(&by_serial) && by_serial.same_token(&by_slot));
    assert_eq!(by_label.label(), test.label);
    assert_eq!(by_label.serial(), test.serial);
    assert_eq!(by_label.slot(), test.slot);

    let missing = TokenQuery::Label("no such token".into());
    let err = Token::open(&test.module, &missing).unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no PKCS#11 token with label \"no such token\""
    );

    // The state goes away with its last holder: a new open starts a new one.
    let metrics = by_label.metrics();
    drop((by_label, by_serial, by_slot));
    assert!(!Arc::ptr_eq(&open(&test).metrics(), &metrics));
}

/// Keys by label, CKA_ID and certificate subject, with the facts a façade needs, and
/// every mechanism the façade uses.
#[test]
fn keys_by_label_id_and_subject_with_their_facts() {
    let test = TestToken::builder("key_facts")
        .key(KeyKind::Rsa2048)
        .key(KeyKind::P256)
        .key_spec(
            KeySpec::imported(KeyKind::Rsa2048)
                .label("hash-and-sign")
                .allowed_mechanisms(&[MechanismType::SHA256_RSA_PKCS]),
        )
        .build();
    let token = open(&test);
    let lease = token.login(test.user_pin.as_bytes()).unwrap();
    let pki = Pki::fixture();

    let rsa = lease.key(&KeyQuery::Label("rsa2048".into())).unwrap();
    let rsa_test = test.key(KeyKind::Rsa2048);
    assert_eq!(rsa.algorithm(), KeyAlgorithm::Rsa { modulus_bits: 2048 });
    assert_eq!(rsa.signature_len(), 256);
    assert_eq!(rsa.allowed_mechanisms(), None);
    assert!(!rsa.always_authenticate());
    assert_eq!(rsa.id(), rsa_test.id);
    assert_eq!(rsa.certificate_der(), rsa_test.cert_der);
    assert_eq!(rsa.chain_der(), [pki.intermediate_der(), pki.root_der()]);
    let d = digest("rsa");
    let signature = rsa
        .sign(
            &Mechanism::new(MechanismType::RSA_PKCS),
            &digest_info_sha256(&d),
        )
        .unwrap();
    verify_prehash(&rsa_test.cert_der, Scheme::Pkcs1v15, &d, &signature).unwrap();
    let pss = Mechanism::pss(
        MechanismType::RSA_PKCS_PSS,
        PssParams::for_hash(MechanismType::SHA256).unwrap(),
    );
    let signature = rsa.sign(&pss, &d).unwrap();
    verify_prehash(&rsa_test.cert_der, Scheme::Pss, &d, &signature).unwrap();

    // By CKA_ID and by subject: the same shared key as by label.
    let by_id = lease.key(&KeyQuery::Id(rsa_test.id.clone())).unwrap();
    assert_eq!(by_id.certificate_der(), rsa.certificate_der());
    let p256 = lease.key(&KeyQuery::Label("p256".into())).unwrap();
    assert_eq!(
        p256.algorithm(),
        KeyAlgorithm::Ec {
            curve: EcCurve::P256
        }
    );
    assert_eq!(p256.signature_len(), 64);
    let by_subject = lease
        .key(&KeyQuery::Subject(certificate_subject(&test, "p256")))
        .unwrap();
    assert_eq!(by_subject.id(), p256.id());
    sign_and_verify(&by_subject, &test.key(KeyKind::P256).cert_der, "by subject");

    // A key that demands a hash-and-sign mechanism says so.
    let restricted = lease.key(&KeyQuery::Label("hash-and-sign".into())).unwrap();
    assert_eq!(
        restricted.allowed_mechanisms(),
        Some(&[MechanismType::SHA256_RSA_PKCS][..])
    );
    assert!(!restricted.allows(MechanismType::RSA_PKCS));
    let message = b"the message itself";
    let signature = restricted
        .sign(&Mechanism::new(MechanismType::SHA256_RSA_PKCS), message)
        .unwrap();
    verify_prehash(
        restricted.certificate_der(),
        Scheme::Pkcs1v15,
        &Sha256::digest(message),
        &signature,
    )
    .unwrap();
    // A mechanism the key refuses is a plain error, not retried.
    let err = restricted
        .sign(
            &Mechanism::new(MechanismType::RSA_PKCS),
            &digest_info_sha256(&d),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Pkcs11 { .. }), "{err}");

    let err = lease.key(&KeyQuery::Label("missing".into())).unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    let figures = token.metrics().snapshot();
    assert_eq!(figures.retries, 0, "{figures:?}");
}

/// CKA_SUBJECT of the certificate labelled `label`, read with a raw session.
fn certificate_subject(test: &TestToken, label: &str) -> Vec<u8> {
    let session = test.module.open_session(test.slot, false).unwrap();
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    match session
        .attributes(found[0], &[AttributeType::Subject])
        .unwrap()
        .pop()
    {
        Some(AttributeValue::Present(Attribute::Subject(subject))) => subject,
        other => panic!("no subject: {other:?}"),
    }
}
