//! The module registry, and the general-purpose, slot and token functions.
//!
//! `C_Initialize` is per process and one `C_Finalize` ends the module for every user in
//! the process; calling it while another thread is inside the module is undefined
//! behaviour. So a module is loaded and initialised once per process, whatever asks, and
//! finalised only when the last handle to it is gone: that is memory safety, so it lives
//! here beside the `unsafe`.

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use cryptoki_sys::*;

use crate::error::{Error, Function, Result, Rv, check};
use crate::session::Session;
use crate::types::{
    MechanismInfo, MechanismType, ModuleInfo, SessionHandle, SlotId, SlotInfo, TokenInfo,
};

/// How this process came to use the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// We initialised it with `CKF_OS_LOCKING_OK`: calls from many threads run in
    /// parallel (on different sessions).
    OsLocking,
    /// The module answered `CKR_CANT_LOCK`, so we initialised it without threading
    /// support and every call goes through one mutex of ours.
    Serialized,
    /// Someone else in this process had initialised it already
    /// (`CKR_CRYPTOKI_ALREADY_INITIALIZED`). We do not know how, so every call goes
    /// through one mutex of ours, and we never finalise it.
    ForeignSerialized,
}

/// One loaded and initialised module. Dropped when the last [`Module`] handle (sessions
/// hold one too) goes away, which finalises it if we initialised it.
struct Inner {
    path: PathBuf,
    /// Copied from the module's own table at load; the module's table is static in it.
    functions: CK_FUNCTION_LIST,
    threading: Threading,
    /// Held around every call when `threading` is not `OsLocking`.
    serial: Mutex<()>,
}

/// The process-wide registry: canonical path to the live module. Holding the lock
/// serialises loading, initialising and finalising, so a re-open never overlaps a
/// finalise.
fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves nothing half-done here: the map
    // and the unit stay consistent, so carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle to a loaded, initialised PKCS#11 module: `Clone + Send + Sync`, cheap to
/// clone, shared by everything in the process that opens the same file.
///
/// ```no_run
/// let module = p11_raw::Module::open("/usr/lib/softhsm/libsofthsm2.so")?;
/// for slot in module.slots(true)? {
///     println!("{slot}: {}", module.token_info(slot)?.label);
/// }
/// # Ok::<(), p11_raw::Error>(())
/// ```
#[derive(Clone)]
pub struct Module {
    inner: Arc<Inner>,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.inner.path)
            .field("threading", &self.inner.threading)
            .finish()
    }
}

impl Module {
    /// Opens the module at `path`: the first open in the process loads it, fetches its
    /// function list and calls `C_Initialize` with `CKF_OS_LOCKING_OK`; later opens of
    /// the same file (by any path that resolves to it) return the same module.
    ///
    /// The library is never unloaded, and `C_Finalize` runs only when the last handle
    /// (including those held by sessions) is dropped, and only if this registry
    /// initialised the module.
    ///
    /// # Errors
    /// [`Error::ModulePath`] if the path does not resolve, [`Error::Load`] if the loader
    /// refuses it, [`Error::NotAModule`] if it has no `C_GetFunctionList`, and
    /// [`Error::Pkcs11`] if `C_GetFunctionList` or `C_Initialize` fail.
    pub fn open(path: impl AsRef<Path>) -> Result<Module> {
        let given = path.as_ref();
        let path = given.canonicalize().map_err(|source| Error::ModulePath {
            path: given.to_path_buf(),
            source,
        })?;
        loop {
            let mut map = lock(registry());
            match map.get(&path).map(Weak::upgrade) {
                Some(Some(inner)) => return Ok(Module { inner }),
                Some(None) => {
                    // The last handle is being dropped on another thread and will
                    // finalise under this lock: let it, then load afresh.
                    drop(map);
                    std::thread::yield_now();
                }
                None => {
                    let inner = Arc::new(Inner::load(&path)?);
                    map.insert(path, Arc::downgrade(&inner));
                    return Ok(Module { inner });
                }
            }
        }
    }

    /// The canonical path of the module file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How calls into this module are made from many threads.
    pub fn threading(&self) -> Threading {
        self.inner.threading
    }

    /// Whether `self` and `other` are the same loaded module.
    pub fn same_module(&self, other: &Module) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Fetches a function pointer from the table, or says the module lacks it.
    pub(crate) fn function<F>(
        &self,
        function: Function,
        get: impl FnOnce(&CK_FUNCTION_LIST) -> Option<F>,
    ) -> Result<F> {
        get(&self.inner.functions).ok_or(Error::FunctionMissing { function })
    }

