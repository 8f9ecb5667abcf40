//! What the signature looks like and says: [`SignOptions`] and its builder.

use std::time::SystemTime;

use crate::error::{Error, Result};

/// The `/SubFilter` of the signature dictionary: how the CMS container relates to the
/// signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SubFilter {
    /// `ETSI.CAdES.detached`: PAdES baseline (EN 319 142-1). The signing time goes in
    /// `/M`, never in the CMS.
    #[default]
    EtsiCadesDetached,
    /// `adbe.pkcs7.detached`: the older profile of ISO 32000-1.
    AdbePkcs7Detached,
}

impl SubFilter {
    /// The name as it appears after `/SubFilter`.
    pub fn name(self) -> &'static str {
        match self {
            SubFilter::EtsiCadesDetached => "ETSI.CAdES.detached",
            SubFilter::AdbePkcs7Detached => "adbe.pkcs7.detached",
        }
    }
}

/// A rectangle in default user space (points, origin at the page's lower left).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub left: f32,
    /// Bottom edge.
    pub bottom: f32,
    /// Right edge.
    pub right: f32,
    /// Top edge.
    pub top: f32,
}

impl Rect {
    /// A rectangle from its lower-left and upper-right corners.
    pub fn new(left: f32, bottom: f32, right: f32, top: f32) -> Self {
        Rect {
            left,
            bottom,
            right,
            top,
        }
    }

    pub(crate) fn width(&self) -> f32 {
        self.right - self.left
    }

    pub(crate) fn height(&self) -> f32 {
        self.top - self.bottom
    }
}

/// Where a visible signature goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    pub(crate) page_index: u32,
    pub(crate) rect: Rect,
}

/// Options of one signature. Build them with [`SignOptions::builder`]; one value can
/// serve many signatures.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    pub(crate) sub_filter: SubFilter,
    pub(crate) signing_time: Option<SystemTime>,
    pub(crate) name: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) contact_info: Option<String>,
    pub(crate) field_name: Option<String>,
    pub(crate) page_index: u32,
    pub(crate) visible: Option<Placement>,
    pub(crate) in_place: bool,
}

impl SignOptions {
    /// A builder with the defaults: `ETSI.CAdES.detached`, the current time, an
    /// invisible signature in a new field on the first page, named `Signature1`,
    /// `Signature2`, ... whichever is free.
    pub fn builder() -> SignOptionsBuilder {
        SignOptionsBuilder {
            options: SignOptions::default(),
        }
    }

    /// The `/SubFilter` these options ask for.
    pub fn sub_filter(&self) -> SubFilter {
        self.sub_filter
    }

    /// The signing time for `/M`, as given, or `None` for "now".
    pub fn signing_time(&self) -> Option<SystemTime> {
        self.signing_time
    }

    /// These options with the claimed signing time `time`: options built (and checked)
    /// once can then serve each signature with a time of its own.
    pub fn with_signing_time(mut self, time: SystemTime) -> SignOptions {
        self.signing_time = Some(time);
        self
    }
}

/// Builds [`SignOptions`]; setters borrow and return the builder, so it can be kept
/// and reused.
#[derive(Debug, Clone)]
pub struct SignOptionsBuilder {
    options: SignOptions,
}

impl SignOptionsBuilder {
    /// The `/SubFilter`; `ETSI.CAdES.detached` by default.
    pub fn sub_filter(&mut self, sub_filter: SubFilter) -> &mut Self {
        self.options.sub_filter = sub_filter;
        self
    }

    /// The claimed signing time written to `/M` (and shown in a visible appearance);
    /// the time of signing by default. With `adbe.pkcs7.detached` a CMS signing-time
    /// attribute, if any, should carry the same time.
    pub fn signing_time(&mut self, time: SystemTime) -> &mut Self {
        self.options.signing_time = Some(time);
        self
    }

