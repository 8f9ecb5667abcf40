//! PINs: tried once, never retried, erased when refused, never shown; explicit logout.

use super::*;

/// Issue 4: a wrong PIN is a typed error naming the token's PIN flags, after exactly one
/// C_Login, and it appears nowhere.
#[test]
fn wrong_pin_is_tried_once_and_named_with_the_flags() {
    let test = TestToken::builder("wrong_pin").key(KeyKind::P256).build();
    let token = open(&test);
    let wrong = "not-the-pin-9876";
    let err = token.login(wrong.as_bytes()).unwrap_err();
    let flags = test.module.token_info(test.slot).unwrap().flags;
    match &err {
        Error::Pin {
            source,
            flags: reported,
            ..
        } => {
            assert_eq!(source.rv(), Some(p11_raw::Rv::PinIncorrect));
            assert_eq!(*reported, PinFlags(Some(flags)));
        }
        other => panic!("expected a PIN error, got {other:?}"),
    }
    assert!(err.is_pin_error());
    let text = err.to_string();
    assert!(
        text.contains("CKR_PIN_INCORRECT") && text.contains("user PIN flags"),
        "{text}"
    );
    assert!(text.contains(&test.label), "{text}");
    for shown in [text, format!("{err:?}"), format!("{token:?}")] {
        assert!(!shown.contains(wrong), "the PIN leaked: {shown}");
    }
    let figures = token.metrics().snapshot();
    assert_eq!(figures.logins, 1, "exactly one C_Login attempt");
    assert!(!token.is_logged_in());
    assert_eq!(token.leases(), 0);

    // The right PIN then works; the PIN does not show in the lease or the key either.
    let key = key_of(&token, &test, "p256");
    assert!(!format!("{key:?}").contains(&test.user_pin));
    assert_eq!(token.metrics().snapshot().logins, 2);
}

/// Issue 4: a key with CKA_ALWAYS_AUTHENTICATE signs from 8 threads, each signature
/// with its own context-specific login between C_SignInit and C_Sign.
#[test]
fn always_authenticate_key_signs_from_8_threads() {
    let test = TestToken::builder("always_authenticate_8")
        .key_spec(
            KeySpec::imported(KeyKind::P256)
                .always_authenticate()
                .label("guarded"),
        )
        .build();
    let cert = test.keys[0].cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "guarded");
    assert!(key.always_authenticate());
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (key, cert) = (&key, &cert);
            scope.spawn(move || {
                for n in 0..20 {
                    sign_and_verify(key, cert, &format!("guarded {i} {n}"));
                }
            });
        }
    });
    let figures = token.metrics().snapshot();
    assert_eq!(figures.signatures, 160);
    assert_eq!(figures.context_logins, 160);
    assert_eq!((figures.logins, figures.retries), (1, 0), "{figures:?}");
}

/// Issue 4: a wrong context PIN is a PIN error, tried once, never retried; the kept user
/// PIN is untouched and the key goes on signing.
#[test]
fn wrong_context_pin_is_a_pin_error_never_retried() {
    let test = TestToken::builder("wrong_context_pin")
        .key_spec(
            KeySpec::imported(KeyKind::P256)
                .always_authenticate()
                .label("guarded"),
        )
        .build();
    let cert = test.keys[0].cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "guarded");
    let wrong = key.with_context_pin(b"wrong-context-pin");
    let err = wrong.sign(&ecdsa(), &digest("refused")).unwrap_err();
    assert!(matches!(&err, Error::Pin { .. }), "{err:?}");
    assert_eq!(err.rv(), Some(p11_raw::Rv::PinIncorrect));
    assert!(!format!("{err:?}{wrong:?}").contains("wrong-context-pin"));
    let figures = token.metrics().snapshot();
    assert_eq!(figures.context_logins, 1, "tried exactly once");
    assert_eq!((figures.retries, figures.sign_failures), (0, 1));
    assert_eq!(figures.logins, 1, "no user re-login");
    // The session with the operation left active was closed, not pooled.
    assert_eq!(figures.sessions_closed, 1, "{figures:?}");

    sign_and_verify(&key, &cert, "accepted");
    assert_eq!(token.metrics().snapshot().context_logins, 2);
}

/// A PIN changed behind the library's back: the automatic re-login is refused once, the
/// kept PIN erased, and nothing logs in again until a caller gives the new one.
#[test]
fn changed_pin_is_tried_once_then_erased() {
    let test = TestToken::builder("changed_pin").key(KeyKind::P256).build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
    sign_and_verify(&key, &cert, "before");
    let stranger = test.module.open_session(test.slot, true).unwrap();
    stranger
        .set_pin(test.user_pin.as_bytes(), b"changed-pin-4321")
        .unwrap();
    stranger.logout().unwrap();
    drop(stranger);

    let err = key.sign(&ecdsa(), &digest("refused")).unwrap_err();
    assert!(matches!(&err, Error::Pin { .. }), "{err:?}");
    assert_eq!(token.metrics().snapshot().logins, 2, "one re-login attempt");
    let err = key.sign(&ecdsa(), &digest("still refused")).unwrap_err();
    assert!(matches!(&err, Error::PinRequired { .. }), "{err:?}");
    assert_eq!(
        token.metrics().snapshot().logins,
        2,
        "the erased PIN is not tried"
    );

    let lease = token.login(b"changed-pin-4321").unwrap();
    assert_eq!(token.metrics().snapshot().logins, 3);
    sign_and_verify(&key, &cert, "after");
    drop((lease, key));
    assert!(!really_logged_in(&test));
}

/// An explicit logout refuses while leases are out, or waits for the last one.
#[test]
fn explicit_logout_refuses_or_waits_for_leases() {
    let test = TestToken::builder("explicit_logout").build();
    let token = open(&test);
    let lease = token.login(test.user_pin.as_bytes()).unwrap();
    let second = lease.clone();
    assert_eq!(token.leases(), 2);
    let err = token.logout(Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, Error::LeasesOutstanding { count: 2, .. }),
        "{err}"
    );
    drop(second);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(lease);
        });
        token.logout(Duration::from_secs(30)).unwrap();
    });
    assert!(!token.is_logged_in());
    let figures = token.metrics().snapshot();
    assert_eq!((figures.logins, figures.logouts), (1, 1));
    assert!(!really_logged_in(&test));
    // Logging out a logged-out token is a no-op.
    token.logout(Duration::ZERO).unwrap();
}
