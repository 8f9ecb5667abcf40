//! Session management, login and random numbers.

use std::cell::Cell;
use std::fmt;

use cryptoki_sys::*;

use crate::error::{Error, Function, Result, check};
use crate::module::Module;
use crate::types::{SessionHandle, SessionInfo, SlotId, UserType};

/// An open session with a token. Closed when dropped.
///
/// **Threads**: a session is `Send` but not `Sync`: PKCS#11 forbids two threads using one
/// session at the same time, so a session moves between threads but is never shared.
/// Different sessions may be used concurrently (the module is initialised with
/// `CKF_OS_LOCKING_OK`, or our mutex serialises calls).
///
/// **Fitness**: a session remembers whether a call showed it broken (session closed,
/// device gone, device memory, an operation left active). [`Session::is_fit`] tells a pool
/// whether it may be handed out again.
pub struct Session {
    module: Module,
    slot: SlotId,
    handle: SessionHandle,
    /// `Cell` also makes the type `!Sync`, which is what PKCS#11 demands.
    fit: Cell<bool>,
    /// Set once `close` ran, so `Drop` does not close a second time.
    closed: Cell<bool>,
    /// While a signing operation is suspended ([`crate::SignOperation::suspend`]): the
    /// fitness it had before, which [`Session::resume_sign`] gives back.
    suspended: Cell<Option<bool>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("slot", &self.slot)
            .field("handle", &self.handle)
            .field("fit", &self.fit.get())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(module: Module, slot: SlotId, handle: SessionHandle) -> Session {
        Session {
            module,
            slot,
            handle,
            fit: Cell::new(true),
            closed: Cell::new(false),
            suspended: Cell::new(None),
        }
    }

    /// The module this session belongs to.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The slot of the session's token.
    pub fn slot(&self) -> SlotId {
        self.slot
    }

    /// The raw handle (for diagnostics and tests).
    pub fn handle(&self) -> SessionHandle {
        self.handle
    }

    /// Whether no call so far has shown this session broken.
    pub fn is_fit(&self) -> bool {
        self.fit.get()
    }

    /// Marks the session unfit for reuse (for example after an abandoned operation).
    pub fn mark_unfit(&self) {
        self.fit.set(false);
    }

    /// Marks a signing operation suspended: the session counts as unfit until it is
    /// resumed.
    pub(crate) fn suspend_signing(&self) {
        self.suspended.set(Some(self.fit.get()));
        self.fit.set(false);
    }

    /// Ends the suspension [`Session::suspend_signing`] began, if there is one: whether
    /// there was.
    pub(crate) fn end_suspension(&self) -> bool {
        match self.suspended.take() {
            Some(fit) => {
                self.fit.set(fit);
                true
            }
            None => false,
        }
    }

    /// Checks a return value, marking the session unfit when the code says it is broken.
    pub(crate) fn check(&self, function: Function, rv: CK_RV) -> Result<()> {
        let result = check(function, rv);
        if let Err(Error::Pkcs11 { rv, .. }) = &result
            && rv.breaks_session()
        {
            self.fit.set(false);
            // Broken while an operation waits: still broken once it is resumed.
            if self.suspended.get().is_some() {
                self.suspended.set(Some(false));
            }
        }
        result
    }

