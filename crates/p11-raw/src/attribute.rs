//! Object attributes: an owned enum for templates and results, so that no caller ever
//! computes a `CK_ATTRIBUTE` length by hand.

use std::ffi::c_void;
use std::mem::size_of;

use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::types::{CertificateType, KeyType, MechanismType, ObjectClass};

/// How an attribute's value is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A `CK_BBOOL`.
    Bool,
    /// A `CK_ULONG` (also object classes, key types, certificate types).
    Ulong,
    /// A byte string of any length.
    Bytes,
    /// An array of `CK_MECHANISM_TYPE`.
    Mechanisms,
}

macro_rules! attribute_types {
    ($($variant:ident = $constant:ident, $layout:ident;)*) => {
        /// An attribute type (`CK_ATTRIBUTE_TYPE`) this crate knows how to read and write.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[allow(missing_docs)] // each variant is the CKA_ constant of the same name
        pub enum AttributeType {
            $($variant,)*
        }

        impl AttributeType {
            /// The raw `CK_ATTRIBUTE_TYPE`.
            pub fn raw(self) -> CK_ATTRIBUTE_TYPE {
                match self {
                    $(AttributeType::$variant => $constant,)*
                }
            }

            /// The constant's name, e.g. `"CKA_LABEL"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(AttributeType::$variant => stringify!($constant),)*
                }
            }

            pub(crate) fn layout(self) -> Layout {
                match self {
                    $(AttributeType::$variant => Layout::$layout,)*
                }
            }
        }
    };
}

attribute_types! {
    Class = CKA_CLASS, Ulong;
    Token = CKA_TOKEN, Bool;
    Private = CKA_PRIVATE, Bool;
    Label = CKA_LABEL, Bytes;
    Value = CKA_VALUE, Bytes;
    CertificateType = CKA_CERTIFICATE_TYPE, Ulong;
    Issuer = CKA_ISSUER, Bytes;
    SerialNumber = CKA_SERIAL_NUMBER, Bytes;
    KeyType = CKA_KEY_TYPE, Ulong;
    Subject = CKA_SUBJECT, Bytes;
    Id = CKA_ID, Bytes;
    Sensitive = CKA_SENSITIVE, Bool;
    Encrypt = CKA_ENCRYPT, Bool;
    Decrypt = CKA_DECRYPT, Bool;
    Sign = CKA_SIGN, Bool;
    Verify = CKA_VERIFY, Bool;
    Derive = CKA_DERIVE, Bool;
    Modulus = CKA_MODULUS, Bytes;
    ModulusBits = CKA_MODULUS_BITS, Ulong;
    PublicExponent = CKA_PUBLIC_EXPONENT, Bytes;
    PrivateExponent = CKA_PRIVATE_EXPONENT, Bytes;
    Prime1 = CKA_PRIME_1, Bytes;
    Prime2 = CKA_PRIME_2, Bytes;
    Exponent1 = CKA_EXPONENT_1, Bytes;
    Exponent2 = CKA_EXPONENT_2, Bytes;
    Coefficient = CKA_COEFFICIENT, Bytes;
    Extractable = CKA_EXTRACTABLE, Bool;
    Modifiable = CKA_MODIFIABLE, Bool;
    EcParams = CKA_EC_PARAMS, Bytes;
    EcPoint = CKA_EC_POINT, Bytes;
    AlwaysAuthenticate = CKA_ALWAYS_AUTHENTICATE, Bool;
    AllowedMechanisms = CKA_ALLOWED_MECHANISMS, Mechanisms;
}

