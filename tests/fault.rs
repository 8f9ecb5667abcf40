//! Recovery under injected faults (issue 8).
//!
//! - Every row of DESIGN.md's recovery table ("p11-session: the model") provoked through
//!   the fault proxy and observed on `p11_session::SigningKey::sign`: the right repair,
//!   the counters by kind (`p11-session`'s and the proxy's), a signature that verifies.
//!   Each test has a token of its own and scopes its rules to that token's slot.
//! - PIN errors are never retried, counted at the proxy: one `C_Login` per refusal.
//! - The façade (`Signer` from a URI whose `module-path` is the proxy) signs PDFs through
//!   each kind of fault in turn, every output judged by the independent validators.
//! - The session-aliasing hazard, directly on SoftHSM2 (the proxy hands out session
//!   numbers of its own, so it could hide an aliasing bug) in a child process of its
//!   own.
//! - The short soak (about 25 s), in a child process of its own.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use p11_fault::{Counters, Event, EventKind, Func};
use p11_raw::{Mechanism, MechanismType, Rv, Session, SessionHandle, UserType};
use p11_session::{Error, MetricsSnapshot, SigningKey, Token, TokenConfig, TokenQuery};
use p11_testkit::{KeySpec, Scheme, verify_prehash};
use pdfsign::{Pin, SignOptions, Signer};
use pdfsign_e2e::soak::{self, SoakConfig, proxy, proxy_uri};
use pdfsign_e2e::{KeyKind, Scratch, TestToken, judge, pki_files};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Support.

fn ecdsa() -> Mechanism {
    Mechanism::new(MechanismType::ECDSA)
}

fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// A token with a P-256 key labelled "p256", made by the kit in SoftHSM2.
fn token(name: &str) -> TestToken {
    TestToken::builder(name).key(KeyKind::P256).build()
}

/// Device recovery short enough for a test: 20 ms doubling to 200 ms, for 2 s.
fn quick_device_recovery() -> TokenConfig {
    let mut config = TokenConfig::new();
    config.device_recovery(
        Duration::from_millis(20),
        Duration::from_millis(200),
        Duration::from_secs(2),
    );
    config
}

/// The token through the proxy, its shared state created with `config`.
fn open(test: &TestToken, config: &TokenConfig) -> Token {
    Token::open_with(
        &proxy().module,
        &TokenQuery::Serial(test.serial.clone()),
        config,
    )
    .unwrap()
}

fn key_of(token: &Token, test: &TestToken, label: &str) -> SigningKey {
    let lease = token.login(test.user_pin.as_bytes()).unwrap();
    lease
        .key(&p11_session::KeyQuery::Label(label.into()))
        .unwrap()
}

/// Signs the digest of `text` and checks the signature with the certificate.
fn sign_ok(key: &SigningKey, cert: &[u8], text: &str) {
    let digest = digest(text);
    let signature = key
        .sign(&ecdsa(), &digest)
        .unwrap_or_else(|e| panic!("signing {text:?}: {e}"));
    verify_prehash(cert, Scheme::Ecdsa, &digest, &signature).unwrap();
}

/// The repair counters: session, generation, login, key, context, unfit session, device.
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

/// Replaces the proxy's rules for the token's slot.
fn rules(test: &TestToken, spec: &str) {
    proxy().control.replace_slot_rules(test.slot, spec).unwrap();
}

fn trigger(test: &TestToken, event: Event) {
    proxy().control.trigger(event, Some(test.slot)).unwrap();
}

fn counters(test: &TestToken) -> Counters {
    proxy().control.counters(Some(test.slot)).unwrap()
}

/// A token through the proxy with a P-256 key that has signed once, and its certificate.
struct Signing {
    test: TestToken,
    token: Token,
    key: SigningKey,
    cert: Vec<u8>,
}

fn signing(name: &str, config: &TokenConfig) -> Signing {
    let test = token(name);
    let token = open(&test, config);
    let key = key_of(&token, &test, "p256");
    let cert = test.key(KeyKind::P256).cert_der.clone();
    sign_ok(&key, &cert, "before");
    Signing {
        test,
        token,
        key,
        cert,
    }
}

impl Signing {
    fn metrics(&self) -> MetricsSnapshot {
        self.token.metrics().snapshot()
    }

    /// Signs through `spec` (the rules then cleared): one retry, the repairs `expected`,
    /// a signature that verifies, and the rule's fault delivered once.
    fn repaired_once(&self, spec: &str, rv: Rv, expected: [u64; 7]) {
        let before = self.metrics();
        rules(&self.test, spec);
        sign_ok(&self.key, &self.cert, spec);
        rules(&self.test, "");
        let after = self.metrics();
        assert_eq!(counters(&self.test).faults(rv), 1, "{spec}");
        self.assert_repaired(&before, &after, expected, spec);
    }

