//! Many threads, many openers: one login, one logout, a bounded pool, shared handles.

use super::*;

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
    let P256Token {
        test: _test,
        cert,
        token,
        key,
    } = p256_token("handle_across_sessions");
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
