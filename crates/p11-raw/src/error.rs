//! `CK_RV` return values and the crate's error type.

use std::fmt;
use std::path::PathBuf;

use cryptoki_sys::*;

/// Generates [`Rv`] with one variant per standard `CKR_` code, its conversion from the
/// raw number and its constant name, from a single table so the three never disagree.
macro_rules! return_values {
    ($($variant:ident = $constant:ident,)*) => {
        /// A PKCS#11 return value (`CK_RV`), one variant per standard code, named after
        /// the constant (`PinIncorrect` is `CKR_PIN_INCORRECT`).
        ///
        /// Codes at or above `CKR_VENDOR_DEFINED` are kept as numbers in
        /// [`Rv::VendorDefined`]; any other number the standard does not define is
        /// [`Rv::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rv {
            $(
                #[doc = concat!("`", stringify!($constant), "`")]
                $variant,
            )*
            /// A vendor-defined code (`CKR_VENDOR_DEFINED` and above), as the number.
            VendorDefined(CK_RV),
            /// A code the standard does not define and that is not vendor-defined.
            Unknown(CK_RV),
        }

        impl Rv {
            /// Maps a raw `CK_RV`.
            pub fn from_raw(raw: CK_RV) -> Rv {
                #[allow(unreachable_patterns)] // some constants share a value across versions
                match raw {
                    $($constant => Rv::$variant,)*
                    raw if raw >= CKR_VENDOR_DEFINED => Rv::VendorDefined(raw),
                    raw => Rv::Unknown(raw),
                }
            }

            /// The raw `CK_RV` number.
            pub fn raw(self) -> CK_RV {
                match self {
                    $(Rv::$variant => $constant,)*
                    Rv::VendorDefined(raw) | Rv::Unknown(raw) => raw,
                }
            }

            /// The constant's name, e.g. `"CKR_PIN_INCORRECT"`; `None` for vendor and
            /// unknown codes.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Rv::$variant => Some(stringify!($constant)),)*
                    Rv::VendorDefined(_) | Rv::Unknown(_) => None,
                }
            }
        }
    };
}

