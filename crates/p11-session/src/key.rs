//! Keys: what to look for, the facts a signer needs, the handle cached per login
//! epoch, and the shared, cloneable [`SigningKey`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Weak};

use p11_raw::{Attribute, Function, MechanismType, ObjectHandle, Rv};

use crate::error::Result;
use crate::login::{LoginLease, Pin};
use crate::lookup::{KeyFacts, exactly_one, find_objects, locate};
use crate::metrics::Repair;
use crate::token::{Token, TokenShared, lock};

/// How to find a signing key. The private key is always searched with its class
/// (`CKO_PRIVATE_KEY`; certificates with `CKO_CERTIFICATE`), since some modules return
/// other objects to a search without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyQuery {
    /// By `CKA_LABEL` of the private key; its certificate has the same `CKA_ID`.
    Label(String),
    /// By `CKA_ID` of the private key and its certificate.
    Id(Vec<u8>),
    /// By the DER subject name of the certificate (`CKA_SUBJECT`); the private key has
    /// the certificate's `CKA_ID`.
    Subject(Vec<u8>),
}

impl fmt::Display for KeyQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyQuery::Label(label) => write!(f, "label {label:?}"),
            KeyQuery::Id(id) => write!(f, "CKA_ID {}", hex(id)),
            KeyQuery::Subject(subject) => write!(f, "certificate subject {}", hex(subject)),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A named elliptic curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EcCurve {
    /// NIST P-256 (secp256r1, 1.2.840.10045.3.1.7).
    P256,
    /// NIST P-384 (secp384r1, 1.3.132.0.34).
    P384,
    /// NIST P-521 (secp521r1, 1.3.132.0.35).
    P521,
}

impl EcCurve {
    /// The curve named by `CKA_EC_PARAMS` (a DER OBJECT IDENTIFIER), if we know it.
    pub fn from_ec_params(params: &[u8]) -> Option<EcCurve> {
        match params {
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => Some(EcCurve::P256),
            [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22] => Some(EcCurve::P384),
            [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23] => Some(EcCurve::P521),
            _ => None,
        }
    }

    /// The size of the field in bits.
    pub fn field_bits(self) -> u32 {
        match self {
            EcCurve::P256 => 256,
            EcCurve::P384 => 384,
            EcCurve::P521 => 521,
        }
    }
}

/// What kind of key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA, with its modulus size.
    Rsa {
        /// Bits in the modulus.
        modulus_bits: u32,
    },
    /// ECDSA on a named curve.
    Ec {
        /// The curve.
        curve: EcCurve,
    },
}

impl KeyAlgorithm {
    /// The length of a signature: the modulus in bytes for RSA, twice the field size in
    /// bytes for ECDSA (`CKM_ECDSA` gives the raw `r || s`).
    pub fn signature_len(self) -> usize {
        match self {
            KeyAlgorithm::Rsa { modulus_bits } => (modulus_bits as usize).div_ceil(8),
            KeyAlgorithm::Ec { curve } => 2 * (curve.field_bits() as usize).div_ceil(8),
        }
    }
}

/// The private key's handle and the epoch it was found in, published as a sequence
/// lock: readers (the hot path) take no lock and retry the slow way if a writer was busy;
/// writers are serialised by the token's transition lock.
#[derive(Debug, Default)]
struct HandleCache {
    sequence: AtomicU64,
    epoch: AtomicU64,
    handle: AtomicU64,
}

impl HandleCache {
    fn load(&self, epoch: u64) -> Option<ObjectHandle> {
        let before = self.sequence.load(Ordering::Acquire);
        if before & 1 != 0 {
            return None;
        }
        let cached_epoch = self.epoch.load(Ordering::Relaxed);
        let handle = self.handle.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.sequence.load(Ordering::Relaxed) != before || cached_epoch != epoch {
            return None;
        }
        handle_from_u64(handle)
    }

    /// Only under the token's transition lock.
    fn store(&self, epoch: u64, handle: ObjectHandle) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.epoch.store(epoch, Ordering::Relaxed);
        self.handle.store(handle_to_u64(handle), Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }
}

#[allow(clippy::useless_conversion)] // CK_OBJECT_HANDLE is u64 on some platforms only
fn handle_to_u64(handle: ObjectHandle) -> u64 {
    u64::from(handle.raw())
}

#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
fn handle_from_u64(raw: u64) -> Option<ObjectHandle> {
    p11_raw::sys::CK_OBJECT_HANDLE::try_from(raw)
        .ok()
        .map(ObjectHandle::from_raw)
}

