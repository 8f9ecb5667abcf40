//! Signing, and recovery from what a long-running signer meets: sessions closed behind
//! its back, a token that lost its login, stale key handles, a device that went away.
//!
//! On a recoverable error the signing session is asked for its state first
//! (`C_GetSessionInfo`); then repairs run in a fixed order (session, login, key), at
//! most one of each per signature, and the signature is retried once. PIN errors are
//! never retried. The table is in DESIGN.md, "p11-session: the model".

use std::sync::Arc;

use p11_raw::{Mechanism, ObjectHandle, RecoveryClass, Rv, Session};

use crate::error::{Error, Result};
use crate::key::SigningKey;
use crate::login::Pin;
use crate::metrics::{Metrics, Repair};
use crate::pool::PooledSession;
use crate::token::{TokenShared, session_is_dead};

/// Which call of a signature failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Init,
    Context,
    Sign,
}

/// One attempt's outcome.
type Attempt<'t> = std::result::Result<Vec<u8>, Failure<'t>>;

/// A signature started by [`SigningKey::start`]: `C_SignInit` has run (or was not
/// tried), `C_Sign` waits for the data.
#[must_use = "a started signature dropped unsigned costs its session"]
pub struct StartedSign<'k> {
    key: &'k SigningKey,
    mechanism: Mechanism,
    /// How starting went, and the login epoch before it; `None` when it was not tried.
    first: Option<(std::result::Result<Waiting<'k>, Failure<'k>>, u64)>,
}

/// A session with a signing operation waiting on it.
struct Waiting<'t> {
    session: PooledSession<'t>,
    handle: ObjectHandle,
    /// The login epoch the handle belongs to.
    epoch: u64,
}

impl std::fmt::Debug for StartedSign<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedSign")
            .field("mechanism", &self.mechanism)
            .field("started", &matches!(self.first, Some((Ok(_), _))))
            .finish_non_exhaustive()
    }
}

impl StartedSign<'_> {
    /// The mechanism the signature was started with.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// Signs `data` (`C_Sign`), what [`SigningKey::sign`] would sign; a failure here, or
    /// when starting, is repaired and the signature retried as it does.
    ///
    /// # Errors
    /// As [`SigningKey::sign`].
    pub fn sign(self, data: &[u8]) -> Result<Vec<u8>> {
        let key = self.key;
        let token = &*key.lease.token().shared;
        let len = key.shared.facts.algorithm.signature_len();
        let first = self.first.map(|(started, epoch_before)| {
            let outcome = started.and_then(|mut waiting| {
                let Some(operation) = waiting.session.resume_sign() else {
                    // Cannot happen (starting left the operation waiting); were it to,
                    // a fresh attempt is the safe answer.
                    drop(waiting);
                    return key.attempt(token, &self.mechanism, data);
                };
                match operation.sign(data, len) {
                    Ok(signature) => Ok(signature),
                    Err(error) => Err(Failure::Signing {
                        error,
                        stage: Stage::Sign,
                        session: waiting.session,
                        handle: waiting.handle,
                        epoch: waiting.epoch,
                        kept_pin: false,
                    }),
                }
            });
            (outcome, epoch_before)
        });
        key.sign_after(&self.mechanism, data, first)
    }
}

/// Why one attempt at a signature failed.
enum Failure<'t> {
    /// Before signing (checkout, key look-up, no PIN): final, unless the device is gone.
    Setup(Error),
    /// A module error on the signing session.
    Signing {
        error: p11_raw::Error,
        stage: Stage,
        session: PooledSession<'t>,
        handle: ObjectHandle,
        /// The login epoch the handle belongs to.
        epoch: u64,
        /// Whether a context login used the kept user PIN.
        kept_pin: bool,
    },
}

