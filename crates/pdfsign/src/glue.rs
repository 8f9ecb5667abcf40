//! The glue between `p11-session` and `cms-sign`: [`Pkcs11Key`] implements `cms-sign`'s
//! key trait over a token's [`SigningKey`].
//!
//! The digest is computed here, not on the token (DESIGN.md, "Mechanisms"): `CKM_RSA_PKCS`
//! signs a DER `DigestInfo`, `CKM_RSA_PKCS_PSS` the bare hash with PSS parameters (same
//! hash, MGF1 with it, salt as long as it), `CKM_ECDSA` the bare hash (raw `r || s` back,
//! which `cms-sign` turns into DER). The hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`,
//! `CKM_SHA256_RSA_PKCS_PSS`, `CKM_ECDSA_SHA256`, ...) are used only when the key's
//! `CKA_ALLOWED_MECHANISMS` leaves no other way; then the token hashes the message.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use cms_sign::{
    CmsSigner, DigestAlgorithm, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm,
    SignatureScheme,
};
use p11_raw::{Attribute, AttributeType, Module, ObjectClass, SlotId};
use p11_session::{
    KeyQuery, LoginLease, Mechanism, MechanismType, PssParams, SigningKey, StartedSign, Token,
    TokenQuery,
};

use crate::error::{Error, Result};
use crate::module;
use crate::pin::{Pin, PinError};
use crate::uri::{ObjectType, Pkcs11Uri};

