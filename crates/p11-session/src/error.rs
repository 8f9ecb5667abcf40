//! The crate's error type.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use p11_raw::{RecoveryClass, Rv, SlotId, TokenFlags};

use crate::key::KeyQuery;
use crate::token::TokenQuery;

/// Which token an error is about: its label, serial number and the slot it was in.
/// Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName {
    /// The token's label.
    pub label: Arc<str>,
    /// The token's serial number.
    pub serial: Arc<str>,
    /// The slot it was found in.
    pub slot: SlotId,
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token {:?} (serial {:?}, {})",
            self.label, self.serial, self.slot
        )
    }
}

/// The user-PIN flags a token reported after a PIN error (`CKF_USER_PIN_COUNT_LOW`,
/// `CKF_USER_PIN_FINAL_TRY`, `CKF_USER_PIN_LOCKED`, `CKF_USER_PIN_TO_BE_CHANGED`).
/// PKCS#11 says no more than that about how many tries are left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinFlags(pub Option<TokenFlags>);

impl PinFlags {
    /// The names of the flags that are set; empty when none is, or when the token could
    /// not be asked.
    pub fn names(&self) -> Vec<&'static str> {
        self.0
            .map(TokenFlags::user_pin_flag_names)
            .unwrap_or_default()
    }

    /// `CKF_USER_PIN_LOCKED`: the token accepts no user PIN any more.
    pub fn locked(&self) -> bool {
        self.0.is_some_and(TokenFlags::user_pin_locked)
    }

    /// `CKF_USER_PIN_FINAL_TRY`: one more wrong PIN locks the token.
    pub fn final_try(&self) -> bool {
        self.0.is_some_and(TokenFlags::user_pin_final_try)
    }

    /// `CKF_USER_PIN_COUNT_LOW`: a wrong PIN was entered since the last good one.
    pub fn count_low(&self) -> bool {
        self.0.is_some_and(TokenFlags::user_pin_count_low)
    }
}

impl fmt::Display for PinFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("unknown (the token could not be asked)"),
            Some(flags) => {
                let names = flags.user_pin_flag_names();
                if names.is_empty() {
                    f.write_str("none set")
                } else {
                    f.write_str(&names.join(", "))
                }
            }
        }
    }
}

