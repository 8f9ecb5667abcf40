//! PDF object syntax (ISO 32000-1, 7.2 and 7.3) parsed from a byte window into lopdf's
//! [`Object`] model.
//!
//! The parser works on a slice that may be a window onto a larger file. When the window
//! does not reach the end of the data (`complete == false`), running off its end is
//! reported as [`Error::UnexpectedEof`] so that the caller can read a larger window and
//! try again; a token that ends exactly at the window's end is treated the same way,
//! since it might continue past it.

use std::borrow::Cow;

use lopdf::{Dictionary, Object, StringFormat};

use super::raw::{RawDict, RawEntry};
use crate::error::{Error, ObjectId, Result};
use crate::limits::MAX_NESTING;

/// Where a string's bytes go as they are decoded: into the string when the object is
/// built, nowhere when it is only checked.
trait Sink {
    fn push(&mut self, byte: u8);
    fn reserve(&mut self, _additional: usize) {}
}

impl Sink for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }

    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

/// Checks a string without keeping it.
struct Discard;

impl Sink for Discard {
    fn push(&mut self, _byte: u8) {}
}

/// An indirect object as found at an offset: `N G obj <object> [stream]`.
#[derive(Debug)]
pub(crate) struct IndirectObject {
    /// The `N G` of the header.
    pub(crate) id: ObjectId,
    /// The object (for a stream, its dictionary, as [`Object::Dictionary`]).
    pub(crate) object: Object,
    /// For a stream, the absolute offset of its first data byte.
    pub(crate) stream_data: Option<u64>,
}

/// A parser over one window of PDF bytes.
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    complete: bool,
    object_stream: Option<u32>,
    /// Items of the arrays being parsed, innermost last: each array is gathered here and
    /// then moved into a vector of exactly its size (an `Object` is 120 bytes, so growing
    /// each array from four slots wasted half a kilobyte for a one-element `/Kids`).
    items: Vec<Object>,
    /// Entries of the dictionaries being parsed, innermost last, likewise.
    entries: Vec<(Vec<u8>, Object)>,
}

pub(crate) fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b'\0' | b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')
}