impl SigningKey {
    /// Signs `data` with `mechanism`: checks a session out of the pool, makes sure the
    /// key handle belongs to the current login epoch, calls `C_SignInit` (then, for an
    /// always-authenticate key, the context-specific login) and `C_Sign` once with a
    /// buffer sized from the key, and hands the session back. No lock is taken beyond
    /// the pool's queue.
    ///
    /// `data` is what the mechanism signs: a DER `DigestInfo` for `CKM_RSA_PKCS`, the
    /// bare hash for `CKM_RSA_PKCS_PSS` and `CKM_ECDSA` (which returns the raw `r || s`),
    /// the message for the hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`, ...).
    ///
    /// Recoverable failures are repaired and the signature retried once, as the crate
    /// documentation's *Architecture* section says. For an always-authenticate key the
    /// kept PIN (or the one given to [`SigningKey::with_context_pin`]) is used for the
    /// context login; reading the kept one takes a short lock.
    ///
    /// # Errors
    /// [`Error::Pin`] if a PIN was refused (never retried), [`Error::PinRequired`] if a
    /// re-login needs a PIN that was erased, [`Error::DeviceLost`] if the device did not
    /// come back in time, [`Error::PoolExhausted`], or the module's error
    /// ([`Error::Pkcs11`]) when recovery does not apply or did not help.
    pub fn sign(&self, mechanism: &Mechanism, data: &[u8]) -> Result<Vec<u8>> {
        self.sign_after(mechanism, data, None)
    }

