//! Lays the increment out in memory: objects, the signature dictionary with its
//! `/ByteRange` and `/Contents` placeholders, a cross-reference section of the same kind
//! as the input's newest, the trailer, `startxref` and `%%EOF`. Because everything is
//! laid out before a byte is hashed, `/ByteRange` is final before hashing; afterwards
//! only the `/Contents` hex digits change.

use crate::dict::Entry as _;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;

use lopdf::{Dictionary, Object, StringFormat, Writer};

use crate::error::{Error, ObjectId, Result};
use crate::increment::Increment;
use crate::reader::{XrefEntry, XrefKind, encode_stream_entry};

/// Trailer keys that describe one section only, or that the new trailer sets itself.
const NOT_COPIED: [&[u8]; 15] = [
    b"Prev",
    b"XRefStm",
    b"Size",
    b"ID",
    b"Type",
    b"W",
    b"Index",
    b"Length",
    b"Filter",
    b"DecodeParms",
    b"F",
    b"FFilter",
    b"FDecodeParms",
    b"DL",
    b"Encrypt",
];

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
    pub(crate) trailer: &'a Dictionary,
}

/// The increment's bytes and where its `/Contents` placeholder is.
pub(crate) struct Layout {
    pub(crate) bytes: Vec<u8>,
    /// The `/Contents` hex string within `bytes`, `<` and `>` included.
    pub(crate) contents: Range<usize>,
    pub(crate) byte_range: ByteRange,
}

/// Lays out `increment` after the input described by `base`, with room for a
/// `capacity`-byte container. `new_id` becomes the second element of `/ID`.
pub(crate) fn lay_out(
    base: &Base<'_>,
    increment: &Increment,
    capacity: usize,
    new_id: [u8; 16],
) -> Result<Layout> {
    // The placeholder plus room for the usual objects, so that the buffer seldom grows.
    let mut bytes = Vec::with_capacity(2 * capacity + 4096);
    if !base.ends_with_eol {
        bytes.push(b'\n');
    }
    let mut offsets: BTreeMap<u32, XrefEntry> = BTreeMap::new();
    let offset_of = |bytes: &Vec<u8>| base.file_len + bytes.len() as u64;

    for (&id, object) in &increment.objects {
        offsets.insert(
            id.0,
            XrefEntry::InFile {
                offset: offset_of(&bytes),
                generation: id.1,
            },
        );
        write_indirect(&mut bytes, id, object).map_err(Error::io("laying out the increment"))?;
    }

    // The signature dictionary, written by hand around its two placeholders.
    let signature_id = increment.signature_id;
    offsets.insert(
        signature_id.0,
        XrefEntry::InFile {
            offset: offset_of(&bytes),
            generation: signature_id.1,
        },
    );
    let contents;
    let byte_range_at;
    {
        let io = Error::io("laying out the signature dictionary");
        write!(bytes, "{} {} obj\n<<", signature_id.0, signature_id.1).map_err(io)?;
        for (key, value) in &increment.signature {
            write_entry(&mut bytes, key, value)
                .map_err(Error::io("laying out the signature dictionary"))?;
        }
        bytes.extend_from_slice(b"/ByteRange ");
        byte_range_at = bytes.len();
        bytes.extend_from_slice(format!("{:<BYTE_RANGE_WIDTH$}", "[0 0 0 0]").as_bytes());
        bytes.extend_from_slice(b"/Contents ");
        let start = bytes.len();
        bytes.push(b'<');
        bytes.resize(bytes.len() + 2 * capacity, b'0');
        bytes.push(b'>');
        contents = start..bytes.len();
        bytes.extend_from_slice(b">>\nendobj\n");
    }

    let trailer = new_trailer(base, new_id);
    match base.kind {
        XrefKind::Table => write_table(&mut bytes, base, &offsets, trailer)?,
        XrefKind::Stream => write_stream(&mut bytes, base, increment, &mut offsets, trailer)?,
    }

    let total = base.file_len + bytes.len() as u64;
    let first_len = base.file_len + contents.start as u64;
    let second = base.file_len + contents.end as u64;
    let byte_range = ByteRange {
        values: [0, first_len, second, total - second],
    };
    let text = format!("[0 {first_len} {second} {}]", total - second);
    let slot = bytes
        .get_mut(byte_range_at..byte_range_at + BYTE_RANGE_WIDTH)
        .ok_or(Error::Unreachable("the /ByteRange slot was laid out above"))?;
    if text.len() > BYTE_RANGE_WIDTH {
        return Err(Error::Unreachable(
            "offsets of at most 20 digits fit the /ByteRange slot",
        ));
    }
    for (slot, byte) in slot
        .iter_mut()
        .zip(text.bytes().chain(std::iter::repeat(b' ')))
    {
        *slot = byte;
    }
    Ok(Layout {
        bytes,
        contents,
        byte_range,
    })
}

fn write_indirect(out: &mut Vec<u8>, id: ObjectId, object: &Object) -> std::io::Result<()> {
    writeln!(out, "{} {} obj", id.0, id.1)?;
    Writer::write_object(out, object)?;
    out.extend_from_slice(b"\nendobj\n");
    Ok(())
}

