//! Many threads through the proxy at once, with faults and events under their feet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use p11_fault::{Event, Func};
use p11_raw::Rv;
use p11_testkit::KeyKind;

use crate::support::{key, login, proxy, relogin, sign, token};

#[test]
fn every_fault_a_thread_sees_is_counted_once() {
    let token = token("threads_faults_counted", &[]);
    let control = &proxy().control;
    control
        .apply_to_slot(
            token.slot,
            "seed 9\nfault C_Sign DEVICE_ERROR p=0.1\nlatency C_Sign 0us..500us",
        )
        .unwrap();
    let seen = AtomicU64::new(0);
    let signed = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (token, seen, signed) = (&token, &seen, &signed);
            s.spawn(move || {
                let mut session = login(token);
                let ec = key(&session, KeyKind::P256);
                for n in 0..25 {
                    match sign(&mut session, token, ec, format!("{t}/{n}").as_bytes()) {
                        Ok(()) => signed.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            assert_eq!(e.rv(), Some(Rv::DeviceError), "{e}");
                            seen.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
    });
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.calls(Func::Sign), 200);
    assert_eq!(
        counters.faults(Rv::DeviceError),
        seen.load(Ordering::Relaxed)
    );
    assert_eq!(
        signed.load(Ordering::Relaxed) + seen.load(Ordering::Relaxed),
        200
    );
    assert!(seen.load(Ordering::Relaxed) > 0);
}

#[test]
fn signers_survive_close_alls_and_logouts_under_their_feet() {
    let token = token("threads_survive_events", &[]);
    let control = &proxy().control;
    let signed = AtomicU64::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|t| {
                let (token, signed) = (&token, &signed);
                s.spawn(move || {
                    // A crude recovery loop: any failure means a fresh session, login
                    // and lookup. What matters here is that the proxy neither crashes
                    // nor hands one real session to two threads while events close
                    // sessions under calls in flight.
                    let mut done = 0;
                    let mut attempts = 0;
                    while done < 15 {
                        attempts += 1;
                        assert!(attempts < 2_000, "thread {t} makes no progress");
                        let mut session = match proxy().module.open_session(token.slot, false) {
                            Ok(session) => session,
                            Err(_) => continue,
                        };
                        if session
                            .login(p11_raw::UserType::User, Some(token.user_pin.as_bytes()))
                            .is_err_and(|e| e.rv() != Some(Rv::UserAlreadyLoggedIn))
                        {
                            continue;
                        }
                        let Ok(found) = session.find_objects(&[
                            p11_raw::Attribute::Class(p11_raw::ObjectClass::PRIVATE_KEY),
                            p11_raw::Attribute::Label(b"p256".to_vec()),
                        ]) else {
                            continue;
                        };
                        let Some(&ec) = found.first() else { continue };
                        while done < 15 && sign(&mut session, token, ec, b"under fire").is_ok() {
                            done += 1;
                            signed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for round in 0..20 {
            std::thread::sleep(Duration::from_millis(10));
            let event = if round % 2 == 0 {
                Event::CloseAll
            } else {
                Event::Logout
            };
            control.trigger(event, Some(token.slot)).unwrap();
        }
        for worker in workers {
            worker.join().unwrap();
        }
    });
    assert_eq!(signed.load(Ordering::Relaxed), 90);
    // The token is usable afterwards.
    let mut session = login(&token);
    relogin(&session, &token);
    let ec = key(&session, KeyKind::P256);
    sign(&mut session, &token, ec, b"after the storm").unwrap();
}