/// A private key on a PKCS#11 token, with its certificate and chain, signing for
/// `cms-sign`. `Send + Sync`: share it (or the [`Signer`](crate::Signer) built on it)
/// between threads; they share one login and one session pool.
pub struct Pkcs11Key {
    key: SigningKey,
    algorithm: KeyAlgorithm,
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Key {
    /// Opens the key a PKCS#11 URI names: loads the module (`module-path`,
    /// `module-name`, else `fallback_module`), finds the one token matching the URI's
    /// token attributes, logs in with `pin` (else the URI's `pin-value` or
    /// `pin-source`) — one attempt, never retried — and finds the one private key
    /// matching `object`, `id` (both when given), with its certificate and chain.
    ///
    /// # Errors
    /// [`Error::UnsupportedUriAttribute`], [`Error::WrongObjectType`],
    /// [`Error::ModuleNotFound`], [`Error::NoModule`], [`Error::TokenNotFound`],
    /// [`Error::AmbiguousToken`], [`Error::Pin`], [`Error::WrongPin`],
    /// [`Error::KeyNotFound`] (naming the labels there are), [`Error::AmbiguousKey`],
    /// [`Error::CertificateNotFound`], [`Error::UnsupportedKey`], [`Error::Session`].
    pub fn open(
        uri: &Pkcs11Uri,
        pin: Option<&Pin>,
        fallback_module: Option<&Path>,
    ) -> Result<Pkcs11Key> {
        Pkcs11Key::open_with(uri, fallback_module, |_| match pin {
            Some(pin) => Ok(pin.clone()),
            None => match (uri.pin_value(), uri.pin_source()) {
                (Some(value), _) => Ok(Pin::new(value)),
                (None, Some(source)) => Ok(Pin::from_source(source)?),
                (None, None) => Err(PinError::Missing.into()),
            },
        })
    }

    /// As [`Pkcs11Key::open`], asking `pin` for the PIN only once the module is loaded
    /// and the token found (it gets the token's label, for a prompt): a URI naming no
    /// existing module or token is reported before anyone is asked for a PIN.
    ///
    /// # Errors
    /// As [`Pkcs11Key::open`], and whatever `pin` returns.
    pub fn open_with(
        uri: &Pkcs11Uri,
        fallback_module: Option<&Path>,
        pin: impl FnOnce(&str) -> Result<Pin>,
    ) -> Result<Pkcs11Key> {
        check_uri(uri)?;
        let module = module::open(uri, fallback_module)?;
        let (slot, info) = module::find_slot(&module, uri)?;
        let query =
            if !info.serial_number.is_empty() && serial_is_unique(&module, &info.serial_number) {
                TokenQuery::Serial(info.serial_number.clone())
            } else {
                TokenQuery::Slot(slot)
            };
        let token = Token::open(&module, &query).map_err(|e| session_error(e, None))?;
        let pin = pin(&info.label)?;
        tracing::debug!(token = %token.name(), "logging in");
        let lease = token
            .login(pin.expose())
            .map_err(|e| session_error(e, None))?;
        drop(pin);
        let key = find_key(&lease, &module, slot, uri, &info.label)?;
        Pkcs11Key::from_signing_key(key)
    }

    /// Wraps a key found with `p11-session` directly.
    ///
    /// # Errors
    /// [`Error::UnsupportedKey`] for a key type `cms-sign` does not sign with.
    pub fn from_signing_key(key: SigningKey) -> Result<Pkcs11Key> {
        let algorithm = match key.algorithm() {
            p11_session::KeyAlgorithm::Rsa { modulus_bits } => KeyAlgorithm::Rsa { modulus_bits },
            p11_session::KeyAlgorithm::Ec { curve } => KeyAlgorithm::Ec(match curve {
                p11_session::EcCurve::P256 => EcCurve::P256,
                p11_session::EcCurve::P384 => EcCurve::P384,
                p11_session::EcCurve::P521 => EcCurve::P521,
                other => {
                    return Err(Error::UnsupportedKey {
                        what: format!("EC curve {other:?}"),
                    });
                }
            }),
            other => {
                return Err(Error::UnsupportedKey {
                    what: format!("{other:?}"),
                });
            }
        };
        Ok(Pkcs11Key {
            certificate: key.certificate_der().to_vec(),
            chain: key.chain_der().to_vec(),
            key,
            algorithm,
        })
    }

    /// Uses `certificate` (DER) and `chain` instead of what the token holds.
    pub fn with_certificate(mut self, certificate: Vec<u8>, chain: Vec<Vec<u8>>) -> Pkcs11Key {
        self.certificate = certificate;
        self.chain = chain;
        self
    }

    /// The token's key underneath.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The mechanism and the data to give it for `request`, or `None` if the key allows
    /// no mechanism that makes this signature.
    fn plan<'a>(&self, request: &SignRequest<'a>) -> Option<(Mechanism, Data<'a>)> {
        let SignatureAlgorithm { scheme, digest } = request.algorithm;
        let key = &self.key;
        let hash = hash_mechanism(digest);
        match scheme {
            SignatureScheme::RsaPkcs1v15 => {
                if key.allows(MechanismType::RSA_PKCS) {
                    Some((
                        Mechanism::new(MechanismType::RSA_PKCS),
                        Data::DigestInfo(digest, request.digest),
                    ))
                } else {
                    let combined = match digest {
                        DigestAlgorithm::Sha256 => MechanismType::SHA256_RSA_PKCS,
                        DigestAlgorithm::Sha384 => MechanismType::SHA384_RSA_PKCS,
                        DigestAlgorithm::Sha512 => MechanismType::SHA512_RSA_PKCS,
                    };
                    key.allows(combined)
                        .then(|| (Mechanism::new(combined), Data::Bytes(request.message)))
                }
            }
            SignatureScheme::RsaPss => {
                let params = PssParams::for_hash(hash)?;
                if key.allows(MechanismType::RSA_PKCS_PSS) {
                    Some((
                        Mechanism::pss(MechanismType::RSA_PKCS_PSS, params),
                        Data::Bytes(request.digest),
                    ))
                } else {
                    let combined = match digest {
                        DigestAlgorithm::Sha256 => MechanismType::SHA256_RSA_PKCS_PSS,
                        DigestAlgorithm::Sha384 => MechanismType::SHA384_RSA_PKCS_PSS,
                        DigestAlgorithm::Sha512 => MechanismType::SHA512_RSA_PKCS_PSS,
                    };
                    key.allows(combined).then(|| {
                        (
                            Mechanism::pss(combined, params),
                            Data::Bytes(request.message),
                        )
                    })
                }
            }
            SignatureScheme::Ecdsa => {
                if key.allows(MechanismType::ECDSA) {
                    Some((
                        Mechanism::new(MechanismType::ECDSA),
                        Data::Bytes(request.digest),
                    ))
                } else {
                    let combined = match digest {
                        DigestAlgorithm::Sha256 => MechanismType::ECDSA_SHA256,
                        DigestAlgorithm::Sha384 => MechanismType::ECDSA_SHA384,
                        DigestAlgorithm::Sha512 => MechanismType::ECDSA_SHA512,
                    };
                    key.allows(combined)
                        .then(|| (Mechanism::new(combined), Data::Bytes(request.message)))
                }
            }
        }
    }
}

