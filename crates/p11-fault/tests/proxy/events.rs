//! Events, triggered by the control API or scheduled by the spec, have their real
//! effect in SoftHSM2.

use std::time::Duration;

use p11_fault::{Event, EventKind};
use p11_raw::{AttributeType, Rv, SessionState};
use p11_testkit::KeyKind;

use crate::support::{
    assert_real_session_gone, key, login, proxy, real_state, relogin, rv_of, sign, token,
    wait_until,
};

#[test]
fn logout_event_logs_out_the_real_token() {
    let token = token("logout_event", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    assert!(real_state(&token).user_logged_in());

    control.trigger(Event::Logout, Some(token.slot)).unwrap();
    assert_eq!(session.info().unwrap().state, SessionState::ReadOnlyPublic);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);
    // Logging out twice is no error: the event only promises "logged out".
    control.trigger(Event::Logout, Some(token.slot)).unwrap();

    relogin(&session, &token);
    let ec = key(&session, KeyKind::P256);
    sign(&mut session, &token, ec, b"after logout").unwrap();
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.events(EventKind::Logout), 2);
}

#[test]
fn close_all_event_kills_every_session() {
    let token = token("close_all_event", &[]);
    let control = &proxy().control;
    let first = login(&token);
    let second = login(&token);
    let direct = token.module.open_session(token.slot, false).unwrap();

    control.trigger(Event::CloseAll, Some(token.slot)).unwrap();
    assert_eq!(rv_of(first.info()), Rv::SessionHandleInvalid);
    assert_eq!(rv_of(second.info()), Rv::SessionHandleInvalid);
    assert_real_session_gone(direct, &token);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);

    let mut fresh = login(&token);
    let ec = key(&fresh, KeyKind::P256);
    sign(&mut fresh, &token, ec, b"after close-all").unwrap();
    assert_eq!(
        control
            .counters(Some(token.slot))
            .unwrap()
            .events(EventKind::CloseAll),
        1
    );
}

#[test]
fn removed_token_answers_not_present_then_comes_back() {
    let token = token("removed_token_comes_back", &[]);
    let proxy = proxy();
    let (module, control) = (&proxy.module, &proxy.control);
    let session = login(&token);
    let old_key = key(&session, KeyKind::P256);
    let direct = token.module.open_session(token.slot, false).unwrap();

    // Out for long enough that no machine is too slow to look at it while it is out.
    control
        .trigger(Event::Remove(Duration::from_secs(600)), Some(token.slot))
        .unwrap();
    assert_eq!(rv_of(module.token_info(token.slot)), Rv::TokenNotPresent);
    assert!(!module.slots(true).unwrap().contains(&token.slot));
    assert!(module.slots(false).unwrap().contains(&token.slot));
    assert!(!module.slot_info(token.slot).unwrap().token_present);
    assert_eq!(
        rv_of(module.open_session(token.slot, false)),
        Rv::TokenNotPresent
    );
    assert_eq!(rv_of(session.info()), Rv::DeviceRemoved);
    // As after a real removal, the real sessions are gone and the token logged out.
    assert_real_session_gone(direct, &token);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);

    // A new removal replaces the old one's time: back on its own in 100 ms.
    control
        .trigger(Event::Remove(Duration::from_millis(100)), Some(token.slot))
        .unwrap();
    wait_until("the token is back", || {
        module.token_info(token.slot).is_ok()
    });
    assert!(module.slot_info(token.slot).unwrap().token_present);
    assert!(module.slots(true).unwrap().contains(&token.slot));
    assert_eq!(rv_of(session.info()), Rv::SessionHandleInvalid);

    let mut fresh = login(&token);
    assert_eq!(
        rv_of(sign(&mut fresh, &token, old_key, b"old handle")),
        Rv::KeyHandleInvalid
    );
    let new_key = key(&fresh, KeyKind::P256);
    sign(&mut fresh, &token, new_key, b"after removal").unwrap();

    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.events(EventKind::Remove), 2);
    assert!(counters.answers(Rv::TokenNotPresent) >= 2);
    assert_eq!(counters.answers(Rv::DeviceRemoved), 1);
}

