//! Inputs that must be refused: a typed error, no output file, the input unchanged.

use std::fs;
use std::path::Path;

use pdf_sig::{Error, SignOptions, sign};

use crate::support::{CmsContainer, fixture, listing, scratch};

/// Signs `input` with `options` and returns the error, after checking that nothing
/// was written and the input did not change.
fn refused(test: &str, input: &Path, options: &SignOptions) -> Error {
    let dir = scratch(test);
    let output = dir.join("out.pdf");
    let before = fs::read(input).unwrap();
    let error = sign(input, &output, options, &CmsContainer::p256()).unwrap_err();
    assert_eq!(
        listing(&dir),
        Vec::<String>::new(),
        "{test}: nothing left behind"
    );
    assert_eq!(fs::read(input).unwrap(), before, "{test}: input unchanged");
    error
}

fn defaults() -> SignOptions {
    SignOptions::builder().build().unwrap()
}

#[test]
fn encrypted_document() {
    let error = refused(
        "encrypted_document",
        &fixture("qpdf-encrypted.pdf"),
        &defaults(),
    );
    assert!(matches!(error, Error::Encrypted), "{error:?}");
}

#[test]
fn certified_with_no_changes_allowed() {
    let error = refused(
        "certified_with_no_changes_allowed",
        &fixture("pyhanko-docmdp-p1.pdf"),
        &defaults(),
    );
    assert!(matches!(error, Error::CertifiedNoChanges), "{error:?}");
}

#[test]
fn field_locked_by_an_earlier_signature() {
    let options = SignOptions::builder()
        .field_name("Approval")
        .build()
        .unwrap();
    let error = refused(
        "field_locked_by_an_earlier_signature",
        &fixture("pyhanko-locked.pdf"),
        &options,
    );
    assert!(
        matches!(&error, Error::FieldLocked { field } if field == "Approval"),
        "{error:?}"
    );
}

#[test]
fn field_already_signed() {
    let options = SignOptions::builder().field_name("Sig1").build().unwrap();
    let error = refused(
        "field_already_signed",
        &fixture("pyhanko-signed.pdf"),
        &options,
    );
    assert!(
        matches!(&error, Error::FieldAlreadySigned { field } if field == "Sig1"),
        "{error:?}"
    );
}

#[test]
fn field_of_another_type() {
    let options = SignOptions::builder().field_name("Name").build().unwrap();
    let error = refused(
        "field_of_another_type",
        &fixture("handmade-indirect.pdf"),
        &options,
    );
    assert!(
        matches!(&error, Error::FieldNotSignature { field } if field == "Name"),
        "{error:?}"
    );
}

#[test]
fn page_out_of_range() {
    let options = SignOptions::builder().page(5).build().unwrap();
    let error = refused(
        "page_out_of_range",
        &fixture("handmade-direct.pdf"),
        &options,
    );
    assert!(
        matches!(error, Error::PageOutOfRange { index: 5, count: 3 }),
        "{error:?}"
    );
}

#[test]
fn truncated_file() {
    let error = refused(
        "truncated_file",
        &fixture("broken-truncated.pdf"),
        &defaults(),
    );
    assert!(matches!(error, Error::MissingStartxref), "{error:?}");
}

#[test]
fn startxref_pointing_elsewhere() {
    let error = refused(
        "startxref_pointing_elsewhere",
        &fixture("broken-startxref.pdf"),
        &defaults(),
    );
    assert!(
        matches!(error, Error::BadXref { offset: 9, .. }),
        "{error:?}"
    );
}

#[test]
fn lying_stream_length() {
    let error = refused(
        "lying_stream_length",
        &fixture("broken-lying-length.pdf"),
        &defaults(),
    );
    assert!(matches!(error, Error::BadStreamLength { .. }), "{error:?}");
}

#[test]
fn page_tree_loop() {
    // The first page is found before the loop; the second sits behind it.
    let options = SignOptions::builder().page(1).build().unwrap();
    let error = refused(
        "page_tree_loop",
        &fixture("broken-page-tree-loop.pdf"),
        &options,
    );
    assert!(
        matches!(
            error,
            Error::TreeLoop {
                tree: "page",
                object: 2
            }
        ),
        "{error:?}"
    );
}

#[test]
fn absurd_nesting() {
    let error = refused(
        "absurd_nesting",
        &fixture("broken-deep-nesting.pdf"),
        &defaults(),
    );
    assert!(
        matches!(error, Error::NestingTooDeep { limit: 128, .. }),
        "{error:?}"
    );
}

#[test]
fn prev_chain_loop() {
    let error = refused(
        "prev_chain_loop",
        &fixture("broken-prev-loop.pdf"),
        &defaults(),
    );
    assert!(matches!(error, Error::XrefLoop { .. }), "{error:?}");
}

#[test]
fn not_a_pdf() {
    let dir = scratch("not_a_pdf_input");
    let input = dir.join("notes.txt");
    fs::write(&input, b"just some text\n").unwrap();
    let error = refused("not_a_pdf", &input, &defaults());
    assert!(matches!(error, Error::NotPdf), "{error:?}");
}

#[test]
fn a_new_field_name_with_a_period() {
    let options = SignOptions::builder()
        .field_name("Form.Signature")
        .build()
        .unwrap();
    let error = refused(
        "a_new_field_name_with_a_period",
        &fixture("lopdf-table.pdf"),
        &options,
    );
    assert!(matches!(error, Error::InvalidOption(_)), "{error:?}");
}