pub(crate) fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(byte: u8) -> bool {
    !is_whitespace(byte) && !is_delimiter(byte)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

impl<'a> Parser<'a> {
    /// A parser over `buf`, whose first byte is at offset `base` of the data. `complete`
    /// says whether `buf` runs to the end of the data.
    pub(crate) fn new(buf: &'a [u8], base: u64, complete: bool) -> Self {
        Parser {
            buf,
            pos: 0,
            base,
            complete,
            object_stream: None,
            items: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// A parser over a decoded object stream's data, for error messages that name it.
    pub(crate) fn in_object_stream(buf: &'a [u8], stream: u32) -> Self {
        Parser {
            buf,
            pos: 0,
            base: 0,
            complete: true,
            object_stream: Some(stream),
            items: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The same parser, for data of object stream `stream` (if any), for error messages
    /// that name it.
    pub(crate) fn in_stream(mut self, stream: Option<u32>) -> Self {
        self.object_stream = stream;
        self
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    fn eof(&self) -> Error {
        Error::UnexpectedEof {
            offset: self.offset(),
        }
    }

    fn error(&self, expected: &'static str) -> Error {
        Error::Syntax {
            offset: self.offset(),
            expected,
            object_stream: self.object_stream,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.buf.get(self.pos.saturating_add(ahead)).copied()
    }

    /// The next byte, or an end-of-data error.
    fn next_byte(&mut self) -> Result<u8> {
        let byte = self.peek().ok_or_else(|| self.eof())?;
        self.pos += 1;
        Ok(byte)
    }

    /// Skips white space and comments. Returns whether any data is left.
    pub(crate) fn skip_whitespace(&mut self) -> Result<bool> {
        loop {
            match self.peek() {
                Some(byte) if is_whitespace(byte) => self.pos += 1,
                Some(b'%') => {
                    while let Some(byte) = self.peek() {
                        if byte == b'\n' || byte == b'\r' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                Some(_) => return Ok(true),
                None if self.complete => return Ok(false),
                None => return Err(self.eof()),
            }
        }
    }

    /// A run of regular characters (a number or a keyword), checked not to be cut by
    /// the window's end.
    fn token(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        while self.peek().is_some_and(is_regular) {
            self.pos += 1;
        }
        if self.pos == self.buf.len() && !self.complete {
            return Err(self.eof());
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// Skips white space, then expects `keyword` as a whole token.
    pub(crate) fn expect_keyword(
        &mut self,
        keyword: &'static [u8],
        expected: &'static str,
    ) -> Result<()> {
        if !self.skip_whitespace()? {
            return Err(self.eof());
        }
        let at = self.pos;
        if self.token()? == keyword {
            Ok(())
        } else {
            self.pos = at;
            Err(self.error(expected))
        }
    }

    /// Skips white space and reads a non-negative integer token.
    pub(crate) fn unsigned(&mut self, expected: &'static str) -> Result<u64> {
        if !self.skip_whitespace()? {
            return Err(self.eof());
        }
        let at = self.pos;
        let token = self.token()?;
        parse_unsigned(token).ok_or_else(|| {
            self.pos = at;
            self.error(expected)
        })
    }

    /// Reads the `N G obj` header of an indirect object.
    pub(crate) fn indirect_header(&mut self) -> Result<ObjectId> {
        let number = self.unsigned("an object number")?;
        let generation = self.unsigned("a generation number")?;
        self.expect_keyword(b"obj", "obj")?;
        let number =
            u32::try_from(number).map_err(|_| self.error("an object number below 2^32"))?;
        let generation =
            u16::try_from(generation).map_err(|_| self.error("a generation number below 65536"))?;
        Ok((number, generation))
    }

    /// Reads an indirect object: its header, the object, and for a stream the offset of
    /// its data.
    pub(crate) fn indirect_object(&mut self) -> Result<IndirectObject> {
        let id = self.indirect_header()?;
        let object = self.object()?;
        let mut stream_data = None;
        if matches!(object, Object::Dictionary(_)) && self.skip_whitespace()? {
            let at = self.pos;
            if self.peek().is_some_and(is_regular) && self.token()? == b"stream" {
                // The keyword is followed by CRLF or LF (7.3.8.1); a lone CR is tolerated.
                match (self.peek(), self.peek_at(1)) {
                    (Some(b'\r'), Some(b'\n')) => self.pos += 2,
                    (Some(b'\n'), _) => self.pos += 1,
                    (Some(b'\r'), Some(_)) => self.pos += 1,
                    (Some(b'\r'), None) | (None, _) => return Err(self.eof()),
                    _ => return Err(self.error("an end of line after stream")),
                }
                stream_data = Some(self.offset());
            } else {
                self.pos = at;
            }
        }
        Ok(IndirectObject {
            id,
            object,
            stream_data,
        })
    }

    /// As [`Parser::indirect_object`], for [`Parser::raw_dictionary`]: `None` for an
    /// object that is not a dictionary, or is a stream's.
    pub(crate) fn raw_indirect_dictionary(&mut self) -> Result<(ObjectId, Option<RawDict>)> {
        let id = self.indirect_header()?;
        let dict = self.raw_dictionary()?;
        if dict.is_some() && self.skip_whitespace()? {
            let at = self.pos;
            if self.peek().is_some_and(is_regular) && self.token()? == b"stream" {
                return Ok((id, None));
            }
            self.pos = at;
        }
        Ok((id, dict))
    }

    /// Checks one direct object exactly as [`Parser::object`] reads it, without building
    /// it; a dictionary comes back as its bytes and the spans of its entries, anything
    /// else as `None`.
    pub(crate) fn raw_dictionary(&mut self) -> Result<Option<RawDict>> {
        if !self.skip_whitespace()? {
            return Err(self.eof());
        }
        if self.peek() != Some(b'<') || self.peek_at(1) != Some(b'<') {
            self.object_at_depth::<false>(0)?;
            return Ok(None);
        }
        let start = self.pos;
        let depth = self.deeper(0)?;
        self.pos += 2;
        let mut entries = Vec::new();
        self.dictionary_entries::<false>(depth, Some(&mut entries))?;
        let bytes = self.buf.get(start..self.pos).unwrap_or_default();
        Ok(Some(RawDict::new(
            bytes,
            entries,
            start,
            self.base.saturating_add(start as u64),
            self.object_stream,
        )))
    }

    /// Reads one direct object.
    pub(crate) fn object(&mut self) -> Result<Object> {
        self.object_at_depth::<true>(0)
    }

    /// Reads one object at nesting `depth`. With `KEEP` false it is checked exactly as
    /// it would be read, but nothing is built and [`Object::Null`] comes back: the same
    /// syntax is accepted either way.
    fn object_at_depth<const KEEP: bool>(&mut self, depth: usize) -> Result<Object> {
        if !self.skip_whitespace()? {
            return Err(self.eof());
        }
        let Some(byte) = self.peek() else {
            return Err(self.eof());
        };
        match byte {
            b'/' if KEEP => {
                self.pos += 1;
                Ok(Object::Name(self.name_body()?))
            }
            b'/' => {
                self.pos += 1;
                self.token()?;
                Ok(Object::Null)
            }
            b'(' if KEEP => {
                self.pos += 1;
                let mut text = Vec::new();
                self.literal_string_body(&mut text)?;
                Ok(Object::String(text, StringFormat::Literal))
            }
            b'(' => {
                self.pos += 1;
                self.literal_string_body(&mut Discard)?;
                Ok(Object::Null)
            }
            b'<' if self.peek_at(1) == Some(b'<') && KEEP => {
                let dict = self.dictionary(depth)?;
                Ok(Object::Dictionary(dict))
            }
            b'<' if self.peek_at(1) == Some(b'<') => {
                let depth = self.deeper(depth)?;
                self.pos += 2;
                self.dictionary_entries::<false>(depth, None)?;
                Ok(Object::Null)
            }
            b'<' if self.peek_at(1).is_none() && !self.complete => Err(self.eof()),
            b'<' if KEEP => {
                self.pos += 1;
                let mut bytes = Vec::new();
                self.hex_string_body(&mut bytes)?;
                Ok(Object::String(bytes, StringFormat::Hexadecimal))
            }
            b'<' => {
                self.pos += 1;
                self.hex_string_body(&mut Discard)?;
                Ok(Object::Null)
            }
            b'[' => {
                let depth = self.deeper(depth)?;
                self.pos += 1;
                let start = self.items.len();
                let result = self.array_items::<KEEP>(depth);
                // Not `split_off`, which hands over the whole buffer when `start` is 0.
                let items = self.items.drain(start..);
                result.map(|()| {
                    if KEEP {
                        Object::Array(items.collect())
                    } else {
                        Object::Null
                    }
                })
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number_or_reference(),
            _ if is_regular(byte) => {
                let at = self.pos;
                match self.token()? {
                    b"true" => Ok(Object::Boolean(true)),
                    b"false" => Ok(Object::Boolean(false)),
                    b"null" => Ok(Object::Null),
                    _ => {
                        self.pos = at;
                        Err(self.error("an object"))
                    }
                }
            }
            _ => Err(self.error("an object")),
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize> {
        let depth = depth + 1;
        if depth > MAX_NESTING {
            return Err(Error::NestingTooDeep {
                offset: self.offset(),
                limit: MAX_NESTING,
            });
        }
        Ok(depth)
    }

    /// The items of an array after its `[`, up to and including `]`, onto `self.items`
    /// (checked only, without `KEEP`).
    fn array_items<const KEEP: bool>(&mut self, depth: usize) -> Result<()> {
        loop {
            if !self.skip_whitespace()? {
                return Err(self.eof());
            }
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(());
            }
            let item = self.object_at_depth::<KEEP>(depth)?;
            if KEEP {
                self.items.push(item);
            }
        }
    }

    fn dictionary(&mut self, depth: usize) -> Result<Dictionary> {
        let depth = self.deeper(depth)?;
        self.pos += 2;
        // Gathered first, then hashed into a map sized once: a later duplicate key
        // replaces the earlier one's value, as inserting one by one would.
        let start = self.entries.len();
        let result = self.dictionary_entries::<true>(depth, None);
        let entries = self.entries.drain(start..);
        result.map(|()| crate::dict::dictionary(entries))
    }

    /// The entries of a dictionary after its `<<`, up to and including `>>`: onto
    /// `self.entries` with `KEEP`, otherwise checked only, their spans onto `spans` if
    /// given.
    fn dictionary_entries<const KEEP: bool>(
        &mut self,
        depth: usize,
        mut spans: Option<&mut Vec<RawEntry>>,
    ) -> Result<()> {
        loop {
            if !self.skip_whitespace()? {
                return Err(self.eof());
            }
            match (self.peek(), self.peek_at(1)) {
                (Some(b'>'), Some(b'>')) => {
                    self.pos += 2;
                    return Ok(());
                }
                (Some(b'>'), None) => return Err(self.eof()),
                (Some(b'/'), _) if KEEP => {
                    self.pos += 1;
                    let key = self.name_body()?;
                    let value = self.object_at_depth::<true>(depth)?;
                    self.entries.push((key, value));
                }
                (Some(b'/'), _) => {
                    let key = self.pos;
                    self.pos += 1;
                    self.token()?;
                    let key = key..self.pos;
                    if !self.skip_whitespace()? {
                        return Err(self.eof());
                    }
                    let value = self.pos;
                    self.object_at_depth::<false>(depth)?;
                    if let Some(spans) = spans.as_deref_mut() {
                        spans.push(RawEntry {
                            key,
                            value: value..self.pos,
                        });
                    }
                }
                _ => return Err(self.error("a name key or >>")),
            }
        }
    }

    /// A name after its `/`, with `#xx` escapes decoded.
    fn name_body(&mut self) -> Result<Vec<u8>> {
        Ok(decode_name(self.token()?).into_owned())
    }

    fn literal_string_body(&mut self, out: &mut impl Sink) -> Result<()> {
        let mut open = 0usize;
        loop {
            let byte = self.next_byte()?;
            match byte {
                b'(' => {
                    open += 1;
                    out.push(byte);
                }
                b')' if open == 0 => return Ok(()),
                b')' => {
                    open -= 1;
                    out.push(byte);
                }
                b'\\' => self.escape(out)?,
                // An end-of-line marker in a string reads as a single line feed (7.3.4.2).
                b'\r' => {
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                _ => out.push(byte),
            }
        }
    }

    fn escape(&mut self, out: &mut impl Sink) -> Result<()> {
        let byte = self.next_byte()?;
        match byte {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(b'\x08'),
            b'f' => out.push(b'\x0C'),
            b'0'..=b'7' => {
                let mut value = u32::from(byte - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            self.pos += 1;
                        }
                        None if !self.complete => return Err(self.eof()),
                        _ => break,
                    }
                }
                // High-order overflow is ignored (7.3.4.2).
                out.push((value & 0xFF) as u8);
            }
            // A backslash before an end of line continues the string on the next line.
            b'\r' => {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            b'\n' => {}
            // `\(`, `\)`, `\\`, and any other character stands for itself.
            _ => out.push(byte),
        }
        Ok(())
    }

    fn hex_string_body(&mut self, out: &mut impl Sink) -> Result<()> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let end = rest.iter().position(|&byte| byte == b'>');
        let digits = end.unwrap_or(0);
        // The usual string, an even run of digits and nothing else up to its `>`,
        // decoded pair by pair.
        if let Some(run) = end.and_then(|end| rest.get(..end))
            && digits % 2 == 0
            && run.iter().all(u8::is_ascii_hexdigit)
        {
            out.reserve(digits / 2);
            for pair in run.chunks_exact(2) {
                if let &[high, low] = pair {
                    out.push(hex_value(high).unwrap_or(0) << 4 | hex_value(low).unwrap_or(0));
                }
            }
            self.pos += digits + 1;
            return Ok(());
        }
        // Anything else (white space, an odd digit count, an error), byte by byte.
        out.reserve(digits / 2 + 1);
        let mut high: Option<u8> = None;
        loop {
            let byte = self.next_byte()?;
            if byte == b'>' {
                if let Some(high) = high {
                    out.push(high << 4);
                }
                return Ok(());
            }
            if is_whitespace(byte) {
                continue;
            }
            let Some(value) = hex_value(byte) else {
                self.pos -= 1;
                return Err(self.error("a hexadecimal digit or >"));
            };
            match high.take() {
                Some(high) => out.push(high << 4 | value),
                None => high = Some(value),
            }
        }
    }

    fn number_or_reference(&mut self) -> Result<Object> {
        let at = self.pos;
        let token = self.token()?;
        let Some(number) = parse_number(token) else {
            self.pos = at;
            return Err(self.error("a number"));
        };
        let Object::Integer(first) = number else {
            return Ok(number);
        };
        // `N G R`: only when two unsigned integers are followed by the keyword R.
        if token.iter().any(|&byte| !byte.is_ascii_digit()) {
            return Ok(number);
        }
        let after_first = self.pos;
        if let Some(reference) = self.reference_tail(first)? {
            return Ok(reference);
        }
        self.pos = after_first;
        Ok(number)
    }

    /// After an unsigned integer, looks for `G R`. Returns `None` (position unspecified)
    /// when they are not there.
    fn reference_tail(&mut self, number: i64) -> Result<Option<Object>> {
        if !self.skip_whitespace()? || !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            return Ok(None);
        }
        let generation = self.token()?;
        if generation.iter().any(|&byte| !byte.is_ascii_digit()) {
            return Ok(None);
        }
        if !self.skip_whitespace()? || self.peek() != Some(b'R') {
            return Ok(None);
        }
        if self.token()? != b"R" {
            return Ok(None);
        }
        let (Ok(number), Some(generation)) = (u32::try_from(number), parse_unsigned(generation))
        else {
            return Err(self.error("an object reference with numbers in range"));
        };
        let generation =
            u16::try_from(generation).map_err(|_| self.error("a generation number below 65536"))?;
        Ok(Some(Object::Reference((number, generation))))
    }
}

/// The name token `token` (after its `/`) with its `#xx` escapes decoded (7.3.5); a `#`
/// not followed by two hex digits stands for itself.
pub(crate) fn decode_name(token: &[u8]) -> Cow<'_, [u8]> {
    if !token.contains(&b'#') {
        return Cow::Borrowed(token);
    }
    let mut name = Vec::with_capacity(token.len());
    let mut index = 0;
    while let Some((byte, len)) = name_byte(token, index) {
        name.push(byte);
        index += len;
    }
    Cow::Owned(name)
}

/// The byte of name token `token` at `index`, an escape decoded, and how many bytes of
/// the token it took.
pub(crate) fn name_byte(token: &[u8], index: usize) -> Option<(u8, usize)> {
    let byte = *token.get(index)?;
    Some(
        match (
            byte,
            token.get(index + 1).copied().and_then(hex_value),
            token.get(index + 2).copied().and_then(hex_value),
        ) {
            (b'#', Some(high), Some(low)) => (high << 4 | low, 3),
            _ => (byte, 1),
        },
    )
}

/// Parses a run of ASCII digits.
pub(crate) fn parse_unsigned(token: &[u8]) -> Option<u64> {
    if token.is_empty() || token.len() > 19 {
        return None;
    }
    token.iter().try_fold(0u64, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u64::from(byte - b'0'))
    })
}

/// Parses an integer or real token (7.3.3). Integers too large for `i64` become reals.
fn parse_number(token: &[u8]) -> Option<Object> {
    // The usual case, digits that cannot overflow, without the general path's checks.
    if !token.is_empty() && token.len() <= 18 && token.iter().all(u8::is_ascii_digit) {
        let value = token
            .iter()
            .fold(0i64, |value, &digit| value * 10 + i64::from(digit - b'0'));
        return Some(Object::Integer(value));
    }
    let (negative, digits) = match token.first() {
        Some(b'-') => (true, token.get(1..).unwrap_or_default()),
        Some(b'+') => (false, token.get(1..).unwrap_or_default()),
        _ => (false, token),
    };
    let dots = digits.iter().filter(|&&byte| byte == b'.').count();
    if dots > 1
        || !digits
            .iter()
            .all(|&byte| byte.is_ascii_digit() || byte == b'.')
    {
        return None;
    }
    if !digits.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    if dots == 0
        && let Ok(value) = text.parse::<i64>()
    {
        return Some(Object::Integer(if negative { -value } else { value }));
    }
    // "5." and ".5" are both valid PDF; Rust's parser takes both.
    let value: f64 = text.parse().ok()?;
    let value = if negative { -value } else { value };
    Some(Object::Real(value as f32))
}

#[cfg(test)]
pub(crate) mod tests;
