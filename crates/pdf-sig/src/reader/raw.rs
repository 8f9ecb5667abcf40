//! Dictionaries kept as the bytes they were read from.
//!
//! The increment rewrites a few dictionaries of the input (the catalog, the page) to
//! add one entry, and looks at a few keys of others (page tree nodes). Building each
//! into lopdf's model (an allocation per key, a hashed map, every nested value) and
//! writing it out again was most of the work of signing a small file. A [`RawDict`] is
//! checked by the same parser with the same limits, but only its top-level entries are
//! located; a value is parsed when asked for, and a rewritten dictionary is written
//! back entry by entry as found. Copying the input's own bytes cannot change what an
//! untouched entry means.

use std::ops::Range;

use lopdf::Object;

use super::lexer::{Parser, hex_value};
use crate::error::Result;

/// Where one entry of a [`RawDict`] is: its key with the `/`, and its value.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// A dictionary as found in the input, from `<<` to `>>`, with the spans of its entries.
#[derive(Debug, Clone)]
pub(crate) struct RawDict {
    bytes: Vec<u8>,
    entries: Vec<RawEntry>,
    /// The offset of the first byte in the file (or in the object stream's data).
    base: u64,
    object_stream: Option<u32>,
}

impl RawDict {
    /// A dictionary of `bytes`, whose entries were found at `entries` in a buffer where
    /// `bytes` starts at `start`.
    pub(crate) fn new(
        bytes: &[u8],
        mut entries: Vec<RawEntry>,
        start: usize,
        base: u64,
        object_stream: Option<u32>,
    ) -> Self {
        for entry in &mut entries {
            entry.key = entry.key.start - start..entry.key.end - start;
            entry.value = entry.value.start - start..entry.value.end - start;
        }
        RawDict {
            bytes: bytes.to_vec(),
            entries,
            base,
            object_stream,
        }
    }

    /// The value of `key`, parsed; of the last entry of that name, as when the
    /// dictionary is read into lopdf's model.
    ///
    /// # Errors
    ///
    /// None in practice: the value was checked by the same parser when read.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Object>> {
        let Some(entry) = self.entries.iter().rev().find(|entry| self.is(entry, key)) else {
            return Ok(None);
        };
        let value = self.bytes.get(entry.value.clone()).unwrap_or_default();
        let base = self.base.saturating_add(entry.value.start as u64);
        Parser::new(value, base, true)
            .in_stream(self.object_stream)
            .object()
            .map(Some)
    }

    /// Whether an entry is named `key`.
    pub(crate) fn has(&self, key: &[u8]) -> bool {
        self.entries.iter().any(|entry| self.is(entry, key))
    }

    /// The entries, each as its bytes (`/Key value`) as found, but for those named
    /// `key`.
    pub(crate) fn entries_except<'s>(&'s self, key: &'s [u8]) -> impl Iterator<Item = &'s [u8]> {
        self.entries
            .iter()
            .filter(move |entry| !self.is(entry, key))
            .map(|entry| {
                self.bytes
                    .get(entry.key.start..entry.value.end)
                    .unwrap_or_default()
            })
    }

    fn is(&self, entry: &RawEntry, key: &[u8]) -> bool {
        let name = self
            .bytes
            .get(entry.key.start + 1..entry.key.end)
            .unwrap_or_default();
        name_is(name, key)
    }
}

/// Whether the name token `token` (after its `/`) reads as `name`, its `#xx` escapes
/// decoded as the parser decodes them.
fn name_is(token: &[u8], name: &[u8]) -> bool {
    if token == name {
        return true;
    }
    // An escape only ever makes the token longer than the name it stands for.
    if token.len() <= name.len() || !token.contains(&b'#') {
        return false;
    }
    let mut decoded = name.iter();
    let mut index = 0;
    while let Some(&byte) = token.get(index) {
        let (byte, len) = match (
            byte,
            token.get(index + 1).copied().and_then(hex_value),
            token.get(index + 2).copied().and_then(hex_value),
        ) {
            (b'#', Some(high), Some(low)) => (high << 4 | low, 3),
            _ => (byte, 1),
        };
        if decoded.next() != Some(&byte) {
            return false;
        }
        index += len;
    }
    decoded.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &[u8]) -> RawDict {
        let mut parser = Parser::new(text, 0, true);
        parser.raw_dictionary().unwrap().unwrap()
    }

    #[test]
    fn escaped_names_match_decoded() {
        assert!(name_is(b"Annots", b"Annots"));
        assert!(name_is(b"Ann#6Fts", b"Annots"));
        assert!(name_is(b"A#", b"A#"));
        assert!(name_is(b"A#4", b"A#4"));
        assert!(!name_is(b"Ann#6Ft", b"Annots"));
        assert!(!name_is(b"Ann#6Ftsx", b"Annots"));
        assert!(!name_is(b"Annots", b"Annot"));
    }

    #[test]
    fn the_last_duplicate_wins_and_values_parse_on_demand() {
        let dict = raw(b"<< /A 1 /B [1 0 R] %c\n/A (two) >>");
        assert_eq!(dict.get(b"A").unwrap(), Some(Object::string_literal("two")));
        assert_eq!(
            dict.get(b"B").unwrap(),
            Some(Object::Array(vec![Object::Reference((1, 0))]))
        );
        assert_eq!(dict.get(b"C").unwrap(), None);
        assert!(dict.has(b"B"));
        assert!(!dict.has(b"C"));
    }

    #[test]
    fn entries_are_kept_as_found_without_the_comments_between_them() {
        let dict = raw(b"<</Type/Page %x\n/Parent 2 0 R/Annots [] /Rotate%y\n90>>");
        let kept: Vec<&[u8]> = dict.entries_except(b"Annots").collect();
        assert_eq!(
            kept,
            [&b"/Type/Page"[..], b"/Parent 2 0 R", b"/Rotate%y\n90"]
        );
    }

    #[test]
    fn other_objects_are_checked_and_refused() {
        for text in [&b"[1 2 3]"[..], b"(text)", b"/Name", b"12 0 R", b"<00>"] {
            assert!(
                Parser::new(text, 0, true)
                    .raw_dictionary()
                    .unwrap()
                    .is_none()
            );
        }
        for text in [
            &b"<< /A >>"[..],
            b"<< 1 2 >>",
            b"<< /A (open >>",
            b"<< /A <0g> >>",
        ] {
            assert!(Parser::new(text, 0, true).raw_dictionary().is_err());
        }
    }
}
