//! Fault rules: the right calls fail, deterministically, are counted, and the real
//! module is made to agree with each lie.

use p11_fault::Func;
use p11_raw::{AttributeType, Mechanism, MechanismType, Rv, SessionState};
use p11_testkit::KeyKind;

use crate::support::{key, login, proxy, real_state, relogin, rv_of, sign, token};

/// Signs `attempts` times on one session; returns the 1-based attempts that failed and
/// with what. Each attempt starts with `C_SignInit` on the same session, so a fault
/// that left the real operation active would show as `CKR_OPERATION_ACTIVE` next time.
fn sign_attempts(
    token: &p11_testkit::TestToken,
    session: &mut p11_raw::Session,
    attempts: u32,
) -> Vec<(u32, Rv)> {
    let key = key(session, KeyKind::P256);
    (1..=attempts)
        .filter_map(|n| {
            sign(session, token, key, format!("message {n}").as_bytes())
                .err()
                .map(|e| (n, e.rv().expect("a module error")))
        })
        .collect()
}

#[test]
fn every_nth_fault_hits_the_same_calls_and_is_counted() {
    let token = token("every_nth_fault", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    control
        .apply_to_slot(token.slot, "fault C_Sign CKR_DEVICE_ERROR every=3")
        .unwrap();
    let failed = sign_attempts(&token, &mut session, 10);
    assert_eq!(
        failed,
        vec![
            (3, Rv::DeviceError),
            (6, Rv::DeviceError),
            (9, Rv::DeviceError)
        ]
    );
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.faults(Rv::DeviceError), 3);
    assert_eq!(counters.total_faults(), 3);
    assert_eq!(counters.calls(Func::Sign), 10);
    assert_eq!(counters.calls(Func::SignInit), 10);
    // The session survived: a device error ends only the operation.
    assert!(session.info().unwrap().state.user_logged_in());
}

