//! A lazy PDF reader over `Read + Seek`.
//!
//! [`Document::open`] reads the cross-reference chain (tables, streams, hybrid files,
//! `/Prev` chains, linearized files) and the trailer; [`Document::object`] then reads one
//! object at a time by offset, from the file or from an object stream. Nothing else is
//! read, so memory follows the objects touched, not the file size. Objects come back in
//! lopdf's [`Object`] model.
//!
//! Guarded against hostile input: offsets and lengths are checked against the file size,
//! nesting, stream sizes and the number of cross-reference entries are bounded (see
//! [`crate::limits`]), and loops in the `/Prev` chain and in references are errors.

mod chain;
mod filter;
pub(crate) mod lexer;
mod raw;
mod xref;

use crate::dict::Entry as _;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

use lopdf::{Dictionary, Object, Stream};

use crate::error::{Error, ObjectId, Result};
use crate::limits::{MAX_OBJECT_LEN, MAX_STREAM_LEN};
use lexer::{IndirectObject, Parser};
pub(crate) use raw::RawDict;
pub use xref::XrefEntry;
pub(crate) use xref::encode_stream_entry;

/// The kind of a cross-reference section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefKind {
    /// A table (`xref` ... `trailer`), possibly with a `/XRefStm` (a hybrid file).
    Table,
    /// A cross-reference stream (`/Type /XRef`).
    Stream,
}

/// A decoded object stream: its data and the (number, offset) pairs of its header.
struct ObjectStream {
    number: u32,
    data: Vec<u8>,
    first: usize,
    pairs: Vec<(u32, usize)>,
}

impl ObjectStream {
    fn bad(&self, reason: &'static str) -> Error {
        Error::BadObjectStream {
            object: self.number,
            reason,
        }
    }

    /// The data from object `number` on; `index` is where its cross-reference entry
    /// says it is listed.
    fn object_data(&self, number: u32, index: u32) -> Result<&[u8]> {
        // The index normally points at the object; a stream rewritten by a careless
        // producer may have it elsewhere, so look it up by number if the index misses.
        let offset = match self.pairs.get(index as usize) {
            Some(&(found, offset)) if found == number => offset,
            _ => self
                .pairs
                .iter()
                .find(|&&(found, _)| found == number)
                .map(|&(_, offset)| offset)
                .ok_or_else(|| {
                    self.bad("does not hold the object its cross-reference entry names")
                })?,
        };
        let start = self
            .first
            .checked_add(offset)
            .ok_or_else(|| self.bad("object offset overflows"))?;
        self.data
            .get(start..)
            .ok_or_else(|| self.bad("object offset beyond the data"))
    }

    /// Running off the end of the data is this stream's fault.
    fn cut_short(&self, error: Error) -> Error {
        match error {
            Error::UnexpectedEof { .. } => self.bad("object cut short by the end of the data"),
            other => other,
        }
    }
}

/// The last bytes of the file, as read to find `startxref`: a small file's newest
/// cross-reference table and trailer are in them, and need not be read again.
pub(super) struct Tail<'a> {
    bytes: &'a [u8],
    /// The offset of the first byte; the last is the file's.
    start: u64,
}

impl<'a> Tail<'a> {
    /// The file's bytes from `offset` to its end, if the tail holds them all.
    pub(super) fn from(&self, offset: u64) -> Option<&'a [u8]> {
        let skip = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.bytes.get(skip..)
    }
}

/// Where an object is stored.
enum Location {
    /// At this offset of the file.
    File(u64),
    /// In object stream `stream`, listed at `index`.
    Stream { stream: u32, index: u32 },
}

/// How many references may be resolved inside one another (a `/Length` in an object
/// stream whose own `/Length` is a reference, ...) before the reader gives up.
const MAX_RESOLUTION_DEPTH: usize = 16;

