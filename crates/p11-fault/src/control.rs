//! The safe control API: a test attaches to the loaded proxy library and changes its
//! rules, fires events and reads its counters.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cryptoki_sys::{CK_RV, CKR_OK};
use p11_raw::{Rv, SlotId};

use crate::exports::{ABI_VERSION, NO_SLOT, STATUS_OK, STATUS_TOO_SMALL};
use crate::functions::Func;
use crate::spec::EventKind;
use crate::sync::lock;

type CommandFn = unsafe extern "C" fn(u64, *const u8, usize, *mut u8, usize, *mut usize) -> i32;
type TriggerFn = extern "C" fn(u32, u64, u64) -> CK_RV;
type CountersFn = unsafe extern "C" fn(u64, *mut u8, usize, *mut usize) -> i32;
type ResetFn = extern "C" fn(u64);
type VersionFn = extern "C" fn() -> u32;

/// Errors of the control API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The dynamic loader refused the library.
    #[error("cannot load the fault proxy {}: {source}", path.display())]
    Load {
        /// The path given.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The library loads but lacks a control function: it is not this crate's proxy.
    #[error("{} is not the fault proxy: it exports no {symbol}", path.display())]
    NotTheProxy {
        /// The path given.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The library is a proxy built from another version of this crate.
    #[error("the fault proxy {} speaks control ABI {found}, this crate {expected}", path.display())]
    AbiMismatch {
        /// The path given.
        path: PathBuf,
        /// The library's version.
        found: u32,
        /// This crate's version.
        expected: u32,
    },
    /// The proxy refused a spec (the message names the line and the reason).
    #[error("the fault proxy refused the spec: {message}")]
    Rejected {
        /// The proxy's explanation.
        message: String,
    },
    /// An event could not be carried out by the real module, or the proxy is not
    /// initialised (`CKR_CRYPTOKI_NOT_INITIALIZED`).
    #[error("event {event}: {rv}")]
    Event {
        /// The event's name.
        event: &'static str,
        /// What went wrong.
        rv: Rv,
    },
    /// The counters text did not parse: proxy and control API disagree.
    #[error("the fault proxy's counters are malformed at {line:?}")]
    Malformed {
        /// The offending line.
        line: String,
    },
}

/// An event to fire now with [`Control::trigger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Log the application out of the token.
    Logout,
    /// Close every session with the token.
    CloseAll,
    /// Remove the token for this long: `CKR_TOKEN_NOT_PRESENT` for its slot,
    /// `CKR_DEVICE_REMOVED` for its old sessions, its real sessions closed.
    Remove(Duration),
    /// Put a removed token back now.
    Insert,
    /// Make every object handle the proxy gave out for the token invalid.
    StaleHandles,
}

impl Event {
    fn kind(self) -> EventKind {
        match self {
            Event::Logout => EventKind::Logout,
            Event::CloseAll => EventKind::CloseAll,
            Event::Remove(_) => EventKind::Remove,
            Event::Insert => EventKind::Insert,
            Event::StaleHandles => EventKind::StaleHandles,
        }
    }
}

/// A snapshot of the proxy's counters, for one slot or summed over all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    calls: BTreeMap<Func, u64>,
    faults: BTreeMap<CK_RV, u64>,
    answers: BTreeMap<CK_RV, u64>,
    events: BTreeMap<EventKind, u64>,
}

impl Counters {
    /// Calls of `function` that reached the proxy (faulted or not).
    pub fn calls(&self, function: Func) -> u64 {
        self.calls.get(&function).copied().unwrap_or(0)
    }

    /// Calls of every function.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Faults a rule injected with this code.
    pub fn faults(&self, rv: Rv) -> u64 {
        self.faults.get(&rv.raw()).copied().unwrap_or(0)
    }

    /// Faults injected, all codes.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Faults injected, by code.
    pub fn faults_by_code(&self) -> impl Iterator<Item = (Rv, u64)> + '_ {
        self.faults.iter().map(|(&rv, &n)| (Rv::from_raw(rv), n))
    }

    /// Answers the proxy gave because of an event's lasting state, not a rule: a
    /// removed token (`CKR_TOKEN_NOT_PRESENT`, `CKR_DEVICE_REMOVED`) or a stale handle
    /// (`CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`, ...).
    pub fn answers(&self, rv: Rv) -> u64 {
        self.answers.get(&rv.raw()).copied().unwrap_or(0)
    }

    /// Events fired (scheduled or triggered).
    pub fn events(&self, kind: EventKind) -> u64 {
        self.events.get(&kind).copied().unwrap_or(0)
    }

    fn parse(text: &str) -> Result<Counters, ControlError> {
        let mut counters = Counters::default();
        for line in text.lines() {
            let malformed = || ControlError::Malformed {
                line: line.to_owned(),
            };
            let mut words = line.split(' ');
            let (Some(what), Some(key), Some(n), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(malformed());
            };
            let n: u64 = n.parse().map_err(|_| malformed())?;
            let code = || {
                key.strip_prefix("0x")
                    .and_then(|hex| CK_RV::from_str_radix(hex, 16).ok())
                    .ok_or_else(malformed)
            };
            match what {
                "call" => {
                    counters
                        .calls
                        .insert(Func::parse(key).ok_or_else(malformed)?, n);
                }
                "fault" => {
                    counters.faults.insert(code()?, n);
                }
                "answer" => {
                    counters.answers.insert(code()?, n);
                }
                "event" => {
                    counters
                        .events
                        .insert(EventKind::parse(key).ok_or_else(malformed)?, n);
                }
                _ => return Err(malformed()),
            }
        }
        Ok(counters)
    }
}