    fn assert_repaired(
        &self,
        before: &MetricsSnapshot,
        after: &MetricsSnapshot,
        expected: [u64; 7],
        what: &str,
    ) {
        let delta: Vec<u64> = repairs(after)
            .iter()
            .zip(repairs(before))
            .map(|(a, b)| a - b)
            .collect();
        assert_eq!(delta, expected, "{what}: {after:?}");
        assert_eq!(after.retries - before.retries, 1, "{what}: one retry");
        assert_eq!(after.sign_failures, before.sign_failures, "{what}");
        // Repaired for good: the next signatures need nothing more.
        for n in 0..3 {
            sign_ok(&self.key, &self.cert, &format!("{what}, later {n}"));
        }
        assert_eq!(repairs(&self.metrics()), repairs(after), "{what}");
    }
}

/// Set in a child process: which test body to run.
const CHILD: &str = "PDFSIGN_FAULT_TEST_CHILD";

/// Runs the test `name` again in a child process with `CHILD=mode` (its own SoftHSM2
/// and proxy, nothing else running in it) and fails with its output if it fails.
fn run_child(name: &str, mode: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child {mode} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The child really ran the test (a filter typo would run nothing and pass).
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
    println!("{stdout}");
}

fn is_child(mode: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(mode)
}

// ---------------------------------------------------------------------------------------
// The recovery table, row by row.

/// Row "the session is dead": discarded, a new one opened, the signature retried; the
/// login, the key handle and the other sessions are left alone.
#[test]
fn dead_session_is_replaced() {
    for (name, spec, rv) in [
        (
            "dead_session_invalid",
            "fault C_Sign CKR_SESSION_HANDLE_INVALID every=1 limit=1",
            Rv::SessionHandleInvalid,
        ),
        (
            "dead_session_closed",
            "fault C_SignInit CKR_SESSION_CLOSED every=1 limit=1",
            Rv::SessionClosed,
        ),
    ] {
        let s = signing(name, &TokenConfig::new());
        s.repaired_once(spec, rv, [1, 0, 0, 0, 0, 0, 0]);
        let figures = s.metrics();
        assert_eq!(figures.logins, 1, "{spec}");
        assert_eq!(counters(&s.test).calls(Func::Login), 1, "{spec}");
    }
}

/// Row "the token is no longer logged in": one re-login with the kept PIN (a new epoch),
/// then the key looked up again; provoked by a fault that logs out and by a logout
/// event behind the signer's back.
#[test]
fn lost_login_is_redone_with_the_kept_pin() {
    let s = signing("lost_login_fault", &TokenConfig::new());
    let epoch = s.token.epoch();
    s.repaired_once(
        "fault C_SignInit CKR_USER_NOT_LOGGED_IN every=1 limit=1",
        Rv::UserNotLoggedIn,
        [0, 0, 1, 1, 0, 0, 0],
    );
    assert_eq!(s.token.epoch(), epoch + 1);
    assert_eq!(counters(&s.test).calls(Func::Login), 2);

    let s = signing("lost_login_event", &TokenConfig::new());
    let before = s.metrics();
    trigger(&s.test, Event::Logout);
    sign_ok(&s.key, &s.cert, "after a logout behind its back");
    let after = s.metrics();
    s.assert_repaired(&before, &after, [0, 0, 1, 1, 0, 0, 0], "logout event");
    let seen = counters(&s.test);
    assert_eq!(seen.events(EventKind::Logout), 1);
    assert_eq!(seen.calls(Func::Login), 2, "one re-login");
}

/// Row "the key handle is stale": the key looked up again, nothing else; by
/// OBJECT_HANDLE_INVALID, KEY_HANDLE_INVALID, a stale-handles event, and, as kryoptic
/// answers a stale private-key handle, GENERAL_ERROR while the handle is stale.
#[test]
fn stale_key_handle_is_looked_up_again() {
    for (name, spec, rv) in [
        (
            "stale_object_handle",
            "fault C_SignInit CKR_OBJECT_HANDLE_INVALID every=1 limit=1",
            Rv::ObjectHandleInvalid,
        ),
        (
            "stale_key_handle",
            "fault C_SignInit CKR_KEY_HANDLE_INVALID every=1 limit=1",
            Rv::KeyHandleInvalid,
        ),
    ] {
        let s = signing(name, &TokenConfig::new());
        s.repaired_once(spec, rv, [0, 0, 0, 1, 0, 0, 0]);
        let figures = s.metrics();
        assert_eq!((figures.logins, figures.key_lookups), (1, 2), "{spec}");
    }

    let s = signing("stale_handles_event", &TokenConfig::new());
    let before = s.metrics();
    trigger(&s.test, Event::StaleHandles);
    sign_ok(&s.key, &s.cert, "after the handles went stale");
    s.assert_repaired(&before, &s.metrics(), [0, 0, 0, 1, 0, 0, 0], "stale event");
    assert_eq!(counters(&s.test).answers(Rv::KeyHandleInvalid), 1);

    // Kryoptic: the handle is stale for real, the module says only GENERAL_ERROR.
    let s = signing("stale_general_error", &TokenConfig::new());
    let before = s.metrics();
    trigger(&s.test, Event::StaleHandles);
    rules(
        &s.test,
        "fault C_SignInit CKR_GENERAL_ERROR every=1 limit=1",
    );
    sign_ok(&s.key, &s.cert, "stale, answered GENERAL_ERROR");
    rules(&s.test, "");
    let seen = counters(&s.test);
    assert_eq!(seen.faults(Rv::GeneralError), 1);
    assert_eq!(
        seen.answers(Rv::KeyHandleInvalid),
        0,
        "the first try saw only GENERAL_ERROR"
    );
    s.assert_repaired(
        &before,
        &s.metrics(),
        [0, 0, 0, 1, 0, 0, 0],
        "GENERAL_ERROR",
    );
    assert_eq!(s.metrics().logins, 1);
}

