//! The rules in force: fault rules, scheduled events and latency, each with its own
//! atomic counters, so a call decides without a lock and a rule's n-th call fails or
//! not whatever thread makes it.
//!
//! A [`RuleSet`] is replaced whole when the spec changes (copy, edit, swap); rules that
//! survive the edit are the same `Arc`s, so their counters carry on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::functions::Func;
use crate::rng;
use crate::spec::{
    ClearWhat, Directive, EventKind, EventSpec, FaultSpec, LatencySpec, Schedule, Trigger,
};

/// Nanoseconds since the first time anyone asked, as a number an atomic can hold.
pub(crate) fn now_nanos() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn slot_matches(rule: Option<u64>, call: Option<u64>) -> bool {
    rule.is_none() || rule == call
}

/// A fault rule and its counters.
pub(crate) struct FaultRule {
    pub(crate) spec: FaultSpec,
    stream: u64,
    enabled: AtomicBool,
    /// Matching calls so far.
    seen: AtomicU64,
    /// Times it fired so far.
    fired: AtomicU64,
}

impl FaultRule {
    fn new(spec: FaultSpec, seed: u64) -> FaultRule {
        // The slot is left out, so the same rule on another token draws the same calls.
        let fingerprint = format!(
            "{} {:#x} {:?} {:?}",
            spec.function.map_or("*", Func::name),
            spec.rv,
            spec.trigger,
            spec.name
        );
        FaultRule {
            stream: rng::stream(spec.seed.unwrap_or(seed), &fingerprint),
            spec,
            enabled: AtomicBool::new(true),
            seen: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    fn matches(&self, func: Func, slot: Option<u64>) -> bool {
        self.enabled.load(Ordering::Relaxed)
            && self.spec.function.is_none_or(|f| f == func)
            && slot_matches(self.spec.slot, slot)
    }

    /// Counts a matching call and says whether this one fails.
    fn decide(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= self.spec.after {
            return false;
        }
        let k = n - self.spec.after;
        let fires = match self.spec.trigger {
            Trigger::Every(every) => k.is_multiple_of(every),
            Trigger::Probability(p) => rng::unit(self.stream, k) < p,
        };
        fires
            && match self.spec.limit {
                None => {
                    self.fired.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Some(limit) => self
                    .fired
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                        (f < limit).then_some(f + 1)
                    })
                    .is_ok(),
            }
    }
}

/// A scheduled event and its counters.
pub(crate) struct EventRule {
    pub(crate) spec: EventSpec,
    enabled: AtomicBool,
    seen: AtomicU64,
    /// When a `period=` event is next due, in [`now_nanos`] time.
    due: AtomicU64,
}

impl EventRule {
    fn new(spec: EventSpec) -> EventRule {
        let due = match spec.schedule {
            Schedule::Period(period) => now_nanos().saturating_add(nanos(period)),
            Schedule::EveryCalls(_) => u64::MAX,
        };
        EventRule {
            spec,
            enabled: AtomicBool::new(true),
            seen: AtomicU64::new(0),
            due: AtomicU64::new(due),
        }
    }