    /// Information about the session (`C_GetSessionInfo`); its state says whether the
    /// application is logged in.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_SESSION_HANDLE_INVALID` for a dead session.
    pub fn info(&self) -> Result<SessionInfo> {
        let f = self
            .module
            .function(Function::GetSessionInfo, |l| l.C_GetSessionInfo)?;
        let mut raw = CK_SESSION_INFO::default();
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: `raw` is a valid, writable CK_SESSION_INFO for the duration of the
            // call; the handle is a plain number.
            unsafe { f(self.handle.raw(), &mut raw) }
        };
        self.check(Function::GetSessionInfo, rv)?;
        Ok(SessionInfo::from_raw(&raw))
    }

    /// Logs in (`C_Login`). `pin` `None` uses the token's protected authentication path
    /// (a PIN pad). All sessions of the application share one login state: a second user
    /// login answers `CKR_USER_ALREADY_LOGGED_IN`.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_PIN_INCORRECT` or `CKR_USER_ALREADY_LOGGED_IN`.
    pub fn login(&self, user: UserType, pin: Option<&[u8]>) -> Result<()> {
        let f = self.module.function(Function::Login, |l| l.C_Login)?;
        let (ptr, len) = match pin {
            Some(pin) => (
                pin.as_ptr().cast_mut(),
                crate::attribute::ulong(pin.len(), "the PIN")?,
            ),
            None => (std::ptr::null_mut(), 0),
        };
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: the PIN (or NULL for a protected path) is read-only input of `len`
            // bytes that outlives the call; the module only reads it despite the *mut.
            unsafe { f(self.handle.raw(), user.raw(), ptr, len) }
        };
        self.check(Function::Login, rv)
    }

    /// Logs out (`C_Logout`): every session of the application with this token.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_USER_NOT_LOGGED_IN`.
    pub fn logout(&self) -> Result<()> {
        let f = self.module.function(Function::Logout, |l| l.C_Logout)?;
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: takes a plain handle.
            unsafe { f(self.handle.raw()) }
        };
        self.check(Function::Logout, rv)
    }

    /// Sets the user PIN (`C_InitPIN`); the security officer must be logged in on this
    /// read-write session.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_USER_NOT_LOGGED_IN`.
    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        let f = self.module.function(Function::InitPin, |l| l.C_InitPIN)?;
        let len = crate::attribute::ulong(pin.len(), "the PIN")?;
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: the PIN is read-only input of `len` bytes that outlives the call.
            unsafe { f(self.handle.raw(), pin.as_ptr().cast_mut(), len) }
        };
        self.check(Function::InitPin, rv)
    }

    /// Changes the PIN of whoever is logged in (`C_SetPIN`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_PIN_INCORRECT`.
    pub fn set_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        let f = self.module.function(Function::SetPin, |l| l.C_SetPIN)?;
        let old_len = crate::attribute::ulong(old.len(), "the old PIN")?;
        let new_len = crate::attribute::ulong(new.len(), "the new PIN")?;
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: both PINs are read-only inputs of the given lengths that outlive
            // the call.
            unsafe {
                f(
                    self.handle.raw(),
                    old.as_ptr().cast_mut(),
                    old_len,
                    new.as_ptr().cast_mut(),
                    new_len,
                )
            }
        };
        self.check(Function::SetPin, rv)
    }

    /// Random bytes from the token's generator (`C_GenerateRandom`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_RANDOM_NO_RNG`.
    pub fn generate_random(&self, len: usize) -> Result<Vec<u8>> {
        let f = self
            .module
            .function(Function::GenerateRandom, |l| l.C_GenerateRandom)?;
        let mut out = vec![0u8; len];
        let raw_len = crate::attribute::ulong(len, "the random buffer")?;
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: `out` is writable for exactly `raw_len` bytes during the call.
            unsafe { f(self.handle.raw(), out.as_mut_ptr(), raw_len) }
        };
        self.check(Function::GenerateRandom, rv)?;
        Ok(out)
    }

    /// Closes the session (`C_CloseSession`) and reports the module's answer; dropping a
    /// session does the same but can only log a failure.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_SESSION_HANDLE_INVALID` if it was already closed.
    pub fn close(self) -> Result<()> {
        // Closed (or found dead) either way: Drop must not close it again.
        self.closed.set(true);
        self.close_raw()
    }

    /// Drops a session known to be closed already (its handle answered
    /// `CKR_SESSION_HANDLE_INVALID`, or `C_CloseAllSessions` or a device reset ended it)
    /// without calling `C_CloseSession`: a module may have given the same handle number
    /// to a newer session by then, which a close would end instead.
    pub fn forget(self) {
        self.closed.set(true);
    }

    fn close_raw(&self) -> Result<()> {
        let f = self
            .module
            .function(Function::CloseSession, |l| l.C_CloseSession)?;
        let rv = {
            let _serial = self.module.serialize();
            // SAFETY: takes a plain handle, ours.
            unsafe { f(self.handle.raw()) }
        };
        check(Function::CloseSession, rv)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed.get() {
            return;
        }
        if let Err(err) = self.close_raw() {
            // A session closed behind our back (C_CloseAllSessions, a token removal) is
            // already gone: nothing to report.
            if !matches!(
                err.rv(),
                Some(
                    crate::Rv::SessionHandleInvalid
                        | crate::Rv::SessionClosed
                        | crate::Rv::CryptokiNotInitialized
                        | crate::Rv::DeviceRemoved
                        | crate::Rv::TokenNotPresent
                )
            ) {
                tracing::warn!(slot = %self.slot, error = %err, "closing a PKCS#11 session failed");
            }
        }
    }
}