/// An attribute with its value, for templates and as read back from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the CKA_ constant of the same name
pub enum Attribute {
    Class(ObjectClass),
    Token(bool),
    Private(bool),
    Label(Vec<u8>),
    Value(Vec<u8>),
    CertificateType(CertificateType),
    Issuer(Vec<u8>),
    SerialNumber(Vec<u8>),
    KeyType(KeyType),
    Subject(Vec<u8>),
    Id(Vec<u8>),
    Sensitive(bool),
    Encrypt(bool),
    Decrypt(bool),
    Sign(bool),
    Verify(bool),
    Derive(bool),
    Modulus(Vec<u8>),
    ModulusBits(u64),
    PublicExponent(Vec<u8>),
    PrivateExponent(Vec<u8>),
    Prime1(Vec<u8>),
    Prime2(Vec<u8>),
    Exponent1(Vec<u8>),
    Exponent2(Vec<u8>),
    Coefficient(Vec<u8>),
    Extractable(bool),
    Modifiable(bool),
    EcParams(Vec<u8>),
    EcPoint(Vec<u8>),
    AlwaysAuthenticate(bool),
    AllowedMechanisms(Vec<MechanismType>),
}

/// The value slot of an attribute, by layout.
enum Encoded<'a> {
    Bool(bool),
    Ulong(CK_ULONG),
    Bytes(&'a [u8]),
    Mechanisms(&'a [MechanismType]),
}

impl Attribute {
    /// The attribute's type.
    pub fn attribute_type(&self) -> AttributeType {
        use Attribute as A;
        use AttributeType as T;
        match self {
            A::Class(_) => T::Class,
            A::Token(_) => T::Token,
            A::Private(_) => T::Private,
            A::Label(_) => T::Label,
            A::Value(_) => T::Value,
            A::CertificateType(_) => T::CertificateType,
            A::Issuer(_) => T::Issuer,
            A::SerialNumber(_) => T::SerialNumber,
            A::KeyType(_) => T::KeyType,
            A::Subject(_) => T::Subject,
            A::Id(_) => T::Id,
            A::Sensitive(_) => T::Sensitive,
            A::Encrypt(_) => T::Encrypt,
            A::Decrypt(_) => T::Decrypt,
            A::Sign(_) => T::Sign,
            A::Verify(_) => T::Verify,
            A::Derive(_) => T::Derive,
            A::Modulus(_) => T::Modulus,
            A::ModulusBits(_) => T::ModulusBits,
            A::PublicExponent(_) => T::PublicExponent,
            A::PrivateExponent(_) => T::PrivateExponent,
            A::Prime1(_) => T::Prime1,
            A::Prime2(_) => T::Prime2,
            A::Exponent1(_) => T::Exponent1,
            A::Exponent2(_) => T::Exponent2,
            A::Coefficient(_) => T::Coefficient,
            A::Extractable(_) => T::Extractable,
            A::Modifiable(_) => T::Modifiable,
            A::EcParams(_) => T::EcParams,
            A::EcPoint(_) => T::EcPoint,
            A::AlwaysAuthenticate(_) => T::AlwaysAuthenticate,
            A::AllowedMechanisms(_) => T::AllowedMechanisms,
        }
    }

    fn encoded(&self) -> Encoded<'_> {
        use Attribute as A;
        match self {
            A::Token(b)
            | A::Private(b)
            | A::Sensitive(b)
            | A::Encrypt(b)
            | A::Decrypt(b)
            | A::Sign(b)
            | A::Verify(b)
            | A::Derive(b)
            | A::Extractable(b)
            | A::Modifiable(b)
            | A::AlwaysAuthenticate(b) => Encoded::Bool(*b),
            A::Class(c) => Encoded::Ulong(c.raw()),
            A::CertificateType(c) => Encoded::Ulong(c.raw()),
            A::KeyType(k) => Encoded::Ulong(k.raw()),
            A::ModulusBits(n) => Encoded::Ulong(*n as CK_ULONG),
            A::Label(v)
            | A::Value(v)
            | A::Issuer(v)
            | A::SerialNumber(v)
            | A::Subject(v)
            | A::Id(v)
            | A::Modulus(v)
            | A::PublicExponent(v)
            | A::PrivateExponent(v)
            | A::Prime1(v)
            | A::Prime2(v)
            | A::Exponent1(v)
            | A::Exponent2(v)
            | A::Coefficient(v)
            | A::EcParams(v)
            | A::EcPoint(v) => Encoded::Bytes(v),
            A::AllowedMechanisms(m) => Encoded::Mechanisms(m),
        }
    }

    /// Decodes a value read from the token. `None` when its length does not fit the
    /// attribute's layout.
    pub(crate) fn decode(kind: AttributeType, bytes: &[u8]) -> Option<Attribute> {
        use Attribute as A;
        use AttributeType as T;
        let flag = || -> Option<bool> {
            match bytes {
                [b] => Some(*b != 0),
                _ => None,
            }
        };
        let ulong = || -> Option<CK_ULONG> {
            let raw: [u8; size_of::<CK_ULONG>()] = bytes.try_into().ok()?;
            Some(CK_ULONG::from_ne_bytes(raw))
        };
        let v = || bytes.to_vec();
        Some(match kind {
            T::Class => A::Class(ObjectClass::from_raw(ulong()?)),
            T::Token => A::Token(flag()?),
            T::Private => A::Private(flag()?),
            T::Label => A::Label(v()),
            T::Value => A::Value(v()),
            T::CertificateType => A::CertificateType(CertificateType::from_raw(ulong()?)),
            T::Issuer => A::Issuer(v()),
            T::SerialNumber => A::SerialNumber(v()),
            T::KeyType => A::KeyType(KeyType::from_raw(ulong()?)),
            T::Subject => A::Subject(v()),
            T::Id => A::Id(v()),
            T::Sensitive => A::Sensitive(flag()?),
            T::Encrypt => A::Encrypt(flag()?),
            T::Decrypt => A::Decrypt(flag()?),
            T::Sign => A::Sign(flag()?),
            T::Verify => A::Verify(flag()?),
            T::Derive => A::Derive(flag()?),
            T::Modulus => A::Modulus(v()),
            T::ModulusBits => A::ModulusBits(crate::types::wide(ulong()?)),
            T::PublicExponent => A::PublicExponent(v()),
            T::PrivateExponent => A::PrivateExponent(v()),
            T::Prime1 => A::Prime1(v()),
            T::Prime2 => A::Prime2(v()),
            T::Exponent1 => A::Exponent1(v()),
            T::Exponent2 => A::Exponent2(v()),
            T::Coefficient => A::Coefficient(v()),
            T::Extractable => A::Extractable(flag()?),
            T::Modifiable => A::Modifiable(flag()?),
            T::EcParams => A::EcParams(v()),
            T::EcPoint => A::EcPoint(v()),
            T::AlwaysAuthenticate => A::AlwaysAuthenticate(flag()?),
            T::AllowedMechanisms => {
                let width = size_of::<CK_MECHANISM_TYPE>();
                if !bytes.len().is_multiple_of(width) {
                    return None;
                }
                A::AllowedMechanisms(
                    bytes
                        .chunks_exact(width)
                        .map(|chunk| {
                            let mut raw = [0u8; size_of::<CK_MECHANISM_TYPE>()];
                            raw.copy_from_slice(chunk);
                            MechanismType::from_raw(CK_MECHANISM_TYPE::from_ne_bytes(raw))
                        })
                        .collect(),
                )
            }
        })
    }
}