    /// Starts a signature with `mechanism` before its data exists: checks a session out
    /// and calls `C_SignInit` now; [`StartedSign::sign`] calls `C_Sign` when the data is
    /// there. Work done in between (laying out a PDF, building signed attributes) then
    /// runs while the session waits, rather than between one signature's `C_Sign` and
    /// the next's `C_SignInit`; on a module that takes its locks in `C_SignInit`
    /// (SoftHSM2 re-reads the key there), threads meet there less often.
    ///
    /// Never fails: whatever goes wrong here is met again, and reported or repaired as
    /// [`SigningKey::sign`] does, by [`StartedSign::sign`]. An always-authenticate key is
    /// not started early (its context login belongs with the signature, so that a PIN is
    /// never tried twice). A started signature dropped unsigned leaves its session
    /// unfit, and the pool closes it.
    pub fn start(&self, mechanism: &Mechanism) -> StartedSign<'_> {
        let token = &*self.lease.token().shared;
        let first = (!self.shared.facts.always_authenticate).then(|| {
            let epoch = token.login.epoch();
            (self.start_attempt(token, mechanism), epoch)
        });
        StartedSign {
            key: self,
            mechanism: *mechanism,
            first,
        }
    }

    /// Checkout, handle, `C_SignInit`, the operation left waiting on the session.
    fn start_attempt<'t>(
        &self,
        token: &'t TokenShared,
        mechanism: &Mechanism,
    ) -> Result<Waiting<'t>, Failure<'t>> {
        let (handle, epoch) = self.shared.handle(token).map_err(Failure::Setup)?;
        let mut session = token.checkout().map_err(Failure::Setup)?;
        let started = session
            .sign_init(mechanism, handle)
            .map(|operation| operation.suspend());
        if let Err(error) = started {
            return Err(Failure::Signing {
                error,
                stage: Stage::Init,
                session,
                handle,
                epoch,
                kept_pin: false,
            });
        }
        Ok(Waiting {
            session,
            handle,
            epoch,
        })
    }

    /// [`SigningKey::sign`], the first attempt's outcome given if it was started early.
    fn sign_after<'t>(
        &'t self,
        mechanism: &Mechanism,
        data: &[u8],
        first: Option<(Attempt<'t>, u64)>,
    ) -> Result<Vec<u8>> {
        let token = &*self.lease.token().shared;
        let result = self.sign_recovering(token, mechanism, data, first);
        match &result {
            Ok(_) => token.metrics.signed(),
            Err(error) => {
                token.metrics.sign_failed();
                tracing::debug!(token = %token.name(), key = %self.shared.query, %error, "signing failed");
            }
        }
        result
    }

    fn sign_recovering<'t>(
        &self,
        token: &'t TokenShared,
        mechanism: &Mechanism,
        data: &[u8],
        mut first: Option<(Attempt<'t>, u64)>,
    ) -> Result<Vec<u8>> {
        let mut retried = false;
        loop {
            let (outcome, epoch_before) = match first.take() {
                Some(started) => started,
                None => {
                    let epoch_before = token.login.epoch();
                    (self.attempt(token, mechanism, data), epoch_before)
                }
            };
            let failure = match outcome {
                Ok(signature) => return Ok(signature),
                Err(failure) => failure,
            };
            match failure {
                Failure::Setup(error) => {
                    let Some(cause) = module_cause(&error).filter(|_| !retried) else {
                        return Err(error);
                    };
                    match cause.recovery_class() {
                        RecoveryClass::DeviceLost => {
                            retried = true;
                            token.metrics.retried();
                            self.recover_device(token, epoch_before, cause)?;
                        }
                        // A session that failed to open, a look-up that failed vaguely:
                        // nothing to repair but trying once more.
                        RecoveryClass::Ambiguous
                        | RecoveryClass::SessionUnfit
                        | RecoveryClass::SessionLost => {
                            retried = true;
                            token.metrics.retried();
                            tracing::info!(
                                token = %token.name(),
                                key = %self.shared.query,
                                %error,
                                "getting ready to sign failed: retrying once"
                            );
                        }
                        _ => return Err(error),
                    }
                }
                Failure::Signing {
                    error,
                    stage,
                    session,
                    handle,
                    epoch,
                    kept_pin,
                } => {
                    let class = error.recovery_class();
                    if class == RecoveryClass::Pin {
                        drop(session);
                        if stage == Stage::Context && kept_pin {
                            // The kept PIN no longer works (it was changed): trying it
                            // at every signature would lock the token.
                            token.erase_pin();
                        }
                        return Err(token.pkcs11_error(error));
                    }
                    if class == RecoveryClass::Fatal || retried {
                        drop(session);
                        return Err(token.pkcs11_error(error));
                    }
                    retried = true;
                    token.metrics.retried();
                    tracing::info!(
                        token = %token.name(),
                        key = %self.shared.query,
                        %error,
                        "signing failed: repairing, then retrying once"
                    );
                    match class {
                        RecoveryClass::SessionUnfit => {
                            session.discard();
                            token.metrics.repaired(Repair::UnfitSession);
                        }
                        RecoveryClass::DeviceLost => {
                            session.discard_probed();
                            self.recover_device(token, epoch, error)?;
                        }
                        _ => self.repair(token, epoch, &error, stage, session, handle)?,
                    }
                }
            }
        }
    }

    /// One try: checkout, handle, sign.
    fn attempt<'t>(
        &self,
        token: &'t TokenShared,
        mechanism: &Mechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, Failure<'t>> {
        let (handle, epoch) = self.shared.handle(token).map_err(Failure::Setup)?;
        let facts = &self.shared.facts;
        let (context_pin, kept_pin) = match (facts.always_authenticate, &self.context_pin) {
            (false, _) => (None, false),
            (true, Some(pin)) => (Some(Arc::clone(pin)), false),
            (true, None) => match token.kept_pin() {
                Some(pin) => (Some(pin), true),
                None => {
                    return Err(Failure::Setup(Error::PinRequired {
                        token: token.name(),
                    }));
                }
            },
        };
        let mut session = token.checkout().map_err(Failure::Setup)?;
        match sign_on(
            &mut session,
            &token.metrics,
            mechanism,
            handle,
            data,
            context_pin.as_deref(),
            facts.algorithm.signature_len(),
        ) {
            Ok(signature) => Ok(signature),
            Err((stage, error)) => Err(Failure::Signing {
                error,
                stage,
                session,
                handle,
                epoch,
                kept_pin,
            }),
        }
    }

    /// Session, then login, then key: each at most once.
    fn repair(
        &self,
        token: &TokenShared,
        epoch: u64,
        error: &p11_raw::Error,
        stage: Stage,
        session: PooledSession<'_>,
        handle: ObjectHandle,
    ) -> Result<()> {
        let class = error.recovery_class();
        // 1. The session: ask it for its state.
        let seen = match session.info() {
            Ok(info) => Some(info.state.user_logged_in()),
            Err(probe) if session_is_dead(&probe) => None,
            Err(probe) if probe.recovery_class() == RecoveryClass::DeviceLost => {
                session.discard_probed();
                return self.recover_device(token, epoch, probe);
            }
            Err(probe) => {
                drop(session);
                return Err(token.pkcs11_error(probe));
            }
        };
        let session_alive = seen.is_some();
        let logged_in = match seen {
            Some(logged_in) => {
                drop(session);
                logged_in
            }
            None => {
                let generation = session.generation();
                session.discard_dead();
                token.metrics.repaired(Repair::Session);
                // Is this one session dead, or all of them? The anchor tells.
                let probe = token.probe_anchor(generation)?;
                if probe.generation_retired {
                    token.metrics.repaired(Repair::Generation);
                }
                probe.logged_in
            }
        };
        // 2. The login.
        if !logged_in && token.relogin()? {
            token.metrics.repaired(Repair::Login);
        }
        // 3. The key handle: stale after a new login, or when the module said so (or
        // failed vaguely) on a live, logged-in session.
        let stale = token.login.epoch() != epoch
            || class == RecoveryClass::StaleHandle
            || (class == RecoveryClass::Ambiguous && session_alive && logged_in);
        if stale && self.shared.refresh(token, Some(handle))?.looked_up {
            token.metrics.repaired(Repair::Key);
        }
        // 4. The context login of an always-authenticate key: the retry does
        // C_SignInit and the context login again, without a user re-login.
        if self.shared.facts.always_authenticate
            && error.rv() == Some(Rv::UserNotLoggedIn)
            && stage == Stage::Sign
            && logged_in
        {
            token.metrics.repaired(Repair::Context);
        }
        Ok(())
    }

    /// Device loss: the token's recovery (sessions dropped, token found again by
    /// serial, login), then the key looked up again.
    fn recover_device(&self, token: &TokenShared, epoch: u64, cause: p11_raw::Error) -> Result<()> {
        if token.recover_device(epoch, cause)? {
            token.metrics.repaired(Repair::Device);
        }
        if self.shared.refresh(token, None)?.looked_up {
            token.metrics.repaired(Repair::Key);
        }
        Ok(())
    }
}

/// The module error behind a token error (not a PIN error, which is never retried).
fn module_cause(error: &Error) -> Option<p11_raw::Error> {
    match error {
        Error::Pkcs11 { source, .. } | Error::Module(source) => match source {
            p11_raw::Error::Pkcs11 { function, rv } => Some(p11_raw::Error::Pkcs11 {
                function: *function,
                rv: *rv,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// `C_SignInit`, the context login if a PIN is given, `C_Sign`.
fn sign_on(
    session: &mut Session,
    metrics: &Metrics,
    mechanism: &Mechanism,
    handle: ObjectHandle,
    data: &[u8],
    context_pin: Option<&Pin>,
    signature_len: usize,
) -> Result<Vec<u8>, (Stage, p11_raw::Error)> {
    let mut operation = session
        .sign_init(mechanism, handle)
        .map_err(|error| (Stage::Init, error))?;
    if let Some(pin) = context_pin {
        metrics.context_login_called();
        // On failure the operation stays active; dropping it marks the session unfit,
        // so the pool closes it.
        operation
            .login_context(pin.bytes())
            .map_err(|error| (Stage::Context, error))?;
    }
    operation
        .sign(data, signature_len)
        .map_err(|error| (Stage::Sign, error))
}
