//! The query-result cache, rate limiter and persisted-query store. This is
//! the only module that talks to Redis (`fred`); errors never leave it: they
//! become a miss, a skipped write or an allowed request, plus a counter and a
//! `warn!`.
//!
//! How it stays correct (see DESIGN.md's invariants):
//! - Each result is stored with the tags it read and the generation counter
//!   captured before executing; invalidation sets each tag's version to a
//!   new generation (O(tags)). A lookup returns an entry only while the
//!   epoch is unchanged and no tag version exceeds its generation, so a slow
//!   read that raced a write is never served, and a store is one plain `SET`
//!   that checks nothing. A lookup is two plain commands in one round trip
//!   when the entry is missing or the generation has not moved since it was
//!   stored; otherwise a script reads the tag versions.
//! - An invalidation that cannot reach Redis marks the instance dirty: it
//!   serves no hit until it has bumped the epoch (invalidating everything),
//!   and so does every reconnect to Redis. Other instances learn of the write
//!   through the Postgres change feed.
//! - Redis calls have short timeouts and a circuit breaker: a dead or paused
//!   Redis sends requests straight to Postgres (`x-cache: BYPASS`).

pub mod breaker;
pub mod flight;
pub mod key;
pub mod lease;
pub mod memory;
pub mod near;
pub mod redis;
pub mod sighting;
pub mod tags;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use self::{
    breaker::Breaker,
    lease::{Lease, Published},
    memory::MemoryBackend,
    near::{GenerationReader, NearCache, NearEntry},
    redis::RedisBackend,
    sighting::{Counters, Plan, Sightings},
};
use crate::{config::Config, error::AppError, metrics::Metrics};

/// A stored response.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The final response bytes.
    pub body: bytes::Bytes,
    /// Strong validator of `body`.
    pub etag: String,
    /// Until when it is fresh (unix ms).
    pub fresh_until_ms: u64,
}

impl From<NearEntry> for Entry {
    fn from(near: NearEntry) -> Self {
        Entry {
            body: near.body,
            etag: near.etag,
            fresh_until_ms: near.fresh_until_ms,
        }
    }
}

/// Counters captured by a lookup that found nothing fresh; a later store is
/// accepted only if nothing was invalidated since.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Generation counter at lookup time.
    pub generation: u64,
    /// Epoch at lookup time.
    pub epoch: u64,
    /// Whether this request holds the fill lock.
    pub locked: bool,
    /// This request's fill-lock token (what releases the lock it holds).
    pub token: String,
}

/// One store request, as both backends take it.
pub struct StoreArgs<'a> {
    /// Request hash.
    pub hash: &'a str,
    /// Counters captured by the lookup.
    pub snap: &'a Snapshot,
    /// What to store.
    pub entry: &'a Entry,
    /// What it depends on.
    pub tags: &'a [String],
    /// Lifetime in Redis (fresh + stale window), ms.
    pub px: u64,
}

/// What a backend lookup found.
#[derive(Debug)]
pub enum Found {
    /// Current and fresh, validated at these counters.
    Fresh(Entry, Counters),
    /// Current but past freshness (served only when Postgres fails).
    Stale(Entry, Snapshot),
    /// Nothing current.
    Miss(Snapshot),
}

/// What the request path should do.
#[derive(Debug)]
pub enum Lookup {
    /// Serve this.
    Hit(Entry),
    /// Execute, then store with the snapshot; the entry is a stale fallback.
    Miss(Snapshot, Option<Entry>),
    /// Not looked up (a first sighting, see `sighting.rs`): execute, then
    /// store with the snapshot (which holds no fill lock), or (`None`)
    /// answer as if stored but store nothing.
    Skipped(Option<Snapshot>),
    /// The cache is unavailable or off: execute, store nothing.
    Bypass,
}

struct Keys {
    entry: String,
    epoch: String,
    generation: String,
    lock: String,
}

fn keys(prefix: &str, hash: &str) -> Keys {
    Keys {
        entry: entry_key(prefix, hash),
        epoch: epoch_key(prefix),
        generation: generation_key(prefix),
        lock: format!("{prefix}cache:lock:{hash}"),
    }
}

/// An entry's key alone (a store needs no other).
fn entry_key(prefix: &str, hash: &str) -> String {
    format!("{prefix}cache:gql:{hash}")
}

/// The epoch counter's key alone.
fn epoch_key(prefix: &str) -> String {
    format!("{prefix}cache:epoch")
}

