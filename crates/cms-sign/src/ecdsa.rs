//! ECDSA signature forms: the raw `r || s` of `CKM_ECDSA` and the DER `Ecdsa-Sig-Value`
//! that CMS carries (RFC 5753 section 7.2, RFC 3279 section 2.2.3).

use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};

use crate::{EcCurve, Error};

/// ```text
/// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
/// ```
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Turns what a key returned into a DER `Ecdsa-Sig-Value`: a raw `r || s` of exactly
/// `2 ×` the scalar length is converted (leading zeros stripped, a zero prepended where
/// the high bit is set); anything else must already be a DER `Ecdsa-Sig-Value` for the
/// curve, which is returned as is.
pub(crate) fn to_der(curve: EcCurve, signature: &[u8]) -> Result<Vec<u8>, Error> {
    let n = curve.scalar_len();
    if signature.len() == 2 * n {
        let (r, s) = signature.split_at(n);
        check_scalar(r)?;
        check_scalar(s)?;
        let value = EcdsaSigValue {
            r: UintRef::new(r).map_err(Error::Encode)?,
            s: UintRef::new(s).map_err(Error::Encode)?,
        };
        return value.to_der().map_err(Error::Encode);
    }
    if signature.first() == Some(&0x30) {
        // Validate, and insist on the canonical form we would have written.
        to_raw(curve, signature)?;
        return Ok(signature.to_vec());
    }
    Err(Error::SignatureLength {
        expected: 2 * n,
        actual: signature.len(),
    })
}

/// Reads a DER `Ecdsa-Sig-Value` into the raw fixed-width `r || s`.
pub(crate) fn to_raw(curve: EcCurve, der: &[u8]) -> Result<Vec<u8>, Error> {
    let value = EcdsaSigValue::from_der(der).map_err(|_| Error::MalformedEcdsaSignature {
        reason: "not a DER Ecdsa-Sig-Value",
    })?;
    let n = curve.scalar_len();
    let mut raw = vec![0u8; 2 * n];
    for (half, int) in raw.chunks_exact_mut(n).zip([value.r, value.s]) {
        let bytes = int.as_bytes();
        if bytes.len() > n {
            return Err(Error::MalformedEcdsaSignature {
                reason: "an integer is longer than the curve's order",
            });
        }
        half[n - bytes.len()..].copy_from_slice(bytes);
        check_scalar(half)?;
    }
    Ok(raw)
}

fn check_scalar(bytes: &[u8]) -> Result<(), Error> {
    if bytes.iter().all(|&b| b == 0) {
        return Err(Error::MalformedEcdsaSignature {
            reason: "r or s is zero",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips_through_der_with_high_bits_and_leading_zeros() {
        let curve = EcCurve::P256;
        let mut raw = vec![0u8; 64];
        // r has its high bit set: DER needs a leading zero.
        raw[0] = 0x80;
        raw[31] = 1;
        // s has two leading zero bytes and then a high bit: they go, one zero comes back.
        raw[34] = 0xff;
        raw[63] = 2;
        let der = to_der(curve, &raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x44, 0x02, 0x21]);
        assert_eq!(der[4], 0x00);
        assert_eq!(der[5], 0x80);
        // s: 30 bytes after two zeros, plus the sign byte.
        assert_eq!(&der[4 + 33..4 + 33 + 3], &[0x02, 0x1f, 0x00]);
        assert_eq!(der.len(), 2 + 35 + 33);
        assert_eq!(to_raw(curve, &der).unwrap(), raw);
        // DER passes through unchanged.
        assert_eq!(to_der(curve, &der).unwrap(), der);
    }

    #[test]
    fn longest_der_fits_the_bound() {
        for curve in [EcCurve::P256, EcCurve::P384, EcCurve::P521] {
            let n = curve.scalar_len();
            let mut raw = vec![0xffu8; 2 * n];
            if curve == EcCurve::P521 {
                // The order is below 2^521: the top byte holds one bit.
                raw[0] = 0x01;
                raw[n] = 0x01;
            }
            let der = to_der(curve, &raw).unwrap();
            assert!(der.len() <= curve.max_der_signature_len(), "{curve}");
            assert_eq!(to_raw(curve, &der).unwrap(), raw);
        }
        assert_eq!(EcCurve::P256.max_der_signature_len(), 72);
        assert_eq!(EcCurve::P384.max_der_signature_len(), 104);
        assert_eq!(EcCurve::P521.max_der_signature_len(), 139);
    }

    #[test]
    fn bad_signatures_are_typed_errors() {
        let curve = EcCurve::P384;
        assert!(matches!(
            to_der(curve, &[0u8; 96]),
            Err(Error::MalformedEcdsaSignature { .. })
        ));
        assert!(matches!(
            to_der(curve, &[1u8; 95]),
            Err(Error::SignatureLength {
                expected: 96,
                actual: 95
            })
        ));
        assert!(matches!(
            to_der(curve, &[0x30, 0x03, 0x02, 0x01]),
            Err(Error::MalformedEcdsaSignature { .. })
        ));
        // A P-521-sized integer on P-384.
        let p521 = to_der(EcCurve::P521, &[0x01; 132]).unwrap();
        assert!(matches!(
            to_raw(curve, &p521),
            Err(Error::MalformedEcdsaSignature { .. })
        ));
        // A P-521 raw signature of the wrong width (130 instead of 132 bytes).
        assert!(matches!(
            to_der(EcCurve::P521, &[0x01; 130]),
            Err(Error::SignatureLength {
                expected: 132,
                actual: 130
            })
        ));
    }
}
