//! Which keys are worth a Redis round trip the first time this instance
//! sees them.
//!
//! A lookup is a round trip to Redis, and so is a store: on a pure miss (a
//! key nobody asked for yet: a random cursor, a search with unique
//! variables) they are all the cache costs, about a tenth of a request
//! served from Postgres on two shared cores. Both pay off only sometimes:
//!
//! - A lookup of a key this instance never saw can only find an entry
//!   *another* instance (or an earlier process) stored: what this instance
//!   stored itself, it has seen.
//! - Storing a result pays off only if the key is asked for again while the
//!   entry is fresh.
//!
//! [`Sightings`] remembers which keys this instance saw, and measures both
//! over windows of [`WINDOW`] first sightings:
//!
//! - While at least one in [`PAYS_OFF`] first-sighting lookups finds
//!   something (an entry, or another request computing it), every first
//!   sighting is looked up: the start, and a fleet sharing one Redis.
//!   Otherwise only one in [`PROBE_EVERY`] is, to notice when that changes.
//! - While at least one in [`PAYS_OFF`] keys seen a first time is seen a
//!   second time, the first sightings not looked up are stored all the same
//!   (with the counters the latest lookup read, [`Counters`]): a query run
//!   twice is a hit the second time. Otherwise they are executed and not
//!   stored; their second sighting is looked up, misses and is stored
//!   (admission on the second sighting, as a CDN's "one-hit wonder"
//!   filter).
//!
//! A key seen before is always looked up and stored. Nothing here can
//! serve anything stale: skipping only means executing against Postgres.
//! What it costs: with lookups skipped, a key another instance stored
//! before this one first sees it is executed once more here; with stores
//! skipped, a key asked for twice is executed twice. Later requests hit as
//! before. A new key evicts the one in its slot, so a key can be forgotten
//! (at 4,000 new keys per second, after about two minutes; longer than
//! entries stay fresh) and count as new again.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

/// Remembered keys: one fingerprint per slot (4 MiB).
pub const SLOTS: usize = 1 << 19;
/// First sightings (and their lookups) per decision.
pub const WINDOW: u64 = 64;
/// Look up (or store) first sightings while at least one in this many pays off.
pub const PAYS_OFF: u64 = 8;
/// While lookups are skipped, one first sighting in this many is still looked up.
pub const PROBE_EVERY: u64 = 32;

/// The epoch and generation counters, as one reply read them together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Counters {
    /// Epoch (compared first: a bump moves it past every older pair).
    pub epoch: u64,
    /// Generation.
    pub generation: u64,
}

/// What to do with a cacheable request's key.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Seen before: look it up.
    Seen,
    /// Never seen here; look it up and report what it found
    /// ([`Sightings::probed`]).
    Probe,
    /// Never seen here, and such lookups rarely find anything: execute at
    /// once; store with these counters, or (`None`) not at all.
    Execute(Option<Counters>),
}

/// A window's two counts in one word: high 32 bits and low 32 bits.
struct Window(AtomicU64);