/// The generation counter's key alone.
fn generation_key(prefix: &str) -> String {
    format!("{prefix}cache:gen")
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

enum Backend {
    Redis(Arc<RedisBackend>),
    Memory(Box<MemoryBackend>),
}

/// How long a fill lock is held at most (another instance computing the same key).
const LOCK_PX: u64 = 3_000;
/// How long a loser waits for the winner's value.
const FILL_WAIT: Duration = Duration::from_millis(400);
/// More tags than this and a result is not cached (keeps scripts bounded).
const MAX_TAGS: usize = 2_000;

/// The cache facade shared by all requests of an instance.
pub struct Cache {
    backend: Backend,
    prefix: String,
    breaker: Arc<Breaker>,
    /// An invalidation was lost (or Redis reconnected): bump the epoch before serving hits.
    dirty: Arc<AtomicBool>,
    query_cache: bool,
    max_ttl: Duration,
    stale: Duration,
    writes_per_minute: u32,
    apq_ttl: Duration,
    /// Counters exported at `/metrics`.
    pub metrics: Arc<Metrics>,
    lock_seq: AtomicU64,
    /// Random per process, the first half of every token.
    instance: u64,
    /// Validated entries kept in the process (Redis backend only).
    near: NearCache,
    generation: Arc<GenerationReader>,
    /// Pushed invalidations under a lease (Redis backend only; see `lease.rs`).
    lease: Option<Arc<Lease>>,
    /// Which keys are worth a lookup (Redis backend with
    /// CACHE_ADAPTIVE_FIRST_SIGHTINGS only; see `sighting.rs`).
    sightings: Option<Sightings>,
}

/// Body bytes the near cache may hold.
const NEAR_CAP_BYTES: u64 = 32 * 1024 * 1024;

impl Cache {
    /// Connects per `config.redis_url` (`memory` → in-process). Never fails:
    /// an unreachable Redis means running uncached while reconnecting.
    pub async fn connect(config: &Config) -> Self {
        Self::build(config, false).await
    }

    /// Like [`Cache::connect`], but falls back to the in-process cache when
    /// Redis does not answer (demo mode only: other instances could not
    /// invalidate it).
    pub async fn connect_or_memory(config: &Config) -> Self {
        Self::build(config, true).await
    }

    async fn build(config: &Config, memory_fallback: bool) -> Self {
        let metrics = Arc::new(Metrics::default());
        let breaker = Arc::new(Breaker::new(3, Duration::from_millis(500)));
        // stores are written after their request answered (see
        // `RedisBackend::store`): their failures arrive here
        let on_store_error = || -> redis::OnStoreError {
            let (metrics, breaker) = (metrics.clone(), breaker.clone());
            Box::new(move |e| report_failure(&metrics, &breaker, "store", e))
        };
        let backend = if config.redis_url == "memory" {
            tracing::info!(
                "query cache: in-process memory (REDIS_URL=memory; fine for a single instance)"
            );
            Backend::Memory(Box::default())
        } else {
            let wait = if memory_fallback {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(1500)
            };
            match RedisBackend::connect(
                &config.redis_url,
                config.redis_timeout,
                wait,
                on_store_error(),
            )
            .await
            {
                Ok(r) => {
                    tracing::info!(url = %config.redis_url, "query cache: Redis");
                    Backend::Redis(Arc::new(r))
                }
                Err(e) if memory_fallback => {
                    tracing::warn!(error = %e, url = %config.redis_url,
                        "Redis does not answer; demo mode uses the in-process cache (single instance only)");
                    Backend::Memory(Box::default())
                }
                Err(e) => {
                    tracing::warn!(error = %e, url = %config.redis_url,
                        "Redis does not answer; serving uncached and reconnecting in the background");
                    match RedisBackend::lazy(
                        &config.redis_url,
                        config.redis_timeout,
                        on_store_error(),
                    ) {
                        Ok(r) => Backend::Redis(Arc::new(r)),
                        Err(e) => {
                            tracing::error!(error = %e, "REDIS_URL is not usable; using no shared cache");
                            Backend::Memory(Box::default())
                        }
                    }
                }
            }
        };
        let dirty = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(GenerationReader::default());
        let instance =
            getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()) << 32 ^ now_ms());
        let mut lease = None;
        if let Backend::Redis(r) = &backend {
            // a reconnect may follow a Redis restart that restored old data or
            // lost invalidations: treat every reconnect as a possible gap
            r.on_reconnect(dirty.clone());
            match RedisBackend::subscriber(&config.redis_url, config.redis_timeout) {
                Ok(subscriber) => {
                    let l = Arc::new(Lease::new(
                        instance,
                        &config.redis_key_prefix,
                        config.cache_lease,
                    ));
                    lease::start(&l, r.clone(), subscriber);
                    lease = Some(l);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no subscriber client; near-cache hits read the generation from Redis")
                }
            }
        }
        let sightings = (config.cache_adaptive_first_sightings
            && matches!(backend, Backend::Redis(_)))
        .then(Sightings::default);
        Self {
            backend,
            prefix: config.redis_key_prefix.clone(),
            breaker,
            dirty,
            query_cache: !config.cache_default_ttl.is_zero(),
            max_ttl: config.cache_default_ttl,
            stale: config.cache_stale,
            writes_per_minute: config.rate_limit_writes_per_minute,
            apq_ttl: Duration::from_secs(7 * 24 * 3600),
            metrics,
            lock_seq: AtomicU64::new(0),
            instance,
            near: NearCache::new(NEAR_CAP_BYTES),
            generation,
            lease,
            sightings,
        }
    }

    /// Whether query results are cached at all.
    pub fn query_cache_enabled(&self) -> bool {
        self.query_cache
    }

    /// Circuit state for /metrics (0 closed, 1 open, 2 half-open).
    pub fn circuit_state(&self) -> u8 {
        self.breaker.state()
    }

    /// Whether this instance holds the lease of pushed invalidations.
    pub fn lease_held(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.held())
    }

    /// Leaves the lease members (at shutdown): other instances' writes stop
    /// waiting for this one.
    pub async fn leave(&self) {
        if let (Some(l), Backend::Redis(r)) = (&self.lease, &self.backend) {
            l.leave(r).await;
        }
    }

    /// Stops renewing the lease at once, without a round trip (see
    /// [`Lease::stop`]); [`Cache::leave`] also leaves the members. For code
    /// that cannot wait, such as a test's cleanup in `Drop`.
    pub fn stop_lease(&self) {
        if let Some(l) = &self.lease {
            l.stop();
        }
    }

    /// This instance's id among the lease members (Redis backend only).
    pub fn lease_id(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.id())
    }

    fn origin(&self) -> &str {
        self.lease.as_ref().map_or("-", |l| l.id())
    }

    /// Whether this instance uses the in-process backend.
    pub fn is_memory(&self) -> bool {
        matches!(self.backend, Backend::Memory(_))
    }

    fn failed(&self, what: &str, e: &fred::error::Error) {
        report_failure(&self.metrics, &self.breaker, what, e);
    }

    fn succeeded(&self) {
        if self.breaker.success() {
            tracing::info!("Redis answers again; cache back on");
        }
    }

    /// Whether Redis may be used now; applies a pending epoch bump first.
    async fn usable(&self, r: &RedisBackend) -> bool {
        if !self.breaker.allow() {
            return false;
        }
        if self.dirty.load(Ordering::Acquire) {
            match r.bump_epoch(&self.prefix, self.origin()).await {
                Ok(published) => {
                    if let Some(l) = &self.lease {
                        l.apply(published.generation);
                    }
                    // the bump follows a reconnect or a lost write: copies
                    // held here may come from before a Redis that lost its
                    // keys (the bump's counters are out of their reach too,
                    // see `redis::EPOCH`, but this holds without clocks)
                    self.near.clear();
                    if let Some(s) = &self.sightings {
                        s.forget_counters();
                    }
                    self.dirty.store(false, Ordering::Release);
                    self.metrics
                        .cache_epoch_bumps
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!("applied a pending whole-cache invalidation");
                    self.succeeded();
                }
                Err(e) => {
                    self.failed("epoch bump", &e);
                    return false;
                }
            }
        }
        true
    }

    /// Unique across instances (containers often share a pid): it names
    /// this request's fill lock.
    fn token(&self) -> String {
        format!(
            "{:x}-{:x}",
            self.instance,
            self.lock_seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A copy held in this process, served when Redis's generation counter,
    /// read after this call began, still equals the one it was validated at
    /// (nothing at all was invalidated since, through any instance).
    pub async fn near_hit(&self, hash: &str) -> Option<Entry> {
        let Backend::Redis(r) = &self.backend else {
            return None;
        };
        // only while all is well: probing an open circuit and applying a
        // pending epoch bump are the lookup's job
        if !self.query_cache
            || !self.breaker.is_closed()
            || self.dirty.load(Ordering::Acquire)
            || !self.near.holds(hash)
        {
            return None;
        }
        // under the lease this instance's counter has every bump a write
        // acknowledged before now (see `lease.rs`): no round trip
        if let Some(generation) = self.lease.as_ref().and_then(|l| l.generation_now())
            && let Some(near) = self.near.get(hash, generation)
        {
            self.metrics
                .cache_leased_hits
                .fetch_add(1, Ordering::Relaxed);
            return Some(near.into());
        }
        let generation = self
            .generation
            .current(|| async {
                r.generation(&self.prefix)
                    .await
                    .inspect_err(|e| self.failed("generation", e))
                    .ok()
            })
            .await?;
        let near = self.near.get(hash, generation)?;
        Some(near.into())
    }

    /// Looks up a request hash in Redis (or the memory backend). On a miss,
    /// tries to take the fill lock when `lock` (so concurrent instances
    /// compute a result once).
    pub async fn lookup(&self, hash: &str, lock: bool) -> Lookup {
        if !self.query_cache {
            return Lookup::Bypass;
        }
        // never longer than a result stays fresh: a lock outliving the
        // entry its holder stored would make the next miss wait for nothing
        let px = if lock {
            LOCK_PX.min(self.max_ttl.as_millis() as u64).max(1)
        } else {
            0
        };
        if let Backend::Redis(r) = &self.backend
            && !self.usable(r).await
        {
            return Lookup::Bypass;
        }
        // a first sighting whose lookup would most likely find nothing
        let plan = match &self.sightings {
            Some(s) if lock => s.plan(hash),
            _ => Plan::Seen,
        };
        if let Plan::Execute(store) = plan {
            self.metrics
                .cache_lookups_skipped
                .fetch_add(1, Ordering::Relaxed);
            return Lookup::Skipped(store.map(|c| Snapshot {
                generation: c.generation,
                epoch: c.epoch,
                locked: false,
                token: self.token(),
            }));
        }
        let token = self.token();
        let found = match &self.backend {
            Backend::Memory(m) => m.lookup(hash, now_ms(), token, px),
            Backend::Redis(r) => match r
                .lookup(
                    hash,
                    now_ms(),
                    token,
                    px,
                    &self.prefix,
                    self.near.holds(hash),
                )
                .await
            {
                Ok(f) => {
                    self.succeeded();
                    let counters = match &f {
                        Found::Fresh(e, counters) => {
                            let near = NearEntry {
                                body: e.body.clone(),
                                etag: e.etag.clone(),
                                fresh_until_ms: e.fresh_until_ms,
                                generation: counters.generation,
                            };
                            self.near.put(hash, near);
                            *counters
                        }
                        Found::Stale(_, snap) | Found::Miss(snap) => Counters {
                            epoch: snap.epoch,
                            generation: snap.generation,
                        },
                    };
                    if let Some(s) = &self.sightings {
                        s.saw(counters);
                        if plan == Plan::Probe {
                            // nothing there and the fill lock is ours:
                            // nobody else had asked for this result
                            let found_nothing = matches!(&f, Found::Miss(snap) if snap.locked);
                            s.probed(!found_nothing);
                        }
                    }
                    f
                }
                Err(e) => {
                    self.failed("lookup", &e);
                    return Lookup::Bypass;
                }
            },
        };
        match found {
            Found::Fresh(e, _) => Lookup::Hit(e),
            Found::Stale(e, snap) => Lookup::Miss(snap, Some(e)),
            Found::Miss(snap) => Lookup::Miss(snap, None),
        }
    }

    /// Waits briefly for another instance holding the fill lock to store the
    /// result; `None` when it did not appear in time.
    pub async fn wait_for_fill(&self, hash: &str) -> Option<Entry> {
        let deadline = tokio::time::Instant::now() + FILL_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(15)).await;
            if let Lookup::Hit(e) = self.lookup(hash, false).await {
                return Some(e);
            }
        }
        None
    }

    /// Stores a result read after `snap` with the tags it depends on; fresh
    /// for `ttl` (capped by CACHE_DEFAULT_TTL_SECS), kept for the stale window
    /// after that. Returns the entry when stored.
    pub async fn store(
        &self,
        hash: &str,
        snap: &Snapshot,
        body: bytes::Bytes,
        ttl: Duration,
        tags: &[String],
    ) -> Option<Entry> {
        let Some((entry, ttl)) = self.entry(body, ttl, tags) else {
            self.release(hash, snap).await;
            return None;
        };
        let px = (ttl + self.stale).as_millis() as u64;
        let args = StoreArgs {
            hash,
            snap,
            entry: &entry,
            tags,
            px,
        };
        let stored = match &self.backend {
            Backend::Memory(m) => m.store(&args, now_ms()),
            Backend::Redis(r) => {
                if !self.breaker.allow() {
                    return None;
                }
                // written after this request answers; a failure reaches
                // the breaker through `report_failure`
                r.store(&self.prefix, &args);
                true
            }
        };
        if stored {
            self.metrics.cache_stores.fetch_add(1, Ordering::Relaxed);
            Some(entry)
        } else {
            self.metrics
                .cache_store_races
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// The entry [`Cache::store`] would store (for its response headers),
    /// when it would store one; nothing is stored (see `sighting.rs`).
    pub fn unstored(&self, body: bytes::Bytes, ttl: Duration, tags: &[String]) -> Option<Entry> {
        let (entry, _) = self.entry(body, ttl, tags)?;
        self.metrics
            .cache_stores_skipped
            .fetch_add(1, Ordering::Relaxed);
        Some(entry)
    }

    /// A result as an entry, fresh for `ttl` capped by
    /// CACHE_DEFAULT_TTL_SECS (returned too); `None` when it is not to be
    /// cached.
    fn entry(
        &self,
        body: bytes::Bytes,
        ttl: Duration,
        tags: &[String],
    ) -> Option<(Entry, Duration)> {
        let ttl = ttl.min(self.max_ttl);
        if ttl.is_zero() || tags.len() > MAX_TAGS {
            return None;
        }
        let entry = Entry {
            etag: etag_of(&body),
            body,
            fresh_until_ms: now_ms() + ttl.as_millis() as u64,
        };
        Some((entry, ttl))
    }

    /// Releases the fill lock when nothing is stored.
    pub async fn release(&self, hash: &str, snap: &Snapshot) {
        if !snap.locked {
            return;
        }
        match &self.backend {
            Backend::Memory(m) => m.unlock(hash, &snap.token),
            Backend::Redis(r) => {
                if let Err(e) = r.unlock(&self.prefix, hash, &snap.token).await {
                    self.failed("unlock", &e);
                }
            }
        }
    }

    /// Marks everything that depends on `tags` as changed. Call after the
    /// writing transaction committed and before responding.
    pub async fn invalidate(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        self.metrics
            .cache_invalidations
            .fetch_add(tags.len() as u64, Ordering::Relaxed);
        match &self.backend {
            Backend::Memory(m) => m.invalidate(tags),
            Backend::Redis(r) => {
                let ttl = self.tag_ttl_ms();
                self.bump_on_redis(r, "invalidate", || {
                    r.invalidate(&self.prefix, tags, ttl, self.origin())
                })
                .await;
            }
        }
    }

    /// A tag version must outlive every entry that recorded it.
    fn tag_ttl_ms(&self) -> u64 {
        ((self.max_ttl + self.stale).as_millis() as u64).saturating_mul(2) + 60_000
    }

    /// Marks every cached result as changed (after a change-feed gap).
    pub async fn invalidate_all(&self) {
        self.metrics
            .cache_epoch_bumps
            .fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Memory(m) => m.bump_epoch(),
            Backend::Redis(r) => {
                self.bump_on_redis(r, "epoch bump", || {
                    r.bump_epoch(&self.prefix, self.origin())
                })
                .await;
            }
        }
    }

    /// Runs a generation bump (`call`) on Redis and settles it with the
    /// lease members (see `lease.rs`). One that fails, or that the open
    /// breaker skips, marks this instance dirty (no hit until the whole
    /// cache is invalidated: the write is committed) and waits until every
    /// lease that Redis could have renewed since has run out.
    async fn bump_on_redis<Fut>(&self, r: &RedisBackend, what: &str, call: impl FnOnce() -> Fut)
    where
        Fut: std::future::Future<Output = Result<Published, fred::error::Error>>,
    {
        let since = if self.breaker.allow() {
            let sent = std::time::Instant::now();
            match call().await {
                Ok(published) => {
                    self.succeeded();
                    if let Some(l) = &self.lease {
                        l.settle(r, published, std::time::Instant::now(), &self.metrics)
                            .await;
                    }
                    return;
                }
                Err(e) => {
                    self.failed(what, &e);
                    Some(sent)
                }
            }
        } else {
            self.breaker.trouble_since()
        };
        self.dirty.store(true, Ordering::Release);
        if let (Some(l), Some(since)) = (&self.lease, since) {
            tokio::time::sleep_until((since + l.length()).into()).await;
        }
    }

    /// Counts one write by `user_id` against the per-minute limit;
    /// `Err(RateLimited)` when over it. Fails open when Redis is unreachable.
    pub async fn allow_write(&self, user_id: i64) -> Result<(), AppError> {
        let limit = self.writes_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let wait_ms = match &self.backend {
            Backend::Memory(m) => m.rate(user_id, limit, 60_000, now_ms()),
            Backend::Redis(r) => {
                if !self.breaker.allow() {
                    tracing::warn!(
                        user.id = user_id,
                        "rate limiter unavailable (Redis down); allowing the write"
                    );
                    return Ok(());
                }
                match r.rate(&self.prefix, user_id, limit, 60_000).await {
                    Ok(w) => {
                        self.succeeded();
                        w
                    }
                    Err(e) => {
                        self.failed("rate limit", &e);
                        tracing::warn!(
                            user.id = user_id,
                            "rate limiter unavailable (Redis error); allowing the write"
                        );
                        return Ok(());
                    }
                }
            }
        };
        match wait_ms {
            None => Ok(()),
            Some(ms) => {
                self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                Err(AppError::RateLimited {
                    retry_after_secs: ms.div_ceil(1000).max(1),
                })
            }
        }
    }

    /// The query persisted under `sha` (Apollo APQ), if known.
    pub async fn apq_get(&self, sha: &str) -> Option<String> {
        match &self.backend {
            Backend::Memory(m) => m.apq_get(sha),
            Backend::Redis(r) => {
                if !self.breaker.allow() {
                    return None;
                }
                match r.apq_get(&self.prefix, sha).await {
                    Ok(q) => {
                        self.succeeded();
                        q
                    }
                    Err(e) => {
                        self.failed("apq get", &e);
                        None
                    }
                }
            }
        }
    }

    /// Persists a query under its sha256 (already verified by the caller).
    pub async fn apq_put(&self, sha: &str, query: &str) {
        match &self.backend {
            Backend::Memory(m) => m.apq_put(sha, query),
            Backend::Redis(r) => {
                if !self.breaker.allow() {
                    return;
                }
                match r.apq_put(&self.prefix, sha, query, self.apq_ttl).await {
                    Ok(()) => self.succeeded(),
                    Err(e) => self.failed("apq put", &e),
                }
            }
        }
    }
}

