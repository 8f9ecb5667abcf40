//! The login-state machine: `LoggedOut -> LoggedIn { epoch }`, with leases.
//!
//! One atomic word holds the state: bit 0 says "logged in", bit 1 says "the kept PIN
//! was refused and erased: the next login must bring one", the bits from 8 up count the
//! leases. A login while logged in is a compare-and-swap that adds a lease: no lock, no
//! module call. Every other transition (the first login, the logout when the last lease
//! goes, a re-login, a key look-up, device recovery) runs under the token's
//! `transition` mutex, and clears the "logged in" bit only by a compare-and-swap from
//! "logged in, zero leases": so a lease taken on the fast path can never be outrun by a
//! logout, and nothing logs out while a lease is alive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use p11_raw::{RecoveryClass, Rv, Session, UserType};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KeyQuery, SigningKey};
use crate::pool::{Fate, backoff};
use crate::token::{Token, TokenShared, Transition, lock, session_is_dead};

const LOGGED_IN: u64 = 1;
const NEED_PIN: u64 = 1 << 1;
const LEASE: u64 = 1 << 8;

fn leases(word: u64) -> u64 {
    word >> 8
}

/// A PIN, zeroised when dropped, never printed.
pub(crate) struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    pub(crate) fn new(pin: &[u8]) -> Pin {
        Pin(Zeroizing::new(pin.to_vec()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The login state word and the login epoch.
pub(crate) struct LoginState {
    word: AtomicU64,
    /// Bumped at each real login; key handles are cached per epoch.
    epoch: AtomicU64,
}

impl fmt::Debug for LoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("LoginState")
            .field("logged_in", &(word & LOGGED_IN != 0))
            .field("pin_needed", &(word & NEED_PIN != 0))
            .field("leases", &leases(word))
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl LoginState {
    pub(crate) fn new() -> LoginState {
        LoginState {
            word: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Bumps the epoch; only under the transition lock.
    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The fast path: adds a lease if logged in with a usable PIN.
    fn try_lease(&self) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & LOGGED_IN == 0 || word & NEED_PIN != 0 {
                return false;
            }
            match self.word.compare_exchange_weak(
                word,
                word + LEASE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }
}

/// Proof that the token is logged in, and a promise that it stays so: the token logs out
/// only when the last lease (and the last [`SigningKey`], which holds one) is dropped.
/// `Clone + Send + Sync`; clones are leases too.
pub struct LoginLease {
    token: Token,
}

impl fmt::Debug for LoginLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLease")
            .field("token", &self.token.shared.name())
            .finish()
    }
}

impl Clone for LoginLease {
    fn clone(&self) -> LoginLease {
        // A live lease keeps the "logged in" bit set (it is cleared only at zero leases),
        // so adding one needs no check.
        self.token
            .shared
            .login
            .word
            .fetch_add(LEASE, Ordering::Relaxed);
        LoginLease {
            token: self.token.clone(),
        }
    }
}

impl Drop for LoginLease {
    fn drop(&mut self) {
        let before = self
            .token
            .shared
            .login
            .word
            .fetch_sub(LEASE, Ordering::AcqRel);
        if leases(before) == 1 {
            self.token.shared.last_lease_gone();
        }
    }
}

impl LoginLease {
    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Finds a signing key (private key, its certificate and the chain on the token) and
    /// returns it with a lease of its own. Every caller asking for the same query gets
    /// the same shared key, whose handle is cached per login epoch.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::KeyAmbiguous`], [`Error::CertificateNotFound`],
    /// [`Error::UnsupportedKey`], or the module's error.
    pub fn key(&self, query: &KeyQuery) -> Result<SigningKey> {
        SigningKey::find(self, query)
    }
}

impl Token {
    /// Logs in as the user, or takes a lease on the login already there: many leases
    /// share one `C_Login`. When logged in, this is a compare-and-swap: no lock, no
    /// module call. `CKR_USER_ALREADY_LOGGED_IN` (someone else in the process logged in)
    /// counts as logged in.
    ///
    /// Like `C_Login` answering `CKR_USER_ALREADY_LOGGED_IN`, a login while logged in
    /// does not check `pin`: PKCS#11 login state belongs to the whole application.
    ///
    /// The PIN is kept (zeroised when dropped) while leases are out, for an automatic
    /// re-login after the token lost its login; it is tried once, and erased if refused.
    ///
    /// # Errors
    /// [`Error::Pin`] (never retried: exactly one `C_Login` is made) with the token's PIN
    /// flags, or the module's error.
    pub fn login(&self, pin: &[u8]) -> Result<LoginLease> {
        if !self.shared.login.try_lease() {
            self.shared.login_slow(pin)?;
        }
        Ok(LoginLease {
            token: self.clone(),
        })
    }

    /// Whether the token is logged in (some lease is out).
    pub fn is_logged_in(&self) -> bool {
        self.shared.login.word.load(Ordering::Acquire) & LOGGED_IN != 0
    }

    /// Leases out now.
    pub fn leases(&self) -> u64 {
        leases(self.shared.login.word.load(Ordering::Acquire))
    }

    /// The login epoch: bumped at each real login.
    pub fn epoch(&self) -> u64 {
        self.shared.login.epoch()
    }

    /// Logs out explicitly: waits up to `wait` for the leases out to be dropped (the last
    /// one logs out as it goes), then returns. `Duration::ZERO` refuses at once if any
    /// lease is out. New leases are not held back meanwhile.
    ///
    /// # Errors
    /// [`Error::LeasesOutstanding`] if leases are still out after `wait`.
    pub fn logout(&self, wait: Duration) -> Result<()> {
        let shared = &self.shared;
        let start = Instant::now();
        let mut transition = lock(&shared.transition);
        loop {
            let word = shared.login.word.load(Ordering::Acquire);
            if word & LOGGED_IN == 0 {
                return Ok(());
            }
            if leases(word) == 0 {
                // The last lease just went and its logout waits for this lock.
                shared.logout_locked(&mut transition);
                continue;
            }
            let waited = start.elapsed();
            let Some(remaining) = wait.checked_sub(waited).filter(|d| !d.is_zero()) else {
                return Err(Error::LeasesOutstanding {
                    token: shared.name(),
                    count: leases(word),
                    waited,
                });
            };
            transition = shared
                .logged_out
                .wait_timeout(transition, remaining)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl TokenShared {
    /// The first login (or one after the kept PIN was refused): under the lock.
    fn login_slow(&self, pin: &[u8]) -> Result<()> {
        let mut transition = lock(&self.transition);
        if self.login.try_lease() {
            // Someone logged in while we waited for the lock.
            return Ok(());
        }
        let anchor = self.anchor(&mut transition)?;
        self.metrics.login_called();
        match anchor.login(UserType::User, Some(pin)) {
            Ok(()) => {}
            Err(error) if error.rv() == Some(Rv::UserAlreadyLoggedIn) => {}
            Err(error) => return Err(self.pkcs11_error(error)),
        }
        *lock(&self.kept_pin) = Some(Arc::new(Pin::new(pin)));
        // The new epoch is visible before the "logged in" bit that lets others in.
        self.login.bump_epoch();
        let _ = self
            .login
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(((word | LOGGED_IN) & !NEED_PIN) + LEASE)
            });
        tracing::debug!(token = %self.name(), epoch = self.login.epoch(), "logged in");
        Ok(())
    }

    /// The last lease went: log out, unless a new lease came first.
    fn last_lease_gone(&self) {
        let mut transition = lock(&self.transition);
        self.logout_locked(&mut transition);
    }

    /// Logs out if logged in with no lease out. Under the lock.
    fn logout_locked(&self, transition: &mut Transition) {
        let mut word = self.login.word.load(Ordering::Acquire);
        loop {
            if leases(word) != 0 || word & LOGGED_IN == 0 {
                return;
            }
            // From here fast-path logins fail and wait for the lock we hold.
            match self
                .login
                .word
                .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        *lock(&self.kept_pin) = None;
        match self.anchor(transition) {
            Ok(anchor) => {
                self.metrics.logout_called();
                match anchor.logout() {
                    Ok(()) => {}
                    // Logged out behind our back already (C_Logout, C_CloseAllSessions).
                    Err(error) if error.rv() == Some(Rv::UserNotLoggedIn) => {}
                    Err(error) => {
                        tracing::warn!(token = %self.name(), %error, "logging out failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(token = %self.name(), %error, "no session to log out with");
            }
        }
        tracing::debug!(token = %self.name(), "logged out: the last lease is gone");
        self.logged_out.notify_all();
    }

    /// The session that holds the login: the one we have if it is alive, else a new one.
    pub(crate) fn anchor<'t>(&self, transition: &'t mut Transition) -> Result<&'t Session> {
        let mut unfit = None;
        let alive = match transition.anchor.take() {
            Some(anchor) => match anchor.info() {
                Ok(_) if anchor.is_fit() => Some(anchor),
                Ok(_) => {
                    // Alive but unfit (a search that could not be ended, say): replace
                    // it, closing it only once the new one is open, since closing the
                    // application's last session would log it out.
                    unfit = Some(anchor);
                    None
                }
                Err(error) if session_is_dead(&error) => {
                    anchor.forget();
                    self.metrics.session_closed();
                    None
                }
                Err(error) => {
                    transition.anchor = Some(anchor);
                    return Err(self.pkcs11_error(error));
                }
            },
            None => None,
        };
        let anchor = match alive {
            Some(anchor) => anchor,
            None => {
                let opened = self.module.open_session(self.slot(), false);
                let session = match opened {
                    Ok(session) => session,
                    Err(error) => {
                        transition.anchor = unfit;
                        return Err(self.pkcs11_error(error));
                    }
                };
                self.metrics.session_opened();
                if let Some(old) = unfit {
                    drop(old);
                    self.metrics.session_closed();
                }
                session
            }
        };
        Ok(transition.anchor.insert(anchor))
    }

    /// Whether the anchor session was found dead (then it is replaced and, if it was of
    /// `generation`, that generation retired: two dead sessions mean a close-all), and
    /// whether the token is logged in, as the anchor sees it.
    pub(crate) fn probe_anchor(&self, generation: u64) -> Result<AnchorProbe> {
        let mut transition = lock(&self.transition);
        let dead = match &transition.anchor {
            Some(anchor) => match anchor.info() {
                Ok(_) => false,
                Err(error) if session_is_dead(&error) => true,
                Err(error) => return Err(self.pkcs11_error(error)),
            },
            None => false,
        };
        let mut generation_retired = false;
        if dead {
            if let Some(anchor) = transition.anchor.take() {
                anchor.forget();
                self.metrics.session_closed();
            }
            generation_retired = self.pool.retire_generation(generation, Fate::Forget);
            if generation_retired {
                // The close-all logged the application out and ended every object handle
                // of that login, even if someone has logged in again since: a new epoch.
                self.login.bump_epoch();
                tracing::warn!(
                    token = %self.name(),
                    generation,
                    "every session was closed behind our back: retiring the generation"
                );
            }
        }
        let logged_in = self
            .anchor(&mut transition)?
            .info()
            .map_err(|error| self.pkcs11_error(error))?
            .state
            .user_logged_in();
        Ok(AnchorProbe {
            generation_retired,
            logged_in,
        })
    }

    /// Logs in again with the kept PIN if the token lost its login (and nobody logged
    /// in again meanwhile: the anchor is asked under the lock). Returns whether this call
    /// logged in.
    ///
    /// A refused PIN is erased and never tried again.
    pub(crate) fn relogin(&self) -> Result<bool> {
        let mut transition = lock(&self.transition);
        self.relogin_locked(&mut transition)
    }

    /// Logs in with the kept PIN if the anchor says the token is logged out. Under the
    /// lock. Returns whether it logged in.
    pub(crate) fn relogin_locked(&self, transition: &mut Transition) -> Result<bool> {
        let anchor = self.anchor(transition)?;
        let logged_in = anchor
            .info()
            .map_err(|error| self.pkcs11_error(error))?
            .state
            .user_logged_in();
        if logged_in {
            return Ok(false);
        }
        let pin = lock(&self.kept_pin).clone();
        let Some(pin) = pin else {
            return Err(Error::PinRequired { token: self.name() });
        };
        self.metrics.login_called();
        match anchor.login(UserType::User, Some(pin.bytes())) {
            Ok(()) => {}
            Err(error) if error.rv() == Some(Rv::UserAlreadyLoggedIn) => {}
            Err(error) => {
                if error.recovery_class() == RecoveryClass::Pin {
                    self.erase_pin();
                }
                return Err(self.pkcs11_error(error));
            }
        }
        self.login.bump_epoch();
        tracing::info!(token = %self.name(), epoch = self.login.epoch(), "logged in again");
        Ok(true)
    }

    /// Erases the kept PIN after the token refused it (the PIN was changed): nothing
    /// logs in again until a caller gives a PIN.
    pub(crate) fn erase_pin(&self) {
        *lock(&self.kept_pin) = None;
        self.login.word.fetch_or(NEED_PIN, Ordering::AcqRel);
        tracing::warn!(
            token = %self.name(),
            "the kept PIN was refused and erased; a PIN must be given again"
        );
    }

    /// The kept PIN, for context-specific logins.
    pub(crate) fn kept_pin(&self) -> Option<Arc<Pin>> {
        lock(&self.kept_pin).clone()
    }

    /// Device recovery: drops every session, finds the token again by serial with
    /// backoff, opens a new anchor and logs in with the kept PIN; unless someone did it
    /// since `seen_epoch`. Returns whether this call did it.
    pub(crate) fn recover_device(&self, seen_epoch: u64, cause: p11_raw::Error) -> Result<bool> {
        let mut transition = lock(&self.transition);
        if self.login.epoch() != seen_epoch {
            return Ok(false);
        }
        tracing::warn!(token = %self.name(), error = %cause, "the device is gone: recovering");
        // The sessions may be dead (the device went away) or alive (a device error while
        // it stayed): close those that still answer, before opening any new one.
        if let Some(anchor) = transition.anchor.take() {
            if anchor.info().is_err() {
                anchor.forget();
            } else {
                drop(anchor);
            }
            self.metrics.session_closed();
        }
        self.pool
            .retire_generation(self.pool.generation(), Fate::Probe);
        self.pool.drain(self);
        let start = Instant::now();
        let mut last = cause;
        let mut attempt = 0u32;
        loop {
            match self.find_again(&mut transition) {
                Ok(()) => {
                    self.login.bump_epoch();
                    tracing::info!(token = %self.name(), "the device is back");
                    return Ok(true);
                }
                Err(Error::Pkcs11 { source, .. } | Error::Module(source))
                    if source.recovery_class() == RecoveryClass::DeviceLost
                        || source.rv() == Some(Rv::SlotIdInvalid) =>
                {
                    last = source;
                }
                Err(Error::TokenNotFound { .. }) => {}
                Err(other) => return Err(other),
            }
            let waited = start.elapsed();
            let Some(remaining) = self
                .config
                .device_retry_for
                .checked_sub(waited)
                .filter(|d| !d.is_zero())
            else {
                return Err(Error::DeviceLost {
                    token: self.name(),
                    waited,
                    source: last,
                });
            };
            let pause = backoff(
                attempt,
                self.config.device_backoff_initial,
                self.config.device_backoff_max,
            );
            std::thread::sleep(pause.min(remaining));
            attempt = attempt.saturating_add(1);
        }
    }

    /// One try at finding the token again and logging in. Under the lock.
    fn find_again(&self, transition: &mut Transition) -> Result<()> {
        let (slot, _) = crate::token::find_token(
            &self.module,
            &crate::token::TokenQuery::Serial(self.serial().to_owned()),
        )?;
        self.set_slot(slot);
        self.relogin_locked(transition)?;
        Ok(())
    }
}

/// What [`TokenShared::probe_anchor`] found.
pub(crate) struct AnchorProbe {
    pub(crate) generation_retired: bool,
    pub(crate) logged_in: bool,
}
