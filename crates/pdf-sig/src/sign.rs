//! The signing flow: plan and lay out the increment, then stream the input into the
//! output while hashing it (read once), append the increment, and later patch only the
//! `/Contents` placeholder. Files go through a temporary file beside the target that is
//! fsynced and renamed; the input is never opened for writing.

use std::fs::{self, File, OpenOptions};
use std::io::{Cursor, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::increment::plan;
use crate::layout::{Base, ByteRange, Layout, lay_out};
use crate::options::SignOptions;
use crate::reader::Document;
use crate::{ContainerSpec, DigestAlgorithm, SignatureContainer, Warning};

/// The largest buffer the input is copied through: large enough to keep system calls
/// few, small enough to keep memory flat. A smaller input gets a buffer its size: zeroing
/// a whole mebibyte for a one-page PDF cost more than the rest of its preparation.
const COPY_BUFFER: usize = 1024 * 1024;

/// Inputs up to this size are read whole, in one system call, and signed from memory
/// rather than through a seek and a read per object: no more memory than the copy
/// buffer takes for larger files.
const READ_WHOLE: u64 = COPY_BUFFER as u64;

/// What [`prepare`] found and computed: the digest to sign and where it came from.
#[derive(Debug, Clone)]
pub struct PreparedSignature {
    digest: Vec<u8>,
    digest_algorithm: DigestAlgorithm,
    byte_range: ByteRange,
    capacity: usize,
    field_name: String,
    warnings: Vec<Warning>,
    contents_offset: u64,
}

impl PreparedSignature {
    /// The digest over the `/ByteRange` bytes, for the signature container to sign.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// The algorithm of [`PreparedSignature::digest`].
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    /// The two byte ranges the digest covers.
    pub fn byte_range(&self) -> ByteRange {
        self.byte_range
    }

    /// How many bytes of DER the `/Contents` placeholder holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The fully qualified name of the signature field.
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// Things the caller should know, such as characters a visible appearance could
    /// not show.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    fn report(&self) -> SignReport {
        SignReport {
            field_name: self.field_name.clone(),
            byte_range: self.byte_range,
            warnings: self.warnings.clone(),
        }
    }

    /// Checks that `container` fits the placeholder.
    fn check_fits(&self, container: &[u8]) -> Result<()> {
        if container.len() > self.capacity {
            return Err(Error::ContainerTooLarge {
                len: container.len(),
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Writes `container` as `/Contents` hex digits to `out`, positioned just after the
    /// placeholder's `<`; an error, and nothing written, if it does not fit.
    fn write_contents(&self, out: &mut impl Write, container: &[u8]) -> Result<()> {
        self.check_fits(container)?;
        // Written in as few pieces as a stack buffer allows: for a file, one system call
        // for any usual container.
        let mut hex = [0u8; HEX_BUFFER];
        for chunk in container.chunks(HEX_BUFFER / 2) {
            let len = 2 * chunk.len();
            let digits = hex.get_mut(..len).unwrap_or_default();
            push_hex(digits, chunk);
            out.write_all(digits)
                .map_err(Error::io("writing the signature container"))?;
        }
        Ok(())
    }
}

/// Fills `digits` (twice as long as `bytes`) with the uppercase hex digits of `bytes`.
fn push_hex(digits: &mut [u8], bytes: &[u8]) {
    for (pair, &byte) in digits.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
}

/// The stack buffer the container's hex digits are written through: room for a
/// container of 8 KiB, larger than a usual one (a chain of three RSA-2048 certificates
/// and a signature take under 3 KiB).
const HEX_BUFFER: usize = 16 * 1024;

/// What a finished signature reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignReport {
    /// The fully qualified name of the signed field.
    pub field_name: String,
    /// The two byte ranges the signature covers.
    pub byte_range: ByteRange,
    /// Things the caller should know, such as characters a visible appearance could
    /// not show.
    pub warnings: Vec<Warning>,
}

/// A signature prepared into a temporary file beside the target; [`PreparedFile::finish`]
/// embeds the container and renames the file into place. Dropping it unfinished removes
/// the temporary file.
#[derive(Debug)]
pub struct PreparedFile {
    temp: TempFile,
    target: PathBuf,
    prepared: PreparedSignature,
}

impl PreparedFile {
    /// The digest to sign.
    pub fn digest(&self) -> &[u8] {
        &self.prepared.digest
    }

    /// Everything else about the prepared signature.
    pub fn details(&self) -> &PreparedSignature {
        &self.prepared
    }

    /// Writes `container` (DER) into `/Contents`, fsyncs, and renames the temporary
    /// file to the target.
    ///
    /// # Errors
    ///
    /// [`Error::ContainerTooLarge`] when `container` does not fit the placeholder, and
    /// I/O errors. On error the temporary file is removed and the target untouched.
    pub fn finish(self, container: &[u8]) -> Result<SignReport> {
        self.embed(container)?.commit()
    }

    /// Writes `container` (DER) into `/Contents` of the temporary file and stops short
    /// of making it durable: [`PendingFile::commit`] fsyncs and renames it, perhaps on
    /// another thread, so that signing the next file need not wait for the disk.
    ///
    /// # Errors
    ///
    /// As [`PreparedFile::finish`]; on error the temporary file is removed.
    pub fn embed(mut self, container: &[u8]) -> Result<PendingFile> {
        let file = &mut self.temp.file;
        file.seek(SeekFrom::Start(self.prepared.contents_offset + 1))
            .map_err(Error::io("writing the signature container"))?;
        self.prepared.write_contents(file, container)?;
        Ok(PendingFile {
            temp: self.temp,
            target: self.target,
            report: self.prepared.report(),
        })
    }
}

/// A signed file, complete in its temporary file beside the target but neither synced
/// nor in place: [`PendingFile::commit`] does both. Dropping it uncommitted removes the
/// temporary file, so the target never appears.
#[derive(Debug)]
pub struct PendingFile {
    temp: TempFile,
    target: PathBuf,
    report: SignReport,
}

impl PendingFile {
    /// Where [`PendingFile::commit`] puts the file.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs the temporary file and renames it to the target.
    ///
    /// # Errors
    ///
    /// I/O errors; the temporary file is then removed and the target untouched.
    pub fn commit(mut self) -> Result<SignReport> {
        self.temp
            .file
            .sync_all()
            .map_err(Error::io("syncing the output"))?;
        fs::rename(&self.temp.path, &self.target)
            .map_err(Error::io("renaming the temporary file to the output"))?;
        self.temp.renamed = true;
        Ok(self.report)
    }
}

/// A signature prepared into a caller's writer; [`PreparedStream::finish`] patches
/// `/Contents` and gives the writer back.
#[derive(Debug)]
pub struct PreparedStream<W> {
    output: W,
    prepared: PreparedSignature,
}

impl<W: Write + Seek> PreparedStream<W> {
    /// The digest to sign.
    pub fn digest(&self) -> &[u8] {
        &self.prepared.digest
    }

    /// Everything else about the prepared signature.
    pub fn details(&self) -> &PreparedSignature {
        &self.prepared
    }

    /// Writes `container` (DER) into `/Contents` and returns the writer with a report.
    ///
    /// # Errors
    ///
    /// [`Error::ContainerTooLarge`] when `container` does not fit the placeholder, and
    /// I/O errors from the writer.
    pub fn finish(mut self, container: &[u8]) -> Result<(W, SignReport)> {
        self.output
            .seek(SeekFrom::Start(self.prepared.contents_offset + 1))
            .map_err(Error::io("writing the signature container"))?;
        self.prepared.write_contents(&mut self.output, container)?;
        self.output
            .flush()
            .map_err(Error::io("writing the signature container"))?;
        let report = self.prepared.report();
        Ok((self.output, report))
    }
}

/// A signature of a PDF in memory, prepared by [`prepare_bytes`]: the digest to sign;
/// nothing is written until [`PreparedBytes::finish`] has the container, and then the
/// signed PDF is built in one buffer of its exact size.
#[derive(Debug)]
pub struct PreparedBytes<'a> {
    input: &'a [u8],
    layout: Layout,
    prepared: PreparedSignature,
}

impl PreparedBytes<'_> {
    /// The digest to sign.
    pub fn digest(&self) -> &[u8] {
        &self.prepared.digest
    }

    /// Everything else about the prepared signature.
    pub fn details(&self) -> &PreparedSignature {
        &self.prepared
    }

    /// The signed PDF: the input, then the increment with `container` (DER) in
    /// `/Contents`.
    ///
    /// # Errors
    ///
    /// [`Error::ContainerTooLarge`] when `container` does not fit the placeholder.
    pub fn finish(self, container: &[u8]) -> Result<(Vec<u8>, SignReport)> {
        self.prepared.check_fits(container)?;
        let layout = &self.layout;
        let mut out = Vec::with_capacity(self.input.len() + layout.bytes.len() + layout.hex_len);
        out.extend_from_slice(self.input);
        out.extend_from_slice(layout.before());
        let digits_at = out.len();
        out.resize(digits_at + layout.hex_len, b'0');
        let digits = out
            .get_mut(digits_at..digits_at + 2 * container.len())
            .ok_or(Error::Unreachable("the container fits the placeholder"))?;
        push_hex(digits, container);
        out.extend_from_slice(layout.after());
        Ok((out, self.prepared.report()))
    }
}

/// Prepares a signature of `input`, a whole PDF in memory: [`prepare_stream`] without
/// the writer. The input is read and hashed in place, and the output is written once,
/// by [`PreparedBytes::finish`].
///
/// # Errors
///
/// As [`prepare_stream`], less the writer's.
pub fn prepare_bytes<'a>(
    input: &'a [u8],
    options: &SignOptions,
    spec: ContainerSpec,
) -> Result<PreparedBytes<'a>> {
    let planned = Planned::new(Cursor::new(input), options, spec)?;
    let mut hasher = Hasher::new(spec.digest_algorithm);
    hasher.update(input);
    let (prepared, layout) = planned.describe(hasher, 0);
    Ok(PreparedBytes {
        input,
        layout,
        prepared,
    })
}

