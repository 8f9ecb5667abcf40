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

use lopdf::{Dictionary, Object};

use super::lexer::{Parser, decode_name, name_byte};
use crate::error::Result;

/// Where one entry of a [`RawDict`] is: its key with the `/`, and its value.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// A dictionary as found in the input, from `<<` to `>>`, with the spans of its entries.
/// The default has no entries (and no bytes).
#[derive(Debug, Clone, Default)]
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

    /// The entries, each as its bytes (`/Key value`) as found, but for those whose key
    /// (its escapes decoded) `keep` refuses.
    pub(crate) fn entries_where<'s>(
        &'s self,
        keep: impl Fn(&[u8]) -> bool + 's,
    ) -> impl Iterator<Item = &'s [u8]> {
        self.entries
            .iter()
            .filter(move |entry| keep(&decode_name(self.name(entry))))
            .map(|entry| {
                self.bytes
                    .get(entry.key.start..entry.value.end)
                    .unwrap_or_default()
            })
    }

    /// The same dictionary kept as bytes: for one that was read into lopdf's model
    /// (a cross-reference stream's).
    pub(crate) fn from_dictionary(dict: &Dictionary) -> Self {
        let mut bytes = b"<<".to_vec();
        let mut entries = Vec::with_capacity(dict.len());
        for (key, value) in dict {
            let start = bytes.len();
            crate::syntax::name(&mut bytes, key);
            let key = start..bytes.len();
            crate::syntax::value_after_key(&mut bytes, value);
            // The value starts after the space that may set it apart from the key.
            let value_start = key.end + usize::from(bytes.get(key.end) == Some(&b' '));
            let value = value_start..bytes.len();
            entries.push(RawEntry { key, value });
        }
        bytes.extend_from_slice(b">>");
        RawDict {
            bytes,
            entries,
            base: 0,
            object_stream: None,
        }
    }

    /// The dictionary read into lopdf's model.
    ///
    /// # Errors
    ///
    /// None in practice: every entry was checked by the same parser when read.
    pub(crate) fn to_dictionary(&self) -> Result<Dictionary> {
        let mut parser = Parser::new(&self.bytes, self.base, true).in_stream(self.object_stream);
        match parser.object()? {
            Object::Dictionary(dict) => Ok(dict),
            _ => Err(crate::error::Error::Unreachable(
                "a raw dictionary reads as a dictionary",
            )),
        }
    }

    fn is(&self, entry: &RawEntry, key: &[u8]) -> bool {
        name_is(self.name(entry), key)
    }

    /// The key's token, after its `/`.
    fn name(&self, entry: &RawEntry) -> &[u8] {
        self.bytes
            .get(entry.key.start + 1..entry.key.end)
            .unwrap_or_default()
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
    let mut expected = name.iter();
    let mut index = 0;
    while let Some((byte, len)) = name_byte(token, index) {
        if expected.next() != Some(&byte) {
            return false;
        }
        index += len;
    }
    expected.next().is_none()
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
        assert_eq!(&*decode_name(b"Ann#6Fts"), b"Annots");
        assert_eq!(&*decode_name(b"A#4#"), b"A#4#");
        let dict = raw(b"<</Ann#6Fts[]/Type/Page>>");
        let kept: Vec<&[u8]> = dict.entries_where(|key| key != b"Annots").collect();
        assert_eq!(kept, [&b"/Type/Page"[..]]);
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
        let kept: Vec<&[u8]> = dict.entries_where(|key| key != b"Annots").collect();
        assert_eq!(
            kept,
            [&b"/Type/Page"[..], b"/Parent 2 0 R", b"/Rotate%y\n90"]
        );
    }

    #[test]
    fn built_from_and_read_into_the_model_alike() {
        let model = Dictionary::from_iter([
            ("Size", Object::Integer(7)),
            ("Root", Object::Reference((1, 0))),
            ("A B", Object::Name(b"x y".to_vec())),
            (
                "ID",
                Object::Array(vec![Object::String(
                    vec![1, 2],
                    lopdf::StringFormat::Hexadecimal,
                )]),
            ),
        ]);
        let dict = RawDict::from_dictionary(&model);
        assert_eq!(dict.to_dictionary().unwrap(), model);
        assert_eq!(
            dict.get(b"A B").unwrap(),
            Some(Object::Name(b"x y".to_vec()))
        );
        let kept: Vec<&[u8]> = dict
            .entries_where(|key| key != b"Size" && key != b"ID")
            .collect();
        assert_eq!(kept, [&b"/Root 1 0 R"[..], b"/A#20B/x#20y"]);
        assert_eq!(
            raw(b"<</A 1/A 2>>")
                .to_dictionary()
                .unwrap()
                .get(b"A")
                .unwrap(),
            &Object::Integer(2)
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