/// The first window read at an object's offset; it grows fourfold while too small. The
/// dictionaries an increment reads (catalog, page tree nodes, pages, form fields) are
/// mostly a few hundred bytes: a small first window copies and allocates little, and
/// stays out of the allocator's large-chunk path.
const FIRST_WINDOW: u64 = 512;

/// A PDF opened for reading: its cross-reference data and trailer, and a cache of the
/// objects read so far.
pub struct Document<R> {
    source: R,
    file_len: u64,
    startxref: u64,
    kind: XrefKind,
    /// Kept as found: a handful of its keys are looked at, and the new trailer copies
    /// the rest as they are.
    trailer: RawDict,
    /// The newest trailer's `/Size` (0 if it has none that is an integer).
    size: u64,
    entries: xref::Entries,
    highest: u32,
    /// Objects read so far, shared: reading one again copies nothing.
    cache: HashMap<u32, Rc<Object>>,
    object_stream: Option<Rc<ObjectStream>>,
    resolving: Vec<u32>,
    /// The window objects are parsed from, kept between reads so that each read does
    /// not allocate one.
    window: Vec<u8>,
}

impl<R: Read + Seek> Document<R> {
    /// Reads the header, `startxref`, every cross-reference section of the `/Prev`
    /// chain, and the newest trailer.
    ///
    /// # Errors
    ///
    /// [`Error::NotPdf`], [`Error::MissingStartxref`], [`Error::BadXref`],
    /// [`Error::XrefLoop`], [`Error::TooManyXrefEntries`], [`Error::OutOfBounds`],
    /// syntax errors, and I/O errors from `source`.
    pub fn open(mut source: R) -> Result<Self> {
        let file_len = source
            .seek(SeekFrom::End(0))
            .map_err(Error::io("reading the input"))?;
        // Head and tail on the stack: opening a one-page PDF should not allocate them.
        let mut buffer = [0u8; 2048];
        let head = read_exact_into(&mut source, 0, &mut buffer, file_len.min(1024))?;
        if !contains(head, b"%PDF-") {
            return Err(Error::NotPdf);
        }
        let tail_len = file_len.min(2048);
        let tail_start = file_len - tail_len;
        let tail = read_exact_into(&mut source, tail_start, &mut buffer, tail_len)?;
        let startxref = find_startxref(tail).ok_or(Error::MissingStartxref)?;
        if startxref >= file_len {
            return Err(Error::OutOfBounds {
                what: "startxref",
                offset: startxref,
                file_len,
            });
        }
        let mut document = Document {
            source,
            file_len,
            startxref,
            kind: XrefKind::Table,
            trailer: RawDict::default(),
            size: 0,
            entries: xref::Entries::default(),
            highest: 0,
            cache: HashMap::new(),
            object_stream: None,
            resolving: Vec::new(),
            window: Vec::new(),
        };
        document.read_xref_chain(Tail {
            bytes: tail,
            start: tail_start,
        })?;
        Ok(document)
    }

    /// The length of the file in bytes, as measured when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The offset that the file's last `startxref` gives: the newest section.
    pub fn startxref(&self) -> u64 {
        self.startxref
    }

    /// The kind of the newest cross-reference section.
    pub fn xref_kind(&self) -> XrefKind {
        self.kind
    }

    /// The newest trailer (for a cross-reference stream, its dictionary), read into
    /// lopdf's model.
    ///
    /// # Errors
    ///
    /// None in practice: it was checked by the same parser when the file was opened.
    pub fn trailer(&self) -> Result<Dictionary> {
        self.trailer.to_dictionary()
    }

    /// The newest trailer as found.
    pub(crate) fn raw_trailer(&self) -> &RawDict {
        &self.trailer
    }

    /// The newest trailer's `/Size`, 0 if it has none that is an integer (a negative one
    /// counts as 0).
    pub(crate) fn trailer_size(&self) -> u64 {
        self.size
    }

    /// The cross-reference entry in force for object `number`, if any section lists it.
    pub fn xref_entry(&self, number: u32) -> Option<XrefEntry> {
        self.entries.get(number)
    }