return_values! {
    Ok = CKR_OK,
    Cancel = CKR_CANCEL,
    HostMemory = CKR_HOST_MEMORY,
    SlotIdInvalid = CKR_SLOT_ID_INVALID,
    GeneralError = CKR_GENERAL_ERROR,
    FunctionFailed = CKR_FUNCTION_FAILED,
    ArgumentsBad = CKR_ARGUMENTS_BAD,
    NoEvent = CKR_NO_EVENT,
    NeedToCreateThreads = CKR_NEED_TO_CREATE_THREADS,
    CantLock = CKR_CANT_LOCK,
    AttributeReadOnly = CKR_ATTRIBUTE_READ_ONLY,
    AttributeSensitive = CKR_ATTRIBUTE_SENSITIVE,
    AttributeTypeInvalid = CKR_ATTRIBUTE_TYPE_INVALID,
    AttributeValueInvalid = CKR_ATTRIBUTE_VALUE_INVALID,
    ActionProhibited = CKR_ACTION_PROHIBITED,
    DataInvalid = CKR_DATA_INVALID,
    DataLenRange = CKR_DATA_LEN_RANGE,
    DeviceError = CKR_DEVICE_ERROR,
    DeviceMemory = CKR_DEVICE_MEMORY,
    DeviceRemoved = CKR_DEVICE_REMOVED,
    EncryptedDataInvalid = CKR_ENCRYPTED_DATA_INVALID,
    EncryptedDataLenRange = CKR_ENCRYPTED_DATA_LEN_RANGE,
    AeadDecryptFailed = CKR_AEAD_DECRYPT_FAILED,
    FunctionCanceled = CKR_FUNCTION_CANCELED,
    FunctionNotParallel = CKR_FUNCTION_NOT_PARALLEL,
    FunctionNotSupported = CKR_FUNCTION_NOT_SUPPORTED,
    KeyHandleInvalid = CKR_KEY_HANDLE_INVALID,
    KeySizeRange = CKR_KEY_SIZE_RANGE,
    KeyTypeInconsistent = CKR_KEY_TYPE_INCONSISTENT,
    KeyNotNeeded = CKR_KEY_NOT_NEEDED,
    KeyChanged = CKR_KEY_CHANGED,
    KeyNeeded = CKR_KEY_NEEDED,
    KeyIndigestible = CKR_KEY_INDIGESTIBLE,
    KeyFunctionNotPermitted = CKR_KEY_FUNCTION_NOT_PERMITTED,
    KeyNotWrappable = CKR_KEY_NOT_WRAPPABLE,
    KeyUnextractable = CKR_KEY_UNEXTRACTABLE,
    MechanismInvalid = CKR_MECHANISM_INVALID,
    MechanismParamInvalid = CKR_MECHANISM_PARAM_INVALID,
    ObjectHandleInvalid = CKR_OBJECT_HANDLE_INVALID,
    OperationActive = CKR_OPERATION_ACTIVE,
    OperationNotInitialized = CKR_OPERATION_NOT_INITIALIZED,
    PinIncorrect = CKR_PIN_INCORRECT,
    PinInvalid = CKR_PIN_INVALID,
    PinLenRange = CKR_PIN_LEN_RANGE,
    PinExpired = CKR_PIN_EXPIRED,
    PinLocked = CKR_PIN_LOCKED,
    SessionClosed = CKR_SESSION_CLOSED,
    SessionCount = CKR_SESSION_COUNT,
    SessionHandleInvalid = CKR_SESSION_HANDLE_INVALID,
    SessionParallelNotSupported = CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    SessionReadOnly = CKR_SESSION_READ_ONLY,
    SessionExists = CKR_SESSION_EXISTS,
    SessionReadOnlyExists = CKR_SESSION_READ_ONLY_EXISTS,
    SessionReadWriteSoExists = CKR_SESSION_READ_WRITE_SO_EXISTS,
    SignatureInvalid = CKR_SIGNATURE_INVALID,
    SignatureLenRange = CKR_SIGNATURE_LEN_RANGE,
    TemplateIncomplete = CKR_TEMPLATE_INCOMPLETE,
    TemplateInconsistent = CKR_TEMPLATE_INCONSISTENT,
    TokenNotPresent = CKR_TOKEN_NOT_PRESENT,
    TokenNotRecognized = CKR_TOKEN_NOT_RECOGNIZED,
    TokenWriteProtected = CKR_TOKEN_WRITE_PROTECTED,
    UnwrappingKeyHandleInvalid = CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    UnwrappingKeySizeRange = CKR_UNWRAPPING_KEY_SIZE_RANGE,
    UnwrappingKeyTypeInconsistent = CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    UserAlreadyLoggedIn = CKR_USER_ALREADY_LOGGED_IN,
    UserNotLoggedIn = CKR_USER_NOT_LOGGED_IN,
    UserPinNotInitialized = CKR_USER_PIN_NOT_INITIALIZED,
    UserTypeInvalid = CKR_USER_TYPE_INVALID,
    UserAnotherAlreadyLoggedIn = CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    UserTooManyTypes = CKR_USER_TOO_MANY_TYPES,
    WrappedKeyInvalid = CKR_WRAPPED_KEY_INVALID,
    WrappedKeyLenRange = CKR_WRAPPED_KEY_LEN_RANGE,
    WrappingKeyHandleInvalid = CKR_WRAPPING_KEY_HANDLE_INVALID,
    WrappingKeySizeRange = CKR_WRAPPING_KEY_SIZE_RANGE,
    WrappingKeyTypeInconsistent = CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    RandomSeedNotSupported = CKR_RANDOM_SEED_NOT_SUPPORTED,
    RandomNoRng = CKR_RANDOM_NO_RNG,
    DomainParamsInvalid = CKR_DOMAIN_PARAMS_INVALID,
    CurveNotSupported = CKR_CURVE_NOT_SUPPORTED,
    BufferTooSmall = CKR_BUFFER_TOO_SMALL,
    SavedStateInvalid = CKR_SAVED_STATE_INVALID,
    InformationSensitive = CKR_INFORMATION_SENSITIVE,
    StateUnsaveable = CKR_STATE_UNSAVEABLE,
    CryptokiNotInitialized = CKR_CRYPTOKI_NOT_INITIALIZED,
    CryptokiAlreadyInitialized = CKR_CRYPTOKI_ALREADY_INITIALIZED,
    MutexBad = CKR_MUTEX_BAD,
    MutexNotLocked = CKR_MUTEX_NOT_LOCKED,
    NewPinMode = CKR_NEW_PIN_MODE,
    NextOtp = CKR_NEXT_OTP,
    ExceededMaxIterations = CKR_EXCEEDED_MAX_ITERATIONS,
    FipsSelfTestFailed = CKR_FIPS_SELF_TEST_FAILED,
    LibraryLoadFailed = CKR_LIBRARY_LOAD_FAILED,
    PinTooWeak = CKR_PIN_TOO_WEAK,
    PublicKeyInvalid = CKR_PUBLIC_KEY_INVALID,
    FunctionRejected = CKR_FUNCTION_REJECTED,
    TokenResourceExceeded = CKR_TOKEN_RESOURCE_EXCEEDED,
    OperationCancelFailed = CKR_OPERATION_CANCEL_FAILED,
    KeyExhausted = CKR_KEY_EXHAUSTED,
    Pending = CKR_PENDING,
    SessionAsyncNotSupported = CKR_SESSION_ASYNC_NOT_SUPPORTED,
    SeedRandomRequired = CKR_SEED_RANDOM_REQUIRED,
    OperationNotValidated = CKR_OPERATION_NOT_VALIDATED,
    TokenNotInitialized = CKR_TOKEN_NOT_INITIALIZED,
    ParameterSetNotSupported = CKR_PARAMETER_SET_NOT_SUPPORTED,
}

