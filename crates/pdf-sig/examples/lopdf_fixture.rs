//! Writes a small two-page PDF with lopdf, the producer of some of the test fixtures
//! (see `fixtures/pdf/README.md`).
//!
//! ```text
//! cargo run -p pdf-sig --example lopdf_fixture -- OUT.pdf [--xref-stream]
//! ```

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, SaveOptions, Stream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let output = args
        .next()
        .ok_or("usage: lopdf_fixture OUT.pdf [--xref-stream]")?;
    let xref_stream = args.next().as_deref() == Some("--xref-stream");

    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(Dictionary::from_iter([
        ("Type", Object::from("Font")),
        ("Subtype", "Type1".into()),
        ("BaseFont", "Helvetica".into()),
    ]));
    let resources_id = doc.add_object(Dictionary::from_iter([(
        "Font",
        Object::Dictionary(Dictionary::from_iter([("F1", Object::Reference(font_id))])),
    )]));
    let mut kids = Vec::new();
    for number in 1..=2 {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 24.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new(
                    "Tj",
                    vec![Object::string_literal(format!(
                        "pdf-sig fixture, page {number}"
                    ))],
                ),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(Dictionary::new(), content.encode()?));
        let page_id = doc.add_object(Dictionary::from_iter([
            ("Type", Object::from("Page")),
            ("Parent", Object::Reference(pages_id)),
            ("Contents", Object::Reference(content_id)),
        ]));
        kids.push(Object::Reference(page_id));
    }
    let pages = Dictionary::from_iter([
        ("Type", Object::from("Pages")),
        ("Count", Object::Integer(kids.len() as i64)),
        ("Kids", Object::Array(kids)),
        ("Resources", Object::Reference(resources_id)),
        (
            "MediaBox",
            Object::Array(vec![0.into(), 0.into(), 612.into(), 792.into()]),
        ),
    ]);
    doc.objects.insert(pages_id, Object::Dictionary(pages));
    let catalog_id = doc.add_object(Dictionary::from_iter([
        ("Type", Object::from("Catalog")),
        ("Pages", Object::Reference(pages_id)),
    ]));
    let info_id = doc.add_object(Dictionary::from_iter([(
        "Producer",
        Object::string_literal("lopdf 0.47"),
    )]));
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    doc.compress();

    let mut file = std::fs::File::create(&output)?;
    // A new lopdf 0.47 document writes a cross-reference stream unless told otherwise.
    if !xref_stream {
        doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
    }
    let options = SaveOptions::builder()
        .use_xref_streams(xref_stream)
        .use_object_streams(xref_stream)
        .build();
    doc.save_with_options(&mut file, options)?;
    Ok(())
}
