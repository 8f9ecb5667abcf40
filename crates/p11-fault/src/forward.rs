//! The proxy's `CK_FUNCTION_LIST`: one `extern "C"` wrapper per PKCS#11 v2.40
//! function, in function-list order.
//!
//! This file is long on purpose: it is a flat table of 68 small wrappers, each the same
//! shape (admit the call, translate handles, forward or inject, translate back), and
//! splitting it by function group would only scatter the one rule they share. The
//! decisions live in [`crate::engine`]; here is only plumbing.
//!
//! Every wrapper runs inside [`guard`], which catches any panic so none crosses the FFI
//! boundary (the caller gets `CKR_GENERAL_ERROR`). Session handles and object handles
//! are the proxy's own numbers (see [`crate::tables`]); the real ones never reach the
//! caller. A module's `CK_NOTIFY` callback, if it ever called one, would see the real
//! session handle: SoftHSM2 never calls it.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::*;

use crate::engine::{Call, Target, engine};
use crate::functions::Func;
use crate::real::{Final, OneShot, Real};

/// The table handed out by `C_GetFunctionList`. Callers must treat it as read-only, as
/// the standard says; it is immutable static data.
pub(crate) static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(initialize),
    C_Finalize: Some(finalize),
    C_GetInfo: Some(get_info),
    C_GetFunctionList: Some(crate::exports::C_GetFunctionList),
    C_GetSlotList: Some(get_slot_list),
    C_GetSlotInfo: Some(get_slot_info),
    C_GetTokenInfo: Some(get_token_info),
    C_GetMechanismList: Some(get_mechanism_list),
    C_GetMechanismInfo: Some(get_mechanism_info),
    C_InitToken: Some(init_token),
    C_InitPIN: Some(init_pin),
    C_SetPIN: Some(set_pin),
    C_OpenSession: Some(open_session),
    C_CloseSession: Some(close_session),
    C_CloseAllSessions: Some(close_all_sessions),
    C_GetSessionInfo: Some(get_session_info),
    C_GetOperationState: Some(get_operation_state),
    C_SetOperationState: Some(set_operation_state),
    C_Login: Some(login),
    C_Logout: Some(logout),
    C_CreateObject: Some(create_object),
    C_CopyObject: Some(copy_object),
    C_DestroyObject: Some(destroy_object),
    C_GetObjectSize: Some(get_object_size),
    C_GetAttributeValue: Some(get_attribute_value),
    C_SetAttributeValue: Some(set_attribute_value),
    C_FindObjectsInit: Some(find_objects_init),
    C_FindObjects: Some(find_objects),
    C_FindObjectsFinal: Some(find_objects_final),
    C_EncryptInit: Some(encrypt_init),
    C_Encrypt: Some(encrypt),
    C_EncryptUpdate: Some(encrypt_update),
    C_EncryptFinal: Some(encrypt_final),
    C_DecryptInit: Some(decrypt_init),
    C_Decrypt: Some(decrypt),
    C_DecryptUpdate: Some(decrypt_update),
    C_DecryptFinal: Some(decrypt_final),
    C_DigestInit: Some(digest_init),
    C_Digest: Some(digest),
    C_DigestUpdate: Some(digest_update),
    C_DigestKey: Some(digest_key),
    C_DigestFinal: Some(digest_final),
    C_SignInit: Some(sign_init),
    C_Sign: Some(sign),
    C_SignUpdate: Some(sign_update),
    C_SignFinal: Some(sign_final),
    C_SignRecoverInit: Some(sign_recover_init),
    C_SignRecover: Some(sign_recover),
    C_VerifyInit: Some(verify_init),
    C_Verify: Some(verify),
    C_VerifyUpdate: Some(verify_update),
    C_VerifyFinal: Some(verify_final),
    C_VerifyRecoverInit: Some(verify_recover_init),
    C_VerifyRecover: Some(verify_recover),
    C_DigestEncryptUpdate: Some(digest_encrypt_update),
    C_DecryptDigestUpdate: Some(decrypt_digest_update),
    C_SignEncryptUpdate: Some(sign_encrypt_update),
    C_DecryptVerifyUpdate: Some(decrypt_verify_update),
    C_GenerateKey: Some(generate_key),
    C_GenerateKeyPair: Some(generate_key_pair),
    C_WrapKey: Some(wrap_key),
    C_UnwrapKey: Some(unwrap_key),
    C_DeriveKey: Some(derive_key),
    C_SeedRandom: Some(seed_random),
    C_GenerateRandom: Some(generate_random),
    C_GetFunctionStatus: Some(get_function_status),
    C_CancelFunction: Some(cancel_function),
    C_WaitForSlotEvent: Some(wait_for_slot_event),
};