#[test]
fn probability_faults_follow_the_seed() {
    let token = token("probability_faults_seed", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    let mut run = |spec: &str| {
        control.replace_slot_rules(token.slot, spec).unwrap();
        control.reset_counters(Some(token.slot));
        let failed = sign_attempts(&token, &mut session, 40);
        let counters = control.counters(Some(token.slot)).unwrap();
        assert_eq!(counters.faults(Rv::FunctionFailed), failed.len() as u64);
        assert!(failed.iter().all(|(_, rv)| *rv == Rv::FunctionFailed));
        failed.into_iter().map(|(n, _)| n).collect::<Vec<_>>()
    };
    let first = run("seed 5\nfault C_Sign FUNCTION_FAILED p=0.3");
    let again = run("seed 5\nfault C_Sign FUNCTION_FAILED p=0.3");
    let other_seed = run("seed 6\nfault C_Sign FUNCTION_FAILED p=0.3");
    assert_eq!(first, again);
    assert_ne!(first, other_seed);
    assert!(!first.is_empty() && first.len() < 40, "{first:?}");
}

#[test]
fn errors_that_end_only_the_operation() {
    let token = token("errors_end_the_operation", &[KeyKind::Rsa2048]);
    let control = &proxy().control;
    let mut session = login(&token);
    let ec = key(&session, KeyKind::P256);
    for rv in [
        Rv::DeviceError,
        Rv::FunctionFailed,
        Rv::GeneralError,
        Rv::DeviceMemory,
    ] {
        control
            .replace_slot_rules(
                token.slot,
                &format!("fault C_Sign {} every=1 limit=1", rv.name().unwrap()),
            )
            .unwrap();
        assert_eq!(rv_of(sign(&mut session, &token, ec, b"faulted")), rv);
        // The real operation ended: a new one starts on the same session, still logged in.
        sign(&mut session, &token, ec, b"after").unwrap();
        assert!(session.info().unwrap().state.user_logged_in(), "{rv}");
    }

    // Multi-part: a faulted C_SignUpdate ends the operation (with a real C_SignFinal).
    let rsa = key(&session, KeyKind::Rsa2048);
    control
        .replace_slot_rules(token.slot, "fault C_SignUpdate DEVICE_ERROR every=2")
        .unwrap();
    let mut operation = session
        .sign_init(&Mechanism::new(MechanismType::SHA256_RSA_PKCS), rsa)
        .unwrap();
    operation.update(b"part one").unwrap();
    assert_eq!(rv_of(operation.update(b"part two")), Rv::DeviceError);
    drop(operation);
    let signature = session
        .sign_init(&Mechanism::new(MechanismType::SHA256_RSA_PKCS), rsa)
        .unwrap()
        .sign(b"whole", 256)
        .unwrap();
    assert_eq!(signature.len(), 256);

    let counters = control.counters(Some(token.slot)).unwrap();
    for rv in [
        Rv::DeviceError,
        Rv::FunctionFailed,
        Rv::GeneralError,
        Rv::DeviceMemory,
    ] {
        assert!(counters.faults(rv) >= 1, "{rv}");
    }
    assert_eq!(counters.faults(Rv::DeviceError), 2);
}

#[test]
fn session_faults_close_the_real_session() {
    let token = token("session_faults_close", &[]);
    let control = &proxy().control;
    for rv in [Rv::SessionClosed, Rv::SessionHandleInvalid] {
        let mut session = login(&token);
        let other = login(&token);
        let ec = key(&session, KeyKind::P256);
        control
            .replace_slot_rules(
                token.slot,
                &format!("fault C_Sign {} every=1 limit=1", rv.name().unwrap()),
            )
            .unwrap();
        assert_eq!(rv_of(sign(&mut session, &token, ec, b"faulted")), rv);
        assert_eq!(rv_of(session.info()), Rv::SessionHandleInvalid);
        // Only that session: the other one is alive and the token still logged in.
        assert!(other.info().unwrap().state.user_logged_in());
        // Closing the other one, the application's last session, logs the token out:
        // which only happens if the faulted session's real twin is closed too.
        other.close().unwrap();
        assert_eq!(real_state(&token), SessionState::ReadOnlyPublic, "{rv}");
    }
}

#[test]
fn user_not_logged_in_fault_logs_out_for_real() {
    let token = token("user_not_logged_in_fault", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    let ec = key(&session, KeyKind::P256);
    control
        .apply_to_slot(
            token.slot,
            "fault C_Sign USER_NOT_LOGGED_IN every=1 limit=1",
        )
        .unwrap();
    assert_eq!(
        rv_of(sign(&mut session, &token, ec, b"faulted")),
        Rv::UserNotLoggedIn
    );
    assert_eq!(session.info().unwrap().state, SessionState::ReadOnlyPublic);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);

    // With effect=none only the operation ends: the login stays (as for a key with
    // CKA_ALWAYS_AUTHENTICATE whose context login was missing).
    relogin(&session, &token);
    let ec = key(&session, KeyKind::P256);
    control
        .replace_slot_rules(
            token.slot,
            "fault C_Sign USER_NOT_LOGGED_IN every=1 limit=1 effect=none",
        )
        .unwrap();
    assert_eq!(
        rv_of(sign(&mut session, &token, ec, b"faulted")),
        Rv::UserNotLoggedIn
    );
    assert!(real_state(&token).user_logged_in());
    sign(&mut session, &token, ec, b"after").unwrap();
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.faults(Rv::UserNotLoggedIn), 2);
}

