//! p11-session against SoftHSM2: each test on its own token, each one a test that a
//! naive implementation (a login per caller, a logout per drop, no recovery, a
//! retried PIN) fails.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use p11_raw::{Attribute, AttributeType, AttributeValue, Module, ObjectClass};
use p11_session::{
    EcCurve, Error, KeyAlgorithm, KeyQuery, Mechanism, MechanismType, Metrics, MetricsSnapshot,
    PinFlags, PssParams, SigningKey, Token, TokenConfig, TokenQuery,
};
use p11_testkit::{KeyKind, KeySpec, Pki, Scheme, TestToken, verify_prehash};
use sha2::{Digest, Sha256};

fn ecdsa() -> Mechanism {
    Mechanism::new(MechanismType::ECDSA)
}

fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
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

fn open(test: &TestToken) -> Token {
    Token::open(&test.module, &TokenQuery::Serial(test.serial.clone())).unwrap()
}

fn open_with(test: &TestToken, config: &TokenConfig) -> Token {
    Token::open_with(
        &test.module,
        &TokenQuery::Serial(test.serial.clone()),
        config,
    )
    .unwrap()
}

fn key_of(token: &Token, test: &TestToken, label: &str) -> SigningKey {
    let lease = token.login(test.user_pin.as_bytes()).unwrap();
    // The key holds a lease of its own.
    lease.key(&KeyQuery::Label(label.into())).unwrap()
}

fn sign_and_verify(key: &SigningKey, cert: &[u8], text: &str) {
    let digest = digest(text);
    let signature = key.sign(&ecdsa(), &digest).unwrap();
    verify_prehash(cert, Scheme::Ecdsa, &digest, &signature).unwrap();
}

/// Whether the token is logged in, as a session of our own sees it.
fn really_logged_in(test: &TestToken) -> bool {
    let session = test.module.open_session(test.slot, false).unwrap();
    session.info().unwrap().state.user_logged_in()
}