/// What the token is given to sign.
enum Data<'a> {
    /// As is (a bare hash, or the message for a hash-and-sign mechanism).
    Bytes(&'a [u8]),
    /// A DER `DigestInfo` around the hash, for `CKM_RSA_PKCS`.
    DigestInfo(DigestAlgorithm, &'a [u8]),
}

fn hash_mechanism(digest: DigestAlgorithm) -> MechanismType {
    match digest {
        DigestAlgorithm::Sha256 => MechanismType::SHA256,
        DigestAlgorithm::Sha384 => MechanismType::SHA384,
        DigestAlgorithm::Sha512 => MechanismType::SHA512,
    }
}

impl CmsSigner for Pkcs11Key {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        self.mechanism_for(algorithm).is_some()
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        self.sign_with(request, None)
    }
}

impl Pkcs11Key {
    /// Starts a signature for `algorithm` before its data exists
    /// ([`SigningKey::start`]: `C_SignInit` now). The key returned signs for this one
    /// (`cms-sign`'s `SignedDataBuilder::sign_at_using`) and finishes the started
    /// signature; dropped unused, it costs the session the signature waited on.
    pub(crate) fn start(&self, algorithm: SignatureAlgorithm) -> StartedKey<'_> {
        let started = self
            .mechanism_for(algorithm)
            .map(|mechanism| self.key.start(&mechanism));
        StartedKey {
            key: self,
            started: Mutex::new(started),
        }
    }

    /// The mechanism a signature with `algorithm` takes, `None` if the key allows none.
    fn mechanism_for(&self, algorithm: SignatureAlgorithm) -> Option<Mechanism> {
        let probe = SignRequest {
            message: &[],
            digest: &[],
            algorithm,
        };
        self.plan(&probe).map(|(mechanism, _)| mechanism)
    }

    /// Signs `request` on the token: through `started` if it was started with the
    /// mechanism the request takes, else from the start.
    fn sign_with(
        &self,
        request: &SignRequest<'_>,
        started: Option<StartedSign<'_>>,
    ) -> Result<Vec<u8>, KeyError> {
        let (mechanism, data) = self
            .plan(request)
            .ok_or("the key's CKA_ALLOWED_MECHANISMS allow no mechanism for this signature")?;
        let started = started.filter(|started| started.mechanism() == &mechanism);
        let sign = |bytes: &[u8]| match started {
            Some(started) => started.sign(bytes),
            None => self.key.sign(&mechanism, bytes),
        };
        let signature = match data {
            Data::Bytes(bytes) => sign(bytes)?,
            Data::DigestInfo(digest, hash) => {
                // A DigestInfo is at most 19 + 64 bytes: build it on the stack.
                let prefix = digest.digest_info_prefix();
                let mut info = [0u8; 96];
                let len = prefix.len() + hash.len();
                let buffer = info.get_mut(..len).ok_or("digest too long")?;
                buffer[..prefix.len()].copy_from_slice(prefix);
                buffer[prefix.len()..].copy_from_slice(hash);
                sign(buffer)?
            }
        };
        Ok(signature)
    }
}

/// A [`Pkcs11Key`] with a signature started ([`Pkcs11Key::start`]): signs for it once,
/// through the started signature.
pub(crate) struct StartedKey<'k> {
    key: &'k Pkcs11Key,
    /// Taken by the first signature.
    started: Mutex<Option<StartedSign<'k>>>,
}

impl CmsSigner for StartedKey<'_> {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm
    }

    fn certificate(&self) -> &[u8] {
        &self.key.certificate
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.key.chain
    }

    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        self.key.supports(algorithm)
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        let started = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.key.sign_with(request, started)
    }
}

/// Refuses what no signing key can satisfy: vendor attributes it cannot honour, and
/// object types other than a private key (or its certificate).
///
/// # Errors
/// [`Error::UnsupportedUriAttribute`], [`Error::WrongObjectType`].
pub(crate) fn check_uri(uri: &Pkcs11Uri) -> Result<()> {
    if let Some(name) = uri.unsupported_attributes().next() {
        return Err(Error::UnsupportedUriAttribute {
            name: name.to_owned(),
        });
    }
    if let Some(found) = uri
        .object_type()
        .filter(|t| !matches!(t, ObjectType::Private | ObjectType::Cert))
    {
        return Err(Error::WrongObjectType { found });
    }
    Ok(())
}