/// Errors of this crate. PINs never appear in them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token matches the query.
    #[error("no PKCS#11 token with {query}")]
    TokenNotFound {
        /// What was looked for.
        query: TokenQuery,
    },
    /// Several tokens match the query (labels need not be unique).
    #[error("{count} PKCS#11 tokens with {query}: name one by serial or slot")]
    TokenAmbiguous {
        /// What was looked for.
        query: TokenQuery,
        /// How many matched.
        count: usize,
    },
    /// A call to the module failed while no token was chosen yet (listing slots).
    #[error("PKCS#11 module: {0}")]
    Module(#[source] p11_raw::Error),
    /// A call to the module failed for a token, and recovery (if the error allows any)
    /// did not help.
    #[error("{token}: {source}")]
    Pkcs11 {
        /// The token.
        token: TokenName,
        /// The module's error (function and return value).
        #[source]
        source: p11_raw::Error,
    },
    /// The token refused a PIN (`CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`, ...). Never
    /// retried: tokens count wrong PINs and lock.
    #[error("{token}: {source}; user PIN flags: {flags}")]
    Pin {
        /// The token.
        token: TokenName,
        /// The module's error.
        #[source]
        source: p11_raw::Error,
        /// The token's user-PIN flags, read right after the failure.
        flags: PinFlags,
    },
    /// The token must be logged in again but no PIN is kept: the last automatic login
    /// found the kept PIN wrong (it was changed), so it was erased. Call
    /// [`Token::login`](crate::Token::login) with the current PIN.
    #[error("{token}: a PIN is needed; the kept one was refused and erased")]
    PinRequired {
        /// The token.
        token: TokenName,
    },
    /// An explicit logout found login leases still out.
    #[error("{token}: {count} login lease(s) still out after waiting {waited:?}")]
    LeasesOutstanding {
        /// The token.
        token: TokenName,
        /// How many leases were out.
        count: u64,
        /// How long the call waited for them.
        waited: Duration,
    },
    /// No pooled session became free in time.
    #[error("{token}: no session free after waiting {waited:?} (pool of at most {limit})")]
    PoolExhausted {
        /// The token.
        token: TokenName,
        /// How long the call waited.
        waited: Duration,
        /// The pool's size limit at the time.
        limit: usize,
    },
    /// No key matches the query.
    #[error("{token}: no private key with {query}")]
    KeyNotFound {
        /// The token.
        token: TokenName,
        /// What was looked for.
        query: KeyQuery,
    },
    /// Several keys (or, for a subject, several certificates) match the query.
    #[error("{token}: {count} objects match {query}: name the key by CKA_ID")]
    KeyAmbiguous {
        /// The token.
        token: TokenName,
        /// What was looked for.
        query: KeyQuery,
        /// How many matched.
        count: usize,
    },
    /// The private key was found but no certificate with its `CKA_ID` (or label).
    #[error("{token}: no certificate for the private key with {query}")]
    CertificateNotFound {
        /// The token.
        token: TokenName,
        /// What was looked for.
        query: KeyQuery,
    },
    /// The key is of a type or curve this crate does not sign with, or lacks an
    /// attribute it needs.
    #[error("{token}: key with {query}: {what}")]
    UnsupportedKey {
        /// The token.
        token: TokenName,
        /// What was looked for.
        query: KeyQuery,
        /// What is missing or unsupported.
        what: &'static str,
    },
    /// The device went away and did not come back in time.
    #[error("{token}: the device is gone and did not come back within {waited:?}: {source}")]
    DeviceLost {
        /// The token.
        token: TokenName,
        /// How long recovery tried.
        waited: Duration,
        /// The last error seen.
        #[source]
        source: p11_raw::Error,
    },
}

impl Error {
    /// The PKCS#11 return value behind this error, if there is one.
    pub fn rv(&self) -> Option<Rv> {
        match self {
            Error::Module(source)
            | Error::Pkcs11 { source, .. }
            | Error::Pin { source, .. }
            | Error::DeviceLost { source, .. } => source.rv(),
            _ => None,
        }
    }

    /// Whether this is a PIN problem: a refused PIN, or none kept when one is needed.
    pub fn is_pin_error(&self) -> bool {
        matches!(self, Error::Pin { .. } | Error::PinRequired { .. })
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a module error is a PIN error (never retried).
pub(crate) fn is_pin_rv(error: &p11_raw::Error) -> bool {
    error.recovery_class() == RecoveryClass::Pin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_errors_name_the_flags_and_nothing_secret() {
        let token = TokenName {
            label: "hsm".into(),
            serial: "42".into(),
            slot: SlotId::from_raw(3),
        };
        let err = Error::Pin {
            token,
            source: p11_raw::Error::Pkcs11 {
                function: p11_raw::Function::Login,
                rv: Rv::PinIncorrect,
            },
            flags: PinFlags(Some(TokenFlags::from_raw(
                p11_raw::sys::CKF_USER_PIN_COUNT_LOW | p11_raw::sys::CKF_USER_PIN_FINAL_TRY,
            ))),
        };
        assert_eq!(
            err.to_string(),
            "token \"hsm\" (serial \"42\", slot 3): C_Login: CKR_PIN_INCORRECT; \
             user PIN flags: CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY"
        );
        assert!(err.is_pin_error());
        assert_eq!(err.rv(), Some(Rv::PinIncorrect));
        assert_eq!(
            PinFlags(None).to_string(),
            "unknown (the token could not be asked)"
        );
        assert_eq!(
            PinFlags(Some(TokenFlags::from_raw(0))).to_string(),
            "none set"
        );
    }
}
