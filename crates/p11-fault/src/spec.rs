//! The fault spec: a small line format, parsed here (see the crate docs for the
//! grammar). Parsing is pure; [`crate::engine`] applies the directives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cryptoki_sys::CK_RV;
use p11_raw::Rv;

use crate::functions::Func;

/// One line of a spec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Directive {
    /// `seed N`: the default seed of the rules added after it.
    Seed(u64),
    /// `module PATH`: the real module (read at the first `C_Initialize`).
    Module(PathBuf),
    /// `latency ...`
    Latency(LatencySpec),
    /// `fault ...`
    Fault(FaultSpec),
    /// `event ...`
    Event(EventSpec),
    /// `enable NAME` (true) or `disable NAME` (false).
    Enable(String, bool),
    /// `clear [faults|events|latency|all]`, within a scope.
    Clear(ClearWhat, Option<u64>),
}

/// What a `clear` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClearWhat {
    All,
    Faults,
    Events,
    Latency,
}

/// Added latency: `latency [FUNCTION] MIN[..MAX] [slot=S]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LatencySpec {
    pub(crate) function: Option<Func>,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) slot: Option<u64>,
}

/// When a fault rule fires among the calls it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Trigger {
    /// Matching calls number N, 2N, 3N, ... (after `after`).
    Every(u64),
    /// Each matching call with this probability, from the rule's seeded stream.
    Probability(f64),
}

/// What else a fault does besides returning its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Make the real module agree with the lie (close the session, log out, ...).
    State,
    /// Only what every error implies by the standard: an active operation ends.
    None,
}

/// `fault FUNCTION|* RV (every=N | p=P) [after=N] [limit=N] [slot=S] [name=X]
/// [seed=N] [effect=none]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultSpec {
    pub(crate) function: Option<Func>,
    pub(crate) rv: CK_RV,
    pub(crate) trigger: Trigger,
    pub(crate) after: u64,
    pub(crate) limit: Option<u64>,
    pub(crate) slot: Option<u64>,
    pub(crate) name: Option<String>,
    pub(crate) seed: Option<u64>,
    pub(crate) effect: Effect,
}

/// The events the proxy can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Log the application out of the token (`C_Logout` on a private session).
    Logout,
    /// Close every session with the token (`C_CloseAllSessions`).
    CloseAll,
    /// "Remove" the token for a while: its slot answers `CKR_TOKEN_NOT_PRESENT`, its
    /// sessions `CKR_DEVICE_REMOVED`, and the real sessions are closed.
    Remove,
    /// Put a removed token back before its time is up.
    Insert,
    /// Renumber the object handles the proxy hands out: old ones become invalid.
    StaleHandles,
}

impl EventKind {
    /// Every kind, in counter order.
    pub const ALL: [EventKind; 5] = [
        EventKind::Logout,
        EventKind::CloseAll,
        EventKind::Remove,
        EventKind::Insert,
        EventKind::StaleHandles,
    ];

    /// The spec's name for it (`close-all`).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Logout => "logout",
            EventKind::CloseAll => "close-all",
            EventKind::Remove => "remove",
            EventKind::Insert => "insert",
            EventKind::StaleHandles => "stale",
        }
    }

    /// Parses a spec name.
    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == text)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// When a scheduled event fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// At matching calls number N, 2N, ...
    EveryCalls(u64),
    /// At the first call after each period has passed.
    Period(Duration),
}

/// `event KIND (every=N | period=D) [duration=D] [slot=S] [name=X]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventSpec {
    pub(crate) kind: EventKind,
    pub(crate) schedule: Schedule,
    pub(crate) duration: Duration,
    pub(crate) slot: Option<u64>,
    pub(crate) name: Option<String>,
}

/// A line the parser refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec line {line} ({text:?}): {reason}")]
pub struct SpecError {
    /// 1-based line number (`;` separates lines too).
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a spec. Lines are separated by newlines or `;`; `#` starts a comment.
/// Rules without a `slot=` get `default_slot`.
pub(crate) fn parse(text: &str, default_slot: Option<u64>) -> Result<Vec<Directive>, SpecError> {
    let mut out = Vec::new();
    for (index, raw) in text.split(['\n', ';']).enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let directive = parse_line(line, default_slot).map_err(|reason| SpecError {
            line: index + 1,
            text: raw.trim().to_owned(),
            reason,
        })?;
        out.push(directive);
    }
    Ok(out)
}