#[test]
fn a_removed_token_can_be_put_back_early() {
    let token = token("removed_token_put_back", &[]);
    let proxy = proxy();
    let (module, control) = (&proxy.module, &proxy.control);
    control
        .trigger(Event::Remove(Duration::from_secs(600)), Some(token.slot))
        .unwrap();
    assert_eq!(rv_of(module.token_info(token.slot)), Rv::TokenNotPresent);
    assert_eq!(rv_of(module.mechanisms(token.slot)), Rv::TokenNotPresent);
    control.trigger(Event::Insert, Some(token.slot)).unwrap();
    module.token_info(token.slot).unwrap();
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.answers(Rv::TokenNotPresent), 2);
    assert_eq!(counters.events(EventKind::Insert), 1);
}

#[test]
fn stale_handles_event_renumbers_objects() {
    let token = token("stale_handles_event", &[]);
    let control = &proxy().control;
    let mut session = login(&token);
    let old = key(&session, KeyKind::P256);
    sign(&mut session, &token, old, b"before").unwrap();

    control
        .trigger(Event::StaleHandles, Some(token.slot))
        .unwrap();
    assert_eq!(
        rv_of(sign(&mut session, &token, old, b"stale")),
        Rv::KeyHandleInvalid
    );
    assert_eq!(
        rv_of(session.attributes(old, &[AttributeType::Label])),
        Rv::ObjectHandleInvalid
    );
    // The login and the session are untouched; a new lookup gives a new number.
    assert!(session.info().unwrap().state.user_logged_in());
    let new = key(&session, KeyKind::P256);
    assert_ne!(new, old);
    sign(&mut session, &token, new, b"after").unwrap();
}

#[test]
fn scheduled_events_fire_on_their_call() {
    let token = token("scheduled_events_fire", &[]);
    let control = &proxy().control;
    let session = login(&token);
    control
        .apply_to_slot(token.slot, "event logout every=5 name=sched-logout")
        .unwrap();
    // Calls 1-4 on the slot see the login; the event fires before call 5 is forwarded.
    let states: Vec<bool> = (0..5)
        .map(|_| session.info().unwrap().state.user_logged_in())
        .collect();
    assert_eq!(states, [true, true, true, true, false]);
    assert_eq!(real_state(&token), SessionState::ReadOnlyPublic);
    control.replace_slot_rules(token.slot, "").unwrap();

    // A period event fires at the first call after its time.
    relogin(&session, &token);
    let old = key(&session, KeyKind::P256);
    control
        .apply_to_slot(token.slot, "event stale period=50ms")
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        rv_of(session.attributes(old, &[AttributeType::Label])),
        Rv::ObjectHandleInvalid
    );
    control.replace_slot_rules(token.slot, "").unwrap();
    let counters = control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.events(EventKind::Logout), 1);
    assert!(counters.events(EventKind::StaleHandles) >= 1);
}

#[test]
fn latency_is_added_to_calls() {
    let token = token("latency_is_added", &[]);
    let control = &proxy().control;
    let session = login(&token);
    // Only lower bounds: sleeping guarantees them; the machine is too noisy for more.
    control
        .apply_to_slot(token.slot, "latency C_GetSessionInfo 20ms")
        .unwrap();
    let start = std::time::Instant::now();
    for _ in 0..10 {
        session.info().unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(200));

    control
        .set_latency(
            Some(token.slot),
            Duration::from_millis(5),
            Duration::from_millis(15),
        )
        .unwrap();
    let start = std::time::Instant::now();
    for _ in 0..10 {
        proxy().module.token_info(token.slot).unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(50));
    control.replace_slot_rules(token.slot, "").unwrap();
    session.info().unwrap();
}

#[test]
fn events_need_an_initialised_proxy_and_a_known_slot() {
    let token = token("events_unknown_slot", &[]);
    let control = &proxy().control;
    // A slot that does not exist: the real module's answer comes back as the error.
    let err = control
        .trigger(
            Event::CloseAll,
            Some(p11_raw::SlotId::from_raw(0x7fff_fff0)),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            p11_fault::ControlError::Event {
                rv: Rv::SlotIdInvalid,
                ..
            }
        ),
        "{err}"
    );
    // Our own slot is untouched.
    login(&token).info().unwrap();
}
