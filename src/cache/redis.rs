//! The Redis backend: operations are one round trip (a Lua script where
//! they need several steps to be atomic; a lookup whose entry's tags must be
//! read takes two, see `RedisBackend::quick_lookup`), with a per-command timeout and
//! fail-fast when disconnected, so a dead or paused Redis costs a request at
//! most one timeout before the breaker opens.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fred::{
    clients::SubscriberClient,
    interfaces::{ClientLike, KeysInterface, LuaInterface},
    prelude::{Builder, Client, Config, Error, ReconnectPolicy},
    types::{Expiration, SetOptions, Value},
};

use super::{
    Counters, Entry, Found, Snapshot, StoreArgs, entry_key, epoch_key, generation_key, keys,
    lease::{MEMBERS_TTL, Published, inv_channel, members_key},
};

// An entry is one string, `SET` with its lifetime in one command:
//   "N1 <etag> <fresh_until> <epoch> <gen> <body len> <tags len> <token>\n" <body> <tags>
// where <gen> is the generation counter read before its data was, and
// <tags> the space-separated names of the tags it depends on (the lookup
// prefixes them with `<prefix>cache:tag:` to read their versions), and
// <token> the fill-lock token of the request that stored it. The
// lookup script reads the header and, only when it needs them, the tags or
// the body with `GETRANGE`: Redis's Lua hashes every byte of every string
// it creates (~6 µs for a 5 KB body here), so a store never hands its body
// to a script and a lookup reads it into Lua only to return it. One command
// per lookup and one per store: fred writes each command of a pipeline as
// its own packet, and under W4 every packet cost about one context switch
// across server and Redis. Commands queued together do share a packet, so a
// store waits for the next lookup (see `RedisBackend::store`).
//
// While a request computes a result that has no entry, the entry's key holds
// its fill lock instead: the placeholder "L <token>", set with `SET … NX PX`
// and overwritten by the store. So a pure miss needs no script (see
// `RedisBackend::quick_lookup`) and leaves no lock key behind. A lock on a
// key that has an entry (past freshness, outdated, or of an older layout) is
// the separate lock key.

/// Returns `{1, etag, fresh_until, gen, epoch, 0, body}` when the entry is
/// current and fresh. An entry is current while the epoch is unchanged and
/// no tag it read was invalidated after the generation its read began at
/// (`g`): tag versions are generation values, so that is "every version <=
/// g" — and when the generation counter still reads `g`, nothing was
/// invalidated at all and the tags are not even read. This check alone
/// keeps a read that raced a write from being served: such an entry is
/// stored (stores check nothing) but fails here.
///
/// Otherwise tries to take the fill lock and returns `{2, etag,
/// fresh_until, gen, epoch, locked, body}` for a current entry past
/// freshness (served only if Postgres fails), or `{0, '', 0, gen, epoch,
/// locked}`. The lock is the placeholder when there is no entry, none when
/// there is another request's placeholder, else the lock key. A store does
/// not release a lock key (the entry it writes answers the waiters), so a
/// lock key whose holder is the request that stored the entry found here
/// (its token is in the header) is taken over: that holder is done, and the
/// entry is only no longer current or fresh.
/// KEYS: entry, epoch, gen, lock. ARGV: now_ms, lock token, lock px (0: no
/// lock), tag key prefix. A key of another type (an entry of an older layout) is a miss.
const LOOKUP: &str = r"
local h = redis.pcall('GETRANGE', KEYS[1], 0, 255)
if type(h) ~= 'string' then h = '' end
local epoch = redis.call('GET', KEYS[2]) or '0'
local gen = redis.call('GET', KEYS[3]) or '0'
local etag, f, p, g, blen, tlen, by = string.match(h, '^N1 (%S+) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+)\n')
local stale = false
local body
if etag and p == epoch then
  local start = string.find(h, '\n', 1, true)
  local tags = start + tonumber(blen)
  local valid = gen == g
  if not valid then
    valid = true
    local t = redis.call('GETRANGE', KEYS[1], tags, tags + tonumber(tlen) - 1)
    local keys = {}
    for k in string.gmatch(t, '%S+') do keys[#keys + 1] = ARGV[4] .. k end
    if #keys > 0 then
      local cur = redis.call('MGET', unpack(keys))
      local since = tonumber(g)
      for i = 1, #cur do
        if tonumber(cur[i] or '0') > since then valid = false break end
      end
    end
  end
  if valid then
    body = redis.call('GETRANGE', KEYS[1], start, tags - 1)
    if tonumber(f) > tonumber(ARGV[1]) then return {1, etag, f, gen, epoch, 0, body} end
    stale = true
  end
end
local locked = 0
if ARGV[3] ~= '0' then
  if string.sub(h, 1, 2) == 'L ' then
    -- another request's placeholder: it is computing this result
  elseif redis.call('SET', KEYS[1], 'L ' .. ARGV[2], 'NX', 'PX', ARGV[3]) then
    -- nothing there: the placeholder is the lock
    locked = 1
  elseif redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[3]) then
    locked = 1
  elseif by and redis.call('GET', KEYS[4]) == by then
    -- the holder stored its result (this entry): there is nothing to wait
    -- for, the entry is only no longer current or fresh
    redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
    locked = 1
  end