    /// The signer's name, `/Name`.
    pub fn name(&mut self, name: &str) -> &mut Self {
        self.options.name = Some(name.to_owned());
        self
    }

    /// The reason for signing, `/Reason`.
    pub fn reason(&mut self, reason: &str) -> &mut Self {
        self.options.reason = Some(reason.to_owned());
        self
    }

    /// Where the signing took place, `/Location`.
    pub fn location(&mut self, location: &str) -> &mut Self {
        self.options.location = Some(location.to_owned());
        self
    }

    /// How to reach the signer, `/ContactInfo`.
    pub fn contact_info(&mut self, contact_info: &str) -> &mut Self {
        self.options.contact_info = Some(contact_info.to_owned());
        self
    }

    /// The signature field's name. An existing empty signature field of that
    /// (fully qualified) name is filled; otherwise a new field is made with it.
    pub fn field_name(&mut self, name: &str) -> &mut Self {
        self.options.field_name = Some(name.to_owned());
        self
    }

    /// The zero-based page an invisible signature's widget is attached to; the first
    /// page by default.
    pub fn page(&mut self, page_index: u32) -> &mut Self {
        self.options.page_index = page_index;
        self
    }

    /// Makes the signature visible on the zero-based page `page_index`, in `rect`,
    /// showing the signer's name, the date and the reason in Helvetica.
    pub fn visible(&mut self, page_index: u32, rect: Rect) -> &mut Self {
        self.options.page_index = page_index;
        self.options.visible = Some(Placement { page_index, rect });
        self
    }

    /// Makes the signature invisible again (the default).
    pub fn invisible(&mut self) -> &mut Self {
        self.options.visible = None;
        self
    }

    /// Allows the output path to be the input path. The file is still written to a
    /// temporary file beside it and renamed over it at the end.
    pub fn in_place(&mut self, in_place: bool) -> &mut Self {
        self.options.in_place = in_place;
        self
    }

    /// Checks the options and returns them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an empty field name, or for a visible rectangle that
    /// is not finite or has no area. (A name with a period is refused later, when it
    /// names no existing field: a period separates the parts of a qualified name.)
    pub fn build(&self) -> Result<SignOptions> {
        if self
            .options
            .field_name
            .as_ref()
            .is_some_and(String::is_empty)
        {
            return Err(Error::InvalidOption("the field name is empty"));
        }
        if let Some(placement) = &self.options.visible {
            let rect = placement.rect;
            let corners = [rect.left, rect.bottom, rect.right, rect.top];
            if corners.iter().any(|value| !value.is_finite()) {
                return Err(Error::InvalidOption("the rectangle is not finite"));
            }
            if rect.width() <= 0.0 || rect.height() <= 0.0 {
                return Err(Error::InvalidOption(
                    "the rectangle has no area (right <= left or top <= bottom)",
                ));
            }
        }
        Ok(self.options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_is_reusable_and_checks() {
        let mut builder = SignOptions::builder();
        builder
            .reason("approval")
            .sub_filter(SubFilter::AdbePkcs7Detached);
        let first = builder.build().unwrap();
        builder.field_name("Approval");
        let second = builder.build().unwrap();
        assert_eq!(first.field_name, None);
        assert_eq!(second.field_name.as_deref(), Some("Approval"));
        assert_eq!(second.sub_filter(), SubFilter::AdbePkcs7Detached);

        builder.field_name("");
        assert!(matches!(builder.build(), Err(Error::InvalidOption(_))));
        builder
            .field_name("ok")
            .visible(0, Rect::new(10.0, 10.0, 5.0, 20.0));
        assert!(matches!(builder.build(), Err(Error::InvalidOption(_))));
        builder.visible(0, Rect::new(10.0, 10.0, 200.0, f32::NAN));
        assert!(matches!(builder.build(), Err(Error::InvalidOption(_))));
        builder.invisible();
        assert!(builder.build().is_ok());
    }
}