/// Whether no other token of the module has this serial number.
fn serial_is_unique(module: &Module, serial: &str) -> bool {
    module
        .slots(true)
        .map(|slots| {
            slots
                .into_iter()
                .filter(|&slot| {
                    module
                        .token_info(slot)
                        .is_ok_and(|t| t.serial_number == serial)
                })
                .count()
                == 1
        })
        .unwrap_or(false)
}

/// Finds the private key the URI names, with the labels there are when none matches.
fn find_key(
    lease: &LoginLease,
    module: &Module,
    slot: SlotId,
    uri: &Pkcs11Uri,
    token_label: &str,
) -> Result<SigningKey> {
    let not_found = || {
        let labels = private_key_labels(module, slot);
        Error::KeyNotFound {
            uri: uri.to_string(),
            token: token_label.to_owned(),
            labels: labels.into_iter().map(|(label, _)| label).collect(),
        }
    };
    let query = match (uri.id(), uri.object()) {
        (Some(id), _) => KeyQuery::Id(id.to_vec()),
        (None, Some(label)) => KeyQuery::Label(label.to_owned()),
        (None, None) => {
            // No key named: the token's only private key, if it has one.
            let keys = private_key_labels(module, slot);
            match keys.as_slice() {
                [(_, id)] if !id.is_empty() => KeyQuery::Id(id.clone()),
                [(label, _)] => KeyQuery::Label(label.clone()),
                [] => return Err(not_found()),
                many => {
                    return Err(Error::AmbiguousKey {
                        uri: uri.to_string(),
                        token: token_label.to_owned(),
                        labels: many.iter().map(|(label, _)| label.clone()).collect(),
                    });
                }
            }
        }
    };
    let key = match lease.key(&query) {
        Ok(key) => key,
        Err(p11_session::Error::KeyNotFound { .. }) => return Err(not_found()),
        Err(p11_session::Error::KeyAmbiguous { .. }) => {
            return Err(Error::AmbiguousKey {
                uri: uri.to_string(),
                token: token_label.to_owned(),
                labels: private_key_labels(module, slot)
                    .into_iter()
                    .map(|(label, _)| label)
                    .collect(),
            });
        }
        Err(e) => return Err(session_error(e, Some(token_label))),
    };
    // Both object= and id= given: the key found by id must have that label too.
    if let (Some(_), Some(label)) = (uri.id(), uri.object())
        && key.label() != label
    {
        return Err(not_found());
    }
    Ok(key)
}

/// The labels and ids of the private keys on the token in `slot` (the application is
/// logged in, so they are visible from any of its sessions). Best effort: empty on error.
fn private_key_labels(module: &Module, slot: SlotId) -> Vec<(String, Vec<u8>)> {
    let list = || -> p11_raw::Result<Vec<(String, Vec<u8>)>> {
        let session = module.open_session(slot, false)?;
        let mut out = Vec::new();
        for handle in session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
            let mut label = String::new();
            let mut id = Vec::new();
            for value in session.attributes(handle, &[AttributeType::Label, AttributeType::Id])? {
                match value.present() {
                    Some(Attribute::Label(l)) => label = String::from_utf8_lossy(&l).into_owned(),
                    Some(Attribute::Id(i)) => id = i,
                    _ => {}
                }
            }
            out.push((label, id));
        }
        Ok(out)
    };
    let mut labels = list().unwrap_or_default();
    labels.sort();
    labels
}

/// A `p11-session` error as the façade reports it: PIN refusals and missing keys get
/// their own variants (with hints); the rest nest.
pub(crate) fn session_error(error: p11_session::Error, token_label: Option<&str>) -> Error {
    match error {
        p11_session::Error::Pin {
            token,
            source,
            flags,
        } => Error::WrongPin {
            token: token.label.to_string(),
            flags: flags.names(),
            source,
        },
        p11_session::Error::CertificateNotFound { query, token } => Error::CertificateNotFound {
            key: query.to_string(),
            token: token_label.unwrap_or(&token.label).to_owned(),
        },
        other => Error::Session(other),
    }
}
