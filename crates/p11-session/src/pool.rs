//! The per-token session pool.
//!
//! Idle sessions wait in a lock-free bounded queue (crossbeam's `ArrayQueue`); the pool
//! grows lazily, one `C_OpenSession` at a time, up to its limit, and a checkout that finds
//! it exhausted waits on a condition variable, with a timeout. The mutex behind that
//! condition variable is taken only by waiters and, when someone waits, by whoever frees
//! a session: the signing hot path (pop, sign, push) takes no lock.
//!
//! Every session carries the generation it was opened in. When recovery finds that a
//! whole generation died (`C_CloseAllSessions`, a token reset), it bumps the generation;
//! sessions of an older one are closed instead of being handed out or taken back.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use p11_raw::{Rv, Session, SessionHandle};

use crate::error::{Error, Result};
use crate::token::TokenShared;

/// What becomes of the sessions of a retired generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Known dead (a close-all: the anchor and a pooled session both answered
    /// `CKR_SESSION_HANDLE_INVALID`): forgotten, never closed, since the module may have
    /// given their numbers to newer sessions.
    Forget,
    /// Possibly alive (a device error while the token stayed): closed if
    /// `C_GetSessionInfo` still answers for them, forgotten otherwise, so that nothing
    /// stays open in the module for good.
    Probe,
}

/// A session resting in the pool.
struct Idle {
    session: Session,
    generation: u64,
}

