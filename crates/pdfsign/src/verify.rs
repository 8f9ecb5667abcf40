//! `verify`: every signature of a PDF, its integrity, what it covers, and its chain.
//!
//! Signatures are found as `pdfsig` and Acrobat find them: the signature fields of the
//! AcroForm (`/FT /Sig`, inherited through `/Kids`) whose value `/V` is a signature
//! dictionary. For each one:
//!
//! - `/ByteRange` must start at 0, leave a gap that is exactly the `/Contents` hex string
//!   (`<` and `>` included), and stay within the file;
//! - the CMS in `/Contents` must parse, its message-digest must equal the digest of the
//!   byte ranges (hashed from the file, streamed), and its signature must verify with the
//!   signer's certificate;
//! - the file must end where the second range ends, or the bytes after it are reported
//!   (how many, how many revisions, whether a later signature covers them);
//! - the certificates must chain to a trust root given by the caller ([`crate::chain`]),
//!   checked at the signing time `/M`.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use cms_sign::{DigestAlgorithm, SignatureScheme, SignedCms};
use lopdf::{Dictionary, Object};
use pdf_sig::reader::Document;
use serde::Serialize;
use x509_cert::Certificate;

use crate::chain::{self, ChainReport};
use crate::error::{Error, Result};
use crate::time::{format_rfc3339, parse_pdf_date};

/// How deep the form-field tree may go before it is called hostile.
const MAX_FIELD_DEPTH: usize = 32;
/// How many fields are looked at, at most.
const MAX_FIELDS: usize = 100_000;

/// What `verify` found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The file's length in bytes.
    pub file_len: u64,
    /// Every signature, in field order.
    pub signatures: Vec<SignatureReport>,
}

impl VerifyReport {
    /// Whether the file has at least one signature and every signature is valid.
    pub fn all_valid(&self) -> bool {
        !self.signatures.is_empty() && self.signatures.iter().all(|s| s.valid)
    }
}

/// What the bytes after a signature's second range are.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Whether the signature covers the whole file (but for its own `/Contents`).
    pub whole_file: bool,
    /// How many bytes follow the signed ranges.
    pub appended_bytes: u64,
    /// How many revisions (`%%EOF` markers) those bytes hold.
    pub appended_revisions: usize,
    /// Whether a later valid signature covers the whole file, so that what was appended
    /// is signed by someone.
    pub appended_signed_later: bool,
}

/// One signature's findings.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// The field's fully qualified name.
    pub field: String,
    /// The signer's certificate subject (RFC 4514), if the CMS could be read.
    pub signer: Option<String>,
    /// `/M`, RFC 3339, if present.
    pub signing_time: Option<String>,
    /// The CMS signing-time attribute, RFC 3339, if present.
    pub cms_signing_time: Option<String>,
    /// `/SubFilter`.
    pub sub_filter: Option<String>,
    /// `/Name`, `/Reason`, `/Location`.
    pub name: Option<String>,
    /// `/Reason`.
    pub reason: Option<String>,
    /// `/Location`.
    pub location: Option<String>,
    /// The digest algorithm, e.g. `SHA-256`.
    pub digest_algorithm: Option<String>,
    /// The signature algorithm, e.g. `ECDSA with SHA-256`.
    pub signature_algorithm: Option<String>,
    /// `/ByteRange`.
    pub byte_range: Option<[u64; 4]>,
    /// Whether the signed bytes are unchanged and the signature verifies.
    pub integrity: bool,
    /// Why integrity fails, when it does.
    pub integrity_problem: Option<String>,
    /// What the signature covers.
    pub coverage: Option<Coverage>,
    /// The certification path, when the CMS could be read.
    pub chain: Option<ChainReport>,
    /// Integrity holds and the chain is trusted (or was not checked: no trust root).
    pub valid: bool,
}

