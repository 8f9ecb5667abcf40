//! Lays the increment out in memory: objects, the signature dictionary with its
//! `/ByteRange` and `/Contents` placeholders, a cross-reference section of the same kind
//! as the input's newest, the trailer, `startxref` and `%%EOF`. Because everything is
//! laid out before a byte is hashed, `/ByteRange` is final before hashing; afterwards
//! only the `/Contents` hex digits change.

use std::ops::Range;

use lopdf::{Object, StringFormat};

use crate::error::{Error, Result};
use crate::increment::{Body, Increment};
use crate::reader::{RawDict, XrefEntry, XrefKind, encode_stream_entry};
use crate::syntax;

/// Whether a trailer entry is copied into the new trailer: not those that describe one
/// section only, or that the new trailer sets itself.
fn is_copied(key: &[u8]) -> bool {
    !matches!(
        key,
        b"Prev"
            | b"XRefStm"
            | b"Size"
            | b"ID"
            | b"Type"
            | b"W"
            | b"Index"
            | b"Length"
            | b"Filter"
            | b"DecodeParms"
            | b"F"
            | b"FFilter"
            | b"FDecodeParms"
            | b"DL"
            | b"Encrypt"
    )
}

/// Room for `[0 a b c]` with offsets of up to 20 digits; the rest is padded with spaces.
const BYTE_RANGE_WIDTH: usize = 66;

/// The two byte ranges a signature covers: everything but the `/Contents` hex string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    values: [u64; 4],
}

impl ByteRange {
    /// A `/ByteRange` read from a file, `[first, first_len, second, second_len]`; `None`
    /// unless the second range starts after the first ends and no end overflows.
    pub fn new(values: [u64; 4]) -> Option<ByteRange> {
        let [first, first_len, second, second_len] = values;
        let first_end = first.checked_add(first_len)?;
        second.checked_add(second_len)?;
        (second >= first_end).then_some(ByteRange { values })
    }

    /// The four numbers of `/ByteRange`: offset and length of each range.
    pub fn values(&self) -> [u64; 4] {
        self.values
    }

    /// The two covered ranges as `start..end` offsets.
    pub fn ranges(&self) -> [Range<u64>; 2] {
        let [first, first_len, second, second_len] = self.values;
        [first..first + first_len, second..second + second_len]
    }

    /// The gap between the ranges: exactly the `/Contents` hex string, `<` and `>`
    /// included.
    pub fn gap(&self) -> Range<u64> {
        let [first, first_len, second, _] = self.values;
        first + first_len..second
    }
}

/// What the layout needs to know of the input.
pub(crate) struct Base<'a> {
    pub(crate) file_len: u64,
    pub(crate) ends_with_eol: bool,
    pub(crate) startxref: u64,
    pub(crate) kind: XrefKind,
    pub(crate) trailer: &'a RawDict,
    /// The input's `/Size`.
    pub(crate) size: u64,
    /// The first element of the input's `/ID`, if it has one: kept in the new `/ID`.
    pub(crate) first_id: Option<&'a Object>,
}

/// The increment's bytes but for the `/Contents` hex digits, which the writer inserts at
/// [`Layout::gap_at`]: laying out, hashing and copying the placeholder's zeros would touch
/// twice the container's size of memory for nothing.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Everything but the hex digits; `bytes[gap_at - 1]` is the placeholder's `<` and
    /// `bytes[gap_at]` its `>`.
    pub(crate) bytes: Vec<u8>,
    /// Where in `bytes` the hex digits go.
    pub(crate) gap_at: usize,
    /// How many hex digits: twice the container capacity.
    pub(crate) hex_len: usize,
    pub(crate) byte_range: ByteRange,
}

impl Layout {
    /// The bytes before the hex digits, `<` included.
    pub(crate) fn before(&self) -> &[u8] {
        self.bytes.get(..self.gap_at).unwrap_or_default()
    }

    /// The bytes after the hex digits, `>` included.
    pub(crate) fn after(&self) -> &[u8] {
        self.bytes.get(self.gap_at..).unwrap_or_default()
    }

    /// The increment's bytes the signature covers: all but the `/Contents` hex string,
    /// `<` and `>` included.
    pub(crate) fn covered(&self) -> [&[u8]; 2] {
        [
            self.bytes
                .get(..self.gap_at.saturating_sub(1))
                .unwrap_or_default(),
            self.bytes.get(self.gap_at + 1..).unwrap_or_default(),
        ]
    }
}

