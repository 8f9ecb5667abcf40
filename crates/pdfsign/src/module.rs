//! Finding and opening the PKCS#11 module a URI names.

use std::path::{Path, PathBuf};

use p11_raw::{Module, SlotId, TokenInfo};

use crate::error::{Error, Result};
use crate::uri::Pkcs11Uri;

/// Directories searched for a URI's `module-name` (RFC 7512: "the name of the module
/// without the path and the suffix"), in order.
const MODULE_DIRECTORIES: &[&str] = &[
    "/usr/lib/pkcs11",
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/local/lib/pkcs11",
    "/usr/lib/softhsm",
    "/usr/lib/x86_64-linux-gnu/softhsm",
    "/usr/lib/aarch64-linux-gnu/softhsm",
    "/usr/local/lib/softhsm",
    "/usr/lib",
    "/usr/local/lib",
];

/// The module file a URI names (`module-path`, else `module-name` looked for in the usual
/// directories), else `fallback`.
///
/// # Errors
/// [`Error::ModuleNotFound`] with every path tried, [`Error::NoModule`] when nothing names
/// one.
pub(crate) fn module_path(uri: &Pkcs11Uri, fallback: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = if let Some(path) = uri.module_path() {
        vec![path.to_path_buf()]
    } else if let Some(name) = uri.module_name() {
        let files = [
            format!("lib{name}.so"),
            format!("{name}.so"),
            name.to_owned(),
        ];
        MODULE_DIRECTORIES
            .iter()
            .flat_map(|dir| files.iter().map(move |file| Path::new(dir).join(file)))
            .collect()
    } else if let Some(path) = fallback {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::NoModule);
    };
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or(Error::ModuleNotFound { tried: candidates })
}

/// Opens the module (once per process: the registry shares it).
///
/// # Errors
/// As [`module_path`], and [`Error::Pkcs11`] when it does not load or initialise.
pub(crate) fn open(uri: &Pkcs11Uri, fallback: Option<&Path>) -> Result<Module> {
    let path = module_path(uri, fallback)?;
    tracing::debug!(module = %path.display(), "opening the PKCS#11 module");
    Ok(Module::open(&path)?)
}

/// Whether a token (and its slot and module) matches the URI's token, slot and library
/// attributes.
pub(crate) fn token_matches(
    module: &Module,
    slot: SlotId,
    token: &TokenInfo,
    uri: &Pkcs11Uri,
) -> bool {
    let same = |wanted: Option<&str>, actual: &str| wanted.is_none_or(|w| w == actual);
    if !(same(uri.token(), &token.label)
        && same(uri.manufacturer(), &token.manufacturer)
        && same(uri.serial(), &token.serial_number)
        && same(uri.model(), &token.model)
        && uri.slot_id().is_none_or(|id| id == slot_number(slot)))
    {
        return false;
    }
    if uri.slot_description().is_some() || uri.slot_manufacturer().is_some() {
        let Ok(info) = module.slot_info(slot) else {
            return false;
        };
        if !(same(uri.slot_description(), &info.description)
            && same(uri.slot_manufacturer(), &info.manufacturer))
        {
            return false;
        }
    }
    if uri.library_manufacturer().is_some()
        || uri.library_description().is_some()
        || uri.library_version().is_some()
    {
        let Ok(info) = module.info() else {
            return false;
        };
        let version = format!(
            "{}.{}",
            info.library_version.major, info.library_version.minor
        );
        let version_matches = uri.library_version().is_none_or(|wanted| {
            // "1" matches 1.x; "1.23" matches exactly.
            wanted == version || !wanted.contains('.') && version.split('.').next() == Some(wanted)
        });
        if !(same(uri.library_manufacturer(), &info.manufacturer)
            && same(uri.library_description(), &info.description)
            && version_matches)
        {
            return false;
        }
    }
    true
}

/// A slot's number as a URI's `slot-id` holds it.
#[allow(clippy::useless_conversion)] // CK_SLOT_ID is 32 bits wide on some platforms.
pub(crate) fn slot_number(slot: SlotId) -> u64 {
    u64::from(slot.raw())
}

/// The one slot whose token matches the URI.
///
/// # Errors
/// [`Error::TokenNotFound`] with the labels present, [`Error::AmbiguousToken`].
pub(crate) fn find_slot(module: &Module, uri: &Pkcs11Uri) -> Result<(SlotId, TokenInfo)> {
    let mut present = Vec::new();
    let mut matching = Vec::new();
    for slot in module.slots(true)? {
        let Ok(token) = module.token_info(slot) else {
            continue;
        };
        present.push(token.label.clone());
        if token_matches(module, slot, &token, uri) {
            matching.push((slot, token));
        }
    }
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(Error::TokenNotFound {
            uri: uri.to_string(),
            present,
        }),
        count => Err(Error::AmbiguousToken {
            uri: uri.to_string(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_resolution_reports_what_it_tried() {
        let uri: Pkcs11Uri = "pkcs11:?module-path=/nonexistent/lib.so".parse().unwrap();
        match module_path(&uri, None) {
            Err(Error::ModuleNotFound { tried }) => {
                assert_eq!(tried, [PathBuf::from("/nonexistent/lib.so")]);
            }
            other => panic!("{other:?}"),
        }
        let uri: Pkcs11Uri = "pkcs11:?module-name=no-such-module-xyz".parse().unwrap();
        match module_path(&uri, None) {
            Err(Error::ModuleNotFound { tried }) => {
                assert!(tried.contains(&PathBuf::from("/usr/lib/pkcs11/libno-such-module-xyz.so")));
            }
            other => panic!("{other:?}"),
        }
        let uri = Pkcs11Uri::new();
        assert!(matches!(module_path(&uri, None), Err(Error::NoModule)));
        // The fallback is used only when the URI names nothing.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(module_path(&uri, Some(&exe)).unwrap(), exe);
    }
}
