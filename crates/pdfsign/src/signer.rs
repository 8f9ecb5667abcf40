//! [`Signer`]: a key plus options, shared by every thread that signs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms_sign::{CmsSigner, SignatureAlgorithm, SignatureScheme, SignedDataBuilder};
use der::Decode;
use pdf_sig::{ContainerSpec, SubFilter};

use crate::error::Result;
use crate::glue::Pkcs11Key;
use crate::options::SignOptions;
use crate::pin::Pin;
use crate::uri::Pkcs11Uri;

/// Signs PDFs with one key and one set of options. `Clone + Send + Sync` and cheap to
/// clone: build it once, share it with every thread.
///
/// ```no_run
/// use pdfsign::{Pin, SignOptions, Signer};
///
/// let uri = "pkcs11:token=pdfsign-demo;object=p256?module-path=/usr/lib/softhsm/libsofthsm2.so";
/// let signer = Signer::from_uri(&uri.parse()?, Some(Pin::new("user-1234")), &SignOptions::default())?;
/// std::thread::scope(|scope| {
///     for i in 0..4 {
///         let signer = signer.clone();
///         scope.spawn(move || signer.sign_file(format!("in{i}.pdf"), format!("out{i}.pdf")));
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

struct Inner {
    /// The CMS builder over the key, made once: the certificates parsed and the parts
    /// every signature shares encoded at start, the signing time given per signature.
    builder: SignedDataBuilder,
    /// The builder's key, if it is a token's: signatures can then be started early.
    token_key: Option<Arc<Pkcs11Key>>,
    options: SignOptions,
    /// The `pdf-sig` options, built and checked once (`/Name` defaulting to the
    /// certificate's common name); each signature sets its own time on a copy.
    pdf: pdf_sig::SignOptions,
    /// `/Contents` capacity in bytes of DER: the builder's bound, which holds for any
    /// signing time.
    capacity: usize,
    /// What the key is, for messages: a URI without PIN, or "software key".
    description: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.inner.description)
            .field("algorithm", &self.inner.builder.algorithm())
            .finish_non_exhaustive()
    }
}

/// What one signature reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignReport {
    /// The signature field's fully qualified name.
    pub field_name: String,
    /// The `/ByteRange` the signature covers.
    pub byte_range: [u64; 4],
    /// The claimed signing time (`/M`).
    pub signing_time: SystemTime,
    /// Things worth knowing, such as characters a visible appearance could not show.
    pub warnings: Vec<String>,
}

impl Signer {
    /// A signer over any key that implements `cms-sign`'s key trait (a token's key, a
    /// [`SoftwareKey`](crate::SoftwareKey), a remote service). `description` names it in
    /// messages.
    ///
    /// Makes one signature to check that the key and its certificate belong together
    /// (see [`SignOptionsBuilder::verify_each_signature`](crate::SignOptionsBuilder::verify_each_signature)).
    ///
    /// # Errors
    /// [`Error::Cms`](crate::Error::Cms) when the key cannot make the signature the options ask for (PSS on
    /// an EC key, a modulus too short for the digest, a mechanism the key does not allow),
    /// its certificate does not hold its public key, or its probe signature does not
    /// verify with that key; the key's own error when it cannot sign.
    pub fn from_key(
        key: Arc<dyn CmsSigner>,
        options: &SignOptions,
        description: &str,
    ) -> Result<Signer> {
        Signer::build(key, None, options, description)
    }

    /// As [`Signer::from_key`], for a key on a token. Knowing it is one, the signer can
    /// start a signature on the token before the document is laid out
    /// ([`Signer::sign_bytes`] does), which keeps threads from meeting in the token's
    /// `C_SignInit`; a PDF refused after the start costs the session it waited on. The
    /// same key given to [`Signer::from_key`] is never started early.
    ///
    /// # Errors
    /// As [`Signer::from_key`].
    pub fn from_token_key(
        key: Pkcs11Key,
        options: &SignOptions,
        description: &str,
    ) -> Result<Signer> {
        let key = Arc::new(key);
        Signer::build(key.clone(), Some(key), options, description)
    }

    fn build(
        key: Arc<dyn CmsSigner>,
        token_key: Option<Arc<Pkcs11Key>>,
        options: &SignOptions,
        description: &str,
    ) -> Result<Signer> {
        let key_algorithm = key.key_algorithm();
        let mut algorithm = SignatureAlgorithm::default_for(key_algorithm, options.digest.cms());
        if options.pss {
            algorithm.scheme = SignatureScheme::RsaPss;
        }
        let pdf = options.pdf_options(common_name(key.certificate()).as_deref())?;
        let mut builder =
            SignedDataBuilder::new(key, algorithm, cms_sub_filter(options, SystemTime::now()))?;
        let capacity = builder.size_bound()?;
        // One signature now, checked against the certificate's public key: a key and a
        // certificate that do not belong together (or a token that signs wrongly) are
        // found before the first document, so later signatures need not each be checked.
        builder
            .verify_after_signing(true)
            .sign(&vec![0u8; options.digest.cms().output_len()])?;
        builder.verify_after_signing(options.verify_each_signature);
        Ok(Signer {
            inner: Arc::new(Inner {
                builder,
                token_key,
                options: options.clone(),
                pdf,
                capacity,
                description: description.to_owned(),
            }),
        })
    }

