//! Token creation and key provisioning.

use der::asn1::{BitString, ObjectIdentifier, OctetString, UintRef};
use der::{Decode, Encode};
use p11_raw::{
    Attribute, AttributeType, CertificateType, KeyType, Mechanism, MechanismType, Module,
    ObjectClass, Session, SlotId, UserType,
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use test_pki::{KeyKind, Pki, SoftwareKey};
use x509_cert::Certificate;

use crate::{Error, INTERMEDIATE_CA_LABEL, ROOT_CA_LABEL, SO_PIN, TestKey, TestToken};

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Imported from `fixtures/keys` (fast, same key every run).
    Imported,
    /// Generated on the token (`C_GenerateKeyPair`).
    Generated,
}

/// One key to put on a token.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Its type.
    pub kind: KeyKind,
    /// Imported or generated.
    pub origin: Origin,
    /// `CKA_LABEL`; `None` uses the kind's label (`"p256"`).
    pub label: Option<String>,
    /// `CKA_ALWAYS_AUTHENTICATE` on the private key.
    pub always_authenticate: bool,
    /// `CKA_ALLOWED_MECHANISMS` on the private key, if restricted.
    pub allowed_mechanisms: Option<Vec<MechanismType>>,
}

impl KeySpec {
    /// An imported key with defaults.
    pub fn imported(kind: KeyKind) -> KeySpec {
        KeySpec {
            kind,
            origin: Origin::Imported,
            label: None,
            always_authenticate: false,
            allowed_mechanisms: None,
        }
    }

    /// A generated key with defaults.
    pub fn generated(kind: KeyKind) -> KeySpec {
        KeySpec {
            origin: Origin::Generated,
            ..KeySpec::imported(kind)
        }
    }

    /// Sets the label.
    pub fn label(mut self, label: &str) -> KeySpec {
        self.label = Some(label.to_owned());
        self
    }

    /// Sets `CKA_ALWAYS_AUTHENTICATE`.
    pub fn always_authenticate(mut self) -> KeySpec {
        self.always_authenticate = true;
        self
    }

    /// Restricts the mechanisms the key may be used with.
    pub fn allowed_mechanisms(mut self, mechanisms: &[MechanismType]) -> KeySpec {
        self.allowed_mechanisms = Some(mechanisms.to_vec());
        self
    }
}

/// Creates the token under the kit's lock, then fills it.
pub(crate) fn provision(
    module: &Module,
    label: &str,
    user_pin: &str,
    keys: &[KeySpec],
) -> Result<TestToken, Error> {
    let slot = {
        let _lock = crate::kit_lock();
        let free = module
            .slots(false)?
            .into_iter()
            .find(|&slot| {
                module
                    .token_info(slot)
                    .is_ok_and(|t| !t.flags.token_initialized())
            })
            .ok_or("SoftHSM2 offers no uninitialised slot")?;
        module.init_token(free, SO_PIN.as_bytes(), label)?;
        find_by_label(module, label)?
    };
    let serial = module.token_info(slot)?.serial_number;

    let session = module.open_session(slot, true)?;
    session.login(UserType::SecurityOfficer, Some(SO_PIN.as_bytes()))?;
    session.init_pin(user_pin.as_bytes())?;
    session.logout()?;
    session.login(UserType::User, Some(user_pin.as_bytes()))?;

    let pki = Pki::fixture();
    put_certificate(&session, ROOT_CA_LABEL, b"ca-root", pki.root_der())?;
    put_certificate(
        &session,
        INTERMEDIATE_CA_LABEL,
        b"ca-intermediate",
        pki.intermediate_der(),
    )?;

    let mut made = Vec::with_capacity(keys.len());
    for (index, spec) in keys.iter().enumerate() {
        let label = spec
            .label
            .clone()
            .unwrap_or_else(|| spec.kind.label().to_owned());
        let id = vec![0x10, u8::try_from(index + 1).map_err(|_| "too many keys")?];
        let spki_der = match spec.origin {
            Origin::Imported => import_key(&session, spec, &label, &id)?,
            Origin::Generated => generate_key(&session, spec, &label, &id)?,
        };
        let cert_der = pki.try_issue_leaf(&format!("pdfsign test {label}"), &spki_der)?;
        put_certificate(&session, &label, &id, &cert_der)?;
        made.push(TestKey {
            kind: spec.kind,
            label,
            id,
            cert_der,
            always_authenticate: spec.always_authenticate,
        });
    }
    session.logout()?;
    session.close()?;

    Ok(TestToken {
        module: module.clone(),
        slot,
        label: label.to_owned(),
        serial,
        user_pin: user_pin.to_owned(),
        so_pin: SO_PIN.to_owned(),
        keys: made,
    })
}

/// Finds the one token with this label.
pub(crate) fn find_by_label(module: &Module, label: &str) -> Result<SlotId, Error> {
    let matching: Vec<SlotId> = module
        .slots(true)?
        .into_iter()
        .filter(|&slot| module.token_info(slot).is_ok_and(|t| t.label == label))
        .collect();
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(format!("no token labelled {label:?} after C_InitToken").into()),
        _ => Err(format!("{} tokens labelled {label:?}", matching.len()).into()),
    }
}

fn private_template(spec: &KeySpec, label: &str, id: &[u8]) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    if spec.always_authenticate {
        template.push(Attribute::AlwaysAuthenticate(true));
    }
    if let Some(mechanisms) = &spec.allowed_mechanisms {
        template.push(Attribute::AllowedMechanisms(mechanisms.clone()));
    }
    template
}

