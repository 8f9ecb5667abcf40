//! The lazy reader against an independent one: every object lopdf's whole-file loader
//! finds in a fixture, the lazy reader reads the same, by offset.

use std::fs::File;

use lopdf::Object;
use pdf_sig::reader::{Document, XrefKind};

use crate::support::fixture;

/// Fixtures both readers can read, with the kind of their newest section.
const READABLE: [(&str, XrefKind); 13] = [
    ("lopdf-table.pdf", XrefKind::Table),
    ("lopdf-xref-stream.pdf", XrefKind::Stream),
    ("qpdf-objstm.pdf", XrefKind::Stream),
    ("qpdf-linearized.pdf", XrefKind::Table),
    ("qpdf-linearized-objstm.pdf", XrefKind::Stream),
    ("handmade-direct.pdf", XrefKind::Table),
    ("handmade-indirect.pdf", XrefKind::Table),
    ("handmade-hybrid.pdf", XrefKind::Table),
    ("pyhanko-field.pdf", XrefKind::Stream),
    ("pyhanko-signed.pdf", XrefKind::Table),
    ("pyhanko-docmdp-p1.pdf", XrefKind::Table),
    ("pyhanko-docmdp-p2.pdf", XrefKind::Table),
    ("pyhanko-locked.pdf", XrefKind::Table),
];

#[test]
fn reads_what_lopdf_reads() {
    for (name, kind) in READABLE {
        let path = fixture(name);
        let reference = lopdf::Document::load(&path).unwrap();
        let mut lazy = Document::open(File::open(&path).unwrap()).unwrap();
        assert_eq!(lazy.xref_kind(), kind, "{name}");
        assert_eq!(
            lazy.trailer().unwrap().get(b"Root").ok(),
            reference.trailer.get(b"Root").ok(),
            "{name}"
        );
        let mut compared = 0;
        for (&id, expected) in &reference.objects {
            // lopdf keeps a stream's dictionary with its data; compare dictionaries there.
            let found = lazy
                .object(id)
                .unwrap_or_else(|error| panic!("{name}: object {id:?}: {error}"));
            match (expected, &found) {
                (Object::Stream(expected), Object::Stream(found)) => {
                    assert_eq!(expected.dict, found.dict, "{name}: stream {id:?}");
                }
                _ => assert_eq!(expected, &found, "{name}: object {id:?}"),
            }
            compared += 1;
        }
        assert!(compared >= 5, "{name}: only {compared} objects compared");
        assert!(
            lazy.next_object_number().unwrap() > reference.max_id,
            "{name}"
        );
    }
}

#[test]
fn missing_and_mismatched_objects_are_typed_errors() {
    let mut doc = Document::open(File::open(fixture("lopdf-table.pdf")).unwrap()).unwrap();
    assert!(matches!(
        doc.object((99, 0)),
        Err(pdf_sig::Error::MissingObject { object: (99, 0) })
    ));
    assert!(matches!(
        doc.object((1, 3)),
        Err(pdf_sig::Error::MissingObject { .. })
    ));
    assert!(doc.dictionary((1, 0), "the page tree root").is_ok());
}