end
if stale then return {2, etag, f, gen, epoch, locked, body} end
return {0, '', 0, gen, epoch, locked}
";

/// Lua: `now`, Redis's clock in ms (one clock for every instance).
macro_rules! lua_now {
    () => {
        "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"
    };
}

/// Lua: `floor`, Redis's clock in µs as a decimal string, where counters
/// start again after Redis lost them (see [`EPOCH`]).
macro_rules! lua_floor {
    () => {
        "
local tf = redis.call('TIME')
local floor = tf[1] .. string.rep('0', 6 - #tf[2]) .. tf[2]
"
    };
}

/// Lua, the end of every script that bumps the generation: publishes `g`
/// from `origin` on `channel` to the lease members (see `lease.rs`) and
/// returns `{g, {id, ms, …}}`: every member (ms 0), and every removed one
/// whose lease may still run (for ms more). `g` is formatted with `%d`:
/// Lua's own number-to-string conversion keeps 14 digits, and generations
/// start at Redis's clock in µs (16). Expects the locals `g`,
/// `members_key`, `channel` and `origin`.
macro_rules! lua_publish_to_members {
    () => {
        concat!(
            "
redis.call('PUBLISH', channel, string.format('%d', g) .. ' ' .. origin)",
            lua_now!(),
            "redis.call('ZREMRANGEBYSCORE', members_key, 1, now)
local all = redis.call('ZRANGE', members_key, 0, -1, 'WITHSCORES')
local members = {}
for i = 1, #all, 2 do
  local expiry = tonumber(all[i + 1])
  members[#members + 1] = all[i]
  members[#members + 1] = expiry == 0 and 0 or expiry - now
end
return {g, members}
"
        )
    };
}

/// Bumps the generation, stamps it on every tag and publishes it to the
/// lease members ([`lua_publish_to_members`]). KEYS: gen, members, tags…
/// ARGV: tag ttl ms, channel, origin id.
const INVALIDATE: &str = concat!(
    lua_floor!(),
    r"redis.call('SET', KEYS[1], floor, 'NX')
local g = redis.call('INCR', KEYS[1])
for i = 3, #KEYS do redis.call('SET', KEYS[i], g, 'PX', ARGV[1]) end
local members_key, channel, origin = KEYS[2], ARGV[2], ARGV[3]",
    lua_publish_to_members!()
);

/// Releases the fill lock only if this request still holds it (it may have
/// expired and been taken by another instance): the placeholder in the
/// entry's place or the lock key. KEYS: entry, lock. ARGV: token.
const UNLOCK: &str = r"
local n = 0
if redis.pcall('GET', KEYS[1]) == 'L ' .. ARGV[1] then n = n + redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then n = n + redis.call('DEL', KEYS[2]) end
return n
";

/// Invalidates everything: a new epoch, and a new generation so near copies
/// go too; published and answered as by [`INVALIDATE`]. KEYS: epoch, gen,
/// members. ARGV: channel, origin id.
///
/// Both counters move to at least Redis's clock in µs. An instance bumps
/// the epoch after every reconnect, so after a Redis that lost its keys
/// (restarted without persistence, or restored from an older snapshot) the
/// counters never again take values they had before: an old entry stored
/// late (its request read the counters before the loss) cannot match the
/// new epoch, and no generation an instance applied from before the loss
/// is reached again (the lease's counter only grows). A write on a Redis
/// that lost the generation starts it at the clock too. This holds
/// while fewer than one bump per µs happened on average since the last
/// floor, and the clock did not step back.
const EPOCH: &str = concat!(
    lua_floor!(),
    r"local e = redis.call('INCR', KEYS[1])
if e < tonumber(floor) then redis.call('SET', KEYS[1], floor) end
local g = redis.call('INCR', KEYS[2])
if g < tonumber(floor) then
  redis.call('SET', KEYS[2], floor)
  g = tonumber(floor)
end
local members_key, channel, origin = KEYS[3], ARGV[1], ARGV[2]",
    lua_publish_to_members!()
);

/// The lease members are a sorted set: score 0 for a member, or (Redis
/// time, ms) until when a removed member's lease may still run, so writers
/// keep waiting for it until then. Joins (ARGV[2] = '1') or checks
/// membership, then returns the generation; -1 when not a member. Every
/// join and renewal pushes the set's expiry out to ARGV[3] ms, far longer
/// than any lease: the set only expires once no member renewed for that
/// long, when every lease in it (removed members' too) has run out. KEYS:
/// members, gen. ARGV: id, join, set ttl ms.
const MEMBER: &str = r"
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
elseif redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= '0' then
  return -1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tonumber(redis.call('GET', KEYS[2]) or '0')
";

/// Removes members that did not acknowledge in time: their renewals fail
/// from now on, and writers still wait for them for a lease (ARGV[1] ms).
/// KEYS: members. ARGV: lease ms, ids…
const EVICT: &str = concat!(
    lua_now!(),
    r"local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == '0' then redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
end
return 0
"
);

/// Sliding-window log: admits a write when fewer than `limit` happened in the
/// last window; otherwise returns the ms until the oldest leaves the window.
/// KEYS: log. ARGV: window ms, limit, member suffix. Uses the server clock.
const RATE: &str = concat!(
    lua_now!(),
    r"local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"
);

/// A Lua script and its SHA1 once loaded (`SCRIPT LOAD` returns it).
struct Script {
    lua: &'static str,
    sha: Mutex<Option<String>>,
}

impl Script {
    fn new(lua: &'static str) -> Self {
        Self {
            lua,
            sha: Mutex::new(None),
        }
    }

    fn sha(&self) -> Option<String> {
        self.sha.lock().ok().and_then(|s| s.clone())
    }
}

/// Called with the error of a store that failed (stores are written after
/// the request that made them has answered; see [`RedisBackend::store`]).
pub type OnStoreError = Box<dyn Fn(&Error) + Send + Sync>;

/// An entry waiting to be written.
struct Deferred {
    key: String,
    value: bytes::Bytes,
    px: i64,
}

/// Redis client plus the loaded scripts. Every command is bounded by the
/// client's default command timeout (REDIS_TIMEOUT_MS).
pub struct RedisBackend {
    client: Client,
    lookup: Script,
    invalidate: Script,
    epoch: Script,
    unlock: Script,
    rate: Script,
    member: Script,
    evict: Script,
    /// Stores not written yet: they leave with the next lookup or
    /// generation read of this instance, or with a flush task.
    deferred: Mutex<Vec<Deferred>>,
    /// A flush task is on its way for what `deferred` holds.
    flush_scheduled: AtomicBool,
    /// Lookups may try plain commands first (cleared if Redis is older than
    /// 7.0, which refuses `SET … NX GET`).
    quick: AtomicBool,
    on_store_error: OnStoreError,
}

impl RedisBackend {
    /// Builds a client that connects (and reconnects) in the background.
    /// Waits up to `connect_wait` for the first connection.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        connect_wait: Duration,
        on_store_error: OnStoreError,
    ) -> Result<Self, Error> {
        let client = Self::client(url, timeout)?;
        let _task = client.connect();
        let connected = tokio::time::timeout(connect_wait, client.wait_for_connect()).await;
        let backend = Self::with_client(client, on_store_error);
        match connected {
            Ok(Ok(())) => {
                backend.load_scripts().await?;
                Ok(backend)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                fred::error::ErrorKind::Timeout,
                "no connection to Redis yet",
            )),
        }
    }

    fn client(url: &str, timeout: Duration) -> Result<Client, Error> {
        Self::builder(url, timeout)?.build()
    }

    fn builder(url: &str, timeout: Duration) -> Result<Builder, Error> {
        let config = Config::from_url(url)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_millis(500);
                c.internal_command_timeout = Duration::from_millis(500);
                c.max_command_attempts = 1;
                // TCP_NODELAY stays off here (unlike the HTTP side): while a
                // packet awaits Redis's reply, Nagle gathers the commands of
                // concurrent requests into the next one. With it on, W4 (two
                // servers interleaved, both ways round) lost 3.7% / 4.9%.
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        Ok(builder)
    }

    fn with_client(client: Client, on_store_error: OnStoreError) -> Self {
        Self {
            client,
            lookup: Script::new(LOOKUP),
            invalidate: Script::new(INVALIDATE),
            epoch: Script::new(EPOCH),
            unlock: Script::new(UNLOCK),
            rate: Script::new(RATE),
            member: Script::new(MEMBER),
            evict: Script::new(EVICT),
            deferred: Mutex::new(Vec::new()),
            flush_scheduled: AtomicBool::new(false),
            quick: AtomicBool::new(true),
            on_store_error,
        }
    }

    /// A client that is not connected yet; it keeps trying in the background.
    pub fn lazy(url: &str, timeout: Duration, on_store_error: OnStoreError) -> Result<Self, Error> {
        let client = Self::client(url, timeout)?;
        let _task = client.connect();
        Ok(Self::with_client(client, on_store_error))
    }

    /// Sets `flag` on every reconnect after the first connection.
    pub fn on_reconnect(&self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        use fred::interfaces::EventInterface;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let was_connected = self.client.is_connected();
        if was_connected {
            seen.store(1, std::sync::atomic::Ordering::Relaxed);
        }
        let _task = self.client.on_reconnect(move |_server| {
            let flag = flag.clone();
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, std::sync::atomic::Ordering::AcqRel) > 0 {
                    tracing::info!(
                        "reconnected to Redis; invalidating the whole cache before serving hits"
                    );
                    flag.store(true, std::sync::atomic::Ordering::Release);
                }
                Ok(())
            }
        });
    }

    async fn load_scripts(&self) -> Result<(), Error> {
        for s in [
            &self.lookup,
            &self.invalidate,
            &self.epoch,
            &self.unlock,
            &self.rate,
            &self.member,
            &self.evict,
        ] {
            self.load(s).await?;
        }
        Ok(())
    }

    async fn load(&self, script: &Script) -> Result<String, Error> {
        let sha: String = self.client.script_load(script.lua).await?;
        if let Ok(mut slot) = script.sha.lock() {
            *slot = Some(sha.clone());
        }
        Ok(sha)
    }

    /// Runs a script by hash, loading it (again, after a Redis restart) when needed.
    async fn eval(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        // boxed: fred's command futures are kilobytes each (see `quick_lookup`)
        Box::pin(async move {
            let sha = match script.sha() {
                Some(sha) => sha,
                None => self.load(script).await?,
            };
            match self
                .client
                .evalsha::<Value, _, _, _>(sha, keys.clone(), args.clone())
                .await
            {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    let sha = self.load(script).await?;
                    self.client.evalsha(sha, keys, args).await
                }
                other => other,
            }
        })
        .await
    }

    /// One lookup; takes the fill lock on a miss when `lock_px > 0`.
    /// `expect_entry`: this instance held a copy of the entry lately, so
    /// the generation has probably moved since it was stored and only the
    /// script can validate it in one round trip; otherwise plain commands
    /// are tried first ([`Self::quick_lookup`]).
    pub async fn lookup(
        &self,
        hash: &str,
        now_ms: u64,
        token: String,
        lock_px: u64,
        prefix: &str,
        expect_entry: bool,
    ) -> Result<Found, Error> {
        if !expect_entry && self.quick.load(Ordering::Relaxed) {
            match self
                .quick_lookup(hash, now_ms, &token, lock_px, prefix)
                .await?
            {
                Quick::Found(found) => return Ok(found),
                Quick::NeedsScript => {}
            }
        }
        let k = keys(prefix, hash);
        let lookup = self.eval(
            &self.lookup,
            vec![k.entry, k.epoch, k.generation, k.lock],
            vec![
                int(now_ms),
                token.as_str().into(),
                int(lock_px),
                tag_key(prefix, "").into(),
            ],
        );
        let reply = self.with_deferred(lookup).await?;
        read_lookup(reply, token)
    }

    /// The lookup of a key this instance has not seen lately, without Lua:
    /// `MGET epoch gen` and `SET entry <placeholder> NX PX <lock px> GET`
    /// (`GET entry` when not locking), sent together in one packet. Nothing
    /// there: a miss, and the placeholder just written is this request's
    /// fill lock. Another request's placeholder: a miss, not locked. An
    /// entry of the current epoch stored at the current generation and
    /// still fresh: a hit. Anything else (the generation moved, so its tags
    /// need reading; past freshness; an older layout) is left to the
    /// script, a second round trip.
    ///
    /// The counters are read before the entry (Redis runs a connection's
    /// commands in order), so it is validated against a generation read
    /// after this request began: a write that had answered before it is
    /// never missed. This costs Redis ~3 µs where the script costs ~17
    /// (`INFO commandstats`): Lua's setup, not the work, is most of a
    /// script's cost. Needs Redis 7.0 (`SET` with both `NX` and `GET`).
    async fn quick_lookup(
        &self,
        hash: &str,
        now_ms: u64,
        token: &str,
        lock_px: u64,
        prefix: &str,
    ) -> Result<Quick, Error> {
        // boxed, as every fred command future here: each is kilobytes, and
        // unboxed they made every future above them (the request's
        // included) that large, copied whenever one is moved
        let counters = Box::pin(
            self.client
                .mget::<Vec<Option<u64>>, _>(vec![epoch_key(prefix), generation_key(prefix)]),
        );
        let key = entry_key(prefix, hash);
        let entry = Box::pin(async {
            if lock_px == 0 {
                return self.client.get::<Option<bytes::Bytes>, _>(key).await;
            }
            let placeholder = format!("L {token}");
            let px = Expiration::PX(i64::try_from(lock_px).unwrap_or(i64::MAX));
            self.client
                .set::<Option<bytes::Bytes>, _, _>(
                    key,
                    placeholder,
                    Some(px),
                    Some(SetOptions::NX),
                    true,
                )
                .await
        });
        // `join` polls `counters` first: MGET is queued before the entry's command
        let (counters, entry) = self
            .with_deferred(futures::future::join(counters, entry))
            .await;
        let counters = counters?;
        let at = |i: usize| counters.get(i).copied().flatten().unwrap_or(0);
        let (epoch, generation) = (at(0), at(1));
        let value = match entry {
            Ok(value) => value,
            // an entry of an older layout (a hash): the script reads past it
            Err(e) if e.details().starts_with("WRONGTYPE") => return Ok(Quick::NeedsScript),
            // Redis before 7.0: `NX` and `GET` together are a syntax error
            Err(e) if e.details().starts_with("ERR syntax error") => {
                if self.quick.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "Redis refuses SET … NX GET (it is older than 7.0): every cache lookup runs a script; upgrade Redis for cheaper misses"
                    );
                }
                return Ok(Quick::NeedsScript);
            }
            Err(e) => return Err(e),
        };
        let miss = |locked| {
            Quick::Found(Found::Miss(Snapshot {
                generation,
                epoch,
                locked,
                token: token.to_owned(),
            }))
        };
        let Some(value) = value else {
            return Ok(miss(lock_px > 0));
        };
        if value.starts_with(b"L ") {
            return Ok(miss(false));
        }
        Ok(match Header::parse(&value) {
            Some(h)
                if h.epoch == epoch && h.generation == generation && h.fresh_until_ms > now_ms =>
            {
                let entry = Entry {
                    // a copy: the value's tag list need not stay in memory with it
                    body: bytes::Bytes::copy_from_slice(&value[h.body]),
                    etag: h.etag.to_owned(),
                    fresh_until_ms: h.fresh_until_ms,
                };
                Quick::Found(Found::Fresh(entry, Counters { epoch, generation }))
            }
            _ => Quick::NeedsScript,
        })
    }

    /// Stores `entry`: one `SET … PX`, the entry with its lifetime (see the
    /// layout above). Nothing is checked. A placeholder lock is overwritten;
    /// a lock key is left to expire or be taken over (see [`LOOKUP`]): the
    /// entry answers whoever waits.
    ///
    /// The `SET` is not awaited: the request answers at once, and the `SET`
    /// leaves in the same packet as this instance's next lookup or
    /// generation read (sent just before it, so a later lookup here always
    /// finds it), or else with a flush task that runs once the tasks ready
    /// now have run (microseconds when idle). Under load that halves the
    /// round trips of a miss: every packet costs Redis and the server a
    /// wake-up, which on two shared cores was most of the cache's cost.
    /// Another instance may look the key up before the entry lands: it
    /// finds the fill lock still held and waits for the entry, or computes
    /// the result itself; nothing stale either way (lookups validate).
    /// A failed `SET` is reported to `on_store_error`.
    pub fn store(self: &Arc<Self>, prefix: &str, args: &StoreArgs<'_>) {
        let StoreArgs {
            hash,
            snap,
            entry,
            tags,
            px,
        } = *args;
        let tag_list = tags.join(" ");
        let header = format!(
            "N1 {} {} {} {} {} {} {}\n",
            entry.etag,
            entry.fresh_until_ms,
            snap.epoch,
            snap.generation,
            entry.body.len(),
            tag_list.len(),
            snap.token
        );
        let mut value = Vec::with_capacity(header.len() + entry.body.len() + tag_list.len());
        value.extend_from_slice(header.as_bytes());
        value.extend_from_slice(&entry.body);
        value.extend_from_slice(tag_list.as_bytes());
        let deferred = Deferred {
            key: entry_key(prefix, hash),
            value: value.into(),
            px: i64::try_from(px).unwrap_or(i64::MAX),
        };
        if let Ok(mut queue) = self.deferred.lock() {
            queue.push(deferred);
        }
        if !self.flush_scheduled.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                // let the tasks ready now run first: a lookup among them
                // takes the entries along
                tokio::task::yield_now().await;
                this.flush_scheduled.store(false, Ordering::Release);
                this.with_deferred(async {}).await;
            });
        }
    }

    /// Runs `op` (whose first poll sends its command) after sending the
    /// deferred stores: fred writes commands queued together in one packet.
    async fn with_deferred<T>(&self, op: impl Future<Output = T>) -> T {
        let pending = self
            .deferred
            .lock()
            .map(|mut queue| std::mem::take(&mut *queue))
            .unwrap_or_default();
        if pending.is_empty() {
            return op.await;
        }
        let sets = futures::future::join_all(pending.into_iter().map(|d| {
            self.client.set::<(), _, _>(
                d.key,
                Value::Bytes(d.value),
                Some(Expiration::PX(d.px)),
                None,
                false,
            )
        }));
        // `join` polls `sets` first: the SETs are queued before `op`'s command
        let (stored, out) = futures::future::join(sets, op).await;
        if let Some(e) = stored.into_iter().find_map(Result::err) {
            (self.on_store_error)(&e);
        }
        out
    }

    /// Releases a fill lock we hold (when nothing is stored).
    pub async fn unlock(&self, prefix: &str, hash: &str, token: &str) -> Result<(), Error> {
        let k = keys(prefix, hash);
        self.eval(&self.unlock, vec![k.entry, k.lock], vec![token.into()])
            .await
            .map(|_| ())
    }

    /// Bumps every tag's version; publishes the new generation from `origin`.
    pub async fn invalidate(
        &self,
        prefix: &str,
        tags: &[String],
        tag_ttl_ms: u64,
        origin: &str,
    ) -> Result<Published, Error> {
        let mut ks = vec![generation_key(prefix), members_key(prefix)];
        ks.extend(tags.iter().map(|t| tag_key(prefix, t)));
        let args = vec![int(tag_ttl_ms), inv_channel(prefix).into(), origin.into()];
        read_published(self.eval(&self.invalidate, ks, args).await?)
    }

    /// Invalidates every entry at once; publishes the new generation from `origin`.
    pub async fn bump_epoch(&self, prefix: &str, origin: &str) -> Result<Published, Error> {
        let k = keys(prefix, "");
        let ks = vec![k.epoch, k.generation, members_key(prefix)];
        let args = vec![inv_channel(prefix).into(), origin.into()];
        read_published(self.eval(&self.epoch, ks, args).await?)
    }

    /// Joins the lease members (`join`) or checks membership; the
    /// generation, or `None` when `id` is not (any longer) a member.
    pub async fn lease_renew(
        &self,
        prefix: &str,
        id: &str,
        join: bool,
    ) -> Result<Option<u64>, Error> {
        let ks = vec![members_key(prefix), generation_key(prefix)];
        let args = vec![
            id.into(),
            if join { "1" } else { "0" }.into(),
            int(MEMBERS_TTL.as_millis() as u64),
        ];
        let v = self.eval(&self.member, ks, args).await?;
        Ok(v.as_i64().and_then(|g| u64::try_from(g).ok()))
    }

    /// Removes members that did not acknowledge in time; writers keep
    /// waiting for them for `lease`.
    pub async fn lease_evict(
        &self,
        prefix: &str,
        ids: Vec<String>,
        lease: Duration,
    ) -> Result<(), Error> {
        let mut args = vec![int(lease.as_millis() as u64)];
        args.extend(ids.into_iter().map(Value::from));
        self.eval(&self.evict, vec![members_key(prefix)], args)
            .await
            .map(|_| ())
    }

    /// Leaves the members (this instance stopped serving near copies).
    pub async fn lease_leave(&self, prefix: &str, id: String) -> Result<(), Error> {
        use fred::interfaces::SortedSetsInterface;
        Box::pin(self.client.zrem::<(), _, _>(members_key(prefix), id)).await
    }

    /// Publishes a lease message.
    pub async fn publish(&self, channel: String, message: String) -> Result<(), Error> {
        use fred::interfaces::PubsubInterface;
        Box::pin(self.client.publish::<(), _, _>(channel, message)).await
    }

    /// A subscriber client for the lease's messages, configured as the main one.
    pub fn subscriber(url: &str, timeout: Duration) -> Result<SubscriberClient, Error> {
        Self::builder(url, timeout)?.build_subscriber_client()
    }

    /// The generation counter (bumped by every invalidation).
    pub async fn generation(&self, prefix: &str) -> Result<u64, Error> {
        let get = Box::pin(self.client.get::<Option<u64>, _>(generation_key(prefix)));
        Ok(self.with_deferred(get).await?.unwrap_or(0))
    }

    /// Rate check: `None` admitted, `Some(ms)` until a write is admitted.
    pub async fn rate(
        &self,
        prefix: &str,
        user: i64,
        limit: u32,
        window_ms: u64,
    ) -> Result<Option<u64>, Error> {
        let key = format!("{prefix}rl:writes:{user}");
        let member = format!("{:x}", rand_suffix());
        let v = self
            .eval(
                &self.rate,
                vec![key],
                vec![int(window_ms), int(u64::from(limit)), member.into()],
            )
            .await?;
        Ok(v.as_u64().filter(|ms| *ms > 0))
    }

    /// A persisted query by hash.
    pub async fn apq_get(&self, prefix: &str, sha: &str) -> Result<Option<String>, Error> {
        self.client.get(format!("{prefix}apq:{sha}")).await
    }

    /// Persists a query under its hash for `ttl`.
    pub async fn apq_put(
        &self,
        prefix: &str,
        sha: &str,
        query: &str,
        ttl: Duration,
    ) -> Result<(), Error> {
        let ex = Expiration::EX(ttl.as_secs().max(1) as i64);
        self.client
            .set(format!("{prefix}apq:{sha}"), query, Some(ex), None, false)
            .await
    }

    /// A cheap round trip, for the breaker's probe.
    pub async fn ping(&self) -> Result<(), Error> {
        let client = &self.client;
        let _: Value = client.ping(None).await?;
        Ok(())
    }
}

