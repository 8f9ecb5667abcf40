//! Recovery from what happens behind the library's back: the prescribed repairs, counted by kind.

use super::*;

/// Issue 4, recovery: a pooled session closed behind the pool's back (raw
/// C_CloseSession on its handle) costs one session repair and nothing else.
#[test]
fn recovery_from_a_session_closed_behind_the_pools_back() {
    let P256Token {
        test,
        cert,
        token,
        key,
    } = p256_token("recover_closed_session");
    sign_and_verify(&key, &cert, "before");
    let idle = token.debug_idle_session_handles();
    assert_eq!(idle.len(), 1);
    test.module.close_session_handle(idle[0]).unwrap();

    let before = token.metrics().snapshot();
    sign_and_verify(&key, &cert, "after");
    let after = token.metrics().snapshot();
    assert_eq!(repairs(&after), [1, 0, 0, 0, 0, 0, 0], "{after:?}");
    assert_eq!(after.retries - before.retries, 1);
    assert_eq!(after.logins, 1);
    for n in 0..5 {
        sign_and_verify(&key, &cert, &format!("later {n}"));
    }
    assert_eq!(repairs(&token.metrics().snapshot()), repairs(&after));
}

/// Issue 4, recovery: a C_Logout behind the library's back (SoftHSM2 then answers the
/// cached key handle with OBJECT_HANDLE_INVALID): one re-login, one key look-up.
#[test]
fn recovery_from_a_logout_behind_the_librarys_back() {
    let P256Token {
        test,
        cert,
        token,
        key,
    } = p256_token("recover_logout");
    sign_and_verify(&key, &cert, "before");
    let epoch = token.epoch();
    let stranger = test.module.open_session(test.slot, false).unwrap();
    stranger.logout().unwrap();
    drop(stranger);
    assert!(!really_logged_in(&test));

    sign_and_verify(&key, &cert, "after");
    let after = token.metrics().snapshot();
    assert_eq!(repairs(&after), [0, 0, 1, 1, 0, 0, 0], "{after:?}");
    assert_eq!((after.retries, after.logins, after.key_lookups), (1, 2, 2));
    assert_eq!(token.epoch(), epoch + 1);
    assert!(really_logged_in(&test));
    for n in 0..5 {
        sign_and_verify(&key, &cert, &format!("later {n}"));
    }
    assert_eq!(repairs(&token.metrics().snapshot()), repairs(&after));
}

/// A key whose cached handle is from an older epoch is looked up on its next signature;
/// if the token lost its login meanwhile (a second logout behind our back), the look-up
/// logs in first: otherwise it finds no private key, and every later signature fails
/// the same way (found by the fault proxy's soak, issue 8).
#[test]
fn look_up_after_a_lost_login_logs_in_first() {
    let test = TestToken::builder("look_up_after_lost_login")
        .key(KeyKind::P256)
        .key(KeyKind::P384)
        .build();
    let token = open(&test);
    let p256 = key_of(&token, &test, "p256");
    let p384 = key_of(&token, &test, "p384");
    let logout_behind_our_back = || {
        let stranger = test.module.open_session(test.slot, false).unwrap();
        stranger.logout().unwrap();
    };
    logout_behind_our_back();
    sign_and_verify(
        &p256,
        &test.key(KeyKind::P256).cert_der,
        "repairs the login",
    );
    // The P-384 key's handle is of the old epoch now; the token loses its login again.
    logout_behind_our_back();
    let d = Sha256::digest(b"p384").to_vec();
    let mut d384 = d.clone();
    d384.extend_from_slice(&d[..16]);
    let signature = p384.sign(&ecdsa(), &d384).unwrap();
    verify_prehash(
        &test.key(KeyKind::P384).cert_der,
        Scheme::Ecdsa,
        &d384,
        &signature,
    )
    .unwrap();
    let figures = token.metrics().snapshot();
    assert_eq!(figures.repairs_login, 2, "{figures:?}");
    assert_eq!(
        (figures.retries, figures.sign_failures),
        (1, 0),
        "{figures:?}"
    );
}