/// Counts a failed Redis call and feeds the breaker.
fn report_failure(metrics: &Metrics, breaker: &Breaker, what: &str, e: &fred::error::Error) {
    metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
    if breaker.failure() {
        tracing::warn!(error = %e, "Redis failing ({what}); bypassing the cache until it answers again");
    } else {
        tracing::debug!(error = %e, "Redis call failed: {what}");
    }
}

/// A strong ETag over the response bytes: the body's 128-bit XXH3 (equal
/// bodies get equal ETags, so a recomputed but unchanged result still
/// answers `If-None-Match` with 304).
pub fn etag_of(body: &[u8]) -> String {
    quoted_hex(xxhash_rust::xxh3::xxh3_128(body))
}

/// `"…"` around the 32 lowercase hex digits of `hash`, written digit by
/// digit: `format!("\"{:032x}\"")` cost ~1.5k instructions per miss
/// (callgrind, W4), a third as much as hashing the ~9 KB body.
fn quoted_hex(hash: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(34);
    out.push('"');
    for shift in (0..32).rev() {
        out.push(char::from(HEX[(hash >> (shift * 4)) as usize & 15]));
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::{etag_of, quoted_hex};

    #[test]
    fn etags_are_the_quoted_hex_of_the_bodys_xxh3() {
        for body in [
            &b""[..],
            b"{}",
            b"{\"data\":{\"title\":null}}",
            &[0xff; 300],
        ] {
            let expected = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body));
            assert_eq!(etag_of(body), expected);
        }
        // all 32 digits, leading zeros included: ETags clients kept from
        // earlier responses still match
        assert_eq!(quoted_hex(0), format!("\"{}\"", "0".repeat(32)));
        assert_eq!(quoted_hex(0xab), format!("\"{}ab\"", "0".repeat(30)));
        assert_eq!(quoted_hex(u128::MAX), format!("\"{}\"", "f".repeat(32)));
        let mixed = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        assert_eq!(quoted_hex(mixed), format!("\"{mixed:032x}\""));
    }
}
