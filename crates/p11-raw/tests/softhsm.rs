//! p11-raw against a real SoftHSM2 module: every wrapper, each test on its own token.

use p11_raw::{
    Attribute, AttributeType, AttributeValue, Error, KeyType, Mechanism, MechanismType, Module,
    ObjectClass, PssParams, RecoveryClass, Rv, Session, Threading, UserType,
};
use p11_testkit::{KeyKind, KeySpec, Scheme, TestToken, verify_prehash};
use sha2::{Digest, Sha256, Sha384, Sha512};

fn digest_for(kind: KeyKind, data: &[u8]) -> Vec<u8> {
    match kind {
        KeyKind::P384 => Sha384::digest(data).to_vec(),
        KeyKind::P521 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// DER DigestInfo for SHA-256 (RFC 8017, section 9.2, note 1).
fn digest_info_sha256(digest: &[u8]) -> Vec<u8> {
    let mut info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    info.extend_from_slice(digest);
    info
}

fn rv_of<T: std::fmt::Debug>(result: Result<T, Error>) -> Rv {
    result
        .expect_err("expected a PKCS#11 error")
        .rv()
        .expect("a module error")
}

#[test]
fn module_is_shared_send_sync_and_describes_itself() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Module>();
    assert_send::<Session>();

    let module = p11_testkit::module();
    let again = Module::open(module.path()).unwrap();
    assert!(again.same_module(&module));
    assert_eq!(again.threading(), Threading::OsLocking);

    // Many threads opening the same module at once all get the one instance.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = module.path().to_path_buf();
            std::thread::spawn(move || Module::open(path).unwrap())
        })
        .collect();
    for handle in handles {
        assert!(handle.join().unwrap().same_module(&module));
    }

    let info = module.info().unwrap();
    assert_eq!(info.cryptoki_version.major, 2);
    assert!(info.manufacturer.contains("SoftHSM"), "{info:?}");
}

#[test]
fn slots_tokens_and_mechanisms() {
    let token = TestToken::builder("slots_tokens_and_mechanisms").build();
    let module = &token.module;
    assert!(module.slots(true).unwrap().contains(&token.slot));
    assert!(module.slots(false).unwrap().contains(&token.slot));
    assert!(module.slot_info(token.slot).unwrap().token_present);

    let info = module.token_info(token.slot).unwrap();
    assert_eq!(info.label, token.label);
    assert_eq!(info.serial_number, token.serial);
    assert!(info.flags.token_initialized());
    assert!(info.flags.user_pin_initialized());
    assert!(info.flags.login_required());
    assert!(info.flags.user_pin_flag_names().is_empty());

    let mechanisms = module.mechanisms(token.slot).unwrap();
    for wanted in [
        MechanismType::RSA_PKCS,
        MechanismType::RSA_PKCS_PSS,
        MechanismType::ECDSA,
        MechanismType::SHA256_RSA_PKCS,
    ] {
        assert!(
            mechanisms.contains(&wanted),
            "{wanted} missing from {mechanisms:?}"
        );
    }
    let rsa = module
        .mechanism_info(token.slot, MechanismType::RSA_PKCS)
        .unwrap();
    assert!(
        rsa.sign && rsa.min_key_size <= 2048 && rsa.max_key_size >= 4096,
        "{rsa:?}"
    );
    assert_eq!(
        rv_of(module.mechanism_info(token.slot, MechanismType::from_raw(0x7fff_fff0))),
        Rv::MechanismInvalid
    );
}