    /// Counts a call in scope and says whether the event fires now. Exactly one caller
    /// wins each firing.
    fn fires(&self, slot: Option<u64>, now: u64) -> bool {
        if !self.enabled.load(Ordering::Relaxed) || !slot_matches(self.spec.slot, slot) {
            return false;
        }
        match self.spec.schedule {
            Schedule::EveryCalls(every) => {
                (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every)
            }
            Schedule::Period(period) => {
                let due = self.due.load(Ordering::Relaxed);
                // After a quiet spell fire once, not once per missed period.
                now >= due
                    && self
                        .due
                        .compare_exchange(
                            due,
                            now.saturating_add(nanos(period)),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
            }
        }
    }
}

/// Added latency for some calls.
pub(crate) struct LatencyRule {
    spec: LatencySpec,
    stream: u64,
    seen: AtomicU64,
}

impl LatencyRule {
    fn delay(&self) -> Duration {
        let LatencySpec { min, max, .. } = self.spec;
        if max == min {
            return min;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        min + (max - min).mul_f64(rng::unit(self.stream, n))
    }

    /// Higher is more specific: a slot and a function beat either, which beat neither.
    fn specificity(&self) -> u8 {
        u8::from(self.spec.slot.is_some()) * 2 + u8::from(self.spec.function.is_some())
    }
}

/// A fired event: what to do, where, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Firing {
    pub(crate) kind: EventKind,
    pub(crate) slot: Option<u64>,
    pub(crate) duration: Duration,
}

/// Every rule in force.
#[derive(Clone, Default)]
pub(crate) struct RuleSet {
    seed: u64,
    faults: Vec<Arc<FaultRule>>,
    events: Vec<Arc<EventRule>>,
    latency: Vec<Arc<LatencyRule>>,
}

impl RuleSet {
    /// Applies one directive (not `module`, which the engine keeps).
    ///
    /// # Errors
    /// `enable`/`disable` of a name no rule has.
    pub(crate) fn apply(&mut self, directive: Directive) -> Result<(), String> {
        match directive {
            Directive::Seed(seed) => self.seed = seed,
            Directive::Module(_) => {}
            Directive::Latency(spec) => {
                // A new latency for the same function and scope replaces the old one.
                self.latency
                    .retain(|l| (l.spec.function, l.spec.slot) != (spec.function, spec.slot));
                let fingerprint = format!("latency {:?}", spec.function);
                self.latency.push(Arc::new(LatencyRule {
                    stream: rng::stream(self.seed, &fingerprint),
                    spec,
                    seen: AtomicU64::new(0),
                }));
            }
            Directive::Fault(spec) => {
                if let Some(name) = &spec.name {
                    self.faults.retain(|f| f.spec.name.as_ref() != Some(name));
                }
                self.faults.push(Arc::new(FaultRule::new(spec, self.seed)));
            }
            Directive::Event(spec) => {
                if let Some(name) = &spec.name {
                    self.events.retain(|e| e.spec.name.as_ref() != Some(name));
                }
                self.events.push(Arc::new(EventRule::new(spec)));
            }
            Directive::Enable(name, on) => {
                let mut found = false;
                for f in self
                    .faults
                    .iter()
                    .filter(|f| f.spec.name == Some(name.clone()))
                {
                    f.enabled.store(on, Ordering::Relaxed);
                    found = true;
                }
                for e in self
                    .events
                    .iter()
                    .filter(|e| e.spec.name == Some(name.clone()))
                {
                    e.enabled.store(on, Ordering::Relaxed);
                    found = true;
                }
                if !found {
                    return Err(format!("no fault or event is named {name:?}"));
                }
            }
            Directive::Clear(what, slot) => {
                // A scoped clear removes that slot's rules; an unscoped one removes all.
                let keep = |rule_slot: Option<u64>| slot.is_some() && rule_slot != slot;
                if matches!(what, ClearWhat::All | ClearWhat::Faults) {
                    self.faults.retain(|f| keep(f.spec.slot));
                }
                if matches!(what, ClearWhat::All | ClearWhat::Events) {
                    self.events.retain(|e| keep(e.spec.slot));
                }
                if matches!(what, ClearWhat::All | ClearWhat::Latency) {
                    self.latency.retain(|l| keep(l.spec.slot));
                }
            }
        }
        Ok(())
    }

    /// The first fault rule that fires for this call. Every matching rule counts the
    /// call, so each rule's call numbers do not depend on the others; when two fire at
    /// once the earlier rule wins and the later one's firing is lost.
    pub(crate) fn fault(&self, func: Func, slot: Option<u64>) -> Option<&FaultSpec> {
        let mut winner = None;
        for rule in self.faults.iter().filter(|r| r.matches(func, slot)) {
            if rule.decide() && winner.is_none() {
                winner = Some(&rule.spec);
            }
        }
        winner
    }

    /// The events due at this call.
    pub(crate) fn due_events(&self, slot: Option<u64>) -> Vec<Firing> {
        if self.events.is_empty() {
            return Vec::new();
        }
        let now = now_nanos();
        self.events
            .iter()
            .filter(|e| e.fires(slot, now))
            .map(|e| Firing {
                kind: e.spec.kind,
                slot: e.spec.slot,
                duration: e.spec.duration,
            })
            .collect()
    }

