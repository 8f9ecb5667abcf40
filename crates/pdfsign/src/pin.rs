//! PINs: held in zeroising memory, never printed, read from where the user keeps them.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The longest PIN file read; real PINs are far shorter, and a larger file is surely the
/// wrong one.
const MAX_PIN_FILE: u64 = 4096;

/// A token PIN. Its memory is wiped when dropped; `Debug` shows no digit of it, and it has
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    /// A PIN from its text.
    pub fn new(pin: &str) -> Pin {
        Pin(Zeroizing::new(pin.as_bytes().to_vec()))
    }

    /// A PIN from bytes (PKCS#11 PINs are byte strings, UTF-8 by recommendation).
    pub fn from_bytes(pin: Vec<u8>) -> Pin {
        Pin(Zeroizing::new(pin))
    }

    /// The PIN's bytes, to hand to the token.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Reads a PIN from a `pin-source`: a `file:` URI (`file:/p`, `file:///p`,
    /// `file://localhost/p`, percent-encoded) or a plain path. The file's content is the
    /// PIN, less one trailing line break. A PIN file readable by others is used, with a
    /// warning in the log.
    ///
    /// # Errors
    /// [`PinError::UnsupportedSource`] for another URI scheme or a remote host,
    /// [`PinError::Read`] if the file cannot be read, [`PinError::Empty`] and
    /// [`PinError::TooLong`] for a file that cannot hold a PIN.
    pub fn from_source(source: &str) -> Result<Pin, PinError> {
        let path = source_path(source)?;
        let file = std::fs::File::open(&path).map_err(|error| PinError::Read {
            path: path.clone(),
            source: error,
        })?;
        warn_if_readable_by_others(&file, &path);
        let mut content = Zeroizing::new(Vec::new());
        file.take(MAX_PIN_FILE + 1)
            .read_to_end(&mut content)
            .map_err(|error| PinError::Read {
                path: path.clone(),
                source: error,
            })?;
        if content.len() as u64 > MAX_PIN_FILE {
            return Err(PinError::TooLong { path });
        }
        let mut len = content.len();
        if content[..len].ends_with(b"\n") {
            len -= 1;
            if content[..len].ends_with(b"\r") {
                len -= 1;
            }
        }
        if len == 0 {
            return Err(PinError::Empty { path });
        }
        Ok(Pin::from_bytes(content[..len].to_vec()))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(hidden)")
    }
}

/// Why no PIN could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// A `pin-source` that is neither a `file:` URI on this host nor a path.
    #[error("pin-source {given:?} is not supported: give a file: URI or a path")]
    UnsupportedSource {
        /// The source as given (it names where the PIN is, not the PIN).
        given: String,
    },
    /// The PIN file cannot be read.
    #[error("cannot read the PIN file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The PIN file is empty (or holds only a line break).
    #[error("the PIN file {} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The PIN file is larger than any PIN.
    #[error("the PIN file {} is larger than {MAX_PIN_FILE} bytes: not a PIN file?", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
    },
    /// A PIN is needed, none was given, and there is no terminal to ask on.
    #[error("a PIN is needed and none was given")]
    Missing,
    /// Reading the PIN from the terminal failed.
    #[error("cannot read the PIN from the terminal")]
    Prompt(#[source] std::io::Error),
}

/// The file a `pin-source` names.
fn source_path(source: &str) -> Result<PathBuf, PinError> {
    let unsupported = || PinError::UnsupportedSource {
        given: source.to_owned(),
    };
    let Some(rest) = strip_prefix_ignore_case(source, "file:") else {
        // "scheme:..." other than file: is refused; anything else is a path.
        let scheme_like = source.split_once(':').is_some_and(|(scheme, _)| {
            scheme.len() > 1
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
        return if scheme_like || source.is_empty() {
            Err(unsupported())
        } else {
            Ok(PathBuf::from(source))
        };
    };
    // RFC 8089: file:/p, file:///p, file://localhost/p.
    let path = if let Some(authority_and_path) = rest.strip_prefix("//") {
        let slash = authority_and_path.find('/').ok_or_else(unsupported)?;
        let host = &authority_and_path[..slash];
        if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
            return Err(unsupported());
        }
        &authority_and_path[slash..]
    } else if rest.starts_with('/') {
        rest
    } else {
        return Err(unsupported());
    };
    let decoded = percent_decode(path).ok_or_else(unsupported)?;
    Ok(PathBuf::from(decoded))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &std::fs::File, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = file.metadata()
        && metadata.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(file = %path.display(), "the PIN file is readable by every user; chmod o-r it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &std::fs::File, _path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_forms() {
        assert_eq!(source_path("file:/run/pin").unwrap(), Path::new("/run/pin"));
        assert_eq!(
            source_path("file:///run/pin").unwrap(),
            Path::new("/run/pin")
        );
        assert_eq!(
            source_path("FILE://localhost/run/my%20pin").unwrap(),
            Path::new("/run/my pin")
        );
        assert_eq!(source_path("/run/pin").unwrap(), Path::new("/run/pin"));
        assert_eq!(source_path("pin.txt").unwrap(), Path::new("pin.txt"));
        assert_eq!(
            source_path("C:pin").unwrap(),
            Path::new("C:pin"),
            "a drive letter is no scheme"
        );
        for bad in [
            "https://example.com/pin",
            "file://otherhost/pin",
            "file:relative",
            "env:PIN",
            "",
        ] {
            assert!(
                matches!(source_path(bad), Err(PinError::UnsupportedSource { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_files_and_strips_one_line_break() {
        let dir = std::env::temp_dir().join(format!("pdfsign-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (b"1234\n", Some(b"1234")),
            (b"1234\r\n", Some(b"1234")),
            (b"12 34\n\n", Some(b"12 34\n")),
            (b"\n", None),
            (b"", None),
        ];
        for (i, (content, expected)) in cases.into_iter().enumerate() {
            let path = dir.join(format!("pin{i}"));
            std::fs::write(&path, content).unwrap();
            let result = Pin::from_source(&format!("file://{}", path.display()));
            match expected {
                Some(pin) => assert_eq!(result.unwrap().expose(), pin),
                None => assert!(matches!(result, Err(PinError::Empty { .. }))),
            }
        }
        let big = dir.join("big");
        std::fs::write(&big, vec![b'1'; 5000]).unwrap();
        assert!(matches!(
            Pin::from_source(big.to_str().unwrap()),
            Err(PinError::TooLong { .. })
        ));
        assert!(matches!(
            Pin::from_source(dir.join("absent").to_str().unwrap()),
            Err(PinError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn never_shown() {
        let pin = Pin::new("123456");
        assert_eq!(format!("{pin:?}"), "Pin(hidden)");
    }
}