/// What reading one attribute found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// The attribute and its value.
    Present(Attribute),
    /// The object has the attribute but will not reveal it (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive(AttributeType),
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Absent(AttributeType),
}

impl AttributeValue {
    /// The attribute, if it was present.
    pub fn present(self) -> Option<Attribute> {
        match self {
            AttributeValue::Present(a) => Some(a),
            _ => None,
        }
    }
}

/// A `CK_ATTRIBUTE` array built from attributes. The raw array points into the
/// attributes it was built from and into its own scalar storage, so it borrows both.
pub(crate) struct Template<'a> {
    raw: Vec<CK_ATTRIBUTE>,
    // Scalars are encoded here: a `Box` per scalar so that pushing more never moves one
    // that a raw entry already points at.
    _scalars: Vec<Box<[u8]>>,
    _borrow: std::marker::PhantomData<&'a [Attribute]>,
}

impl<'a> Template<'a> {
    pub(crate) fn new(attributes: &'a [Attribute]) -> Result<Template<'a>> {
        let mut raw = Vec::with_capacity(attributes.len());
        let mut scalars = Vec::new();
        for attribute in attributes {
            let kind = attribute.attribute_type().raw();
            let (ptr, len): (*const u8, usize) = match attribute.encoded() {
                Encoded::Bool(b) => {
                    let boxed: Box<[u8]> = Box::new([CK_BBOOL::from(b)]);
                    let ptr = boxed.as_ptr();
                    scalars.push(boxed);
                    (ptr, 1)
                }
                Encoded::Ulong(n) => {
                    let boxed: Box<[u8]> = Box::new(n.to_ne_bytes());
                    let ptr = boxed.as_ptr();
                    scalars.push(boxed);
                    (ptr, size_of::<CK_ULONG>())
                }
                Encoded::Bytes(bytes) => (bytes.as_ptr(), bytes.len()),
                Encoded::Mechanisms(mechanisms) => {
                    let boxed: Box<[u8]> = mechanisms
                        .iter()
                        .flat_map(|m| m.raw().to_ne_bytes())
                        .collect();
                    let ptr = boxed.as_ptr();
                    let len = boxed.len();
                    scalars.push(boxed);
                    (ptr, len)
                }
            };
            raw.push(CK_ATTRIBUTE {
                type_: kind,
                // The module only reads template values (C_CreateObject, C_FindObjectsInit,
                // C_GenerateKeyPair take them as input); the cast to *mut is the C API's.
                pValue: ptr.cast_mut().cast::<c_void>(),
                ulValueLen: ulong(len, "an attribute value")?,
            });
        }
        Ok(Template {
            raw,
            _scalars: scalars,
            _borrow: std::marker::PhantomData,
        })
    }

    /// Pointer and count for the C call; valid while `self` lives.
    pub(crate) fn as_raw(&mut self) -> (*mut CK_ATTRIBUTE, CK_ULONG) {
        (self.raw.as_mut_ptr(), self.raw.len() as CK_ULONG)
    }
}

/// Converts a Rust length to `CK_ULONG`, naming what overflowed.
pub(crate) fn ulong(len: usize, what: &'static str) -> Result<CK_ULONG> {
    CK_ULONG::try_from(len).map_err(|_| Error::TooLong { what, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_derive_lengths() {
        let attributes = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Sign(true),
            Attribute::Label(b"signer".to_vec()),
            Attribute::AllowedMechanisms(vec![MechanismType::ECDSA, MechanismType::RSA_PKCS]),
        ];
        let mut template = Template::new(&attributes).unwrap();
        let (_, count) = template.as_raw();
        assert_eq!(count, 4);
        let lens: Vec<_> = template.raw.iter().map(|a| a.ulValueLen).collect();
        let w = size_of::<CK_ULONG>() as CK_ULONG;
        assert_eq!(lens, [w, 1, 6, 2 * w]);
    }

    #[test]
    fn decode_round_trips_and_rejects_bad_lengths() {
        let bits = 2048 as CK_ULONG;
        assert_eq!(
            Attribute::decode(AttributeType::ModulusBits, &bits.to_ne_bytes()),
            Some(Attribute::ModulusBits(2048))
        );
        assert_eq!(
            Attribute::decode(AttributeType::Sign, &[1]),
            Some(Attribute::Sign(true))
        );
        assert_eq!(Attribute::decode(AttributeType::Sign, &[1, 0]), None);
        assert_eq!(Attribute::decode(AttributeType::Class, &[0; 3]), None);
        assert_eq!(
            Attribute::decode(AttributeType::AllowedMechanisms, &[0; 5]),
            None
        );
    }
}