/// What [`RedisBackend::quick_lookup`] made of the key.
enum Quick {
    Found(Found),
    NeedsScript,
}

/// An entry's header (see the layout at the top of this file).
struct Header<'a> {
    etag: &'a str,
    fresh_until_ms: u64,
    epoch: u64,
    generation: u64,
    /// Where the body is in the value.
    body: std::ops::Range<usize>,
}

impl<'a> Header<'a> {
    /// `None` unless `value` starts with a complete header of this layout
    /// and is long enough for the body it announces.
    fn parse(value: &'a [u8]) -> Option<Self> {
        let end = value.iter().take(256).position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&value[..end]).ok()?;
        let mut fields = line.split(' ');
        if fields.next()? != "N1" {
            return None;
        }
        let etag = fields.next()?;
        let mut num = || fields.next()?.parse::<u64>().ok();
        let (fresh_until_ms, epoch, generation) = (num()?, num()?, num()?);
        let body_len = usize::try_from(num()?).ok()?;
        let _tags_len = num()?;
        let start = end + 1;
        let body = start..start.checked_add(body_len)?;
        (body.end <= value.len()).then_some(Self {
            etag,
            fresh_until_ms,
            epoch,
            generation,
            body,
        })
    }
}

/// Reads the lookup script's reply.
fn read_lookup(script: Value, token: String) -> Result<Found, Error> {
    let Value::Array(mut items) = script else {
        return Err(bad_reply());
    };
    let body = match items.get_mut(6).map(|v| std::mem::replace(v, Value::Null)) {
        Some(Value::Bytes(b)) => Some(b),
        Some(Value::String(b)) => Some(b.into_inner()),
        _ => None,
    };
    let int = |i: usize| items.get(i).and_then(Value::as_u64).unwrap_or(0);
    let snap = |locked: bool| Snapshot {
        generation: int(3),
        epoch: int(4),
        locked,
        token: token.clone(),
    };
    let status = int(0);
    let entry = body.map(|body| Entry {
        body,
        etag: items.get(1).and_then(Value::as_string).unwrap_or_default(),
        fresh_until_ms: int(2),
    });
    Ok(match (status, entry) {
        (1, Some(e)) => Found::Fresh(
            e,
            Counters {
                epoch: int(4),
                generation: int(3),
            },
        ),
        (2, Some(e)) => Found::Stale(e, snap(int(5) == 1)),
        // a hit without a body (never sent by the script): a miss, not an
        // empty response
        (1, None) => Found::Miss(snap(false)),
        _ => Found::Miss(snap(int(5) == 1)),
    })
}