fn parse_line(line: &str, default_slot: Option<u64>) -> Result<Directive, String> {
    let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    match keyword {
        "seed" => Ok(Directive::Seed(number(rest, "seed")?)),
        "module" if rest.is_empty() => Err("`module` needs a path".into()),
        "module" => Ok(Directive::Module(PathBuf::from(rest))),
        "enable" | "disable" if valid_name(rest) => {
            Ok(Directive::Enable(rest.to_owned(), keyword == "enable"))
        }
        "enable" | "disable" => Err(format!("`{keyword}` needs a rule name")),
        "clear" => {
            let mut words = Words::new(rest);
            let what = match words.positional() {
                None | Some("all") => ClearWhat::All,
                Some("faults") => ClearWhat::Faults,
                Some("events") => ClearWhat::Events,
                Some("latency") => ClearWhat::Latency,
                Some(other) => return Err(format!("cannot clear {other:?}")),
            };
            let slot = words.slot(default_slot)?;
            words.finish()?;
            Ok(Directive::Clear(what, slot))
        }
        "latency" => latency(rest, default_slot).map(Directive::Latency),
        "fault" => fault(rest, default_slot).map(Directive::Fault),
        "event" => event(rest, default_slot).map(Directive::Event),
        other => Err(format!(
            "unknown directive {other:?} (seed, module, latency, fault, event, enable, \
             disable, clear)"
        )),
    }
}

fn latency(rest: &str, default_slot: Option<u64>) -> Result<LatencySpec, String> {
    let mut words = Words::new(rest);
    let first = words.positional().ok_or("`latency` needs a duration")?;
    let (function, range) = match words.positional() {
        Some(range) => (function_or_any(first)?, range),
        None => (None, first),
    };
    let (min, max) = match range.split_once("..") {
        Some((a, b)) => (duration(a)?, duration(b)?),
        None => (duration(range)?, duration(range)?),
    };
    if max < min {
        return Err(format!("latency range {range:?} runs backwards"));
    }
    let slot = words.slot(default_slot)?;
    words.finish()?;
    Ok(LatencySpec {
        function,
        min,
        max,
        slot,
    })
}

fn fault(rest: &str, default_slot: Option<u64>) -> Result<FaultSpec, String> {
    let mut words = Words::new(rest);
    let function = function_or_any(words.positional().ok_or("`fault` needs a function")?)?;
    let rv = return_value(words.positional().ok_or("`fault` needs a CKR_ code")?)?;
    if rv == cryptoki_sys::CKR_OK {
        return Err("injecting CKR_OK is no fault".into());
    }
    let every = words
        .option("every")
        .map(|v| number(v, "every"))
        .transpose()?;
    let p = words.option("p").map(probability).transpose()?;
    let trigger = match (every, p) {
        (Some(0), _) => return Err("every=0 never fires: use disable".into()),
        (Some(n), None) => Trigger::Every(n),
        (None, Some(p)) => Trigger::Probability(p),
        _ => return Err("a fault needs exactly one of every=N and p=P".into()),
    };
    let after = words
        .option("after")
        .map(|v| number(v, "after"))
        .transpose()?
        .unwrap_or(0);
    let limit = words
        .option("limit")
        .map(|v| number(v, "limit"))
        .transpose()?;
    let seed = words
        .option("seed")
        .map(|v| number(v, "seed"))
        .transpose()?;
    let name = words.name()?;
    let effect = match words.option("effect") {
        None | Some("state") => Effect::State,
        Some("none") => Effect::None,
        Some(other) => return Err(format!("effect={other:?}: expected state or none")),
    };
    let slot = words.slot(default_slot)?;
    words.finish()?;
    Ok(FaultSpec {
        function,
        rv,
        trigger,
        after,
        limit,
        slot,
        name,
        seed,
        effect,
    })
}

