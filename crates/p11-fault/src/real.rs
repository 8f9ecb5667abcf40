//! The real module behind the proxy: loaded once with libloading, never unloaded, its
//! function list copied. The helpers here are the calls the proxy makes on its own
//! account (events, the effects of faults), each one FFI call per `unsafe` block.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use cryptoki_sys::*;

/// The shape shared by `C_Sign`, `C_Encrypt`, `C_Decrypt`, `C_Digest`, `C_SignRecover`
/// and `C_VerifyRecover`: data in, bytes out.
pub(crate) type OneShot = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut CK_BYTE,
    CK_ULONG,
    *mut CK_BYTE,
    *mut CK_ULONG,
) -> CK_RV;

/// The shape shared by `C_SignFinal`, `C_EncryptFinal`, `C_DecryptFinal` and
/// `C_DigestFinal`: bytes out.
pub(crate) type Final =
    unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG) -> CK_RV;

/// Room for any signature, digest or last block a test makes (RSA-8192 is 1 KiB).
const SCRATCH: usize = 16 * 1024;

/// A loaded real module.
pub(crate) struct Real {
    pub(crate) path: PathBuf,
    /// Copied from the module's own table, which is static in the never-unloaded library.
    pub(crate) fns: CK_FUNCTION_LIST,
}

impl Real {
    /// Loads the module at `path` and copies its function list. `own` is the proxy's
    /// own list: a spec naming the proxy as its own real module is refused rather than
    /// recursing forever.
    pub(crate) fn load(path: &Path, own: *const CK_FUNCTION_LIST) -> Result<Real, String> {
        // SAFETY: loading runs the library's initialisers; the real module is the one the
        // test's spec names, and we trust it as any PKCS#11 host trusts its module. The
        // library is leaked: never unloaded, so the copied pointers stay valid for the
        // life of the process.
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot load the real module {}: {e}", path.display()))?;
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // SAFETY: the type is the one the PKCS#11 standard gives C_GetFunctionList; the
        // library is 'static, so the symbol never dangles.
        let get = unsafe {
            library.get::<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV>(
                b"C_GetFunctionList\0",
            )
        }
        .map_err(|_| format!("{} exports no C_GetFunctionList", path.display()))?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: `list` is a writable pointer slot; the module stores its table's address.
        let rv = unsafe { get(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!(
                "{}: C_GetFunctionList answered {rv:#x}",
                path.display()
            ));
        }
        if std::ptr::eq(list.cast_const(), own) {
            return Err(format!(
                "{} is the fault proxy itself, not a real module",
                path.display()
            ));
        }
        // SAFETY: checked non-null; the standard says it points to the module's function
        // list, which lives as long as the (never unloaded) library. We copy it.
        let fns = unsafe { *list };
        Ok(Real {
            path: path.to_path_buf(),
            fns,
        })
    }

    /// `C_Initialize` with the caller's arguments.
    ///
    /// # Safety
    /// `args` is NULL or points to a `CK_C_INITIALIZE_ARGS` valid for the call, as the
    /// standard requires of the proxy's own caller.
    pub(crate) unsafe fn initialize(&self, args: *mut c_void) -> CK_RV {
        let Some(f) = self.fns.C_Initialize else {
            return CKR_GENERAL_ERROR;
        };
        // SAFETY: `args` is valid by this function's contract; the module reads it only
        // during the call.
        unsafe { f(args) }
    }

    /// `C_Finalize(NULL)`.
    pub(crate) fn finalize(&self) -> CK_RV {
        let Some(f) = self.fns.C_Finalize else {
            return CKR_GENERAL_ERROR;
        };
        // SAFETY: NULL is the only argument C_Finalize takes; the caller of the proxy's
        // C_Finalize promises no other thread is inside the module.
        unsafe { f(std::ptr::null_mut()) }
    }

    /// Opens a read-only session without callbacks, for the proxy's own use.
    pub(crate) fn open_session(&self, slot: CK_SLOT_ID) -> Result<CK_SESSION_HANDLE, CK_RV> {
        let f = self.fns.C_OpenSession.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        let mut handle: CK_SESSION_HANDLE = 0;
        // SAFETY: no application pointer, no notify callback; `handle` is writable for
        // the call.
        let rv = unsafe {
            f(
                slot,
                CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                &mut handle,
            )
        };
        if rv == CKR_OK { Ok(handle) } else { Err(rv) }
    }