impl fmt::Display for Rv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => match self {
                Rv::VendorDefined(raw) => write!(f, "vendor-defined CK_RV {raw:#x}"),
                _ => write!(f, "unknown CK_RV {:#x}", self.raw()),
            },
        }
    }
}

/// How a failed call can be recovered from, by the rules of the PKCS#11 standard and the
/// modules we know. `p11-session` repairs according to this class; this crate only
/// classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecoveryClass {
    /// The session is gone (`SESSION_HANDLE_INVALID`, `SESSION_CLOSED`): open a new one.
    SessionLost,
    /// The application is no longer logged in (`USER_NOT_LOGGED_IN`).
    LoginLost,
    /// An object handle is no longer valid (`OBJECT_HANDLE_INVALID`,
    /// `KEY_HANDLE_INVALID`): look the object up again.
    StaleHandle,
    /// The module failed without saying why (`GENERAL_ERROR`, `FUNCTION_FAILED`); some
    /// modules answer a stale handle this way. Ask the session for its state first.
    Ambiguous,
    /// The device or token went away (`DEVICE_REMOVED`, `TOKEN_NOT_PRESENT`,
    /// `DEVICE_ERROR`, `CRYPTOKI_NOT_INITIALIZED`): find the token again, with backoff.
    DeviceLost,
    /// This session cannot go on (`DEVICE_MEMORY`, `OPERATION_ACTIVE`): drop it and try
    /// once on another.
    SessionUnfit,
    /// A PIN problem (`PIN_INCORRECT`, `PIN_INVALID`, `PIN_LOCKED`, `PIN_EXPIRED`,
    /// `PIN_LEN_RANGE`): never retried, since tokens count failures and lock.
    Pin,
    /// Anything else: report it.
    Fatal,
}

impl Rv {
    /// The recovery class of this code.
    pub fn recovery_class(self) -> RecoveryClass {
        match self {
            Rv::SessionHandleInvalid | Rv::SessionClosed => RecoveryClass::SessionLost,
            Rv::UserNotLoggedIn => RecoveryClass::LoginLost,
            Rv::ObjectHandleInvalid | Rv::KeyHandleInvalid => RecoveryClass::StaleHandle,
            Rv::GeneralError | Rv::FunctionFailed => RecoveryClass::Ambiguous,
            Rv::DeviceRemoved
            | Rv::TokenNotPresent
            | Rv::DeviceError
            | Rv::CryptokiNotInitialized => RecoveryClass::DeviceLost,
            Rv::DeviceMemory | Rv::OperationActive => RecoveryClass::SessionUnfit,
            Rv::PinIncorrect
            | Rv::PinInvalid
            | Rv::PinLocked
            | Rv::PinExpired
            | Rv::PinLenRange => RecoveryClass::Pin,
            _ => RecoveryClass::Fatal,
        }
    }