// ---------------------------------------------------------------------------------------
// Plumbing shared by the wrappers.

/// Runs a wrapper's body, turning a panic into `CKR_GENERAL_ERROR` so that it never
/// unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> CK_RV) -> CK_RV {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(CKR_GENERAL_ERROR)
}

/// The real module's entry for a function, or `CKR_FUNCTION_NOT_SUPPORTED` from the
/// enclosing closure when the module has none.
macro_rules! real_fn {
    ($call:expr, $name:ident) => {
        match $call.real.fns.$name {
            Some(f) => f,
            None => return CKR_FUNCTION_NOT_SUPPORTED,
        }
    };
}

/// Unwraps a `Result<T, CK_RV>`, returning the code from the enclosing closure.
macro_rules! attempt {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(rv) => return rv,
        }
    };
}

/// A call that names no slot.
fn module_call(func: Func, forward: impl FnOnce(&Call) -> CK_RV) -> CK_RV {
    guard(|| {
        let engine = engine();
        let call = attempt!(engine.enter(func, Target::Module));
        match &call.fault {
            Some(fault) => {
                engine.count_fault(&call, fault);
                engine.make_true(&call, fault, &[]);
                fault.rv
            }
            None => forward(&call),
        }
    })
}

/// A call that names a slot.
fn slot_call(func: Func, slot: CK_SLOT_ID, forward: impl FnOnce(&Call) -> CK_RV) -> CK_RV {
    guard(|| {
        let engine = engine();
        let call = attempt!(engine.enter(func, Target::Slot(slot)));
        match &call.fault {
            Some(fault) => {
                engine.count_fault(&call, fault);
                engine.make_true(&call, fault, &[]);
                fault.rv
            }
            None => forward(&call),
        }
    })
}

/// A call on a session. `objects` are the proxy object handles it names (a stale-handle
/// fault makes them stale for real); `end` ends the operation the call belongs to when
/// a fault is injected instead (every error but `CKR_BUFFER_TOO_SMALL` ends it, says the
/// standard, so the real module must agree). `forward` gets the real session handle.
fn session_call(
    func: Func,
    session: CK_SESSION_HANDLE,
    objects: &[CK_OBJECT_HANDLE],
    end: impl FnOnce(&Real, CK_SESSION_HANDLE),
    forward: impl FnOnce(&Call, CK_SESSION_HANDLE) -> CK_RV,
) -> CK_RV {
    guard(|| {
        let engine = engine();
        let call = attempt!(engine.enter(func, Target::Session(session)));
        let Some(entry) = call.session.clone() else {
            return CKR_GENERAL_ERROR;
        };
        let in_flight = attempt!(call.begin(&entry));
        match &call.fault {
            Some(fault) => {
                engine.count_fault(&call, fault);
                end(call.real, entry.inner);
                drop(in_flight);
                engine.make_true(&call, fault, objects);
                fault.rv
            }
            None => forward(&call, entry.inner),
        }
    })
}

/// For calls that start or belong to no operation.
fn no_operation(_: &Real, _: CK_SESSION_HANDLE) {}

/// The real handle behind a proxy object handle, or `stale` (counted as an answer).
fn object(call: &Call, outer: CK_OBJECT_HANDLE, stale: CK_RV) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    engine().objects.inner(outer).ok_or_else(|| {
        engine().tallies.of(call.slot).answer(stale);
        stale
    })
}

/// The proxy handle for a real object handle the module just gave out.
fn publish(call: &Call, inner: CK_OBJECT_HANDLE) -> CK_OBJECT_HANDLE {
    engine()
        .objects
        .outer(call.slot.unwrap_or(CK_UNAVAILABLE_INFORMATION), inner)
}