#[test]
fn sign_and_verify_every_key_type() {
    let token = TestToken::builder("sign_and_verify_every_key_type")
        .key(KeyKind::Rsa2048)
        .key(KeyKind::Rsa3072)
        .key(KeyKind::P256)
        .key(KeyKind::P384)
        .key(KeyKind::P521)
        .build();
    let mut session = token.user_session().unwrap();
    let data = b"the bytes a PDF signature covers";
    for key in &token.keys {
        let handle = token.private_key(&session, &key.label).unwrap();
        let digest = digest_for(key.kind, data);
        let len = key.kind.signature_len();
        if key.kind.is_rsa() {
            // PKCS#1 v1.5 over a DigestInfo.
            let signature = session
                .sign_init(&Mechanism::new(MechanismType::RSA_PKCS), handle)
                .unwrap()
                .sign(&digest_info_sha256(&digest), len)
                .unwrap();
            assert_eq!(signature.len(), len);
            verify_prehash(&key.cert_der, Scheme::Pkcs1v15, &digest, &signature).unwrap();

            // PSS over the bare hash.
            let params = PssParams::for_hash(MechanismType::SHA256).unwrap();
            let signature = session
                .sign_init(&Mechanism::pss(MechanismType::RSA_PKCS_PSS, params), handle)
                .unwrap()
                .sign(&digest, len)
                .unwrap();
            verify_prehash(&key.cert_der, Scheme::Pss, &digest, &signature).unwrap();

            // Hash-and-sign over the message, in parts.
            let mut operation = session
                .sign_init(&Mechanism::new(MechanismType::SHA256_RSA_PKCS), handle)
                .unwrap();
            operation.update(&data[..10]).unwrap();
            operation.update(&data[10..]).unwrap();
            let signature = operation.finish(len).unwrap();
            verify_prehash(&key.cert_der, Scheme::Pkcs1v15, &digest, &signature).unwrap();

            // A tampered digest does not verify: the check above is real.
            let mut wrong = digest.clone();
            wrong[0] ^= 1;
            assert!(verify_prehash(&key.cert_der, Scheme::Pkcs1v15, &wrong, &signature).is_err());
        } else {
            let signature = session
                .sign_init(&Mechanism::new(MechanismType::ECDSA), handle)
                .unwrap()
                .sign(&digest, len)
                .unwrap();
            assert_eq!(signature.len(), len, "{}", key.kind);
            verify_prehash(&key.cert_der, Scheme::Ecdsa, &digest, &signature).unwrap();
            let mut wrong = digest.clone();
            wrong[0] ^= 1;
            assert!(verify_prehash(&key.cert_der, Scheme::Ecdsa, &wrong, &signature).is_err());
        }
    }
    assert!(session.is_fit());
}

#[test]
fn sign_sizes_itself_and_grows_a_short_buffer() {
    let token = TestToken::builder("sign_sizes_itself")
        .key(KeyKind::Rsa2048)
        .build();
    let mut session = token.user_session().unwrap();
    let key = token.private_key(&session, "rsa2048").unwrap();
    let info = digest_info_sha256(&Sha256::digest(b"x"));
    // 0 asks the module for the length first.
    let signature = session
        .sign_init(&Mechanism::new(MechanismType::RSA_PKCS), key)
        .unwrap()
        .sign(&info, 0)
        .unwrap();
    assert_eq!(signature.len(), 256);
    // A buffer too small: CKR_BUFFER_TOO_SMALL keeps the operation; we grow and retry.
    let again = session
        .sign_init(&Mechanism::new(MechanismType::RSA_PKCS), key)
        .unwrap()
        .sign(&info, 10)
        .unwrap();
    assert_eq!(again, signature, "PKCS#1 v1.5 is deterministic");
    assert!(session.is_fit());
}

/// `C_SignInit` now, `C_Sign` later: the session is unfit while the operation waits,
/// fit again once it is resumed and signed; one never resumed stays unfit.
#[test]
fn a_suspended_signature_resumes_later() {
    let token = TestToken::builder("a_suspended_signature_resumes_later")
        .key(KeyKind::P256)
        .build();
    let mut session = token.user_session().unwrap();
    let key = token.private_key(&session, "p256").unwrap();
    assert!(session.resume_sign().is_none(), "nothing suspended yet");
    session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap()
        .suspend();
    assert!(!session.is_fit());
    let digest = Sha256::digest(b"known only later");
    let signature = session.resume_sign().unwrap().sign(&digest, 64).unwrap();
    verify_prehash(&token.keys[0].cert_der, Scheme::Ecdsa, &digest, &signature).unwrap();
    assert!(session.is_fit());
    assert!(session.resume_sign().is_none(), "resumed once only");

    session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap()
        .suspend();
    assert!(!session.is_fit(), "abandoned: a pool closes it");
    // Another operation cannot start while one waits, and that breakage outlives it.
    assert_eq!(
        rv_of(session.sign_init(&Mechanism::new(MechanismType::ECDSA), key)),
        Rv::OperationActive
    );
    session.resume_sign().unwrap().sign(&digest, 64).unwrap();
    assert!(!session.is_fit());
}