fn event(rest: &str, default_slot: Option<u64>) -> Result<EventSpec, String> {
    let mut words = Words::new(rest);
    let kind_text = words.positional().ok_or("`event` needs a kind")?;
    let kind = EventKind::parse(kind_text)
        .filter(|k| *k != EventKind::Insert)
        .ok_or_else(|| format!("unknown event {kind_text:?} (logout, close-all, remove, stale)"))?;
    let every = words
        .option("every")
        .map(|v| number(v, "every"))
        .transpose()?;
    let period = words.option("period").map(duration).transpose()?;
    let schedule = match (every, period) {
        (Some(0), _) => return Err("every=0 never fires".into()),
        (_, Some(Duration::ZERO)) => return Err("period=0 would fire at every call".into()),
        (Some(n), None) => Schedule::EveryCalls(n),
        (None, Some(d)) => Schedule::Period(d),
        _ => return Err("an event needs exactly one of every=N and period=D".into()),
    };
    let duration = match (kind, words.option("duration").map(duration).transpose()?) {
        (EventKind::Remove, Some(d)) => d,
        (EventKind::Remove, None) => return Err("`event remove` needs duration=D".into()),
        (_, Some(_)) => return Err("only `event remove` takes a duration".into()),
        (_, None) => Duration::ZERO,
    };
    let name = words.name()?;
    let slot = words.slot(default_slot)?;
    words.finish()?;
    Ok(EventSpec {
        kind,
        schedule,
        duration,
        slot,
        name,
    })
}

/// The words of a line: positionals first, then `key=value` options in any order.
struct Words<'a> {
    positionals: std::collections::VecDeque<&'a str>,
    options: Vec<(&'a str, &'a str)>,
}

impl<'a> Words<'a> {
    fn new(rest: &'a str) -> Words<'a> {
        let mut positionals = std::collections::VecDeque::new();
        let mut options = Vec::new();
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) => options.push((k, v)),
                None => positionals.push_back(word),
            }
        }
        Words {
            positionals,
            options,
        }
    }

    fn positional(&mut self) -> Option<&'a str> {
        self.positionals.pop_front()
    }

    fn option(&mut self, key: &str) -> Option<&'a str> {
        let at = self.options.iter().position(|(k, _)| *k == key)?;
        Some(self.options.remove(at).1)
    }

    fn slot(&mut self, default_slot: Option<u64>) -> Result<Option<u64>, String> {
        match self.option("slot") {
            Some("any") => Ok(None),
            Some(v) => number(v, "slot").map(Some),
            None => Ok(default_slot),
        }
    }

    fn name(&mut self) -> Result<Option<String>, String> {
        match self.option("name") {
            Some(n) if valid_name(n) => Ok(Some(n.to_owned())),
            Some(n) => Err(format!("name={n:?}: use letters, digits, '-', '_', '.'")),
            None => Ok(None),
        }
    }

    fn finish(self) -> Result<(), String> {
        if let Some(extra) = self.positionals.front() {
            return Err(format!("unexpected {extra:?}"));
        }
        if let Some((k, _)) = self.options.first() {
            return Err(format!("unknown or repeated option {k:?}"));
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn number(text: &str, what: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{what}: {text:?} is not a number"))
}

fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("p={text:?}: expected a probability from 0 to 1")),
    }
}

