//! The proxy's own numbering of sessions and objects, and the removed tokens.
//!
//! **Sessions** get proxy handles that are never reused. A module may give a closed
//! session's number to the next session opened (PKCS#11 allows it; SoftHSM2 2.6 only
//! counts up, but the proxy must not depend on that), so after a close-all that the
//! proxy caused, a caller's stale handle could otherwise reach another thread's new
//! session: two threads on one session, which PKCS#11 forbids. With our own numbers a
//! stale handle always answers `CKR_SESSION_HANDLE_INVALID`.
//!
//! Each session counts the forwarded calls in flight on it. Before the proxy closes
//! real sessions (an event, a fault's effect, a forwarded `C_CloseAllSessions`) it marks
//! them dead, so no new call starts, and waits until the calls already inside the real
//! module have returned: the real module never frees a session another thread is in.
//! Opening a session holds its slot's gate shared; closing every session of a slot
//! holds it exclusively, so a session being opened is never caught half-registered by
//! a close-all. That gate is the one lock held across a forwarded call (only
//! `C_OpenSession`, and only against close-all); signing holds nothing.
//!
//! **Objects** get proxy handles too, so that "stale handles" can be made real: the
//! event forgets a slot's numbers, old ones answer `CKR_OBJECT_HANDLE_INVALID` and the
//! next lookup hands out new ones.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki_sys::{CK_OBJECT_HANDLE, CK_SESSION_HANDLE, CK_SLOT_ID};

use crate::rules::now_nanos;
use crate::sync::{lock, read, write};

/// How long a close waits for calls in flight before giving up on them (a forwarded
/// call that never returns is the real module's bug; the proxy then closes anyway).
const IN_FLIGHT_PATIENCE: Duration = Duration::from_secs(10);

/// A session opened through the proxy.
pub(crate) struct SessionEntry {
    pub(crate) outer: CK_SESSION_HANDLE,
    pub(crate) inner: CK_SESSION_HANDLE,
    pub(crate) slot: CK_SLOT_ID,
    dead: AtomicBool,
    in_flight: AtomicUsize,
}

/// A forwarded call in progress on a session; dropping it ends the call.
pub(crate) struct InFlight<'a>(&'a SessionEntry);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SessionEntry {
    /// Starts a forwarded call, unless the session was retired. `SeqCst` on both sides
    /// (here: count, then check; in [`retire`]: mark, then read the count) means either
    /// this call sees the mark or the retirer sees this call.
    pub(crate) fn begin(&self) -> Option<InFlight<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self);
        (!self.dead.load(Ordering::SeqCst)).then_some(guard)
    }
}

