//! Signatures as they stand in a file's bytes: each `/ByteRange [a b c d]` and the DER of
//! the `<...>` hex string in the gap between its two ranges.
//!
//! Two readings share one parser: [`raw_signatures`] passes over what is not a
//! signature (a judge of files written by others), [`signatures`] refuses it (a judge of
//! files we wrote, where every `/ByteRange` must be a well-formed signature).

use std::ops::Range;

const KEY: &[u8] = b"/ByteRange";

/// A signature as found in the file's bytes: its `/ByteRange` and the DER in the gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSignature {
    /// The four `/ByteRange` numbers.
    pub byte_range: [usize; 4],
    /// The `/Contents` DER, without the zero padding.
    pub der: Vec<u8>,
}

impl RawSignature {
    /// The signed bytes: both ranges of `pdf`, concatenated.
    ///
    /// # Panics
    /// If the ranges are not inside `pdf` (it is not the file the signature was read from).
    pub fn signed_bytes(&self, pdf: &[u8]) -> Vec<u8> {
        let [a, b, c, d] = self.byte_range;
        [&pdf[a..a + b], &pdf[c..c + d]].concat()
    }

    /// Where the signed bytes end: the whole file is covered when this is its length.
    pub fn end(&self) -> usize {
        self.byte_range[2] + self.byte_range[3]
    }
}

/// Every `/ByteRange [a b c d]` in the file (in file order) whose gap is a hex string,
/// with the DER that string holds; a `/ByteRange` that is not one is passed over.
pub fn raw_signatures(pdf: &[u8]) -> Vec<RawSignature> {
    readings(pdf)
        .filter_map(|(_, reading)| reading.ok())
        .map(|reading| reading.signature)
        .collect()
}

/// Every signature in the file (in file order), where each `/ByteRange` must be one:
/// an array of four numbers whose gap is exactly a `<...>` hex string holding one DER
/// object (and its zero padding).
///
/// # Panics
/// At the first `/ByteRange` that is not so, saying where and why.
pub fn signatures(pdf: &[u8]) -> Vec<RawSignature> {
    try_signatures(pdf).unwrap_or_else(|e| panic!("{e}"))
}

/// [`signatures`], with the first refusal as `Err`.
pub(crate) fn try_signatures(pdf: &[u8]) -> Result<Vec<RawSignature>, String> {
    readings(pdf)
        .map(|(at, reading)| {
            let reading = reading.map_err(|e| format!("/ByteRange at byte {at}: {e}"))?;
            if reading.flaws.is_empty() {
                Ok(reading.signature)
            } else {
                Err(format!(
                    "/ByteRange at byte {at}: {}",
                    reading.flaws.join("; ")
                ))
            }
        })
        .collect()
}

/// One `/ByteRange` read: the signature, and what only the strict reading refuses.
struct Reading {
    signature: RawSignature,
    flaws: Vec<String>,
}

/// Each `/ByteRange` key's offset and what follows it; `Err` says why it is no signature.
fn readings(pdf: &[u8]) -> impl Iterator<Item = (usize, Result<Reading, String>)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let found = at + pdf[at..].windows(KEY.len()).position(|w| w == KEY)?;
        at = found + KEY.len();
        Some((found, read(pdf, at)))
    })
}

/// Reads the array after a `/ByteRange` key that ends at `start`, and the gap it leaves.
fn read(pdf: &[u8], start: usize) -> Result<Reading, String> {
    let mut flaws = Vec::new();
    let close = pdf[start..]
        .iter()
        .position(|&b| b == b']')
        .ok_or("no `]` closes the array")?;
    let text = String::from_utf8_lossy(&pdf[start..start + close]);
    let text = text.trim();
    if !text.starts_with('[') {
        flaws.push(format!("not an array: {text:?}"));
    }
    let mut numbers = Vec::new();
    for token in text.trim_start_matches('[').split_whitespace() {
        match token.parse::<usize>() {
            Ok(number) => numbers.push(number),
            Err(_) => flaws.push(format!("not a number: {token:?}")),
        }
    }
    let [a, b, c, d] = numbers[..] else {
        return Err(format!("{} numbers, not 4: {text:?}", numbers.len()));
    };
    let gap: Range<usize> = a.saturating_add(b)..c;
    if gap.is_empty() || c.saturating_add(d) > pdf.len() {
        return Err(format!(
            "[{a} {b} {c} {d}] does not fit a file of {}",
            pdf.len()
        ));
    }
    if pdf[gap.start] != b'<' {
        return Err("gap does not start with <".to_owned());
    }
    if pdf[gap.end - 1] != b'>' {
        return Err("gap does not end with >".to_owned());
    }
    let mut der = decode_hex(&pdf[gap.start + 1..gap.end - 1]).ok_or("the gap is not hex")?;
    match der_len(&der) {
        Some(len) if len <= der.len() => der.truncate(len),
        _ => flaws.push("the gap holds no whole DER object".to_owned()),
    }
    Ok(Reading {
        signature: RawSignature {
            byte_range: [a, b, c, d],
            der,
        },
        flaws,
    })
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(*pair.get(1)?)?))
        .collect()
}

/// The length of the DER object at the start of `der`, header included.
fn der_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    let len = der
        .get(2..2 + count)?
        .iter()
        .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    Some(2 + count + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_byte_ranges_and_der() {
        // A /ByteRange whose gap is not a hex string is skipped.
        let not_hex = b"%PDF-1.7 /ByteRange [0 10 20 5] xx<3003020101000000>yyyyy";
        assert!(raw_signatures(not_hex).is_empty());
        let refusal = try_signatures(not_hex).unwrap_err();
        assert!(refusal.contains("gap does not start with <"), "{refusal}");
        // The gap [30, 40) is exactly `<30030201>`; the DER is cut at its own length.
        let mut file = b"%PDF /ByteRange [0 30 40 2] ".to_vec();
        file.resize(30, b' ');
        file.extend_from_slice(b"<30020201>");
        file.extend_from_slice(b"ab");
        let found = raw_signatures(&file);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].byte_range, [0, 30, 40, 2]);
        assert_eq!(found[0].der, [0x30, 0x02, 0x02, 0x01]);
        assert_eq!(found[0].signed_bytes(&file).len(), 32);
        assert_eq!(found[0].end(), file.len());
        assert_eq!(signatures(&file), found);
        assert_eq!(der_len(&[0x30, 0x82, 0x01, 0x00]), Some(260));
    }

    #[test]
    fn the_strict_reading_refuses_what_the_lenient_one_tolerates() {
        // A stray token in the array, and a gap holding less than its DER header claims.
        let mut file = b"%PDF /ByteRange [0 30 x 40 2] ".to_vec();
        file.resize(30, b' ');
        file.extend_from_slice(b"<30050201>");
        file.extend_from_slice(b"ab");
        assert_eq!(raw_signatures(&file).len(), 1);
        let refusal = try_signatures(&file).unwrap_err();
        assert!(refusal.contains("not a number: \"x\""), "{refusal}");
        assert!(refusal.contains("no whole DER object"), "{refusal}");
        // A /ByteRange with no array at all.
        assert!(raw_signatures(b"/ByteRange 12 0 R").is_empty());
        assert!(try_signatures(b"/ByteRange 12 0 R").is_err());
    }
}
