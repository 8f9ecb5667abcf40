//! A PKCS#11 module that forwards every call to a real module and breaks things on
//! purpose, so that recovery code can be tested where it matters. Test-only, not
//! published.
//!
//! Real HSMs restart, drop sessions, lose their login after a failover, answer
//! `CKR_DEVICE_ERROR` under load and sit behind a network. SoftHSM2 does none of this.
//! Built as a `cdylib`, this crate is a PKCS#11 v2.40 module (it exports
//! `C_GetFunctionList`) that a program loads instead of the real one; as an `rlib` it
//! gives tests [`Control`], a safe handle to change the proxy's rules, fire events and
//! read its counters while it runs, and [`build_proxy`], which finds or builds the
//! library.
//!
//! # What it does
//!
//! - **Faults**: per function, every N-th call or each call with probability P answers
//!   a chosen `CK_RV` instead of being forwarded. The lie is then made true in the real
//!   module, so that what the caller is told is what it finds when it looks:
//!   - the operation the call belonged to ends (the standard says every error but
//!     `CKR_BUFFER_TOO_SMALL` ends it): a faulted `C_Sign` is completed in the real
//!     module into a scratch buffer and thrown away, a faulted `C_SignUpdate` is ended
//!     with `C_SignFinal`, and likewise for encryption, decryption, digests and
//!     verification; a faulted `*Init` was never forwarded, so nothing started;
//!   - `CKR_SESSION_CLOSED`, `CKR_SESSION_HANDLE_INVALID`: the session is closed;
//!   - `CKR_USER_NOT_LOGGED_IN`: the application is logged out (on that session, so
//!     every session: PKCS#11 has one login state per application and token);
//!   - `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`: every session with the token is
//!     closed, as a real removal would;
//!   - `CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`: the handles the call named
//!     become stale for real (the next lookup gives new numbers);
//!   - anything else (`CKR_DEVICE_ERROR`, `CKR_FUNCTION_FAILED`, `CKR_GENERAL_ERROR`,
//!     `CKR_DEVICE_MEMORY`, ...): nothing beyond ending the operation.
//!
//!   `effect=none` on a rule keeps only the first point (useful to fake the
//!   `CKR_USER_NOT_LOGGED_IN` of a missing context-specific login). A faulted call that
//!   is not part of an operation (`C_Login`, `C_OpenSession`, `C_FindObjectsInit`, ...)
//!   is simply not forwarded, so the real state is what a failed call leaves.
//! - **Events**, on a schedule or on demand: log out behind the caller's back; close
//!   every session; "remove" the token for a while (its slot answers
//!   `CKR_TOKEN_NOT_PRESENT` and disappears from `C_GetSlotList(TRUE)`,
//!   `C_GetSlotInfo` clears `CKF_TOKEN_PRESENT`, its old sessions answer
//!   `CKR_DEVICE_REMOVED`, and the real sessions are closed, logging out); make the
//!   object handles the proxy handed out stale.
//! - **Latency** per call, fixed or uniformly random in a range, to act like a network
//!   HSM.
//! - **Counters**, per slot: calls per function, injected faults per code, answers
//!   caused by an event's lasting state (a removed token, a stale handle) per code, and
//!   events per kind.
//!
//! Handles: the proxy hands out its own session and object handle numbers. Session
//! numbers are never reused, whatever the module underneath does (PKCS#11 allows a module
//! to reuse a closed session's number, which after a forced close-all would let a stale
//! handle reach another thread's session; SoftHSM2 2.6 happens to count up); object
//! numbers are what "stale handles" renumbers.
//!
//! # Configuration
//!
//! The spec is a small line format. Lines are separated by newlines or `;`, `#` starts
//! a comment, words are separated by spaces, options are `key=value` in any order:
//!
//! ```text
//! seed 42                                  # default seed of the rules that follow
//! module /usr/lib/softhsm/libsofthsm2.so   # the real module (needed before C_Initialize)
//!
//! latency 2ms                              # every call
//! latency C_Sign 1ms..5ms                  # uniform in a range; the most specific rule wins
//! latency 0 slot=3                         # none for slot 3
//!
//! fault C_Sign CKR_DEVICE_ERROR every=10   # calls 10, 20, 30, ... of C_Sign
//! fault * SESSION_CLOSED p=0.01            # any function, 1% of calls
//! fault C_SignInit KEY_HANDLE_INVALID every=3 after=5 limit=2 slot=1 name=stale-key
//! fault C_Sign USER_NOT_LOGGED_IN every=1 effect=none seed=7
//!
//! event logout every=500                   # at every 500th call
//! event close-all period=3s                # at the first call after every 3 s
//! event remove period=10s duration=500ms slot=1
//! event stale every=1000 name=renumber
//!
//! disable stale-key                        # rules and events by name
//! enable stale-key
//! clear faults                             # or events, latency, all (the default)
//! ```
//!
//! - Functions are named `C_Sign` or `Sign`, or `*` for all; `C_Initialize`,
//!   `C_Finalize` and `C_GetFunctionList` cannot be faulted or delayed.
//! - Codes are `CKR_` names (the prefix is optional, case does not matter) or numbers
//!   (`0x30`). Durations are `250us`, `2ms`, `3s` or `0`.
//! - `every=N` fires at the rule's N-th, 2N-th, ... matching call after the first
//!   `after` ones; `p=P` fires each call with probability P from the rule's own stream,
//!   seeded by `seed=` or the last `seed` line and the rule's text (not its slot). Call
//!   n of a rule fails or not as a pure function of the seed and n, whatever thread makes
//!   it, so one seed gives the same faulted call numbers on every run. `limit=N` stops
//!   a rule after N faults. When two rules fire on one call the earlier one wins; every
//!   matching rule counts every call.
//! - `slot=S` scopes a rule, event or latency to one slot (`slot=any` to none); a rule
//!   named like an existing one replaces it; `clear` clears the scope it is sent to.
//! - Events with `every=N` count the calls in their scope; `period=` events fire at the
//!   first call after their time is due (the proxy has no thread of its own). An event
//!   without a slot acts on every slot with a token.
//!
//! The proxy reads the file named by `PKCS11_FAULT_CONFIG`, then the inline spec in
//! `PKCS11_FAULT_SPEC`, once, when it is first used; [`Control`] applies more at any
//! time. A spec from the environment that does not parse makes `C_Initialize` fail
//! (with the reason on stderr): a test never runs without the faults it asked for.
//!
//! # Sharing the real module with the test kit
//!
//! PKCS#11 is initialised once per process. When a test process already opened
//! SoftHSM2 (the test kit provisions its tokens that way), the proxy's `dlopen` of the
//! same file returns that instance, its `C_Initialize` answers
//! `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and the proxy accepts it and shares the module:
//! tokens the kit made are visible through the proxy, and the proxy never finalises a
//! module it did not initialise. So: open SoftHSM2 (provision) first, then the proxy.
//!
//! # Example
//!
//! ```no_run
//! use p11_fault::{Control, Event, Func};
//! use p11_fault::p11_raw::{Module, SlotId};
//!
//! let path = p11_fault::build_proxy();
//! let control = Control::attach(&path)?;
//! control.apply("module /usr/lib/softhsm/libsofthsm2.so")?;
//! let module = Module::open(&path)?; // C_Initialize through the proxy
//! let slot: SlotId = module.slots(true)?[0];
//! control.apply_to_slot(slot, "seed 1\nfault C_Sign CKR_DEVICE_ERROR every=2")?;
//! control.trigger(Event::Logout, Some(slot))?;
//! let counters = control.counters(Some(slot))?;
//! assert_eq!(counters.events(p11_fault::EventKind::Logout), 1);
//! assert_eq!(counters.calls(Func::Sign), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threads and safety
//!
//! The proxy is called from many threads at once. Rules decide with atomics; the
//! tables of sessions and handles take short locks that are never held across a
//! forwarded call, with one exception: opening a session holds its slot's gate shared,
//! so that a close-all (which holds it exclusively) never races a half-registered
//! session. Before the proxy closes real sessions it waits until the calls already
//! inside them have returned. No panic crosses the FFI boundary: every entry point
//! catches it and answers `CKR_GENERAL_ERROR`. Alongside `p11-raw`, this is the only
//! crate of the workspace with `unsafe` code; every block says why it is sound.

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::undocumented_unsafe_blocks
)]

mod control;
mod engine;
pub mod exports;
mod forward;
mod functions;
mod locate;
mod real;
mod rng;
mod rules;
mod spec;
mod sync;
mod tables;
mod tally;

pub use control::{Control, ControlError, Counters, Event};
pub use engine::{CONFIG_ENV, SPEC_ENV};
pub use functions::Func;
pub use locate::{BuildError, MODULE_ENV, build_proxy, try_build_proxy};
/// The p11-raw this crate's control API speaks (its `SlotId`), for callers and examples.
pub use p11_raw;
pub use spec::{EventKind, SpecError};

/// Checks spec text without applying it (for a tool that writes a config file).
///
/// # Errors
/// The first line that does not parse.
pub fn check_spec(text: &str) -> Result<(), SpecError> {
    spec::parse(text, None).map(|_| ())
}