/// Marks sessions dead and waits until no forwarded call is inside any of them. The
/// caller must not itself be in a call on one of them.
pub(crate) fn retire(entries: &[Arc<SessionEntry>]) {
    for e in entries {
        e.dead.store(true, Ordering::SeqCst);
    }
    let start = Instant::now();
    for e in entries {
        while e.in_flight.load(Ordering::SeqCst) > 0 {
            if start.elapsed() > IN_FLIGHT_PATIENCE {
                eprintln!(
                    "p11-fault: a call on session {} is still in the real module after {:?}; \
                     closing it anyway",
                    e.outer, IN_FLIGHT_PATIENCE
                );
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// The sessions opened through the proxy, by proxy handle.
#[derive(Default)]
pub(crate) struct Sessions {
    map: RwLock<HashMap<CK_SESSION_HANDLE, Arc<SessionEntry>>>,
    next: AtomicU64,
    gates: Mutex<HashMap<CK_SLOT_ID, Arc<RwLock<()>>>>,
}

impl Sessions {
    pub(crate) fn get(&self, outer: CK_SESSION_HANDLE) -> Option<Arc<SessionEntry>> {
        read(&self.map).get(&outer).cloned()
    }

    /// Registers a real session and returns its proxy handle.
    pub(crate) fn insert(&self, inner: CK_SESSION_HANDLE, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
        let outer = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(SessionEntry {
            outer,
            inner,
            slot,
            dead: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        });
        write(&self.map).insert(outer, entry);
        outer
    }

    pub(crate) fn remove(&self, outer: CK_SESSION_HANDLE) -> Option<Arc<SessionEntry>> {
        write(&self.map).remove(&outer)
    }

    /// Unregisters every session of `slot` (every session, for `None`).
    pub(crate) fn take_slot(&self, slot: Option<CK_SLOT_ID>) -> Vec<Arc<SessionEntry>> {
        let mut map = write(&self.map);
        let outers: Vec<_> = map
            .values()
            .filter(|e| slot.is_none_or(|s| e.slot == s))
            .map(|e| e.outer)
            .collect();
        outers.into_iter().filter_map(|o| map.remove(&o)).collect()
    }

    /// The slots that have sessions through the proxy.
    pub(crate) fn slots(&self) -> Vec<CK_SLOT_ID> {
        let mut slots: Vec<_> = read(&self.map).values().map(|e| e.slot).collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The gate that keeps opening sessions and closing all of a slot's apart.
    pub(crate) fn gate(&self, slot: CK_SLOT_ID) -> Arc<RwLock<()>> {
        Arc::clone(lock(&self.gates).entry(slot).or_default())
    }
}

#[derive(Default)]
struct ObjectMaps {
    to_inner: HashMap<CK_OBJECT_HANDLE, (CK_SLOT_ID, CK_OBJECT_HANDLE)>,
    to_outer: HashMap<(CK_SLOT_ID, CK_OBJECT_HANDLE), CK_OBJECT_HANDLE>,
    next: CK_OBJECT_HANDLE,
}

/// Proxy object handles, per slot.
#[derive(Default)]
pub(crate) struct Objects {
    maps: RwLock<ObjectMaps>,
}

impl Objects {
    /// The real handle behind a proxy handle; `CK_INVALID_HANDLE` (0) stays 0, since
    /// some functions take it to mean "none".
    pub(crate) fn inner(&self, outer: CK_OBJECT_HANDLE) -> Option<CK_OBJECT_HANDLE> {
        if outer == 0 {
            return Some(0);
        }
        read(&self.maps)
            .to_inner
            .get(&outer)
            .map(|&(_, inner)| inner)
    }

    /// The proxy handle for a real one, minted on first sight.
    pub(crate) fn outer(&self, slot: CK_SLOT_ID, inner: CK_OBJECT_HANDLE) -> CK_OBJECT_HANDLE {
        if inner == 0 {
            return 0;
        }
        if let Some(&outer) = read(&self.maps).to_outer.get(&(slot, inner)) {
            return outer;
        }
        let mut maps = write(&self.maps);
        if let Some(&outer) = maps.to_outer.get(&(slot, inner)) {
            return outer;
        }
        maps.next += 1;
        let outer = maps.next;
        maps.to_outer.insert((slot, inner), outer);
        maps.to_inner.insert(outer, (slot, inner));
        outer
    }

    /// Makes these proxy handles invalid; the objects get new numbers when next seen.
    pub(crate) fn forget(&self, outers: &[CK_OBJECT_HANDLE]) {
        let mut maps = write(&self.maps);
        for outer in outers {
            if let Some(key) = maps.to_inner.remove(outer) {
                maps.to_outer.remove(&key);
            }
        }
    }

    /// Makes every proxy handle of `slot` (of every slot, for `None`) invalid.
    pub(crate) fn forget_slot(&self, slot: Option<CK_SLOT_ID>) {
        let mut maps = write(&self.maps);
        let ObjectMaps {
            to_inner, to_outer, ..
        } = &mut *maps;
        to_inner.retain(|_, (s, _)| slot.is_some_and(|want| *s != want));
        to_outer.retain(|(s, _), _| slot.is_some_and(|want| *s != want));
    }
}

struct Removal {
    /// In [`now_nanos`] time.
    until: u64,
    /// The proxy handles of the sessions the removal killed: they answer
    /// `CKR_DEVICE_REMOVED` while the token is out.
    sessions: HashSet<CK_SESSION_HANDLE>,
}

/// Tokens the proxy pretends are removed.
#[derive(Default)]
pub(crate) struct Removals {
    /// How many removals are recorded: 0 lets every call skip the lock.
    active: AtomicUsize,
    map: Mutex<HashMap<CK_SLOT_ID, Removal>>,
}

impl Removals {
    /// Records that `slot` is out until `for_` from now (a removal already under way
    /// gets the new time).
    pub(crate) fn start(&self, slot: CK_SLOT_ID, for_: Duration) {
        let until = now_nanos().saturating_add(u64::try_from(for_.as_nanos()).unwrap_or(u64::MAX));
        let mut map = lock(&self.map);
        let entry = map.entry(slot).or_insert_with(|| Removal {
            until,
            sessions: HashSet::new(),
        });
        entry.until = until;
        self.active.store(map.len(), Ordering::SeqCst);
    }

    /// Remembers the sessions a removal killed.
    pub(crate) fn add_sessions(&self, slot: CK_SLOT_ID, outers: impl IntoIterator<Item = u64>) {
        if let Some(removal) = lock(&self.map).get_mut(&slot) {
            removal.sessions.extend(outers);
        }
    }

    /// Puts the token back now; false if it was not out.
    pub(crate) fn end(&self, slot: CK_SLOT_ID) -> bool {
        let mut map = lock(&self.map);
        let was = map.remove(&slot).is_some();
        self.active.store(map.len(), Ordering::SeqCst);
        was
    }

    /// Forgets every removal (at `C_Finalize`).
    pub(crate) fn clear(&self) {
        let mut map = lock(&self.map);
        map.clear();
        self.active.store(0, Ordering::SeqCst);
    }

    /// Whether `slot` is out now; an expired removal ends here.
    pub(crate) fn is_removed(&self, slot: CK_SLOT_ID) -> bool {
        if self.active.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut map = lock(&self.map);
        let out = match map.get(&slot) {
            Some(r) if now_nanos() < r.until => true,
            Some(_) => {
                map.remove(&slot);
                false
            }
            None => false,
        };
        self.active.store(map.len(), Ordering::SeqCst);
        out
    }

    /// The slot whose removal killed this session, while that token is still out.
    pub(crate) fn session_slot(&self, outer: CK_SESSION_HANDLE) -> Option<CK_SLOT_ID> {
        if self.active.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let slot = lock(&self.map)
            .iter()
            .find(|(_, r)| r.sessions.contains(&outer))
            .map(|(slot, _)| *slot)?;
        self.is_removed(slot).then_some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_handles_are_never_reused() {
        let sessions = Sessions::default();
        let a = sessions.insert(1, 10);
        assert!(sessions.remove(a).is_some());
        let b = sessions.insert(1, 10);
        assert_ne!(a, b);
        assert!(sessions.get(a).is_none());
        assert_eq!(sessions.get(b).map(|e| e.inner), Some(1));
    }

    #[test]
    fn retired_sessions_refuse_new_calls() {
        let sessions = Sessions::default();
        let a = sessions.insert(1, 10);
        let _b = sessions.insert(2, 11);
        let entry = sessions.get(a).unwrap();
        assert!(entry.begin().is_some());
        let taken = sessions.take_slot(Some(10));
        assert_eq!(taken.len(), 1);
        retire(&taken);
        assert!(entry.begin().is_none());
        assert_eq!(sessions.slots(), vec![11]);
    }

    #[test]
    fn retire_waits_for_calls_in_flight() {
        let sessions = Sessions::default();
        let entry = sessions.get(sessions.insert(1, 10)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let guard = entry.begin().unwrap();
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                done.store(true, Ordering::SeqCst);
                drop(guard);
            });
            retire(std::slice::from_ref(&entry));
            assert!(done.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn objects_get_new_numbers_after_being_forgotten() {
        let objects = Objects::default();
        let a = objects.outer(1, 100);
        assert_eq!(objects.outer(1, 100), a);
        let other_slot = objects.outer(2, 100);
        assert_ne!(a, other_slot);
        assert_eq!(objects.inner(a), Some(100));
        objects.forget_slot(Some(1));
        assert_eq!(objects.inner(a), None);
        assert_eq!(objects.inner(other_slot), Some(100));
        let b = objects.outer(1, 100);
        assert_ne!(a, b);
        objects.forget(&[b]);
        assert_eq!(objects.inner(b), None);
        assert_eq!(objects.inner(0), Some(0));
        objects.forget_slot(None);
        assert_eq!(objects.inner(other_slot), None);
    }

    #[test]
    fn removals_expire_and_remember_their_sessions() {
        let removals = Removals::default();
        assert!(!removals.is_removed(3));
        removals.start(3, Duration::from_millis(40));
        removals.add_sessions(3, [7]);
        assert!(removals.is_removed(3));
        assert_eq!(removals.session_slot(7), Some(3));
        assert_eq!(removals.session_slot(8), None);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!removals.is_removed(3));
        assert_eq!(removals.session_slot(7), None);
        removals.start(3, Duration::from_secs(60));
        assert!(removals.end(3));
        assert!(!removals.is_removed(3));
    }
}