/// Ends a one-shot operation with the caller's input (see [`Real::end_one_shot`]);
/// `pick` chooses the function from the real module's list.
///
/// # Safety
/// `data` is readable for `len` bytes, as the caller of the faulted call promised.
unsafe fn end_one_shot(
    pick: fn(&Real) -> Option<OneShot>,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> impl FnOnce(&Real, CK_SESSION_HANDLE) {
    move |real: &Real, session: CK_SESSION_HANDLE| {
        if let Some(f) = pick(real) {
            // SAFETY: `data` is valid for `len` bytes by this function's contract, for
            // the duration of the faulted call, inside which this runs.
            unsafe { real.end_one_shot(f, session, data, len) }
        }
    }
}

/// Ends a multi-part operation with its final function(s).
fn end_with(
    finals: &'static [fn(&Real) -> Option<Final>],
) -> impl FnOnce(&Real, CK_SESSION_HANDLE) {
    move |real: &Real, session: CK_SESSION_HANDLE| {
        for pick in finals {
            real.end_with_final(pick(real), session);
        }
    }
}

fn sign_final_fn(real: &Real) -> Option<Final> {
    real.fns.C_SignFinal
}
fn encrypt_final_fn(real: &Real) -> Option<Final> {
    real.fns.C_EncryptFinal
}
fn decrypt_final_fn(real: &Real) -> Option<Final> {
    real.fns.C_DecryptFinal
}
fn digest_final_fn(real: &Real) -> Option<Final> {
    real.fns.C_DigestFinal
}

fn end_verify(real: &Real, session: CK_SESSION_HANDLE) {
    real.end_verify(session);
}

// ---------------------------------------------------------------------------------------
// General purpose, slots and tokens.

unsafe extern "C" fn initialize(args: *mut c_void) -> CK_RV {
    // SAFETY: `args` is NULL or a valid CK_C_INITIALIZE_ARGS, the caller's promise to
    // any PKCS#11 module; it is forwarded as is.
    guard(|| unsafe { engine().initialize(args, &FUNCTION_LIST) })
}

unsafe extern "C" fn finalize(reserved: *mut c_void) -> CK_RV {
    if !reserved.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    guard(|| engine().finalize())
}

unsafe extern "C" fn get_info(info: *mut CK_INFO) -> CK_RV {
    module_call(Func::GetInfo, |call| {
        let f = real_fn!(call, C_GetInfo);
        // SAFETY: `info` is the caller's writable CK_INFO, forwarded as is.
        unsafe { f(info) }
    })
}

unsafe extern "C" fn get_slot_list(
    token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    module_call(Func::GetSlotList, |call| {
        if count.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        let present = token_present != CK_FALSE;
        let mut slots = attempt!(call.real.slot_list(present));
        if present {
            slots.retain(|&slot| !engine().removals.is_removed(slot));
        }
        let needed = slots.len() as CK_ULONG;
        // SAFETY: `count` is non-null and, by the standard, points to a CK_ULONG the
        // caller lets us read and write.
        let room = unsafe { *count };
        // SAFETY: as above.
        unsafe { *count = needed };
        if list.is_null() {
            return CKR_OK;
        }
        if room < needed {
            return CKR_BUFFER_TOO_SMALL;
        }
        // SAFETY: the caller's `list` has room for `room` >= `needed` ids (the standard's
        // contract for a non-null list) and does not overlap our Vec.
        unsafe { std::ptr::copy_nonoverlapping(slots.as_ptr(), list, slots.len()) };
        CKR_OK
    })
}

unsafe extern "C" fn get_slot_info(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    slot_call(Func::GetSlotInfo, slot, |call| {
        let f = real_fn!(call, C_GetSlotInfo);
        // SAFETY: `info` is the caller's writable CK_SLOT_INFO, forwarded as is.
        let rv = unsafe { f(slot, info) };
        if rv == CKR_OK && call.removed && !info.is_null() {
            // SAFETY: the module just filled `*info`, which the caller owns.
            unsafe { (*info).flags &= !CKF_TOKEN_PRESENT };
        }
        rv
    })
}

unsafe extern "C" fn get_token_info(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    slot_call(Func::GetTokenInfo, slot, |call| {
        let f = real_fn!(call, C_GetTokenInfo);
        // SAFETY: `info` is the caller's writable CK_TOKEN_INFO, forwarded as is.
        unsafe { f(slot, info) }
    })
}

unsafe extern "C" fn get_mechanism_list(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    slot_call(Func::GetMechanismList, slot, |call| {
        let f = real_fn!(call, C_GetMechanismList);
        // SAFETY: the caller's list (or NULL) and count, forwarded as is.
        unsafe { f(slot, list, count) }
    })
}

unsafe extern "C" fn get_mechanism_info(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    slot_call(Func::GetMechanismInfo, slot, |call| {
        let f = real_fn!(call, C_GetMechanismInfo);
        // SAFETY: `info` is the caller's writable CK_MECHANISM_INFO, forwarded as is.
        unsafe { f(slot, mechanism, info) }
    })
}

unsafe extern "C" fn init_token(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    slot_call(Func::InitToken, slot, |call| {
        let f = real_fn!(call, C_InitToken);
        // SAFETY: the caller's PIN and 32-byte label, forwarded as is.
        unsafe { f(slot, pin, pin_len, label) }
    })
}

unsafe extern "C" fn init_pin(
    session: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    session_call(Func::InitPin, session, &[], no_operation, |call, inner| {
        let f = real_fn!(call, C_InitPIN);
        // SAFETY: the caller's PIN, forwarded as is.
        unsafe { f(inner, pin, pin_len) }
    })
}

unsafe extern "C" fn set_pin(
    session: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    session_call(Func::SetPin, session, &[], no_operation, |call, inner| {
        let f = real_fn!(call, C_SetPIN);
        // SAFETY: the caller's PINs, forwarded as is.
        unsafe { f(inner, old, old_len, new, new_len) }
    })
}

// ---------------------------------------------------------------------------------------
// Sessions and login.

unsafe extern "C" fn open_session(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    application: *mut c_void,
    notify: CK_NOTIFY,
    out: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    slot_call(Func::OpenSession, slot, |call| {
        if out.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        let f = real_fn!(call, C_OpenSession);
        let engine = engine();
        // Shared: a close-all of this slot waits until the new session is registered.
        let gate = engine.sessions.gate(slot);
        let _shared = crate::sync::read(&gate);
        let mut inner: CK_SESSION_HANDLE = 0;
        // SAFETY: the caller's application pointer and callback are passed on untouched;
        // `inner` is writable for the call.
        let rv = unsafe { f(slot, flags, application, notify, &mut inner) };
        if rv != CKR_OK {
            return rv;
        }
        let outer = attempt!(engine.register_session(call.real, slot, inner));
        // SAFETY: `out` is non-null and the caller's writable handle slot.
        unsafe { *out = outer };
        CKR_OK
    })
}

unsafe extern "C" fn close_session(session: CK_SESSION_HANDLE) -> CK_RV {
    session_call(
        Func::CloseSession,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_CloseSession);
            // SAFETY: takes a plain handle.
            let rv = unsafe { f(inner) };
            if matches!(rv, CKR_OK | CKR_SESSION_CLOSED | CKR_SESSION_HANDLE_INVALID) {
                engine().forget_session(session);
            }
            rv
        },
    )
}

