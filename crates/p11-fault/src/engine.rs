//! The proxy's state and decisions: which call fails, which event fires, what the real
//! module must be made to agree with. Safe code; the FFI lives in [`crate::real`] and
//! [`crate::forward`].
//!
//! Every forwarded call goes through [`Engine::enter`]: count it, fire the events due,
//! answer for a removed token, sleep the latency, pick a fault. A fault is then made
//! true in the real module (see [`Engine::make_true`]) so that what the caller is told
//! is what it would find if it looked.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use cryptoki_sys::*;

use crate::functions::Func;
use crate::real::Real;
use crate::rules::RuleSet;
use crate::spec::{self, Directive, Effect, EventKind, FaultSpec};
use crate::sync::{lock, read, write};
use crate::tables::{InFlight, Objects, Removals, SessionEntry, Sessions, retire};
use crate::tally::Tallies;

/// The environment variable naming a spec file, read once when the proxy is loaded.
pub const CONFIG_ENV: &str = "PKCS11_FAULT_CONFIG";
/// The environment variable holding a spec inline (`;` separates lines), read after
/// the file.
pub const SPEC_ENV: &str = "PKCS11_FAULT_SPEC";

/// What a call names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Nothing (`C_GetInfo`, `C_GetSlotList`, `C_WaitForSlotEvent`).
    Module,
    /// A slot.
    Slot(CK_SLOT_ID),
    /// A session, by the proxy's handle.
    Session(CK_SESSION_HANDLE),
}

/// A call that got past [`Engine::enter`].
pub(crate) struct Call {
    pub(crate) real: &'static Real,
    pub(crate) slot: Option<CK_SLOT_ID>,
    pub(crate) session: Option<Arc<SessionEntry>>,
    /// The token is "removed" (only calls that still answer then get this far).
    pub(crate) removed: bool,
    /// The fault to inject instead of forwarding, if a rule fired.
    pub(crate) fault: Option<FaultSpec>,
}

impl Call {
    /// Starts the forwarded part of a session call, or says what a session that died
    /// meanwhile (an event, another thread's close-all) answers.
    pub(crate) fn begin<'a>(&self, entry: &'a SessionEntry) -> Result<InFlight<'a>, CK_RV> {
        entry.begin().ok_or_else(|| {
            if engine().removals.is_removed(entry.slot) {
                CKR_DEVICE_REMOVED
            } else {
                CKR_SESSION_HANDLE_INVALID
            }
        })
    }
}

#[derive(Default)]
struct Lifecycle {
    initialized: bool,
    /// Whether our `C_Initialize` of the real module succeeded (rather than finding it
    /// initialised by someone else in the process): only then do we finalise it.
    owns_real: bool,
}

/// The proxy, one per loaded copy of the library.
pub(crate) struct Engine {
    lifecycle: Mutex<Lifecycle>,
    initialized: AtomicBool,
    real: OnceLock<Real>,
    module_path: Mutex<Option<PathBuf>>,
    /// A spec from the environment that did not parse: every `C_Initialize` fails
    /// loudly rather than run without the faults the test asked for.
    env_error: Option<String>,
    rules: RwLock<Arc<RuleSet>>,
    pub(crate) sessions: Sessions,
    pub(crate) objects: Objects,
    pub(crate) removals: Removals,
    pub(crate) tallies: Tallies,
}

/// The process's proxy state, created (and the environment read) at first use.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::from_env)
}

impl Engine {
    fn from_env() -> Engine {
        let mut engine = Engine {
            lifecycle: Mutex::default(),
            initialized: AtomicBool::new(false),
            real: OnceLock::new(),
            module_path: Mutex::new(None),
            env_error: None,
            rules: RwLock::default(),
            sessions: Sessions::default(),
            objects: Objects::default(),
            removals: Removals::default(),
            tallies: Tallies::default(),
        };
        let mut text = String::new();
        if let Some(path) = std::env::var_os(CONFIG_ENV) {
            match std::fs::read_to_string(&path) {
                Ok(file) => text.push_str(&file),
                Err(e) => {
                    engine.env_error =
                        Some(format!("{CONFIG_ENV}={}: {e}", Path::new(&path).display()));
                }
            }
        }
        if let Some(inline) = std::env::var_os(SPEC_ENV) {
            text.push('\n');
            text.push_str(&inline.to_string_lossy());
        }
        if engine.env_error.is_none()
            && let Err(e) = engine.command(&text, None)
        {
            engine.env_error = Some(e);
        }
        engine
    }

