//! PKCS#11 URIs (RFC 7512): parsed once into [`Pkcs11Uri`], never re-validated.
//!
//! ```text
//! pkcs11:token=pdfsign-demo;object=p256;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//! └─────┘└───────────── path: ';'-separated ─────┘ └──────────── query: '&'-separated ─────────────────────────────┘
//! ```
//!
//! Values are percent-decoded; `id` is binary (any byte), every other value must be UTF-8.
//! A path attribute may appear once; so may each standard query attribute. Attributes
//! this crate does not know (vendor extensions) are kept, so that printing the URI loses
//! nothing, and [`Pkcs11Uri::unsupported_attributes`] names them: a signer refuses a
//! URI it cannot fully honour rather than pick a key the URI did not mean.
//!
//! The PIN (`pin-value`) is held in zeroising memory and is never shown: `Display` and
//! `Debug` leave it out, and parse errors never quote a value.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use zeroize::Zeroizing;

/// The object class a URI's `type` attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `type=public`: a public key.
    Public,
    /// `type=private`: a private key.
    Private,
    /// `type=cert`: a certificate.
    Cert,
    /// `type=secret-key`: a secret (symmetric) key.
    SecretKey,
    /// `type=data`: a data object.
    Data,
}

impl ObjectType {
    /// The attribute value, e.g. `"private"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Public => "public",
            ObjectType::Private => "private",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }

    fn parse(value: &str) -> Option<ObjectType> {
        Some(match value {
            "public" => ObjectType::Public,
            "private" => ObjectType::Private,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            _ => return None,
        })
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a PKCS#11 URI. Never quotes an attribute's value, so a PIN cannot
/// leak through it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The string does not start with `pkcs11:`.
    #[error("a PKCS#11 URI starts with \"pkcs11:\"")]
    MissingScheme,
    /// A `;`- or `&`-separated component has no `=`.
    #[error("component at byte {offset} is not name=value")]
    MissingEquals {
        /// Byte offset of the component in the URI.
        offset: usize,
    },
    /// A component has an empty or malformed name (names are letters, digits, `-`, `_`).
    #[error("component at byte {offset} has no valid attribute name")]
    BadName {
        /// Byte offset of the component in the URI.
        offset: usize,
    },
    /// An attribute appears twice.
    #[error("attribute {name} appears more than once")]
    Duplicate {
        /// The attribute's name.
        name: String,
    },
    /// A `%` is not followed by two hex digits.
    #[error("bad percent-encoding in attribute {name} at byte {offset}")]
    BadPercentEncoding {
        /// The attribute's name.
        name: String,
        /// Byte offset of the `%` in the URI.
        offset: usize,
    },
    /// A character that RFC 7512 requires to be percent-encoded appears as is.
    #[error(
        "character{} at byte {offset} must be percent-encoded (attribute {name})",
        ch.map(|c| format!(" {c:?}")).unwrap_or_default()
    )]
    MustBeEncoded {
        /// The attribute's name.
        name: String,
        /// The character; `None` in `pin-value`, whose characters are never shown.
        ch: Option<char>,
        /// Its byte offset in the URI.
        offset: usize,
    },
    /// A textual attribute decodes to bytes that are not UTF-8.
    #[error("attribute {name} is not UTF-8 once percent-decoded")]
    NotUtf8 {
        /// The attribute's name.
        name: String,
    },
    /// `slot-id` is not a decimal number that fits 64 bits.
    #[error("slot-id must be a decimal number")]
    BadSlotId,
    /// `type` is none of public, private, cert, secret-key, data.
    #[error("type must be one of public, private, cert, secret-key, data")]
    BadType,
    /// Both `pin-value` and `pin-source` are given: which one is meant?
    #[error("pin-value and pin-source are both given; keep one")]
    PinValueAndSource,
}

/// A parsed PKCS#11 URI (RFC 7512).
///
/// Parse with [`str::parse`] or build one from parts with the setters; `Display` prints it
/// back in a canonical order **without the PIN**.
///
/// ```
/// use pdfsign::Pkcs11Uri;
///
/// let uri: Pkcs11Uri = "pkcs11:token=My%20Token;id=%01%ff;type=private?pin-value=1234".parse()?;
/// assert_eq!(uri.token(), Some("My Token"));
/// assert_eq!(uri.id(), Some(&[0x01, 0xff][..]));
/// assert!(uri.has_pin_value());
/// assert_eq!(uri.to_string(), "pkcs11:token=My%20Token;id=%01%FF;type=private");
/// # Ok::<(), pdfsign::UriError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    token: Option<String>,
    manufacturer: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    library_manufacturer: Option<String>,
    library_description: Option<String>,
    library_version: Option<String>,
    slot_description: Option<String>,
    slot_manufacturer: Option<String>,
    slot_id: Option<u64>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    object_type: Option<ObjectType>,
    /// Path attributes this crate does not know, in the order given.
    other_path: Vec<(String, String)>,
    module_path: Option<String>,
    module_name: Option<String>,
    pin_source: Option<String>,
    pin_value: Option<Zeroizing<String>>,
    /// Query attributes this crate does not know, in the order given.
    other_query: Vec<(String, String)>,
}