/// A key found on a token, shared by every [`SigningKey`] made from the same query.
#[derive(Debug)]
pub(crate) struct KeyShared {
    pub(crate) query: KeyQuery,
    /// Finds the private key again after a new login: its class, `CKA_ID` and label.
    relocate: Vec<Attribute>,
    pub(crate) facts: KeyFacts,
    cache: HandleCache,
}

impl KeyShared {
    /// The handle for the current epoch (looked up if the cache holds an older one),
    /// and that epoch.
    pub(crate) fn handle(&self, token: &TokenShared) -> Result<(ObjectHandle, u64)> {
        let epoch = token.login.epoch();
        if let Some(handle) = self.cache.load(epoch) {
            return Ok((handle, epoch));
        }
        self.refresh(token, None)
            .map(|refreshed| (refreshed.handle, refreshed.epoch))
    }

    /// Looks the key up again, unless the cache already holds a handle for the current
    /// epoch other than `stale`.
    pub(crate) fn refresh(
        &self,
        token: &TokenShared,
        stale: Option<ObjectHandle>,
    ) -> Result<Refreshed> {
        let mut transition = lock(&token.transition);
        let epoch = token.login.epoch();
        if let Some(handle) = self.cache.load(epoch)
            && Some(handle) != stale
        {
            return Ok(Refreshed {
                handle,
                epoch,
                looked_up: false,
            });
        }
        // Private keys are found only while logged in: a login lost since (a logout
        // behind our back) is redone first, or the search would find nothing, again and
        // again. A logout can also land between that login and the search: then the
        // search finds nothing, which says the login went, not that the key did. So an
        // empty search while logged out logs in and searches once more; logged out again,
        // it is reported as the lost login it is, never as a missing key.
        let mut searches = 0;
        let (found, epoch) = loop {
            searches += 1;
            if token.relogin_locked(&mut transition)? {
                token.metrics.repaired(Repair::Login);
            }
            // A re-login just now began a new epoch: the handle found belongs to it.
            let epoch = token.login.epoch();
            let found = match find_objects(token, token.anchor(&mut transition)?, &self.relocate) {
                // The anchor was left with an operation active (a search whose end
                // failed): `anchor` replaces an unfit anchor, so search once more on the
                // new one.
                Err(error) if searches == 1 && error.rv() == Some(Rv::OperationActive) => continue,
                other => other?,
            };
            if !found.is_empty() {
                break (found, epoch);
            }
            let logged_in = token
                .anchor(&mut transition)?
                .info()
                .map_err(|error| token.pkcs11_error(error))?
                .state
                .user_logged_in();
            if logged_in {
                break (found, epoch);
            }
            if searches >= 2 {
                return Err(token.pkcs11_error(p11_raw::Error::Pkcs11 {
                    function: Function::FindObjects,
                    rv: Rv::UserNotLoggedIn,
                }));
            }
        };
        let handle = exactly_one(token, &self.query, &found)?;
        token.metrics.key_looked_up();
        self.cache.store(epoch, handle);
        Ok(Refreshed {
            handle,
            epoch,
            looked_up: true,
        })
    }
}

/// What [`KeyShared::refresh`] found.
pub(crate) struct Refreshed {
    pub(crate) handle: ObjectHandle,
    /// The epoch the handle belongs to.
    pub(crate) epoch: u64,
    /// Whether the token was searched (or the cache already had a fresh handle).
    pub(crate) looked_up: bool,
}

/// A private key on a token, ready to sign: `Clone + Send + Sync`, shared by all
/// threads. It holds a login lease, so the token stays logged in while it lives.
///
/// Its facts (algorithm, allowed mechanisms, certificate and chain) are read once;
/// the handle is cached per login epoch and shared by every session.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) shared: Arc<KeyShared>,
    pub(crate) lease: LoginLease,
    /// The PIN for context-specific logins, if not the kept user PIN.
    pub(crate) context_pin: Option<Arc<Pin>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("token", &self.lease.token().name())
            .field("label", &self.shared.facts.label)
            .field("id", &hex(&self.shared.facts.id))
            .field("algorithm", &self.shared.facts.algorithm)
            .field(
                "always_authenticate",
                &self.shared.facts.always_authenticate,
            )
            .field("own_context_pin", &self.context_pin.is_some())
            .finish()
    }
}

impl SigningKey {
    /// The token.
    pub fn token(&self) -> &Token {
        self.lease.token()
    }

    /// The query the key was found by.
    pub fn query(&self) -> &KeyQuery {
        &self.shared.query
    }