fn public_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Imports the fixture key pair; returns its SPKI.
fn import_key(session: &Session, spec: &KeySpec, label: &str, id: &[u8]) -> Result<Vec<u8>, Error> {
    let software = SoftwareKey::fixture(spec.kind);
    let mut private = private_template(spec, label, id);
    let mut public = public_template(label, id);
    if let Some(rsa) = software.rsa_components() {
        private.extend([
            Attribute::KeyType(KeyType::RSA),
            Attribute::Modulus(rsa.modulus.clone()),
            Attribute::PublicExponent(rsa.public_exponent.clone()),
            Attribute::PrivateExponent(rsa.private_exponent.clone()),
            Attribute::Prime1(rsa.prime_1.clone()),
            Attribute::Prime2(rsa.prime_2.clone()),
            Attribute::Exponent1(rsa.exponent_1.clone()),
            Attribute::Exponent2(rsa.exponent_2.clone()),
            Attribute::Coefficient(rsa.coefficient.clone()),
        ]);
        public.extend([
            Attribute::KeyType(KeyType::RSA),
            Attribute::Modulus(rsa.modulus.clone()),
            Attribute::PublicExponent(rsa.public_exponent.clone()),
        ]);
    } else if let Some(ec) = software.ec_components() {
        private.extend([
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(ec.params_der.clone()),
            Attribute::Value(ec.private_value.clone()),
        ]);
        public.extend([
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(ec.params_der.clone()),
            Attribute::EcPoint(ec.public_point_der()),
        ]);
    } else {
        return Err(format!("fixture {} has no key components", spec.kind).into());
    }
    session.create_object(&private)?;
    session.create_object(&public)?;
    Ok(software.spki_der().to_vec())
}

/// Generates the key pair on the token; returns its SPKI, read back from the token.
fn generate_key(
    session: &Session,
    spec: &KeySpec,
    label: &str,
    id: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut private = private_template(spec, label, id);
    let mut public = public_template(label, id);
    let mechanism = if spec.kind.is_rsa() {
        public.extend([
            Attribute::ModulusBits(u64::from(spec.kind.bits())),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ]);
        Mechanism::new(MechanismType::RSA_PKCS_KEY_PAIR_GEN)
    } else {
        let params = ec_params(spec.kind)?;
        public.push(Attribute::EcParams(params));
        private.push(Attribute::KeyType(KeyType::EC));
        Mechanism::new(MechanismType::EC_KEY_PAIR_GEN)
    };
    let (public_handle, _) = session.generate_key_pair(&mechanism, &public, &private)?;
    spki_of_public_key(session, public_handle)
}

/// The DER OID of the key's curve (`CKA_EC_PARAMS`).
fn ec_params(kind: KeyKind) -> Result<Vec<u8>, Error> {
    let oid = match kind {
        KeyKind::P256 => "1.2.840.10045.3.1.7",
        KeyKind::P384 => "1.3.132.0.34",
        KeyKind::P521 => "1.3.132.0.35",
        other => return Err(format!("{other} is not an EC key").into()),
    };
    Ok(ObjectIdentifier::new(oid)?.to_der()?)
}

/// Builds the SubjectPublicKeyInfo of a public key object on the token.
pub fn spki_of_public_key(
    session: &Session,
    public: p11_raw::ObjectHandle,
) -> Result<Vec<u8>, Error> {
    let values = session.attributes(
        public,
        &[
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ],
    )?;
    let mut values = values.into_iter().map(|v| v.present());
    let mut next = || values.next().flatten();
    let (key_type, modulus, exponent, params, point) = (next(), next(), next(), next(), next());
    match (key_type, modulus, exponent, params, point) {
        (
            Some(Attribute::KeyType(KeyType::RSA)),
            Some(Attribute::Modulus(n)),
            Some(Attribute::PublicExponent(e)),
            _,
            _,
        ) => rsa_spki(&n, &e),
        (
            Some(Attribute::KeyType(KeyType::EC)),
            _,
            _,
            Some(Attribute::EcParams(params)),
            Some(Attribute::EcPoint(point)),
        ) => ec_spki(&params, &point),
        other => Err(format!("public key with unexpected attributes: {other:?}").into()),
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017).
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, Error> {
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus)?,
        public_exponent: UintRef::new(exponent)?,
    }
    .to_der()?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new("1.2.840.113549.1.1.1")?,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(&key)?,
    };
    Ok(spki.to_der()?)
}

/// `CKA_EC_POINT` is the uncompressed point wrapped in a DER OCTET STRING; unwrap it.
fn ec_spki(params: &[u8], point: &[u8]) -> Result<Vec<u8>, Error> {
    let point = OctetString::from_der(point)?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new("1.2.840.10045.2.1")?,
            parameters: Some(der::Any::from_der(params)?),
        },
        subject_public_key: BitString::from_bytes(point.as_bytes())?,
    };
    Ok(spki.to_der()?)
}

/// Stores a certificate object with the subject, issuer and serial PKCS#11 wants.
fn put_certificate(session: &Session, label: &str, id: &[u8], der: &[u8]) -> Result<(), Error> {
    let cert = Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate();
    session.create_object(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Subject(tbs.subject().to_der()?),
        Attribute::Issuer(tbs.issuer().to_der()?),
        Attribute::SerialNumber(tbs.serial_number().to_der()?),
        Attribute::Value(der.to_vec()),
    ])?;
    Ok(())
}
