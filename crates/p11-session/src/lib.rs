//! PKCS#11 login-state machine, session pool and shared key handles for concurrent
//! signing.
//!
//! PKCS#11 has no atomic "log in if needed, find the key, sign": all sessions of an
//! application share one login, a second `C_Login` answers
//! `CKR_USER_ALREADY_LOGGED_IN`, one `C_Logout` logs every session out and kills the
//! private-key handles other threads hold, and a token reset leaves every session dead.
//! This crate gives callers that atomic operation, so they never log in or out around a
//! signature, from as many threads as they like.
//!
//! # Overview
//!
//! - [`Token::open`] finds a token (by label, serial or slot: [`TokenQuery`]) in a
//!   `p11_raw::Module` and returns the process's one shared state for it: opening the
//!   same token from many places (a per-request scope) gives one login state, one
//!   session pool and one key cache.
//! - [`Token::login`] returns a [`LoginLease`]: the first one logs in, the others share
//!   that login without a lock or a module call; the token logs out when the last lease
//!   is dropped, never earlier.
//! - [`LoginLease::key`] finds a private key with its certificate and chain
//!   ([`KeyQuery`]: label, `CKA_ID` or certificate subject) and returns a
//!   [`SigningKey`]: `Clone + Send + Sync`, holding its own lease.
//! - [`SigningKey::sign`] checks a session out of the pool ([`PooledSession`]), signs
//!   with `C_SignInit` + `C_Sign`, and hands the session back, repairing what it can
//!   (dead sessions, a lost login, stale handles, a device that went away) and retrying
//!   once. [`SigningKey::start`] splits it: `C_SignInit` before the data exists,
//!   [`StartedSign::sign`] the rest once it does, so that the caller's own work runs
//!   while the session waits.
//! - [`Metrics`] counts signatures, repairs by kind, sessions, waits, logins and logouts.
//! - Every failure is an [`Error`], naming the token; PIN errors name its PIN flags.
//!
//! What this crate does *not* do: hash, build DigestInfo or CMS, or know about PDF.
//! The caller picks the mechanism ([`SigningKey::algorithm`] and
//! [`SigningKey::allowed_mechanisms`] tell it what the key takes).
//!
//! # Example
//!
//! ```no_run
//! use p11_session::{KeyQuery, Mechanism, MechanismType, Token, TokenQuery};
//!
//! let module = p11_raw::Module::open("/usr/lib/softhsm/libsofthsm2.so")?;
//! let token = Token::open(&module, &TokenQuery::Label("signing".into()))?;
//! let lease = token.login(b"1234")?;
//! let key = lease.key(&KeyQuery::Label("signer".into()))?;
//! drop(lease); // the key holds a lease of its own
//!
//! // From any number of threads:
//! let digest = [0u8; 32]; // SHA-256 of the data, computed by the caller
//! let signature = key.sign(&Mechanism::new(MechanismType::ECDSA), &digest)?;
//! assert_eq!(signature.len(), key.signature_len());
//! assert_eq!(token.metrics().snapshot().logins, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Architecture: concurrency invariants
//!
//! **Invariant: nothing logs out while a lease is alive.** The login state is one
//! atomic word (logged in, PIN needed, lease count). A login while logged in adds a
//! lease by compare-and-swap. The logout clears the "logged in" bit only by a
//! compare-and-swap from "logged in, zero leases", under the token's transition lock;
//! a concurrent fast-path login then fails its swap, takes the slow path and waits for
//! that lock, and logs in anew after the logout. Every [`SigningKey`] holds a lease.
//!
//! **Invariant: the signing hot path takes no lock.** It pops a session from a
//! lock-free queue, reads the key handle through a sequence lock (epoch and handle), signs,
//! and pushes the session back; only an always-authenticate key also reads the kept PIN
//! under a short lock, for its context login. The transition lock serialises login,
//! logout, re-login, key look-ups and device recovery; the pool's wait lock is taken by
//! threads waiting for a session and, only when someone waits, by a thread freeing one.
//!
//! **Invariant: closing pooled sessions never logs the token out.** PKCS#11 logs an
//! application out when its last session with a token closes. One session, the
//! *anchor*, holds the login: it is used for login, logout and look-ups only, never lent
//! out, and replaced under the transition lock if found dead.
//!
//! **Invariant: a session is used by one thread at a time.** [`PooledSession`] is
//! `Send`, not `Sync`; a session whose last call showed it broken is closed, not
//! returned; sessions known dead are forgotten without `C_CloseSession`, since the
//! module may have reused their handle numbers.
//!
//! **Invariant: a PIN is tried once.** A refused PIN is an [`Error::Pin`], never
//! retried; a kept PIN refused at an automatic re-login (the PIN was changed) is erased,
//! and nothing logs in again until a caller gives one. PINs live in zeroising memory
//! and appear in no `Debug`, error or log.
//!
//! **Invariant: one state per token per process.** A registry keyed by module path and
//! token serial holds weak references; creating and tearing down a state both happen
//! under its lock, so a new state never overlaps the teardown of an old one.
//!
//! Recovery follows DESIGN.md's table: on `SESSION_HANDLE_INVALID`, `SESSION_CLOSED`,
//! `USER_NOT_LOGGED_IN`, `OBJECT_HANDLE_INVALID`, `KEY_HANDLE_INVALID`,
//! `GENERAL_ERROR` or `FUNCTION_FAILED` the signing session is asked for its state
//! (`C_GetSessionInfo`); a dead session is discarded (its whole generation too if the
//! anchor died with it: a close-all); a lost login is redone with the kept PIN (a new
//! epoch); a stale handle is looked up again; then the signature is retried once. Device
//! loss drops every session and finds the token again by serial, backing off from 50 ms
//! doubling to 2 s for at most 10 s ([`TokenConfig::device_recovery`]).
//! `DEVICE_MEMORY` and `OPERATION_ACTIVE` drop that session and retry on another.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod key;
mod login;
mod lookup;
mod metrics;
mod pool;
mod recovery;
mod token;

pub use error::{Error, PinFlags, Result, TokenName};
pub use key::{EcCurve, KeyAlgorithm, KeyQuery, SigningKey};
pub use login::LoginLease;
pub use metrics::{Metrics, MetricsSnapshot, Repair};
pub use pool::PooledSession;
pub use recovery::StartedSign;
pub use token::{DEFAULT_POOL_SIZE, Token, TokenConfig, TokenQuery};

/// The mechanism types of `p11-raw`, for [`SigningKey::sign`].
pub use p11_raw::{Mechanism, MechanismType, PssParams};
