//! What a signature looks like and how it is made: [`SignOptions`] and its builder.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

pub use pdf_sig::{Rect, SubFilter};

use crate::error::Error;

/// The digest over the PDF's `/ByteRange` and over the CMS signed attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Digest {
    /// SHA-256 (the default: every validator accepts it).
    #[default]
    #[serde(rename = "SHA-256")]
    Sha256,
    /// SHA-384.
    #[serde(rename = "SHA-384")]
    Sha384,
    /// SHA-512.
    #[serde(rename = "SHA-512")]
    Sha512,
}

impl Digest {
    /// The name used on the command line: `sha256`, `sha384`, `sha512`.
    pub fn cli_name(self) -> &'static str {
        match self {
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha512 => "sha512",
        }
    }

    pub(crate) fn cms(self) -> cms_sign::DigestAlgorithm {
        match self {
            Digest::Sha256 => cms_sign::DigestAlgorithm::Sha256,
            Digest::Sha384 => cms_sign::DigestAlgorithm::Sha384,
            Digest::Sha512 => cms_sign::DigestAlgorithm::Sha512,
        }
    }

    pub(crate) fn pdf(self) -> pdf_sig::DigestAlgorithm {
        match self {
            Digest::Sha256 => pdf_sig::DigestAlgorithm::Sha256,
            Digest::Sha384 => pdf_sig::DigestAlgorithm::Sha384,
            Digest::Sha512 => pdf_sig::DigestAlgorithm::Sha512,
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Digest::Sha256 => "SHA-256",
            Digest::Sha384 => "SHA-384",
            Digest::Sha512 => "SHA-512",
        })
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Digest, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(Digest::Sha256),
            "sha384" => Ok(Digest::Sha384),
            "sha512" => Ok(Digest::Sha512),
            _ => Err(format!(
                "unknown digest {s:?}: use sha256, sha384 or sha512"
            )),
        }
    }
}

/// Options of a signature: one value serves any number of signatures, from any thread.
///
/// ```
/// use pdfsign::{Digest, Rect, SignOptions, SubFilter};
///
/// let options = SignOptions::builder()
///     .digest(Digest::Sha384)
///     .reason("Approved")
///     .location("Lyon")
///     .visible(0, Rect::new(50.0, 50.0, 250.0, 110.0))
///     .build()?;
/// assert_eq!(options.digest(), Digest::Sha384);
/// assert_eq!(options.sub_filter(), SubFilter::EtsiCadesDetached);
/// # Ok::<(), pdfsign::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub(crate) pdf: pdf_sig::SignOptionsBuilder,
    pub(crate) digest: Digest,
    pub(crate) sub_filter: SubFilter,
    pub(crate) pss: bool,
    pub(crate) signing_time: Option<SystemTime>,
    pub(crate) cms_signing_time: bool,
    pub(crate) name_given: bool,
    pub(crate) verify_each_signature: bool,
}

impl Default for SignOptions {
    fn default() -> SignOptions {
        SignOptions {
            pdf: pdf_sig::SignOptions::builder(),
            digest: Digest::default(),
            sub_filter: SubFilter::default(),
            pss: false,
            signing_time: None,
            cms_signing_time: false,
            name_given: false,
            verify_each_signature: false,
        }
    }
}

impl SignOptions {
    /// A builder with the defaults: SHA-256, `ETSI.CAdES.detached` (PAdES), RSA
    /// PKCS#1 v1.5 for RSA keys, the time of signing, an invisible signature in a new
    /// field `Signature1` (or the next free number), `/Name` from the certificate's
    /// common name.
    pub fn builder() -> SignOptionsBuilder {
        SignOptionsBuilder {
            options: SignOptions::default(),
        }
    }

    /// The digest algorithm.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The `/SubFilter`.
    pub fn sub_filter(&self) -> SubFilter {
        self.sub_filter
    }

    /// Whether RSA keys sign with RSASSA-PSS.
    pub fn pss(&self) -> bool {
        self.pss
    }

    /// The claimed signing time, or `None` for the time of each signature.
    pub fn signing_time(&self) -> Option<SystemTime> {
        self.signing_time
    }

    /// The `pdf-sig` options of this signer's signatures, with `/Name` defaulting to
    /// `default_name` and no time (each signature gets its own).
    pub(crate) fn pdf_options(
        &self,
        default_name: Option<&str>,
    ) -> Result<pdf_sig::SignOptions, Error> {
        let mut builder = self.pdf.clone();
        if !self.name_given
            && let Some(name) = default_name
        {
            builder.name(name);
        }
        Ok(builder.build()?)
    }
}