    /// A signer over the token key a PKCS#11 URI names ([`Pkcs11Key::open`]): the PIN is
    /// `pin`, else the URI's `pin-value` or `pin-source`. Logs in once; the signer keeps
    /// the login (shared by all clones and threads) until the last clone is dropped.
    ///
    /// # Errors
    /// Those of [`Pkcs11Key::open`] and [`Signer::from_key`].
    pub fn from_uri(uri: &Pkcs11Uri, pin: Option<Pin>, options: &SignOptions) -> Result<Signer> {
        let key = Pkcs11Key::open(uri, pin.as_ref(), None)?;
        drop(pin);
        Signer::from_token_key(key, options, &uri.to_string())
    }

    /// The signature algorithm (scheme and digest).
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.builder.algorithm()
    }

    /// The options every signature uses.
    pub fn options(&self) -> &SignOptions {
        &self.inner.options
    }

    /// The key, as `cms-sign` sees it.
    pub fn key(&self) -> &Arc<dyn CmsSigner> {
        self.inner.builder.key()
    }

    /// The signer's certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        self.key().certificate()
    }

    /// What the key is, for messages (a URI without its PIN, or "software key").
    pub fn description(&self) -> &str {
        &self.inner.description
    }

    /// Signs the PDF at `input` into `output`: output is written to a temporary file
    /// beside it, fsynced and renamed, so it appears whole or not at all. The input is
    /// never opened for writing.
    ///
    /// # Errors
    /// [`Error::Pdf`](crate::Error::Pdf) for an unreadable, encrypted or certified-no-changes input or an
    /// I/O failure, [`Error::Cms`](crate::Error::Cms) when the key fails. No output is left behind on error.
    pub fn sign_file(
        &self,
        input: impl AsRef<Path>,
        output: impl AsRef<Path>,
    ) -> Result<SignReport> {
        self.sign_file_pending(input, output)?.commit()
    }

    /// Signs like [`Signer::sign_file`] up to the last step: the signed file is complete
    /// in a temporary file beside `output`, and [`PendingFile::commit`] fsyncs and renames
    /// it. Committing on another thread lets this one sign the next file while the disk
    /// works; that is how `pdfsign batch` keeps the token busy.
    ///
    /// # Errors
    /// As [`Signer::sign_file`]; no output appears until the commit succeeds.
    pub fn sign_file_pending(
        &self,
        input: impl AsRef<Path>,
        output: impl AsRef<Path>,
    ) -> Result<PendingFile> {
        let prepared = self.prepare_file(input, output)?;
        let container = self.container(prepared.digest(), prepared.time)?;
        prepared.embed_container(&container)
    }

    /// Signs a PDF held in memory and returns the signed PDF.
    ///
    /// With a token key ([`Signer::from_uri`], [`Signer::from_token_key`]) the token's
    /// signature is started (`C_SignInit`) before the PDF is laid out, and finished
    /// (`C_Sign`) once the digest is known; a PDF refused in between costs the session
    /// the signature waited on (the pool closes it and opens another when needed).
    ///
    /// # Errors
    /// As [`Signer::sign_file`].
    pub fn sign_bytes(&self, pdf: &[u8]) -> Result<Vec<u8>> {
        let time = self.signing_time();
        let options = self.pdf_options(time);
        // A token key starts the signature first (`C_SignInit`), so that laying out the
        // PDF runs while the session waits rather than between two threads' calls into
        // the token: SoftHSM2, for one, takes its locks in `C_SignInit`, and threads
        // that do work just before it meet there more often (see ARCHITECTURE.md).
        // A PDF refused here costs the started signature's session.
        let started = self
            .inner
            .token_key
            .as_ref()
            .map(|key| key.start(self.algorithm()));
        let prepared = pdf_sig::prepare_bytes(pdf, &options, self.container_spec())?;
        let container = match &started {
            Some(key) => self
                .inner
                .builder
                .sign_at_using(key, prepared.digest(), time)?,
            None => self.container(prepared.digest(), time)?,
        };
        let (output, _report) = prepared.finish(&container)?;
        Ok(output)
    }

    /// Phase one of two: lays out the signature of `input` into a temporary file beside
    /// `output` and returns the digest to sign. Phase two is [`Signer::finish_file`] (this
    /// signer's key signs) or [`PreparedFile::finish_with_container`] (a container made
    /// elsewhere). Dropping the prepared file removes the temporary file.
    ///
    /// # Errors
    /// [`Error::Pdf`](crate::Error::Pdf) as for [`Signer::sign_file`].
    pub fn prepare_file(
        &self,
        input: impl AsRef<Path>,
        output: impl AsRef<Path>,
    ) -> Result<PreparedFile> {
        let time = self.signing_time();
        let options = self.pdf_options(time);
        let file = pdf_sig::prepare(input, output, &options, self.container_spec())?;
        Ok(PreparedFile { file, time })
    }

    /// Phase two: signs the prepared digest with this signer's key and writes the
    /// signature into place.
    ///
    /// # Errors
    /// [`Error::Cms`](crate::Error::Cms) when the key fails, [`Error::Pdf`](crate::Error::Pdf) for an I/O failure; the
    /// temporary file is removed and no output appears.
    pub fn finish_file(&self, prepared: PreparedFile) -> Result<SignReport> {
        let container = self.container(prepared.digest(), prepared.time)?;
        prepared.finish_with_container(&container)
    }

    /// The CMS `SignedData` (DER) over `digest`, the digest of a PDF's `/ByteRange`, as
    /// this signer makes it for a signature claimed at `time`.
    ///
    /// # Errors
    /// [`Error::Cms`](crate::Error::Cms) when the key fails or the digest has the wrong length.
    pub fn container(&self, digest: &[u8], time: SystemTime) -> Result<Vec<u8>> {
        Ok(self.inner.builder.sign_at(digest, time)?)
    }

    fn container_spec(&self) -> ContainerSpec {
        ContainerSpec::new(self.inner.options.digest.pdf(), self.inner.capacity)
    }

    /// The claimed time: the options' or now, in whole seconds (what `/M` and a CMS
    /// signing-time can hold, so that both say the same).
    fn signing_time(&self) -> SystemTime {
        let time = self
            .inner
            .options
            .signing_time
            .unwrap_or_else(SystemTime::now);
        let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn pdf_options(&self, time: SystemTime) -> pdf_sig::SignOptions {
        self.inner.pdf.clone().with_signing_time(time)
    }
}

