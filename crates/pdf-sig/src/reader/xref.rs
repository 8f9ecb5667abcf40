//! Cross-reference sections: tables (ISO 32000-1, 7.5.4) and the entries of
//! cross-reference streams (7.5.8).

use crate::dict::Entry as _;
use std::io::BufRead;

use lopdf::{Dictionary, Object};

use crate::error::{Error, Result};
use crate::reader::lexer::{is_whitespace, parse_unsigned};

/// Where one object lives, as a cross-reference entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefEntry {
    /// The object number is free (deleted or never used).
    Free,
    /// The object starts at a byte offset of the file.
    InFile {
        /// Byte offset of its `N G obj` header.
        offset: u64,
        /// Its generation number.
        generation: u16,
    },
    /// The object is stored in an object stream.
    InStream {
        /// The object stream's object number.
        stream: u32,
        /// The object's index within the stream.
        index: u32,
    },
}

/// One cross-reference entry with its object number.
pub(crate) type NumberedEntry = (u32, XrefEntry);

/// Every object's cross-reference entry, one per number, sorted by number: a vector
/// searched by halves rather than a hashed map, which cost a hash per entry of every
/// section and a rehash each time it grew.
#[derive(Debug, Default)]
pub(crate) struct Entries(Vec<NumberedEntry>);

impl Entries {
    /// The entries of every section, in order of precedence: of several for one number,
    /// the first wins.
    pub(crate) fn from_precedence(mut all: Vec<NumberedEntry>) -> Self {
        // Stable: among entries of one number, the order of precedence stays.
        all.sort_by_key(|&(number, _)| number);
        all.dedup_by_key(|&mut (number, _)| number);
        Entries(all)
    }

    /// Sets the entry of `number`, for tests that make a table by hand.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, number: u32, entry: XrefEntry) {
        match self.0.binary_search_by_key(&number, |&(found, _)| found) {
            Ok(index) => self.0[index] = (number, entry),
            Err(index) => self.0.insert(index, (number, entry)),
        }
    }

    pub(crate) fn get(&self, number: u32) -> Option<XrefEntry> {
        let index = self
            .0
            .binary_search_by_key(&number, |&(found, _)| found)
            .ok()?;
        self.0.get(index).map(|&(_, entry)| entry)
    }
}

/// A small streaming tokenizer over the bytes of a cross-reference table, which can be
/// far larger than any window: 20 bytes per entry, up to 8,388,607 entries.
struct Scanner<'r, B> {
    input: &'r mut B,
    offset: u64,
}