    /// The first object number free for new objects: max(`/Size`, 1 + the highest
    /// number in any cross-reference section or object stream read so far).
    ///
    /// # Errors
    ///
    /// [`Error::ObjectNumbersExhausted`] when that number does not fit in 32 bits.
    pub fn next_object_number(&self) -> Result<u32> {
        let next = self.size.max(u64::from(self.highest) + 1);
        u32::try_from(next).map_err(|_| Error::ObjectNumbersExhausted { highest: next })
    }

    /// Gives the source back.
    pub fn into_inner(self) -> R {
        self.source
    }

    /// Gives the source and the newest trailer back.
    pub(crate) fn into_source_and_trailer(self) -> (R, RawDict) {
        (self.source, self.trailer)
    }

    /// Reads object `id` (from the cache after the first time). A stream comes back
    /// with its raw (still encoded) data.
    ///
    /// # Errors
    ///
    /// [`Error::MissingObject`] when no cross-reference entry lists the object (or lists
    /// it as free, or with another generation); [`Error::ObjectMismatch`] when another
    /// object sits at the listed offset; syntax, limit and I/O errors.
    pub fn object(&mut self, id: ObjectId) -> Result<Object> {
        let object = self.shared_object(id)?;
        Ok(Object::clone(&object))
    }

    /// As [`Document::object`], but the cached object itself rather than a copy: for
    /// what is only looked at.
    pub(crate) fn shared_object(&mut self, id: ObjectId) -> Result<Rc<Object>> {
        if let Some(object) = self.cache.get(&id.0) {
            return Ok(Rc::clone(object));
        }
        let object = Rc::new(self.load_guarded(id)?);
        self.cache.insert(id.0, Rc::clone(&object));
        Ok(object)
    }

    /// As [`Document::object`], but moved out of the cache rather than copied (or read
    /// without entering it): for an object about to be rewritten. Reading it again
    /// parses it again.
    pub(crate) fn take_object(&mut self, id: ObjectId) -> Result<Object> {
        match self.cache.remove(&id.0) {
            Some(object) => Ok(Rc::unwrap_or_clone(object)),
            None => self.load_guarded(id),
        }
    }

    /// Reads object `id`, refusing a reference loop (an object whose reading needs
    /// itself, such as a `/Length` pointing back) and nesting deeper than
    /// [`MAX_RESOLUTION_DEPTH`].
    fn load_guarded(&mut self, id: ObjectId) -> Result<Object> {
        if self.resolving.contains(&id.0) || self.resolving.len() >= MAX_RESOLUTION_DEPTH {
            return Err(Error::ReferenceLoop { object: id.0 });
        }
        self.resolving.push(id.0);
        let result = self.load(id);
        self.resolving.pop();
        result
    }

    /// As [`Document::dictionary`], moved out of the cache: see
    /// [`Document::take_object`].
    pub(crate) fn take_dictionary(
        &mut self,
        id: ObjectId,
        what: &'static str,
    ) -> Result<Dictionary> {
        let object = self.take_object(id)?;
        into_dictionary(object, id, what)
    }

    /// Follows `object` if it is a reference; returns it unchanged otherwise.
    ///
    /// # Errors
    ///
    /// As [`Document::object`].
    pub fn resolve(&mut self, object: &Object) -> Result<Object> {
        match object {
            Object::Reference(id) => self.object(*id),
            other => Ok(other.clone()),
        }
    }