/// Lays out `increment` after the input described by `base`, with room for a
/// `capacity`-byte container. `new_id` becomes the second element of `/ID`.
pub(crate) fn lay_out(
    base: &Base<'_>,
    increment: &Increment,
    capacity: usize,
    new_id: [u8; 16],
) -> Result<Layout> {
    let mut bytes = Vec::with_capacity(2048);
    if !base.ends_with_eol {
        bytes.push(b'\n');
    }
    let mut offsets: Vec<(u32, XrefEntry)> = Vec::with_capacity(increment.objects.len() + 2);

    for &(id, ref body) in &increment.objects {
        offsets.push((
            id.0,
            XrefEntry::InFile {
                offset: base.file_len + bytes.len() as u64,
                generation: id.1,
            },
        ));
        syntax::indirect(&mut bytes, id, |out| match body {
            Body::Object(object) => syntax::object(out, object),
            Body::Written(written) => out.extend_from_slice(written),
            Body::Amended { dict, key, value } => syntax::amended(out, dict, key, value),
        });
    }

    // The signature dictionary, written by hand around its two placeholders.
    let signature_id = increment.signature_id;
    offsets.push((
        signature_id.0,
        XrefEntry::InFile {
            offset: base.file_len + bytes.len() as u64,
            generation: signature_id.1,
        },
    ));
    syntax::object_header(&mut bytes, signature_id);
    bytes.extend_from_slice(b"<<");
    bytes.extend_from_slice(increment.signature.entries());
    bytes.extend_from_slice(b"/ByteRange ");
    let byte_range_at = bytes.len();
    bytes.resize(byte_range_at + BYTE_RANGE_WIDTH, b' ');
    bytes.extend_from_slice(b"/Contents <");
    let gap_at = bytes.len();
    let hex_len = capacity
        .checked_mul(2)
        .ok_or(Error::InvalidOption("the container capacity is too large"))?;
    bytes.extend_from_slice(b">>>\nendobj\n");

    // From here on, offsets in the file are past the hex digits too.
    let origin = base.file_len + hex_len as u64;
    match base.kind {
        XrefKind::Table => write_table(&mut bytes, base, origin, &mut offsets, new_id)?,
        XrefKind::Stream => write_stream(&mut bytes, base, origin, increment, &mut offsets, new_id),
    }

    let total = origin + bytes.len() as u64;
    let first_len = base.file_len + gap_at as u64 - 1;
    let second = first_len + hex_len as u64 + 2;
    let byte_range = ByteRange {
        values: [0, first_len, second, total - second],
    };
    let mut text = Vec::with_capacity(BYTE_RANGE_WIDTH);
    text.extend_from_slice(b"[0 ");
    syntax::unsigned(&mut text, first_len);
    text.push(b' ');
    syntax::unsigned(&mut text, second);
    text.push(b' ');
    syntax::unsigned(&mut text, total - second);
    text.push(b']');
    // The slot holds spaces; the numbers go at its start.
    let slot = bytes
        .get_mut(byte_range_at..byte_range_at + text.len())
        .filter(|_| text.len() <= BYTE_RANGE_WIDTH)
        .ok_or(Error::Unreachable(
            "offsets of at most 20 digits fit the /ByteRange slot",
        ))?;
    slot.copy_from_slice(&text);
    Ok(Layout {
        bytes,
        gap_at,
        hex_len,
        byte_range,
    })
}

/// Writes the entries every new trailer (or cross-reference stream dictionary) carries:
/// the previous trailer's, less those of [`NOT_COPIED`], then `/ID` (second element new)
/// and `/Prev`.
fn trailer_entries(out: &mut Vec<u8>, base: &Base<'_>, new_id: [u8; 16]) {
    for entry in base.trailer.entries_where(is_copied) {
        out.extend_from_slice(entry);
    }
    let new_id = Object::String(new_id.to_vec(), StringFormat::Hexadecimal);
    out.extend_from_slice(b"/ID[");
    syntax::object(out, base.first_id.unwrap_or(&new_id));
    syntax::object(out, &new_id);
    out.extend_from_slice(b"]/Prev ");
    syntax::unsigned(out, base.startxref);
}

/// Sorts `entries` (each number once) and splits them into runs of consecutive object
/// numbers: (first number, its run).
fn subsections(entries: &mut [(u32, XrefEntry)]) -> Vec<(u32, &[(u32, XrefEntry)])> {
    entries.sort_unstable_by_key(|&(number, _)| number);
    let mut runs = Vec::new();
    let mut rest: &[(u32, XrefEntry)] = entries;
    while let Some(&(first, _)) = rest.first() {
        let len = rest
            .iter()
            .zip(u64::from(first)..)
            .take_while(|&(&(number, _), expected)| u64::from(number) == expected)
            .count();
        let (run, after) = rest.split_at(len);
        runs.push((first, run));
        rest = after;
    }
    runs
}