    /// Whether this code says the session it came from can no longer be used, so it
    /// must not go back to a pool.
    pub fn breaks_session(self) -> bool {
        matches!(
            self.recovery_class(),
            RecoveryClass::SessionLost | RecoveryClass::DeviceLost | RecoveryClass::SessionUnfit
        )
    }
}

/// The PKCS#11 function a call went to, for error messages (`C_Sign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the function of the same name
pub enum Function {
    Initialize,
    Finalize,
    GetInfo,
    GetFunctionList,
    GetSlotList,
    GetSlotInfo,
    GetTokenInfo,
    GetMechanismList,
    GetMechanismInfo,
    InitToken,
    InitPin,
    SetPin,
    OpenSession,
    CloseSession,
    CloseAllSessions,
    GetSessionInfo,
    Login,
    Logout,
    CreateObject,
    DestroyObject,
    GetAttributeValue,
    FindObjectsInit,
    FindObjects,
    FindObjectsFinal,
    SignInit,
    Sign,
    SignUpdate,
    SignFinal,
    GenerateKeyPair,
    GenerateRandom,
}

impl Function {
    /// The C name, e.g. `"C_Sign"`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Initialize => "C_Initialize",
            Function::Finalize => "C_Finalize",
            Function::GetInfo => "C_GetInfo",
            Function::GetFunctionList => "C_GetFunctionList",
            Function::GetSlotList => "C_GetSlotList",
            Function::GetSlotInfo => "C_GetSlotInfo",
            Function::GetTokenInfo => "C_GetTokenInfo",
            Function::GetMechanismList => "C_GetMechanismList",
            Function::GetMechanismInfo => "C_GetMechanismInfo",
            Function::InitToken => "C_InitToken",
            Function::InitPin => "C_InitPIN",
            Function::SetPin => "C_SetPIN",
            Function::OpenSession => "C_OpenSession",
            Function::CloseSession => "C_CloseSession",
            Function::CloseAllSessions => "C_CloseAllSessions",
            Function::GetSessionInfo => "C_GetSessionInfo",
            Function::Login => "C_Login",
            Function::Logout => "C_Logout",
            Function::CreateObject => "C_CreateObject",
            Function::DestroyObject => "C_DestroyObject",
            Function::GetAttributeValue => "C_GetAttributeValue",
            Function::FindObjectsInit => "C_FindObjectsInit",
            Function::FindObjects => "C_FindObjects",
            Function::FindObjectsFinal => "C_FindObjectsFinal",
            Function::SignInit => "C_SignInit",
            Function::Sign => "C_Sign",
            Function::SignUpdate => "C_SignUpdate",
            Function::SignFinal => "C_SignFinal",
            Function::GenerateKeyPair => "C_GenerateKeyPair",
            Function::GenerateRandom => "C_GenerateRandom",
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PKCS#11 function returned something other than `CKR_OK`.
    #[error("{function}: {rv}")]
    Pkcs11 {
        /// The function that failed.
        function: Function,
        /// What it returned.
        rv: Rv,
    },
    /// The module's path could not be resolved (it does not exist, or a directory on
    /// the way cannot be read).
    #[error("PKCS#11 module {}: {source}", path.display())]
    ModulePath {
        /// The path as given.
        path: PathBuf,
        /// Why it could not be resolved.
        source: std::io::Error,
    },
    /// The dynamic loader refused the file.
    #[error("cannot load PKCS#11 module {}: {source}", path.display())]
    Load {
        /// The canonical path tried.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The file loads but does not export `C_GetFunctionList`, so it is no PKCS#11
    /// module.
    #[error("{} is not a PKCS#11 module: it exports no C_GetFunctionList", path.display())]
    NotAModule {
        /// The canonical path tried.
        path: PathBuf,
    },
    /// `C_GetFunctionList` succeeded but gave a null pointer.
    #[error("{}: C_GetFunctionList returned no function list", path.display())]
    NullFunctionList {
        /// The canonical path of the module.
        path: PathBuf,
    },
    /// The module's function list has no entry for a function we need.
    #[error("the PKCS#11 module does not provide {function}")]
    FunctionMissing {
        /// The missing function.
        function: Function,
    },
    /// A length does not fit in a `CK_ULONG` (only possible where `CK_ULONG` is 32 bits).
    #[error("{what} of {len} bytes is too long for PKCS#11")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A token label longer than the 32 bytes PKCS#11 allows.
    #[error("token label {label:?} is longer than 32 bytes")]
    LabelTooLong {
        /// The label as given.
        label: String,
    },
    /// The module answered with something the standard does not allow (for example more
    /// handles than room was given for, or a length that changed on every call).
    #[error("{function}: the module answered inconsistently: {what}")]
    Inconsistent {
        /// The function that answered.
        function: Function,
        /// What was wrong.
        what: &'static str,
    },
}

impl Error {
    /// The PKCS#11 return value, if this error came from a PKCS#11 call.
    pub fn rv(&self) -> Option<Rv> {
        match self {
            Error::Pkcs11 { rv, .. } => Some(*rv),
            _ => None,
        }
    }