#[test]
fn generated_keys_sign_and_verify() {
    let token = TestToken::builder("generated_keys_sign")
        .generated_key(KeyKind::Rsa2048)
        .generated_key(KeyKind::P256)
        .build();
    let mut session = token.user_session().unwrap();
    for key in &token.keys {
        let handle = token.private_key(&session, &key.label).unwrap();
        let digest = Sha256::digest(b"generated").to_vec();
        let (mechanism, input, scheme) = if key.kind.is_rsa() {
            (
                MechanismType::RSA_PKCS,
                digest_info_sha256(&digest),
                Scheme::Pkcs1v15,
            )
        } else {
            (MechanismType::ECDSA, digest.clone(), Scheme::Ecdsa)
        };
        let signature = session
            .sign_init(&Mechanism::new(mechanism), handle)
            .unwrap()
            .sign(&input, key.kind.signature_len())
            .unwrap();
        verify_prehash(&key.cert_der, scheme, &digest, &signature).unwrap();
    }
}

#[test]
fn wrong_pin_double_login_and_logout() {
    let token = TestToken::builder("wrong_pin_double_login").build();
    let session = token.module.open_session(token.slot, false).unwrap();
    let err = session
        .login(UserType::User, Some(b"not-the-pin"))
        .unwrap_err();
    assert_eq!(err.rv(), Some(Rv::PinIncorrect));
    assert_eq!(err.recovery_class(), RecoveryClass::Pin);
    assert_eq!(err.to_string(), "C_Login: CKR_PIN_INCORRECT");
    assert!(session.is_fit(), "a PIN error does not break the session");

    session
        .login(UserType::User, Some(token.user_pin.as_bytes()))
        .unwrap();
    assert!(session.info().unwrap().state.user_logged_in());
    // All sessions share one login: a second C_Login, from another session, is refused.
    let other = token.module.open_session(token.slot, false).unwrap();
    assert!(other.info().unwrap().state.user_logged_in());
    assert_eq!(
        rv_of(other.login(UserType::User, Some(token.user_pin.as_bytes()))),
        Rv::UserAlreadyLoggedIn
    );
    // C_Logout in one session logs out every session.
    other.logout().unwrap();
    assert!(!session.info().unwrap().state.user_logged_in());
    // The standard says a logout while logged out answers CKR_USER_NOT_LOGGED_IN;
    // SoftHSM2 2.6 answers CKR_OK. Either way nothing is logged in afterwards.
    let again = session.logout();
    assert!(again.is_ok() || again.unwrap_err().rv() == Some(Rv::UserNotLoggedIn));
    assert!(!other.info().unwrap().state.user_logged_in());
}

#[test]
fn dead_sessions_answer_session_handle_invalid() {
    let token = TestToken::builder("dead_sessions").build();
    let session = token.module.open_session(token.slot, false).unwrap();
    token.module.close_session_handle(session.handle()).unwrap();
    let err = session.info().unwrap_err();
    assert_eq!(err.rv(), Some(Rv::SessionHandleInvalid));
    assert_eq!(err.recovery_class(), RecoveryClass::SessionLost);
    assert!(
        !session.is_fit(),
        "a dead session must not go back to a pool"
    );
    drop(session); // closing it again is quietly tolerated

    let a = token.module.open_session(token.slot, false).unwrap();
    let b = token.module.open_session(token.slot, true).unwrap();
    assert!(b.info().unwrap().read_write);
    token.module.close_all_sessions(token.slot).unwrap();
    assert_eq!(rv_of(a.info()), Rv::SessionHandleInvalid);
    assert_eq!(rv_of(b.close()), Rv::SessionHandleInvalid);
}