impl Window {
    /// Adds to both counts; when the high one reaches [`WINDOW`], returns
    /// both and starts a new window (once: a count racing the reset may be
    /// lost, the policy is a statistic).
    fn add(&self, high: u64, low: u64) -> Option<(u64, u64)> {
        let add = (high << 32) | low;
        let now = self.0.fetch_add(add, Ordering::Relaxed) + add;
        let (h, l) = (now >> 32, now & 0xffff_ffff);
        (h >= WINDOW
            && self
                .0
                .compare_exchange(now, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then_some((h, l))
    }
}

/// The sightings table and the first-sighting policy of one instance.
pub struct Sightings {
    /// A key's fingerprint (bit 0 clear), with bit 0 set once seen again.
    slots: Box<[AtomicU64]>,
    /// First sightings so far (picks the probes).
    firsts: AtomicU64,
    /// First-sighting lookups, and those that found something.
    lookups: Window,
    /// First sightings, and keys seen a second time.
    reuse: Window,
    /// Whether every first sighting is looked up.
    look_up_all: AtomicBool,
    /// Whether first sightings not looked up are stored.
    store_firsts: AtomicBool,
    /// The highest counters a lookup read lately; `None` until one did, and
    /// again after this instance bumped the epoch.
    counters: Mutex<Option<Counters>>,
}

impl Default for Sightings {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl Sightings {
    /// A table of `slots` (a power of two).
    pub fn with_slots(slots: usize) -> Self {
        assert!(slots.is_power_of_two());
        Self {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            firsts: AtomicU64::new(0),
            lookups: Window(AtomicU64::new(0)),
            reuse: Window(AtomicU64::new(0)),
            look_up_all: AtomicBool::new(true),
            store_firsts: AtomicBool::new(true),
            counters: Mutex::new(None),
        }
    }

    /// Records a sighting of `hash` (the request's hex key) and says what
    /// to do with it.
    pub fn plan(&self, hash: &str) -> Plan {
        let fp = fingerprint(hash);
        let slot = &self.slots[(fp >> 1) as usize & (self.slots.len() - 1)];
        let held = slot.load(Ordering::Relaxed);
        if held & !1 == fp {
            if held & 1 == 0 {
                slot.fetch_or(1, Ordering::Relaxed);
                self.count_reuse(0, 1);
            }
            return Plan::Seen;
        }
        slot.store(fp, Ordering::Relaxed);
        self.count_reuse(1, 0);
        let first = self.firsts.fetch_add(1, Ordering::Relaxed);
        if self.look_up_all.load(Ordering::Relaxed) || first.is_multiple_of(PROBE_EVERY) {
            return Plan::Probe;
        }
        if !self.store_firsts.load(Ordering::Relaxed) {
            return Plan::Execute(None);
        }
        match self.counters() {
            Some(c) => Plan::Execute(Some(c)),
            None => Plan::Probe,
        }
    }

    fn count_reuse(&self, firsts: u64, seconds: u64) {
        if let Some((firsts, seconds)) = self.reuse.add(firsts, seconds) {
            self.store_firsts
                .store(seconds * PAYS_OFF >= firsts, Ordering::Relaxed);
        }
    }

    /// What a probe's lookup found: `useful` when an entry or another
    /// request computing it.
    pub fn probed(&self, useful: bool) {
        if let Some((looked, found)) = self.lookups.add(1, u64::from(useful)) {
            self.look_up_all
                .store(found * PAYS_OFF >= looked, Ordering::Relaxed);
        }
    }

    /// Whether every first sighting is looked up now.
    pub fn looks_up_all(&self) -> bool {
        self.look_up_all.load(Ordering::Relaxed)
    }

    /// Whether first sightings not looked up are stored now.
    pub fn stores_firsts(&self) -> bool {
        self.store_firsts.load(Ordering::Relaxed)
    }

    /// Takes counters a lookup read (kept when higher than those held).
    pub fn saw(&self, c: Counters) {
        if let Ok(mut held) = self.counters.lock()
            && held.is_none_or(|h| c > h)
        {
            *held = Some(c);
        }
    }

    /// Forgets the counters (this instance bumped the epoch: until a lookup
    /// reads the new ones, first sightings are looked up).
    pub fn forget_counters(&self) {
        if let Ok(mut held) = self.counters.lock() {
            *held = None;
        }
    }

    fn counters(&self) -> Option<Counters> {
        self.counters.lock().ok().and_then(|held| *held)
    }
}

/// 63 bits of the key (itself a SHA-256 in hex) in bits 1 to 63, never 0
/// (an empty slot).
fn fingerprint(hash: &str) -> u64 {
    let head = hash.get(..16).unwrap_or(hash);
    let bits = u64::from_str_radix(head, 16).unwrap_or_else(|_| {
        hash.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    });
    (bits & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Counters = Counters {
        epoch: 3,
        generation: 9,
    };

    fn key(i: u64) -> String {
        format!(
            "{:016x}{}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            "0".repeat(48)
        )
    }

    /// A window of first-sighting lookups, `useful` of which found something.
    fn lookups_found(s: &Sightings, useful: u64) {
        for i in 0..WINDOW {
            s.probed(i < useful);
        }
    }

    #[test]
    fn a_key_seen_before_is_always_looked_up() {
        let s = Sightings::with_slots(1 << 10);
        lookups_found(&s, 0);
        s.saw(C);
        assert_eq!(s.plan(&key(1)), Plan::Probe);
        assert_eq!(s.plan(&key(1)), Plan::Seen);
        assert!(matches!(s.plan(&key(2)), Plan::Execute(_)));
        assert_eq!(s.plan(&key(1)), Plan::Seen);
        assert_eq!(s.plan(&key(2)), Plan::Seen);
    }

    #[test]
    fn first_sightings_are_looked_up_while_their_lookups_find_something() {
        let s = Sightings::with_slots(1 << 12);
        s.saw(C);
        // at the start every first sighting is looked up (these keys are
        // all asked for twice: their results are worth storing)
        for i in 0..WINDOW {
            assert_eq!(s.plan(&key(i)), Plan::Probe);
            assert_eq!(s.plan(&key(i)), Plan::Seen);
        }
        assert!(s.stores_firsts());
        lookups_found(&s, WINDOW / PAYS_OFF - 1);
        assert!(!s.looks_up_all());
        // fewer first sightings than a window: results are still stored
        let n = WINDOW - 2;
        let plans: Vec<Plan> = (100..100 + n).map(|i| s.plan(&key(i))).collect();
        let probes = plans.iter().filter(|p| **p == Plan::Probe).count();
        assert_eq!(
            probes as u64,
            n.div_ceil(PROBE_EVERY),
            "one in PROBE_EVERY is still looked up: {plans:?}"
        );
        assert!(
            plans
                .iter()
                .all(|p| matches!(p, Plan::Probe | Plan::Execute(Some(C))))
        );
        lookups_found(&s, WINDOW / PAYS_OFF);
        assert!(s.looks_up_all());
        assert_eq!(s.plan(&key(200)), Plan::Probe);
    }

    #[test]
    fn first_sightings_are_stored_while_keys_are_asked_for_twice() {
        let s = Sightings::with_slots(1 << 12);
        s.saw(C);
        lookups_found(&s, 0);
        // a window of keys asked for once
        for i in 0..WINDOW {
            s.plan(&key(i));
        }
        assert!(!s.stores_firsts());
        let plans: Vec<Plan> = (100..100 + PROBE_EVERY).map(|i| s.plan(&key(i))).collect();
        assert_eq!(plans.iter().filter(|p| **p == Plan::Probe).count(), 1);
        assert!(
            plans
                .iter()
                .all(|p| matches!(p, Plan::Probe | Plan::Execute(None)))
        );
        // the second sighting of a key not stored is looked up (and stored)
        assert_eq!(s.plan(&key(101)), Plan::Seen);
        // a window in which one key in four came back
        for i in 200..200 + WINDOW {
            s.plan(&key(i));
            if i % 4 == 0 {
                s.plan(&key(i));
            }
        }
        assert!(s.stores_firsts());
    }

    #[test]
    fn skipped_lookups_store_with_the_highest_counters_read() {
        let s = Sightings::with_slots(1 << 12);
        lookups_found(&s, 0);
        // no counters yet: looked up (fewer first sightings in all than a
        // window, so results stay worth storing)
        assert!((1..=4).all(|i| s.plan(&key(i)) == Plan::Probe));
        s.saw(C);
        s.saw(Counters {
            epoch: 3,
            generation: 8,
        });
        let plans: Vec<Plan> = (100..100 + PROBE_EVERY).map(|i| s.plan(&key(i))).collect();
        assert!(
            plans.contains(&Plan::Execute(Some(C))),
            "the highest counters: {plans:?}"
        );
        s.forget_counters();
        assert!((200..204).all(|i| s.plan(&key(i)) == Plan::Probe));
    }
}
