//! Shared set-up: one proxy per test process over the kit's SoftHSM2, one token per test.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use p11_fault::Control;
use p11_raw::{
    Attribute, Error, Mechanism, MechanismType, Module, ObjectClass, ObjectHandle, Rv, Session,
    SessionState, UserType,
};
use p11_testkit::{KeyKind, Scheme, TestToken, verify_prehash};
use sha2::{Digest, Sha256};

/// The proxy module and its control handle, shared by every test of the binary. Tests
/// keep to their own token: each scopes its rules to its slot.
pub(crate) struct Proxy {
    pub(crate) path: PathBuf,
    pub(crate) module: Module,
    pub(crate) control: Control,
}

/// Opens SoftHSM2 first (through the kit, which then owns its initialisation), then
/// attaches to the proxy library, names SoftHSM2 as its real module, and opens the
/// proxy: its `C_Initialize` finds SoftHSM2 initialised and shares it, so the kit's
/// tokens are visible through the proxy.
pub(crate) fn proxy() -> &'static Proxy {
    static PROXY: OnceLock<Proxy> = OnceLock::new();
    PROXY.get_or_init(|| {
        let softhsm = p11_testkit::module();
        let path = p11_fault::build_proxy();
        let control = Control::attach(&path).unwrap();
        control
            .apply(&format!("module {}", softhsm.path().display()))
            .unwrap();
        let module = Module::open(&path).unwrap();
        assert!(!module.same_module(&softhsm));
        Proxy {
            path,
            module,
            control,
        }
    })
}

/// A token with a P-256 key (and any others asked for), made by the kit directly in
/// SoftHSM2.
pub(crate) fn token(name: &str, others: &[KeyKind]) -> TestToken {
    let mut builder = TestToken::builder(name).key(KeyKind::P256);
    for &kind in others {
        builder = builder.key(kind);
    }
    builder.build()
}

/// A session through the proxy, logged in (or finding the token logged in).
pub(crate) fn login(token: &TestToken) -> Session {
    let session = proxy().module.open_session(token.slot, false).unwrap();
    relogin(&session, token);
    session
}

/// Logs the user in on `session`, accepting an existing login.
pub(crate) fn relogin(session: &Session, token: &TestToken) {
    match session.login(UserType::User, Some(token.user_pin.as_bytes())) {
        Ok(()) => {}
        Err(e) if e.rv() == Some(Rv::UserAlreadyLoggedIn) => {}
        Err(e) => panic!("login through the proxy: {e}"),
    }
}

/// The private key labelled after `kind`, found through `session`.
pub(crate) fn key(session: &Session, kind: KeyKind) -> ObjectHandle {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(kind.label().as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "{kind} keys found: {found:?}");
    found[0]
}

/// Signs `message` with the P-256 key (ECDSA over its SHA-256) and checks the signature
/// with the certificate; returns the module's error if a call fails.
pub(crate) fn sign(
    session: &mut Session,
    token: &TestToken,
    key: ObjectHandle,
    message: &[u8],
) -> Result<(), Error> {
    let digest = Sha256::digest(message);
    let signature = session
        .sign_init(&Mechanism::new(MechanismType::ECDSA), key)?
        .sign(&digest, 64)?;
    verify_prehash(
        &token.key(KeyKind::P256).cert_der,
        Scheme::Ecdsa,
        &digest,
        &signature,
    )
    .unwrap();
    Ok(())
}

/// The code of a failed call.
pub(crate) fn rv_of<T: std::fmt::Debug>(result: Result<T, Error>) -> Rv {
    result
        .expect_err("expected a PKCS#11 error")
        .rv()
        .expect("an error from the module")
}

/// The login state a fresh session opened directly in SoftHSM2 (not through the proxy)
/// sees: the real module's truth.
pub(crate) fn real_state(token: &TestToken) -> SessionState {
    let session = token.module.open_session(token.slot, false).unwrap();
    session.info().unwrap().state
}

/// Asserts that a session opened directly in SoftHSM2 is gone. SoftHSM2 reuses a
/// closed session's number for the next one opened, and another test may have opened
/// one meanwhile: then the number answers, but for another slot. Either way our
/// session is gone; the value is forgotten so its drop cannot close someone else's.
pub(crate) fn assert_real_session_gone(session: Session, token: &TestToken) {
    match session.info() {
        Err(e) => assert_eq!(e.rv(), Some(Rv::SessionHandleInvalid), "{e}"),
        Ok(info) => assert_ne!(info.slot, token.slot, "the real session survived"),
    }
    std::mem::forget(session);
}

/// Polls `ready` every 20 ms until it holds, failing after 10 s (a generous bound on a
/// loaded machine: the waits it guards are a few hundred milliseconds).
pub(crate) fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