fn write_entry(out: &mut Vec<u8>, key: &[u8], value: &Object) -> std::io::Result<()> {
    Writer::write_object(out, &Object::Name(key.to_vec()))?;
    if Writer::need_separator(value) {
        out.push(b' ');
    }
    Writer::write_object(out, value)
}

/// The trailer entries every new section carries: the previous trailer's, less those of
/// [`NOT_COPIED`], with `/Prev` and `/ID` (second element new).
fn new_trailer(base: &Base<'_>, new_id: [u8; 16]) -> Dictionary {
    let mut trailer = Dictionary::new();
    for (key, value) in base.trailer {
        if !NOT_COPIED.contains(&key.as_slice()) {
            trailer.set(key.clone(), value.clone());
        }
    }
    let new_id = Object::String(new_id.to_vec(), StringFormat::Hexadecimal);
    let first = match base.trailer.at(b"ID") {
        Ok(Object::Array(ids)) => match ids.first() {
            Some(first @ Object::String(..)) => first.clone(),
            _ => new_id.clone(),
        },
        _ => new_id.clone(),
    };
    trailer.set("ID", Object::Array(vec![first, new_id]));
    trailer.set("Prev", Object::Integer(base.startxref as i64));
    trailer
}

fn old_size(base: &Base<'_>) -> u64 {
    match base.trailer.at(b"Size") {
        Ok(Object::Integer(size)) => (*size).max(0) as u64,
        _ => 0,
    }
}

/// Runs of consecutive object numbers: (first, entries).
fn subsections(entries: &BTreeMap<u32, XrefEntry>) -> Vec<(u32, Vec<XrefEntry>)> {
    let mut runs: Vec<(u32, Vec<XrefEntry>)> = Vec::new();
    for (&number, &entry) in entries {
        match runs.last_mut() {
            Some((first, run)) if u64::from(*first) + run.len() as u64 == u64::from(number) => {
                run.push(entry)
            }
            _ => runs.push((number, vec![entry])),
        }
    }
    runs
}

fn write_table(
    out: &mut Vec<u8>,
    base: &Base<'_>,
    entries: &BTreeMap<u32, XrefEntry>,
    mut trailer: Dictionary,
) -> Result<()> {
    let io = Error::io("laying out the cross-reference table");
    let xref_offset = base.file_len + out.len() as u64;
    out.extend_from_slice(b"xref\n");
    for (first, run) in subsections(entries) {
        writeln!(out, "{first} {}", run.len())
            .map_err(Error::io("laying out the cross-reference table"))?;
        for entry in run {
            let XrefEntry::InFile { offset, generation } = entry else {
                return Err(Error::Unreachable(
                    "the increment writes every object into the file",
                ));
            };
            write!(out, "{offset:010} {generation:05} n\r\n")
                .map_err(Error::io("laying out the cross-reference table"))?;
        }
    }
    let highest = entries
        .keys()
        .next_back()
        .map_or(0, |&number| u64::from(number) + 1);
    trailer.set("Size", Object::Integer(old_size(base).max(highest) as i64));
    out.extend_from_slice(b"trailer\n");
    Writer::write_object(out, &Object::Dictionary(trailer)).map_err(io)?;
    write!(out, "\nstartxref\n{xref_offset}\n%%EOF\n")
        .map_err(Error::io("laying out the trailer"))?;
    Ok(())
}

fn write_stream(
    out: &mut Vec<u8>,
    base: &Base<'_>,
    increment: &Increment,
    entries: &mut BTreeMap<u32, XrefEntry>,
    mut dict: Dictionary,
) -> Result<()> {
    let xref_id = increment.next_number;
    let xref_offset = base.file_len + out.len() as u64;
    entries.insert(
        xref_id,
        XrefEntry::InFile {
            offset: xref_offset,
            generation: 0,
        },
    );
    // Wide enough for the largest offset, which is the stream's own.
    let offset_width = (8 - (xref_offset.leading_zeros() / 8) as usize).max(1);
    let widths = [1, offset_width, 2];
    let mut data = Vec::new();
    let mut index = Vec::new();
    for (first, run) in subsections(entries) {
        index.push(Object::Integer(i64::from(first)));
        index.push(Object::Integer(run.len() as i64));
        for entry in run {
            encode_stream_entry(&mut data, widths, entry);
        }
    }
    let size = old_size(base).max(u64::from(xref_id) + 1);
    dict.set("Type", Object::Name(b"XRef".to_vec()));
    dict.set("Size", Object::Integer(size as i64));
    dict.set("Index", Object::Array(index));
    dict.set(
        "W",
        Object::Array(
            widths
                .iter()
                .map(|&width| Object::Integer(width as i64))
                .collect(),
        ),
    );
    let stream = lopdf::Stream::new(dict, data);
    write_indirect(out, (xref_id, 0), &Object::Stream(stream))
        .map_err(Error::io("laying out the cross-reference stream"))?;
    write!(out, "startxref\n{xref_offset}\n%%EOF\n")
        .map_err(Error::io("laying out the trailer"))?;
    Ok(())
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
        let entries: BTreeMap<u32, XrefEntry> = [1, 2, 3, 7, 9, 10]
            .into_iter()
            .map(|number| (number, entry))
            .collect();
        let runs: Vec<(u32, usize)> = subsections(&entries)
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
