//! The PKCS#11 v2.40 functions, by name and index, for rules and counters.

/// Generates [`Func`] with one variant per v2.40 function, in function-list order, its
/// C name, and the list of all of them, from one table so the three never disagree.
macro_rules! functions {
    ($($variant:ident = $name:literal,)*) => {
        /// A PKCS#11 v2.40 function, in the order of `CK_FUNCTION_LIST`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // each variant is the function of the same name
        pub enum Func {
            $($variant,)*
        }

        impl Func {
            /// Every function, in function-list order.
            pub const ALL: &'static [Func] = &[$(Func::$variant,)*];

            /// The C name, e.g. `"C_Sign"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name,)*
                }
            }
        }
    };
}

functions! {
    Initialize = "C_Initialize",
    Finalize = "C_Finalize",
    GetInfo = "C_GetInfo",
    GetFunctionList = "C_GetFunctionList",
    GetSlotList = "C_GetSlotList",
    GetSlotInfo = "C_GetSlotInfo",
    GetTokenInfo = "C_GetTokenInfo",
    GetMechanismList = "C_GetMechanismList",
    GetMechanismInfo = "C_GetMechanismInfo",
    InitToken = "C_InitToken",
    InitPin = "C_InitPIN",
    SetPin = "C_SetPIN",
    OpenSession = "C_OpenSession",
    CloseSession = "C_CloseSession",
    CloseAllSessions = "C_CloseAllSessions",
    GetSessionInfo = "C_GetSessionInfo",
    GetOperationState = "C_GetOperationState",
    SetOperationState = "C_SetOperationState",
    Login = "C_Login",
    Logout = "C_Logout",
    CreateObject = "C_CreateObject",
    CopyObject = "C_CopyObject",
    DestroyObject = "C_DestroyObject",
    GetObjectSize = "C_GetObjectSize",
    GetAttributeValue = "C_GetAttributeValue",
    SetAttributeValue = "C_SetAttributeValue",
    FindObjectsInit = "C_FindObjectsInit",
    FindObjects = "C_FindObjects",
    FindObjectsFinal = "C_FindObjectsFinal",
    EncryptInit = "C_EncryptInit",
    Encrypt = "C_Encrypt",
    EncryptUpdate = "C_EncryptUpdate",
    EncryptFinal = "C_EncryptFinal",
    DecryptInit = "C_DecryptInit",
    Decrypt = "C_Decrypt",
    DecryptUpdate = "C_DecryptUpdate",
    DecryptFinal = "C_DecryptFinal",
    DigestInit = "C_DigestInit",
    Digest = "C_Digest",
    DigestUpdate = "C_DigestUpdate",
    DigestKey = "C_DigestKey",
    DigestFinal = "C_DigestFinal",
    SignInit = "C_SignInit",
    Sign = "C_Sign",
    SignUpdate = "C_SignUpdate",
    SignFinal = "C_SignFinal",
    SignRecoverInit = "C_SignRecoverInit",
    SignRecover = "C_SignRecover",
    VerifyInit = "C_VerifyInit",
    Verify = "C_Verify",
    VerifyUpdate = "C_VerifyUpdate",
    VerifyFinal = "C_VerifyFinal",
    VerifyRecoverInit = "C_VerifyRecoverInit",
    VerifyRecover = "C_VerifyRecover",
    DigestEncryptUpdate = "C_DigestEncryptUpdate",
    DecryptDigestUpdate = "C_DecryptDigestUpdate",
    SignEncryptUpdate = "C_SignEncryptUpdate",
    DecryptVerifyUpdate = "C_DecryptVerifyUpdate",
    GenerateKey = "C_GenerateKey",
    GenerateKeyPair = "C_GenerateKeyPair",
    WrapKey = "C_WrapKey",
    UnwrapKey = "C_UnwrapKey",
    DeriveKey = "C_DeriveKey",
    SeedRandom = "C_SeedRandom",
    GenerateRandom = "C_GenerateRandom",
    GetFunctionStatus = "C_GetFunctionStatus",
    CancelFunction = "C_CancelFunction",
    WaitForSlotEvent = "C_WaitForSlotEvent",
}

/// How many functions [`Func`] has (68 in v2.40).
pub(crate) const COUNT: usize = Func::ALL.len();

impl Func {
    /// Its position in [`Func::ALL`], for counter arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Parses `C_Sign` or `Sign` (the `C_` prefix is optional; case matters only in that
    /// `C_InitPIN` and `C_InitPin` are both accepted).
    pub fn parse(text: &str) -> Option<Func> {
        let bare = text.strip_prefix("C_").unwrap_or(text);
        Func::ALL.iter().copied().find(|f| {
            let name = &f.name()[2..];
            name == bare || name.eq_ignore_ascii_case(bare)
        })
    }

    /// Whether fault rules and latency may target this function. `C_Initialize`,
    /// `C_Finalize` and `C_GetFunctionList` are the module's life cycle, not its
    /// behaviour under load: faking them would break the process, not test recovery.
    pub(crate) fn injectable(self) -> bool {
        !matches!(
            self,
            Func::Initialize | Func::Finalize | Func::GetFunctionList
        )
    }
}

impl std::fmt::Display for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_eight_functions_in_list_order() {
        assert_eq!(COUNT, 68);
        assert_eq!(Func::ALL[0], Func::Initialize);
        assert_eq!(Func::ALL[COUNT - 1], Func::WaitForSlotEvent);
        for (i, f) in Func::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Func::parse(f.name()), Some(*f));
        }
    }

    #[test]
    fn parse_accepts_bare_names_and_rejects_unknown() {
        assert_eq!(Func::parse("Sign"), Some(Func::Sign));
        assert_eq!(Func::parse("C_InitPin"), Some(Func::InitPin));
        assert_eq!(Func::parse("C_Nope"), None);
        assert_eq!(Func::parse(""), None);
    }
}
