//! What `p11-session` said while one signature was made, per thread.
//!
//! The soak judges each failed signature by what happened inside it: a failure after a
//! repair had already been tried is a second fault (explained), a failure with no repair
//! before it is a single fault the model should have repaired (unexplained). Eight
//! threads share one token, so the proxy's per-slot counters cannot tell signatures
//! apart; `p11-session`'s own log can, because a signature runs on its caller's thread.
//! So a process-wide `tracing` subscriber keeps the `p11_session` events of each thread
//! that asked for them, and nothing else.

use std::cell::RefCell;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// One event `p11-session` logged on this thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// The `error` field, when it has one (the module's `C_Sign: CKR_...`).
    pub error: Option<String>,
}

impl Note {
    /// Whether this event says a recoverable failure was met and a repair begun: the
    /// signing loop's "repairing, then retrying once", or a device recovery.
    pub fn is_repair(&self) -> bool {
        self.message.contains("retrying once") || self.message.contains("device is gone")
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.level, self.message)?;
        if let Some(error) = &self.error {
            write!(f, " ({error})")?;
        }
        Ok(())
    }
}

thread_local! {
    /// `Some` while this thread records.
    static NOTES: RefCell<Option<Vec<Note>>> = const { RefCell::new(None) };
}

/// Starts recording this thread's `p11_session` events (forgetting earlier ones).
pub fn start() {
    NOTES.with(|notes| *notes.borrow_mut() = Some(Vec::new()));
}

/// Stops recording and returns what was recorded since [`start`].
pub fn take() -> Vec<Note> {
    NOTES.with(|notes| notes.borrow_mut().take().unwrap_or_default())
}

/// Installs the recorder as the process's subscriber, once. Returns `false` if another
/// subscriber was installed first (then nothing is recorded, and the soak says so).
pub fn install() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Recorder).is_ok())
}

/// The subscriber: `p11_session` events only, kept by the thread that made them.
struct Recorder;

fn wanted(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && metadata.target().starts_with("p11_session")
}

impl Subscriber for Recorder {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if wanted(metadata) {
            // Whether an event is kept depends on the thread: ask every time.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        wanted(metadata) && NOTES.with(|notes| notes.borrow().is_some())
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are never enabled (only events are), but an id must not be zero.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let note = Note {
            level: *event.metadata().level(),
            message: fields.message,
            error: fields.error,
        };
        NOTES.with(|notes| {
            if let Some(notes) = notes.borrow_mut().as_mut() {
                notes.push(note);
            }
        });
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// The two fields the soak reads.
#[derive(Default)]
struct Fields {
    message: String,
    error: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "error" => self.error = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_started_and_only_p11_session() {
        assert!(install());
        tracing::info!(target: "p11_session::recovery", error = %"C_Sign: CKR_DEVICE_ERROR", "not recording yet");
        start();
        tracing::info!(target: "p11_session::recovery", error = %"C_Sign: CKR_DEVICE_ERROR", "signing failed: repairing, then retrying once");
        tracing::warn!(target: "pdfsign", "another crate");
        let notes = take();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].is_repair());
        assert_eq!(notes[0].error.as_deref(), Some("C_Sign: CKR_DEVICE_ERROR"));
        assert_eq!(notes[0].level, Level::INFO);
        tracing::info!(target: "p11_session::recovery", "after take");
        assert!(take().is_empty());
    }
}