    /// Reads object `id` and checks that it is a dictionary (a stream's dictionary does
    /// not count).
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedType`] naming `what`, and the errors of [`Document::object`].
    pub fn dictionary(&mut self, id: ObjectId, what: &'static str) -> Result<Dictionary> {
        let object = self.object(id)?;
        into_dictionary(object, id, what)
    }

    fn load(&mut self, id: ObjectId) -> Result<Object> {
        match self.locate(id)? {
            Location::File(offset) => self.load_from_file(id, offset),
            Location::Stream { stream, index } => self.load_from_stream(id.0, stream, index),
        }
    }

    /// Where object `id` is, by its cross-reference entry.
    fn locate(&self, id: ObjectId) -> Result<Location> {
        match self.entries.get(id.0) {
            Some(XrefEntry::InFile { offset, generation }) if generation == id.1 => {
                Ok(Location::File(offset))
            }
            Some(XrefEntry::InStream { stream, index }) if id.1 == 0 => {
                Ok(Location::Stream { stream, index })
            }
            // Free, absent, or of another generation.
            _ => Err(Error::MissingObject { object: id }),
        }
    }

    /// Reads object `id`, which must be a dictionary (not a stream's), as a [`RawDict`]:
    /// checked as [`Document::object`] checks it, but neither built into lopdf's model
    /// nor cached. For a dictionary that is about to be rewritten, or of which a few keys
    /// are looked at.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedType`] naming `what`, and the errors of [`Document::object`].
    pub(crate) fn raw_dictionary(&mut self, id: ObjectId, what: &'static str) -> Result<RawDict> {
        let dict = match self.locate(id)? {
            Location::File(offset) => {
                let (found, dict) =
                    self.parse_at(offset, |parser| parser.raw_indirect_dictionary())?;
                expect_id(id, found, offset)?;
                dict
            }
            Location::Stream { stream, index } => {
                let object_stream = self.object_stream(stream)?;
                let data = object_stream.object_data(id.0, index)?;
                Parser::in_object_stream(data, stream)
                    .raw_dictionary()
                    .map_err(|error| object_stream.cut_short(error))?
            }
        };
        dict.ok_or_else(|| Error::wrong_type(what, "a dictionary", Some(id)))
    }

    fn load_from_file(&mut self, id: ObjectId, offset: u64) -> Result<Object> {
        let found = self.indirect_object_at(offset)?;
        expect_id(id, found.id, offset)?;
        match (found.object, found.stream_data) {
            (Object::Dictionary(dict), Some(data_offset)) => {
                let length = match dict.at(b"Length") {
                    Ok(Object::Integer(length)) => *length,
                    Ok(Object::Reference(length_id)) => match self.object(*length_id)? {
                        Object::Integer(length) => length,
                        _ => {
                            return Err(Error::wrong_type(
                                "a stream /Length",
                                "an integer",
                                Some(*length_id),
                            ));
                        }
                    },
                    _ => {
                        return Err(Error::wrong_type(
                            "a stream /Length",
                            "an integer",
                            Some(id),
                        ));
                    }
                };
                let content = self.stream_data(id.0, data_offset, length)?;
                let mut stream = Stream::new(dict, content);
                stream.start_position = usize::try_from(data_offset).ok();
                Ok(Object::Stream(stream.with_compression(false)))
            }
            (object, _) => Ok(object),
        }
    }

    fn load_from_stream(&mut self, number: u32, stream: u32, index: u32) -> Result<Object> {
        let object_stream = self.object_stream(stream)?;
        let data = object_stream.object_data(number, index)?;
        let object = Parser::in_object_stream(data, stream)
            .object()
            .map_err(|error| object_stream.cut_short(error))?;
        if matches!(object, Object::Stream(_)) {
            return Err(object_stream.bad("holds a stream"));
        }
        Ok(object)
    }

    fn object_stream(&mut self, number: u32) -> Result<Rc<ObjectStream>> {
        if let Some(cached) = &self.object_stream
            && cached.number == number
        {
            return Ok(Rc::clone(cached));
        }
        let bad = |reason| Error::BadObjectStream {
            object: number,
            reason,
        };
        if !matches!(self.entries.get(number), Some(XrefEntry::InFile { .. })) {
            return Err(bad("is not an object stored in the file"));
        }
        // The raw data is no longer needed once decoded: taken, never cached.
        let Object::Stream(stream) = self.take_object((number, 0))? else {
            return Err(bad("is not a stream"));
        };
        let dict = &stream.dict;
        let count = match dict.at(b"N") {
            Ok(Object::Integer(count)) => {
                usize::try_from(*count).map_err(|_| bad("negative /N"))?
            }
            _ => return Err(bad("/N missing or not an integer")),
        };
        let first = match dict.at(b"First") {
            Ok(Object::Integer(first)) => {
                usize::try_from(*first).map_err(|_| bad("negative /First"))?
            }
            _ => return Err(bad("/First missing or not an integer")),
        };
        let data = filter::decode(number, dict, stream.content)?;
        let header = data
            .get(..first)
            .ok_or_else(|| bad("/First beyond the data"))?;
        // Each pair takes at least four bytes ("1 0 "), which bounds /N by the data.
        if count > header.len() / 2 + 1 {
            return Err(bad("/N larger than the header can hold"));
        }
        let mut parser = Parser::in_object_stream(header, number);
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let object = parser
                .unsigned("an object number")
                .map_err(|_| bad("malformed header"))?;
            let offset = parser
                .unsigned("an offset")
                .map_err(|_| bad("malformed header"))?;
            let object = u32::try_from(object).map_err(|_| bad("object number beyond 2^32"))?;
            let offset = usize::try_from(offset).map_err(|_| bad("offset out of range"))?;
            self.highest = self.highest.max(object);
            pairs.push((object, offset));
        }
        let object_stream = Rc::new(ObjectStream {
            number,
            data,
            first,
            pairs,
        });
        self.object_stream = Some(Rc::clone(&object_stream));
        Ok(object_stream)
    }

    /// Parses the indirect object at `offset`, reading a window that grows until the
    /// object fits.
    fn indirect_object_at(&mut self, offset: u64) -> Result<IndirectObject> {
        self.parse_at(offset, |parser| parser.indirect_object())
    }

    fn parse_at<T>(
        &mut self,
        offset: u64,
        parse: impl Fn(&mut Parser<'_>) -> Result<T>,
    ) -> Result<T> {
        if offset >= self.file_len {
            return Err(Error::OutOfBounds {
                what: "an object",
                offset,
                file_len: self.file_len,
            });
        }
        let mut window = FIRST_WINDOW;
        let mut buffer = std::mem::take(&mut self.window);
        let result = loop {
            let len = window.min(self.file_len - offset);
            if let Err(error) = read_exact_to_vec(&mut self.source, offset, len, &mut buffer) {
                break Err(error);
            }
            let complete = offset + len == self.file_len;
            let mut parser = Parser::new(&buffer, offset, complete);
            match parse(&mut parser) {
                Err(Error::UnexpectedEof { .. }) if !complete && window < MAX_OBJECT_LEN => {
                    window = window.saturating_mul(4).min(MAX_OBJECT_LEN);
                }
                Err(Error::UnexpectedEof { .. }) if !complete => {
                    break Err(Error::ObjectTooLarge {
                        offset,
                        limit: MAX_OBJECT_LEN,
                    });
                }
                other => break other,
            }
        };
        // Only a first-sized window is kept: a large object's memory goes with it.
        if buffer.capacity() as u64 <= FIRST_WINDOW {
            self.window = buffer;
        }
        result
    }

    /// Reads the bytes at `offset` into `buffer`, as many as it holds or the file has left
    /// (`offset` is at most the file's length).
    fn read_up_to<'b>(&mut self, offset: u64, buffer: &'b mut [u8]) -> Result<&'b [u8]> {
        let len = (self.file_len.saturating_sub(offset)).min(buffer.len() as u64);
        read_exact_into(&mut self.source, offset, buffer, len)
    }

    /// Reads `length` bytes of stream data at `offset` and checks that `endstream`
    /// follows them, so that a lying `/Length` is caught.
    fn stream_data(&mut self, object: u32, offset: u64, length: i64) -> Result<Vec<u8>> {
        let bad_length = Error::BadStreamLength {
            object,
            offset,
            length,
        };
        let Ok(len) = u64::try_from(length) else {
            return Err(bad_length);
        };
        if len > MAX_STREAM_LEN {
            return Err(Error::StreamTooLarge {
                object,
                limit: MAX_STREAM_LEN,
            });
        }
        let end = offset.saturating_add(len);
        if end > self.file_len {
            return Err(Error::OutOfBounds {
                what: "stream data",
                offset: end,
                file_len: self.file_len,
            });
        }
        let data = read_exact_at(&mut self.source, offset, len)?;
        let mut buffer = [0u8; 64];
        let after = self.read_up_to(end, &mut buffer)?;
        let keyword = after.iter().position(|&byte| !lexer::is_whitespace(byte));
        match keyword.and_then(|start| after.get(start..)) {
            Some(rest) if rest.starts_with(b"endstream") => Ok(data),
            _ => Err(bad_length),
        }
    }
}

