//! Counters, per slot: calls per function, faults per code, synthesised answers per
//! code, events per kind. Calls are atomics on the hot path; the per-code maps are
//! touched only when something is injected.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cryptoki_sys::CK_RV;

use crate::functions::{COUNT, Func};
use crate::spec::EventKind;
use crate::sync::{lock, read, write};

/// The counters of one scope (a slot, or the calls that name no slot).
pub(crate) struct Tally {
    calls: [AtomicU64; COUNT],
    faults: Mutex<BTreeMap<CK_RV, u64>>,
    answers: Mutex<BTreeMap<CK_RV, u64>>,
    events: [AtomicU64; EventKind::ALL.len()],
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            faults: Mutex::default(),
            answers: Mutex::default(),
            events: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Tally {
    pub(crate) fn call(&self, func: Func) {
        self.calls[func.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A code a fault rule injected.
    pub(crate) fn fault(&self, rv: CK_RV) {
        *lock(&self.faults).entry(rv).or_default() += 1;
    }

    /// A code the proxy answered because of an event's state (a removed token, a stale
    /// handle), not because a rule fired.
    pub(crate) fn answer(&self, rv: CK_RV) {
        *lock(&self.answers).entry(rv).or_default() += 1;
    }

    pub(crate) fn event(&self, kind: EventKind) {
        self.events[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every scope's counters. `None` holds calls that name no slot (`C_GetInfo`,
/// `C_GetSlotList`, calls on unknown sessions).
#[derive(Default)]
pub(crate) struct Tallies {
    scopes: RwLock<HashMap<Option<u64>, Arc<Tally>>>,
}

impl Tallies {
    pub(crate) fn of(&self, slot: Option<u64>) -> Arc<Tally> {
        if let Some(t) = read(&self.scopes).get(&slot) {
            return Arc::clone(t);
        }
        Arc::clone(write(&self.scopes).entry(slot).or_default())
    }

    /// Forgets the counters of one scope (`Some(slot)`), or of all (`None`).
    pub(crate) fn reset(&self, slot: Option<u64>) {
        let mut scopes = write(&self.scopes);
        match slot {
            Some(s) => {
                scopes.remove(&Some(s));
            }
            None => scopes.clear(),
        }
    }

    /// The counters of one slot, or the sum over every scope, as the text lines the
    /// control API reads back (see [`crate::Counters`]):
    /// `call C_Sign 12`, `fault 0x30 3`, `answer 0xe0 1`, `event logout 2`.
    pub(crate) fn render(&self, slot: Option<u64>) -> String {
        let scopes: Vec<Arc<Tally>> = {
            let all = read(&self.scopes);
            match slot {
                Some(s) => all.get(&Some(s)).cloned().into_iter().collect(),
                None => all.values().cloned().collect(),
            }
        };
        let mut calls = [0u64; COUNT];
        let mut faults = BTreeMap::<CK_RV, u64>::new();
        let mut answers = BTreeMap::<CK_RV, u64>::new();
        let mut events = [0u64; EventKind::ALL.len()];
        for tally in &scopes {
            for (sum, n) in calls.iter_mut().zip(&tally.calls) {
                *sum += n.load(Ordering::Relaxed);
            }
            for (rv, n) in lock(&tally.faults).iter() {
                *faults.entry(*rv).or_default() += n;
            }
            for (rv, n) in lock(&tally.answers).iter() {
                *answers.entry(*rv).or_default() += n;
            }
            for (sum, n) in events.iter_mut().zip(&tally.events) {
                *sum += n.load(Ordering::Relaxed);
            }
        }
        let mut out = String::new();
        for (func, n) in Func::ALL.iter().zip(calls) {
            if n > 0 {
                let _ = writeln!(out, "call {} {n}", func.name());
            }
        }
        for (rv, n) in faults {
            let _ = writeln!(out, "fault {rv:#x} {n}");
        }
        for (rv, n) in answers {
            let _ = writeln!(out, "answer {rv:#x} {n}");
        }
        for (kind, n) in EventKind::ALL.iter().zip(events) {
            if n > 0 {
                let _ = writeln!(out, "event {} {n}", kind.name());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_scopes_or_shows_one() {
        let tallies = Tallies::default();
        tallies.of(Some(1)).call(Func::Sign);
        tallies.of(Some(1)).fault(0x30);
        tallies.of(Some(2)).call(Func::Sign);
        tallies.of(Some(2)).answer(0xe0);
        tallies.of(None).event(EventKind::CloseAll);
        assert_eq!(tallies.render(Some(1)), "call C_Sign 1\nfault 0x30 1\n");
        assert_eq!(
            tallies.render(None),
            "call C_Sign 2\nfault 0x30 1\nanswer 0xe0 1\nevent close-all 1\n"
        );
        tallies.reset(Some(1));
        assert_eq!(tallies.render(Some(1)), "");
        tallies.reset(None);
        assert_eq!(tallies.render(None), "");
    }
}