unsafe extern "C" fn close_all_sessions(slot: CK_SLOT_ID) -> CK_RV {
    slot_call(Func::CloseAllSessions, slot, |call| {
        engine().close_all(call.real, slot)
    })
}

unsafe extern "C" fn get_session_info(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    session_call(
        Func::GetSessionInfo,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GetSessionInfo);
            // SAFETY: `info` is the caller's writable CK_SESSION_INFO, forwarded as is.
            unsafe { f(inner, info) }
        },
    )
}

unsafe extern "C" fn get_operation_state(
    session: CK_SESSION_HANDLE,
    state: *mut CK_BYTE,
    len: *mut CK_ULONG,
) -> CK_RV {
    session_call(
        Func::GetOperationState,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GetOperationState);
            // SAFETY: the caller's buffer (or NULL) and length, forwarded as is.
            unsafe { f(inner, state, len) }
        },
    )
}

unsafe extern "C" fn set_operation_state(
    session: CK_SESSION_HANDLE,
    state: *mut CK_BYTE,
    len: CK_ULONG,
    encryption_key: CK_OBJECT_HANDLE,
    authentication_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let keys = [encryption_key, authentication_key];
    session_call(
        Func::SetOperationState,
        session,
        &keys,
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_SetOperationState);
            let encryption_key = attempt!(object(call, encryption_key, CKR_KEY_HANDLE_INVALID));
            let authentication_key =
                attempt!(object(call, authentication_key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's saved state, forwarded as is; handles are plain numbers.
            unsafe { f(inner, state, len, encryption_key, authentication_key) }
        },
    )
}

unsafe extern "C" fn login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    session_call(Func::Login, session, &[], no_operation, |call, inner| {
        let f = real_fn!(call, C_Login);
        // SAFETY: the caller's PIN (or NULL for a protected path), forwarded as is.
        unsafe { f(inner, user, pin, pin_len) }
    })
}

unsafe extern "C" fn logout(session: CK_SESSION_HANDLE) -> CK_RV {
    session_call(Func::Logout, session, &[], no_operation, |call, inner| {
        let f = real_fn!(call, C_Logout);
        // SAFETY: takes a plain handle.
        unsafe { f(inner) }
    })
}

// ---------------------------------------------------------------------------------------
// Objects.