#[test]
fn stale_handle_fault_makes_the_handle_stale() {
    let token = token("stale_handle_fault", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    let old = key(&session, KeyKind::P256);
    control
        .apply_to_slot(
            token.slot,
            "fault C_SignInit KEY_HANDLE_INVALID every=1 limit=1",
        )
        .unwrap();
    assert_eq!(
        rv_of(sign(&mut session, &token, old, b"faulted")),
        Rv::KeyHandleInvalid
    );
    // Not a one-off lie: the handle stays stale, for signing and for attributes.
    assert_eq!(
        rv_of(sign(&mut session, &token, old, b"again")),
        Rv::KeyHandleInvalid
    );
    assert_eq!(
        rv_of(session.attributes(old, &[AttributeType::Label])),
        Rv::ObjectHandleInvalid
    );
    // A new lookup gives a new number, which works.
    let new = key(&session, KeyKind::P256);
    assert_ne!(new, old);
    sign(&mut session, &token, new, b"after").unwrap();

    // The same for CKR_OBJECT_HANDLE_INVALID on an attribute read.
    control
        .replace_slot_rules(
            token.slot,
            "fault C_GetAttributeValue OBJECT_HANDLE_INVALID every=1 limit=1",
        )
        .unwrap();
    assert_eq!(
        rv_of(session.attributes(new, &[AttributeType::Label])),
        Rv::ObjectHandleInvalid
    );
    assert_eq!(
        rv_of(sign(&mut session, &token, new, b"stale too")),
        Rv::KeyHandleInvalid
    );
    let newest = key(&session, KeyKind::P256);
    assert!(newest != new && newest != old);
    sign(&mut session, &token, newest, b"after").unwrap();

    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.faults(Rv::KeyHandleInvalid), 1);
    assert_eq!(counters.faults(Rv::ObjectHandleInvalid), 1);
    assert_eq!(counters.answers(Rv::KeyHandleInvalid), 2);
    assert_eq!(counters.answers(Rv::ObjectHandleInvalid), 1);
}

#[test]
fn device_removed_fault_closes_every_session() {
    let token = token("device_removed_fault", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    let other = login(&token);
    let ec = key(&session, KeyKind::P256);
    control
        .apply_to_slot(token.slot, "fault C_Sign DEVICE_REMOVED every=1 limit=1")
        .unwrap();
    assert_eq!(
        rv_of(sign(&mut session, &token, ec, b"faulted")),
        Rv::DeviceRemoved
    );
    assert_eq!(rv_of(other.info()), Rv::SessionHandleInvalid);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);
    // The "device" is back at once: a new session logs in and signs.
    let mut fresh = login(&token);
    let ec = key(&fresh, KeyKind::P256);
    sign(&mut fresh, &token, ec, b"after").unwrap();
}

#[test]
fn faults_on_calls_without_a_session() {
    let token = token("faults_without_a_session", &[]);
    let control = &proxy().control;
    control
        .apply_to_slot(
            token.slot,
            "fault C_GetTokenInfo DEVICE_ERROR every=2\nfault C_OpenSession SESSION_COUNT every=1 limit=1",
        )
        .unwrap();
    let module = &proxy().module;
    let answers: Vec<bool> = (0..4)
        .map(|_| module.token_info(token.slot).is_ok())
        .collect();
    assert_eq!(answers, [true, false, true, false]);
    assert_eq!(
        rv_of(module.open_session(token.slot, false)),
        Rv::SessionCount
    );
    // Not forwarded, so nothing was opened; the next open works.
    login(&token);
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.faults(Rv::DeviceError), 2);
    assert_eq!(counters.faults(Rv::SessionCount), 1);
    assert_eq!(counters.calls(Func::GetTokenInfo), 4);
}

#[test]
fn rules_are_enabled_disabled_and_refused_by_name() {
    let token = token("rules_enabled_disabled", &[]);
    let control = &proxy().control;
    let module = &proxy().module;
    let name = format!("deverr-{}", token.slot.raw());
    control
        .apply_to_slot(
            token.slot,
            &format!("fault C_GetTokenInfo DEVICE_ERROR every=1 name={name}"),
        )
        .unwrap();
    assert!(module.token_info(token.slot).is_err());
    control.set_enabled(&name, false).unwrap();
    assert!(module.token_info(token.slot).is_ok());
    control.set_enabled(&name, true).unwrap();
    assert!(module.token_info(token.slot).is_err());
    control.replace_slot_rules(token.slot, "").unwrap();
    assert!(module.token_info(token.slot).is_ok());
    assert!(control.set_enabled(&name, true).is_err());

    let err = control
        .apply_to_slot(token.slot, "seed 1\nfault C_Sign CKR_NOPE every=1")
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("line 2") && message.contains("CKR_NOPE"),
        "{message}"
    );
}
