//! The in-process backend (`REDIS_URL=memory`, or `serve --demo` without a
//! Redis): the same semantics as the Redis backend — tag versions, epoch,
//! fill locks, sliding-window rate limits, persisted queries — for a single
//! instance. A store that raced a write is refused here already (the check
//! is free in process; Redis stores it and its lookups refuse it), and a
//! store releases its fill lock. Bounded: past `MAX_ENTRIES` the expired
//! entries go first, then the oldest tenth.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use super::{Entry, Found, Snapshot, StoreArgs};

const MAX_ENTRIES: usize = 20_000;
const MAX_APQ: usize = 10_000;

struct Stored {
    entry: Entry,
    expires_ms: u64,
    epoch: u64,
    tags: Vec<String>,
    /// Generation the read began at: current while no tag version exceeds it.
    generation: u64,
    inserted: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Stored>,
    versions: HashMap<String, u64>,
    generation: u64,
    epoch: u64,
    locks: HashMap<String, (String, u64)>,
    rates: HashMap<i64, VecDeque<u64>>,
    apq: HashMap<String, String>,
    inserts: u64,
}

/// In-process cache state.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

impl MemoryBackend {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // a poisoned lock only means a panic elsewhere; the maps stay usable
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// See `RedisBackend::lookup`.
    pub fn lookup(&self, hash: &str, now_ms: u64, token: String, lock_px: u64) -> Found {
        self.with(|s| {
            let mut stale = None;
            if let Some(st) = s.entries.get(hash) {
                let valid = st.expires_ms > now_ms
                    && st.epoch == s.epoch
                    && (s.generation == st.generation
                        || st
                            .tags
                            .iter()
                            .all(|t| s.versions.get(t).copied().unwrap_or(0) <= st.generation));
                if valid && st.entry.fresh_until_ms > now_ms {
                    let counters = super::Counters {
                        epoch: s.epoch,
                        generation: s.generation,
                    };
                    return Found::Fresh(st.entry.clone(), counters);
                }
                if valid {
                    stale = Some(st.entry.clone());
                }
            }
            let mut locked = false;
            if lock_px > 0 {
                let free = s.locks.get(hash).is_none_or(|(_, until)| *until <= now_ms);
                if free {
                    s.locks
                        .insert(hash.to_owned(), (token.clone(), now_ms + lock_px));
                    locked = true;
                }
            }
            let snap = Snapshot {
                generation: s.generation,
                epoch: s.epoch,
                locked,
                token,
            };
            match stale {
                Some(entry) => Found::Stale(entry, snap),
                None => Found::Miss(snap),
            }
        })
    }

    /// See `RedisBackend::store`.
    pub fn store(&self, args: &StoreArgs<'_>, now_ms: u64) -> bool {
        let StoreArgs {
            hash,
            snap,
            entry,
            tags,
            px,
        } = *args;
        self.with(|s| {
            let ok = s.epoch == snap.epoch
                && tags
                    .iter()
                    .all(|t| s.versions.get(t).copied().unwrap_or(0) <= snap.generation);
            if ok {
                if s.entries.len() >= MAX_ENTRIES {
                    s.entries.retain(|_, e| e.expires_ms > now_ms);
                    if s.entries.len() >= MAX_ENTRIES {
                        let mut ages: Vec<u64> = s.entries.values().map(|e| e.inserted).collect();
                        ages.sort_unstable();
                        let cutoff = ages[ages.len() / 10];
                        s.entries.retain(|_, e| e.inserted > cutoff);
                    }
                }
                s.inserts += 1;
                let inserted = s.inserts;
                s.entries.insert(
                    hash.to_owned(),
                    Stored {
                        entry: entry.clone(),
                        expires_ms: now_ms + px,
                        epoch: s.epoch,
                        tags: tags.to_vec(),
                        generation: snap.generation,
                        inserted,
                    },
                );
            }
            if s.locks.get(hash).is_some_and(|(t, _)| *t == snap.token) {
                s.locks.remove(hash);
            }
            ok
        })
    }

    /// Releases a fill lock held with `token`.
    pub fn unlock(&self, hash: &str, token: &str) {
        self.with(|s| {
            if s.locks.get(hash).is_some_and(|(t, _)| t == token) {
                s.locks.remove(hash);
            }
        });
    }

    /// Bumps every tag's version.
    pub fn invalidate(&self, tags: &[String]) {
        self.with(|s| {
            s.generation += 1;
            let g = s.generation;
            for t in tags {
                s.versions.insert(t.clone(), g);
            }
        });
    }

    /// Invalidates everything.
    pub fn bump_epoch(&self) {
        self.with(|s| {
            s.epoch += 1;
            s.entries.clear();
        });
    }

    /// Sliding-window rate check; `Some(ms)` until admitted.
    pub fn rate(&self, user: i64, limit: u32, window_ms: u64, now_ms: u64) -> Option<u64> {
        self.with(|s| {
            let log = s.rates.entry(user).or_default();
            while log.front().is_some_and(|t| *t + window_ms <= now_ms) {
                log.pop_front();
            }
            if log.len() < limit as usize {
                log.push_back(now_ms);
                None
            } else {
                log.front()
                    .map(|oldest| (oldest + window_ms).saturating_sub(now_ms).max(1))
            }
        })
    }

    /// A persisted query.
    pub fn apq_get(&self, sha: &str) -> Option<String> {
        self.with(|s| s.apq.get(sha).cloned())
    }

    /// Persists a query.
    pub fn apq_put(&self, sha: &str, query: &str) {
        self.with(|s| {
            if s.apq.len() >= MAX_APQ {
                s.apq.clear();
            }
            s.apq.insert(sha.to_owned(), query.to_owned());
        });
    }
}