unsafe extern "C" fn create_object(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::CreateObject,
        session,
        &[],
        no_operation,
        |call, inner| {
            if out.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_CreateObject);
            let mut object: CK_OBJECT_HANDLE = 0;
            // SAFETY: the caller's template, forwarded as is; `object` is writable.
            let rv = unsafe { f(inner, template, count, &mut object) };
            if rv == CKR_OK {
                // SAFETY: `out` is non-null and the caller's writable handle slot.
                unsafe { *out = publish(call, object) };
            }
            rv
        },
    )
}

unsafe extern "C" fn copy_object(
    session: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::CopyObject,
        session,
        &[object_handle],
        no_operation,
        |call, inner| {
            if out.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_CopyObject);
            let source = attempt!(object(call, object_handle, CKR_OBJECT_HANDLE_INVALID));
            let mut copy: CK_OBJECT_HANDLE = 0;
            // SAFETY: the caller's template, forwarded as is; `copy` is writable.
            let rv = unsafe { f(inner, source, template, count, &mut copy) };
            if rv == CKR_OK {
                // SAFETY: `out` is non-null and the caller's writable handle slot.
                unsafe { *out = publish(call, copy) };
            }
            rv
        },
    )
}

unsafe extern "C" fn destroy_object(
    session: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::DestroyObject,
        session,
        &[object_handle],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_DestroyObject);
            let target = attempt!(object(call, object_handle, CKR_OBJECT_HANDLE_INVALID));
            // SAFETY: takes plain handles.
            let rv = unsafe { f(inner, target) };
            if rv == CKR_OK {
                engine().objects.forget(&[object_handle]);
            }
            rv
        },
    )
}

unsafe extern "C" fn get_object_size(
    session: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    session_call(
        Func::GetObjectSize,
        session,
        &[object_handle],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GetObjectSize);
            let target = attempt!(object(call, object_handle, CKR_OBJECT_HANDLE_INVALID));
            // SAFETY: `size` is the caller's writable CK_ULONG, forwarded as is.
            unsafe { f(inner, target, size) }
        },
    )
}

unsafe extern "C" fn get_attribute_value(
    session: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::GetAttributeValue,
        session,
        &[object_handle],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GetAttributeValue);
            let target = attempt!(object(call, object_handle, CKR_OBJECT_HANDLE_INVALID));
            // SAFETY: the caller's template and its buffers, forwarded as is.
            unsafe { f(inner, target, template, count) }
        },
    )
}

unsafe extern "C" fn set_attribute_value(
    session: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::SetAttributeValue,
        session,
        &[object_handle],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_SetAttributeValue);
            let target = attempt!(object(call, object_handle, CKR_OBJECT_HANDLE_INVALID));
            // SAFETY: the caller's template, forwarded as is.
            unsafe { f(inner, target, template, count) }
        },
    )
}

unsafe extern "C" fn find_objects_init(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::FindObjectsInit,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_FindObjectsInit);
            // SAFETY: the caller's template, forwarded as is.
            unsafe { f(inner, template, count) }
        },
    )
}

unsafe extern "C" fn find_objects(
    session: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    found: *mut CK_ULONG,
) -> CK_RV {
    // A failed C_FindObjects does not end the search (the standard does not say it
    // does), so a fault here leaves it for the caller's C_FindObjectsFinal.
    session_call(
        Func::FindObjects,
        session,
        &[],
        no_operation,
        |call, inner| {
            if out.is_null() || found.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_FindObjects);
            // SAFETY: the caller's array of `max` handles and its count, forwarded as is.
            let rv = unsafe { f(inner, out, max, found) };
            if rv != CKR_OK {
                return rv;
            }
            // SAFETY: `found` is non-null and the module just wrote it.
            let n = unsafe { *found };
            if n > max {
                return CKR_GENERAL_ERROR;
            }
            // SAFETY: the module wrote `n` <= `max` handles into the caller's array of
            // `max`, which we own for the rest of this call; we renumber them in place.
            let handles = unsafe { std::slice::from_raw_parts_mut(out, n as usize) };
            for handle in handles {
                *handle = publish(call, *handle);
            }
            CKR_OK
        },
    )
}

unsafe extern "C" fn find_objects_final(session: CK_SESSION_HANDLE) -> CK_RV {
    session_call(
        Func::FindObjectsFinal,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_FindObjectsFinal);
            // SAFETY: takes a plain handle.
            unsafe { f(inner) }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Encryption and decryption.

unsafe extern "C" fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::EncryptInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_EncryptInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `data` is readable for `len` bytes for this call, the caller's promise.
    let end = unsafe { end_one_shot(|r| r.fns.C_Encrypt, data, len) };
    session_call(Func::Encrypt, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_Encrypt);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, out, out_len) }
    })
}