/// Characters allowed unencoded in a path value (RFC 7512 `pk11-path-pchar`), besides
/// ASCII letters and digits.
const PATH_CHARS: &[u8] = b"-._~:[]@!$'()*+,=&";
/// Characters allowed unencoded in a query value (`pk11-query-pchar`).
const QUERY_CHARS: &[u8] = b"-._~:[]@!$'()*+,=/?|";

fn allowed(byte: u8, extra: &[u8]) -> bool {
    byte.is_ascii_alphanumeric() || extra.contains(&byte)
}

impl Pkcs11Uri {
    /// An empty URI (`pkcs11:`), which matches any token and any object.
    pub fn new() -> Pkcs11Uri {
        Pkcs11Uri::default()
    }

    /// `token`: the token label.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `manufacturer`: the token's manufacturer ID.
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// `serial`: the token's serial number.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// `model`: the token's model.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// `library-manufacturer`: the module's manufacturer ID.
    pub fn library_manufacturer(&self) -> Option<&str> {
        self.library_manufacturer.as_deref()
    }

    /// `library-description`: the module's description.
    pub fn library_description(&self) -> Option<&str> {
        self.library_description.as_deref()
    }

    /// `library-version`: the module's version, `M` or `M.N`.
    pub fn library_version(&self) -> Option<&str> {
        self.library_version.as_deref()
    }

    /// `slot-description`: the slot's description.
    pub fn slot_description(&self) -> Option<&str> {
        self.slot_description.as_deref()
    }

    /// `slot-manufacturer`: the slot's manufacturer ID.
    pub fn slot_manufacturer(&self) -> Option<&str> {
        self.slot_manufacturer.as_deref()
    }

    /// `slot-id`: the slot's number.
    pub fn slot_id(&self) -> Option<u64> {
        self.slot_id
    }

    /// `object`: the object's label (`CKA_LABEL`).
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// `id`: the object's `CKA_ID`, binary.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// `type`: the object's class.
    pub fn object_type(&self) -> Option<ObjectType> {
        self.object_type
    }

    /// `module-path`: the PKCS#11 module to load.
    pub fn module_path(&self) -> Option<&Path> {
        self.module_path.as_deref().map(Path::new)
    }

    /// `module-name`: the module's name without directory nor suffix (`softhsm2`), to be
    /// looked for in the system's PKCS#11 directories.
    pub fn module_name(&self) -> Option<&str> {
        self.module_name.as_deref()
    }

    /// `pin-source`: where to read the PIN from (a `file:` URI or a path).
    pub fn pin_source(&self) -> Option<&str> {
        self.pin_source.as_deref()
    }

    /// Whether the URI carries the PIN itself (`pin-value`).
    pub fn has_pin_value(&self) -> bool {
        self.pin_value.is_some()
    }

    /// The PIN the URI carries (`pin-value`). Keep it no longer than needed.
    pub fn pin_value(&self) -> Option<&str> {
        self.pin_value.as_deref().map(String::as_str)
    }

    /// Path and query attributes this crate does not know (vendor extensions), which a
    /// signer cannot honour.
    pub fn unsupported_attributes(&self) -> impl Iterator<Item = &str> {
        self.other_path
            .iter()
            .chain(&self.other_query)
            .map(|(name, _)| name.as_str())
    }

    /// Sets `token`.
    pub fn set_token(&mut self, label: &str) -> &mut Self {
        self.token = Some(label.to_owned());
        self
    }

    /// Sets `serial`.
    pub fn set_serial(&mut self, serial: &str) -> &mut Self {
        self.serial = Some(serial.to_owned());
        self
    }

    /// Sets `slot-id`.
    pub fn set_slot_id(&mut self, slot: u64) -> &mut Self {
        self.slot_id = Some(slot);
        self
    }

    /// Sets `object`.
    pub fn set_object(&mut self, label: &str) -> &mut Self {
        self.object = Some(label.to_owned());
        self
    }

    /// Sets `id`.
    pub fn set_id(&mut self, id: &[u8]) -> &mut Self {
        self.id = Some(id.to_vec());
        self
    }

    /// Sets `type`.
    pub fn set_object_type(&mut self, object_type: ObjectType) -> &mut Self {
        self.object_type = Some(object_type);
        self
    }

