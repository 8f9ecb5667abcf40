//! With no rules, the proxy is invisible: everything works as on SoftHSM2 directly.

use p11_fault::Func;
use p11_raw::{Mechanism, MechanismType, Threading};
use p11_testkit::{KeyKind, Scheme, verify_prehash};
use sha2::{Digest, Sha256};

use crate::support::{key, login, proxy, sign, token};

#[test]
fn signs_through_the_proxy_and_the_signatures_verify() {
    let token = token("signs_through_the_proxy", &[KeyKind::Rsa2048]);
    let proxy = proxy();
    assert_eq!(proxy.module.threading(), Threading::OsLocking);

    let mut session = login(&token);
    let ec = key(&session, KeyKind::P256);
    sign(&mut session, &token, ec, b"hello through the proxy").unwrap();

    // RSA PKCS#1 v1.5 with the hash done by the token: a multi-part-capable mechanism.
    let rsa = key(&session, KeyKind::Rsa2048);
    let message = b"a longer message, hashed by the token";
    let signature = session
        .sign_init(&Mechanism::new(MechanismType::SHA256_RSA_PKCS), rsa)
        .unwrap()
        .sign(message, 256)
        .unwrap();
    verify_prehash(
        &token.key(KeyKind::Rsa2048).cert_der,
        Scheme::Pkcs1v15,
        &Sha256::digest(message),
        &signature,
    )
    .unwrap();

    let counters = proxy.control.counters(Some(token.slot)).unwrap();
    assert_eq!(counters.calls(Func::OpenSession), 1);
    assert_eq!(counters.calls(Func::Login), 1);
    assert_eq!(counters.calls(Func::SignInit), 2);
    assert_eq!(counters.calls(Func::Sign), 2);
    assert_eq!(counters.total_faults(), 0);
}

#[test]
fn slots_tokens_and_mechanisms_pass_through() {
    let token = token("slots_tokens_mechanisms_pass", &[]);
    let module = &proxy().module;
    assert!(module.slots(true).unwrap().contains(&token.slot));
    let info = module.token_info(token.slot).unwrap();
    assert_eq!(info.label, token.label);
    assert_eq!(info.serial_number, token.serial);
    assert!(module.slot_info(token.slot).unwrap().token_present);
    assert!(
        module
            .mechanisms(token.slot)
            .unwrap()
            .contains(&MechanismType::ECDSA)
    );
    assert!(module.info().unwrap().manufacturer.contains("SoftHSM"));
}

#[test]
fn proxy_handles_are_its_own_and_closed_sessions_stay_dead() {
    let token = token("proxy_handles_are_its_own", &[]);
    let first = login(&token);
    let handle = first.handle();
    first.close().unwrap();
    // SoftHSM2 would hand the same number to the next session; the proxy never does.
    let second = login(&token);
    assert_ne!(second.handle(), handle);
    let module = &proxy().module;
    assert_eq!(
        module.close_session_handle(handle).unwrap_err().rv(),
        Some(p11_raw::Rv::SessionHandleInvalid)
    );
    assert!(second.info().unwrap().state.user_logged_in());
}