/// `250us`, `2ms`, `3s`, or `0`.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (like 250us, 2ms, 3s)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let value: u64 = text[..split].parse().map_err(|_| bad())?;
    match &text[split..] {
        "us" => Ok(Duration::from_micros(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        _ => Err(bad()),
    }
}

fn function_or_any(text: &str) -> Result<Option<Func>, String> {
    if text == "*" {
        return Ok(None);
    }
    match Func::parse(text) {
        Some(f) if f.injectable() => Ok(Some(f)),
        Some(f) => Err(format!("{f} cannot be faulted or delayed")),
        None => Err(format!("unknown function {text:?}")),
    }
}

/// A `CKR_` name (with or without the prefix) or a number.
pub(crate) fn return_value(text: &str) -> Result<CK_RV, String> {
    if let Some(hex) = text.strip_prefix("0x") {
        return CK_RV::from_str_radix(hex, 16).map_err(|_| format!("{text:?} is not a number"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("CKR_") {
        upper
    } else {
        format!("CKR_{upper}")
    };
    rv_names()
        .get(name.as_str())
        .copied()
        .ok_or_else(|| format!("unknown return value {text:?}"))
}

/// Every standard `CKR_` name, from p11-raw's table (so the two never disagree). The
/// standard codes all lie below 0x300.
fn rv_names() -> &'static HashMap<&'static str, CK_RV> {
    static NAMES: OnceLock<HashMap<&'static str, CK_RV>> = OnceLock::new();
    NAMES.get_or_init(|| {
        (0..0x300)
            .filter_map(|raw| Rv::from_raw(raw).name().map(|name| (name, raw)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::*;

    #[test]
    fn a_full_spec_parses() {
        let text = "\
            # a comment\n\
            seed 7\n\
            module /usr/lib/softhsm/libsofthsm2.so\n\
            latency 2ms\n\
            latency C_Sign 1ms..3ms slot=4\n\
            fault C_Sign CKR_DEVICE_ERROR every=10 after=2 limit=3 name=sign-err\n\
            fault * SESSION_CLOSED p=0.01 seed=9 effect=none   # trailing comment\n\
            event remove period=5s duration=200ms slot=1; event stale every=1000\n\
            disable sign-err\n\
            clear latency\n";
        let all = parse(text, None).unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], Directive::Seed(7));
        assert_eq!(
            all[1],
            Directive::Module("/usr/lib/softhsm/libsofthsm2.so".into())
        );
        assert_eq!(
            all[3],
            Directive::Latency(LatencySpec {
                function: Some(Func::Sign),
                min: Duration::from_millis(1),
                max: Duration::from_millis(3),
                slot: Some(4),
            })
        );
        let Directive::Fault(f) = &all[4] else {
            panic!("{:?}", all[4])
        };
        assert_eq!(
            (f.function, f.rv, f.trigger, f.after, f.limit),
            (
                Some(Func::Sign),
                CKR_DEVICE_ERROR,
                Trigger::Every(10),
                2,
                Some(3)
            )
        );
        assert_eq!(f.name.as_deref(), Some("sign-err"));
        let Directive::Fault(f) = &all[5] else {
            panic!("{:?}", all[5])
        };
        assert_eq!(
            (f.function, f.rv, f.trigger, f.seed, f.effect),
            (
                None,
                CKR_SESSION_CLOSED,
                Trigger::Probability(0.01),
                Some(9),
                Effect::None
            )
        );
        assert_eq!(
            all[6],
            Directive::Event(EventSpec {
                kind: EventKind::Remove,
                schedule: Schedule::Period(Duration::from_secs(5)),
                duration: Duration::from_millis(200),
                slot: Some(1),
                name: None,
            })
        );
        assert_eq!(all[8], Directive::Enable("sign-err".into(), false));
        assert_eq!(all[9], Directive::Clear(ClearWhat::Latency, None));
    }

    #[test]
    fn the_default_slot_applies_unless_overridden() {
        let Directive::Fault(f) = &parse("fault C_Login 0x30 every=1", Some(5)).unwrap()[0] else {
            panic!()
        };
        assert_eq!((f.slot, f.rv), (Some(5), CKR_DEVICE_ERROR));
        let Directive::Fault(f) =
            &parse("fault C_Login 0x30 every=1 slot=any", Some(5)).unwrap()[0]
        else {
            panic!()
        };
        assert_eq!(f.slot, None);
        assert_eq!(
            parse("clear", Some(5)).unwrap(),
            vec![Directive::Clear(ClearWhat::All, Some(5))]
        );
    }

    #[test]
    fn mistakes_name_the_line_and_the_reason() {
        for (text, reason) in [
            ("fault C_Nope CKR_DEVICE_ERROR every=1", "unknown function"),
            ("fault C_Sign CKR_NOPE every=1", "unknown return value"),
            ("fault C_Sign CKR_OK every=1", "no fault"),
            ("fault C_Sign DEVICE_ERROR", "exactly one of"),
            ("fault C_Sign DEVICE_ERROR every=2 p=0.5", "exactly one of"),
            ("fault C_Sign DEVICE_ERROR p=1.5", "probability"),
            (
                "fault C_Initialize DEVICE_ERROR every=1",
                "cannot be faulted",
            ),
            (
                "fault C_Sign DEVICE_ERROR every=1 colour=red",
                "unknown or repeated",
            ),
            ("event remove every=3", "needs duration"),
            ("event logout every=3 duration=1s", "only `event remove`"),
            ("event reboot every=3", "unknown event"),
            ("latency 5ms..1ms", "backwards"),
            ("latency 5 minutes", "unknown function"),
            ("latency 5", "not a duration"),
            ("frobnicate", "unknown directive"),
        ] {
            let err = parse(&format!("seed 1\n{text}"), None).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(err.reason.contains(reason), "{text}: {}", err.reason);
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("3s"), Ok(Duration::from_secs(3)));
        assert!(duration("3h").is_err());
        assert!(duration("ms").is_err());
    }

    #[test]
    fn return_values_by_name_or_number() {
        assert_eq!(return_value("CKR_DEVICE_REMOVED"), Ok(CKR_DEVICE_REMOVED));
        assert_eq!(
            return_value("user_not_logged_in"),
            Ok(CKR_USER_NOT_LOGGED_IN)
        );
        assert_eq!(return_value("0x80000001"), Ok(0x8000_0001));
    }
}