/// Verifies every signature of the PDF at `path` against the trust roots `roots`
/// (none: the chain is reported but not judged).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Pdf`] if it is no readable PDF.
/// Problems of a signature are findings in the report, not errors.
pub fn verify_file(path: &Path, roots: &[Certificate]) -> Result<VerifyReport> {
    let file = File::open(path).map_err(|source| Error::Io {
        during: "opening",
        path: path.to_path_buf(),
        source,
    })?;
    let mut document = Document::open(BufReader::new(file))?;
    let file_len = document.file_len();
    let fields = signature_fields(&mut document)?;
    let mut reader = document.into_inner();
    let mut signatures = Vec::with_capacity(fields.len());
    for (field, dictionary) in fields {
        signatures.push(check_signature(
            &mut reader,
            file_len,
            field,
            &dictionary,
            roots,
        ));
    }
    // Appended bytes are signed if a later, valid signature covers the whole file.
    let whole_file_valid = signatures
        .iter()
        .filter(|s| s.integrity && s.coverage.as_ref().is_some_and(|c| c.whole_file))
        .filter_map(|s| s.byte_range.map(|r| r[2] + r[3]))
        .max();
    for signature in &mut signatures {
        if let (Some(coverage), Some(end)) = (&mut signature.coverage, whole_file_valid) {
            coverage.appended_signed_later = !coverage.whole_file && end == file_len;
        }
    }
    Ok(VerifyReport {
        file_len,
        signatures,
    })
}

/// Reads trust roots: every certificate of every PEM file given.
///
/// # Errors
/// [`Error::Io`] or [`Error::KeyFile`] for a file without usable certificates.
pub fn load_trust_roots(files: &[impl AsRef<Path>]) -> Result<Vec<Certificate>> {
    let mut roots = Vec::new();
    for file in files {
        let file = file.as_ref();
        let ders = crate::software::read_certificates(file)?;
        if ders.is_empty() {
            return Err(Error::KeyFile {
                path: file.to_path_buf(),
                reason: "holds no CERTIFICATE PEM block".into(),
            });
        }
        roots.extend(chain::parse_all(&ders).map_err(|reason| Error::KeyFile {
            path: file.to_path_buf(),
            reason,
        })?);
    }
    Ok(roots)
}

