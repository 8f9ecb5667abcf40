//! The one error type of this crate.

use std::path::PathBuf;

/// An object number and generation, as PDF writes them in `N G R`.
pub type ObjectId = (u32, u16);

/// Everything that can go wrong while reading a PDF or writing its signed increment.
///
/// Variants carry the byte offset into the input or the object number that explains
/// them. Whatever the variant, no output file is left behind and the input is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error while {during}")]
    Io {
        /// What was being done: "reading the input", "renaming the temporary file", ...
        during: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The input has no `%PDF-` header in its first kilobyte.
    #[error("not a PDF file: no %PDF- header in the first 1024 bytes")]
    NotPdf,
    /// The input is encrypted (its trailer has `/Encrypt`); signing those is not supported yet.
    #[error("the document is encrypted; encrypted documents are not supported")]
    Encrypted,
    /// No `startxref` keyword with an offset was found near the end of the file.
    #[error("no startxref near the end of the file (truncated?)")]
    MissingStartxref,
    /// A syntax error in the PDF's objects or cross-reference data.
    #[error("syntax error at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset into the input (or into a decoded object stream, see `object`).
        offset: u64,
        /// What the parser was looking for.
        expected: &'static str,
        /// The object stream the offset points into, when it is not the file itself.
        object_stream: Option<u32>,
    },
    /// The data ended in the middle of an object.
    #[error("unexpected end of data at byte {offset}")]
    UnexpectedEof {
        /// Byte offset into the input where more data was needed.
        offset: u64,
    },
    /// Arrays and dictionaries nested deeper than [`crate::limits::MAX_NESTING`].
    #[error("objects nested deeper than {limit} levels at byte {offset}")]
    NestingTooDeep {
        /// Byte offset of the array or dictionary that went one level too deep.
        offset: u64,
        /// The nesting limit.
        limit: usize,
    },
    /// A single object (not counting stream data) spans more bytes than allowed.
    #[error("object at byte {offset} is larger than {limit} bytes")]
    ObjectTooLarge {
        /// Byte offset of the object.
        offset: u64,
        /// The size limit.
        limit: u64,
    },
    /// A stream, raw or decoded, is larger than [`crate::limits::MAX_STREAM_LEN`].
    #[error("stream of object {object} is larger than {limit} bytes")]
    StreamTooLarge {
        /// The stream's object number.
        object: u32,
        /// The size limit.
        limit: u64,
    },
    /// A stream's `/Length` does not match its data: `endstream` is not where it says.
    #[error("object {object}: /Length {length} does not end at endstream (data at byte {offset})")]
    BadStreamLength {
        /// The stream's object number.
        object: u32,
        /// The stream data's byte offset.
        offset: u64,
        /// The length the stream dictionary claimed.
        length: i64,
    },
    /// An offset or length points outside the file.
    #[error("{what} at byte {offset} lies outside the file ({file_len} bytes)")]
    OutOfBounds {
        /// What the offset belongs to.
        what: &'static str,
        /// The offending offset (or end of range).
        offset: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The cross-reference data lists more entries than [`crate::limits::MAX_XREF_ENTRIES`].
    #[error("cross-reference data lists {count} entries, more than the limit of {limit}")]
    TooManyXrefEntries {
        /// How many entries were seen (at least).
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// The `/Prev` chain of cross-reference sections comes back to a section already read.
    #[error("the /Prev chain of cross-reference sections loops back to byte {offset}")]
    XrefLoop {
        /// The offset seen twice.
        offset: u64,
    },
    /// A cross-reference section (table or stream) is malformed.
    #[error("bad cross-reference section at byte {offset}: {reason}")]
    BadXref {
        /// Byte offset of the section (or of the entry at fault).
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An object the increment needs is not in the cross-reference data (or is free).
    #[error("object {} {} is missing", .object.0, .object.1)]
    MissingObject {
        /// The object that was looked for.
        object: ObjectId,
    },
    /// At the offset the cross-reference gives, another object (or none) starts.
    #[error("expected object {} {} at byte {offset}, found {} {}", .expected.0, .expected.1, .found.0, .found.1)]
    ObjectMismatch {
        /// The object that was looked for.
        expected: ObjectId,
        /// The object found there.
        found: ObjectId,
        /// The byte offset given by the cross-reference data.
        offset: u64,
    },
    /// An object has the wrong type for its role (e.g. `/Root` is not a dictionary).
    #[error("{what} is not {expected}{}", .object.map(|o| format!(" (object {} {})", o.0, o.1)).unwrap_or_default())]
    UnexpectedType {
        /// What was being read, such as "the /Root catalog".
        what: &'static str,
        /// The type it should have had.
        expected: &'static str,
        /// The object involved, when it is an indirect one.
        object: Option<ObjectId>,
    },
    /// Resolving an object needs the object itself (e.g. a `/Length` that refers back).
    #[error("reference loop while resolving object {object}")]
    ReferenceLoop {
        /// The object met again.
        object: u32,
    },
    /// The page tree (or the form-field tree) refers back to one of its own ancestors.
    #[error("the {tree} tree loops back to object {object}")]
    TreeLoop {
        /// "page" or "form field".
        tree: &'static str,
        /// The object met again.
        object: u32,
    },
    /// The page tree (or the form-field tree) is deeper than [`crate::limits::MAX_NESTING`].
    #[error("the {tree} tree is deeper than {limit} levels")]
    TreeTooDeep {
        /// "page" or "form field".
        tree: &'static str,
        /// The depth limit.
        limit: usize,
    },
    /// A stream uses a filter this reader does not decode.
    #[error("object {object}: unsupported stream filter /{filter}")]
    UnsupportedFilter {
        /// The stream's object number.
        object: u32,
        /// The filter's name.
        filter: String,
    },
    /// A stream's data could not be decoded.
    #[error("object {object}: cannot decode stream: {reason}")]
    Decode {
        /// The stream's object number.
        object: u32,
        /// What went wrong.
        reason: &'static str,
    },
    /// An object stream (`/Type /ObjStm`) is malformed.
    #[error("object stream {object}: {reason}")]
    BadObjectStream {
        /// The object stream's object number.
        object: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The document is certified with `/DocMDP` `/P 1`: no change at all is allowed.
    #[error(
        "the document is certified with DocMDP /P 1, which forbids any change, signatures included"
    )]
    CertifiedNoChanges,
    /// The field to fill is locked by a FieldMDP `/Lock` of an earlier signature.
    #[error("signature field {field:?} is locked by an earlier signature's /Lock")]
    FieldLocked {
        /// The field's fully qualified name.
        field: String,
    },
    /// The named signature field already holds a signature.
    #[error("signature field {field:?} is already signed")]
    FieldAlreadySigned {
        /// The field's fully qualified name.
        field: String,
    },
    /// A field with the requested name exists but is not a signature field.
    #[error("field {field:?} exists and is not a signature field")]
    FieldNotSignature {
        /// The field's fully qualified name.
        field: String,
    },
    /// The requested page does not exist.
    #[error("page index {index} is out of range: the document has {count} pages")]
    PageOutOfRange {
        /// The requested zero-based page index.
        index: u32,
        /// How many pages the document has.
        count: u32,
    },
    /// The options are inconsistent (an empty field name, a degenerate rectangle, ...).
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
    /// The output path names the input file and in-place signing was not asked for.
    #[error("output {path:?} is the input file; ask for in-place signing to replace it")]
    OutputIsInput {
        /// The path given as output.
        path: PathBuf,
    },
    /// The signature container is larger than the placeholder reserved for it.
    #[error("signature container of {len} bytes does not fit the {capacity}-byte placeholder")]
    ContainerTooLarge {
        /// The container's length.
        len: usize,
        /// The placeholder's capacity in bytes.
        capacity: usize,
    },
    /// The signature container (CMS builder, remote signer, ...) failed.
    #[error("the signature container failed")]
    Container(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The document has no room for new object numbers.
    #[error("no object numbers left: /Size or object numbers reach {highest}")]
    ObjectNumbersExhausted {
        /// The highest number in use.
        highest: u64,
    },
    /// A state the code rules out was reached; this is a bug in pdf-sig.
    #[error("internal error (a bug in pdf-sig): {0}")]
    Unreachable(&'static str),
}

/// This crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(during: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { during, source }
    }

    pub(crate) fn syntax(offset: u64, expected: &'static str) -> Error {
        Error::Syntax {
            offset,
            expected,
            object_stream: None,
        }
    }

    pub(crate) fn wrong_type(
        what: &'static str,
        expected: &'static str,
        object: Option<ObjectId>,
    ) -> Error {
        Error::UnexpectedType {
            what,
            expected,
            object,
        }
    }
}