/// A cross-reference table and trailer; `origin` is the file offset `out` starts at.
fn write_table(
    out: &mut Vec<u8>,
    base: &Base<'_>,
    origin: u64,
    entries: &mut [(u32, XrefEntry)],
    new_id: [u8; 16],
) -> Result<()> {
    let xref_offset = origin + out.len() as u64;
    out.extend_from_slice(b"xref\n");
    for (first, run) in subsections(entries) {
        syntax::unsigned(out, u64::from(first));
        out.push(b' ');
        syntax::unsigned(out, run.len() as u64);
        out.push(b'\n');
        for &(_, entry) in run {
            let XrefEntry::InFile { offset, generation } = entry else {
                return Err(Error::Unreachable(
                    "the increment writes every object into the file",
                ));
            };
            syntax::padded(out, offset, 10);
            out.push(b' ');
            syntax::padded(out, u64::from(generation), 5);
            out.extend_from_slice(b" n\r\n");
        }
    }
    let highest = entries
        .iter()
        .map(|&(number, _)| u64::from(number) + 1)
        .max()
        .unwrap_or(0);
    out.extend_from_slice(b"trailer\n<<");
    trailer_entries(out, base, new_id);
    out.extend_from_slice(b"/Size ");
    syntax::unsigned(out, base.size.max(highest));
    out.extend_from_slice(b">>\n");
    end_of_file(out, xref_offset);
    Ok(())
}

/// A cross-reference stream, which is the trailer too; `origin` is the file offset `out`
/// starts at.
fn write_stream(
    out: &mut Vec<u8>,
    base: &Base<'_>,
    origin: u64,
    increment: &Increment,
    entries: &mut Vec<(u32, XrefEntry)>,
    new_id: [u8; 16],
) {
    let xref_id = increment.next_number;
    let xref_offset = origin + out.len() as u64;
    entries.push((
        xref_id,
        XrefEntry::InFile {
            offset: xref_offset,
            generation: 0,
        },
    ));
    // Wide enough for the largest offset, which is the stream's own.
    let offset_width = (8 - (xref_offset.leading_zeros() / 8) as usize).max(1);
    let widths = [1, offset_width, 2];
    let mut data = Vec::new();
    syntax::object_header(out, (xref_id, 0));
    out.extend_from_slice(b"<<");
    trailer_entries(out, base, new_id);
    out.extend_from_slice(b"/Type/XRef/Size ");
    syntax::unsigned(out, base.size.max(u64::from(xref_id) + 1));
    out.extend_from_slice(b"/Index[");
    for (index, (first, run)) in subsections(entries).into_iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        syntax::unsigned(out, u64::from(first));
        out.push(b' ');
        syntax::unsigned(out, run.len() as u64);
        for &(_, entry) in run {
            encode_stream_entry(&mut data, widths, entry);
        }
    }
    out.extend_from_slice(b"]/W[");
    for (index, width) in widths.into_iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        syntax::unsigned(out, width as u64);
    }
    out.extend_from_slice(b"]/Length ");
    syntax::unsigned(out, data.len() as u64);
    out.extend_from_slice(b">>stream\n");
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    end_of_file(out, xref_offset);
}

/// `startxref`, the offset of the section just written, and `%%EOF`.
fn end_of_file(out: &mut Vec<u8>, xref_offset: u64) {
    out.extend_from_slice(b"startxref\n");
    syntax::unsigned(out, xref_offset);
    out.extend_from_slice(b"\n%%EOF\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsections_group_runs() {
        let entry = XrefEntry::InFile {
            offset: 1,
            generation: 0,
        };
        let mut entries: Vec<(u32, XrefEntry)> = [9, 1, 2, 3, 7, 10]
            .into_iter()
            .map(|number| (number, entry))
            .collect();
        let runs: Vec<(u32, usize)> = subsections(&mut entries)
            .into_iter()
            .map(|(first, run)| (first, run.len()))
            .collect();
        assert_eq!(runs, vec![(1, 3), (7, 1), (9, 2)]);
    }

    #[test]
    fn byte_range_gap() {
        let range = ByteRange {
            values: [0, 100, 150, 50],
        };
        assert_eq!(range.ranges(), [0..100, 150..200]);
        assert_eq!(range.gap(), 100..150);
    }
}
