//! Writes objects of lopdf's model in PDF syntax (ISO 32000-1, 7.3), compactly, straight
//! into the increment's byte buffer.
//!
//! lopdf's `Writer::write_object` writes through `dyn Write` and formats numbers and
//! references with `fmt`; for the half-dozen small objects of an increment that was a
//! sixth of the time a one-page signature takes to prepare. This writer appends to a
//! `Vec<u8>`, formats numbers on the stack, and makes no allocation of its own.
//!
//! What it writes reads back as the same object (the tests check it with the crate's own
//! parser): names escape delimiters, white space and bytes outside `!`..`~` as `#xx`
//! (7.3.5); literal strings escape `\`, both parentheses and CR (7.3.4.2), so a carriage
//! return survives end-of-line normalisation; a stream's `/Length` is its data's length,
//! whatever its dictionary said.

use lopdf::{Dictionary, Object, StringFormat};

use crate::error::ObjectId;
use crate::reader::RawDict;

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `object` in the compact form: no white space but where two tokens would run
/// together.
pub(crate) fn object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(true) => out.extend_from_slice(b"true"),
        Object::Boolean(false) => out.extend_from_slice(b"false"),
        Object::Integer(value) => integer(out, *value),
        Object::Real(value) => real(out, *value),
        Object::Name(value) => name(out, value),
        Object::String(text, StringFormat::Literal) => literal_string(out, text),
        Object::String(bytes, StringFormat::Hexadecimal) => hex_string(out, bytes),
        Object::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 && needs_separator(item) {
                    out.push(b' ');
                }
                self::object(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(dict) => dictionary(out, dict, None),
        Object::Stream(stream) => {
            dictionary(out, &stream.dict, Some(stream.content.len()));
            out.extend_from_slice(b"stream\n");
            out.extend_from_slice(&stream.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference(id) => reference(out, *id),
    }
}

/// Appends `n g obj`, what `body` writes, and `endobj`, each on a line of its own.
pub(crate) fn indirect(out: &mut Vec<u8>, id: ObjectId, body: impl FnOnce(&mut Vec<u8>)) {
    object_header(out, id);
    body(out);
    out.extend_from_slice(b"\nendobj\n");
}

/// Appends `dict` with `key` set to `value`: the other entries as found, then `key`.
/// Each entry found begins with its key's `/`, so none can run into the one before.
pub(crate) fn amended(out: &mut Vec<u8>, dict: &RawDict, key: &[u8], value: &Object) {
    out.extend_from_slice(b"<<");
    for found in dict.entries_where(|found| found != key) {
        out.extend_from_slice(found);
    }
    entry(out, key, value);
    out.extend_from_slice(b">>");
}

/// Appends `n g obj` and a line feed.
pub(crate) fn object_header(out: &mut Vec<u8>, (number, generation): ObjectId) {
    unsigned(out, u64::from(number));
    out.push(b' ');
    unsigned(out, u64::from(generation));
    out.extend_from_slice(b" obj\n");
}

/// Appends one dictionary entry, `/Key value`.
pub(crate) fn entry(out: &mut Vec<u8>, key: &[u8], value: &Object) {
    name(out, key);
    value_after_key(out, value);
}

/// Appends `value` after a key, set apart from it if need be.
pub(crate) fn value_after_key(out: &mut Vec<u8>, value: &Object) {
    if needs_separator(value) {
        out.push(b' ');
    }
    object(out, value);
}

/// A dictionary; for a stream's, `/Length` is written as `stream_len`, not as found.
fn dictionary(out: &mut Vec<u8>, dict: &Dictionary, stream_len: Option<usize>) {
    out.extend_from_slice(b"<<");
    for (key, value) in dict {
        if stream_len.is_some() && key.as_slice() == b"Length" {
            continue;
        }
        entry(out, key, value);
    }
    if let Some(len) = stream_len {
        out.extend_from_slice(b"/Length ");
        unsigned(out, len as u64);
    }
    out.extend_from_slice(b">>");
}

/// A new dictionary written entry by entry: the increment's own dictionaries (the
/// signature's, the widget's) go straight into bytes, as building each into lopdf's
/// model only to write it out at once cost an allocation per key and a hashed map.
pub(crate) struct NewDictionary(Vec<u8>);

impl NewDictionary {
    /// An empty dictionary with room for `bytes` bytes.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes);
        out.extend_from_slice(b"<<");
        NewDictionary(out)
    }

    /// Adds `/key value`.
    pub(crate) fn entry(&mut self, key: &[u8], value: &Object) -> &mut Self {
        entry(&mut self.0, key, value);
        self
    }

    /// Adds `/key /value`.
    pub(crate) fn name(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        name(&mut self.0, key);
        name(&mut self.0, value);
        self
    }

    /// Adds `/key` with `text` as a text string (7.9.2.2): PDFDocEncoding if it is
    /// printable ASCII, UTF-16BE otherwise.
    pub(crate) fn text(&mut self, key: &[u8], text: &str) -> &mut Self {
        name(&mut self.0, key);
        if crate::text::is_printable_ascii(text) {
            literal_string(&mut self.0, text.as_bytes());
        } else {
            object(&mut self.0, &crate::text::text_string(text));
        }
        self
    }

    /// The entries written so far, without `<<`: for a dictionary whose end is written
    /// elsewhere.
    pub(crate) fn entries(&self) -> &[u8] {
        self.0.get(2..).unwrap_or_default()
    }

    /// The dictionary, `>>` added.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b">>");
        self.0
    }
}

