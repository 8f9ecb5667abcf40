//! Signing: `C_SignInit`, then `C_Sign` or `C_SignUpdate`/`C_SignFinal`.

use cryptoki_sys::*;

use crate::attribute::ulong;
use crate::error::{Error, Function, Result};
use crate::mechanism::{Mechanism, RawMechanism};
use crate::session::Session;
use crate::types::{ObjectHandle, UserType};

/// How often a module may answer `CKR_BUFFER_TOO_SMALL` before we call it inconsistent.
const MAX_GROW: usize = 4;

/// A signing operation started by [`Session::sign_init`]. It ends with
/// [`SignOperation::sign`] or [`SignOperation::finish`]; dropped before that, it leaves
/// the operation active in the module (PKCS#11 v2.40 has no way to cancel it), so the
/// session is marked unfit and a pool will close it rather than reuse it.
#[derive(Debug)]
pub struct SignOperation<'s> {
    session: &'s mut Session,
    done: bool,
}

impl Session {
    /// Starts a signature with `key` (`C_SignInit`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_KEY_HANDLE_INVALID`, `CKR_MECHANISM_INVALID`,
    /// `CKR_USER_NOT_LOGGED_IN`.
    pub fn sign_init(
        &mut self,
        mechanism: &Mechanism,
        key: ObjectHandle,
    ) -> Result<SignOperation<'_>> {
        let f = self
            .module()
            .function(Function::SignInit, |l| l.C_SignInit)?;
        let mut raw = RawMechanism::new(mechanism);
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: the mechanism and its parameters live in `raw` for the call and are
            // only read; the handles are plain numbers.
            unsafe { f(self.handle().raw(), raw.as_raw(), key.raw()) }
        };
        self.check(Function::SignInit, rv)?;
        Ok(SignOperation {
            session: self,
            done: false,
        })
    }
}

impl Session {
    /// The signing operation [`SignOperation::suspend`] left active on this session,
    /// `None` if there is none.
    pub fn resume_sign(&mut self) -> Option<SignOperation<'_>> {
        // Not `then_some`: an operation built and dropped unresumed marks the session
        // unfit.
        if !self.end_suspension() {
            return None;
        }
        Some(SignOperation {
            session: self,
            done: false,
        })
    }
}