/// Builds [`SignOptions`]; setters borrow the builder, so it can be kept and reused.
#[derive(Debug, Clone)]
pub struct SignOptionsBuilder {
    options: SignOptions,
}

impl SignOptionsBuilder {
    /// The digest algorithm; SHA-256 by default.
    pub fn digest(&mut self, digest: Digest) -> &mut Self {
        self.options.digest = digest;
        self
    }

    /// The `/SubFilter`: `ETSI.CAdES.detached` (PAdES, the default) or the older
    /// `adbe.pkcs7.detached`.
    pub fn sub_filter(&mut self, sub_filter: SubFilter) -> &mut Self {
        self.options.sub_filter = sub_filter;
        self.options.pdf.sub_filter(sub_filter);
        self
    }

    /// Signs with RSASSA-PSS (MGF1 with the same hash, salt as long as the hash) instead
    /// of PKCS#1 v1.5. Only for RSA keys; off by default.
    pub fn pss(&mut self, pss: bool) -> &mut Self {
        self.options.pss = pss;
        self
    }

    /// The claimed signing time, written to `/M`; the time of each signature by default.
    pub fn signing_time(&mut self, time: SystemTime) -> &mut Self {
        self.options.signing_time = Some(time);
        self
    }

    /// With `adbe.pkcs7.detached`, also puts the signing time in the CMS as a
    /// signing-time attribute (equal to `/M`). PAdES forbids that attribute, so this is
    /// ignored with `ETSI.CAdES.detached`. Off by default.
    pub fn cms_signing_time(&mut self, on: bool) -> &mut Self {
        self.options.cms_signing_time = on;
        self
    }

    /// Checks every signature against the certificate's public key before it is
    /// embedded. Off by default: [`Signer::from_key`](crate::Signer::from_key) checks one
    /// signature when the signer is made, which finds a key and certificate that do not
    /// belong together; checking each one also catches a token that signs wrongly now and
    /// then, at the cost of a software verification per signature (for P-256, about as
    /// long as the token's own signature).
    pub fn verify_each_signature(&mut self, on: bool) -> &mut Self {
        self.options.verify_each_signature = on;
        self
    }

    /// The signer's name, `/Name`; the certificate's common name by default.
    pub fn name(&mut self, name: &str) -> &mut Self {
        self.options.pdf.name(name);
        self.options.name_given = true;
        self
    }

    /// The reason for signing, `/Reason`.
    pub fn reason(&mut self, reason: &str) -> &mut Self {
        self.options.pdf.reason(reason);
        self
    }

    /// Where the signing took place, `/Location`.
    pub fn location(&mut self, location: &str) -> &mut Self {
        self.options.pdf.location(location);
        self
    }

    /// How to reach the signer, `/ContactInfo`.
    pub fn contact_info(&mut self, contact: &str) -> &mut Self {
        self.options.pdf.contact_info(contact);
        self
    }

    /// The signature field's name. An empty signature field of that name is filled;
    /// otherwise a new one is made.
    pub fn field_name(&mut self, name: &str) -> &mut Self {
        self.options.pdf.field_name(name);
        self
    }

    /// Makes the signature visible on the zero-based page `page_index`, in `rect`
    /// (points, origin at the page's lower left).
    pub fn visible(&mut self, page_index: u32, rect: Rect) -> &mut Self {
        self.options.pdf.visible(page_index, rect);
        self
    }

    /// The zero-based page an invisible signature's widget goes on; the first by default.
    pub fn page(&mut self, page_index: u32) -> &mut Self {
        self.options.pdf.page(page_index);
        self
    }

    /// Checks the options and returns them.
    ///
    /// # Errors
    /// [`Error::Pdf`] with `pdf_sig::Error::InvalidOption` for an empty field name or a
    /// visible rectangle without area.
    pub fn build(&self) -> Result<SignOptions, Error> {
        self.options.pdf.build()?;
        Ok(self.options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names() {
        for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
            assert_eq!(digest.cli_name().parse::<Digest>(), Ok(digest));
            assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest));
            assert_eq!(digest.cms().output_len(), digest.pdf().output_len());
        }
        assert!("md5".parse::<Digest>().is_err());
    }

    #[test]
    fn builder_checks_and_defaults_the_name() {
        let mut builder = SignOptions::builder();
        let options = builder.reason("ok").build().unwrap();
        assert!(options.pdf_options(Some("Alice")).is_ok());
        assert!(builder.field_name("").build().is_err());
        builder.field_name("F");
        assert!(
            builder
                .visible(0, Rect::new(10.0, 10.0, 5.0, 5.0))
                .build()
                .is_err()
        );
    }
}
