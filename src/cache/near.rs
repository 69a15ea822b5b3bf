//! The near cache: recently validated entries kept in the process, so a hit
//! usually costs one cheap, shared `GET` instead of a lookup script.
//!
//! Correctness rests on the global generation counter in Redis, which every
//! invalidation and epoch bump increments. An entry validated by the lookup
//! script at generation `g` is still valid while the counter reads `g`:
//! nothing at all was invalidated since. A request may use the near copy only
//! with a generation value fetched *after the request arrived* — so a write
//! acknowledged (through any instance) before the request was sent is always
//! seen. Requests share those fetches: one `GET` is in flight at a time and
//! serves every request that arrived before it was sent.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::now_ms;

/// A validated copy of an entry.
#[derive(Clone)]
pub struct NearEntry {
    /// Response bytes.
    pub body: Bytes,
    /// ETag of `body`.
    pub etag: String,
    /// Freshness end (unix ms).
    pub fresh_until_ms: u64,
    /// Generation at which the lookup script found it current.
    pub generation: u64,
}

/// Bounded map of near entries (by total body bytes).
pub struct NearCache {
    map: Mutex<HashMap<String, NearEntry>>,
    bytes: AtomicU64,
    cap_bytes: u64,
}

impl NearCache {
    /// A near cache holding at most `cap_bytes` of bodies.
    pub fn new(cap_bytes: u64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(0),
            cap_bytes,
        }
    }

    /// The entry for `hash` if it is fresh and was validated at `generation`.
    pub fn get(&self, hash: &str, generation: u64) -> Option<NearEntry> {
        let map = self.map.lock().ok()?;
        map.get(hash)
            .filter(|e| e.generation == generation && e.fresh_until_ms > now_ms())
            .cloned()
    }

    /// Remembers an entry the lookup script just validated.
    pub fn put(&self, hash: &str, entry: NearEntry) {
        let Ok(mut map) = self.map.lock() else { return };
        let size = entry.body.len() as u64;
        if size > self.cap_bytes / 8 {
            return;
        }
        if self.bytes.load(Ordering::Relaxed) + size > self.cap_bytes {
            // drop what is stale or expired first, then everything: simple and bounded
            let now = now_ms();
            map.retain(|_, e| e.fresh_until_ms > now && e.generation == entry.generation);
            if map.values().map(|e| e.body.len() as u64).sum::<u64>() + size > self.cap_bytes {
                map.clear();
            }
            self.bytes.store(
                map.values().map(|e| e.body.len() as u64).sum(),
                Ordering::Relaxed,
            );
        }
        if let Some(old) = map.insert(hash.to_owned(), entry) {
            self.bytes
                .fetch_sub(old.body.len() as u64, Ordering::Relaxed);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Forgets everything (after an epoch bump on this instance).
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
    }
}

/// The generation value published by a fetch: `(tickets covered, value)`;
/// `None` value when the fetch failed.
type Published = (u64, Option<u64>);

/// Coalesces generation reads: every caller gets a value read after it asked.
pub struct GenerationReader {
    requested: AtomicU64,
    wake: Notify,
    published: watch::Sender<Published>,
}

impl Default for GenerationReader {
    fn default() -> Self {
        let (published, _) = watch::channel((0, None));
        Self {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            published,
        }
    }
}

impl GenerationReader {
    /// A value of the counter read after this call began; `None` if the read
    /// failed (the caller then takes the normal lookup path).
    pub async fn current(&self) -> Option<u64> {
        let ticket = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut rx = self.published.subscribe();
        self.wake.notify_one();
        let wait = async {
            loop {
                let (covered, value) = *rx.borrow_and_update();
                if covered >= ticket {
                    return value;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_millis(200), wait)
            .await
            .ok()
            .flatten()
    }

    /// The fetch loop: one read in flight, each covering every ticket issued
    /// before it started. Runs for the life of the cache.
    pub async fn run<F, Fut>(&self, fetch: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<u64>>,
    {
        let mut done = 0u64;
        loop {
            let target = self.requested.load(Ordering::Acquire);
            if target == done {
                self.wake.notified().await;
                continue;
            }
            let value = fetch().await;
            done = target;
            self.published.send_replace((target, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_reader_only_accepts_values_fetched_after_it_asked() {
        let reader = Arc::new(GenerationReader::default());
        let counter = Arc::new(AtomicU64::new(5));
        let (r, c) = (reader.clone(), counter.clone());
        tokio::spawn(async move { r.run(|| async { Some(c.load(Ordering::SeqCst)) }).await });
        assert_eq!(reader.current().await, Some(5));
        counter.store(6, Ordering::SeqCst);
        assert_eq!(
            reader.current().await,
            Some(6),
            "a value read before the change is never reused"
        );
    }

    #[test]
    fn entries_are_served_only_at_their_generation() {
        let near = NearCache::new(1 << 20);
        let e = NearEntry {
            body: Bytes::from_static(b"{}"),
            etag: "\"x\"".into(),
            fresh_until_ms: now_ms() + 10_000,
            generation: 3,
        };
        near.put("k", e);
        assert!(near.get("k", 3).is_some());
        assert!(
            near.get("k", 4).is_none(),
            "anything invalidated since: go to Redis"
        );
    }
}