    /// Taken around each call: a real lock only when the module cannot lock itself.
    pub(crate) fn serialize(&self) -> Option<MutexGuard<'_, ()>> {
        match self.inner.threading {
            Threading::OsLocking => None,
            Threading::Serialized | Threading::ForeignSerialized => Some(lock(&self.inner.serial)),
        }
    }

    /// General information about the module (`C_GetInfo`).
    ///
    /// # Errors
    /// The module's error, if any.
    pub fn info(&self) -> Result<ModuleInfo> {
        let f = self.function(Function::GetInfo, |l| l.C_GetInfo)?;
        let mut raw = CK_INFO::default();
        let _serial = self.serialize();
        // SAFETY: `raw` is a valid, writable CK_INFO for the duration of the call.
        let rv = unsafe { f(&mut raw) };
        check(Function::GetInfo, rv)?;
        Ok(ModuleInfo::from_raw(&raw))
    }

    /// The slots (`C_GetSlotList`), only those with a token when `token_present`.
    ///
    /// # Errors
    /// The module's error, if any.
    pub fn slots(&self, token_present: bool) -> Result<Vec<SlotId>> {
        let f = self.function(Function::GetSlotList, |l| l.C_GetSlotList)?;
        let present = CK_BBOOL::from(token_present);
        // The list can grow between the size query and the fetch (a token inserted):
        // the module then answers CKR_BUFFER_TOO_SMALL and we ask again.
        for _ in 0..8 {
            let mut count: CK_ULONG = 0;
            {
                let _serial = self.serialize();
                // SAFETY: a NULL list asks for the count only; `count` is writable.
                let rv = unsafe { f(present, std::ptr::null_mut(), &mut count) };
                check(Function::GetSlotList, rv)?;
            }
            let mut slots: Vec<CK_SLOT_ID> = vec![0; count as usize];
            let rv = {
                let _serial = self.serialize();
                // SAFETY: `slots` has room for `count` ids and the module writes at most
                // `count`, updating `count` to what it wrote.
                unsafe { f(present, slots.as_mut_ptr(), &mut count) }
            };
            if rv == CKR_BUFFER_TOO_SMALL {
                continue;
            }
            check(Function::GetSlotList, rv)?;
            if count as usize > slots.len() {
                return Err(Error::Inconsistent {
                    function: Function::GetSlotList,
                    what: "more slots than room was given for",
                });
            }
            slots.truncate(count as usize);
            return Ok(slots.into_iter().map(SlotId::from_raw).collect());
        }
        Err(Error::Inconsistent {
            function: Function::GetSlotList,
            what: "the slot count kept changing",
        })
    }

    /// Information about a slot (`C_GetSlotInfo`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_SLOT_ID_INVALID`.
    pub fn slot_info(&self, slot: SlotId) -> Result<SlotInfo> {
        let f = self.function(Function::GetSlotInfo, |l| l.C_GetSlotInfo)?;
        let mut raw = CK_SLOT_INFO::default();
        let _serial = self.serialize();
        // SAFETY: `raw` is a valid, writable CK_SLOT_INFO for the duration of the call.
        let rv = unsafe { f(slot.raw(), &mut raw) };
        check(Function::GetSlotInfo, rv)?;
        Ok(SlotInfo::from_raw(&raw))
    }

    /// Information about the token in a slot (`C_GetTokenInfo`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_TOKEN_NOT_PRESENT`.
    pub fn token_info(&self, slot: SlotId) -> Result<TokenInfo> {
        let f = self.function(Function::GetTokenInfo, |l| l.C_GetTokenInfo)?;
        let mut raw = CK_TOKEN_INFO::default();
        let _serial = self.serialize();
        // SAFETY: `raw` is a valid, writable CK_TOKEN_INFO for the duration of the call.
        let rv = unsafe { f(slot.raw(), &mut raw) };
        check(Function::GetTokenInfo, rv)?;
        Ok(TokenInfo::from_raw(&raw))
    }

    /// The mechanisms a token supports (`C_GetMechanismList`).
    ///
    /// # Errors
    /// The module's error, if any.
    pub fn mechanisms(&self, slot: SlotId) -> Result<Vec<MechanismType>> {
        let f = self.function(Function::GetMechanismList, |l| l.C_GetMechanismList)?;
        for _ in 0..8 {
            let mut count: CK_ULONG = 0;
            {
                let _serial = self.serialize();
                // SAFETY: a NULL list asks for the count only; `count` is writable.
                let rv = unsafe { f(slot.raw(), std::ptr::null_mut(), &mut count) };
                check(Function::GetMechanismList, rv)?;
            }
            let mut list: Vec<CK_MECHANISM_TYPE> = vec![0; count as usize];
            let rv = {
                let _serial = self.serialize();
                // SAFETY: `list` has room for `count` entries; the module writes at most
                // that many and updates `count`.
                unsafe { f(slot.raw(), list.as_mut_ptr(), &mut count) }
            };
            if rv == CKR_BUFFER_TOO_SMALL {
                continue;
            }
            check(Function::GetMechanismList, rv)?;
            if count as usize > list.len() {
                return Err(Error::Inconsistent {
                    function: Function::GetMechanismList,
                    what: "more mechanisms than room was given for",
                });
            }
            list.truncate(count as usize);
            return Ok(list.into_iter().map(MechanismType::from_raw).collect());
        }
        Err(Error::Inconsistent {
            function: Function::GetMechanismList,
            what: "the mechanism count kept changing",
        })
    }

    /// Information about one mechanism on a token (`C_GetMechanismInfo`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_MECHANISM_INVALID`.
    pub fn mechanism_info(&self, slot: SlotId, mechanism: MechanismType) -> Result<MechanismInfo> {
        let f = self.function(Function::GetMechanismInfo, |l| l.C_GetMechanismInfo)?;
        let mut raw = CK_MECHANISM_INFO::default();
        let _serial = self.serialize();
        // SAFETY: `raw` is a valid, writable CK_MECHANISM_INFO for the duration of the call.
        let rv = unsafe { f(slot.raw(), mechanism.raw(), &mut raw) };
        check(Function::GetMechanismInfo, rv)?;
        Ok(MechanismInfo::from_raw(&raw))
    }

    /// Initialises (erases) the token in `slot` with a security-officer PIN and a label
    /// of at most 32 bytes (`C_InitToken`).
    ///
    /// # Errors
    /// [`Error::LabelTooLong`], or the module's error.
    pub fn init_token(&self, slot: SlotId, so_pin: &[u8], label: &str) -> Result<()> {
        if label.len() > 32 {
            return Err(Error::LabelTooLong {
                label: label.to_owned(),
            });
        }
        let mut padded = [b' '; 32];
        padded[..label.len()].copy_from_slice(label.as_bytes());
        let f = self.function(Function::InitToken, |l| l.C_InitToken)?;
        let pin_len = crate::attribute::ulong(so_pin.len(), "the SO PIN")?;
        let _serial = self.serialize();
        // SAFETY: the PIN is read-only input of `pin_len` bytes (the C API's pointer is
        // *mut but the module only reads it); `padded` is the 32-byte label the standard
        // requires. Both outlive the call.
        let rv = unsafe {
            f(
                slot.raw(),
                so_pin.as_ptr().cast_mut(),
                pin_len,
                padded.as_mut_ptr(),
            )
        };
        check(Function::InitToken, rv)
    }

    /// Opens a session with the token in `slot` (`C_OpenSession`), read-write if asked.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_SESSION_COUNT` or `CKR_TOKEN_NOT_PRESENT`.
    pub fn open_session(&self, slot: SlotId, read_write: bool) -> Result<Session> {
        let f = self.function(Function::OpenSession, |l| l.C_OpenSession)?;
        let flags = CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 };
        let mut handle: CK_SESSION_HANDLE = 0;
        let rv = {
            let _serial = self.serialize();
            // SAFETY: no application pointer and no notify callback are passed; `handle`
            // is writable for the duration of the call.
            unsafe { f(slot.raw(), flags, std::ptr::null_mut(), None, &mut handle) }
        };
        check(Function::OpenSession, rv)?;
        Ok(Session::new(
            self.clone(),
            slot,
            SessionHandle::from_raw(handle),
        ))
    }

    /// Closes every session this application has with the token in `slot`
    /// (`C_CloseAllSessions`), which also logs it out. [`Session`] values still held
    /// become dead: their calls answer `CKR_SESSION_HANDLE_INVALID`.
    ///
    /// # Errors
    /// The module's error, if any.
    pub fn close_all_sessions(&self, slot: SlotId) -> Result<()> {
        let f = self.function(Function::CloseAllSessions, |l| l.C_CloseAllSessions)?;
        let _serial = self.serialize();
        // SAFETY: takes a plain slot id.
        let rv = unsafe { f(slot.raw()) };
        check(Function::CloseAllSessions, rv)
    }

    /// Closes a session by its raw handle (`C_CloseSession`), whoever holds it. Meant for
    /// tests that break a session behind its owner's back; a [`Session`] closes itself
    /// when dropped.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_SESSION_HANDLE_INVALID`.
    pub fn close_session_handle(&self, handle: SessionHandle) -> Result<()> {
        let f = self.function(Function::CloseSession, |l| l.C_CloseSession)?;
        let _serial = self.serialize();
        // SAFETY: takes a plain handle; a wrong one is an error, not memory unsafety.
        let rv = unsafe { f(handle.raw()) };
        check(Function::CloseSession, rv)
    }
}

