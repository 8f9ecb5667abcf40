//! Counters a service can export: plain atomics, read as a [`MetricsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// What a repair fixed, for [`Metrics`] and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Repair {
    /// A session was found dead: it was discarded and another one used.
    Session,
    /// Every session of a generation was found dead (`C_CloseAllSessions`, a token
    /// reset): the whole generation was discarded. Counted besides [`Repair::Session`].
    Generation,
    /// The token was no longer logged in: logged in again with the kept PIN.
    Login,
    /// The key handle was stale: the key was looked up again.
    Key,
    /// A key with `CKA_ALWAYS_AUTHENTICATE` lost its context login: `C_SignInit` and the
    /// context login again.
    Context,
    /// A session could not go on (`DEVICE_MEMORY`, `OPERATION_ACTIVE`): dropped, another
    /// one used.
    UnfitSession,
    /// The device went away: sessions dropped, the token found again by serial, logged
    /// in, the key looked up.
    Device,
}

/// Live counters of one token (all sessions, leases and keys of it). Shared: obtain it
/// with [`Token::metrics`](crate::Token::metrics); it outlives the token so a service
/// (or a test) can read the final figures after everything was dropped.
///
/// Every figure is monotonic except the two gauges `sessions_open` and
/// `sessions_idle`.
#[derive(Debug, Default)]
pub struct Metrics {
    signatures: AtomicU64,
    sign_failures: AtomicU64,
    retries: AtomicU64,
    repairs_session: AtomicU64,
    repairs_generation: AtomicU64,
    repairs_login: AtomicU64,
    repairs_key: AtomicU64,
    repairs_context: AtomicU64,
    repairs_unfit_session: AtomicU64,
    repairs_device: AtomicU64,
    sessions_opened: AtomicU64,
    sessions_closed: AtomicU64,
    sessions_open: AtomicU64,
    sessions_idle: AtomicU64,
    pool_peak: AtomicU64,
    session_waits: AtomicU64,
    session_wait_timeouts: AtomicU64,
    logins: AtomicU64,
    context_logins: AtomicU64,
    logouts: AtomicU64,
    key_lookups: AtomicU64,
}

/// A copy of [`Metrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Signatures made.
    pub signatures: u64,
    /// Signatures that failed (after recovery, if any was tried).
    pub sign_failures: u64,
    /// Signatures retried after a repair (at most one retry each).
    pub retries: u64,
    /// Dead sessions discarded and replaced ([`Repair::Session`]).
    pub repairs_session: u64,
    /// Whole generations of sessions discarded ([`Repair::Generation`]).
    pub repairs_generation: u64,
    /// Automatic re-logins with the kept PIN ([`Repair::Login`]).
    pub repairs_login: u64,
    /// Key look-ups after a stale handle ([`Repair::Key`]).
    pub repairs_key: u64,
    /// Context logins redone ([`Repair::Context`]).
    pub repairs_context: u64,
    /// Unfit sessions dropped ([`Repair::UnfitSession`]).
    pub repairs_unfit_session: u64,
    /// Device recoveries ([`Repair::Device`]).
    pub repairs_device: u64,
    /// Sessions opened (`C_OpenSession`), the pool's and the login anchor's.
    pub sessions_opened: u64,
    /// Sessions closed or found dead and dropped.
    pub sessions_closed: u64,
    /// Gauge: sessions open now (pool and anchor).
    pub sessions_open: u64,
    /// Gauge: pooled sessions idle now.
    pub sessions_idle: u64,
    /// The most pool sessions ever open at once (the anchor not counted).
    pub pool_peak: u64,
    /// Checkouts that had to wait for a session.
    pub session_waits: u64,
    /// Checkouts that gave up waiting.
    pub session_wait_timeouts: u64,
    /// Real `C_Login(CKU_USER)` calls, successful or not.
    pub logins: u64,
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` calls, successful or not.
    pub context_logins: u64,
    /// Real `C_Logout` calls.
    pub logouts: u64,
    /// Key look-ups (`C_FindObjects` rounds for a key), first ones and repairs alike.
    pub key_lookups: u64,
}

impl Metrics {
    /// Reads every counter. Each is read atomically; the set is not one atomic picture.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            signatures: read(&self.signatures),
            sign_failures: read(&self.sign_failures),
            retries: read(&self.retries),
            repairs_session: read(&self.repairs_session),
            repairs_generation: read(&self.repairs_generation),
            repairs_login: read(&self.repairs_login),
            repairs_key: read(&self.repairs_key),
            repairs_context: read(&self.repairs_context),
            repairs_unfit_session: read(&self.repairs_unfit_session),
            repairs_device: read(&self.repairs_device),
            sessions_opened: read(&self.sessions_opened),
            sessions_closed: read(&self.sessions_closed),
            sessions_open: read(&self.sessions_open),
            sessions_idle: read(&self.sessions_idle),
            pool_peak: read(&self.pool_peak),
            session_waits: read(&self.session_waits),
            session_wait_timeouts: read(&self.session_wait_timeouts),
            logins: read(&self.logins),
            context_logins: read(&self.context_logins),
            logouts: read(&self.logouts),
            key_lookups: read(&self.key_lookups),
        }
    }

    pub(crate) fn signed(&self) {
        self.signatures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sign_failed(&self) {
        self.sign_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn repaired(&self, repair: Repair) {
        let counter = match repair {
            Repair::Session => &self.repairs_session,
            Repair::Generation => &self.repairs_generation,
            Repair::Login => &self.repairs_login,
            Repair::Key => &self.repairs_key,
            Repair::Context => &self.repairs_context,
            Repair::UnfitSession => &self.repairs_unfit_session,
            Repair::Device => &self.repairs_device,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_opened(&self) {
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
        self.sessions_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_closed(&self) {
        self.sessions_closed.fetch_add(1, Ordering::Relaxed);
        self.sessions_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn idle_changed(&self, up: bool) {
        if up {
            self.sessions_idle.fetch_add(1, Ordering::Relaxed);
        } else {
            self.sessions_idle.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn pool_grew_to(&self, open: u64) {
        self.pool_peak.fetch_max(open, Ordering::Relaxed);
    }

    pub(crate) fn waited(&self) {
        self.session_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wait_timed_out(&self) {
        self.session_wait_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn login_called(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn context_login_called(&self) {
        self.context_logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn logout_called(&self) {
        self.logouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn key_looked_up(&self) {
        self.key_lookups.fetch_add(1, Ordering::Relaxed);
    }
}