/// The signature fields with a value: (qualified name, signature dictionary).
fn signature_fields<R: Read + Seek>(
    document: &mut Document<R>,
) -> Result<Vec<(String, Dictionary)>> {
    let trailer = document.trailer()?;
    let root = match trailer.get(b"Root") {
        Ok(Object::Reference(id)) => document.dictionary(*id, "the /Root catalog")?,
        Ok(Object::Dictionary(dict)) => dict.clone(),
        _ => return Ok(Vec::new()),
    };
    let Some(acroform) = resolve_dictionary(document, root.get(b"AcroForm").ok())? else {
        return Ok(Vec::new());
    };
    let fields = match acroform.get(b"Fields") {
        Ok(object) => document.resolve(object)?,
        Err(_) => return Ok(Vec::new()),
    };
    let Object::Array(fields) = fields else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let mut stack: Vec<(Object, String, Option<Vec<u8>>, usize)> = fields
        .into_iter()
        .rev()
        .map(|f| (f, String::new(), None, 0))
        .collect();
    while let Some((object, parent_name, inherited_type, depth)) = stack.pop() {
        if depth > MAX_FIELD_DEPTH || seen.len() > MAX_FIELDS {
            continue;
        }
        if let Object::Reference(id) = object {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
        }
        let Some(field) = resolve_dictionary(document, Some(&object))? else {
            continue;
        };
        let partial = field.get(b"T").ok().and_then(|t| match t {
            Object::String(bytes, _) => Some(pdf_text(bytes)),
            _ => None,
        });
        let name = match (&partial, parent_name.is_empty()) {
            (Some(p), true) => p.clone(),
            (Some(p), false) => format!("{parent_name}.{p}"),
            (None, _) => parent_name.clone(),
        };
        let field_type = match field.get(b"FT") {
            Ok(Object::Name(t)) => Some(t.clone()),
            _ => inherited_type.clone(),
        };
        let kids = field
            .get(b"Kids")
            .ok()
            .and_then(|k| document.resolve(k).ok());
        if let Some(Object::Array(kids)) = kids {
            for kid in kids.into_iter().rev() {
                stack.push((kid, name.clone(), field_type.clone(), depth + 1));
            }
        }
        if field_type.as_deref() == Some(b"Sig".as_slice())
            && let Some(value) = resolve_dictionary(document, field.get(b"V").ok())?
        {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn resolve_dictionary<R: Read + Seek>(
    document: &mut Document<R>,
    object: Option<&Object>,
) -> Result<Option<Dictionary>> {
    Ok(match object {
        Some(object) => match document.resolve(object) {
            Ok(Object::Dictionary(dict)) => Some(dict),
            Ok(_) => None,
            // A dangling reference in the form is the form's problem, not a reason to
            // give up on the other signatures.
            Err(pdf_sig::Error::MissingObject { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    })
}

/// Decodes a PDF text string: UTF-16BE with a byte-order mark, UTF-8 with one, or
/// PDFDocEncoding (read as Latin-1, which agrees on every printable character but a few).
pub(crate) fn pdf_text(bytes: &[u8]) -> String {
    if let Some(utf16) = bytes.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = utf16
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(utf8) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(utf8).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn text_entry(dictionary: &Dictionary, key: &[u8]) -> Option<String> {
    match dictionary.get(key) {
        Ok(Object::String(bytes, _)) => Some(pdf_text(bytes)),
        _ => None,
    }
}

fn check_signature<R: Read + Seek>(
    reader: &mut R,
    file_len: u64,
    field: String,
    dictionary: &Dictionary,
    roots: &[Certificate],
) -> SignatureReport {
    let signing_time = text_entry(dictionary, b"M").and_then(|m| parse_pdf_date(&m));
    let mut report = SignatureReport {
        field,
        signer: None,
        signing_time: signing_time.map(format_rfc3339),
        cms_signing_time: None,
        sub_filter: match dictionary.get(b"SubFilter") {
            Ok(Object::Name(name)) => Some(String::from_utf8_lossy(name).into_owned()),
            _ => None,
        },
        name: text_entry(dictionary, b"Name"),
        reason: text_entry(dictionary, b"Reason"),
        location: text_entry(dictionary, b"Location"),
        digest_algorithm: None,
        signature_algorithm: None,
        byte_range: None,
        integrity: false,
        integrity_problem: None,
        coverage: None,
        chain: None,
        valid: false,
    };
    let result = integrity(reader, file_len, dictionary, &mut report);
    let cms = match result {
        Ok(cms) => Some(Box::new(cms)),
        Err(Failure { problem, cms }) => {
            report.integrity_problem = Some(problem);
            cms
        }
    };
    if let Some(cms) = cms {
        let time = signing_time
            .or(cms.signed_attributes().signing_time)
            .unwrap_or_else(SystemTime::now);
        report.cms_signing_time = cms.signed_attributes().signing_time.map(format_rfc3339);
        report.chain = Some(chain::validate(
            cms.signer_certificate(),
            cms.chain(),
            roots,
            time,
        ));
    }
    report.valid = report.integrity
        && report
            .chain
            .as_ref()
            .is_some_and(|c| !matches!(c.status, chain::ChainStatus::Untrusted { .. }));
    report
}

/// Why integrity failed, with the CMS if it could be read (to report the chain anyway).
struct Failure {
    problem: String,
    cms: Option<Box<SignedCms>>,
}

impl From<String> for Failure {
    fn from(problem: String) -> Failure {
        Failure { problem, cms: None }
    }
}

fn integrity<R: Read + Seek>(
    reader: &mut R,
    file_len: u64,
    dictionary: &Dictionary,
    report: &mut SignatureReport,
) -> std::result::Result<SignedCms, Failure> {
    let range = byte_range(dictionary, file_len)?;
    report.byte_range = Some(range);
    let [_, first_len, second, second_len] = range;
    let end = second + second_len;
    let appended = &read_at(reader, end, file_len - end)?;
    report.coverage = Some(Coverage {
        whole_file: end == file_len,
        appended_bytes: file_len - end,
        appended_revisions: count(appended, b"%%EOF"),
        appended_signed_later: false,
    });

    // The gap must be exactly the /Contents hex string.
    let gap = read_at(reader, first_len, second - first_len)?;
    let hex = gap
        .strip_prefix(b"<")
        .and_then(|g| g.strip_suffix(b">"))
        .ok_or("the /ByteRange gap is not the /Contents hex string (no < >)".to_owned())?;
    let contents = decode_hex(hex)
        .ok_or("the /ByteRange gap holds something else than hex digits".to_owned())?;
    match dictionary.get(b"Contents") {
        Ok(Object::String(parsed, _)) if *parsed == contents => {}
        _ => {
            return Err("the /ByteRange gap is not this signature's /Contents"
                .to_owned()
                .into());
        }
    }
    let der = der_prefix(&contents).ok_or("/Contents holds no DER structure".to_owned())?;
    let cms = SignedCms::from_der(der)
        .map_err(|e| format!("the CMS does not parse: {}", chain_text(&e)))?;
    report.signer = Some(chain::name(
        cms.signer_certificate().tbs_certificate().subject(),
    ));
    let algorithm = cms.signature_algorithm();
    report.digest_algorithm = Some(algorithm.digest.to_string());
    report.signature_algorithm = Some(format!(
        "{} with {}",
        match algorithm.scheme {
            SignatureScheme::RsaPkcs1v15 => "RSA PKCS#1 v1.5",
            SignatureScheme::RsaPss => "RSASSA-PSS",
            SignatureScheme::Ecdsa => "ECDSA",
        },
        algorithm.digest
    ));
    let digest = match hash_ranges(reader, range, cms.digest_algorithm()) {
        Ok(digest) => digest,
        Err(problem) => {
            return Err(Failure {
                problem,
                cms: Some(Box::new(cms)),
            });
        }
    };
    if let Err(e) = cms.verify_digest(&digest) {
        let problem = match e {
            cms_sign::Error::MessageDigestMismatch => {
                "the signed bytes were changed: their digest differs from the signed one".to_owned()
            }
            other => chain_text(&other),
        };
        return Err(Failure {
            problem,
            cms: Some(Box::new(cms)),
        });
    }
    report.integrity = true;
    Ok(cms)
}

fn byte_range(dictionary: &Dictionary, file_len: u64) -> std::result::Result<[u64; 4], String> {
    let Ok(Object::Array(items)) = dictionary.get(b"ByteRange") else {
        return Err("no /ByteRange".into());
    };
    let values: Vec<u64> = items
        .iter()
        .filter_map(|item| match item {
            Object::Integer(n) => u64::try_from(*n).ok(),
            _ => None,
        })
        .collect();
    let [start, first_len, second, second_len] = values[..] else {
        return Err("/ByteRange is not four non-negative integers".into());
    };
    if start != 0 {
        return Err("/ByteRange does not start at the beginning of the file".into());
    }
    let end = second.checked_add(second_len);
    if second <= first_len || end.is_none_or(|end| end > file_len) {
        return Err("/ByteRange does not fit the file".into());
    }
    Ok([start, first_len, second, second_len])
}

fn read_at<R: Read + Seek>(
    reader: &mut R,
    offset: u64,
    len: u64,
) -> std::result::Result<Vec<u8>, String> {
    // Gaps and tails of signed files are small; a huge one is read in one go all the
    // same, since it is reported on.
    let mut buffer = vec![0u8; usize::try_from(len).map_err(|_| "range too large".to_owned())?];
    reader
        .seek(SeekFrom::Start(offset))
        .and_then(|_| reader.read_exact(&mut buffer))
        .map_err(|e| format!("reading the file: {e}"))?;
    Ok(buffer)
}

/// The digest of the bytes `range` covers, by pdf-sig (the writer's own hashing).
fn hash_ranges<R: Read + Seek>(
    reader: &mut R,
    range: [u64; 4],
    algorithm: DigestAlgorithm,
) -> std::result::Result<Vec<u8>, String> {
    let range = pdf_sig::ByteRange::new(range).ok_or("/ByteRange does not fit the file")?;
    let algorithm = match algorithm {
        DigestAlgorithm::Sha256 => pdf_sig::DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384 => pdf_sig::DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512 => pdf_sig::DigestAlgorithm::Sha512,
    };
    pdf_sig::digest_byte_range(reader, range, algorithm).map_err(|e| e.to_string())
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digits: Vec<u8> = hex
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let value = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    for pair in digits.chunks(2) {
        let high = value(pair[0])?;
        // An odd last digit is followed by an implicit 0 (ISO 32000-1 7.3.4.3).
        let low = match pair.get(1) {
            Some(&b) => value(b)?,
            None => 0,
        };
        out.push(high << 4 | low);
    }
    Some(out)
}

/// The DER element at the start of `bytes` (a placeholder is zero-padded after it).
fn der_prefix(bytes: &[u8]) -> Option<&[u8]> {
    let (&first_len_byte, rest) = bytes.get(1..)?.split_first()?;
    let (len, header) = if first_len_byte < 0x80 {
        (usize::from(first_len_byte), 2)
    } else {
        let count = usize::from(first_len_byte & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let len = rest
            .get(..count)?
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, 2 + count)
    };
    bytes.get(..header.checked_add(len)?)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// An error and its causes on one line.
pub(crate) fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_der_prefix() {
        assert_eq!(
            decode_hex(b"30 03\n0201 01"),
            Some(vec![0x30, 0x03, 0x02, 0x01, 0x01])
        );
        assert_eq!(decode_hex(b"3"), Some(vec![0x30]));
        assert_eq!(decode_hex(b"3g"), None);
        assert_eq!(
            der_prefix(&[0x30, 0x03, 1, 2, 3, 0, 0]),
            Some(&[0x30, 0x03, 1, 2, 3][..])
        );
        assert_eq!(
            der_prefix(&[0x30, 0x81, 0x01, 9, 0]),
            Some(&[0x30, 0x81, 0x01, 9][..])
        );
        assert_eq!(der_prefix(&[0x30, 0x05, 1]), None);
        assert_eq!(der_prefix(&[0x30]), None);
    }

    #[test]
    fn text_strings() {
        assert_eq!(pdf_text(b"\xfe\xff\x00A\x00\xe9"), "Aé");
        assert_eq!(pdf_text(b"caf\xe9"), "café");
    }

    #[test]
    fn byte_ranges_are_checked() {
        let dict = |values: &[i64]| {
            let mut d = Dictionary::new();
            d.set(
                "ByteRange",
                values
                    .iter()
                    .map(|&v| Object::Integer(v))
                    .collect::<Vec<_>>(),
            );
            d
        };
        assert_eq!(byte_range(&dict(&[0, 10, 20, 5]), 25), Ok([0, 10, 20, 5]));
        assert!(byte_range(&dict(&[0, 10, 20, 6]), 25).is_err());
        assert!(byte_range(&dict(&[1, 10, 20, 5]), 25).is_err());
        assert!(byte_range(&dict(&[0, 10, 10, 5]), 25).is_err());
        assert!(byte_range(&dict(&[0, 10, -20, 5]), 25).is_err());
        assert!(byte_range(&dict(&[0, 10, 20]), 25).is_err());
        assert!(byte_range(&Dictionary::new(), 25).is_err());
    }
}