    /// The latency to add to this call, from the most specific rule that applies.
    pub(crate) fn latency(&self, func: Func, slot: Option<u64>) -> Duration {
        self.latency
            .iter()
            .filter(|l| {
                l.spec.function.is_none_or(|f| f == func) && slot_matches(l.spec.slot, slot)
            })
            .max_by_key(|l| l.specificity())
            .map_or(Duration::ZERO, |l| l.delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    fn rules(text: &str) -> RuleSet {
        let mut set = RuleSet::default();
        for d in parse(text, None).unwrap() {
            set.apply(d).unwrap();
        }
        set
    }

    fn faulted(set: &RuleSet, func: Func, slot: Option<u64>, calls: u64) -> Vec<u64> {
        (1..=calls)
            .filter(|_| set.fault(func, slot).is_some())
            .collect()
    }

    #[test]
    fn every_nth_after_and_limit() {
        let set = rules("fault C_Sign DEVICE_ERROR every=3 after=1 limit=2");
        assert_eq!(faulted(&set, Func::Sign, Some(1), 20), vec![4, 7]);
        // Other functions neither fire nor count.
        assert_eq!(
            faulted(&set, Func::SignInit, Some(1), 20),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn probability_follows_the_seed() {
        let text = "seed 11\nfault C_Sign GENERAL_ERROR p=0.3";
        let a = faulted(&rules(text), Func::Sign, None, 200);
        let b = faulted(&rules(text), Func::Sign, None, 200);
        let c = faulted(
            &rules("seed 12\nfault C_Sign GENERAL_ERROR p=0.3"),
            Func::Sign,
            None,
            200,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!((30..90).contains(&a.len()), "{}", a.len());
    }

    #[test]
    fn slots_scope_rules_and_the_first_rule_wins() {
        let set = rules(
            "fault C_Login DEVICE_ERROR every=2 slot=1\nfault * SESSION_CLOSED every=1 slot=2",
        );
        assert!(set.fault(Func::Login, Some(1)).is_none());
        assert_eq!(
            set.fault(Func::Login, Some(1)).map(|f| f.rv),
            Some(cryptoki_sys::CKR_DEVICE_ERROR)
        );
        assert!(set.fault(Func::Login, Some(3)).is_none());
        assert_eq!(
            set.fault(Func::Sign, Some(2)).map(|f| f.rv),
            Some(cryptoki_sys::CKR_SESSION_CLOSED)
        );
    }

    #[test]
    fn enable_disable_clear_and_replace_by_name() {
        let mut set = rules("fault C_Sign DEVICE_ERROR every=1 name=x slot=1");
        set.apply(Directive::Enable("x".into(), false)).unwrap();
        assert!(set.fault(Func::Sign, Some(1)).is_none());
        set.apply(Directive::Enable("x".into(), true)).unwrap();
        assert!(set.fault(Func::Sign, Some(1)).is_some());
        assert!(set.apply(Directive::Enable("y".into(), true)).is_err());
        for d in parse("fault C_Sign GENERAL_ERROR every=1 name=x slot=1", None).unwrap() {
            set.apply(d).unwrap();
        }
        assert_eq!(set.faults.len(), 1);
        set.apply(Directive::Clear(ClearWhat::All, Some(2)))
            .unwrap();
        assert_eq!(set.faults.len(), 1);
        set.apply(Directive::Clear(ClearWhat::Faults, Some(1)))
            .unwrap();
        assert!(set.faults.is_empty());
    }

    #[test]
    fn events_every_n_calls_in_scope() {
        let set = rules("event logout every=3 slot=1\nevent stale every=2");
        let fired: Vec<Vec<EventKind>> = (0..6)
            .map(|_| {
                set.due_events(Some(1))
                    .into_iter()
                    .map(|f| f.kind)
                    .collect()
            })
            .collect();
        assert_eq!(
            fired,
            vec![
                vec![],
                vec![EventKind::StaleHandles],
                vec![EventKind::Logout],
                vec![EventKind::StaleHandles],
                vec![],
                vec![EventKind::Logout, EventKind::StaleHandles],
            ]
        );
        // Calls on another slot count for the unscoped event only.
        assert!(set.due_events(Some(2)).is_empty());
    }

    #[test]
    fn periodic_events_fire_once_per_period() {
        let set = rules("event close-all period=20ms");
        assert!(set.due_events(None).is_empty());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(set.due_events(None).len(), 1);
        assert!(set.due_events(None).is_empty());
    }

    #[test]
    fn latency_picks_the_most_specific_rule() {
        let set = rules(
            "latency 1ms\nlatency C_Sign 2ms\nlatency 3ms slot=4\nlatency C_Sign 5ms..7ms slot=4",
        );
        assert_eq!(set.latency(Func::Login, None), Duration::from_millis(1));
        assert_eq!(set.latency(Func::Sign, None), Duration::from_millis(2));
        assert_eq!(set.latency(Func::Login, Some(4)), Duration::from_millis(3));
        for _ in 0..50 {
            let d = set.latency(Func::Sign, Some(4));
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(7));
        }
        let set = rules("latency 1ms\nlatency 0");
        assert_eq!(set.latency(Func::Login, None), Duration::ZERO);
    }
}
