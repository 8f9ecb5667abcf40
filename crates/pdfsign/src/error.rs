//! The façade's one error type: each layer's error nested with `#[from]`, plus what only
//! the façade knows (which module paths were tried, which key labels exist), and a
//! [`Error::hint`] saying what to do.

use std::path::PathBuf;

use crate::pin::PinError;
use crate::uri::{ObjectType, UriError};

/// Everything that can go wrong in `pdfsign`. No variant ever holds a PIN, and URIs are
/// kept without theirs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PKCS#11 URI does not parse.
    #[error("invalid PKCS#11 URI")]
    Uri(#[from] UriError),
    /// The URI has an attribute the signer cannot honour (a vendor extension).
    #[error("the PKCS#11 URI attribute {name} is not supported")]
    UnsupportedUriAttribute {
        /// The attribute's name.
        name: String,
    },
    /// The URI names an object type a signing key cannot be.
    #[error("the PKCS#11 URI names type={found}; a signing key is type=private (or type=cert)")]
    WrongObjectType {
        /// The type in the URI.
        found: ObjectType,
    },
    /// No PIN could be had.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Neither the URI (`module-path`, `module-name`) nor the caller named a module.
    #[error("no PKCS#11 module given")]
    NoModule,
    /// The module file was not found.
    #[error("PKCS#11 module not found (tried {})", display_paths(tried))]
    ModuleNotFound {
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// A PKCS#11 call (or loading the module) failed.
    #[error(transparent)]
    Pkcs11(#[from] p11_raw::Error),
    /// No token matches the URI.
    #[error("no token matches {uri}")]
    TokenNotFound {
        /// The URI, without its PIN.
        uri: String,
        /// The labels of the tokens that are present.
        present: Vec<String>,
    },
    /// More than one token matches the URI.
    #[error("{count} tokens match {uri}")]
    AmbiguousToken {
        /// The URI, without its PIN.
        uri: String,
        /// How many match.
        count: usize,
    },
    /// The token refused the PIN.
    #[error("the token {token:?} refused the PIN")]
    WrongPin {
        /// The token's label.
        token: String,
        /// The token's user-PIN flags after the attempt (`CKF_USER_PIN_COUNT_LOW`,
        /// `CKF_USER_PIN_FINAL_TRY`, `CKF_USER_PIN_LOCKED`, ...).
        flags: Vec<&'static str>,
        /// The module's answer.
        #[source]
        source: p11_raw::Error,
    },
    /// No private key on the token matches the URI.
    #[error("no private key on token {token:?} matches {uri}")]
    KeyNotFound {
        /// The URI, without its PIN.
        uri: String,
        /// The token's label.
        token: String,
        /// The labels of the private keys that are there.
        labels: Vec<String>,
    },
    /// More than one private key matches the URI.
    #[error("{} private keys on token {token:?} match {uri}", labels.len())]
    AmbiguousKey {
        /// The URI, without its PIN.
        uri: String,
        /// The token's label.
        token: String,
        /// The labels of the keys that match.
        labels: Vec<String>,
    },
    /// The key has no certificate on the token (same `CKA_ID` or label) and none was given.
    #[error("the key with {key} has no certificate on token {token:?}")]
    CertificateNotFound {
        /// How the key was found (`label "p256"`, `CKA_ID 01`).
        key: String,
        /// The token's label.
        token: String,
    },
    /// The key is neither RSA nor EC on P-256, P-384 or P-521.
    #[error("unsupported key: {what}")]
    UnsupportedKey {
        /// What the key is.
        what: String,
    },
    /// A key or certificate file is unusable.
    #[error("{}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{during} {}", path.display())]
    Io {
        /// What was being done, e.g. "reading".
        during: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The token layer failed (sessions, login state, keys, device recovery).
    #[error(transparent)]
    Session(#[from] p11_session::Error),
    /// Building or parsing the CMS signature failed.
    #[error(transparent)]
    Cms(#[from] cms_sign::Error),
    /// Reading the PDF or writing its signed increment failed.
    #[error(transparent)]
    Pdf(#[from] pdf_sig::Error),
    /// The token signed, but the signature came back malformed or failed a check.
    #[error("the key failed to sign")]
    Key(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// What the user can do about it, when the façade knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Uri(_) => Some(
                "a key URI looks like pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so \
                 (RFC 7512; percent-encode spaces and reserved characters)"
                    .to_owned(),
            ),
            Error::NoModule => Some(
                "add module-path=/path/to/module.so to the URI's query, or pass --module"
                    .to_owned(),
            ),
            Error::ModuleNotFound { .. } => Some(
                "check the module's path (for SoftHSM2: apt-get install softhsm2; \
                 /usr/lib/softhsm/libsofthsm2.so)"
                    .to_owned(),
            ),
            Error::TokenNotFound { present, .. } => Some(if present.is_empty() {
                "the module shows no token: is it initialised, is SOFTHSM2_CONF right?".to_owned()
            } else {
                format!("tokens present: {}", present.join(", "))
            }),
            Error::AmbiguousToken { .. } => {
                Some("add serial= or slot-id= to the URI to pick one".to_owned())
            }
            Error::WrongPin { flags, .. } => Some(pin_hint(flags)),
            Error::KeyNotFound { labels, .. } => Some(if labels.is_empty() {
                "the token holds no private key visible after login".to_owned()
            } else {
                format!(
                    "private keys on the token: {}; name one with object=LABEL",
                    labels.join(", ")
                )
            }),
            Error::AmbiguousKey { .. } => {
                Some("add object= or id= to the URI to pick one".to_owned())
            }
            Error::CertificateNotFound { .. } => Some(
                "store the certificate on the token with the key's CKA_ID, or pass --cert"
                    .to_owned(),
            ),
            Error::Pin(PinError::Missing) => Some(
                "give the PIN with pin-source=file:/path in the URI, --pin-source, or the \
                 PDFSIGN_PIN environment variable"
                    .to_owned(),
            ),
            Error::Session(p11_session::Error::PinRequired { .. }) => Some(
                "the token's PIN was changed while signing: open the signer again with the new PIN"
                    .to_owned(),
            ),
            Error::Session(p11_session::Error::PoolExhausted { .. }) => Some(
                "all the token's sessions were busy: use fewer threads (-j) or a larger pool"
                    .to_owned(),
            ),
            Error::Pdf(pdf_sig::Error::Encrypted) => {
                Some("decrypt it first, e.g. qpdf --decrypt IN OUT".to_owned())
            }
            _ => None,
        }
    }

    /// Whether this error means the PIN was refused (never retry those).
    pub fn is_wrong_pin(&self) -> bool {
        matches!(self, Error::WrongPin { .. })
    }
}

fn pin_hint(flags: &[&str]) -> String {
    let flags_text = if flags.is_empty() {
        "none of the user-PIN flags is set".to_owned()
    } else {
        format!("token flags: {}", flags.join(", "))
    };
    let advice = if flags.contains(&"CKF_USER_PIN_LOCKED") {
        "the PIN is locked: the security officer must unlock it"
    } else if flags.contains(&"CKF_USER_PIN_FINAL_TRY") {
        "one more wrong PIN locks the token: check it before trying again"
    } else {
        "tokens lock after a few wrong PINs: check it before trying again"
    };
    format!("{flags_text}; {advice}")
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_what_to_do() {
        let err = Error::KeyNotFound {
            uri: "pkcs11:object=x".into(),
            token: "t".into(),
            labels: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            err.hint().unwrap(),
            "private keys on the token: a, b; name one with object=LABEL"
        );
        let err = Error::WrongPin {
            token: "t".into(),
            flags: vec!["CKF_USER_PIN_COUNT_LOW", "CKF_USER_PIN_FINAL_TRY"],
            source: p11_raw::Error::Pkcs11 {
                function: p11_raw::Function::Login,
                rv: p11_raw::Rv::PinIncorrect,
            },
        };
        let hint = err.hint().unwrap();
        assert!(hint.contains("CKF_USER_PIN_FINAL_TRY") && hint.contains("one more"));
        let err = Error::ModuleNotFound {
            tried: vec!["/a.so".into(), "/b.so".into()],
        };
        assert_eq!(
            err.to_string(),
            "PKCS#11 module not found (tried /a.so, /b.so)"
        );
    }
}