/// `object`, object `id`, if it is a dictionary (a stream's does not count).
/// Checks that the object found at `offset` is `expected`, as its cross-reference entry
/// says.
fn expect_id(expected: ObjectId, found: ObjectId, offset: u64) -> Result<()> {
    if found != expected {
        return Err(Error::ObjectMismatch {
            expected,
            found,
            offset,
        });
    }
    Ok(())
}

fn into_dictionary(object: Object, id: ObjectId, what: &'static str) -> Result<Dictionary> {
    match object {
        Object::Dictionary(dict) => Ok(dict),
        _ => Err(Error::wrong_type(what, "a dictionary", Some(id))),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Finds the offset after the last `startxref` keyword of the file's tail.
fn find_startxref(tail: &[u8]) -> Option<u64> {
    let keyword = b"startxref";
    let at = tail
        .windows(keyword.len())
        .rposition(|window| window == keyword)?;
    let rest = tail.get(at + keyword.len()..)?;
    let mut parser = Parser::new(rest, 0, true);
    parser.unsigned("an offset").ok()
}

/// Reads exactly `len` bytes at `offset`.
fn read_exact_at<R: Read + Seek>(source: &mut R, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    read_exact_to_vec(source, offset, len, &mut buffer)?;
    Ok(buffer)
}

/// Reads exactly `len` bytes at `offset` into `buffer`, replacing what it held (and
/// keeping its allocation when it is large enough).
fn read_exact_to_vec<R: Read + Seek>(
    source: &mut R,
    offset: u64,
    len: u64,
    buffer: &mut Vec<u8>,
) -> Result<()> {
    let len_usize = usize::try_from(len)
        .map_err(|_| Error::Unreachable("reads are bounded by the limits, far below usize::MAX"))?;
    buffer.clear();
    buffer.resize(len_usize, 0);
    read_exact_into(source, offset, buffer, len)?;
    Ok(())
}

/// Reads exactly `len` bytes at `offset` into the start of `buffer`, which must be at
/// least that long; returns them.
fn read_exact_into<'b, R: Read + Seek>(
    source: &mut R,
    offset: u64,
    buffer: &'b mut [u8],
    len: u64,
) -> Result<&'b [u8]> {
    let slot = usize::try_from(len)
        .ok()
        .and_then(|len| buffer.get_mut(..len))
        .ok_or(Error::Unreachable("the caller's buffer holds len bytes"))?;
    source
        .seek(SeekFrom::Start(offset))
        .map_err(Error::io("reading the input"))?;
    let mut filled = 0;
    while filled < slot.len() {
        let rest = slot.get_mut(filled..).unwrap_or_default();
        match source.read(rest) {
            Ok(0) => {
                return Err(Error::UnexpectedEof {
                    offset: offset + filled as u64,
                });
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Error::io("reading the input")(error)),
        }
    }
    Ok(slot)
}

#[cfg(test)]
mod tests;