    /// Applies spec text (the config format) at run time; rules without `slot=` get
    /// `slot`. All or nothing for parse errors.
    ///
    /// # Errors
    /// The parse error, an unknown rule name, or a `module` line naming another module
    /// than the one already loaded.
    pub(crate) fn command(&self, text: &str, slot: Option<u64>) -> Result<(), String> {
        let directives = spec::parse(text, slot).map_err(|e| e.to_string())?;
        let mut rules = write(&self.rules);
        let mut next = RuleSet::clone(&rules);
        for directive in directives {
            if let Directive::Module(path) = &directive {
                if let Some(real) = self.real.get()
                    && real.path != *path
                {
                    return Err(format!(
                        "the real module is already {}; it cannot change to {}",
                        real.path.display(),
                        path.display()
                    ));
                }
                *lock(&self.module_path) = Some(path.clone());
            }
            next.apply(directive)?;
        }
        *rules = Arc::new(next);
        Ok(())
    }

    fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&read(&self.rules))
    }

    pub(crate) fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::SeqCst)
    }

    /// The proxy's `C_Initialize`: load the real module (first time only), initialise
    /// it with the caller's arguments, and accept `CKR_CRYPTOKI_ALREADY_INITIALIZED`
    /// (someone else in the process, typically the test kit, shares it with us).
    ///
    /// # Safety
    /// `args` is NULL or a valid `CK_C_INITIALIZE_ARGS`, as the proxy's caller promised.
    pub(crate) unsafe fn initialize(
        &self,
        args: *mut c_void,
        own: *const CK_FUNCTION_LIST,
    ) -> CK_RV {
        let mut life = lock(&self.lifecycle);
        self.tallies.of(None).call(Func::Initialize);
        if life.initialized {
            return CKR_CRYPTOKI_ALREADY_INITIALIZED;
        }
        if let Some(e) = &self.env_error {
            eprintln!("p11-fault: bad fault spec from the environment: {e}");
            return CKR_GENERAL_ERROR;
        }
        let real = match self.real.get() {
            Some(real) => real,
            None => {
                let Some(path) = lock(&self.module_path).clone() else {
                    eprintln!(
                        "p11-fault: no real module: put `module PATH` in {CONFIG_ENV} or \
                         {SPEC_ENV}, or send it with Control::apply before the first \
                         C_Initialize"
                    );
                    return CKR_GENERAL_ERROR;
                };
                match Real::load(&path, own) {
                    Ok(real) => self.real.get_or_init(|| real),
                    Err(e) => {
                        eprintln!("p11-fault: {e}");
                        return CKR_GENERAL_ERROR;
                    }
                }
            }
        };
        // SAFETY: `args` is valid by this function's contract.
        let rv = unsafe { real.initialize(args) };
        life.owns_real = match rv {
            CKR_OK => true,
            CKR_CRYPTOKI_ALREADY_INITIALIZED => false,
            rv => return rv,
        };
        life.initialized = true;
        self.initialized.store(true, Ordering::SeqCst);
        CKR_OK
    }

    /// The proxy's `C_Finalize`: forget every session and handle, and finalise the
    /// real module only if we initialised it (never under another user's feet).
    pub(crate) fn finalize(&self) -> CK_RV {
        let mut life = lock(&self.lifecycle);
        self.tallies.of(None).call(Func::Finalize);
        if !life.initialized {
            return CKR_CRYPTOKI_NOT_INITIALIZED;
        }
        self.initialized.store(false, Ordering::SeqCst);
        life.initialized = false;
        let sessions = self.sessions.take_slot(None);
        retire(&sessions);
        self.objects.forget_slot(None);
        self.removals.clear();
        match self.real.get() {
            Some(real) if life.owns_real => real.finalize(),
            // Someone else's module: close what we opened, leave it initialised.
            Some(real) => {
                for entry in sessions {
                    real.close_session(entry.inner);
                }
                CKR_OK
            }
            None => CKR_OK,
        }
    }

    /// Admits a call: see the module docs. `Err` is the answer to give at once.
    pub(crate) fn enter(&'static self, func: Func, target: Target) -> Result<Call, CK_RV> {
        if !self.is_initialized() {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        let real = self.real.get().ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)?;
        let (slot, session) = match target {
            Target::Module => (None, None),
            Target::Slot(slot) => (Some(slot), None),
            Target::Session(outer) => match self.sessions.get(outer) {
                Some(entry) => (Some(entry.slot), Some(entry)),
                None => return Err(self.unknown_session(func, outer)),
            },
        };
        let tally = self.tallies.of(slot);
        tally.call(func);
        let rules = self.rules();
        for firing in rules.due_events(slot) {
            self.fire(real, firing.kind, firing.slot, firing.duration);
        }
        let removed = slot.is_some_and(|s| self.removals.is_removed(s));
        if removed && func != Func::GetSlotInfo {
            let rv = if session.is_some() {
                CKR_DEVICE_REMOVED
            } else {
                CKR_TOKEN_NOT_PRESENT
            };
            tally.answer(rv);
            return Err(rv);
        }
        let delay = rules.latency(func, slot);
        if delay > Duration::ZERO {
            std::thread::sleep(delay);
        }
        let fault = if removed {
            None
        } else {
            rules.fault(func, slot).cloned()
        };
        Ok(Call {
            real,
            slot,
            session,
            removed,
            fault,
        })
    }

    /// A handle the proxy does not know: a session a removal killed answers
    /// `CKR_DEVICE_REMOVED` while the token is out, anything else
    /// `CKR_SESSION_HANDLE_INVALID` (the proxy never reuses a handle).
    fn unknown_session(&self, func: Func, outer: CK_SESSION_HANDLE) -> CK_RV {
        match self.removals.session_slot(outer) {
            Some(slot) => {
                let tally = self.tallies.of(Some(slot));
                tally.call(func);
                tally.answer(CKR_DEVICE_REMOVED);
                CKR_DEVICE_REMOVED
            }
            None => {
                self.tallies.of(None).call(func);
                CKR_SESSION_HANDLE_INVALID
            }
        }
    }

    /// Counts a fault as delivered: only faults the caller actually receives are
    /// counted (a session that died between admission and the call answers for
    /// itself instead).
    pub(crate) fn count_fault(&self, call: &Call, fault: &FaultSpec) {
        self.tallies.of(call.slot).fault(fault.rv);
    }

    /// Makes an injected fault true in the real module, so the caller's view holds:
    /// a closed session is closed, a lost login is lost, a removed device took its
    /// sessions along, a stale handle is stale. The operation the call belonged to has
    /// already been ended by the caller of this function.
    pub(crate) fn make_true(&self, call: &Call, fault: &FaultSpec, objects: &[CK_OBJECT_HANDLE]) {
        if fault.effect == Effect::None {
            return;
        }
        match fault.rv {
            CKR_SESSION_CLOSED | CKR_SESSION_HANDLE_INVALID => {
                if let Some(entry) = &call.session
                    && let Some(entry) = self.sessions.remove(entry.outer)
                {
                    retire(std::slice::from_ref(&entry));
                    call.real.close_session(entry.inner);
                }
            }
            CKR_USER_NOT_LOGGED_IN => match (&call.session, call.slot) {
                (Some(entry), _) => {
                    // The caller's own session: no other thread may be using it.
                    if let Ok(_guard) = call.begin(entry) {
                        call.real.logout(entry.inner);
                    }
                }
                (None, Some(slot)) => {
                    self.logout(call.real, slot);
                }
                (None, None) => {}
            },
            CKR_DEVICE_REMOVED | CKR_TOKEN_NOT_PRESENT => {
                if let Some(slot) = call.slot {
                    self.close_all(call.real, slot);
                }
            }
            CKR_OBJECT_HANDLE_INVALID | CKR_KEY_HANDLE_INVALID => self.objects.forget(objects),
            _ => {}
        }
    }

    /// Runs an event now; `slot` `None` means every slot with a token (and, for
    /// `stale`, every handle). Answers the first failure, if any.
    pub(crate) fn fire(
        &self,
        real: &Real,
        kind: EventKind,
        slot: Option<CK_SLOT_ID>,
        duration: Duration,
    ) -> CK_RV {
        self.tallies.of(slot).event(kind);
        if kind == EventKind::StaleHandles {
            self.objects.forget_slot(slot);
            return CKR_OK;
        }
        let slots = match slot {
            Some(slot) => vec![slot],
            None => {
                let mut all = real.slot_list(true).unwrap_or_default();
                all.extend(self.sessions.slots());
                all.sort_unstable();
                all.dedup();
                all
            }
        };
        let mut first_failure = CKR_OK;
        for slot in slots {
            let rv = match kind {
                EventKind::Logout => self.logout(real, slot),
                EventKind::CloseAll => self.close_all(real, slot),
                EventKind::Remove => self.remove(real, slot, duration),
                EventKind::Insert => {
                    self.removals.end(slot);
                    CKR_OK
                }
                EventKind::StaleHandles => CKR_OK,
            };
            if first_failure == CKR_OK {
                first_failure = rv;
            }
        }
        first_failure
    }

    /// Logs the application out of the token, through a private session so that no
    /// caller's session is used by two threads. Not being logged in counts as done.
    fn logout(&self, real: &Real, slot: CK_SLOT_ID) -> CK_RV {
        let gate = self.sessions.gate(slot);
        let _shared = read(&gate);
        let session = match real.open_session(slot) {
            Ok(session) => session,
            Err(rv) => return rv,
        };
        let rv = real.logout(session);
        real.close_session(session);
        if rv == CKR_USER_NOT_LOGGED_IN {
            CKR_OK
        } else {
            rv
        }
    }

    /// Closes every session with the token, after the calls in flight on them return.
    pub(crate) fn close_all(&self, real: &Real, slot: CK_SLOT_ID) -> CK_RV {
        let gate = self.sessions.gate(slot);
        let _exclusive = write(&gate);
        let entries = self.sessions.take_slot(Some(slot));
        retire(&entries);
        real.close_all(slot)
    }

    /// "Removes" the token: from now its slot answers as empty, its sessions as
    /// removed; its real sessions close (as after a real removal) and its handles go.
    fn remove(&self, real: &Real, slot: CK_SLOT_ID, duration: Duration) -> CK_RV {
        self.removals.start(slot, duration);
        self.objects.forget_slot(Some(slot));
        let gate = self.sessions.gate(slot);
        let _exclusive = write(&gate);
        let entries = self.sessions.take_slot(Some(slot));
        self.removals
            .add_sessions(slot, entries.iter().map(|e| e.outer));
        retire(&entries);
        match real.close_all(slot) {
            // Nothing to close is fine: the token is "out" either way.
            CKR_OK | CKR_SESSION_HANDLE_INVALID => CKR_OK,
            rv => rv,
        }
    }

    /// Registers a session the real module just opened, unless a close-all or removal
    /// of its slot got in the way (the caller holds the slot's gate shared, so none is
    /// running now; one may have run since the call was admitted).
    pub(crate) fn register_session(
        &self,
        real: &Real,
        slot: CK_SLOT_ID,
        inner: CK_SESSION_HANDLE,
    ) -> Result<CK_SESSION_HANDLE, CK_RV> {
        if self.removals.is_removed(slot) {
            real.close_session(inner);
            return Err(CKR_TOKEN_NOT_PRESENT);
        }
        Ok(self.sessions.insert(inner, slot))
    }

    /// Unregisters a session the caller closed (or found closed).
    pub(crate) fn forget_session(&self, outer: CK_SESSION_HANDLE) {
        self.sessions.remove(outer);
    }

    /// A control-API event, now.
    pub(crate) fn trigger(
        &self,
        kind: EventKind,
        slot: Option<CK_SLOT_ID>,
        duration: Duration,
    ) -> CK_RV {
        match (self.is_initialized(), self.real.get()) {
            (true, Some(real)) => self.fire(real, kind, slot, duration),
            _ => CKR_CRYPTOKI_NOT_INITIALIZED,
        }
    }
}
