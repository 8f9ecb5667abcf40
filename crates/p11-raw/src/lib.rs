//! Safe, typed wrappers over PKCS#11 v2.40, and the process-wide module registry.
//!
//! This is the only crate of the pdfsign workspace with `unsafe` code: every FFI call
//! sits in its own block with a `// SAFETY:` comment. Everything above it is safe Rust.
//!
//! # Overview
//!
//! - [`Module::open`] loads a PKCS#11 module (any `.so` exporting `C_GetFunctionList`)
//!   once per process, initialises it with `CKF_OS_LOCKING_OK`, and hands out cheap
//!   `Clone + Send + Sync` handles; `C_Finalize` runs only when the last handle is gone,
//!   and never for a module someone else in the process had initialised.
//! - Slot, token and mechanism queries live on [`Module`]; [`Module::open_session`] gives
//!   a [`Session`] (`Send`, not `Sync`: one thread at a time), closed when dropped.
//! - On a session: [`Session::login`], [`Session::find_objects`],
//!   [`Session::attributes`] (present, sensitive or absent, sized for you),
//!   [`Session::create_object`], [`Session::generate_key_pair`],
//!   [`Session::sign_init`] then [`SignOperation::sign`].
//! - Every failure is an [`Error`]; module failures carry the [`Function`] and the
//!   [`Rv`] (one variant per standard `CKR_` code, vendor codes as numbers), and
//!   [`Rv::recovery_class`] says how a caller may recover.
//!
//! What this crate does *not* do: keep login state, pool sessions, cache key handles or
//! recover from errors. That is `p11-session`'s job.
//!
//! # Example
//!
//! ```no_run
//! use p11_raw::{Attribute, Mechanism, MechanismType, Module, ObjectClass, UserType};
//!
//! let module = Module::open("/usr/lib/softhsm/libsofthsm2.so")?;
//! let slot = module.slots(true)?[0];
//! let mut session = module.open_session(slot, false)?;
//! session.login(UserType::User, Some(b"1234"))?;
//! let keys = session.find_objects(&[
//!     Attribute::Class(ObjectClass::PRIVATE_KEY),
//!     Attribute::Label(b"signer".to_vec()),
//! ])?;
//! let digest = [0u8; 32];
//! let signature = session
//!     .sign_init(&Mechanism::new(MechanismType::ECDSA), keys[0])?
//!     .sign(&digest, 64)?;
//! assert_eq!(signature.len(), 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::undocumented_unsafe_blocks
)]

mod attribute;
mod error;
mod mechanism;
mod module;
mod object;
mod session;
mod sign;
mod types;

pub use attribute::{Attribute, AttributeType, AttributeValue};
pub use error::{Error, Function, RecoveryClass, Result, Rv};
pub use mechanism::{Mechanism, PssParams};
pub use module::{Module, Threading};
pub use session::Session;
pub use sign::SignOperation;
pub use types::{
    CertificateType, KeyType, Limit, MechanismInfo, MechanismType, Mgf, ModuleInfo, ObjectClass,
    ObjectHandle, SessionHandle, SessionInfo, SessionState, SlotId, SlotInfo, TokenFlags,
    TokenInfo, UserType, Version,
};

/// The raw PKCS#11 bindings this crate is built on, for constants a caller may need.
pub use cryptoki_sys as sys;