unsafe extern "C" fn encrypt_update(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[encrypt_final_fn]);
    session_call(Func::EncryptUpdate, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_EncryptUpdate);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, out, out_len) }
    })
}

unsafe extern "C" fn encrypt_final(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[encrypt_final_fn]);
    session_call(Func::EncryptFinal, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_EncryptFinal);
        // SAFETY: the caller's buffer (or NULL) and length, forwarded as is.
        unsafe { f(inner, out, out_len) }
    })
}

unsafe extern "C" fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::DecryptInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_DecryptInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn decrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `data` is readable for `len` bytes for this call, the caller's promise.
    let end = unsafe { end_one_shot(|r| r.fns.C_Decrypt, data, len) };
    session_call(Func::Decrypt, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_Decrypt);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, out, out_len) }
    })
}

unsafe extern "C" fn decrypt_update(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[decrypt_final_fn]);
    session_call(Func::DecryptUpdate, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_DecryptUpdate);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, out, out_len) }
    })
}

unsafe extern "C" fn decrypt_final(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[decrypt_final_fn]);
    session_call(Func::DecryptFinal, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_DecryptFinal);
        // SAFETY: the caller's buffer (or NULL) and length, forwarded as is.
        unsafe { f(inner, out, out_len) }
    })
}

// ---------------------------------------------------------------------------------------
// Digests.

unsafe extern "C" fn digest_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
) -> CK_RV {
    session_call(
        Func::DigestInit,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_DigestInit);
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism) }
        },
    )
}

unsafe extern "C" fn digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `data` is readable for `len` bytes for this call, the caller's promise.
    let end = unsafe { end_one_shot(|r| r.fns.C_Digest, data, len) };
    session_call(Func::Digest, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_Digest);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, out, out_len) }
    })
}

unsafe extern "C" fn digest_update(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    let end = end_with(&[digest_final_fn]);
    session_call(Func::DigestUpdate, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_DigestUpdate);
        // SAFETY: the caller's data, forwarded as is.
        unsafe { f(inner, data, len) }
    })
}

unsafe extern "C" fn digest_key(session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    let end = end_with(&[digest_final_fn]);
    session_call(Func::DigestKey, session, &[key], end, |call, inner| {
        let f = real_fn!(call, C_DigestKey);
        let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
        // SAFETY: takes plain handles.
        unsafe { f(inner, key) }
    })
}

unsafe extern "C" fn digest_final(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[digest_final_fn]);
    session_call(Func::DigestFinal, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_DigestFinal);
        // SAFETY: the caller's buffer (or NULL) and length, forwarded as is.
        unsafe { f(inner, out, out_len) }
    })
}

// ---------------------------------------------------------------------------------------
// Signatures and verification.

unsafe extern "C" fn sign_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::SignInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_SignInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `data` is readable for `len` bytes for this call, the caller's promise.
    let end = unsafe { end_one_shot(|r| r.fns.C_Sign, data, len) };
    session_call(Func::Sign, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_Sign);
        // SAFETY: the caller's data and signature buffer (or NULL), forwarded as is.
        unsafe { f(inner, data, len, signature, signature_len) }
    })
}

unsafe extern "C" fn sign_update(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    let end = end_with(&[sign_final_fn]);
    session_call(Func::SignUpdate, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_SignUpdate);
        // SAFETY: the caller's data, forwarded as is.
        unsafe { f(inner, data, len) }
    })
}

unsafe extern "C" fn sign_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[sign_final_fn]);
    session_call(Func::SignFinal, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_SignFinal);
        // SAFETY: the caller's buffer (or NULL) and length, forwarded as is.
        unsafe { f(inner, signature, signature_len) }
    })
}

unsafe extern "C" fn sign_recover_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::SignRecoverInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_SignRecoverInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn sign_recover(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `data` is readable for `len` bytes for this call, the caller's promise.
    let end = unsafe { end_one_shot(|r| r.fns.C_SignRecover, data, len) };
    session_call(Func::SignRecover, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_SignRecover);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, data, len, signature, signature_len) }
    })
}

unsafe extern "C" fn verify_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::VerifyInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_VerifyInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    // C_Verify has no output: on a fault, the real call itself (result dropped) ends the
    // operation.
    let end = move |real: &Real, inner: CK_SESSION_HANDLE| {
        if let Some(f) = real.fns.C_Verify {
            // SAFETY: the caller's data and signature, readable for this call, only read.
            let _ = unsafe { f(inner, data, len, signature, signature_len) };
        }
    };
    session_call(Func::Verify, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_Verify);
        // SAFETY: the caller's data and signature, forwarded as is.
        unsafe { f(inner, data, len, signature, signature_len) }
    })
}