/// Whether a value must be set apart from a name or number before it: those that do not
/// begin with a delimiter.
fn needs_separator(object: &Object) -> bool {
    matches!(
        object,
        Object::Null
            | Object::Boolean(_)
            | Object::Integer(_)
            | Object::Real(_)
            | Object::Reference(_)
    )
}

fn reference(out: &mut Vec<u8>, (number, generation): ObjectId) {
    unsigned(out, u64::from(number));
    out.push(b' ');
    unsigned(out, u64::from(generation));
    out.extend_from_slice(b" R");
}

/// Appends `value` in decimal.
pub(crate) fn unsigned(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let start = decimal(&mut digits, value);
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends `value` in decimal, zero-padded to at least `width` digits (the fixed-width
/// fields of a cross-reference table).
pub(crate) fn padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let start = decimal(&mut digits, value);
    let len = digits.len() - start;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Writes `value`'s digits at the end of `digits`; returns where they start.
pub(crate) fn decimal(digits: &mut [u8; 20], mut value: u64) -> usize {
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            return start;
        }
    }
}

pub(crate) fn integer(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    unsigned(out, value.unsigned_abs());
}

/// A real always has a point, so that it reads back as a real; PDF has no exponent
/// notation, and `f32`'s `Display` never uses one. PDF cannot spell the infinities or
/// NaN (only a hostile input's absurdly long number parses to one): they become the
/// largest finite value of their sign, and 0.
fn real(out: &mut Vec<u8>, value: f32) {
    let value = if value.is_nan() {
        0.0
    } else {
        value.clamp(f32::MIN, f32::MAX)
    };
    if value.fract() == 0.0 && value.abs() < 1e15 {
        if value.is_sign_negative() && value != 0.0 {
            out.push(b'-');
        }
        unsigned(out, value.abs() as u64);
        out.extend_from_slice(b".0");
        return;
    }
    let start = out.len();
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, format_args!("{value}"));
    if !out.get(start..).unwrap_or_default().contains(&b'.') {
        out.extend_from_slice(b".0");
    }
}

/// Appends a name, `#xx`-escaping what may not appear in one bare (7.3.5).
pub(crate) fn name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    if name.iter().all(|&byte| is_regular_name_byte(byte)) {
        out.extend_from_slice(name);
        return;
    }
    for &byte in name {
        if is_regular_name_byte(byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(&[b'#', hex_digit(byte >> 4), hex_digit(byte & 0x0F)]);
        }
    }
}

fn is_regular_name_byte(byte: u8) -> bool {
    !matches!(
        byte,
        0..=b' ' | b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%' | b'#' | 0x7F..
    )
}

fn literal_string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'(');
    if !text
        .iter()
        .any(|byte| matches!(byte, b'(' | b')' | b'\\' | b'\r'))
    {
        out.extend_from_slice(text);
        out.push(b')');
        return;
    }
    for &byte in text {
        match byte {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(byte),
        }
    }
    out.push(b')');
}

fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(2 * bytes.len() + 2);
    out.push(b'<');
    for &byte in bytes {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0F));
    }
    out.push(b'>');
}