impl<B: BufRead> Scanner<'_, B> {
    fn peek(&mut self) -> Result<Option<u8>> {
        let buffer = self
            .input
            .fill_buf()
            .map_err(Error::io("reading a cross-reference table"))?;
        Ok(buffer.first().copied())
    }

    fn bump(&mut self) {
        self.input.consume(1);
        self.offset += 1;
    }

    fn skip_whitespace(&mut self) -> Result<()> {
        while let Some(byte) = self.peek()? {
            if is_whitespace(byte) {
                self.bump();
            } else if byte == b'%' {
                while let Some(byte) = self.peek()? {
                    if byte == b'\n' || byte == b'\r' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    /// The next token of at most 32 regular characters.
    fn token(&mut self) -> Result<([u8; 32], usize)> {
        self.skip_whitespace()?;
        let mut token = [0u8; 32];
        let mut len = 0;
        while let Some(byte) = self.peek()? {
            if is_whitespace(byte) || crate::reader::lexer::is_delimiter(byte) {
                break;
            }
            let Some(slot) = token.get_mut(len) else {
                return Err(Error::syntax(
                    self.offset,
                    "a short token in a cross-reference table",
                ));
            };
            *slot = byte;
            len += 1;
            self.bump();
        }
        Ok((token, len))
    }

    /// One entry in the exact 20-byte form of 7.5.4 (`nnnnnnnnnn ggggg n` and a
    /// two-byte end of line), read straight from the buffer; `None`, and nothing
    /// consumed, for anything else, which the token-by-token path then reads.
    fn fixed_entry(&mut self) -> Result<Option<(u64, u64, u8)>> {
        let buffer = self
            .input
            .fill_buf()
            .map_err(Error::io("reading a cross-reference table"))?;
        let Some(&[ref offset @ .., b' ']) = buffer.get(..11) else {
            return Ok(None);
        };
        let Some(
            &[
                ref generation @ ..,
                b' ',
                kind @ (b'n' | b'f'),
                first_eol,
                second_eol,
            ],
        ) = buffer.get(11..20)
        else {
            return Ok(None);
        };
        if !matches!(
            (first_eol, second_eol),
            (b' ', b'\r') | (b' ', b'\n') | (b'\r', b'\n')
        ) {
            return Ok(None);
        }
        let (Some(offset), Some(generation)) = (parse_unsigned(offset), parse_unsigned(generation))
        else {
            return Ok(None);
        };
        self.input.consume(20);
        self.offset += 20;
        Ok(Some((offset, generation, kind)))
    }

    fn number(&mut self, expected: &'static str) -> Result<u64> {
        let at = self.offset;
        let (token, len) = self.token()?;
        token
            .get(..len)
            .and_then(parse_unsigned)
            .ok_or_else(|| Error::syntax(at, expected))
    }
}

/// Reads a cross-reference table that starts at `offset` with the keyword `xref`, up to
/// and including the keyword `trailer`. Returns its entries and the offset just after
/// `trailer`, where the trailer dictionary starts.
///
/// `budget` is how many more entries the document may list; it is decreased.
pub(crate) fn parse_table<B: BufRead>(
    input: &mut B,
    offset: u64,
    budget: &mut u64,
) -> Result<(Vec<NumberedEntry>, u64)> {
    let mut scanner = Scanner { input, offset };
    let (token, len) = scanner.token()?;
    if token.get(..len) != Some(b"xref".as_slice()) {
        return Err(Error::BadXref {
            offset,
            reason: "no xref keyword at startxref",
        });
    }
    let mut entries = Vec::new();
    loop {
        scanner.skip_whitespace()?;
        let at = scanner.offset;
        match scanner.peek()? {
            Some(byte) if byte.is_ascii_digit() => {}
            Some(_) => {
                let (token, len) = scanner.token()?;
                if token.get(..len) == Some(b"trailer".as_slice()) {
                    return Ok((entries, scanner.offset));
                }
                return Err(Error::syntax(at, "a subsection header or trailer"));
            }
            None => return Err(Error::UnexpectedEof { offset: at }),
        }
        let first = scanner.number("the first object number of a subsection")?;
        let count = scanner.number("the entry count of a subsection")?;
        if count > *budget {
            return Err(Error::TooManyXrefEntries {
                count: count.saturating_add(crate::limits::MAX_XREF_ENTRIES - *budget),
                limit: crate::limits::MAX_XREF_ENTRIES,
            });
        }
        *budget -= count;
        let last = first.saturating_add(count);
        if last > u64::from(u32::MAX) {
            return Err(Error::BadXref {
                offset: at,
                reason: "object numbers beyond 2^32",
            });
        }
        for number in first..last {
            scanner.skip_whitespace()?;
            let entry_at = scanner.offset;
            let (field, generation, kind) = match scanner.fixed_entry()? {
                Some(fixed) => fixed,
                None => {
                    let field = scanner.number("a 10-digit offset")?;
                    let generation = scanner.number("a 5-digit generation")?;
                    let (kind, len) = scanner.token()?;
                    let kind = match kind.get(..len) {
                        Some(&[kind]) => kind,
                        _ => 0,
                    };
                    (field, generation, kind)
                }
            };
            let generation = u16::try_from(generation).map_err(|_| Error::BadXref {
                offset: entry_at,
                reason: "generation above 65535",
            })?;
            let entry = match kind {
                b'n' => XrefEntry::InFile {
                    offset: field,
                    generation,
                },
                b'f' => XrefEntry::Free,
                _ => return Err(Error::syntax(entry_at, "an entry of type n or f")),
            };
            // The range check above keeps every number below 2^32.
            entries.push((number as u32, entry));
        }
    }
}

/// The `/W` field widths and `/Index` ranges of a cross-reference stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamLayout {
    pub(crate) widths: [usize; 3],
    pub(crate) index: Vec<(u32, u32)>,
}

impl StreamLayout {
    /// Reads `/W`, `/Index` and `/Size` from a cross-reference stream's dictionary.
    pub(crate) fn from_dict(dict: &Dictionary, offset: u64) -> Result<Self> {
        let bad = |reason| Error::BadXref { offset, reason };
        let Ok(Object::Array(w)) = dict.at(b"W") else {
            return Err(bad("/W missing or not an array"));
        };
        let mut widths = [0usize; 3];
        if w.len() != 3 {
            return Err(bad("/W does not have three entries"));
        }
        for (slot, value) in widths.iter_mut().zip(w) {
            *slot = match value {
                Object::Integer(width @ 0..=8) => *width as usize,
                _ => return Err(bad("/W entry not an integer from 0 to 8")),
            };
        }
        if widths.iter().sum::<usize>() == 0 {
            return Err(bad("/W entries are all zero"));
        }
        let size = match dict.at(b"Size") {
            Ok(Object::Integer(size)) => {
                u32::try_from(*size).map_err(|_| bad("/Size out of range"))?
            }
            _ => return Err(bad("/Size missing or not an integer")),
        };
        let index = match dict.at(b"Index") {
            Err(_) => vec![(0, size)],
            Ok(Object::Array(items)) => {
                if items.len() % 2 != 0 {
                    return Err(bad("/Index has an odd number of entries"));
                }
                items
                    .chunks(2)
                    .map(|pair| match pair {
                        [Object::Integer(first), Object::Integer(count)] => {
                            let first = u32::try_from(*first)
                                .map_err(|_| bad("/Index entry out of range"))?;
                            let count = u32::try_from(*count)
                                .map_err(|_| bad("/Index entry out of range"))?;
                            first
                                .checked_add(count)
                                .ok_or_else(|| bad("/Index range beyond 2^32"))?;
                            Ok((first, count))
                        }
                        _ => Err(bad("/Index entry not an integer")),
                    })
                    .collect::<Result<_>>()?
            }
            Ok(_) => return Err(bad("/Index not an array")),
        };
        Ok(StreamLayout { widths, index })
    }

    fn entry_len(&self) -> usize {
        self.widths.iter().sum()
    }

    /// Decodes the entries in `data`, a cross-reference stream's decoded content.
    /// `budget` is how many more entries the document may list; it is decreased.
    pub(crate) fn entries(
        &self,
        data: &[u8],
        offset: u64,
        budget: &mut u64,
    ) -> Result<Vec<NumberedEntry>> {
        let total: u64 = self.index.iter().map(|&(_, count)| u64::from(count)).sum();
        if total > *budget {
            return Err(Error::TooManyXrefEntries {
                count: total.saturating_add(crate::limits::MAX_XREF_ENTRIES - *budget),
                limit: crate::limits::MAX_XREF_ENTRIES,
            });
        }
        let needed = total.saturating_mul(self.entry_len() as u64);
        if needed > data.len() as u64 {
            return Err(Error::BadXref {
                offset,
                reason: "stream data shorter than /Index and /W need",
            });
        }
        *budget -= total;
        let mut entries = Vec::with_capacity(total as usize);
        let mut records = data.chunks_exact(self.entry_len());
        for &(first, count) in &self.index {
            for number in first..first.saturating_add(count) {
                let Some(record) = records.next() else {
                    return Err(Error::BadXref {
                        offset,
                        reason: "stream data ends early",
                    });
                };
                let (kind_bytes, rest) = record.split_at(self.widths[0]);
                let (second, third) = rest.split_at(self.widths[1]);
                // A missing type field means type 1 (7.5.8.2, Table 17).
                let kind = if self.widths[0] == 0 {
                    1
                } else {
                    big_endian(kind_bytes)
                };
                let (second, third) = (big_endian(second), big_endian(third));
                let entry = match kind {
                    0 => XrefEntry::Free,
                    1 => XrefEntry::InFile {
                        offset: second,
                        generation: u16::try_from(third).map_err(|_| Error::BadXref {
                            offset,
                            reason: "generation above 65535",
                        })?,
                    },
                    2 => XrefEntry::InStream {
                        stream: u32::try_from(second).map_err(|_| Error::BadXref {
                            offset,
                            reason: "object stream number beyond 2^32",
                        })?,
                        index: u32::try_from(third).map_err(|_| Error::BadXref {
                            offset,
                            reason: "object stream index beyond 2^32",
                        })?,
                    },
                    // Other types are to be read as references to the null object.
                    _ => XrefEntry::Free,
                };
                entries.push((number, entry));
            }
        }
        Ok(entries)
    }
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |value, &byte| value << 8 | u64::from(byte))
}

/// Writes `entries` as the fields of a cross-reference stream with the given widths:
/// the inverse of [`StreamLayout::entries`], used by the writer and the round-trip tests.
pub(crate) fn encode_stream_entry(out: &mut Vec<u8>, widths: [usize; 3], entry: XrefEntry) {
    let (kind, second, third) = match entry {
        XrefEntry::Free => (0, 0, 0),
        XrefEntry::InFile { offset, generation } => (1, offset, u64::from(generation)),
        XrefEntry::InStream { stream, index } => (2, u64::from(stream), u64::from(index)),
    };
    for (value, width) in [(kind, widths[0]), (second, widths[1]), (third, widths[2])] {
        let bytes = value.to_be_bytes();
        out.extend_from_slice(
            bytes
                .get(8usize.saturating_sub(width)..)
                .unwrap_or_default(),
        );
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::limits::MAX_XREF_ENTRIES;

    proptest! {
        /// Looking up a number gives its first entry in order of precedence, as a map
        /// filled with "insert if absent" would.
        #[test]
        fn the_first_entry_of_a_number_wins(
            all in prop::collection::vec((0u32..40, 0u64..1000), 0..80),
        ) {
            let all: Vec<NumberedEntry> = all
                .into_iter()
                .map(|(number, offset)| (number, XrefEntry::InFile { offset, generation: 0 }))
                .collect();
            let mut expected = std::collections::HashMap::new();
            for &(number, entry) in &all {
                expected.entry(number).or_insert(entry);
            }
            let entries = Entries::from_precedence(all);
            for number in 0..41 {
                prop_assert_eq!(entries.get(number), expected.get(&number).copied());
            }
        }
    }

    fn table_text(sections: &[(u32, Vec<XrefEntry>)]) -> Vec<u8> {
        let mut text = b"xref\n".to_vec();
        for (first, entries) in sections {
            text.extend_from_slice(format!("{first} {}\n", entries.len()).as_bytes());
            for entry in entries {
                let line = match entry {
                    XrefEntry::Free => "0000000000 65535 f\r\n".to_owned(),
                    XrefEntry::InFile { offset, generation } => {
                        format!("{offset:010} {generation:05} n\r\n")
                    }
                    XrefEntry::InStream { .. } => unreachable!("tables have no such entries"),
                };
                text.extend_from_slice(line.as_bytes());
            }
        }
        text.extend_from_slice(b"trailer\n<</Size 3>>");
        text
    }

    #[test]
    fn table_with_two_subsections() {
        let text = b"xref\n0 2\n0000000000 65535 f\r\n0000000015 00000 n\r\n7 1\n0000000099 00002 n \ntrailer<<>>";
        let mut budget = MAX_XREF_ENTRIES;
        let (entries, trailer_at) = parse_table(&mut &text[..], 0, &mut budget).unwrap();
        assert_eq!(
            entries,
            vec![
                (0, XrefEntry::Free),
                (
                    1,
                    XrefEntry::InFile {
                        offset: 15,
                        generation: 0
                    }
                ),
                (
                    7,
                    XrefEntry::InFile {
                        offset: 99,
                        generation: 2
                    }
                ),
            ]
        );
        assert_eq!(&text[trailer_at as usize..], b"<<>>");
        assert_eq!(budget, MAX_XREF_ENTRIES - 3);
    }

    #[test]
    fn fixed_width_and_sloppy_entries_read_alike() {
        // Exact 20-byte entries (each end-of-line kind), then what sloppy writers make:
        // one-byte end of line, short fields, extra blanks.
        let text = b"xref\n0 7\n0000000000 65535 f\r\n0000000015 00000 n \n0000000016 00001 n \r\
0000000017 00000 n\n18 0 n\r\n  0000000019   00000 n\r\n0000000020 00000 n\r\ntrailer<<>>";
        let expected: Vec<NumberedEntry> = std::iter::once((0, XrefEntry::Free))
            .chain((1..7).map(|number| {
                (
                    number,
                    XrefEntry::InFile {
                        offset: u64::from(14 + number),
                        generation: u16::from(number == 2),
                    },
                )
            }))
            .collect();
        // Whole, and through buffers so small that entries straddle their edges.
        for capacity in [text.len(), 7, 19, 20, 21] {
            let mut input = std::io::BufReader::with_capacity(capacity, &text[..]);
            let (entries, _) = parse_table(&mut input, 0, &mut 100).unwrap();
            assert_eq!(entries, expected, "buffer of {capacity}");
        }
    }

    #[test]
    fn table_errors() {
        let mut budget = MAX_XREF_ENTRIES;
        let bad_kind = b"xref\n0 1\n0000000000 65535 x\r\ntrailer";
        assert!(matches!(
            parse_table(&mut &bad_kind[..], 0, &mut budget),
            Err(Error::Syntax { .. })
        ));
        let huge = b"xref\n0 9999999999\n";
        assert!(matches!(
            parse_table(&mut &huge[..], 0, &mut budget),
            Err(Error::TooManyXrefEntries { .. })
        ));
        let truncated = b"xref\n0 2\n0000000000 65535 f\r\n";
        assert!(parse_table(&mut &truncated[..], 0, &mut budget).is_err());
        assert!(matches!(
            parse_table(&mut &b"xrefs"[..], 0, &mut budget),
            Err(Error::BadXref { .. })
        ));
    }

    #[test]
    fn stream_layout_defaults_and_limits() {
        let mut dict = Dictionary::new();
        dict.set("W", Object::Array(vec![1.into(), 2.into(), 1.into()]));
        dict.set("Size", 2);
        let layout = StreamLayout::from_dict(&dict, 0).unwrap();
        assert_eq!(layout.index, vec![(0, 2)]);
        let data = [0, 0, 0, 255, 1, 0, 15, 0];
        let entries = layout
            .entries(&data, 0, &mut MAX_XREF_ENTRIES.clone())
            .unwrap();
        assert_eq!(
            entries,
            vec![
                (0, XrefEntry::Free),
                (
                    1,
                    XrefEntry::InFile {
                        offset: 15,
                        generation: 0
                    }
                )
            ]
        );
        assert!(matches!(
            layout.entries(&data[..7], 0, &mut 10),
            Err(Error::BadXref { .. })
        ));
        assert!(matches!(
            layout.entries(&data, 0, &mut 1),
            Err(Error::TooManyXrefEntries { .. })
        ));
        dict.set("W", Object::Array(vec![1.into(), 9.into(), 1.into()]));
        assert!(StreamLayout::from_dict(&dict, 0).is_err());
    }

    fn entry_strategy(in_table: bool) -> impl Strategy<Value = XrefEntry> {
        let free = Just(XrefEntry::Free).boxed();
        let in_file = (0u64..10_000_000_000, any::<u16>())
            .prop_map(|(offset, generation)| XrefEntry::InFile { offset, generation })
            .boxed();
        if in_table {
            prop_oneof![free, in_file].boxed()
        } else {
            let in_stream = (any::<u32>(), any::<u32>())
                .prop_map(|(stream, index)| XrefEntry::InStream { stream, index })
                .boxed();
            prop_oneof![free, in_file, in_stream].boxed()
        }
    }

    proptest! {
        #[test]
        fn table_round_trip(sections in prop::collection::vec((0u32..1_000_000, prop::collection::vec(entry_strategy(true), 0..20)), 0..5)) {
            let text = table_text(&sections);
            let mut budget = MAX_XREF_ENTRIES;
            let (entries, trailer_at) = parse_table(&mut &text[..], 0, &mut budget).unwrap();
            let expected: Vec<NumberedEntry> = sections
                .iter()
                .flat_map(|(first, entries)| (*first..).zip(entries.iter().copied()))
                .map(|(number, entry)| (number, match entry {
                    // A table cannot say which generation a free entry's next use gets
                    // back; parsing reads every free entry as plain `Free`.
                    XrefEntry::Free => XrefEntry::Free,
                    other => other,
                }))
                .collect();
            prop_assert_eq!(entries, expected);
            prop_assert_eq!(&text[trailer_at as usize..], b"\n<</Size 3>>");
        }

        #[test]
        fn stream_round_trip(
            index in prop::collection::vec((0u32..1_000_000, 0u32..20), 0..5),
            seed in prop::collection::vec(entry_strategy(false), 100),
        ) {
            let widths = [1, 8, 4];
            let total: usize = index.iter().map(|&(_, count)| count as usize).sum();
            let entries: Vec<XrefEntry> = seed.iter().copied().cycle().take(total).collect();
            let mut data = Vec::new();
            for &entry in &entries {
                encode_stream_entry(&mut data, widths, entry);
            }
            let layout = StreamLayout { widths, index: index.clone() };
            let decoded = layout.entries(&data, 0, &mut MAX_XREF_ENTRIES.clone()).unwrap();
            let numbers = index.iter().flat_map(|&(first, count)| first..first + count);
            let expected: Vec<NumberedEntry> = numbers.zip(entries).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn table_parser_never_panics(text in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut input = b"xref\n".to_vec();
            input.extend_from_slice(&text);
            let _ = parse_table(&mut &input[..], 0, &mut 1000);
        }
    }
}