    /// The function that failed, if this error came from a PKCS#11 call.
    pub fn function(&self) -> Option<Function> {
        match self {
            Error::Pkcs11 { function, .. } => Some(*function),
            _ => None,
        }
    }

    /// The recovery class of the return value; [`RecoveryClass::Fatal`] for errors that
    /// did not come from the module.
    pub fn recovery_class(&self) -> RecoveryClass {
        self.rv().map_or(RecoveryClass::Fatal, Rv::recovery_class)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a raw return value into a result.
pub(crate) fn check(function: Function, rv: CK_RV) -> Result<()> {
    if rv == CKR_OK {
        Ok(())
    } else {
        Err(Error::Pkcs11 {
            function,
            rv: Rv::from_raw(rv),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_code_round_trips_and_is_named() {
        for raw in 0..=0x300 {
            let rv = Rv::from_raw(raw);
            assert_eq!(rv.raw(), raw);
            match rv {
                Rv::Unknown(_) => assert!(rv.name().is_none()),
                _ => assert!(rv.name().is_some_and(|n| n.starts_with("CKR_")), "{raw:#x}"),
            }
        }
    }

    #[test]
    fn boundaries_between_standard_vendor_and_unknown() {
        assert_eq!(Rv::from_raw(CKR_OK), Rv::Ok);
        assert_eq!(Rv::from_raw(4), Rv::Unknown(4));
        assert_eq!(
            Rv::from_raw(CKR_VENDOR_DEFINED - 1),
            Rv::Unknown(CKR_VENDOR_DEFINED - 1)
        );
        assert_eq!(
            Rv::from_raw(CKR_VENDOR_DEFINED),
            Rv::VendorDefined(CKR_VENDOR_DEFINED)
        );
        assert_eq!(
            Rv::from_raw(CKR_VENDOR_DEFINED + 7),
            Rv::VendorDefined(CKR_VENDOR_DEFINED + 7)
        );
        assert_eq!(
            Rv::from_raw(CKR_PARAMETER_SET_NOT_SUPPORTED),
            Rv::ParameterSetNotSupported
        );
    }

    #[test]
    fn display_names_the_constant_and_the_function() {
        let err = Error::Pkcs11 {
            function: Function::Login,
            rv: Rv::PinIncorrect,
        };
        assert_eq!(err.to_string(), "C_Login: CKR_PIN_INCORRECT");
        assert_eq!(
            Rv::VendorDefined(0x8000_0001).to_string(),
            "vendor-defined CK_RV 0x80000001"
        );
        assert_eq!(Rv::Unknown(4).to_string(), "unknown CK_RV 0x4");
    }

    #[test]
    fn recovery_classes() {
        assert_eq!(
            Rv::SessionClosed.recovery_class(),
            RecoveryClass::SessionLost
        );
        assert_eq!(
            Rv::UserNotLoggedIn.recovery_class(),
            RecoveryClass::LoginLost
        );
        assert_eq!(
            Rv::KeyHandleInvalid.recovery_class(),
            RecoveryClass::StaleHandle
        );
        assert_eq!(
            Rv::TokenNotPresent.recovery_class(),
            RecoveryClass::DeviceLost
        );
        assert_eq!(Rv::PinLocked.recovery_class(), RecoveryClass::Pin);
        assert_eq!(Rv::GeneralError.recovery_class(), RecoveryClass::Ambiguous);
        assert_eq!(Rv::DataLenRange.recovery_class(), RecoveryClass::Fatal);
        assert!(Rv::DeviceMemory.breaks_session());
        assert!(!Rv::PinIncorrect.breaks_session());
    }
}