/// The repair counters only, for comparisons.
fn repairs(s: &MetricsSnapshot) -> [u64; 7] {
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

/// Digests and their signatures.
type Signed = Vec<(Vec<u8>, Vec<u8>)>;

/// Issue 4: 32 threads, each opening the module and the token and logging in on its own
/// as a per-request service would: one real C_Login, one C_Logout after the last drop.
#[test]
fn scoped_service_logs_in_once_and_out_once() {
    const THREADS: usize = 32;
    const SIGNATURES: usize = 200;
    let test = TestToken::builder("scoped_service")
        .key(KeyKind::P256)
        .build();
    let path = test.module.path().to_path_buf();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let opened = Barrier::new(THREADS);
    let signed = Barrier::new(THREADS);

    let results: Vec<(Arc<Metrics>, Signed)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (path, test, opened, signed) = (&path, &test, &opened, &signed);
                scope.spawn(move || {
                    let module = Module::open(path).unwrap();
                    let query = match i % 3 {
                        0 => TokenQuery::Label(test.label.clone()),
                        1 => TokenQuery::Serial(test.serial.clone()),
                        _ => TokenQuery::Slot(test.slot),
                    };
                    let token = Token::open(&module, &query).unwrap();
                    let lease = token.login(test.user_pin.as_bytes()).unwrap();
                    let key = lease.key(&KeyQuery::Label("p256".into())).unwrap();
                    opened.wait();
                    let signatures = (0..SIGNATURES)
                        .map(|n| {
                            let digest = digest(&format!("request {i} document {n}"));
                            let signature = key.sign(&ecdsa(), &digest).unwrap();
                            (digest, signature)
                        })
                        .collect();
                    signed.wait();
                    let metrics = token.metrics();
                    drop((key, lease, token, module));
                    (metrics, signatures)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let metrics = &results[0].0;
    assert!(results.iter().all(|(m, _)| Arc::ptr_eq(m, metrics)));
    let final_figures = metrics.snapshot();
    assert_eq!(final_figures.logins, 1, "{final_figures:?}");
    assert_eq!(final_figures.logouts, 1, "{final_figures:?}");
    assert_eq!(final_figures.key_lookups, 1, "{final_figures:?}");
    assert_eq!(final_figures.signatures, (THREADS * SIGNATURES) as u64);
    assert_eq!(final_figures.sign_failures, 0);
    assert_eq!(final_figures.retries, 0);
    assert_eq!(final_figures.sessions_open, 0, "every session closed");
    assert!(!really_logged_in(&test));
    for (_, signatures) in &results {
        for (digest, signature) in signatures {
            verify_prehash(&cert, Scheme::Ecdsa, digest, signature).unwrap();
        }
    }
}

/// Issue 4: one thread signs in a loop while another takes and drops leases (and asks for
/// an explicit logout); no signature fails and the token logs out only after both.
#[test]
fn lease_churn_never_logs_out_under_a_signer() {
    let test = TestToken::builder("logout_race").key(KeyKind::P256).build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
    let start = Barrier::new(2);
    let done = Barrier::new(2);

    std::thread::scope(|scope| {
        scope.spawn(|| {
            let key = key;
            start.wait();
            for n in 0..300 {
                sign_and_verify(&key, &cert, &format!("race {n}"));
            }
            done.wait();
            let figures = token.metrics().snapshot();
            assert_eq!((figures.logins, figures.logouts), (1, 0), "{figures:?}");
            // Dropping the key drops the last lease.
        });
        scope.spawn(|| {
            start.wait();
            for n in 0..300 {
                let lease = token.login(test.user_pin.as_bytes()).unwrap();
                if n % 10 == 0 {
                    let refused = token.logout(Duration::ZERO).unwrap_err();
                    assert!(
                        matches!(refused, Error::LeasesOutstanding { .. }),
                        "{refused}"
                    );
                }
                drop(lease);
            }
            done.wait();
        });
    });

    let figures = token.metrics().snapshot();
    assert_eq!((figures.logins, figures.logouts), (1, 1), "{figures:?}");
    assert_eq!(figures.signatures, 300);
    assert!(!token.is_logged_in());
    assert!(!really_logged_in(&test));
}

/// The last lease going races a new login: two threads pass a baton 200 times; at each
/// pass one drops its key (the last lease: the token logs out) exactly while the other
/// logs in and signs. The logout clears "logged in" only from "zero leases", so the new
/// lease is never outrun by it: no signature ever needs a repair.
#[test]
fn last_lease_logout_never_outruns_a_new_lease() {
    const PASSES: usize = 200;
    let test = TestToken::builder("last_lease_race")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let pass = Barrier::new(2);
    std::thread::scope(|scope| {
        for side in 0..2 {
            let (token, test, cert, pass) = (&token, &test, &cert, &pass);
            scope.spawn(move || {
                let mut held = (side == 0).then(|| key_of(token, test, "p256"));
                for n in 0..PASSES {
                    pass.wait();
                    match held.take() {
                        // Drop the last lease while the other side logs in.
                        Some(key) => drop(key),
                        None => {
                            let key = key_of(token, test, "p256");
                            sign_and_verify(&key, cert, &format!("pass {n}"));
                            held = Some(key);
                        }
                    }
                }
            });
        }
    });
    let figures = token.metrics().snapshot();
    assert_eq!(figures.signatures, PASSES as u64);
    assert_eq!(figures.retries, 0, "{figures:?}");
    assert_eq!(repairs(&figures), [0; 7], "{figures:?}");
    assert_eq!(figures.logins, figures.logouts, "{figures:?}");
    assert!(!really_logged_in(&test));
}

/// Issue 4: two tokens with different PINs, signed on concurrently from 16 threads; each
/// keeps its own login state.
#[test]
fn two_tokens_with_different_pins_from_16_threads() {
    let tokens = [
        TestToken::builder("two_tokens_a")
            .generated_key(KeyKind::P256)
            .user_pin("pin-of-a-1111")
            .build(),
        TestToken::builder("two_tokens_b")
            .generated_key(KeyKind::P256)
            .user_pin("pin-of-b-2222")
            .build(),
    ];
    // Everyone holds its token until all are done, so each token's state lives
    // throughout (a state nobody holds goes away, and a later open starts a new one).
    let (opened, signed) = (Barrier::new(16), Barrier::new(16));
    let metrics: Vec<Arc<Metrics>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|i| {
                let (mine, other) = (&tokens[i % 2], &tokens[1 - i % 2]);
                let (opened, signed) = (&opened, &signed);
                scope.spawn(move || {
                    let token = open(mine);
                    let key = key_of(&token, mine, "p256");
                    opened.wait();
                    let own_cert = &mine.key(KeyKind::P256).cert_der;
                    let other_cert = &other.key(KeyKind::P256).cert_der;
                    for n in 0..40 {
                        let digest = digest(&format!("thread {i} signature {n}"));
                        let signature = key.sign(&ecdsa(), &digest).unwrap();
                        verify_prehash(own_cert, Scheme::Ecdsa, &digest, &signature).unwrap();
                        assert!(
                            verify_prehash(other_cert, Scheme::Ecdsa, &digest, &signature).is_err()
                        );
                    }
                    signed.wait();
                    token.metrics()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // Threads on one token shared its state; the two tokens did not share one.
    for (i, mine) in metrics.iter().enumerate() {
        assert!(Arc::ptr_eq(mine, &metrics[i % 2]));
    }
    assert!(!Arc::ptr_eq(&metrics[0], &metrics[1]));
    for per_token in &metrics[..2] {
        let figures = per_token.snapshot();
        assert_eq!((figures.logins, figures.logouts), (1, 1), "{figures:?}");
        assert_eq!(figures.signatures, 8 * 40);
    }
}

/// Issue 4: a key handle found through one session signs through others; it is looked up
/// once, not per session.
#[test]
fn handle_found_through_one_session_signs_through_another() {
    let test = TestToken::builder("handle_across_sessions")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
    // Look-ups run on the session that holds the login, never lent for signing.
    let anchor = token.debug_anchor_handle().unwrap();
    assert_eq!(token.metrics().snapshot().key_lookups, 1);

    let held = token.session().unwrap();
    sign_and_verify(&key, &cert, "first"); // through a second pooled session
    let first = held.handle();
    drop(held);
    let held = token.session().unwrap();
    assert_ne!(held.handle(), first);
    sign_and_verify(&key, &cert, "second"); // through the first one
    drop(held);

    let idle = token.debug_idle_session_handles();
    assert_eq!(idle.len(), 2);
    assert!(!idle.contains(&anchor));
    let figures = token.metrics().snapshot();
    assert_eq!(figures.key_lookups, 1, "{figures:?}");
    assert_eq!(figures.signatures, 2);
    assert_eq!(figures.sessions_open, 3, "two pooled and the anchor");
}

/// Issue 4: 64 threads on a pool of 4: never more than 4 sessions, the waiters all finish.
#[test]
fn pool_bound_holds_under_64_threads() {
    let test = TestToken::builder("pool_bound").key(KeyKind::P256).build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open_with(
        &test,
        TokenConfig::new()
            .pool_size(4)
            .checkout_timeout(Duration::from_secs(120)),
    );
    let key = key_of(&token, &test, "p256");
    let start = Barrier::new(65);
    let running = std::sync::atomic::AtomicUsize::new(64);

    let most_seen = std::thread::scope(|scope| {
        for i in 0..64 {
            let (key, cert, start, running) = (key.clone(), &cert, &start, &running);
            scope.spawn(move || {
                start.wait();
                for n in 0..10 {
                    sign_and_verify(&key, cert, &format!("thread {i} signature {n}"));
                }
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // Watch the module's own session count while they run.
        start.wait();
        let mut most = 0;
        while running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let count = test.module.token_info(test.slot).unwrap().session_count;
            most = most.max(count.unwrap_or(0));
            std::thread::sleep(Duration::from_millis(2));
        }
        most
    });

    let figures = token.metrics().snapshot();
    assert_eq!(figures.signatures, 640);
    assert_eq!(figures.pool_peak, 4, "{figures:?}");
    assert!(figures.session_waits > 0, "{figures:?}");
    assert_eq!(figures.session_wait_timeouts, 0);
    assert!(
        most_seen <= 5,
        "four pooled sessions and the anchor, saw {most_seen}"
    );
    assert_eq!(figures.sessions_open, 5);
}

/// Issue 4, recovery: a pooled session closed behind the pool's back (raw
/// C_CloseSession on its handle) costs one session repair and nothing else.
#[test]
fn recovery_from_a_session_closed_behind_the_pools_back() {
    let test = TestToken::builder("recover_closed_session")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
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
    let test = TestToken::builder("recover_logout")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
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
    let test = TestToken::builder("recover_close_all")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
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
    let test = TestToken::builder("recover_operation_active")
        .key(KeyKind::P256)
        .build();
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = open(&test);
    let key = key_of(&token, &test, "p256");
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
