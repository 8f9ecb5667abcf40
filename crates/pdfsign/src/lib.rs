//! Sign PDF documents with keys held in PKCS#11 tokens, from many threads at once.
//!
//! `pdfsign` is the façade of the workspace: it opens a key from a PKCS#11 URI
//! (RFC 7512), glues the layers below together and gives a service three lines to sign
//! with — open a [`Signer`], share it across threads, sign:
//!
//! ```no_run
//! use pdfsign::{SignOptions, Signer};
//!
//! let uri = "pkcs11:token=pdfsign-demo;object=p256\
//!            ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin";
//! let signer = Signer::from_uri(&uri.parse()?, None, &SignOptions::default())?;
//! let report = signer.sign_file("contract.pdf", "contract-signed.pdf")?;
//! assert_eq!(report.field_name, "Signature1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! - [`Pkcs11Uri`]: a parsed PKCS#11 URI; `Display` never shows the PIN.
//! - [`Pin`]: a PIN in zeroising memory, read from a `pin-source` or given.
//! - [`SignOptions`]: digest, sub-filter, RSA-PSS, visible appearance, reason, location,
//!   contact, signing time, field name.
//! - [`Signer`]: `Clone + Send + Sync`; [`Signer::sign_file`], [`Signer::sign_bytes`],
//!   and two-phase [`Signer::prepare_file`] then [`Signer::finish_file`] (or
//!   [`PreparedFile::finish_with_container`] for a container made elsewhere);
//!   [`Signer::sign_file_pending`] stops before the fsync and rename, which
//!   [`PendingFile::commit`] does, perhaps on another thread, so that a busy service
//!   need not leave its token idle while the disk works.
//! - [`SoftwareKey`]: a PKCS#8 PEM key with its certificate, through the same key trait
//!   as a token's key, for tests and users without a token.
//! - [`verify_file`]: every signature of a PDF — integrity, coverage, certification
//!   path to a trust root.
//! - [`Error`]: one enum nesting each layer's error, with [`Error::hint`].
//!
//! ```text
//! PDF in ─► pdf-sig lays out the increment, hashes /ByteRange ─► digest
//!        ─► cms-sign builds signed attributes ─► key signs (token: hash locally, then
//!           CKM_RSA_PKCS / CKM_RSA_PKCS_PSS / CKM_ECDSA) ─► CMS SignedData
//!        ─► pdf-sig patches /Contents, fsyncs, renames ─► signed PDF out
//! ```
//!
//! What it does not do: time-stamps, revocation checking, encrypted PDFs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chain;
mod error;
mod glue;
mod inventory;
mod module;
mod options;
mod pin;
mod signer;
mod software;
pub mod time;
mod uri;
mod verify;

pub use crate::chain::{ChainReport, ChainStatus, Link};
pub use crate::error::{Error, Result};
pub use crate::glue::Pkcs11Key;
pub use crate::inventory::{Inventory, ObjectEntry, SlotEntry, TokenEntry, inventory};
pub use crate::options::{Digest, Rect, SignOptions, SignOptionsBuilder, SubFilter};
pub use crate::pin::{Pin, PinError};
pub use crate::signer::{PendingFile, PreparedFile, SignReport, Signer};
pub use crate::software::{SoftwareKey, read_certificates};
pub use crate::uri::{ObjectType, Pkcs11Uri, UriError, redact_pin};
pub use crate::verify::{Coverage, SignatureReport, VerifyReport, load_trust_roots, verify_file};

/// The key trait of `cms-sign`, for callers that bring their own key.
pub use cms_sign::{CmsSigner, KeyAlgorithm, SignRequest};