/// Prepares a signature of the PDF at `input` into a temporary file beside `output`:
/// the input bytes verbatim, then the increment with a `/Contents` placeholder sized for
/// `spec`. Returns the handle holding the digest to sign.
///
/// # Errors
///
/// [`Error::OutputIsInput`] when `output` is the input file and
/// [`SignOptions`]'s in-place was not asked for; every reading error of the input (see
/// [`Error`]), [`Error::Encrypted`], [`Error::CertifiedNoChanges`], field errors, and
/// I/O errors. Nothing is left behind on error.
pub fn prepare(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &SignOptions,
    spec: ContainerSpec,
) -> Result<PreparedFile> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let source = File::open(input).map_err(Error::io("opening the input"))?;
    let metadata = source.metadata().map_err(Error::io("reading the input"))?;
    if !options.in_place && is_same_file(input, &metadata, output) {
        return Err(Error::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    match read_whole_if_small(&source, metadata.len())? {
        Some(bytes) => prepare_file(Cursor::new(bytes), output, options, spec),
        None => prepare_file(source, output, options, spec),
    }
}

/// The whole file if it holds at most [`READ_WHOLE`] bytes (read once: the reader and
/// the copy then work on that one snapshot), else `None`: it is streamed.
fn read_whole_if_small(file: &File, len: u64) -> Result<Option<Vec<u8>>> {
    if len > READ_WHOLE {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(READ_WHOLE + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("reading the input"))?;
    // A file that grew past the limit since it was measured is streamed after all.
    Ok((bytes.len() as u64 <= READ_WHOLE).then_some(bytes))
}

/// [`prepare`] once the input is open: plans, then writes into a temporary file beside
/// `output`.
fn prepare_file<R: Read + Seek>(
    input: R,
    output: &Path,
    options: &SignOptions,
    spec: ContainerSpec,
) -> Result<PreparedFile> {
    let planned = Planned::new(input, options, spec)?;
    let mut temp = TempFile::beside(output)?;
    let prepared = planned.write_to(&mut temp.file, 0)?;
    Ok(PreparedFile {
        temp,
        target: output.to_path_buf(),
        prepared,
    })
}

/// Prepares a signature of `input` into `output`, a writer positioned where the signed
/// PDF is to start. The file-based [`prepare`] is this plus a temporary file and rename.
///
/// # Errors
///
/// As [`prepare`], less the file-system ones; I/O errors from `output`.
pub fn prepare_stream<R: Read + Seek, W: Write + Seek>(
    input: R,
    mut output: W,
    options: &SignOptions,
    spec: ContainerSpec,
) -> Result<PreparedStream<W>> {
    let start = output
        .stream_position()
        .map_err(Error::io("writing the output"))?;
    let planned = Planned::new(input, options, spec)?;
    let prepared = planned.write_to(&mut output, start)?;
    Ok(PreparedStream { output, prepared })
}

/// Signs the PDF at `input` into `output` in one call: [`prepare`], then `container`
/// signs the digest, then [`PreparedFile::finish`].
///
/// # Errors
///
/// As [`prepare`] and [`PreparedFile::finish`]; [`Error::Container`] when the container
/// fails.
pub fn sign(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &SignOptions,
    container: &dyn SignatureContainer,
) -> Result<SignReport> {
    let prepared = prepare(input, output, options, ContainerSpec::of(container))?;
    let der = container
        .sign_digest(prepared.digest())
        .map_err(Error::Container)?;
    prepared.finish(&der)
}

/// The increment laid out, before anything is written.
struct Planned<R> {
    input: R,
    file_len: u64,
    layout: Layout,
    spec: ContainerSpec,
    field_name: String,
    warnings: Vec<Warning>,
}

impl<R: Read + Seek> Planned<R> {
    fn new(input: R, options: &SignOptions, spec: ContainerSpec) -> Result<Self> {
        let mut doc = Document::open(input)?;
        let time = options.signing_time.unwrap_or_else(SystemTime::now);
        let increment = plan(&mut doc, options, time)?;
        let (startxref, kind, file_len) = (doc.startxref(), doc.xref_kind(), doc.file_len());
        let size = doc.trailer_size();
        let (mut input, trailer) = doc.into_source_and_trailer();
        let mut last = [0u8; 1];
        input
            .seek(SeekFrom::Start(file_len.saturating_sub(1)))
            .map_err(Error::io("reading the input"))?;
        input
            .read_exact(&mut last)
            .map_err(Error::io("reading the input"))?;
        let ids = trailer.get(b"ID")?;
        let first_id = match &ids {
            Some(lopdf::Object::Array(ids)) => ids
                .first()
                .filter(|first| matches!(first, lopdf::Object::String(..))),
            _ => None,
        };
        let base = Base {
            file_len,
            ends_with_eol: matches!(last[0], b'\n' | b'\r'),
            startxref,
            kind,
            trailer: &trailer,
            size,
            first_id,
        };
        let new_id = new_document_id(first_id, file_len, time, &increment.field_name);
        let layout = lay_out(&base, &increment, spec.max_len, new_id)?;
        Ok(Planned {
            input,
            file_len,
            layout,
            spec,
            field_name: increment.field_name,
            warnings: increment.warnings,
        })
    }

    /// Copies and hashes the input in one pass, then writes and hashes the increment
    /// (but for the `/Contents` hex digits, which it writes as zeros). `start` is where
    /// the output begins in `out`. A small input and the increment go out in one
    /// vectored write: for a file, one system call.
    fn write_to<W: Write>(mut self, out: &mut W, start: u64) -> Result<PreparedSignature> {
        let mut hasher = Hasher::new(self.spec.digest_algorithm);
        self.input
            .seek(SeekFrom::Start(0))
            .map_err(Error::io("reading the input"))?;
        let mut small = [0u8; SMALL_COPY_BUFFER];
        let mut large = Vec::new();
        let buffer: &mut [u8] = match usize::try_from(self.file_len) {
            Ok(len) if len <= SMALL_COPY_BUFFER => small.get_mut(..len).unwrap_or_default(),
            _ => {
                large.resize(COPY_BUFFER, 0);
                &mut large
            }
        };
        let mut left = self.file_len;
        let mut last_len = 0;
        while left > 0 {
            if last_len > 0 {
                // Not the last chunk after all: out it goes.
                out.write_all(buffer.get(..last_len).unwrap_or_default())
                    .map_err(Error::io("writing the output"))?;
            }
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let chunk = buffer
                .get_mut(..want)
                .ok_or(Error::Unreachable("want is at most the buffer's length"))?;
            let read = self
                .input
                .read(chunk)
                .map_err(Error::io("reading the input"))?;
            if read == 0 {
                return Err(Error::Io {
                    during: "reading the input",
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the input shrank while being signed",
                    ),
                });
            }
            let data = chunk.get(..read).ok_or(Error::Unreachable(
                "read returns at most the chunk's length",
            ))?;
            hasher.update(data);
            last_len = read;
            left -= read as u64;
        }
        let layout = &self.layout;
        let last = buffer.get(..last_len).unwrap_or_default();
        let zeros = (0..layout.hex_len.div_ceil(ZEROS.len())).map(|index| {
            let len = (layout.hex_len - index * ZEROS.len()).min(ZEROS.len());
            IoSlice::new(ZEROS.get(..len).unwrap_or_default())
        });
        let mut slices: Vec<IoSlice<'_>> = [IoSlice::new(last), IoSlice::new(layout.before())]
            .into_iter()
            .chain(zeros)
            .chain([IoSlice::new(layout.after())])
            .collect();
        write_all_vectored(out, &mut slices).map_err(Error::io("writing the output"))?;
        out.flush().map_err(Error::io("writing the output"))?;
        Ok(self.describe(hasher, start).0)
    }

    /// Hashes the increment's covered bytes after the input's (already in `hasher`) and
    /// describes the signature; `start` is where the output begins in its writer. The
    /// layout comes back too.
    fn describe(self, mut hasher: Hasher, start: u64) -> (PreparedSignature, Layout) {
        for covered in self.layout.covered() {
            hasher.update(covered);
        }
        let prepared = PreparedSignature {
            digest: hasher.finalize(),
            digest_algorithm: self.spec.digest_algorithm,
            byte_range: self.layout.byte_range,
            capacity: self.spec.max_len,
            field_name: self.field_name,
            warnings: self.warnings,
            contents_offset: start + self.file_len + self.layout.gap_at as u64 - 1,
        };
        (prepared, self.layout)
    }
}

/// Each byte's two uppercase hex digits: one table look-up per byte of the container.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0x0F]];
        byte += 1;
    }
    pairs
};