    /// `CKA_LABEL` of the private key (lossy UTF-8).
    pub fn label(&self) -> &str {
        &self.shared.facts.label
    }

    /// `CKA_ID` of the private key and its certificate.
    pub fn id(&self) -> &[u8] {
        &self.shared.facts.id
    }

    /// RSA with its modulus size, or EC with its curve.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.shared.facts.algorithm
    }

    /// The length of a signature with this key.
    pub fn signature_len(&self) -> usize {
        self.shared.facts.algorithm.signature_len()
    }

    /// `CKA_ALLOWED_MECHANISMS`, if the key restricts them (`None`: any mechanism its
    /// type supports). A façade that must pick a hash-and-sign mechanism
    /// (`CKM_SHA256_RSA_PKCS`, ...) learns it here.
    pub fn allowed_mechanisms(&self) -> Option<&[MechanismType]> {
        self.shared.facts.allowed.as_deref()
    }

    /// Whether the key may be used with `mechanism`.
    pub fn allows(&self, mechanism: MechanismType) -> bool {
        self.allowed_mechanisms()
            .is_none_or(|allowed| allowed.contains(&mechanism))
    }

    /// `CKA_ALWAYS_AUTHENTICATE`: each signature needs a context-specific login, which
    /// [`SigningKey::sign`] makes.
    pub fn always_authenticate(&self) -> bool {
        self.shared.facts.always_authenticate
    }

    /// The key's certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.shared.facts.certificate
    }

    /// The issuers found on the token (DER), nearest first: following `CKA_ISSUER` to
    /// `CKA_SUBJECT` up to a self-issued certificate or one not on the token.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.shared.facts.chain
    }

    /// A clone that uses `pin` for the context-specific logins of an
    /// always-authenticate key, instead of the kept user PIN. A refused `pin` is
    /// reported as [`Error::Pin`](crate::Error::Pin) and never retried.
    pub fn with_context_pin(&self, pin: &[u8]) -> SigningKey {
        SigningKey {
            shared: Arc::clone(&self.shared),
            lease: self.lease.clone(),
            context_pin: Some(Arc::new(Pin::new(pin))),
        }
    }

    /// Finds the key for `query`, or returns the one already found for it.
    pub(crate) fn find(lease: &LoginLease, query: &KeyQuery) -> Result<SigningKey> {
        let token = &lease.token().shared;
        let mut keys = lock(&token.keys);
        if let Some(shared) = keys.get(query).and_then(Weak::upgrade) {
            return Ok(SigningKey {
                shared,
                lease: lease.clone(),
                context_pin: None,
            });
        }
        let shared = {
            let mut transition = lock(&token.transition);
            // The lease says logged in; make sure the token agrees (it may have lost the
            // login behind our back) before searching for private objects.
            token.relogin_locked(&mut transition)?;
            let epoch = token.login.epoch();
            let anchor = token.anchor(&mut transition)?;
            let (handle, facts, relocate) = locate(token, anchor, query)?;
            token.metrics.key_looked_up();
            let cache = HandleCache::default();
            cache.store(epoch, handle);
            Arc::new(KeyShared {
                query: query.clone(),
                relocate,
                facts,
                cache,
            })
        };
        keys.retain(|_, weak| weak.strong_count() > 0);
        keys.insert(query.clone(), Arc::downgrade(&shared));
        tracing::debug!(
            token = %token.name(),
            key = %query,
            algorithm = ?shared.facts.algorithm,
            "key found"
        );
        Ok(SigningKey {
            shared,
            lease: lease.clone(),
            context_pin: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_from_ec_params() {
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert_eq!(EcCurve::from_ec_params(&p256), Some(EcCurve::P256));
        assert_eq!(
            EcCurve::from_ec_params(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
            Some(EcCurve::P521)
        );
        assert_eq!(EcCurve::from_ec_params(&p256[..9]), None);
    }

    #[test]
    fn signature_lengths() {
        let rsa = KeyAlgorithm::Rsa { modulus_bits: 2048 };
        assert_eq!(rsa.signature_len(), 256);
        let p521 = KeyAlgorithm::Ec {
            curve: EcCurve::P521,
        };
        assert_eq!(p521.signature_len(), 132);
    }

    #[test]
    fn handle_cache_is_per_epoch() {
        let cache = HandleCache::default();
        assert_eq!(cache.load(1), None);
        cache.store(3, ObjectHandle::from_raw(42));
        assert_eq!(cache.load(3), Some(ObjectHandle::from_raw(42)));
        assert_eq!(cache.load(4), None);
    }
}