/// The pool of one token.
pub(crate) struct Pool {
    idle: ArrayQueue<Idle>,
    /// Pool sessions open now, idle or lent (the login anchor is not one of them).
    open: AtomicUsize,
    /// How many the pool may open: the configured size and the token's
    /// `ulMaxSessionCount`, lowered when the token answers `CKR_SESSION_COUNT`.
    limit: AtomicUsize,
    generation: AtomicU64,
    /// What to do with sessions of each retired generation when they are met; read off
    /// the hot path only (a session of an old generation is rare).
    fates: Mutex<HashMap<u64, Fate>>,
    /// Threads waiting for a session; a thread that frees one notifies only if non-zero.
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("idle", &self.idle.len())
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl Pool {
    /// A pool of at most `limit` sessions (at least one).
    pub(crate) fn new(limit: usize) -> Pool {
        let limit = limit.max(1);
        Pool {
            idle: ArrayQueue::new(limit),
            open: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            generation: AtomicU64::new(1),
            fates: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current size limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Retires `generation` if it is still the current one: its sessions meet `fate` as
    /// they are met. Returns whether this call did it.
    pub(crate) fn retire_generation(&self, generation: u64, fate: Fate) -> bool {
        {
            let mut fates = self.fates.lock().unwrap_or_else(PoisonError::into_inner);
            // Before the swap, so that no one meets a retired session without its fate;
            // a few generations back are enough (older sessions are long gone).
            fates.retain(|&old, _| old + 16 > generation);
            fates.entry(generation).or_insert(fate);
        }
        self.generation
            .compare_exchange(
                generation,
                generation + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    fn fate(&self, generation: u64) -> Fate {
        self.fates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&generation)
            .copied()
            .unwrap_or(Fate::Forget)
    }

    /// Ends a session of a retired generation as its fate says.
    fn retire(&self, token: &TokenShared, session: Session, generation: u64, wake: bool) {
        let dead = match self.fate(generation) {
            Fate::Forget => true,
            Fate::Probe => session.info().is_err(),
        };
        self.close(token, session, dead, wake);
    }

    /// Handles of the idle sessions (for tests that break one behind the pool's back).
    pub(crate) fn idle_handles(&self) -> Vec<SessionHandle> {
        // Pop everything, note the handles, push back in the same order. Only tests call
        // this, on a quiet pool.
        let mut taken = Vec::with_capacity(self.idle.len());
        while let Some(idle) = self.idle.pop() {
            taken.push(idle);
        }
        let handles = taken.iter().map(|idle| idle.session.handle()).collect();
        for idle in taken {
            if let Err(idle) = self.idle.push(idle) {
                // Cannot happen: we just popped at least as many as we push.
                drop(idle);
            }
        }
        handles
    }

    /// Closes every idle session (the token is going away).
    pub(crate) fn drain(&self, token: &TokenShared) {
        while let Some(idle) = self.idle.pop() {
            token.metrics.idle_changed(false);
            if idle.generation == self.generation() {
                self.close(token, idle.session, false, true);
            } else {
                self.retire(token, idle.session, idle.generation, true);
            }
        }
    }

    /// Wakes one waiter, if any. Called after a session was put back or closed.
    fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.freed.notify_one();
        }
    }

    /// Closes a session; one known `dead` (closed behind our back, or of a retired
    /// generation) is only forgotten, since its handle number may belong to a newer
    /// session by now. `wake` is false for a waiter that holds the wait lock: it wakes
    /// the others after letting go of it.
    fn close(&self, token: &TokenShared, session: Session, dead: bool, wake: bool) {
        if dead {
            session.forget();
        } else {
            drop(session);
        }
        token.metrics.session_closed();
        self.open.fetch_sub(1, Ordering::AcqRel);
        if wake {
            self.notify();
        }
    }

    /// An idle session of the current generation; older ones met on the way are closed.
    fn take_idle(&self, token: &TokenShared, wake: bool) -> Option<Idle> {
        while let Some(idle) = self.idle.pop() {
            token.metrics.idle_changed(false);
            if idle.generation == self.generation() {
                return Some(idle);
            }
            self.retire(token, idle.session, idle.generation, wake);
        }
        None
    }

    /// Opens one more session if the limit allows. `None` when it does not (or the
    /// token said `CKR_SESSION_COUNT` while others are open, so waiting makes sense).
    fn try_grow(&self, token: &TokenShared, wake: bool) -> Option<Result<Idle>> {
        let mut open = self.open.load(Ordering::Acquire);
        loop {
            if open >= self.limit() {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => open = now,
            }
        }
        // Read the generation before opening: a session opened while a generation is
        // being retired is then retired with it rather than kept by mistake.
        let generation = self.generation();
        match token.module.open_session(token.slot(), false) {
            Ok(session) => {
                token.metrics.session_opened();
                token.metrics.pool_grew_to((open + 1) as u64);
                Some(Ok(Idle {
                    session,
                    generation,
                }))
            }
            Err(error) => {
                self.open.fetch_sub(1, Ordering::AcqRel);
                if wake {
                    self.notify();
                }
                if error.rv() == Some(Rv::SessionCount) && open > 0 {
                    // The token allows fewer sessions than it said (or others use some):
                    // stop growing at what we have and wait for one of ours.
                    self.limit.fetch_min(open, Ordering::AcqRel);
                    tracing::info!(
                        token = %token.name(),
                        limit = open,
                        "CKR_SESSION_COUNT: the session pool stops growing"
                    );
                    return None;
                }
                Some(Err(token.pkcs11_error(error)))
            }
        }
    }

    /// Puts a session back, or closes it when it is broken or of a retired generation.
    fn give_back(&self, token: &TokenShared, session: Session, generation: u64) {
        if generation != self.generation() {
            self.retire(token, session, generation, true);
            return;
        }
        if !session.is_fit() {
            self.close(token, session, false, true);
            return;
        }
        match self.idle.push(Idle {
            session,
            generation,
        }) {
            Ok(()) => {
                token.metrics.idle_changed(true);
                self.notify();
            }
            // The queue holds as many as the pool may open, so it is never full; if it
            // were, closing the session is the safe answer.
            Err(idle) => self.close(token, idle.session, false, true),
        }
    }
}

impl TokenShared {
    /// Checks a session out of the pool: an idle one, else a new one if the pool may
    /// grow, else waits up to the configured timeout for one to be freed.
    pub(crate) fn checkout(&self) -> Result<PooledSession<'_>> {
        let pool = &self.pool;
        let idle = match pool.take_idle(self, true) {
            Some(idle) => idle,
            None => match pool.try_grow(self, true) {
                Some(grown) => grown?,
                None => self.wait_for_session()?,
            },
        };
        Ok(PooledSession {
            token: self,
            session: Some(idle.session),
            generation: idle.generation,
        })
    }

    fn wait_for_session(&self) -> Result<Idle> {
        let pool = &self.pool;
        self.metrics.waited();
        let start = Instant::now();
        let timeout = self.config.checkout_timeout;
        let mut lock = pool.lock.lock().unwrap_or_else(PoisonError::into_inner);
        pool.waiting.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            // Pairs with the fence in `notify`: either the freeing thread sees us
            // waiting, or we see what it freed.
            fence(Ordering::SeqCst);
            // Holding the wait lock: whatever these free, the others are woken below.
            if let Some(idle) = pool.take_idle(self, false) {
                break Ok(idle);
            }
            if let Some(grown) = pool.try_grow(self, false) {
                break grown;
            }
            let waited = start.elapsed();
            let Some(remaining) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                self.metrics.wait_timed_out();
                break Err(Error::PoolExhausted {
                    token: self.name(),
                    waited,
                    limit: pool.limit(),
                });
            };
            lock = pool
                .freed
                .wait_timeout(lock, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        pool.waiting.fetch_sub(1, Ordering::SeqCst);
        drop(lock);
        // A session closed or a failed open above freed room another waiter may use.
        pool.notify();
        result
    }
}

/// A session checked out of a token's pool: one thread at a time (`Send`, not `Sync`).
/// Dropped, it goes back to the pool, unless a call showed it broken or its generation
/// was retired, in which case it is closed.
///
/// It dereferences to [`p11_raw::Session`] for calls this crate does not wrap. Never log
/// in or out through it: the token's login state belongs to [`Token`](crate::Token).
pub struct PooledSession<'t> {
    token: &'t TokenShared,
    /// Always `Some` until dropped or discarded.
    session: Option<Session>,
    generation: u64,
}