/// A signature laid out in a temporary file, waiting for its container.
#[derive(Debug)]
pub struct PreparedFile {
    file: pdf_sig::PreparedFile,
    time: SystemTime,
}

impl PreparedFile {
    /// The digest of the `/ByteRange` bytes, to be signed.
    pub fn digest(&self) -> &[u8] {
        self.file.digest()
    }

    /// The claimed signing time written to `/M` (a CMS signing-time, if any, must equal
    /// it).
    pub fn signing_time(&self) -> SystemTime {
        self.time
    }

    /// How many bytes of DER the placeholder holds.
    pub fn capacity(&self) -> usize {
        self.file.details().capacity()
    }

    /// Embeds `container` (a DER CMS `SignedData` over [`PreparedFile::digest`]), fsyncs
    /// and renames the file into place.
    ///
    /// # Errors
    /// [`Error::Pdf`](crate::Error::Pdf): the container does not fit, or an I/O failure. No output appears.
    pub fn finish_with_container(self, container: &[u8]) -> Result<SignReport> {
        self.embed_container(container)?.commit()
    }

    /// Embeds `container` like [`PreparedFile::finish_with_container`] but stops before
    /// the fsync and rename, which [`PendingFile::commit`] does.
    ///
    /// # Errors
    /// [`Error::Pdf`](crate::Error::Pdf): the container does not fit, or an I/O failure. No output appears.
    pub fn embed_container(self, container: &[u8]) -> Result<PendingFile> {
        Ok(PendingFile {
            file: self.file.embed(container)?,
            time: self.time,
        })
    }
}

/// A signed file complete in its temporary file, waiting to be made durable and put in
/// place by [`PendingFile::commit`]. Dropping it removes the temporary file: the output
/// never appears.
#[derive(Debug)]
pub struct PendingFile {
    file: pdf_sig::PendingFile,
    time: SystemTime,
}

impl PendingFile {
    /// The output path the file goes to.
    pub fn output(&self) -> &Path {
        self.file.target()
    }

    /// Fsyncs the file and renames it to the output.
    ///
    /// # Errors
    /// [`Error::Pdf`](crate::Error::Pdf) for an I/O failure; the temporary file is removed
    /// and no output appears.
    pub fn commit(self) -> Result<SignReport> {
        let report = self.file.commit()?;
        Ok(SignReport {
            field_name: report.field_name,
            byte_range: report.byte_range.values(),
            signing_time: self.time,
            warnings: report.warnings.iter().map(ToString::to_string).collect(),
        })
    }
}

/// The CMS profile of the options' sub-filter; `time` stands in for a signing-time
/// attribute until each signature gives its own.
fn cms_sub_filter(options: &SignOptions, time: SystemTime) -> cms_sign::SubFilter {
    match options.sub_filter {
        SubFilter::AdbePkcs7Detached => cms_sign::SubFilter::Pkcs7Detached {
            signing_time: options.cms_signing_time.then_some(time),
        },
        // PAdES: never a signing-time attribute.
        _ => cms_sign::SubFilter::CadesDetached,
    }
}

/// The subject's common name of a DER certificate.
pub(crate) fn common_name(certificate: &[u8]) -> Option<String> {
    let certificate = x509_cert::Certificate::from_der(certificate).ok()?;
    crate::chain::common_name(certificate.tbs_certificate().subject())
}