/// Row "the session is dead", whole generation: every session closed behind the
/// signer's back (which logs the application out and, in SoftHSM2, ends every object
/// handle of the slot), and another part of the application logs in again before the
/// signer notices. The signer finds its sessions dead and the token logged in; its key
/// handle died with the old login all the same, so it must be looked up again.
#[test]
fn close_all_then_a_login_elsewhere_is_repaired() {
    let s = signing("close_all_login_elsewhere", &TokenConfig::new());
    let before = s.metrics();
    trigger(&s.test, Event::CloseAll);
    let stranger = proxy().module.open_session(s.test.slot, false).unwrap();
    stranger
        .login(UserType::User, Some(s.test.user_pin.as_bytes()))
        .unwrap();
    let result = s.key.sign(&ecdsa(), &digest("after a close-all"));
    let after = s.metrics();
    drop(stranger);
    if let Err(e) = &result {
        panic!(
            "one close-all, repaired with [session, generation, login, key, ...] = {:?}, \
             still failed: {e}",
            repairs(&after)
        );
    }
    s.assert_repaired(
        &before,
        &after,
        [1, 1, 0, 1, 0, 0, 0],
        "close-all, login elsewhere",
    );
}

/// Row "CKA_ALWAYS_AUTHENTICATE key and USER_NOT_LOGGED_IN from C_Sign": the context
/// login was missing; C_SignInit and the context login again, no user re-login.
#[test]
fn missing_context_login_is_redone_without_a_user_login() {
    let test = TestToken::builder("context_login_missing")
        .key_spec(
            KeySpec::imported(KeyKind::P256)
                .always_authenticate()
                .label("guarded"),
        )
        .build();
    let cert = test.keys[0].cert_der.clone();
    let token = open(&test, &TokenConfig::new());
    let key = key_of(&token, &test, "guarded");
    assert!(key.always_authenticate());
    // The token answers as if the context login had not happened; the user stays
    // logged in (effect=none: only the operation ends).
    rules(
        &test,
        "fault C_Sign CKR_USER_NOT_LOGGED_IN every=1 limit=1 effect=none",
    );
    sign_ok(&key, &cert, "guarded");
    rules(&test, "");
    let figures = token.metrics().snapshot();
    assert_eq!(repairs(&figures), [0, 0, 0, 0, 1, 0, 0], "{figures:?}");
    assert_eq!(
        (figures.retries, figures.logins, figures.context_logins),
        (1, 1, 2),
        "{figures:?}"
    );
    let seen = counters(&test);
    assert_eq!(seen.faults(Rv::UserNotLoggedIn), 1);
    assert_eq!(seen.calls(Func::SignInit), 2);
    // One user login and two context logins reach the token.
    assert_eq!(seen.calls(Func::Login), 3);
}

/// Row "DEVICE_REMOVED, TOKEN_NOT_PRESENT, ...": a removal shorter than the recovery
/// budget is waited out (sessions dropped, the token found again by serial, logged in,
/// the key looked up); a longer one is a clear error after about the budget, and the
/// token is used again once it is back.
#[test]
fn removed_device_is_waited_for_within_the_budget() {
    let config = quick_device_recovery();
    let s = signing("device_removed_briefly", &config);
    let before = s.metrics();
    trigger(&s.test, Event::Remove(Duration::from_millis(300)));
    let start = Instant::now();
    sign_ok(&s.key, &s.cert, "during a short removal");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "signed {:?} after a 300 ms removal began: it cannot have waited",
        start.elapsed()
    );
    s.assert_repaired(
        &before,
        &s.metrics(),
        [0, 0, 0, 1, 0, 0, 1],
        "short removal",
    );
    let seen = counters(&s.test);
    assert_eq!(seen.events(EventKind::Remove), 1);
    assert!(seen.answers(Rv::DeviceRemoved) + seen.answers(Rv::TokenNotPresent) >= 1);

    let s = signing("device_removed_for_long", &config);
    trigger(&s.test, Event::Remove(Duration::from_secs(600)));
    let start = Instant::now();
    let err = s.key.sign(&ecdsa(), &digest("never")).unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, Error::DeviceLost { .. }), "{err:?}");
    assert!(
        matches!(err.rv(), Some(Rv::DeviceRemoved | Rv::TokenNotPresent)),
        "{err}"
    );
    assert!(err.to_string().contains("did not come back"), "{err}");
    // About the 2 s budget: not before it, and not much after (a 200 ms pause at most,
    // plus a loaded machine).
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(6),
        "gave up after {waited:?}"
    );
    trigger(&s.test, Event::Insert);
    sign_ok(&s.key, &s.cert, "back again");
    assert_eq!(s.metrics().sign_failures, 1);
}

