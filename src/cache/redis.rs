//! The Redis backend: every operation is one round trip (a Lua script where
//! it needs several steps to be atomic), with a per-command timeout and
//! fail-fast when disconnected, so a dead or paused Redis costs a request at
//! most one timeout before the breaker opens.

use std::time::Duration;

use std::sync::Mutex;

use fred::{
    interfaces::{ClientLike, KeysInterface, LuaInterface},
    prelude::{Builder, Client, Config, Error, ReconnectPolicy},
    types::{Expiration, Value},
};

use super::{Entry, Found, Snapshot, StoreArgs, keys};

/// Returns `{1, body, etag, fresh_until, gen}` when the entry is current
/// and fresh. An entry is current while the epoch is unchanged and no tag it
/// read was invalidated after the generation its read began at (`g`): tag
/// versions are generation values, so that is "every version <= g" — and
/// when the generation counter still reads `g`, nothing was invalidated at
/// all and the tags need not be read. Otherwise tries to take the fill lock
/// and returns `{2, body, etag, fresh_until, gen, epoch, locked}` for a
/// current entry past freshness (served only if Postgres fails), or
/// `{0, gen, epoch, locked}`.
/// KEYS: entry, epoch, gen, lock. ARGV: now_ms, lock token, lock px (0: no lock).
const LOOKUP: &str = r"
local e = redis.call('HMGET', KEYS[1], 'b', 'e', 'f', 'p', 't', 'g')
local stale = nil
local epoch = redis.call('GET', KEYS[2]) or '0'
local gen = redis.call('GET', KEYS[3]) or '0'
if e[1] and e[4] == epoch then
  local valid = true
  if gen ~= e[6] and e[5] and e[5] ~= '' then
    local keys = {}
    for k in string.gmatch(e[5], '%S+') do keys[#keys + 1] = k end
    local cur = redis.call('MGET', unpack(keys))
    local g = tonumber(e[6])
    for i = 1, #cur do
      if tonumber(cur[i] or '0') > g then valid = false break end
    end
  end
  if valid and tonumber(e[3]) > tonumber(ARGV[1]) then
    return {1, e[1], e[2], e[3], gen}
  end
  if valid then stale = e end
end
local locked = 0
if ARGV[3] ~= '0' and redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[3]) then locked = 1 end
if stale then return {2, stale[1], stale[2], stale[3], gen, epoch, locked} end
return {0, gen, epoch, locked}
";

/// Stores an entry only if nothing it depends on was invalidated since the
/// read began (epoch unchanged, no tag version above the start generation;
/// the tags need not be read when the generation has not moved): a slow read
/// can never put an old result back after a write. Releases the fill lock if
/// held. KEYS: entry, epoch, gen, lock, tag keys…
/// ARGV: start gen, start epoch, px, body, etag, fresh_until, lock token.
const STORE: &str = r"
local ok = 1
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then ok = 0 end
if ok == 1 and #KEYS > 4 and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then
  local cur = redis.call('MGET', unpack(KEYS, 5))
  local start = tonumber(ARGV[1])
  for i = 1, #cur do
    if tonumber(cur[i] or '0') > start then ok = 0 break end
  end
end
if ok == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'b', ARGV[4], 'e', ARGV[5], 'f', ARGV[6], 'p', ARGV[2],
             't', table.concat(KEYS, ' ', 5), 'g', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if ARGV[7] ~= '' and redis.call('GET', KEYS[4]) == ARGV[7] then redis.call('DEL', KEYS[4]) end
return ok
";

/// Bumps the generation and stamps it on every tag. KEYS: gen, tags… ARGV: tag ttl ms.
const INVALIDATE: &str = r"
local g = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do redis.call('SET', KEYS[i], g, 'PX', ARGV[1]) end
return g
";

/// Releases the fill lock only if this request still holds it (it may have
/// expired and been taken by another instance). KEYS: lock. ARGV: token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Invalidates everything: a new epoch, and a new generation so near copies
/// go too. KEYS: epoch, gen.
const EPOCH: &str = r"
redis.call('INCR', KEYS[1])
return redis.call('INCR', KEYS[2])
";

/// Sliding-window log: admits a write when fewer than `limit` happened in the
/// last window; otherwise returns the ms until the oldest leaves the window.
/// KEYS: log. ARGV: window ms, limit, member suffix. Uses the server clock.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
";

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

/// Redis client plus the loaded scripts. Every command is bounded by the
/// client's default command timeout (REDIS_TIMEOUT_MS).
pub struct RedisBackend {
    client: Client,
    lookup: Script,
    store: Script,
    invalidate: Script,
    epoch: Script,
    unlock: Script,
    rate: Script,
}

