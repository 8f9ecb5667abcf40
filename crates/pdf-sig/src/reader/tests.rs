//! Reader tests on small files built in memory: offsets checked against the file size,
//! references resolved (and their loops caught), and reads that follow the objects
//! touched rather than the file size.

use std::io::{Cursor, Read, Seek, SeekFrom};

use lopdf::Object;

use super::{Document, XrefKind};
use crate::error::Error;

/// Builds a PDF with a classic xref table from numbered object bodies.
fn build(objects: &[(u32, &[u8])], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (number, body) in objects {
        offsets.push((*number, out.len()));
        out.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let start = out.len();
    let size = objects
        .iter()
        .map(|(number, _)| number + 1)
        .max()
        .unwrap_or(1);
    out.extend_from_slice(format!("xref\n0 {size}\n0000000000 65535 f\r\n").as_bytes());
    for number in 1..size {
        match offsets.iter().find(|(found, _)| *found == number) {
            Some((_, offset)) => {
                out.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes())
            }
            None => out.extend_from_slice(b"0000000000 65535 f\r\n"),
        }
    }
    out.extend_from_slice(
        format!("trailer\n<</Size {size}{trailer}>>\nstartxref\n{start}\n%%EOF\n").as_bytes(),
    );
    out
}

fn open(bytes: &[u8]) -> Result<Document<Cursor<&[u8]>>, Error> {
    Document::open(Cursor::new(bytes))
}

#[test]
fn startxref_beyond_the_file() {
    let mut bytes = build(&[(1, b"<<>>")], "/Root 1 0 R");
    let at = bytes
        .windows(9)
        .rposition(|window| window == b"startxref")
        .unwrap();
    bytes.truncate(at);
    bytes.extend_from_slice(b"startxref\n999999\n%%EOF\n");
    assert!(matches!(
        open(&bytes),
        Err(Error::OutOfBounds {
            what: "startxref",
            offset: 999_999,
            ..
        })
    ));
}

#[test]
fn object_offset_beyond_the_file() {
    let bytes = build(&[(1, b"<<>>")], "/Root 1 0 R");
    let text = String::from_utf8(bytes).unwrap();
    let entry = text
        .lines()
        .find(|line| line.ends_with(" 00000 n"))
        .unwrap()
        .to_owned();
    let bytes = text.replace(&entry, "0000999999 00000 n").into_bytes();
    let mut doc = open(&bytes).unwrap();
    assert!(matches!(
        doc.object((1, 0)),
        Err(Error::OutOfBounds {
            offset: 999_999,
            ..
        })
    ));
}

#[test]
fn another_object_at_the_offset() {
    let bytes = build(&[(1, b"<<>>"), (2, b"<<>>")], "/Root 1 0 R");
    let text = String::from_utf8(bytes).unwrap();
    // Point object 2's entry at object 1.
    let entries: Vec<&str> = text
        .lines()
        .filter(|line| line.ends_with(" 00000 n"))
        .collect();
    let bytes = text.replacen(entries[1], entries[0], 1).into_bytes();
    let mut doc = open(&bytes).unwrap();
    assert!(matches!(
        doc.object((2, 0)),
        Err(Error::ObjectMismatch {
            expected: (2, 0),
            found: (1, 0),
            ..
        })
    ));
}

#[test]
fn stream_lengths_direct_indirect_lying_and_looping() {
    let bytes = build(
        &[
            (1, b"<</Length 2 0 R>>\nstream\nabcd\nendstream"),
            (2, b"4"),
            (3, b"<</Length 3 0 R>>\nstream\nabcd\nendstream"),
            (4, b"<</Length 9999>>\nstream\nabcd\nendstream"),
            (5, b"<</Length 3>>\nstream\nabcd\nendstream"),
        ],
        "/Root 1 0 R",
    );
    let mut doc = open(&bytes).unwrap();
    let Object::Stream(stream) = doc.object((1, 0)).unwrap() else {
        panic!("not a stream")
    };
    assert_eq!(stream.content, b"abcd");
    assert!(matches!(
        doc.object((3, 0)),
        Err(Error::ReferenceLoop { object: 3 })
    ));
    assert!(matches!(
        doc.object((4, 0)),
        Err(Error::OutOfBounds {
            what: "stream data",
            ..
        })
    ));
    assert!(matches!(
        doc.object((5, 0)),
        Err(Error::BadStreamLength {
            object: 5,
            length: 3,
            ..
        })
    ));
}

#[test]
fn object_stream_errors() {
    let bytes = build(
        &[
            (1, b"<</Type/Catalog>>"),
            // Claims to hold object 7, but its header names object 8.
            (
                2,
                b"<</Type/ObjStm/N 1/First 4/Length 8>>\nstream\n8 0 <<>>\nendstream",
            ),
        ],
        "/Root 1 0 R",
    );
    let mut doc = open(&bytes).unwrap();
    doc.entries.insert(
        7,
        super::XrefEntry::InStream {
            stream: 2,
            index: 0,
        },
    );
    doc.entries.insert(
        8,
        super::XrefEntry::InStream {
            stream: 2,
            index: 0,
        },
    );
    doc.entries.insert(
        9,
        super::XrefEntry::InStream {
            stream: 1,
            index: 0,
        },
    );
    assert!(matches!(
        doc.object((7, 0)),
        Err(Error::BadObjectStream { object: 2, .. })
    ));
    assert_eq!(
        doc.object((8, 0)).unwrap(),
        Object::Dictionary(lopdf::Dictionary::new())
    );
    assert!(matches!(
        doc.object((9, 0)),
        Err(Error::BadObjectStream { object: 1, .. })
    ));
    // The header's object number 8 counts towards the first free number.
    assert_eq!(doc.next_object_number().unwrap(), 9);
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.read += count as u64;
        Ok(count)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, position: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(position)
    }
}