#[test]
fn attributes_present_sensitive_absent_and_variable_sized() {
    let token = TestToken::builder("attributes_kinds")
        .key(KeyKind::Rsa3072)
        .key_spec(
            KeySpec::imported(KeyKind::P384)
                .label("restricted")
                .always_authenticate()
                .allowed_mechanisms(&[MechanismType::ECDSA]),
        )
        .build();
    let session = token.user_session().unwrap();
    let rsa = token.private_key(&session, "rsa3072").unwrap();
    let values = session
        .attributes(
            rsa,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::Label,
                AttributeType::Modulus,
                AttributeType::PrivateExponent,
                AttributeType::EcPoint,
                AttributeType::Sign,
            ],
        )
        .unwrap();
    assert_eq!(
        values[0],
        AttributeValue::Present(Attribute::Class(ObjectClass::PRIVATE_KEY))
    );
    assert_eq!(
        values[1],
        AttributeValue::Present(Attribute::KeyType(KeyType::RSA))
    );
    assert_eq!(
        values[2],
        AttributeValue::Present(Attribute::Label(b"rsa3072".to_vec()))
    );
    match &values[3] {
        AttributeValue::Present(Attribute::Modulus(n)) => assert_eq!(n.len(), 384),
        other => panic!("modulus: {other:?}"),
    }
    // Sensitive and absent in the same call are told apart.
    assert_eq!(
        values[4],
        AttributeValue::Sensitive(AttributeType::PrivateExponent)
    );
    assert_eq!(values[5], AttributeValue::Absent(AttributeType::EcPoint));
    assert_eq!(values[6], AttributeValue::Present(Attribute::Sign(true)));

    let ec = token.private_key(&session, "restricted").unwrap();
    let values = session
        .attributes(
            ec,
            &[
                AttributeType::AlwaysAuthenticate,
                AttributeType::AllowedMechanisms,
            ],
        )
        .unwrap();
    assert_eq!(
        values[0],
        AttributeValue::Present(Attribute::AlwaysAuthenticate(true))
    );
    assert_eq!(
        values[1],
        AttributeValue::Present(Attribute::AllowedMechanisms(vec![MechanismType::ECDSA]))
    );

    // A large variable-size value: the certificate, fetched whole.
    let certs = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(b"rsa3072".to_vec()),
        ])
        .unwrap();
    let value = session
        .attributes(certs[0], &[AttributeType::Value])
        .unwrap();
    assert_eq!(
        value[0],
        AttributeValue::Present(Attribute::Value(token.keys[0].cert_der.clone()))
    );
}

#[test]
fn objects_are_found_in_batches_created_and_destroyed() {
    let token = TestToken::builder("objects_batches").build();
    let session = token.module.open_session(token.slot, true).unwrap();
    session
        .login(UserType::User, Some(token.user_pin.as_bytes()))
        .unwrap();
    // More than one C_FindObjects batch (64).
    let mut made = Vec::new();
    for i in 0..150u32 {
        made.push(
            session
                .create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(false),
                    Attribute::Label(b"bulk".to_vec()),
                    Attribute::Value(i.to_be_bytes().to_vec()),
                ])
                .unwrap(),
        );
    }
    let template = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(b"bulk".to_vec()),
    ];
    let mut found = session.find_objects(&template).unwrap();
    found.sort_by_key(|h| h.raw());
    made.sort_by_key(|h| h.raw());
    assert_eq!(found, made);
    // A search ends cleanly, so another can start on the same session.
    assert_eq!(session.find_objects(&template).unwrap().len(), 150);

    session.destroy_object(made[0]).unwrap();
    assert_eq!(session.find_objects(&template).unwrap().len(), 149);
    assert_eq!(
        rv_of(session.destroy_object(made[0])),
        Rv::ObjectHandleInvalid
    );
    assert!(session.is_fit());
}

#[test]
fn key_handles_are_shared_across_sessions_and_die_with_logout() {
    let token = TestToken::builder("handles_shared")
        .key(KeyKind::P256)
        .build();
    let finder = token.user_session().unwrap();
    let key = token.private_key(&finder, "p256").unwrap();
    let mut signer = token.module.open_session(token.slot, false).unwrap();
    let digest = Sha256::digest(b"shared");
    let signature = signer
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap()
        .sign(&digest, 64)
        .unwrap();
    verify_prehash(&token.keys[0].cert_der, Scheme::Ecdsa, &digest, &signature).unwrap();

    // Private objects are gone after a logout: SoftHSM2 answers the cached handle with
    // CKR_OBJECT_HANDLE_INVALID or CKR_KEY_HANDLE_INVALID, not USER_NOT_LOGGED_IN.
    finder.logout().unwrap();
    let err = signer
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap_err();
    assert_eq!(err.recovery_class(), RecoveryClass::StaleHandle, "{err}");
}

