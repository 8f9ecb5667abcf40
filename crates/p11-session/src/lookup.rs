//! Looking a key up on a token: the private key (always searched with its class), its
//! certificate by `CKA_ID` (or label), the chain by issuer and subject, and the facts a
//! signer needs (key type and size or curve, allowed mechanisms, always-authenticate).

use std::collections::HashSet;

use p11_raw::{
    Attribute, AttributeType, AttributeValue, KeyType, MechanismType, ObjectClass, ObjectHandle,
    Session,
};

use crate::error::{Error, Result};
use crate::key::{EcCurve, KeyAlgorithm, KeyQuery};
use crate::token::TokenShared;

/// How far up a chain of certificates on the token we follow issuers.
const MAX_CHAIN: usize = 8;

/// What a look-up learnt about a key; fixed for the key's life.
#[derive(Debug)]
pub(crate) struct KeyFacts {
    pub(crate) label: String,
    pub(crate) id: Vec<u8>,
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) allowed: Option<Vec<MechanismType>>,
    pub(crate) always_authenticate: bool,
    pub(crate) certificate: Vec<u8>,
    pub(crate) chain: Vec<Vec<u8>>,
}

pub(crate) fn find_objects(
    token: &TokenShared,
    session: &Session,
    template: &[Attribute],
) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(template)
        .map_err(|error| token.pkcs11_error(error))
}

pub(crate) fn exactly_one(
    token: &TokenShared,
    query: &KeyQuery,
    found: &[ObjectHandle],
) -> Result<ObjectHandle> {
    match found {
        [one] => Ok(*one),
        [] => Err(Error::KeyNotFound {
            token: token.name(),
            query: query.clone(),
        }),
        more => Err(Error::KeyAmbiguous {
            token: token.name(),
            query: query.clone(),
            count: more.len(),
        }),
    }
}

/// Reads attributes, `None` for each one absent or sensitive.
fn read(
    token: &TokenShared,
    session: &Session,
    object: ObjectHandle,
    types: &[AttributeType],
) -> Result<Vec<Option<Attribute>>> {
    Ok(session
        .attributes(object, types)
        .map_err(|error| token.pkcs11_error(error))?
        .into_iter()
        .map(AttributeValue::present)
        .collect())
}

/// A certificate object's value, subject and issuer.
struct CertificateObject {
    der: Vec<u8>,
    subject: Option<Vec<u8>>,
    issuer: Option<Vec<u8>>,
}

fn read_certificate(
    token: &TokenShared,
    session: &Session,
    object: ObjectHandle,
) -> Result<Option<CertificateObject>> {
    let mut values = read(
        token,
        session,
        object,
        &[
            AttributeType::Value,
            AttributeType::Subject,
            AttributeType::Issuer,
        ],
    )?
    .into_iter();
    let (value, subject, issuer) = (values.next(), values.next(), values.next());
    let Some(Some(Attribute::Value(der))) = value else {
        return Ok(None);
    };
    let bytes = |a: Option<Option<Attribute>>| match a {
        Some(Some(Attribute::Subject(v) | Attribute::Issuer(v))) => Some(v),
        _ => None,
    };
    Ok(Some(CertificateObject {
        der,
        subject: bytes(subject),
        issuer: bytes(issuer),
    }))
}

