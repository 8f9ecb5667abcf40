//! Signing fixtures from several producers, judged by the independent validators.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use lopdf::Object;
use pdf_sig::reader::Document;
use pdf_sig::{DigestAlgorithm, Rect, SignOptions, SubFilter, Warning, sign};
use test_pki::KeyKind;

use crate::support::{CmsContainer, PyHanko, fixture, listing, scratch, signatures, validate};

/// Signs `input` into `dir` with `options` and checks what every signed output must
/// satisfy; returns the output's path.
fn sign_checked(
    dir: &Path,
    input: &Path,
    options: &SignOptions,
    container: &CmsContainer,
) -> PathBuf {
    let output = dir.join(format!(
        "signed-{}",
        input.file_name().unwrap().to_string_lossy()
    ));
    let before = fs::read(input).unwrap();
    let report = sign(input, &output, options, container).unwrap();
    let after = fs::read(&output).unwrap();
    assert_eq!(fs::read(input).unwrap(), before, "the input is unchanged");
    assert!(
        after.starts_with(&before),
        "the input is a byte-for-byte prefix of the output"
    );
    assert_eq!(report.byte_range.ranges()[1].end, after.len() as u64);
    assert_eq!(report.byte_range.ranges()[0].start, 0);

    // The new section is of the input's kind and chains to the input's newest one.
    let old = Document::open(File::open(input).unwrap()).unwrap();
    let new = Document::open(File::open(&output).unwrap()).unwrap();
    assert_eq!(new.xref_kind(), old.xref_kind());
    let (old_trailer, new_trailer) = (old.trailer().unwrap(), new.trailer().unwrap());
    assert_eq!(
        new_trailer.get(b"Prev").unwrap(),
        &Object::Integer(old.startxref() as i64)
    );
    assert_eq!(
        new_trailer.get(b"Root").unwrap(),
        old_trailer.get(b"Root").unwrap()
    );
    assert!(new_trailer.get(b"Encrypt").is_err());
    if let Ok(Object::Array(old_id)) = old_trailer.get(b"ID") {
        let Ok(Object::Array(new_id)) = new_trailer.get(b"ID") else {
            panic!("/ID lost")
        };
        assert_eq!(new_id[0], old_id[0], "the first /ID element is kept");
        assert_ne!(new_id[1], old_id[1], "the second /ID element is new");
    }
    if let Ok(info) = old_trailer.get(b"Info") {
        assert_eq!(new_trailer.get(b"Info").unwrap(), info);
    }
    // New objects are numbered from max(/Size, highest + 1): none reuses an old number.
    let first_new = old.next_object_number().unwrap();
    let signature = new_signature_number(&after, before.len());
    assert!(
        signature >= first_new,
        "signature dictionary {signature} below {first_new}"
    );

    assert_eq!(
        listing(dir)
            .iter()
            .filter(|name| name.ends_with(".tmp"))
            .count(),
        0,
        "no temporary file left"
    );
    output
}

/// The object number of the signature dictionary in the increment.
fn new_signature_number(file: &[u8], increment_start: usize) -> u32 {
    let increment = &file[increment_start..];
    let at = increment
        .windows(9)
        .position(|window| window == b"/Type/Sig")
        .unwrap();
    let header = &increment[..at];
    let obj = header
        .windows(4)
        .rposition(|window| window == b" obj")
        .unwrap();
    let line_start = header[..obj]
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |index| index + 1);
    let text = std::str::from_utf8(&header[line_start..obj]).unwrap();
    text.split(' ').next().unwrap().parse().unwrap()
}