impl fmt::Debug for PooledSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledSession")
            .field("session", &self.session)
            .field("generation", &self.generation)
            .finish()
    }
}

impl PooledSession<'_> {
    /// The generation the session was opened in.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Closes the session instead of returning it to the pool.
    pub fn discard(mut self) {
        if let Some(session) = self.session.take() {
            self.token.pool.close(self.token, session, false, true);
        }
    }

    /// Drops a session found dead without closing it (see `Pool::close`).
    pub(crate) fn discard_dead(mut self) {
        if let Some(session) = self.session.take() {
            self.token.pool.close(self.token, session, true, true);
        }
    }

    /// Closes the session if `C_GetSessionInfo` still answers for it, else forgets it:
    /// after a device error, when it may be alive or dead.
    pub(crate) fn discard_probed(mut self) {
        if let Some(session) = self.session.take() {
            let dead = session.info().is_err();
            self.token.pool.close(self.token, session, dead, true);
        }
    }
}

impl Deref for PooledSession<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        match &self.session {
            Some(session) => session,
            // `session` is `None` only inside `discard` and `drop`, which consume it.
            None => unreachable!("a pooled session is used after it was given back"),
        }
    }
}

impl DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        match &mut self.session {
            Some(session) => session,
            // As in `deref`.
            None => unreachable!("a pooled session is used after it was given back"),
        }
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.token
                .pool
                .give_back(self.token, session, self.generation);
        }
    }
}

/// How long to wait before the next try at finding a lost device: `initial`, doubling,
/// at most `max`.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_50ms_to_2s() {
        let schedule: Vec<_> = (0..8)
            .map(|n| backoff(n, Duration::from_millis(50), Duration::from_secs(2)))
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(schedule, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            backoff(200, Duration::from_millis(50), Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn generations_retire_once() {
        let pool = Pool::new(0);
        assert_eq!(pool.limit(), 1);
        let generation = pool.generation();
        assert!(pool.retire_generation(generation, Fate::Probe));
        assert!(!pool.retire_generation(generation, Fate::Forget));
        assert_eq!(pool.fate(generation), Fate::Probe);
        assert_eq!(pool.fate(generation + 7), Fate::Forget);
        assert_eq!(pool.generation(), generation + 1);
    }
}