#[test]
fn reads_follow_the_objects_touched() {
    let big = [
        b"<</Length 8000000>>\nstream\n".as_slice(),
        &vec![b'x'; 8_000_000],
        b"\nendstream",
    ]
    .concat();
    let bytes = build(
        &[(1, b"<</Type/Catalog/Pages 2 0 R>>"), (2, &big)],
        "/Root 1 0 R",
    );
    let mut doc = Document::open(Counting {
        inner: Cursor::new(&bytes),
        read: 0,
    })
    .unwrap();
    assert_eq!(doc.xref_kind(), XrefKind::Table);
    doc.object((1, 0)).unwrap();
    let read = doc.into_inner().read;
    assert!(read < 64 * 1024, "read {read} bytes of {}", bytes.len());
}

/// Builds a PDF whose newest section is a cross-reference stream with `/W [1 width 2]`,
/// optionally Flate-compressed with the PNG Up predictor (as qpdf writes them).
fn build_with_xref_stream(objects: &[(u32, Vec<u8>)], width: usize, predictor: bool) -> Vec<u8> {
    use std::io::Write;

    let mut out = b"%PDF-1.7\n".to_vec();
    let mut entries = Vec::new();
    for (number, body) in objects {
        entries.push((*number, out.len() as u64));
        out.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref_number = objects
        .iter()
        .map(|(number, _)| number + 1)
        .max()
        .unwrap_or(1);
    entries.push((xref_number, out.len() as u64));
    entries.sort();
    let widths = [1, width, 2];
    let row_len = 1 + width + 2;
    let mut rows = Vec::new();
    let mut index = Vec::new();
    for &(number, offset) in &entries {
        index.push(format!("{number} 1"));
        super::encode_stream_entry(
            &mut rows,
            widths,
            super::XrefEntry::InFile {
                offset,
                generation: 0,
            },
        );
    }
    let (data, filter) = if predictor {
        let mut encoded = Vec::new();
        let mut previous = vec![0u8; row_len];
        for row in rows.chunks(row_len) {
            encoded.push(2);
            encoded.extend(
                row.iter()
                    .zip(&previous)
                    .map(|(byte, above)| byte.wrapping_sub(*above)),
            );
            previous = row.to_vec();
        }
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&encoded).unwrap();
        let params = format!("/Filter/FlateDecode/DecodeParms<</Predictor 12/Columns {row_len}>>");
        (encoder.finish().unwrap(), params)
    } else {
        (rows, String::new())
    };
    let start = out.len();
    out.extend_from_slice(
        format!(
            "{xref_number} 0 obj\n<</Type/XRef/Size {}/Root 1 0 R/W[1 {width} 2]/Index[{}]{filter}/Length {}>>\nstream\n",
            xref_number + 1,
            index.join(" "),
            data.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&data);
    out.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{start}\n%%EOF\n").as_bytes());
    out
}

proptest::proptest! {
    /// Files written with a table or a cross-reference stream (any offset width, with or
    /// without predictor) read back object for object.
    #[test]
    fn reads_back_every_object(
        values in proptest::collection::vec(proptest::prelude::any::<i64>(), 1..40),
        gaps in proptest::collection::vec(1u32..5, 40),
        kind in 0u8..3,
        width in 3usize..9,
    ) {
        let mut number = 0;
        let objects: Vec<(u32, Vec<u8>)> = values
            .iter()
            .zip(&gaps)
            .map(|(value, gap)| {
                number += gap;
                (number, format!("<</Value {value}/Number {number}>>").into_bytes())
            })
            .collect();
        let bytes = match kind {
            0 => {
                let borrowed: Vec<(u32, &[u8])> = objects.iter().map(|(n, body)| (*n, body.as_slice())).collect();
                build(&borrowed, "/Root 1 0 R")
            }
            1 => build_with_xref_stream(&objects, width, false),
            _ => build_with_xref_stream(&objects, width, true),
        };
        let mut doc = open(&bytes).unwrap();
        let expected_kind = if kind == 0 { XrefKind::Table } else { XrefKind::Stream };
        proptest::prop_assert_eq!(doc.xref_kind(), expected_kind);
        for ((number, _), value) in objects.iter().zip(&values) {
            let Object::Dictionary(dict) = doc.object((*number, 0)).unwrap() else {
                panic!("object {number} is not a dictionary");
            };
            proptest::prop_assert_eq!(dict.get(b"Value").unwrap(), &Object::Integer(*value));
        }
        proptest::prop_assert!(doc.next_object_number().unwrap() > number);
    }
}