#[test]
fn abandoned_operations_mark_the_session_unfit() {
    let token = TestToken::builder("abandoned_operations")
        .key(KeyKind::P256)
        .build();
    let mut session = token.user_session().unwrap();
    let key = token.private_key(&session, "p256").unwrap();
    drop(
        session
            .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
            .unwrap(),
    );
    assert!(!session.is_fit());
    // Indeed the module still has it active.
    assert_eq!(
        rv_of(session.sign_init(&Mechanism::new(MechanismType::ECDSA), key)),
        Rv::OperationActive
    );
}

#[test]
fn always_authenticate_needs_the_context_login() {
    let token = TestToken::builder("always_authenticate")
        .key_spec(KeySpec::imported(KeyKind::P256).always_authenticate())
        .build();
    let mut session = token.user_session().unwrap();
    let key = token.private_key(&session, "p256").unwrap();
    let digest = Sha256::digest(b"context");
    // Without the context login SoftHSM2 refuses and ends the operation.
    let err = session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap()
        .sign(&digest, 64)
        .unwrap_err();
    assert_eq!(err.rv(), Some(Rv::UserNotLoggedIn));
    // With a wrong context PIN: a PIN error.
    let mut operation = session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap();
    assert_eq!(rv_of(operation.login_context(b"wrong")), Rv::PinIncorrect);
    drop(operation);
    // On a fresh session, with it, the signature verifies.
    let mut session = token.user_session().unwrap();
    let mut operation = session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)
        .unwrap();
    operation.login_context(token.user_pin.as_bytes()).unwrap();
    let signature = operation.sign(&digest, 64).unwrap();
    verify_prehash(&token.keys[0].cert_der, Scheme::Ecdsa, &digest, &signature).unwrap();
}

#[test]
fn random_and_pin_change() {
    let token = TestToken::builder("random_and_pin_change").build();
    let session = token.module.open_session(token.slot, true).unwrap();
    let a = session.generate_random(32).unwrap();
    let b = session.generate_random(32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    session
        .login(UserType::User, Some(token.user_pin.as_bytes()))
        .unwrap();
    assert_eq!(
        rv_of(session.set_pin(b"wrong-old", b"new-pin-1")),
        Rv::PinIncorrect
    );
    session
        .set_pin(token.user_pin.as_bytes(), b"new-pin-1")
        .unwrap();
    session.logout().unwrap();
    assert_eq!(
        rv_of(session.login(UserType::User, Some(token.user_pin.as_bytes()))),
        Rv::PinIncorrect
    );
    session.login(UserType::User, Some(b"new-pin-1")).unwrap();
}

#[test]
fn init_token_rejects_long_labels() {
    let module = p11_testkit::module();
    let slot = module.slots(false).unwrap()[0];
    let err = module.init_token(slot, b"so", &"x".repeat(33)).unwrap_err();
    assert!(matches!(err, Error::LabelTooLong { .. }), "{err}");
}

#[test]
fn files_that_are_not_modules_give_clear_errors() {
    let missing = Module::open("/nonexistent/libnothing.so").unwrap_err();
    assert!(matches!(missing, Error::ModulePath { .. }), "{missing}");
    assert!(missing.to_string().contains("/nonexistent/libnothing.so"));

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let text = dir.join("not-a-library.so");
    std::fs::write(&text, b"this is not an ELF file").unwrap();
    let err = Module::open(&text).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");

    // A real shared library without C_GetFunctionList.
    let libc = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(libc) = libc {
        let err = Module::open(libc).unwrap_err();
        assert!(matches!(err, Error::NotAModule { .. }), "{err}");
        assert!(err.to_string().contains("is not a PKCS#11 module"), "{err}");
    }
}