impl Inner {
    /// Loads the library and initialises it. Runs under the registry lock.
    fn load(path: &Path) -> Result<Inner> {
        // SAFETY: loading a library runs its initialisers; a PKCS#11 module's are its
        // own business and we trust the module the caller named. The library is leaked
        // on purpose: it is never unloaded, so the function pointers copied below stay
        // valid for the life of the process, even after C_Finalize.
        let library = unsafe { libloading::Library::new(path) }.map_err(|source| Error::Load {
            path: path.to_path_buf(),
            source,
        })?;
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // SAFETY: the symbol's type is the one the PKCS#11 standard gives
        // C_GetFunctionList; the library is 'static, so the pointer never dangles.
        let get_function_list = unsafe {
            library.get::<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV>(
                b"C_GetFunctionList\0",
            )
        }
        .map_err(|_| Error::NotAModule {
            path: path.to_path_buf(),
        })?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: `list` is a writable pointer slot; the module stores a pointer to its
        // own static function table there.
        let rv = unsafe { get_function_list(&mut list) };
        check(Function::GetFunctionList, rv)?;
        if list.is_null() {
            return Err(Error::NullFunctionList {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: checked non-null above; the standard says it points to the module's
        // CK_FUNCTION_LIST, which lives as long as the (never unloaded) library. We copy
        // it so later calls need no pointer chase.
        let functions = unsafe { *list };
        let initialize = functions.C_Initialize.ok_or(Error::FunctionMissing {
            function: Function::Initialize,
        })?;

        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: std::ptr::null_mut(),
        };
        // SAFETY: `args` is a valid CK_C_INITIALIZE_ARGS with no callbacks, alive for the
        // call. The registry lock keeps any other initialise or finalise of this module
        // by us from running at the same time.
        let rv = unsafe { initialize((&raw mut args).cast::<c_void>()) };
        let threading = match Rv::from_raw(rv) {
            Rv::Ok => Threading::OsLocking,
            Rv::CryptokiAlreadyInitialized => Threading::ForeignSerialized,
            Rv::CantLock => {
                // SAFETY: a NULL argument asks for single-threaded use; we then serialise
                // every call through our own mutex.
                let rv = unsafe { initialize(std::ptr::null_mut()) };
                check(Function::Initialize, rv)?;
                Threading::Serialized
            }
            rv => {
                return Err(Error::Pkcs11 {
                    function: Function::Initialize,
                    rv,
                });
            }
        };
        Ok(Inner {
            path: path.to_path_buf(),
            functions,
            threading,
            serial: Mutex::new(()),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: no thread of ours can be inside the module (sessions
        // hold handles too). Finalise under the registry lock, so that a concurrent
        // `open` of the same path waits for it rather than racing it.
        let mut map = lock(registry());
        if self.threading != Threading::ForeignSerialized
            && let Some(finalize) = self.functions.C_Finalize
        {
            // SAFETY: NULL is the only argument C_Finalize accepts; nothing of ours is
            // using the module any more (see above).
            let rv = unsafe { finalize(std::ptr::null_mut()) };
            if rv != CKR_OK {
                tracing::warn!(
                    module = %self.path.display(),
                    rv = %Rv::from_raw(rv),
                    "C_Finalize failed"
                );
            }
        }
        if map
            .get(&self.path)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            map.remove(&self.path);
        }
    }
}