/// Row "DEVICE_ERROR" (a device-loss code) when the token never went away: the device
/// recovery drops the token's sessions; the sessions it drops are alive, so they must
/// be closed, not forgotten (forgotten, each one stays open in the module for good).
#[test]
fn device_error_recovery_leaks_no_session() {
    let s = signing("device_error_leak", &quick_device_recovery());
    let mut dropped: Vec<SessionHandle> = s.token.debug_idle_session_handles();
    dropped.extend(s.token.debug_anchor_handle());
    assert_eq!(dropped.len(), 2, "one pooled session and the anchor");
    let before = s.metrics();
    rules(&s.test, "fault C_Sign CKR_DEVICE_ERROR every=1 limit=1");
    sign_ok(&s.key, &s.cert, "after a device error");
    rules(&s.test, "");
    s.assert_repaired(&before, &s.metrics(), [0, 0, 0, 1, 0, 0, 1], "device error");
    // The proxy never reuses a session number, so closing an old one can only close
    // that session: if it succeeds, the session had been left open.
    let mut still_open = Vec::new();
    for handle in dropped {
        match proxy().module.close_session_handle(handle) {
            Ok(()) => still_open.push(handle),
            Err(e) => assert_eq!(e.rv(), Some(Rv::SessionHandleInvalid), "{e}"),
        }
    }
    assert!(
        still_open.is_empty(),
        "device recovery dropped sessions {still_open:?} without closing them: they leak"
    );
}