/// A handle on the loaded proxy library: `Clone + Send + Sync`, cheap to copy.
///
/// [`Control::attach`] opens the same file a module handle opens (the dynamic loader
/// hands back the instance already loaded, or loads the one the module handle will
/// then share). Attach before the first `C_Initialize` to send the `module` line and
/// the first rules; attach later to change them.
#[derive(Debug, Clone)]
pub struct Control {
    path: PathBuf,
    command: CommandFn,
    trigger: TriggerFn,
    counters: CountersFn,
    reset: ResetFn,
}

/// Libraries attached so far, by canonical path. Never unloaded: the proxy's state
/// must outlive every handle, and unloading a PKCS#11 module is never safe while a
/// caller may still hold its function pointers.
fn attached() -> &'static Mutex<HashMap<PathBuf, &'static libloading::Library>> {
    static ATTACHED: OnceLock<Mutex<HashMap<PathBuf, &'static libloading::Library>>> =
        OnceLock::new();
    ATTACHED.get_or_init(Mutex::default)
}

impl Control {
    /// Loads (or finds loaded) the proxy library at `path` and binds its control
    /// functions.
    ///
    /// # Errors
    /// [`ControlError::Load`], [`ControlError::NotTheProxy`] or
    /// [`ControlError::AbiMismatch`].
    pub fn attach(path: impl AsRef<Path>) -> Result<Control, ControlError> {
        let given = path.as_ref();
        let canonical = given.canonicalize().unwrap_or_else(|_| given.to_path_buf());
        let library = {
            let mut map = lock(attached());
            match map.get(&canonical) {
                Some(library) => *library,
                None => {
                    // SAFETY: loading runs the library's initialisers; it is this crate's
                    // own proxy (checked by its ABI symbol below), whose only
                    // initialiser-time work is none (its state is created lazily).
                    let library =
                        unsafe { libloading::Library::new(&canonical) }.map_err(|source| {
                            ControlError::Load {
                                path: given.to_path_buf(),
                                source,
                            }
                        })?;
                    let library: &'static libloading::Library = Box::leak(Box::new(library));
                    map.insert(canonical.clone(), library);
                    library
                }
            }
        };
        let symbol = |name: &'static str| ControlError::NotTheProxy {
            path: given.to_path_buf(),
            symbol: name,
        };
        // SAFETY: each type below is the exported function's exact signature in
        // `crate::exports`; the library is 'static, so the pointers never dangle.
        let version = unsafe { library.get::<VersionFn>(b"p11_fault_abi_version\0") }
            .map_err(|_| symbol("p11_fault_abi_version"))?;
        let found = version();
        if found != ABI_VERSION {
            return Err(ControlError::AbiMismatch {
                path: given.to_path_buf(),
                found,
                expected: ABI_VERSION,
            });
        }
        // SAFETY: as above.
        let command = unsafe { library.get::<CommandFn>(b"p11_fault_command\0") }
            .map_err(|_| symbol("p11_fault_command"))?;
        // SAFETY: as above.
        let trigger = unsafe { library.get::<TriggerFn>(b"p11_fault_trigger\0") }
            .map_err(|_| symbol("p11_fault_trigger"))?;
        // SAFETY: as above.
        let counters = unsafe { library.get::<CountersFn>(b"p11_fault_counters\0") }
            .map_err(|_| symbol("p11_fault_counters"))?;
        // SAFETY: as above.
        let reset = unsafe { library.get::<ResetFn>(b"p11_fault_reset_counters\0") }
            .map_err(|_| symbol("p11_fault_reset_counters"))?;
        Ok(Control {
            path: canonical,
            command: *command,
            trigger: *trigger,
            counters: *counters,
            reset: *reset,
        })
    }

    /// The proxy library's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies spec text (see the crate docs) to every slot's scope: rules without
    /// `slot=` apply to every slot.
    ///
    /// # Errors
    /// [`ControlError::Rejected`] with the line and the reason; nothing is applied.
    pub fn apply(&self, spec: &str) -> Result<(), ControlError> {
        self.send(NO_SLOT, spec)
    }

    /// Applies spec text scoped to one slot: rules without `slot=` get this slot, and
    /// a bare `clear` clears only this slot's rules. Tests sharing one proxy each keep
    /// to their own token this way.
    ///
    /// # Errors
    /// [`ControlError::Rejected`].
    pub fn apply_to_slot(&self, slot: SlotId, spec: &str) -> Result<(), ControlError> {
        self.send(slot.raw(), spec)
    }

    /// Replaces every rule, event and latency of one slot with `spec`.
    ///
    /// # Errors
    /// [`ControlError::Rejected`].
    pub fn replace_slot_rules(&self, slot: SlotId, spec: &str) -> Result<(), ControlError> {
        self.send(slot.raw(), &format!("clear\n{spec}"))
    }

    /// Enables or disables the fault rules and events named `name`.
    ///
    /// # Errors
    /// [`ControlError::Rejected`] if none has that name.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), ControlError> {
        let verb = if enabled { "enable" } else { "disable" };
        self.send(NO_SLOT, &format!("{verb} {name}"))
    }

    /// Adds latency to every call on `slot` (every call, for `None`): uniform in
    /// `min..=max`, fixed when they are equal; zero removes it.
    ///
    /// # Errors
    /// [`ControlError::Rejected`] if `max < min`.
    pub fn set_latency(
        &self,
        slot: Option<SlotId>,
        min: Duration,
        max: Duration,
    ) -> Result<(), ControlError> {
        let mut line = String::from("latency ");
        let _ = write!(line, "{}us..{}us", min.as_micros(), max.as_micros());
        self.send(slot.map_or(NO_SLOT, SlotId::raw), &line)
    }

    /// Fires an event now, for one slot or (`None`) every slot with a token.
    ///
    /// # Errors
    /// [`ControlError::Event`] with the real module's answer, or
    /// `CKR_CRYPTOKI_NOT_INITIALIZED` before the proxy's `C_Initialize`.
    pub fn trigger(&self, event: Event, slot: Option<SlotId>) -> Result<(), ControlError> {
        let millis = match event {
            Event::Remove(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            _ => 0,
        };
        let kind = event.kind();
        let index = EventKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(u32::MAX);
        let rv = (self.trigger)(index, slot.map_or(NO_SLOT, SlotId::raw), millis);
        if rv == CKR_OK {
            Ok(())
        } else {
            Err(ControlError::Event {
                event: kind.name(),
                rv: Rv::from_raw(rv),
            })
        }
    }

    /// The counters of one slot, or (`None`) summed over every slot and the calls
    /// that name none.
    ///
    /// # Errors
    /// [`ControlError::Malformed`] if proxy and control API disagree on the format.
    pub fn counters(&self, slot: Option<SlotId>) -> Result<Counters, ControlError> {
        let slot = slot.map_or(NO_SLOT, SlotId::raw);
        let mut buffer = vec![0u8; 4096];
        loop {
            let mut len = 0usize;
            // SAFETY: `buffer` is writable for its length, `len` is writable; the function
            // writes at most that many bytes (its contract in `crate::exports`).
            let status =
                unsafe { (self.counters)(slot, buffer.as_mut_ptr(), buffer.len(), &mut len) };
            match status {
                STATUS_OK => {
                    buffer.truncate(len);
                    let text = String::from_utf8_lossy(&buffer);
                    return Counters::parse(&text);
                }
                STATUS_TOO_SMALL if len > buffer.len() => buffer.resize(len, 0),
                _ => {
                    return Err(ControlError::Malformed {
                        line: format!("p11_fault_counters status {status}"),
                    });
                }
            }
        }
    }

    /// Sets the counters of one slot (or all, for `None`) back to zero.
    pub fn reset_counters(&self, slot: Option<SlotId>) {
        (self.reset)(slot.map_or(NO_SLOT, SlotId::raw));
    }

    fn send(&self, slot: u64, spec: &str) -> Result<(), ControlError> {
        let mut error = vec![0u8; 1024];
        let mut error_len = 0usize;
        // SAFETY: `spec` is readable for its length, `error` writable for its length,
        // `error_len` writable; all outlive the call (contract in `crate::exports`).
        let status = unsafe {
            (self.command)(
                slot,
                spec.as_ptr(),
                spec.len(),
                error.as_mut_ptr(),
                error.len(),
                &mut error_len,
            )
        };
        if status == STATUS_OK {
            return Ok(());
        }
        error.truncate(error_len.min(error.len()));
        Err(ControlError::Rejected {
            message: String::from_utf8_lossy(&error).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_what_the_proxy_renders() {
        let text =
            "call C_Sign 12\ncall C_Login 1\nfault 0x30 3\nanswer 0xe0 2\nevent close-all 1\n";
        let c = Counters::parse(text).unwrap();
        assert_eq!(c.calls(Func::Sign), 12);
        assert_eq!(c.total_calls(), 13);
        assert_eq!(c.faults(Rv::DeviceError), 3);
        assert_eq!(c.total_faults(), 3);
        assert_eq!(c.answers(Rv::TokenNotPresent), 2);
        assert_eq!(c.events(EventKind::CloseAll), 1);
        assert_eq!(c.events(EventKind::Logout), 0);
        assert!(Counters::parse("call C_Nope 1").is_err());
        assert!(Counters::parse("call C_Sign x").is_err());
        assert!(Counters::parse("bogus").is_err());
    }
}
