//! Fuzzes the lazy reader and the increment planner with arbitrary bytes: no input may
//! panic, and whatever the signer accepts must come out as a PDF the reader reads back,
//! with the input as its prefix and a new section chained to the input's newest.

#![no_main]

use std::io::Cursor;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use lopdf::Object;
use pdf_sig::reader::Document;
use pdf_sig::{ContainerSpec, DigestAlgorithm, SignOptions, prepare_stream};

fuzz_target!(|data: &[u8]| {
    // The reader alone: open, then follow /Root and /Pages.
    if let Ok(mut doc) = Document::open(Cursor::new(data)) {
        if let Ok(Object::Reference(root)) = doc.trailer().get(b"Root").cloned() {
            if let Ok(Object::Dictionary(catalog)) = doc.object(root) {
                if let Ok(pages) = catalog.get(b"Pages") {
                    let _ = doc.resolve(pages);
                }
            }
        }
    }

    // The whole signer, in memory.
    let Ok(options) = SignOptions::builder().signing_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000)).build() else {
        return;
    };
    let spec = ContainerSpec::new(DigestAlgorithm::Sha256, 64);
    let Ok(prepared) = prepare_stream(Cursor::new(data), Cursor::new(Vec::new()), &options, spec) else {
        return;
    };
    let (output, report) = prepared.finish(&[0x30, 0x00]).expect("a 2-byte container fits 64 bytes");
    let output = output.into_inner();
    assert!(output.starts_with(data), "the input is a prefix of the output");
    assert_eq!(report.byte_range.ranges()[1].end, output.len() as u64);

    let input = Document::open(Cursor::new(data)).expect("the signer read it, so the reader does");
    let mut signed = Document::open(Cursor::new(&output[..])).expect("the signed output reads back");
    assert_eq!(signed.xref_kind(), input.xref_kind());
    assert_eq!(signed.trailer().get(b"Prev").ok(), Some(&Object::Integer(input.startxref() as i64)));
    let Ok(Object::Reference(root)) = signed.trailer().get(b"Root").cloned() else {
        panic!("the signed output has a /Root reference");
    };
    let Object::Dictionary(catalog) = signed.object(root).expect("the catalog reads back") else {
        panic!("the catalog is a dictionary");
    };
    assert!(catalog.has(b"AcroForm"), "the catalog has an AcroForm");
});