impl RedisBackend {
    /// Builds a client that connects (and reconnects) in the background.
    /// Waits up to `connect_wait` for the first connection.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        connect_wait: Duration,
    ) -> Result<Self, Error> {
        let client = Self::client(url, timeout)?;
        let _task = client.connect();
        let connected = tokio::time::timeout(connect_wait, client.wait_for_connect()).await;
        let backend = Self::with_client(client);
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
        let config = Config::from_url(url)?;
        Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_millis(500);
                c.internal_command_timeout = Duration::from_millis(500);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build()
    }

    fn with_client(client: Client) -> Self {
        Self {
            client,
            lookup: Script::new(LOOKUP),
            store: Script::new(STORE),
            invalidate: Script::new(INVALIDATE),
            epoch: Script::new(EPOCH),
            unlock: Script::new(UNLOCK),
            rate: Script::new(RATE),
        }
    }

    /// A client that is not connected yet; it keeps trying in the background.
    pub fn lazy(url: &str, timeout: Duration) -> Result<Self, Error> {
        let client = Self::client(url, timeout)?;
        let _task = client.connect();
        Ok(Self::with_client(client))
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
            &self.store,
            &self.invalidate,
            &self.epoch,
            &self.unlock,
            &self.rate,
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
    }

    /// One lookup; takes the fill lock on a miss when `lock_px > 0`.
    pub async fn lookup(
        &self,
        hash: &str,
        now_ms: u64,
        token: String,
        lock_px: u64,
        prefix: &str,
    ) -> Result<Found, Error> {
        let k = keys(prefix, hash);
        let v = self
            .eval(
                &self.lookup,
                vec![k.entry, k.epoch, k.generation, k.lock],
                vec![int(now_ms), token.as_str().into(), int(lock_px)],
            )
            .await?;
        let Value::Array(items) = v else {
            return Err(bad_reply());
        };
        let int = |i: usize| items.get(i).and_then(|v| v.as_u64()).unwrap_or(0);
        let entry = || -> Result<Entry, Error> {
            let body = items
                .get(1)
                .and_then(Value::as_bytes)
                .map(bytes::Bytes::copy_from_slice)
                .ok_or_else(bad_reply)?;
            let etag = items.get(2).and_then(Value::as_string).unwrap_or_default();
            Ok(Entry {
                body,
                etag,
                fresh_until_ms: int(3),
            })
        };
        match int(0) {
            1 => Ok(Found::Fresh(entry()?, int(4))),
            2 => Ok(Found::Stale(
                entry()?,
                Snapshot {
                    generation: int(4),
                    epoch: int(5),
                    locked: int(6) == 1,
                    token,
                },
            )),
            _ => Ok(Found::Miss(Snapshot {
                generation: int(1),
                epoch: int(2),
                locked: int(3) == 1,
                token,
            })),
        }
    }

    /// Stores `entry` unless invalidated since `snap`; true when stored.
    pub async fn store(&self, prefix: &str, args: &StoreArgs<'_>) -> Result<bool, Error> {
        let StoreArgs {
            hash,
            snap,
            entry,
            tags,
            px,
        } = *args;
        let k = keys(prefix, hash);
        let mut ks = Vec::with_capacity(tags.len() + 4);
        ks.extend([k.entry, k.epoch, k.generation, k.lock]);
        ks.extend(tags.iter().map(|t| tag_key(prefix, t)));
        let args: Vec<Value> = vec![
            int(snap.generation),
            int(snap.epoch),
            int(px),
            Value::Bytes(entry.body.clone()),
            entry.etag.as_str().into(),
            int(entry.fresh_until_ms),
            snap.token.as_str().into(),
        ];
        Ok(self.eval(&self.store, ks, args).await?.as_u64() == Some(1))
    }

    /// Releases a fill lock we hold (when nothing is stored).
    pub async fn unlock(&self, prefix: &str, hash: &str, token: &str) -> Result<(), Error> {
        let k = keys(prefix, hash);
        self.eval(&self.unlock, vec![k.lock], vec![token.into()])
            .await
            .map(|_| ())
    }

    /// Bumps every tag's version.
    pub async fn invalidate(
        &self,
        prefix: &str,
        tags: &[String],
        tag_ttl_ms: u64,
    ) -> Result<(), Error> {
        let mut ks = vec![keys(prefix, "").generation];
        ks.extend(tags.iter().map(|t| tag_key(prefix, t)));
        self.eval(&self.invalidate, ks, vec![int(tag_ttl_ms)])
            .await
            .map(|_| ())
    }

    /// Invalidates every entry at once.
    pub async fn bump_epoch(&self, prefix: &str) -> Result<(), Error> {
        let k = keys(prefix, "");
        self.eval(&self.epoch, vec![k.epoch, k.generation], vec![])
            .await
            .map(|_| ())
    }

    /// The generation counter (bumped by every invalidation).
    pub async fn generation(&self, prefix: &str) -> Result<u64, Error> {
        let v: Option<u64> = self.client.get(keys(prefix, "").generation).await?;
        Ok(v.unwrap_or(0))
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

fn bad_reply() -> Error {
    Error::new(fred::error::ErrorKind::Parse, "unexpected script reply")
}

/// The Redis key of a tag's version.
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