fn invisible() -> SignOptions {
    SignOptions::builder()
        .name("pdf-sig test")
        .reason("Testing")
        .signing_time(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build()
        .unwrap()
}

macro_rules! signs_fixture {
    ($($test:ident: $fixture:literal, $signatures:literal, $pyhanko:ident;)+) => {$(
        #[test]
        fn $test() {
            let dir = scratch(stringify!($test));
            let output = sign_checked(&dir, &fixture($fixture), &invisible(), &CmsContainer::p256());
            validate(&output, $signatures, PyHanko::$pyhanko);
        }
    )+};
}

signs_fixture! {
    signs_lopdf_xref_table: "lopdf-table.pdf", 1, Strict;
    signs_lopdf_xref_stream: "lopdf-xref-stream.pdf", 1, Strict;
    signs_qpdf_object_streams: "qpdf-objstm.pdf", 1, Strict;
    signs_qpdf_linearized: "qpdf-linearized.pdf", 1, Strict;
    signs_qpdf_linearized_object_streams: "qpdf-linearized-objstm.pdf", 1, Strict;
    signs_direct_annots_and_acroform: "handmade-direct.pdf", 1, Strict;
    signs_indirect_annots_and_acroform: "handmade-indirect.pdf", 1, Strict;
    signs_hybrid_reference_file: "handmade-hybrid.pdf", 1, Lenient;
    signs_multi_revision_file: "pyhanko-field.pdf", 1, Strict;
    signs_file_signed_by_pyhanko: "pyhanko-signed.pdf", 2, Strict;
    signs_certified_fill_forms_file: "pyhanko-docmdp-p2.pdf", 2, Strict;
    signs_new_field_beside_locked_one: "pyhanko-locked.pdf", 2, Strict;
}

#[test]
fn signing_twice_keeps_the_first_signature_valid() {
    let dir = scratch("signing_twice_keeps_the_first_signature_valid");
    let rsa = CmsContainer::new(
        KeyKind::Rsa2048,
        DigestAlgorithm::Sha256,
        SubFilter::EtsiCadesDetached,
    );
    let once = sign_checked(&dir, &fixture("qpdf-objstm.pdf"), &invisible(), &rsa);
    let twice_dir = dir.join("twice");
    fs::create_dir(&twice_dir).unwrap();
    let twice = sign_checked(&twice_dir, &once, &invisible(), &CmsContainer::p256());
    validate(&twice, 2, PyHanko::Strict);
    let file = fs::read(&twice).unwrap();
    let found = signatures(&file);
    assert_eq!(
        found[0].byte_range[2] + found[0].byte_range[3],
        fs::read(&once).unwrap().len()
    );
    // Names are unique: the second signature got the next free one.
    assert!(file.windows(12).any(|window| window == b"/T(Signature"));
    assert!(String::from_utf8_lossy(&file).contains("/T(Signature2)"));
}

#[test]
fn fills_an_existing_empty_field_with_an_appearance() {
    let dir = scratch("fills_an_existing_empty_field_with_an_appearance");
    let options = SignOptions::builder()
        .field_name("Approval")
        .name("Zoë Müller")
        .build()
        .unwrap();
    let output = sign_checked(
        &dir,
        &fixture("handmade-indirect.pdf"),
        &options,
        &CmsContainer::p256(),
    );
    validate(&output, 1, PyHanko::Strict);
    let text = String::from_utf8_lossy(&fs::read(&output).unwrap()).into_owned();
    // The field was filled, not added: no second /T(Approval), and an appearance for its
    // 200 x 60 widget.
    assert_eq!(
        text.matches("/T(Approval)").count(),
        2,
        "original and rewritten field"
    );
    assert!(
        text.contains("/BBox[0 0 200.0 60.0]"),
        "appearance sized to the widget: {text}"
    );
    assert!(
        text.contains("/V 11 0 R"),
        "the field's /V points at the new signature dictionary"
    );
}

#[test]
fn fills_a_field_added_by_another_producer() {
    let dir = scratch("fills_a_field_added_by_another_producer");
    let options = SignOptions::builder()
        .field_name("Approval")
        .build()
        .unwrap();
    let output = sign_checked(
        &dir,
        &fixture("pyhanko-field.pdf"),
        &options,
        &CmsContainer::p256(),
    );
    validate(&output, 1, PyHanko::Strict);
}

#[test]
fn visible_signature_warns_about_characters_helvetica_cannot_show() {
    let dir = scratch("visible_signature_warns_about_characters_helvetica_cannot_show");
    let input = fixture("handmade-direct.pdf");
    let output = dir.join("visible.pdf");
    let options = SignOptions::builder()
        .name("Zoë 签名")
        .reason("Approved")
        .location("Zürich")
        .visible(1, Rect::new(72.0, 72.0, 300.0, 140.0))
        .build()
        .unwrap();
    let report = sign(&input, &output, &options, &CmsContainer::p256()).unwrap();
    assert_eq!(
        report.warnings,
        vec![Warning::CharactersReplaced {
            what: "name",
            count: 2
        }]
    );
    assert!(report.warnings[0].to_string().contains("WinAnsiEncoding"));
    validate(&output, 1, PyHanko::Strict);
    let text = String::from_utf8_lossy(&fs::read(&output).unwrap()).into_owned();
    // The second page (object 6) was rewritten with its /Annots holding the link and
    // the widget; the signature dictionary keeps the full name.
    assert!(text.contains("/Annots[11 0 R 13 0 R]"), "{text}");
    // That page inherits /Rotate 90: the appearance is turned back to read upright.
    assert!(text.contains("/Matrix[0 1 -1 0 0 0]"), "{text}");
    assert!(text.contains("/MK<</R 90>>"), "{text}");
    assert!(
        text.contains("/Name<FEFF005A006F00EB00207B7E540D>"),
        "{text}"
    );
}

#[test]
fn digests_keys_and_sub_filters() {
    let dir = scratch("digests_keys_and_sub_filters");
    let cases = [
        (
            KeyKind::P384,
            DigestAlgorithm::Sha384,
            SubFilter::EtsiCadesDetached,
            true,
        ),
        (
            KeyKind::P521,
            DigestAlgorithm::Sha512,
            SubFilter::EtsiCadesDetached,
            false,
        ),
        (
            KeyKind::Rsa3072,
            DigestAlgorithm::Sha512,
            SubFilter::AdbePkcs7Detached,
            true,
        ),
        (
            KeyKind::Rsa2048,
            DigestAlgorithm::Sha384,
            SubFilter::AdbePkcs7Detached,
            false,
        ),
    ];
    for (kind, digest, sub_filter, pyhanko) in cases {
        let case_dir = dir.join(format!("{kind}-{digest:?}"));
        fs::create_dir(&case_dir).unwrap();
        let options = SignOptions::builder()
            .sub_filter(sub_filter)
            .build()
            .unwrap();
        let container = CmsContainer::new(kind, digest, sub_filter);
        let output = sign_checked(
            &case_dir,
            &fixture("lopdf-xref-stream.pdf"),
            &options,
            &container,
        );
        let text = String::from_utf8_lossy(&fs::read(&output).unwrap()).into_owned();
        assert!(text.contains(&format!("/SubFilter/{}", sub_filter.name())));
        validate(
            &output,
            1,
            if pyhanko {
                PyHanko::Strict
            } else {
                PyHanko::Skip
            },
        );
    }
}