unsafe extern "C" fn verify_update(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::VerifyUpdate,
        session,
        &[],
        end_verify,
        |call, inner| {
            let f = real_fn!(call, C_VerifyUpdate);
            // SAFETY: the caller's data, forwarded as is.
            unsafe { f(inner, data, len) }
        },
    )
}

unsafe extern "C" fn verify_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::VerifyFinal,
        session,
        &[],
        end_verify,
        |call, inner| {
            let f = real_fn!(call, C_VerifyFinal);
            // SAFETY: the caller's signature, forwarded as is.
            unsafe { f(inner, signature, signature_len) }
        },
    )
}

unsafe extern "C" fn verify_recover_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::VerifyRecoverInit,
        session,
        &[key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_VerifyRecoverInit);
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism, forwarded as is.
            unsafe { f(inner, mechanism, key) }
        },
    )
}

unsafe extern "C" fn verify_recover(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `signature` is readable for `signature_len` bytes for this call.
    let end = unsafe { end_one_shot(|r| r.fns.C_VerifyRecover, signature, signature_len) };
    session_call(Func::VerifyRecover, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_VerifyRecover);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, signature, signature_len, data, data_len) }
    })
}

// ---------------------------------------------------------------------------------------
// Dual-function operations: a fault ends both operations.

unsafe extern "C" fn digest_encrypt_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[digest_final_fn, encrypt_final_fn]);
    session_call(
        Func::DigestEncryptUpdate,
        session,
        &[],
        end,
        |call, inner| {
            let f = real_fn!(call, C_DigestEncryptUpdate);
            // SAFETY: the caller's buffers, forwarded as is.
            unsafe { f(inner, part, part_len, out, out_len) }
        },
    )
}

unsafe extern "C" fn decrypt_digest_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[decrypt_final_fn, digest_final_fn]);
    session_call(
        Func::DecryptDigestUpdate,
        session,
        &[],
        end,
        |call, inner| {
            let f = real_fn!(call, C_DecryptDigestUpdate);
            // SAFETY: the caller's buffers, forwarded as is.
            unsafe { f(inner, part, part_len, out, out_len) }
        },
    )
}

unsafe extern "C" fn sign_encrypt_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = end_with(&[sign_final_fn, encrypt_final_fn]);
    session_call(Func::SignEncryptUpdate, session, &[], end, |call, inner| {
        let f = real_fn!(call, C_SignEncryptUpdate);
        // SAFETY: the caller's buffers, forwarded as is.
        unsafe { f(inner, part, part_len, out, out_len) }
    })
}

unsafe extern "C" fn decrypt_verify_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let end = |real: &Real, inner: CK_SESSION_HANDLE| {
        real.end_with_final(real.fns.C_DecryptFinal, inner);
        real.end_verify(inner);
    };
    session_call(
        Func::DecryptVerifyUpdate,
        session,
        &[],
        end,
        |call, inner| {
            let f = real_fn!(call, C_DecryptVerifyUpdate);
            // SAFETY: the caller's buffers, forwarded as is.
            unsafe { f(inner, part, part_len, out, out_len) }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Keys and random numbers.

unsafe extern "C" fn generate_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::GenerateKey,
        session,
        &[],
        no_operation,
        |call, inner| {
            if out.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_GenerateKey);
            let mut key: CK_OBJECT_HANDLE = 0;
            // SAFETY: the caller's mechanism and template, forwarded as is; `key` writable.
            let rv = unsafe { f(inner, mechanism, template, count, &mut key) };
            if rv == CKR_OK {
                // SAFETY: `out` is non-null and the caller's writable handle slot.
                unsafe { *out = publish(call, key) };
            }
            rv
        },
    )
}

#[allow(clippy::too_many_arguments)] // the PKCS#11 signature
unsafe extern "C" fn generate_key_pair(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public_template: *mut CK_ATTRIBUTE,
    public_count: CK_ULONG,
    private_template: *mut CK_ATTRIBUTE,
    private_count: CK_ULONG,
    public_out: *mut CK_OBJECT_HANDLE,
    private_out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::GenerateKeyPair,
        session,
        &[],
        no_operation,
        |call, inner| {
            if public_out.is_null() || private_out.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_GenerateKeyPair);
            let (mut public, mut private): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
            // SAFETY: the caller's mechanism and templates, forwarded as is; both handles
            // are writable locals.
            let rv = unsafe {
                f(
                    inner,
                    mechanism,
                    public_template,
                    public_count,
                    private_template,
                    private_count,
                    &mut public,
                    &mut private,
                )
            };
            if rv == CKR_OK {
                // SAFETY: `public_out` is non-null and the caller's writable handle slot.
                unsafe { *public_out = publish(call, public) };
                // SAFETY: `private_out` is non-null and the caller's writable handle slot.
                unsafe { *private_out = publish(call, private) };
            }
            rv
        },
    )
}