    /// Sets `module-path`.
    pub fn set_module_path(&mut self, path: &str) -> &mut Self {
        self.module_path = Some(path.to_owned());
        self
    }

    /// Sets `module-name`.
    pub fn set_module_name(&mut self, name: &str) -> &mut Self {
        self.module_name = Some(name.to_owned());
        self
    }

    /// Sets `pin-source` and drops any `pin-value`.
    pub fn set_pin_source(&mut self, source: &str) -> &mut Self {
        self.pin_source = Some(source.to_owned());
        self.pin_value = None;
        self
    }

    /// Sets `pin-value` and drops any `pin-source`.
    pub fn set_pin_value(&mut self, pin: &str) -> &mut Self {
        self.pin_value = Some(Zeroizing::new(pin.to_owned()));
        self.pin_source = None;
        self
    }

    /// Removes the PIN (`pin-value`), e.g. once it was read.
    pub fn clear_pin_value(&mut self) -> &mut Self {
        self.pin_value = None;
        self
    }

    /// The URI with its PIN, for handing to another program that needs it. `Display`
    /// never shows the PIN; this is the only way to print it.
    pub fn to_string_with_pin(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(self.to_string());
        if let Some(pin) = &self.pin_value {
            out.push(if self.has_query() { '&' } else { '?' });
            out.push_str("pin-value=");
            encode_into(&mut out, pin.as_bytes(), QUERY_CHARS);
        }
        out
    }

    fn has_query(&self) -> bool {
        self.module_path.is_some()
            || self.module_name.is_some()
            || self.pin_source.is_some()
            || !self.other_query.is_empty()
    }

    fn path_attributes(&self) -> Vec<(&str, Vec<u8>)> {
        let text = |name: &'static str, value: &Option<String>| {
            value.as_ref().map(|v| (name, v.as_bytes().to_vec()))
        };
        let mut out: Vec<(&str, Vec<u8>)> = [
            text("token", &self.token),
            text("manufacturer", &self.manufacturer),
            text("serial", &self.serial),
            text("model", &self.model),
            text("library-manufacturer", &self.library_manufacturer),
            text("library-description", &self.library_description),
            text("library-version", &self.library_version),
            text("slot-description", &self.slot_description),
            text("slot-manufacturer", &self.slot_manufacturer),
            self.slot_id
                .map(|id| ("slot-id", id.to_string().into_bytes())),
            text("object", &self.object),
            self.id.as_ref().map(|id| ("id", id.clone())),
            self.object_type
                .map(|t| ("type", t.as_str().as_bytes().to_vec())),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(
            self.other_path
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes().to_vec())),
        );
        out
    }

    fn query_attributes(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = [
            self.module_name.as_deref().map(|v| ("module-name", v)),
            self.module_path.as_deref().map(|v| ("module-path", v)),
            self.pin_source.as_deref().map(|v| ("pin-source", v)),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(
            self.other_query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        out
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("pkcs11:");
        for (i, (name, value)) in self.path_attributes().into_iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(name);
            out.push('=');
            if name == "id" {
                // RFC 7512 recommends encoding every byte of an id.
                for byte in value {
                    out.push_str(&format!("%{byte:02X}"));
                }
            } else {
                encode_into(&mut out, &value, PATH_CHARS);
            }
        }
        for (i, (name, value)) in self.query_attributes().into_iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
            encode_into(&mut out, value.as_bytes(), QUERY_CHARS);
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PIN stays out of Debug too; say only whether there is one.
        write!(f, "Pkcs11Uri({self}")?;
        if self.pin_value.is_some() {
            f.write_str(" + pin-value")?;
        }
        f.write_str(")")
    }
}

fn encode_into(out: &mut String, value: &[u8], extra: &[u8]) {
    for &byte in value {
        if allowed(byte, extra) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Percent-decodes `raw` (which starts at byte `start` of the URI).
fn decode(name: &str, raw: &str, start: usize, extra: &[u8]) -> Result<Vec<u8>, UriError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(value) => out.push(value),
                None => {
                    return Err(UriError::BadPercentEncoding {
                        name: name.to_owned(),
                        offset: start + i,
                    });
                }
            }
            i += 3;
        } else if allowed(byte, extra) {
            out.push(byte);
            i += 1;
        } else {
            // Report the whole character, not a byte of it.
            let ch = raw[i..].chars().next().filter(|_| name != "pin-value");
            return Err(UriError::MustBeEncoded {
                name: name.to_owned(),
                ch,
                offset: start + i,
            });
        }
    }
    Ok(out)
}