/// Issue 4, recovery: C_CloseAllSessions behind its back (dead sessions, lost login and
/// stale handles at once): one session repair retiring the generation, one re-login,
/// one look-up; the other dead sessions of that generation are never tried.
#[test]
fn recovery_from_close_all_sessions_behind_its_back() {
    let P256Token {
        test,
        cert,
        token,
        key,
    } = p256_token("recover_close_all");
    // Three pooled sessions, all idle.
    let held: Vec<_> = (0..3).map(|_| token.session().unwrap()).collect();
    let old_generation = held[0].generation();
    drop(held);
    sign_and_verify(&key, &cert, "before");
    test.module.close_all_sessions(test.slot).unwrap();

    sign_and_verify(&key, &cert, "after");
    let after = token.metrics().snapshot();
    assert_eq!(repairs(&after), [1, 1, 1, 1, 0, 0, 0], "{after:?}");
    assert_eq!((after.retries, after.logins), (1, 2));
    for n in 0..10 {
        sign_and_verify(&key, &cert, &format!("later {n}"));
    }
    let later = token.metrics().snapshot();
    assert_eq!(repairs(&later), repairs(&after), "{later:?}");
    assert!(token.session().unwrap().generation() > old_generation);
    assert_eq!(
        later.sessions_open, 2,
        "one new pooled session and the new anchor"
    );
    assert!(really_logged_in(&test));
}

/// A session left with an operation active (CKR_OPERATION_ACTIVE at the next
/// C_SignInit) is dropped and the signature retried once on another session.
#[test]
fn recovery_from_an_operation_left_active() {
    let P256Token {
        test,
        cert,
        token,
        key,
    } = p256_token("recover_operation_active");
    {
        // Start a signature on the only pooled session and walk away from it, hiding
        // it from the session's own bookkeeping, as a careless raw user could.
        let mut session = token.session().unwrap();
        let handle = test.private_key(&session, "p256").unwrap();
        std::mem::forget(session.sign_init(&ecdsa(), handle).unwrap());
    }
    assert_eq!(token.debug_idle_session_handles().len(), 1);

    sign_and_verify(&key, &cert, "after");
    let after = token.metrics().snapshot();
    assert_eq!(repairs(&after), [0, 0, 0, 0, 0, 1, 0], "{after:?}");
    assert_eq!(after.retries, 1);
    assert_eq!(after.sessions_closed, 1, "the unfit session was closed");
    sign_and_verify(&key, &cert, "later");
    assert_eq!(repairs(&token.metrics().snapshot()), repairs(&after));
}

/// A signature started before its data (`C_SignInit` early, `C_Sign` later) signs on
/// the session it started on; one dropped unsigned costs its session and nothing else;
/// one whose session is closed while it waits is repaired and retried like any other.
#[test]
fn started_signatures_sign_later_or_cost_their_session() {
    let P256Token {
        test,
        cert,
        token,
        key,
    } = p256_token("started_signatures");

    let started = key.start(&ecdsa());
    assert_eq!(started.mechanism(), &ecdsa());
    assert!(
        token.debug_idle_session_handles().is_empty(),
        "the session waits"
    );
    let data = digest("known later");
    let signature = started.sign(&data).unwrap();
    verify_prehash(&cert, Scheme::Ecdsa, &data, &signature).unwrap();
    let after = token.metrics().snapshot();
    assert_eq!(
        (after.signatures, after.retries, after.sessions_closed),
        (1, 0, 0)
    );
    assert_eq!(
        token.debug_idle_session_handles().len(),
        1,
        "and comes back"
    );

    // Abandoned: the session, its operation still active, is closed, not reused.
    drop(key.start(&ecdsa()));
    let after = token.metrics().snapshot();
    assert_eq!(after.sessions_closed, 1);
    assert!(token.debug_idle_session_handles().is_empty());
    sign_and_verify(&key, &cert, "next");
    assert_eq!(repairs(&token.metrics().snapshot()), [0; 7]);

    // Closed behind the pool's back while it waits: one session repair, one retry.
    let started = key.start(&ecdsa());
    let idle_before = token.debug_idle_session_handles();
    assert!(idle_before.is_empty());
    test.module.close_all_sessions(test.slot).unwrap();
    let signature = started.sign(&data).unwrap();
    verify_prehash(&cert, Scheme::Ecdsa, &data, &signature).unwrap();
    let after = token.metrics().snapshot();
    assert_eq!(after.retries, 1, "{after:?}");
    assert_eq!(after.sign_failures, 0);
}