/// ASCII zeros, the placeholder's hex digits, written from here in slices.
static ZEROS: [u8; 4096] = [b'0'; 4096];

/// Inputs up to this size are copied through a buffer on the stack.
const SMALL_COPY_BUFFER: usize = 4096;

/// Writes every slice whole, as few system calls as the writer allows.
fn write_all_vectored<W: Write>(
    out: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write the whole output",
                ));
            }
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The digest of the bytes `range` covers in `input`: what a verifier compares with the
/// digest a signature signed. Read through a buffer of at most 1 MiB, so
/// memory stays flat for any file size.
///
/// # Errors
///
/// I/O errors, among them an unexpected end of file when `range` reaches past it.
pub fn digest_byte_range<R: Read + Seek>(
    input: &mut R,
    range: ByteRange,
    algorithm: DigestAlgorithm,
) -> Result<Vec<u8>> {
    let [first, second] = range.ranges();
    let longest = (first.end - first.start).max(second.end - second.start);
    let mut buffer =
        vec![0u8; usize::try_from(longest).map_or(COPY_BUFFER, |n| n.min(COPY_BUFFER))];
    let mut hasher = Hasher::new(algorithm);
    for covered in [first, second] {
        input
            .seek(SeekFrom::Start(covered.start))
            .map_err(Error::io("reading the input"))?;
        let mut left = covered.end - covered.start;
        while left > 0 {
            let want = usize::try_from(left).map_or(buffer.len(), |n| n.min(buffer.len()));
            let chunk = buffer
                .get_mut(..want)
                .ok_or(Error::Unreachable("want is at most the buffer's length"))?;
            input
                .read_exact(chunk)
                .map_err(Error::io("reading the input"))?;
            hasher.update(chunk);
            left -= want as u64;
        }
    }
    Ok(hasher.finalize())
}