unsafe extern "C" fn wrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    wrapping_key: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: *mut CK_ULONG,
) -> CK_RV {
    let keys = [wrapping_key, key];
    session_call(
        Func::WrapKey,
        session,
        &keys,
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_WrapKey);
            let wrapping_key =
                attempt!(object(call, wrapping_key, CKR_WRAPPING_KEY_HANDLE_INVALID));
            let key = attempt!(object(call, key, CKR_KEY_HANDLE_INVALID));
            // SAFETY: the caller's mechanism and output buffer (or NULL), forwarded as is.
            unsafe { f(inner, mechanism, wrapping_key, key, wrapped, wrapped_len) }
        },
    )
}

#[allow(clippy::too_many_arguments)] // the PKCS#11 signature
unsafe extern "C" fn unwrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    unwrapping_key: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    session_call(
        Func::UnwrapKey,
        session,
        &[unwrapping_key],
        no_operation,
        |call, inner| {
            if out.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let f = real_fn!(call, C_UnwrapKey);
            let unwrapping_key = attempt!(object(
                call,
                unwrapping_key,
                CKR_UNWRAPPING_KEY_HANDLE_INVALID
            ));
            let mut key: CK_OBJECT_HANDLE = 0;
            // SAFETY: the caller's mechanism, wrapped key and template, forwarded as is;
            // `key` is writable.
            let rv = unsafe {
                f(
                    inner,
                    mechanism,
                    unwrapping_key,
                    wrapped,
                    wrapped_len,
                    template,
                    count,
                    &mut key,
                )
            };
            if rv == CKR_OK {
                // SAFETY: `out` is non-null and the caller's writable handle slot.
                unsafe { *out = publish(call, key) };
            }
            rv
        },
    )
}

unsafe extern "C" fn derive_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    base_key: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // Mechanism parameters that embed key handles (CKM_CONCATENATE_BASE_AND_KEY) are
    // passed on untranslated: no test of ours derives keys.
    session_call(
        Func::DeriveKey,
        session,
        &[base_key],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_DeriveKey);
            let base_key = attempt!(object(call, base_key, CKR_KEY_HANDLE_INVALID));
            let mut key: CK_OBJECT_HANDLE = 0;
            // SAFETY: the caller's mechanism and template, forwarded as is; `key` writable.
            let rv = unsafe { f(inner, mechanism, base_key, template, count, &mut key) };
            if rv == CKR_OK && !out.is_null() {
                // SAFETY: `out` is non-null and the caller's writable handle slot.
                unsafe { *out = publish(call, key) };
            }
            rv
        },
    )
}

unsafe extern "C" fn seed_random(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::SeedRandom,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_SeedRandom);
            // SAFETY: the caller's seed, forwarded as is.
            unsafe { f(inner, seed, len) }
        },
    )
}

unsafe extern "C" fn generate_random(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    session_call(
        Func::GenerateRandom,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GenerateRandom);
            // SAFETY: the caller's buffer, forwarded as is.
            unsafe { f(inner, out, len) }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Legacy parallel functions and slot events.

unsafe extern "C" fn get_function_status(session: CK_SESSION_HANDLE) -> CK_RV {
    session_call(
        Func::GetFunctionStatus,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_GetFunctionStatus);
            // SAFETY: takes a plain handle.
            unsafe { f(inner) }
        },
    )
}

unsafe extern "C" fn cancel_function(session: CK_SESSION_HANDLE) -> CK_RV {
    session_call(
        Func::CancelFunction,
        session,
        &[],
        no_operation,
        |call, inner| {
            let f = real_fn!(call, C_CancelFunction);
            // SAFETY: takes a plain handle.
            unsafe { f(inner) }
        },
    )
}

unsafe extern "C" fn wait_for_slot_event(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    module_call(Func::WaitForSlotEvent, |call| {
        let f = real_fn!(call, C_WaitForSlotEvent);
        // SAFETY: the caller's slot pointer and reserved argument, forwarded as is.
        unsafe { f(flags, slot, reserved) }
    })
}
