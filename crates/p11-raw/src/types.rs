//! Handles, identifiers and the information structures the module reports.

use std::fmt;

use cryptoki_sys::*;

/// A slot identifier (`CK_SLOT_ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct SlotId(CK_SLOT_ID);

impl SlotId {
    /// Wraps a raw slot identifier (for example one a user typed).
    pub fn from_raw(raw: CK_SLOT_ID) -> SlotId {
        SlotId(raw)
    }

    /// The raw number.
    pub fn raw(self) -> CK_SLOT_ID {
        self.0
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

/// A session handle (`CK_SESSION_HANDLE`). Owning one does not own the session:
/// [`Session`](crate::Session) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct SessionHandle(CK_SESSION_HANDLE);

impl SessionHandle {
    /// Wraps a raw handle.
    pub fn from_raw(raw: CK_SESSION_HANDLE) -> SessionHandle {
        SessionHandle(raw)
    }

    /// The raw number.
    pub fn raw(self) -> CK_SESSION_HANDLE {
        self.0
    }
}

/// An object handle (`CK_OBJECT_HANDLE`). Valid in every session of the application with
/// the same token, until a logout (SoftHSM2 renumbers handles at each login) or the
/// object's destruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct ObjectHandle(CK_OBJECT_HANDLE);

impl ObjectHandle {
    /// Wraps a raw handle. Using a wrong handle is a PKCS#11 error, never memory
    /// unsafety, so this is safe.
    pub fn from_raw(raw: CK_OBJECT_HANDLE) -> ObjectHandle {
        ObjectHandle(raw)
    }

    /// The raw number.
    pub fn raw(self) -> CK_OBJECT_HANDLE {
        self.0
    }
}

/// Defines a transparent newtype over a PKCS#11 number with named constants and a
/// `Display` that prints the constant's name (or the number when unnamed).
macro_rules! named_constants {
    ($(#[$meta:meta])* $name:ident($raw:ty) { $($konst:ident = $value:expr, $cname:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(transparent)]
        pub struct $name($raw);

        impl $name {
            $(
                #[doc = concat!("`", $cname, "`")]
                pub const $konst: $name = $name($value);
            )*

            /// Wraps a raw value.
            pub const fn from_raw(raw: $raw) -> $name {
                $name(raw)
            }

            /// The raw value.
            pub const fn raw(self) -> $raw {
                self.0
            }

            /// The constant's name, if it is one this crate knows.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $value => Some($cname),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

named_constants! {
    /// A mechanism type (`CK_MECHANISM_TYPE`).
    MechanismType(CK_MECHANISM_TYPE) {
        RSA_PKCS_KEY_PAIR_GEN = CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN";
        RSA_PKCS = CKM_RSA_PKCS, "CKM_RSA_PKCS";
        RSA_PKCS_PSS = CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS";
        SHA256_RSA_PKCS = CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS";
        SHA384_RSA_PKCS = CKM_SHA384_RSA_PKCS, "CKM_SHA384_RSA_PKCS";
        SHA512_RSA_PKCS = CKM_SHA512_RSA_PKCS, "CKM_SHA512_RSA_PKCS";
        SHA256_RSA_PKCS_PSS = CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS";
        SHA384_RSA_PKCS_PSS = CKM_SHA384_RSA_PKCS_PSS, "CKM_SHA384_RSA_PKCS_PSS";
        SHA512_RSA_PKCS_PSS = CKM_SHA512_RSA_PKCS_PSS, "CKM_SHA512_RSA_PKCS_PSS";
        EC_KEY_PAIR_GEN = CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN";
        ECDSA = CKM_ECDSA, "CKM_ECDSA";
        ECDSA_SHA256 = CKM_ECDSA_SHA256, "CKM_ECDSA_SHA256";
        ECDSA_SHA384 = CKM_ECDSA_SHA384, "CKM_ECDSA_SHA384";
        ECDSA_SHA512 = CKM_ECDSA_SHA512, "CKM_ECDSA_SHA512";
        SHA256 = CKM_SHA256, "CKM_SHA256";
        SHA384 = CKM_SHA384, "CKM_SHA384";
        SHA512 = CKM_SHA512, "CKM_SHA512";
    }
}

named_constants! {
    /// An object class (`CK_OBJECT_CLASS`).
    ObjectClass(CK_OBJECT_CLASS) {
        DATA = CKO_DATA, "CKO_DATA";
        CERTIFICATE = CKO_CERTIFICATE, "CKO_CERTIFICATE";
        PUBLIC_KEY = CKO_PUBLIC_KEY, "CKO_PUBLIC_KEY";
        PRIVATE_KEY = CKO_PRIVATE_KEY, "CKO_PRIVATE_KEY";
        SECRET_KEY = CKO_SECRET_KEY, "CKO_SECRET_KEY";
    }
}

named_constants! {
    /// A key type (`CK_KEY_TYPE`).
    KeyType(CK_KEY_TYPE) {
        RSA = CKK_RSA, "CKK_RSA";
        EC = CKK_EC, "CKK_EC";
    }
}

named_constants! {
    /// A certificate type (`CK_CERTIFICATE_TYPE`).
    CertificateType(CK_CERTIFICATE_TYPE) {
        X_509 = CKC_X_509, "CKC_X_509";
    }
}

named_constants! {
    /// A mask generation function for RSA-PSS (`CK_RSA_PKCS_MGF_TYPE`).
    Mgf(CK_RSA_PKCS_MGF_TYPE) {
        MGF1_SHA256 = CKG_MGF1_SHA256, "CKG_MGF1_SHA256";
        MGF1_SHA384 = CKG_MGF1_SHA384, "CKG_MGF1_SHA384";
        MGF1_SHA512 = CKG_MGF1_SHA512, "CKG_MGF1_SHA512";
    }
}

/// Who logs in (`CK_USER_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserType {
    /// The security officer (`CKU_SO`): initialises the user PIN.
    SecurityOfficer,
    /// The normal user (`CKU_USER`): uses private objects.
    User,
    /// A context-specific login (`CKU_CONTEXT_SPECIFIC`): between `C_SignInit` and
    /// `C_Sign` for keys with `CKA_ALWAYS_AUTHENTICATE`.
    ContextSpecific,
}

impl UserType {
    pub(crate) fn raw(self) -> CK_USER_TYPE {
        match self {
            UserType::SecurityOfficer => CKU_SO,
            UserType::User => CKU_USER,
            UserType::ContextSpecific => CKU_CONTEXT_SPECIFIC,
        }
    }
}

/// A limit the token reports, such as its maximum number of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (`CK_EFFECTIVELY_INFINITE`).
    Unlimited,
    /// The token does not say (`CK_UNAVAILABLE_INFORMATION`).
    Unknown,
    /// At most this many.
    AtMost(u64),
}

impl Limit {
    fn from_raw(raw: CK_ULONG) -> Limit {
        match raw {
            CK_EFFECTIVELY_INFINITE => Limit::Unlimited,
            CK_UNAVAILABLE_INFORMATION => Limit::Unknown,
            n => Limit::AtMost(wide(n)),
        }
    }
}

/// A version number (`CK_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major part.
    pub major: u8,
    /// Minor part.
    pub minor: u8,
}

impl Version {
    fn from_raw(raw: CK_VERSION) -> Version {
        Version {
            major: raw.major,
            minor: raw.minor,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Widens a `CK_ULONG` (32 bits on some platforms, 64 on Linux x86-64) to `u64`.
#[allow(clippy::useless_conversion)] // a no-op only where CK_ULONG is already 64 bits
pub(crate) fn wide(n: CK_ULONG) -> u64 {
    u64::from(n)
}

/// Turns a blank-padded fixed-size PKCS#11 string into a `String`.
fn padded(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// General information about the module (`CK_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The Cryptoki version the module implements.
    pub cryptoki_version: Version,
    /// The module's manufacturer.
    pub manufacturer: String,
    /// The module's description.
    pub description: String,
    /// The module's own version.
    pub library_version: Version,
}

impl ModuleInfo {
    pub(crate) fn from_raw(raw: &CK_INFO) -> ModuleInfo {
        ModuleInfo {
            cryptoki_version: Version::from_raw(raw.cryptokiVersion),
            manufacturer: padded(&raw.manufacturerID),
            description: padded(&raw.libraryDescription),
            library_version: Version::from_raw(raw.libraryVersion),
        }
    }
}

/// Information about a slot (`CK_SLOT_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot's description.
    pub description: String,
    /// The slot's manufacturer.
    pub manufacturer: String,
    /// Whether a token is present (`CKF_TOKEN_PRESENT`).
    pub token_present: bool,
    /// Whether the token can be removed (`CKF_REMOVABLE_DEVICE`).
    pub removable: bool,
    /// Whether the slot is a hardware slot (`CKF_HW_SLOT`).
    pub hardware: bool,
}

impl SlotInfo {
    pub(crate) fn from_raw(raw: &CK_SLOT_INFO) -> SlotInfo {
        SlotInfo {
            description: padded(&raw.slotDescription),
            manufacturer: padded(&raw.manufacturerID),
            token_present: raw.flags & CKF_TOKEN_PRESENT != 0,
            removable: raw.flags & CKF_REMOVABLE_DEVICE != 0,
            hardware: raw.flags & CKF_HW_SLOT != 0,
        }
    }
}

/// The flags of a token (`CK_TOKEN_INFO.flags`), with a method per flag that matters here.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct TokenFlags(CK_FLAGS);

impl TokenFlags {
    /// Wraps raw flags.
    pub fn from_raw(raw: CK_FLAGS) -> TokenFlags {
        TokenFlags(raw)
    }

    /// The raw bits.
    pub fn raw(self) -> CK_FLAGS {
        self.0
    }

    fn has(self, flag: CK_FLAGS) -> bool {
        self.0 & flag != 0
    }

    /// `CKF_TOKEN_INITIALIZED`.
    pub fn token_initialized(self) -> bool {
        self.has(CKF_TOKEN_INITIALIZED)
    }

    /// `CKF_LOGIN_REQUIRED`.
    pub fn login_required(self) -> bool {
        self.has(CKF_LOGIN_REQUIRED)
    }

    /// `CKF_USER_PIN_INITIALIZED`.
    pub fn user_pin_initialized(self) -> bool {
        self.has(CKF_USER_PIN_INITIALIZED)
    }

    /// `CKF_PROTECTED_AUTHENTICATION_PATH`: PINs are entered on the device itself.
    pub fn protected_authentication_path(self) -> bool {
        self.has(CKF_PROTECTED_AUTHENTICATION_PATH)
    }

    /// `CKF_WRITE_PROTECTED`.
    pub fn write_protected(self) -> bool {
        self.has(CKF_WRITE_PROTECTED)
    }

    /// `CKF_USER_PIN_COUNT_LOW`: a wrong user PIN was entered since the last success.
    pub fn user_pin_count_low(self) -> bool {
        self.has(CKF_USER_PIN_COUNT_LOW)
    }

    /// `CKF_USER_PIN_FINAL_TRY`: one more wrong user PIN locks the token.
    pub fn user_pin_final_try(self) -> bool {
        self.has(CKF_USER_PIN_FINAL_TRY)
    }

    /// `CKF_USER_PIN_LOCKED`.
    pub fn user_pin_locked(self) -> bool {
        self.has(CKF_USER_PIN_LOCKED)
    }

    /// `CKF_USER_PIN_TO_BE_CHANGED`.
    pub fn user_pin_to_be_changed(self) -> bool {
        self.has(CKF_USER_PIN_TO_BE_CHANGED)
    }

    /// The names of the user-PIN flags that are set, for messages after a PIN error:
    /// `CKF_USER_PIN_COUNT_LOW`, `CKF_USER_PIN_FINAL_TRY`, `CKF_USER_PIN_LOCKED`,
    /// `CKF_USER_PIN_TO_BE_CHANGED`.
    pub fn user_pin_flag_names(self) -> Vec<&'static str> {
        [
            (CKF_USER_PIN_COUNT_LOW, "CKF_USER_PIN_COUNT_LOW"),
            (CKF_USER_PIN_FINAL_TRY, "CKF_USER_PIN_FINAL_TRY"),
            (CKF_USER_PIN_LOCKED, "CKF_USER_PIN_LOCKED"),
            (CKF_USER_PIN_TO_BE_CHANGED, "CKF_USER_PIN_TO_BE_CHANGED"),
        ]
        .into_iter()
        .filter(|&(flag, _)| self.has(flag))
        .map(|(_, name)| name)
        .collect()
    }
}

impl fmt::Debug for TokenFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFlags({:#x})", self.0)
    }
}

/// Information about a token (`CK_TOKEN_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's label, blanks trimmed.
    pub label: String,
    /// The token's manufacturer.
    pub manufacturer: String,
    /// The token's model.
    pub model: String,
    /// The token's serial number, blanks trimmed.
    pub serial_number: String,
    /// The token's flags.
    pub flags: TokenFlags,
    /// How many sessions the token allows at once (`ulMaxSessionCount`).
    pub max_session_count: Limit,
    /// How many sessions are open (`ulSessionCount`), if the token says.
    pub session_count: Option<u64>,
    /// How many read-write sessions the token allows at once.
    pub max_rw_session_count: Limit,
    /// The shortest PIN allowed.
    pub min_pin_len: u64,
    /// The longest PIN allowed.
    pub max_pin_len: u64,
    /// Hardware version.
    pub hardware_version: Version,
    /// Firmware version.
    pub firmware_version: Version,
}

impl TokenInfo {
    pub(crate) fn from_raw(raw: &CK_TOKEN_INFO) -> TokenInfo {
        TokenInfo {
            label: padded(&raw.label),
            manufacturer: padded(&raw.manufacturerID),
            model: padded(&raw.model),
            serial_number: padded(&raw.serialNumber),
            flags: TokenFlags(raw.flags),
            max_session_count: Limit::from_raw(raw.ulMaxSessionCount),
            session_count: match Limit::from_raw(raw.ulSessionCount) {
                Limit::AtMost(n) => Some(n),
                Limit::Unlimited => Some(0),
                Limit::Unknown => None,
            },
            max_rw_session_count: Limit::from_raw(raw.ulMaxRwSessionCount),
            min_pin_len: wide(raw.ulMinPinLen),
            max_pin_len: wide(raw.ulMaxPinLen),
            hardware_version: Version::from_raw(raw.hardwareVersion),
            firmware_version: Version::from_raw(raw.firmwareVersion),
        }
    }
}

/// Information about a mechanism on a token (`CK_MECHANISM_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MechanismInfo {
    /// Smallest key size (bits or bytes, depending on the mechanism).
    pub min_key_size: u64,
    /// Largest key size.
    pub max_key_size: u64,
    /// `CKF_SIGN`.
    pub sign: bool,
    /// `CKF_VERIFY`.
    pub verify: bool,
    /// `CKF_GENERATE_KEY_PAIR`.
    pub generate_key_pair: bool,
    /// `CKF_DIGEST`.
    pub digest: bool,
    /// `CKF_HW`.
    pub hardware: bool,
}

impl MechanismInfo {
    pub(crate) fn from_raw(raw: &CK_MECHANISM_INFO) -> MechanismInfo {
        MechanismInfo {
            min_key_size: wide(raw.ulMinKeySize),
            max_key_size: wide(raw.ulMaxKeySize),
            sign: raw.flags & CKF_SIGN != 0,
            verify: raw.flags & CKF_VERIFY != 0,
            generate_key_pair: raw.flags & CKF_GENERATE_KEY_PAIR != 0,
            digest: raw.flags & CKF_DIGEST != 0,
            hardware: raw.flags & CKF_HW != 0,
        }
    }
}

/// The state of a session (`CK_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// `CKS_RO_PUBLIC_SESSION`: not logged in.
    ReadOnlyPublic,
    /// `CKS_RO_USER_FUNCTIONS`: the user is logged in.
    ReadOnlyUser,
    /// `CKS_RW_PUBLIC_SESSION`: not logged in.
    ReadWritePublic,
    /// `CKS_RW_USER_FUNCTIONS`: the user is logged in.
    ReadWriteUser,
    /// `CKS_RW_SO_FUNCTIONS`: the security officer is logged in.
    ReadWriteSecurityOfficer,
    /// A state the standard does not define.
    Unknown(CK_STATE),
}

impl SessionState {
    fn from_raw(raw: CK_STATE) -> SessionState {
        match raw {
            CKS_RO_PUBLIC_SESSION => SessionState::ReadOnlyPublic,
            CKS_RO_USER_FUNCTIONS => SessionState::ReadOnlyUser,
            CKS_RW_PUBLIC_SESSION => SessionState::ReadWritePublic,
            CKS_RW_USER_FUNCTIONS => SessionState::ReadWriteUser,
            CKS_RW_SO_FUNCTIONS => SessionState::ReadWriteSecurityOfficer,
            other => SessionState::Unknown(other),
        }
    }