fn utf8(name: &str, bytes: Vec<u8>) -> Result<String, UriError> {
    String::from_utf8(bytes).map_err(|e| {
        // The decoded bytes may be a PIN: wipe them before dropping.
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        UriError::NotUtf8 {
            name: name.to_owned(),
        }
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits `part` (starting at byte `start` of the URI) on `separator` into
/// `(name, value, value_start)`.
fn components(
    part: &str,
    start: usize,
    separator: char,
) -> impl Iterator<Item = Result<(&str, &str, usize), UriError>> {
    let mut offset = start;
    part.split(separator)
        .map(move |component| {
            let here = offset;
            offset += component.len() + 1;
            (component, here)
        })
        .filter(|(component, _)| !component.is_empty())
        .map(|(component, here)| {
            let (name, value) = component
                .split_once('=')
                .ok_or(UriError::MissingEquals { offset: here })?;
            if !valid_name(name) {
                return Err(UriError::BadName { offset: here });
            }
            Ok((name, value, here + name.len() + 1))
        })
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(UriError::Duplicate {
            name: name.to_owned(),
        });
    }
    *slot = Some(value);
    Ok(())
}

impl FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Pkcs11Uri, UriError> {
        const SCHEME: &str = "pkcs11:";
        if s.len() < SCHEME.len() || !s[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
            return Err(UriError::MissingScheme);
        }
        let rest = &s[SCHEME.len()..];
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();

        for component in components(path, SCHEME.len(), ';') {
            let (name, raw, at) = component?;
            let bytes = decode(name, raw, at, PATH_CHARS)?;
            let text = |bytes| utf8(name, bytes);
            match name {
                "token" => set_once(&mut uri.token, name, text(bytes)?)?,
                "manufacturer" => set_once(&mut uri.manufacturer, name, text(bytes)?)?,
                "serial" => set_once(&mut uri.serial, name, text(bytes)?)?,
                "model" => set_once(&mut uri.model, name, text(bytes)?)?,
                "library-manufacturer" => {
                    set_once(&mut uri.library_manufacturer, name, text(bytes)?)?
                }
                "library-description" => {
                    set_once(&mut uri.library_description, name, text(bytes)?)?
                }
                "library-version" => set_once(&mut uri.library_version, name, text(bytes)?)?,
                "slot-description" => set_once(&mut uri.slot_description, name, text(bytes)?)?,
                "slot-manufacturer" => set_once(&mut uri.slot_manufacturer, name, text(bytes)?)?,
                "slot-id" => {
                    let digits = text(bytes)?;
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(UriError::BadSlotId);
                    }
                    let id = digits.parse().map_err(|_| UriError::BadSlotId)?;
                    set_once(&mut uri.slot_id, name, id)?;
                }
                "object" => set_once(&mut uri.object, name, text(bytes)?)?,
                "id" => set_once(&mut uri.id, name, bytes)?,
                "type" => {
                    let t = ObjectType::parse(&text(bytes)?).ok_or(UriError::BadType)?;
                    set_once(&mut uri.object_type, name, t)?;
                }
                _ => {
                    if uri.other_path.iter().any(|(n, _)| n == name) {
                        return Err(UriError::Duplicate {
                            name: name.to_owned(),
                        });
                    }
                    uri.other_path.push((name.to_owned(), text(bytes)?));
                }
            }
        }

        if let Some(query) = query {
            let start = SCHEME.len() + path.len() + 1;
            for component in components(query, start, '&') {
                let (name, raw, at) = component?;
                let bytes = Zeroizing::new(decode(name, raw, at, QUERY_CHARS)?);
                let text = |bytes: &Zeroizing<Vec<u8>>| utf8(name, bytes.to_vec());
                match name {
                    "module-path" => set_once(&mut uri.module_path, name, text(&bytes)?)?,
                    "module-name" => set_once(&mut uri.module_name, name, text(&bytes)?)?,
                    "pin-source" => set_once(&mut uri.pin_source, name, text(&bytes)?)?,
                    "pin-value" => {
                        set_once(&mut uri.pin_value, name, Zeroizing::new(text(&bytes)?))?
                    }
                    _ => {
                        if uri.other_query.iter().any(|(n, _)| n == name) {
                            return Err(UriError::Duplicate {
                                name: name.to_owned(),
                            });
                        }
                        uri.other_query.push((name.to_owned(), text(&bytes)?));
                    }
                }
            }
        }
        if uri.pin_value.is_some() && uri.pin_source.is_some() {
            return Err(UriError::PinValueAndSource);
        }
        Ok(uri)
    }
}

/// Removes `pin-value` from a string that may be a PKCS#11 URI, for messages about a
/// URI that did not parse: everything from `pin-value=` up to the next `&` becomes
/// `pin-value=(hidden)`.
pub fn redact_pin(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("pin-value=") {
        let (head, tail) = rest.split_at(at + "pin-value=".len());
        out.push_str(head);
        out.push_str("(hidden)");
        rest = tail.find('&').map_or("", |end| &tail[end..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