fn hex_digit(nibble: u8) -> u8 {
    HEX_DIGITS
        .get(usize::from(nibble & 0x0F))
        .copied()
        .unwrap_or(b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::lexer::Parser;
    use crate::reader::lexer::tests::object_strategy;
    use lopdf::Stream;
    use proptest::prelude::*;

    fn written(value: &Object) -> Vec<u8> {
        let mut out = Vec::new();
        object(&mut out, value);
        out
    }

    #[test]
    fn new_dictionaries_read_back_as_built() {
        let mut dict = NewDictionary::with_capacity(8);
        dict.name(b"Type", b"Sig")
            .text(b"Reason", "plain (ASCII)")
            .text(b"Location", "Zoë")
            .entry(b"V", &Object::Reference((7, 0)));
        assert_eq!(dict.entries().first(), Some(&b'/'));
        let bytes = dict.finish();
        let parsed = Parser::new(&bytes, 0, true).object().unwrap();
        let expected = Dictionary::from_iter([
            ("Type", Object::Name(b"Sig".to_vec())),
            ("Reason", crate::text::text_string("plain (ASCII)")),
            ("Location", crate::text::text_string("Zoë")),
            ("V", Object::Reference((7, 0))),
        ]);
        assert_eq!(parsed, Object::Dictionary(expected));
    }

    /// Parses what was written back with the crate's own parser.
    fn read_back(bytes: &[u8]) -> Object {
        let mut parser = Parser::new(bytes, 0, true);
        parser.object().expect("what the writer writes parses")
    }

    fn name_of(text: &str) -> Object {
        Object::Name(text.as_bytes().to_vec())
    }

    #[test]
    fn numbers() {
        for (value, text) in [
            (Object::Integer(0), "0"),
            (Object::Integer(-17), "-17"),
            (Object::Integer(i64::MAX), "9223372036854775807"),
            (Object::Integer(i64::MIN), "-9223372036854775808"),
            (Object::Real(0.0), "0.0"),
            (Object::Real(-0.0), "0.0"),
            (Object::Real(612.0), "612.0"),
            (Object::Real(-3.0), "-3.0"),
            (Object::Real(0.5), "0.5"),
            (Object::Real(-12.25), "-12.25"),
            (Object::Real(f32::NAN), "0.0"),
        ] {
            assert_eq!(String::from_utf8(written(&value)).unwrap(), text);
        }
        let huge = String::from_utf8(written(&Object::Real(f32::INFINITY))).unwrap();
        assert!(huge.ends_with(".0") && !huge.contains("inf"), "{huge}");
    }

    #[test]
    fn padded_numbers() {
        let mut out = Vec::new();
        padded(&mut out, 1234, 10);
        out.push(b' ');
        padded(&mut out, 0, 5);
        out.push(b' ');
        padded(&mut out, 123_456, 3);
        assert_eq!(out, b"0000001234 00000 123456");
    }

    #[test]
    fn names_and_strings_escape_what_they_must() {
        assert_eq!(written(&name_of("Type")), b"/Type");
        assert_eq!(written(&name_of("A B#(c)/é")), b"/A#20B#23#28c#29#2F#C3#A9");
        assert_eq!(
            written(&Object::string_literal(&b"a(b)\\c\rd)"[..])),
            b"(a\\(b\\)\\\\c\\rd\\))"
        );
        assert_eq!(
            written(&Object::String(
                vec![0x00, 0xAB, 0xFF],
                StringFormat::Hexadecimal
            )),
            b"<00ABFF>"
        );
    }

    #[test]
    fn compact_and_separated() {
        let dict = Dictionary::from_iter([
            ("Type", name_of("Annot")),
            ("F", Object::Integer(132)),
            ("P", Object::Reference((12, 0))),
            (
                "Rect",
                Object::Array(vec![
                    Object::Integer(1),
                    Object::Real(2.5),
                    name_of("N"),
                    Object::Boolean(true),
                    Object::Null,
                ]),
            ),
        ]);
        assert_eq!(
            written(&Object::Dictionary(dict)),
            b"<</Type/Annot/F 132/P 12 0 R/Rect[1 2.5/N true null]>>"
        );
        let mut out = Vec::new();
        indirect(&mut out, (7, 2), |out| object(out, &Object::Integer(5)));
        assert_eq!(out, b"7 2 obj\n5\nendobj\n");
    }

    #[test]
    fn a_stream_gets_its_real_length() {
        let mut stream = Stream::new(Dictionary::new(), b"q Q".to_vec());
        stream.dict.set("Length", 99);
        assert_eq!(
            written(&Object::Stream(stream)),
            b"<</Length 3>>stream\nq Q\nendstream"
        );
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let awkward: Vec<u8> = (0u8..=255).collect();
        let objects = [
            Object::Null,
            Object::Boolean(false),
            Object::Integer(-42),
            Object::Real(-1.5),
            Object::Real(100.0),
            name_of("With Space#And/Slash"),
            Object::Name(awkward[1..].to_vec()),
            Object::String(awkward.clone(), StringFormat::Literal),
            Object::String(b"(((".to_vec(), StringFormat::Literal),
            Object::String(b"\r\n\r".to_vec(), StringFormat::Literal),
            Object::String(awkward.clone(), StringFormat::Hexadecimal),
            Object::Reference((4_000_000_000, 65_535)),
            Object::Array(vec![
                Object::Integer(1),
                Object::Integer(2),
                Object::Reference((3, 0)),
                Object::Array(vec![]),
                Object::Dictionary(Dictionary::new()),
                name_of("x"),
                Object::Real(0.25),
            ]),
            Object::Dictionary(Dictionary::from_iter([
                ("Kids", Object::Array(vec![Object::Reference((1, 0))])),
                ("Count", Object::Integer(1)),
                (
                    "Nested",
                    Object::Dictionary(Dictionary::from_iter([("N", Object::Null)])),
                ),
            ])),
        ];
        for value in objects {
            let bytes = written(&value);
            assert_eq!(
                read_back(&bytes),
                value,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    proptest! {
        #[test]
        fn any_object_reads_back_the_same(value in object_strategy()) {
            let bytes = written(&value);
            prop_assert_eq!(read_back(&bytes), value);
        }
    }
}