/// The second `/ID` element: new for every revision (14.4), derived from what makes this
/// one unique rather than from a random source, so that equal inputs give equal outputs.
fn new_document_id(
    first_id: Option<&lopdf::Object>,
    file_len: u64,
    time: SystemTime,
    field: &str,
) -> [u8; 16] {
    let mut hasher = sha2::Sha256::new();
    if let Some(lopdf::Object::String(first, _)) = first_id {
        hasher.update(first);
    }
    hasher.update(file_len.to_be_bytes());
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    hasher.update(nanos.to_be_bytes());
    hasher.update(field.as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 16];
    for (slot, byte) in id.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    id
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(hasher) => hasher.update(data),
            Hasher::Sha384(hasher) => hasher.update(data),
            Hasher::Sha512(hasher) => hasher.update(data),
        }
    }

    fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha384(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha512(hasher) => hasher.finalize().to_vec(),
        }
    }
}

/// A temporary file beside the target, removed on drop unless it was renamed.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn beside(target: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = directory.join(format!(
                ".{name}.pdfsign-{}-{counter}.tmp",
                std::process::id()
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        renamed: false,
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1
                }
                Err(error) => {
                    return Err(Error::Io {
                        during: "creating the temporary output file",
                        source: error,
                    });
                }
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Nothing to report to: the error that dropped us is already on its way.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether `output` names the input file, whose metadata is `input` (hard links
/// included).
fn is_same_file(input_path: &Path, input: &fs::Metadata, output: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = input_path;
        let Ok(output) = fs::metadata(output) else {
            return false;
        };
        input.dev() == output.dev() && input.ino() == output.ino()
    }
    #[cfg(not(unix))]
    {
        // Without inode numbers, compare where the paths lead.
        let _ = input;
        match (fs::canonicalize(input_path), fs::canonicalize(output)) {
            (Ok(input), Ok(output)) => input == output,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most three bytes of the first slice per call, and is interrupted now and
    /// then: what a slow pipe or a signal does to a writer.
    struct Trickle {
        written: Vec<u8>,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(4) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let Some(first) = slices.iter().find(|slice| !slice.is_empty()) else {
                return Ok(0);
            };
            let take = first.len().min(3);
            self.written.extend_from_slice(&first[..take]);
            Ok(take)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_survive_short_and_interrupted_writes() {
        let parts: [&[u8]; 4] = [b"", b"%PDF-1.7 ", &ZEROS[..10], b" trailer"];
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
        let mut out = Trickle {
            written: Vec::new(),
            calls: 0,
        };
        write_all_vectored(&mut out, &mut slices).unwrap();
        assert_eq!(out.written, b"%PDF-1.7 0000000000 trailer");
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut slices = [IoSlice::new(b"data")];
        let error = write_all_vectored(&mut Full, &mut slices).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
    }
}