    /// Whether the normal user is logged in in this state.
    pub fn user_logged_in(self) -> bool {
        matches!(
            self,
            SessionState::ReadOnlyUser | SessionState::ReadWriteUser
        )
    }
}

/// Information about a session (`CK_SESSION_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// The slot the session belongs to.
    pub slot: SlotId,
    /// The login state as this session sees it.
    pub state: SessionState,
    /// Whether the session is read-write.
    pub read_write: bool,
    /// The device's own error code, if any.
    pub device_error: u64,
}

impl SessionInfo {
    pub(crate) fn from_raw(raw: &CK_SESSION_INFO) -> SessionInfo {
        SessionInfo {
            slot: SlotId(raw.slotID),
            state: SessionState::from_raw(raw.state),
            read_write: raw.flags & CKF_RW_SESSION != 0,
            device_error: wide(raw.ulDeviceError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_strings_lose_their_blanks() {
        assert_eq!(padded(b"token one   "), "token one");
        assert_eq!(padded(b"    "), "");
        assert_eq!(padded(b"a\0\0"), "a");
    }

    #[test]
    fn constants_print_their_names() {
        assert_eq!(MechanismType::ECDSA.to_string(), "CKM_ECDSA");
        assert_eq!(
            MechanismType::from_raw(0x7777).to_string(),
            "MechanismType(0x7777)"
        );
        assert_eq!(ObjectClass::PRIVATE_KEY.to_string(), "CKO_PRIVATE_KEY");
    }

    #[test]
    fn limits() {
        assert_eq!(Limit::from_raw(CK_EFFECTIVELY_INFINITE), Limit::Unlimited);
        assert_eq!(Limit::from_raw(CK_UNAVAILABLE_INFORMATION), Limit::Unknown);
        assert_eq!(Limit::from_raw(16), Limit::AtMost(16));
    }

    #[test]
    fn pin_flag_names() {
        let flags = TokenFlags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_RNG);
        assert_eq!(
            flags.user_pin_flag_names(),
            ["CKF_USER_PIN_COUNT_LOW", "CKF_USER_PIN_FINAL_TRY"]
        );
    }
}
