//! The library's exported C symbols: `C_GetFunctionList`, and the control functions
//! [`crate::Control`] calls through the loaded library.
//!
//! Call these only through the loaded `cdylib` (as [`crate::Control`] and any PKCS#11
//! host do). The copies linked into a Rust program through the `rlib` act on that
//! program's own, separate proxy state, which no module handle ever reaches.

use std::time::Duration;

use cryptoki_sys::*;

use crate::engine::engine;
use crate::forward::{FUNCTION_LIST, guard};
use crate::spec::EventKind;

/// The version of the control functions' ABI; [`crate::Control::attach`] refuses a
/// library that answers another.
pub const ABI_VERSION: u32 = 1;

/// The `slot` argument meaning "no slot": unscoped rules, every slot, all counters.
pub const NO_SLOT: u64 = u64::MAX;

/// Status of the control functions: done.
pub const STATUS_OK: i32 = 0;
/// Status of the control functions: refused, the message is in the error buffer.
pub const STATUS_ERROR: i32 = 1;
/// Status of the control functions: the output buffer is too small, the length needed
/// is stored.
pub const STATUS_TOO_SMALL: i32 = 2;

fn scope(slot: u64) -> Option<u64> {
    (slot != NO_SLOT).then_some(slot)
}

/// Returns the proxy's function list (PKCS#11 v2.40).
///
/// # Safety
/// `list` is NULL (answered with `CKR_ARGUMENTS_BAD`) or a writable pointer slot. The
/// table it receives is read-only.
#[unsafe(no_mangle)]
#[allow(non_snake_case)] // the standard's name
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    // SAFETY: `list` is non-null and the caller's writable pointer slot. The table is
    // immutable static data; the standard forbids callers to write through the pointer,
    // whose `*mut` is only the C API's spelling.
    unsafe { *list = (&raw const FUNCTION_LIST).cast_mut() };
    CKR_OK
}

/// The control ABI version, [`ABI_VERSION`].
#[unsafe(no_mangle)]
pub extern "C" fn p11_fault_abi_version() -> u32 {
    ABI_VERSION
}

/// Applies spec text (UTF-8, the crate's config format) now; rules without `slot=` get
/// `slot` unless it is [`NO_SLOT`]. Returns [`STATUS_OK`], or [`STATUS_ERROR`] with the
/// message's UTF-8 bytes in `error` (truncated to `error_cap`) and its full length in
/// `*error_len`.
///
/// # Safety
/// `text` is readable for `len` bytes; `error` is writable for `error_cap` bytes (or
/// NULL with `error_cap` 0); `error_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn p11_fault_command(
    slot: u64,
    text: *const u8,
    len: usize,
    error: *mut u8,
    error_cap: usize,
    error_len: *mut usize,
) -> i32 {
    let outcome = std::panic::catch_unwind(|| {
        if text.is_null() && len > 0 {
            return Err("no spec text".to_owned());
        }
        let bytes = if len == 0 {
            &[][..]
        } else {
            // SAFETY: `text` is non-null and readable for `len` bytes by this function's
            // contract; we only read it during the call.
            unsafe { std::slice::from_raw_parts(text, len) }
        };
        let text = std::str::from_utf8(bytes).map_err(|e| format!("spec is not UTF-8: {e}"))?;
        engine().command(text, scope(slot))
    })
    .unwrap_or_else(|_| Err("the fault proxy panicked applying the spec".to_owned()));
    match outcome {
        Ok(()) => STATUS_OK,
        Err(message) => {
            let n = message.len().min(error_cap);
            if !error.is_null() && n > 0 {
                // SAFETY: `error` is writable for `error_cap` >= `n` bytes and does not
                // overlap our String.
                unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), error, n) };
            }
            if !error_len.is_null() {
                // SAFETY: `error_len` is non-null and writable by contract.
                unsafe { *error_len = message.len() };
            }
            STATUS_ERROR
        }
    }
}

/// Fires an event now: `kind` indexes logout, close-all, remove, insert, stale (in that
/// order); `slot` [`NO_SLOT`] means every slot; `millis` is how long a removal lasts.
/// Returns the first failure of the real module, or `CKR_ARGUMENTS_BAD` for an unknown
/// kind, or `CKR_CRYPTOKI_NOT_INITIALIZED` before `C_Initialize`.
#[unsafe(no_mangle)]
pub extern "C" fn p11_fault_trigger(kind: u32, slot: u64, millis: u64) -> CK_RV {
    let Some(kind) = usize::try_from(kind)
        .ok()
        .and_then(|k| EventKind::ALL.get(k).copied())
    else {
        return CKR_ARGUMENTS_BAD;
    };
    guard(|| engine().trigger(kind, scope(slot), Duration::from_millis(millis)))
}

/// Writes the counters of `slot` (every scope summed for [`NO_SLOT`]) as UTF-8 text
/// lines (`call C_Sign 12`, `fault 0x30 3`, `answer 0xe0 1`, `event logout 2`) into
/// `out` and their length into `*len`. Returns [`STATUS_OK`], [`STATUS_TOO_SMALL`] (with
/// the length needed in `*len`), or [`STATUS_ERROR`].
///
/// # Safety
/// `out` is writable for `cap` bytes (or NULL with `cap` 0); `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn p11_fault_counters(
    slot: u64,
    out: *mut u8,
    cap: usize,
    len: *mut usize,
) -> i32 {
    if len.is_null() {
        return STATUS_ERROR;
    }
    let Ok(text) = std::panic::catch_unwind(|| engine().tallies.render(scope(slot))) else {
        return STATUS_ERROR;
    };
    // SAFETY: `len` is non-null and writable by contract.
    unsafe { *len = text.len() };
    if text.len() > cap || (out.is_null() && !text.is_empty()) {
        return STATUS_TOO_SMALL;
    }
    if !text.is_empty() {
        // SAFETY: `out` is non-null and writable for `cap` >= `text.len()` bytes, and does
        // not overlap our String.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out, text.len()) };
    }
    STATUS_OK
}

/// Resets the counters of `slot`, or all of them for [`NO_SLOT`].
#[unsafe(no_mangle)]
pub extern "C" fn p11_fault_reset_counters(slot: u64) {
    let _ = std::panic::catch_unwind(|| engine().tallies.reset(scope(slot)));
}
