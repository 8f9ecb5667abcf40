//! Judging a failed signature: which fault caused it, and is that explained?

use std::collections::HashSet;

use p11_raw::{RecoveryClass, Rv};

use super::trace;

/// An error and its sources, one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(" <- ")
}

/// What the proxy can make the signer see: the codes each function's rules inject, and
/// the codes the events' lasting state answers to any call (dead sessions, lost logins,
/// stale handles, a missing token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injected {
    by_function: HashSet<(&'static str, Rv)>,
    anywhere: HashSet<Rv>,
}

impl Injected {
    /// Nothing injected yet.
    pub fn new() -> Injected {
        Injected::default()
    }

    /// A rule makes `function` (its C name) answer `rv`.
    pub fn rule(&mut self, function: &'static str, rv: Rv) {
        self.by_function.insert((function, rv));
    }

    /// An event makes any call able to answer `rv`.
    pub fn event(&mut self, rv: Rv) {
        self.anywhere.insert(rv);
    }

    /// Whether `function` answering `rv` can be the proxy's doing.
    pub fn contains(&self, function: Option<&str>, rv: Rv) -> bool {
        self.anywhere.contains(&rv)
            || function.is_some_and(|f| {
                self.by_function
                    .iter()
                    .any(|(name, code)| *name == f && *code == rv)
            })
    }
}

/// Why a signature failed, and whether that is explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The cause, as failures are grouped: `C_Sign: CKR_DEVICE_ERROR`,
    /// `device lost: ...`, or the error's text.
    pub cause: String,
    /// Whether it is explained (see the module docs).
    pub explained: bool,
    /// Why it is (or is not).
    pub why: &'static str,
}

/// The `p11-session` error inside a façade error, if any.
fn session_error(error: &pdfsign::Error) -> Option<&p11_session::Error> {
    if let pdfsign::Error::Session(inner) = error {
        return Some(inner);
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(found) = inner.downcast_ref::<p11_session::Error>() {
            return Some(found);
        }
        source = inner.source();
    }
    None
}

/// The module error inside a façade error, if any.
fn raw_error(error: &pdfsign::Error) -> Option<&p11_raw::Error> {
    match error {
        pdfsign::Error::Pkcs11(inner) | pdfsign::Error::WrongPin { source: inner, .. } => {
            return Some(inner);
        }
        _ => {}
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(found) = inner.downcast_ref::<p11_raw::Error>() {
            return Some(found);
        }
        source = inner.source();
    }
    None
}

/// Judges one failed signature by its error, what `p11-session` logged on its thread
/// meanwhile, and whether the proxy answered a removed token or injected a device error
/// during it (see the soak's module docs).
pub fn classify(
    error: &pdfsign::Error,
    notes: &[trace::Note],
    device_event: bool,
    injected: &Injected,
) -> Verdict {
    let session = session_error(error);
    let raw = session
        .and_then(|e| match e {
            p11_session::Error::Pkcs11 { source, .. }
            | p11_session::Error::Module(source)
            | p11_session::Error::Pin { source, .. }
            | p11_session::Error::DeviceLost { source, .. } => Some(source),
            _ => None,
        })
        .or_else(|| raw_error(error));
    let rv = session
        .and_then(p11_session::Error::rv)
        .or_else(|| raw.and_then(p11_raw::Error::rv));
    let device_lost = matches!(session, Some(p11_session::Error::DeviceLost { .. }));
    let cause = match (raw, device_lost) {
        (Some(raw), true) => format!("device lost: {raw}"),
        (Some(raw), false) => raw.to_string(),
        (None, _) => session.map_or_else(|| error.to_string(), ToString::to_string),
    };
    let repaired_before = notes.iter().any(trace::Note::is_repair);
    let (explained, why) = match rv {
        None => (false, "the error names no CK_RV"),
        Some(rv)
            if !injected.contains(raw.and_then(p11_raw::Error::function).map(|f| f.name()), rv) =>
        {
            (false, "the function named never had that CK_RV injected")
        }
        Some(_) if device_lost => (
            false,
            "the device did not come back within the recovery budget, though every removal \
             is shorter",
        ),
        Some(_) if repaired_before => (true, "a second fault, after a repair had begun"),
        Some(rv) if rv.recovery_class() == RecoveryClass::DeviceLost => (
            true,
            "a second device fault, after a device recovery another thread made",
        ),
        Some(_) if device_event => (
            true,
            "a second fault, after a device event within the signature (its recovery, made \
             by another thread, is not logged)",
        ),
        Some(rv) if rv.recovery_class() == RecoveryClass::Fatal => {
            (true, "a fault of a kind the model does not repair")
        }
        Some(_) => (
            false,
            "a single fault of a kind the recovery model repairs, not repaired",
        ),
    };
    Verdict {
        cause,
        explained,
        why,
    }
}
