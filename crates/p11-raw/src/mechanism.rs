//! Mechanisms with their parameters.

use std::ffi::c_void;
use std::mem::size_of;

use cryptoki_sys::*;

use crate::types::{MechanismType, Mgf};

/// Parameters of RSA-PSS (`CK_RSA_PKCS_PSS_PARAMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PssParams {
    /// The hash mechanism (`CKM_SHA256`, ...).
    pub hash: MechanismType,
    /// The mask generation function (`CKG_MGF1_SHA256`, ...).
    pub mgf: Mgf,
    /// The salt length in bytes.
    pub salt_len: u64,
}

impl PssParams {
    /// The profile PAdES and most validators expect: MGF1 with the same hash, salt as
    /// long as the hash. `hash` is `CKM_SHA256`, `CKM_SHA384` or `CKM_SHA512`; `None` for
    /// any other.
    pub fn for_hash(hash: MechanismType) -> Option<PssParams> {
        let (mgf, salt_len) = match hash {
            MechanismType::SHA256 => (Mgf::MGF1_SHA256, 32),
            MechanismType::SHA384 => (Mgf::MGF1_SHA384, 48),
            MechanismType::SHA512 => (Mgf::MGF1_SHA512, 64),
            _ => return None,
        };
        Some(PssParams {
            hash,
            mgf,
            salt_len,
        })
    }
}

/// A mechanism (`CK_MECHANISM`): its type and, for RSA-PSS, its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mechanism {
    mechanism_type: MechanismType,
    pss: Option<PssParams>,
}

impl Mechanism {
    /// A mechanism that takes no parameter (`CKM_RSA_PKCS`, `CKM_ECDSA`,
    /// `CKM_SHA256_RSA_PKCS`, key-pair generation, ...).
    pub fn new(mechanism_type: MechanismType) -> Mechanism {
        Mechanism {
            mechanism_type,
            pss: None,
        }
    }

    /// An RSA-PSS mechanism (`CKM_RSA_PKCS_PSS` over a bare hash, or
    /// `CKM_SHA256_RSA_PKCS_PSS` and kin over the message) with its parameters.
    pub fn pss(mechanism_type: MechanismType, params: PssParams) -> Mechanism {
        Mechanism {
            mechanism_type,
            pss: Some(params),
        }
    }

    /// The mechanism's type.
    pub fn mechanism_type(&self) -> MechanismType {
        self.mechanism_type
    }

    /// The PSS parameters, if any.
    pub fn pss_params(&self) -> Option<PssParams> {
        self.pss
    }
}

/// A `CK_MECHANISM` whose parameter pointer targets storage this value owns (boxed, so
/// moving the value keeps the pointer valid).
pub(crate) struct RawMechanism {
    raw: CK_MECHANISM,
    _pss: Option<Box<CK_RSA_PKCS_PSS_PARAMS>>,
}

impl RawMechanism {
    pub(crate) fn new(mechanism: &Mechanism) -> RawMechanism {
        match mechanism.pss {
            None => RawMechanism {
                raw: CK_MECHANISM {
                    mechanism: mechanism.mechanism_type.raw(),
                    pParameter: std::ptr::null_mut(),
                    ulParameterLen: 0,
                },
                _pss: None,
            },
            Some(params) => {
                let mut boxed = Box::new(CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: params.hash.raw(),
                    mgf: params.mgf.raw(),
                    sLen: params.salt_len as CK_ULONG,
                });
                let ptr: *mut CK_RSA_PKCS_PSS_PARAMS = &mut *boxed;
                RawMechanism {
                    raw: CK_MECHANISM {
                        mechanism: mechanism.mechanism_type.raw(),
                        pParameter: ptr.cast::<c_void>(),
                        ulParameterLen: size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG,
                    },
                    _pss: Some(boxed),
                }
            }
        }
    }

    /// Pointer for the C call; valid while `self` lives.
    pub(crate) fn as_raw(&mut self) -> *mut CK_MECHANISM {
        &mut self.raw
    }
}