/// Row "DEVICE_MEMORY, OPERATION_ACTIVE": that session closed (not returned to the pool,
/// not leaked), the signature retried once on another.
#[test]
fn unfit_session_is_closed_and_another_used() {
    for (name, spec, rv) in [
        (
            "unfit_device_memory",
            "fault C_Sign CKR_DEVICE_MEMORY every=1 limit=1",
            Rv::DeviceMemory,
        ),
        (
            "unfit_operation_active",
            "fault C_SignInit CKR_OPERATION_ACTIVE every=1 limit=1",
            Rv::OperationActive,
        ),
    ] {
        let s = signing(name, &TokenConfig::new());
        let closes = counters(&s.test).calls(Func::CloseSession);
        s.repaired_once(spec, rv, [0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(
            counters(&s.test).calls(Func::CloseSession) - closes,
            1,
            "{spec}: the unfit session is closed"
        );
        assert_eq!(s.metrics().logins, 1);
    }
}

/// Row "DEVICE_MEMORY, OPERATION_ACTIVE", on the session that holds the login: a key
/// look-up whose search could not be ended (C_FindObjectsFinal failed once: p11-raw
/// marks that session unfit, and the search may still be running) must not wedge the
/// token. Every later look-up on that session would answer OPERATION_ACTIVE, so the
/// session must be replaced, and signatures needing a look-up go on working.
#[test]
fn a_search_that_could_not_be_ended_does_not_wedge_the_token() {
    let s = signing("unended_search", &TokenConfig::new());
    rules(
        &s.test,
        "fault C_FindObjectsFinal CKR_GENERAL_ERROR every=1 limit=1",
    );
    trigger(&s.test, Event::StaleHandles);
    sign_ok(&s.key, &s.cert, "the look-up whose search is not ended");
    rules(&s.test, "");
    assert_eq!(counters(&s.test).faults(Rv::GeneralError), 1);
    // Each round makes the key handle stale, so each signature needs a look-up.
    for n in 0..3 {
        trigger(&s.test, Event::StaleHandles);
        let result = s.key.sign(&ecdsa(), &digest(&format!("look-up {n}")));
        assert!(
            result.is_ok(),
            "look-up {n} after one unended search: {:?}; {:?}",
            result.err().map(|e| e.to_string()),
            s.metrics()
        );
    }
}

/// A logout behind the signer's back may land on any call of a signature, the key
/// look-up's search included: that search then runs logged out and finds no private
/// key. However often it happens, the failure is a lost login (an error naming its
/// CK_RV), never "no private key": the key is there, and a caller told otherwise would
/// give up on it.
#[test]
fn a_logout_at_any_call_is_never_reported_as_a_missing_key() {
    let s = signing("logout_at_any_call", &TokenConfig::new());
    let mut misreported = Vec::new();
    for every in 1..=12 {
        // The handle goes stale, so the signature must look the key up.
        trigger(&s.test, Event::StaleHandles);
        rules(&s.test, &format!("event logout every={every}"));
        let result = s
            .key
            .sign(&ecdsa(), &digest(&format!("logout every {every}")));
        rules(&s.test, "");
        if let Err(e) = result
            && (e.rv().is_none() || matches!(e, Error::KeyNotFound { .. }))
        {
            misreported.push(format!("a logout every {every} calls: {e}"));
        }
        sign_ok(
            &s.key,
            &s.cert,
            &format!("after logouts every {every} calls"),
        );
    }
    assert!(misreported.is_empty(), "{misreported:#?}");
}

/// One fault, of any code the soak injects, at any call of a key look-up (the search's
/// three calls, reading attributes, the anchor's liveness probe): that signature may
/// fail only if its error names the fault, and every later look-up works.
#[test]
fn no_single_fault_in_a_look_up_wedges_later_ones() {
    let s = signing("look_up_faults", &TokenConfig::new());
    let mut problems = Vec::new();
    for function in [
        "C_FindObjectsInit",
        "C_FindObjects",
        "C_FindObjectsFinal",
        "C_GetSessionInfo",
    ] {
        for rv in [
            Rv::DeviceMemory,
            Rv::GeneralError,
            Rv::FunctionFailed,
            Rv::SessionHandleInvalid,
            Rv::SessionClosed,
        ] {
            let code = rv.name().unwrap();
            trigger(&s.test, Event::StaleHandles);
            rules(&s.test, &format!("fault {function} {code} every=1 limit=1"));
            let first = s.key.sign(&ecdsa(), &digest(&format!("{function} {code}")));
            rules(&s.test, "");
            if let Err(e) = &first
                && e.rv() != Some(rv)
            {
                problems.push(format!("{function} {code}: failed with {e}"));
            }
            for n in 0..2 {
                trigger(&s.test, Event::StaleHandles);
                if let Err(e) = s
                    .key
                    .sign(&ecdsa(), &digest(&format!("{function} {code} {n}")))
                {
                    problems.push(format!("{function} {code}, look-up {n} afterwards: {e}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Opening a pooled session fails once (GENERAL_ERROR, a code the recovery model
/// repairs): the signature must not fail for that single fault.
#[test]
fn a_session_that_failed_to_open_is_retried() {
    for (name, rv) in [
        ("open_general_error", Rv::GeneralError),
        ("open_function_failed", Rv::FunctionFailed),
        ("open_device_memory", Rv::DeviceMemory),
    ] {
        let s = signing(name, &TokenConfig::new());
        // The pool's one session is busy, so the signature must open another.
        let busy = s.token.session().unwrap();
        rules(
            &s.test,
            &format!("fault C_OpenSession {} every=1 limit=1", rv.name().unwrap()),
        );
        let result = s.key.sign(&ecdsa(), &digest(name));
        rules(&s.test, "");
        drop(busy);
        assert_eq!(counters(&s.test).faults(rv), 1, "{name}");
        assert!(
            result.is_ok(),
            "one {rv} from C_OpenSession failed the signature: {}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

/// At most one repair of each kind per signature: a second fault of the same kind in
/// the same signature is a clear error naming it, after exactly one repair and one
/// retry, never a loop; the next signature is repaired afresh.
#[test]
fn a_second_fault_of_a_kind_in_one_signature_is_an_error_not_a_loop() {
    for (name, spec, rv, kind) in [
        (
            "twice_dead_session",
            "fault C_Sign CKR_SESSION_HANDLE_INVALID every=1 limit=2",
            Rv::SessionHandleInvalid,
            0,
        ),
        (
            "twice_lost_login",
            "fault C_SignInit CKR_USER_NOT_LOGGED_IN every=1 limit=2",
            Rv::UserNotLoggedIn,
            2,
        ),
        (
            "twice_stale_key",
            "fault C_SignInit CKR_KEY_HANDLE_INVALID every=1 limit=2",
            Rv::KeyHandleInvalid,
            3,
        ),
        (
            "twice_unfit_session",
            "fault C_Sign CKR_DEVICE_MEMORY every=1 limit=2",
            Rv::DeviceMemory,
            5,
        ),
        (
            "twice_device_error",
            "fault C_Sign CKR_DEVICE_ERROR every=1 limit=2",
            Rv::DeviceError,
            6,
        ),
    ] {
        let s = signing(name, &quick_device_recovery());
        let before = s.metrics();
        let calls_before = counters(&s.test);
        rules(&s.test, spec);
        let err = s.key.sign(&ecdsa(), &digest(spec)).unwrap_err();
        let after = s.metrics();
        let seen = counters(&s.test);
        rules(&s.test, "");
        assert_eq!(err.rv(), Some(rv), "{spec}: {err}");
        assert!(
            err.to_string().contains(rv.name().unwrap()),
            "{spec}: {err}"
        );
        assert_eq!(seen.faults(rv), 2, "{spec}");
        assert_eq!(after.retries - before.retries, 1, "{spec}: one retry");
        assert_eq!(after.sign_failures - before.sign_failures, 1, "{spec}");
        let delta: Vec<u64> = repairs(&after)
            .iter()
            .zip(repairs(&before))
            .map(|(a, b)| a - b)
            .collect();
        assert_eq!(delta[kind], 1, "{spec}: one repair of its kind: {after:?}");
        // Two attempts reached the token: one C_SignInit each.
        assert_eq!(
            seen.calls(Func::SignInit) - calls_before.calls(Func::SignInit),
            2,
            "{spec}"
        );
        if rv == Rv::UserNotLoggedIn {
            assert_eq!(seen.calls(Func::Login), 2, "one re-login, not two");
        }
        sign_ok(&s.key, &s.cert, &format!("{spec}, afterwards"));
    }
}

// ---------------------------------------------------------------------------------------
// PIN errors: never retried.

/// A wrong PIN reaches the token exactly once, through p11-session and through the
/// façade alike.
#[test]
fn wrong_pin_reaches_the_token_once() {
    let test = token("wrong_pin_once");
    let token = open(&test, &TokenConfig::new());
    let err = token.login(b"not-the-pin-0000").unwrap_err();
    assert!(matches!(err, Error::Pin { .. }), "{err:?}");
    assert_eq!(err.rv(), Some(Rv::PinIncorrect));
    assert_eq!(counters(&test).calls(Func::Login), 1, "exactly one C_Login");
    drop(token);

    let err = Signer::from_uri(
        &proxy_uri(&test),
        Some(Pin::new("not-the-pin-0000")),
        &SignOptions::default(),
    )
    .unwrap_err();
    assert!(err.is_wrong_pin(), "{err:?}");
    assert!(!format!("{err:?}{err}").contains("not-the-pin-0000"));
    assert_eq!(counters(&test).calls(Func::Login), 2, "one more C_Login");
}

/// The PIN changed, then the token was logged out behind the signer's back: the
/// automatic re-login is refused once, the kept PIN erased, later signatures fail with
/// no C_Login until a caller gives the new PIN.
#[test]
fn changed_pin_after_a_logout_is_tried_once_then_erased() {
    let s = signing("changed_pin_relogin", &TokenConfig::new());
    // Another part of the application (directly on SoftHSM2) changes the PIN.
    let stranger = s.test.module.open_session(s.test.slot, true).unwrap();
    stranger
        .set_pin(s.test.user_pin.as_bytes(), b"changed-pin-4321")
        .unwrap();
    drop(stranger);
    trigger(&s.test, Event::Logout);

    let err = s.key.sign(&ecdsa(), &digest("refused")).unwrap_err();
    assert!(matches!(err, Error::Pin { .. }), "{err:?}");
    assert_eq!(err.rv(), Some(Rv::PinIncorrect));
    assert_eq!(
        counters(&s.test).calls(Func::Login),
        2,
        "one re-login attempt"
    );
    for n in 0..3 {
        let err = s
            .key
            .sign(&ecdsa(), &digest(&format!("no PIN {n}")))
            .unwrap_err();
        assert!(matches!(err, Error::PinRequired { .. }), "{err:?}");
    }
    assert_eq!(
        counters(&s.test).calls(Func::Login),
        2,
        "the erased PIN is never tried"
    );
    let figures = s.metrics();
    assert_eq!((figures.logins, figures.sign_failures), (2, 4));

    let lease = s.token.login(b"changed-pin-4321").unwrap();
    assert_eq!(counters(&s.test).calls(Func::Login), 3);
    sign_ok(&s.key, &s.cert, "with the new PIN");
    drop(lease);
}

// ---------------------------------------------------------------------------------------
// The façade.

/// What happens before one signature of the façade test.
enum Upset {
    Rule(&'static str),
    Event(Event),
}

/// `Signer` from a URI naming the proxy as its module signs one PDF through each kind
/// of fault and event in turn, every output judged by pdfsig, qpdf and openssl (one by
/// pyHanko too) and by pdfsign's verifier; each upset costs one repair and one retry.
#[test]
fn facade_signs_pdfs_through_every_fault_and_each_output_validates() {
    let test = token("facade_faults");
    // The state the signer will share, with a short device budget.
    let token = open(&test, &quick_device_recovery());
    let signer = Signer::from_uri(
        &proxy_uri(&test),
        Some(Pin::new(&test.user_pin)),
        &SignOptions::default(),
    )
    .unwrap();
    // Opening the signer may sign once already (to check the key against its
    // certificate); only what follows is counted.
    let opened = token.metrics().snapshot().signatures;
    let scratch = Scratch::new("facade_faults");
    let pki = pki_files(scratch.path());
    let roots = pdfsign::load_trust_roots(&[&pki.root]).unwrap();
    let fixtures = pdfsign_e2e::root().join("fixtures").join("pdf");
    let inputs: Vec<PathBuf> = [
        pdfsign_e2e::sample_pdf(),
        fixtures.join("lopdf-xref-stream.pdf"),
        fixtures.join("qpdf-objstm.pdf"),
        fixtures.join("handmade-hybrid.pdf"),
    ]
    .into();
    let upsets = [
        Upset::Rule("fault C_Sign CKR_SESSION_HANDLE_INVALID every=1 limit=1"),
        Upset::Rule("fault C_SignInit CKR_SESSION_CLOSED every=1 limit=1"),
        Upset::Event(Event::Logout),
        Upset::Rule("fault C_SignInit CKR_USER_NOT_LOGGED_IN every=1 limit=1"),
        Upset::Event(Event::CloseAll),
        Upset::Event(Event::StaleHandles),
        Upset::Rule("fault C_SignInit CKR_KEY_HANDLE_INVALID every=1 limit=1"),
        Upset::Rule("fault C_Sign CKR_GENERAL_ERROR every=1 limit=1"),
        Upset::Rule("fault C_Sign CKR_DEVICE_MEMORY every=1 limit=1"),
        Upset::Rule("fault C_SignInit CKR_OPERATION_ACTIVE every=1 limit=1"),
        Upset::Event(Event::Remove(Duration::from_millis(300))),
        Upset::Rule("fault C_Sign CKR_DEVICE_ERROR every=1 limit=1"),
    ];
    for (i, upset) in upsets.iter().enumerate() {
        let before = token.metrics().snapshot();
        let what = match upset {
            Upset::Rule(spec) => {
                rules(&test, spec);
                (*spec).to_owned()
            }
            Upset::Event(event) => {
                trigger(&test, *event);
                format!("{event:?}")
            }
        };
        let input = &inputs[i % inputs.len()];
        let output = scratch.join(&format!("signed-{i:02}.pdf"));
        signer
            .sign_file(input, &output)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        rules(&test, "");
        let after = token.metrics().snapshot();
        assert_eq!(after.retries - before.retries, 1, "{what}: {after:?}");
        assert_eq!(after.sign_failures, 0, "{what}");
        let report = pdfsign::verify_file(&output, &roots).unwrap();
        assert!(report.all_valid(), "{what}: {report:?}");
        assert!(
            std::fs::read(&output)
                .unwrap()
                .starts_with(&std::fs::read(input).unwrap())
        );
        judge(&output, &pki, scratch.path(), i == 0);
    }
    let figures = token.metrics().snapshot();
    let seen = counters(&test);
    for kind in [
        EventKind::Logout,
        EventKind::CloseAll,
        EventKind::StaleHandles,
        EventKind::Remove,
    ] {
        assert_eq!(seen.events(kind), 1, "{kind:?}");
    }
    // Every repair kind but the context login (no always-authenticate key here).
    let done = repairs(&figures);
    for (i, kind) in [
        "session",
        "generation",
        "login",
        "key",
        "context",
        "unfit",
        "device",
    ]
    .iter()
    .enumerate()
    {
        if *kind != "context" {
            assert!(done[i] > 0, "no {kind} repair: {figures:?}");
        }
    }
    assert_eq!(figures.signatures - opened, upsets.len() as u64);
}

// ---------------------------------------------------------------------------------------
// The aliasing hazard, directly on SoftHSM2.

/// A C_CloseAllSessions behind the pool's back, then another thread of the application
/// opens sessions of its own, each busy with a signature of its own. In a module that
/// reuses the numbers of closed sessions, those sessions get the pool's old numbers
/// (SoftHSM2 2.6 does not reuse them: its handle manager only counts up; the test
/// prints how many were reused). Either way the pool must never use them: the other
/// thread's operations all complete on intact sessions, and the pooled signer, which
/// met one close-all, signs every time with signatures that verify.
#[test]
fn recycled_session_numbers_never_reach_a_pooled_signer() {
    if !is_child("aliasing") {
        return run_child(
            "recycled_session_numbers_never_reach_a_pooled_signer",
            "aliasing",
        );
    }
    let test = token("recycled_numbers");
    let cert = test.key(KeyKind::P256).cert_der.clone();
    let token = Token::open(&test.module, &TokenQuery::Serial(test.serial.clone())).unwrap();
    let key = key_of(&token, &test, "p256");
    // Four pooled sessions, idle, and the anchor.
    let held: Vec<_> = (0..4).map(|_| token.session().unwrap()).collect();
    drop(held);
    sign_ok(&key, &cert, "before");
    let mut ours: Vec<SessionHandle> = token.debug_idle_session_handles();
    ours.extend(token.debug_anchor_handle());
    assert_eq!(ours.len(), 5);

    // Behind the pool's back: every session of the application with the token closed.
    test.module.close_all_sessions(test.slot).unwrap();

    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (signed_tx, signed_rx) = std::sync::mpsc::channel::<()>();
    let theirs = std::thread::scope(|scope| {
        // Owned here, so that a failing assertion below drops it and frees the stranger.
        let signed_tx = signed_tx;
        let (test, cert) = (&test, &cert);
        let stranger = scope.spawn(move || {
            let mut sessions: Vec<Session> = (0..12)
                .map(|_| test.module.open_session(test.slot, false).unwrap())
                .collect();
            // The close-all logged the application out.
            sessions[0]
                .login(UserType::User, Some(test.user_pin.as_bytes()))
                .unwrap();
            let key = test.private_key(&sessions[0], "p256").unwrap();
            let handles: Vec<SessionHandle> = sessions.iter().map(Session::handle).collect();
            let digests: Vec<Vec<u8>> = (0..sessions.len())
                .map(|i| digest(&format!("the stranger's document {i}")))
                .collect();
            let operations: Vec<_> = sessions
                .iter_mut()
                .map(|session| session.sign_init(&ecdsa(), key).unwrap())
                .collect();
            opened_tx.send(handles.clone()).unwrap();
            // The pooled signer works meanwhile (or failed: then finish anyway).
            let _ = signed_rx.recv();
            let results: Vec<Result<(), String>> = operations
                .into_iter()
                .zip(&digests)
                .map(|(operation, digest)| {
                    let signature = operation.sign(digest, 64).map_err(|e| e.to_string())?;
                    verify_prehash(cert, Scheme::Ecdsa, digest, &signature)
                        .map_err(|e| e.to_string())
                })
                .collect();
            let alive: Vec<bool> = sessions.iter().map(|s| s.info().is_ok()).collect();
            (handles, results, alive)
        });
        let handles = opened_rx.recv().unwrap();
        let recycled: HashSet<&SessionHandle> =
            handles.iter().filter(|h| ours.contains(h)).collect();
        println!(
            "the pool's old sessions {ours:?}; the stranger's {handles:?}: {} number(s) reused",
            recycled.len()
        );
        // The pooled signer signs from four threads while the stranger's operations
        // are active.
        let outcomes: Vec<Result<(), String>> = std::thread::scope(|inner| {
            let workers: Vec<_> = (0..4)
                .map(|t| {
                    let (key, cert) = (&key, &cert);
                    inner.spawn(move || {
                        (0..5)
                            .map(|n| {
                                let digest = digest(&format!("ours {t} {n}"));
                                match key.sign(&ecdsa(), &digest) {
                                    Ok(signature) => {
                                        verify_prehash(cert, Scheme::Ecdsa, &digest, &signature)
                                            .map_err(|e| format!("a bad signature: {e}"))
                                    }
                                    Err(e) => Err(e.to_string()),
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        signed_tx.send(()).unwrap();
        let theirs = stranger.join().unwrap();
        let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "one close-all behind its back, and the pooled signer failed: {failed:?}"
        );
        theirs
    });
    let (handles, results, alive) = theirs;
    let broken: Vec<String> = handles
        .iter()
        .zip(results.iter().zip(&alive))
        .filter(|(_, (result, alive))| result.is_err() || !**alive)
        .map(|(handle, (result, alive))| format!("{handle:?}: {result:?}, alive {alive}"))
        .collect();
    assert!(
        broken.is_empty(),
        "the pool used (or closed) sessions it no longer owned, whose numbers SoftHSM2 had \
         given to another thread: {broken:?} (ours were {ours:?})"
    );
}

// ---------------------------------------------------------------------------------------
// The soak.

/// The soak, short: 25 s of eight threads signing PDFs through 1% faults, logouts,
/// close-alls and removals; nothing lost, corrupt, stuck or leaking, every failure
/// explained. `cargo xtask soak` runs the long one.
#[test]
fn short_soak_loses_nothing() {
    if !is_child("soak") {
        return run_child("short_soak_loses_nothing", "soak");
    }
    let dir = pdfsign_e2e::root()
        .join("target")
        .join("e2e-scratch")
        .join(format!("short-soak-{}", std::process::id()));
    let mut config = SoakConfig::new(Duration::from_secs(25), dir);
    config.pdfsig_samples = 10;
    let report = soak::run(&config);
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.metrics.repairs_device > 0 && report.metrics.repairs_generation > 0);
}