impl SignOperation<'_> {
    /// Leaves the operation active when this borrow of the session ends, for
    /// [`Session::resume_sign`] to finish: `C_SignInit` can then run before the data to
    /// sign exists. Until it is resumed the session counts as unfit ([`Session::is_fit`]),
    /// so a pool that gets it back un-resumed closes it, which ends the operation.
    pub fn suspend(mut self) {
        self.done = true;
        self.session.suspend_signing();
    }

    /// The context-specific login (`C_Login(CKU_CONTEXT_SPECIFIC)`) that keys with
    /// `CKA_ALWAYS_AUTHENTICATE` need between `C_SignInit` and each `C_Sign`.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_PIN_INCORRECT`; the operation stays active.
    pub fn login_context(&mut self, pin: &[u8]) -> Result<()> {
        self.session.login(UserType::ContextSpecific, Some(pin))
    }

    /// Signs `data` in one call (`C_Sign`) and ends the operation. `expected_len` is the
    /// signature's size as known from the key (modulus bytes for RSA, twice the field
    /// size for ECDSA), so one call suffices; 0 asks the module first. If the module
    /// answers `CKR_BUFFER_TOO_SMALL` the buffer grows to what it says and the call is
    /// repeated.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_DATA_LEN_RANGE` or `CKR_USER_NOT_LOGGED_IN`.
    pub fn sign(mut self, data: &[u8], expected_len: usize) -> Result<Vec<u8>> {
        let f = self
            .session
            .module()
            .function(Function::Sign, |l| l.C_Sign)?;
        let data_len = ulong(data.len(), "the data to sign")?;
        let session = self.session.handle().raw();
        let mut out = vec![0u8; expected_len];
        if expected_len == 0 {
            let mut len: CK_ULONG = 0;
            let rv = {
                let _serial = self.session.module().serialize();
                // SAFETY: a NULL output asks for the length only and keeps the operation
                // active; `data` is read-only input alive for the call.
                unsafe {
                    f(
                        session,
                        data.as_ptr().cast_mut(),
                        data_len,
                        std::ptr::null_mut(),
                        &mut len,
                    )
                }
            };
            self.finish_on_error(Function::Sign, rv)?;
            out.resize(len as usize, 0);
        }
        for _ in 0..MAX_GROW {
            let mut len = ulong(out.len(), "the signature buffer")?;
            let rv = {
                let _serial = self.session.module().serialize();
                // SAFETY: `out` is writable for `len` bytes and `data` readable for
                // `data_len` bytes, both alive for the call; the module writes at most
                // `len` bytes and stores the real length in `len`.
                unsafe {
                    f(
                        session,
                        data.as_ptr().cast_mut(),
                        data_len,
                        out.as_mut_ptr(),
                        &mut len,
                    )
                }
            };
            if rv == CKR_BUFFER_TOO_SMALL {
                // The operation is still active; `len` now holds the size needed.
                out.resize((len as usize).max(out.len() + 1), 0);
                continue;
            }
            self.done = true;
            self.session.check(Function::Sign, rv)?;
            return truncate(out, len, Function::Sign);
        }
        Err(Error::Inconsistent {
            function: Function::Sign,
            what: "the signature length kept growing",
        })
    }

    /// Feeds data to a multi-part signature (`C_SignUpdate`).
    ///
    /// # Errors
    /// The module's error; any error ends the operation.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        let f = self
            .session
            .module()
            .function(Function::SignUpdate, |l| l.C_SignUpdate)?;
        let len = ulong(data.len(), "the data to sign")?;
        let rv = {
            let _serial = self.session.module().serialize();
            // SAFETY: `data` is read-only input of `len` bytes alive for the call.
            unsafe { f(self.session.handle().raw(), data.as_ptr().cast_mut(), len) }
        };
        self.finish_on_error(Function::SignUpdate, rv)
    }

    /// Ends a multi-part signature (`C_SignFinal`) and returns it; `expected_len` as for
    /// [`SignOperation::sign`].
    ///
    /// # Errors
    /// The module's error.
    pub fn finish(mut self, expected_len: usize) -> Result<Vec<u8>> {
        let f = self
            .session
            .module()
            .function(Function::SignFinal, |l| l.C_SignFinal)?;
        let session = self.session.handle().raw();
        let mut out = vec![0u8; expected_len];
        if expected_len == 0 {
            let mut len: CK_ULONG = 0;
            let rv = {
                let _serial = self.session.module().serialize();
                // SAFETY: a NULL output asks for the length only; `len` is writable.
                unsafe { f(session, std::ptr::null_mut(), &mut len) }
            };
            self.finish_on_error(Function::SignFinal, rv)?;
            out.resize(len as usize, 0);
        }
        for _ in 0..MAX_GROW {
            let mut len = ulong(out.len(), "the signature buffer")?;
            let rv = {
                let _serial = self.session.module().serialize();
                // SAFETY: `out` is writable for `len` bytes for the call; the module
                // writes at most that and stores the real length in `len`.
                unsafe { f(session, out.as_mut_ptr(), &mut len) }
            };
            if rv == CKR_BUFFER_TOO_SMALL {
                out.resize((len as usize).max(out.len() + 1), 0);
                continue;
            }
            self.done = true;
            self.session.check(Function::SignFinal, rv)?;
            return truncate(out, len, Function::SignFinal);
        }
        Err(Error::Inconsistent {
            function: Function::SignFinal,
            what: "the signature length kept growing",
        })
    }

    /// Checks `rv`; an error ends the operation (the standard says so for every error
    /// but `CKR_BUFFER_TOO_SMALL`).
    fn finish_on_error(&mut self, function: Function, rv: CK_RV) -> Result<()> {
        let result = self.session.check(function, rv);
        if result.is_err() {
            self.done = true;
        }
        result
    }
}

fn truncate(mut out: Vec<u8>, len: CK_ULONG, function: Function) -> Result<Vec<u8>> {
    let len = len as usize;
    if len > out.len() {
        return Err(Error::Inconsistent {
            function,
            what: "a signature longer than its buffer",
        });
    }
    out.truncate(len);
    Ok(out)
}

impl Drop for SignOperation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.session.mark_unfit();
        }
    }
}