/// Finds the private key and its certificate and chain for `query`, and what we need to
/// know about them. Returns the key's handle, its facts and the template that finds it
/// again.
pub(crate) fn locate(
    token: &TokenShared,
    session: &Session,
    query: &KeyQuery,
) -> Result<(ObjectHandle, KeyFacts, Vec<Attribute>)> {
    let private_class = Attribute::Class(ObjectClass::PRIVATE_KEY);
    let certificate_class = Attribute::Class(ObjectClass::CERTIFICATE);
    let (private, certificate) = match query {
        KeyQuery::Label(label) => {
            let template = [
                private_class.clone(),
                Attribute::Label(label.clone().into()),
            ];
            let found = find_objects(token, session, &template)?;
            (exactly_one(token, query, &found)?, None)
        }
        KeyQuery::Id(id) => {
            let template = [private_class.clone(), Attribute::Id(id.clone())];
            let found = find_objects(token, session, &template)?;
            (exactly_one(token, query, &found)?, None)
        }
        KeyQuery::Subject(subject) => {
            let template = [
                certificate_class.clone(),
                Attribute::Subject(subject.clone()),
            ];
            let found = find_objects(token, session, &template)?;
            let certificate = exactly_one(token, query, &found)?;
            let id = match read(token, session, certificate, &[AttributeType::Id])?.pop() {
                Some(Some(Attribute::Id(id))) if !id.is_empty() => id,
                _ => {
                    return Err(Error::KeyNotFound {
                        token: token.name(),
                        query: query.clone(),
                    });
                }
            };
            let template = [private_class.clone(), Attribute::Id(id)];
            let found = find_objects(token, session, &template)?;
            (exactly_one(token, query, &found)?, Some(certificate))
        }
    };

    let mut values = read(
        token,
        session,
        private,
        &[
            AttributeType::Id,
            AttributeType::Label,
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::EcParams,
            AttributeType::AlwaysAuthenticate,
            AttributeType::AllowedMechanisms,
        ],
    )?
    .into_iter();
    let mut next = || values.next().flatten();
    let id = match next() {
        Some(Attribute::Id(id)) => id,
        _ => Vec::new(),
    };
    let label = match next() {
        Some(Attribute::Label(label)) => label,
        _ => Vec::new(),
    };
    let (key_type, modulus, ec_params) = (next(), next(), next());
    let always_authenticate = matches!(next(), Some(Attribute::AlwaysAuthenticate(true)));
    let allowed = match next() {
        Some(Attribute::AllowedMechanisms(list)) if !list.is_empty() => Some(list),
        _ => None,
    };

    let mut relocate = vec![private_class];
    if !id.is_empty() {
        relocate.push(Attribute::Id(id.clone()));
    }
    if !label.is_empty() {
        relocate.push(Attribute::Label(label.clone()));
    }

    let unsupported = |what| Error::UnsupportedKey {
        token: token.name(),
        query: query.clone(),
        what,
    };
    let algorithm = match key_type {
        Some(Attribute::KeyType(KeyType::RSA)) => {
            let modulus = match modulus {
                Some(Attribute::Modulus(n)) => n,
                _ => public_attribute(token, session, &id, AttributeType::Modulus)?
                    .ok_or_else(|| unsupported("an RSA key without CKA_MODULUS"))?,
            };
            KeyAlgorithm::Rsa {
                modulus_bits: modulus_bits(&modulus),
            }
        }
        Some(Attribute::KeyType(KeyType::EC)) => {
            let params = match ec_params {
                Some(Attribute::EcParams(params)) => params,
                _ => public_attribute(token, session, &id, AttributeType::EcParams)?
                    .ok_or_else(|| unsupported("an EC key without CKA_EC_PARAMS"))?,
            };
            let curve = EcCurve::from_ec_params(&params).ok_or_else(|| {
                unsupported("an EC key on a curve other than P-256, P-384, P-521")
            })?;
            KeyAlgorithm::Ec { curve }
        }
        _ => return Err(unsupported("neither an RSA nor an EC key")),
    };

    let certificate = match certificate {
        Some(certificate) => certificate,
        None => {
            let template = if id.is_empty() {
                [certificate_class, Attribute::Label(label.clone())]
            } else {
                [certificate_class, Attribute::Id(id.clone())]
            };
            // Several certificates may share an id (a renewed one beside the old); the
            // first is taken.
            *find_objects(token, session, &template)?
                .first()
                .ok_or_else(|| Error::CertificateNotFound {
                    token: token.name(),
                    query: query.clone(),
                })?
        }
    };
    let leaf = read_certificate(token, session, certificate)?.ok_or_else(|| {
        Error::CertificateNotFound {
            token: token.name(),
            query: query.clone(),
        }
    })?;
    let chain = chain(token, session, &leaf)?;

    let facts = KeyFacts {
        label: String::from_utf8_lossy(&label).into_owned(),
        id,
        algorithm,
        allowed,
        always_authenticate,
        certificate: leaf.der,
        chain,
    };
    Ok((private, facts, relocate))
}

/// An attribute of the public key with the same `CKA_ID`, for tokens that do not
/// repeat it on the private key.
fn public_attribute(
    token: &TokenShared,
    session: &Session,
    id: &[u8],
    kind: AttributeType,
) -> Result<Option<Vec<u8>>> {
    if id.is_empty() {
        return Ok(None);
    }
    let template = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Id(id.to_vec()),
    ];
    let Some(&public) = find_objects(token, session, &template)?.first() else {
        return Ok(None);
    };
    Ok(
        match read(token, session, public, &[kind])?.pop().flatten() {
            Some(Attribute::Modulus(v) | Attribute::EcParams(v)) => Some(v),
            _ => None,
        },
    )
}

/// Bits in a big-endian modulus, leading zero bytes and bits not counted.
fn modulus_bits(modulus: &[u8]) -> u32 {
    let Some(first) = modulus.iter().position(|&b| b != 0) else {
        return 0;
    };
    let bytes = u32::try_from(modulus.len() - first).unwrap_or(u32::MAX / 8);
    bytes * 8 - modulus[first].leading_zeros()
}

/// The issuers of `leaf` found on the token, nearest first.
fn chain(token: &TokenShared, session: &Session, leaf: &CertificateObject) -> Result<Vec<Vec<u8>>> {
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    seen.insert(leaf.der.clone());
    let (mut subject, mut issuer) = (leaf.subject.clone(), leaf.issuer.clone());
    for _ in 0..MAX_CHAIN {
        let Some(wanted) = issuer.take() else { break };
        if subject.as_deref() == Some(wanted.as_slice()) {
            break; // self-issued: the root
        }
        let template = [
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Subject(wanted),
        ];
        let Some(&next) = find_objects(token, session, &template)?.first() else {
            break;
        };
        let Some(found) = read_certificate(token, session, next)? else {
            break;
        };
        if !seen.insert(found.der.clone()) {
            break; // a loop
        }
        subject = found.subject;
        issuer = found.issuer;
        chain.push(found.der);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_sizes() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