/// Reads `{gen, {id, ms, …}}` from a generation bump.
fn read_published(v: Value) -> Result<Published, Error> {
    let Value::Array(items) = v else {
        return Err(bad_reply());
    };
    let mut items = items.into_iter();
    let generation = items
        .next()
        .and_then(|g| g.as_u64())
        .ok_or_else(bad_reply)?;
    let members = match items.next() {
        Some(Value::Array(m)) => m
            .chunks(2)
            .filter_map(|pair| {
                let id = pair.first()?.as_string()?;
                let ms = pair.get(1)?.as_u64()?;
                Some((id, Duration::from_millis(ms)))
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Published {
        generation,
        members,
    })
}

fn bad_reply() -> Error {
    Error::new(fred::error::ErrorKind::Parse, "unexpected script reply")
}

/// The Redis key of a tag's version (with an empty tag: what the lookup
/// script puts before every tag name an entry lists).
pub fn tag_key(prefix: &str, tag: &str) -> String {
    format!("{prefix}cache:tag:{tag}")
}

fn rand_suffix() -> u64 {
    // unique per write even across instances (containers often share pid 1)
    getrandom::u64().unwrap_or_else(|_| {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 32
    })
}

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: i64, locked: i64, body: Option<&str>) -> Value {
        let mut items = vec![
            Value::Integer(status),
            "\"a\"".into(),
            Value::Integer(2_000_000_000_000),
            Value::Integer(7),
            Value::Integer(3),
            Value::Integer(locked),
        ];
        items.extend(body.map(Value::from));
        Value::Array(items)
    }

    #[test]
    fn headers_are_read_only_when_whole() {
        let value = b"N1 \"e\" 2000 3 7 2 5 tok\n{}a:1 b";
        let h = Header::parse(value).expect("a whole entry");
        assert_eq!(
            (h.etag, h.fresh_until_ms, h.epoch, h.generation),
            ("\"e\"", 2000, 3, 7)
        );
        assert_eq!(&value[h.body], b"{}");
        // cut inside the body, another layout, a placeholder, no header end
        for bad in [
            &b"N1 \"e\" 2000 3 7 9 5 tok\n{}"[..],
            b"N2 \"e\" 2000 3 7 2 5 tok\n{}",
            b"L tok",
            b"N1 \"e\" 2000 3 7 2 5 tok",
        ] {
            assert!(
                Header::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lookup_replies_become_hits_stale_entries_and_misses() {
        let hit = read_lookup(reply(1, 0, Some("{}")), "t".into()).expect("reply");
        let Found::Fresh(entry, counters) = hit else {
            panic!("expected a hit, got {hit:?}")
        };
        assert_eq!(
            (&entry.body[..], entry.etag.as_str(), counters),
            (
                &b"{}"[..],
                "\"a\"",
                Counters {
                    epoch: 3,
                    generation: 7
                }
            )
        );
        let stale = read_lookup(reply(2, 1, Some("{}")), "t".into()).expect("reply");
        assert!(
            matches!(&stale, Found::Stale(e, Snapshot { locked: true, generation: 7, epoch: 3, .. }) if &e.body[..] == b"{}"),
            "{stale:?}"
        );
        let miss = read_lookup(reply(0, 1, None), "t".into()).expect("reply");
        assert!(
            matches!(miss, Found::Miss(Snapshot { locked: true, .. })),
            "{miss:?}"
        );
        // a found entry whose body could not be read is a miss, never an empty hit
        let gone = read_lookup(reply(1, 0, None), "t".into()).expect("reply");
        assert!(
            matches!(gone, Found::Miss(Snapshot { locked: false, .. })),
            "{gone:?}"
        );
        assert!(read_lookup(Value::Null, "t".into()).is_err());
    }
}