    pub(crate) fn close_session(&self, session: CK_SESSION_HANDLE) -> CK_RV {
        let Some(f) = self.fns.C_CloseSession else {
            return CKR_FUNCTION_NOT_SUPPORTED;
        };
        // SAFETY: takes a plain handle.
        unsafe { f(session) }
    }

    pub(crate) fn close_all(&self, slot: CK_SLOT_ID) -> CK_RV {
        let Some(f) = self.fns.C_CloseAllSessions else {
            return CKR_FUNCTION_NOT_SUPPORTED;
        };
        // SAFETY: takes a plain slot id.
        unsafe { f(slot) }
    }

    pub(crate) fn logout(&self, session: CK_SESSION_HANDLE) -> CK_RV {
        let Some(f) = self.fns.C_Logout else {
            return CKR_FUNCTION_NOT_SUPPORTED;
        };
        // SAFETY: takes a plain handle.
        unsafe { f(session) }
    }

    /// The real slot list (`C_GetSlotList`), asked twice: count, then ids.
    pub(crate) fn slot_list(&self, present: bool) -> Result<Vec<CK_SLOT_ID>, CK_RV> {
        let f = self.fns.C_GetSlotList.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        let present = CK_BBOOL::from(present);
        for _ in 0..8 {
            let mut count: CK_ULONG = 0;
            // SAFETY: a NULL list asks for the count; `count` is writable.
            let rv = unsafe { f(present, std::ptr::null_mut(), &mut count) };
            if rv != CKR_OK {
                return Err(rv);
            }
            let mut slots: Vec<CK_SLOT_ID> = vec![0; count as usize];
            // SAFETY: `slots` has room for `count` ids; the module writes at most that
            // and stores how many it wrote.
            let rv = unsafe { f(present, slots.as_mut_ptr(), &mut count) };
            match rv {
                CKR_OK => {
                    slots.truncate(count as usize);
                    return Ok(slots);
                }
                // A token appeared between the two calls: ask again.
                CKR_BUFFER_TOO_SMALL => continue,
                rv => return Err(rv),
            }
        }
        Err(CKR_GENERAL_ERROR)
    }

    /// Ends an operation started on `session` by calling its one-shot function with the
    /// caller's input and our own output buffer: every answer but
    /// `CKR_BUFFER_TOO_SMALL` ends the operation (PKCS#11 v2.40, 5.2), so the result is
    /// thrown away and the caller's buffers stay untouched.
    ///
    /// # Safety
    /// `data` is readable for `len` bytes (or NULL with `len` 0) for the call, as the
    /// proxy's caller promised for the call being faulted.
    pub(crate) unsafe fn end_one_shot(
        &self,
        f: OneShot,
        session: CK_SESSION_HANDLE,
        data: *mut CK_BYTE,
        len: CK_ULONG,
    ) {
        let mut out = vec![0u8; SCRATCH];
        for _ in 0..2 {
            let mut out_len = out.len() as CK_ULONG;
            // SAFETY: `data` is valid by this function's contract and only read; `out` is
            // writable for `out_len` bytes during the call.
            let rv = unsafe { f(session, data, len, out.as_mut_ptr(), &mut out_len) };
            if rv != CKR_BUFFER_TOO_SMALL {
                return;
            }
            out.resize((out_len as usize).max(out.len() * 2), 0);
        }
    }

    /// Ends a multi-part operation by calling its final function with our own buffer.
    pub(crate) fn end_with_final(&self, f: Option<Final>, session: CK_SESSION_HANDLE) {
        let Some(f) = f else { return };
        let mut out = vec![0u8; SCRATCH];
        for _ in 0..2 {
            let mut out_len = out.len() as CK_ULONG;
            // SAFETY: `out` is writable for `out_len` bytes during the call.
            let rv = unsafe { f(session, out.as_mut_ptr(), &mut out_len) };
            if rv != CKR_BUFFER_TOO_SMALL {
                return;
            }
            out.resize((out_len as usize).max(out.len() * 2), 0);
        }
    }

    /// Ends a verification by finishing it with an empty signature, which fails and, as
    /// every `C_VerifyFinal` does, ends the operation.
    pub(crate) fn end_verify(&self, session: CK_SESSION_HANDLE) {
        let Some(f) = self.fns.C_VerifyFinal else {
            return;
        };
        let mut empty = [0u8; 1];
        // SAFETY: `empty` is a valid buffer; we pass length 0, so nothing is read.
        let _ = unsafe { f(session, empty.as_mut_ptr(), 0) };
    }
}
