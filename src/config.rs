//! Configuration: the only module that reads the environment.
//!
//! Every variable is listed in [`ENV_VARS`], which also feeds `nexora --help`
//! and the README table. A bad value stops start-up with a message naming the
//! variable.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};

/// Name, default and meaning of every environment variable the server reads.
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/nexora",
        "Postgres URL; the database is created if missing",
    ),
    (
        "REDIS_URL",
        "redis://127.0.0.1:6379",
        "Redis URL for cache, rate limits and persisted queries; `memory` = in-process cache (one instance only)",
    ),
    (
        "LISTEN_ADDR",
        "127.0.0.1:8080",
        "address:port the HTTP server binds",
    ),
    (
        "JWT_SECRET",
        "(none)",
        "HS256 signing secret, at least 32 bytes; required unless `serve --demo`",
    ),
    (
        "JWT_TTL_SECS",
        "604800",
        "lifetime of issued tokens (7 days)",
    ),
    (
        "CACHE_DEFAULT_TTL_SECS",
        "300",
        "upper bound on any cached result's freshness, in seconds; 0 disables the query cache",
    ),
    (
        "CACHE_STALE_SECS",
        "3600",
        "how long past freshness an entry may still be served while Postgres is down",
    ),
    (
        "CACHE_LEASE_MS",
        "300",
        "lease of pushed invalidations: near-cache hits need no Redis round trip while it runs; a write waits up to this long for an instance that stopped answering; 0 = read the generation from Redis per burst of hits (set the same value on every instance)",
    ),
    (
        "CACHE_ADAPTIVE_FIRST_SIGHTINGS",
        "true",
        "a query this instance has not seen lately is looked up in Redis, and its result stored, only while that pays off (one round trip less per one-off query); false = always, for fleets where most queries are asked a few times in all but rarely twice of one instance",
    ),
    (
        "REDIS_TIMEOUT_MS",
        "50",
        "timeout of each Redis command on the request path",
    ),
    (
        "RATE_LIMIT_WRITES_PER_MINUTE",
        "30",
        "mutations per user per sliding minute; 0 disables the limit",
    ),
    (
        "DATABASE_POOL_SIZE",
        "16",
        "maximum Postgres connections per instance",
    ),
    (
        "DATABASE_TIMEOUT_MS",
        "1500",
        "wait for a pooled connection / connect timeout; an exhausted pool answers SERVICE_UNAVAILABLE",
    ),
    (
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "5000",
        "Postgres statement_timeout of API connections",
    ),
    (
        "WS_MAX_CONNECTIONS",
        "1000",
        "open WebSocket (subscription) connections per instance; more are refused with 503; 0 turns subscriptions off",
    ),
    (
        "WS_MAX_SUBSCRIPTIONS",
        "100",
        "operations one WebSocket connection may have running at once (1 to 10000); one more is answered with a TOO_MANY_SUBSCRIPTIONS error",
    ),
    (
        "WS_PING_INTERVAL_SECS",
        "15",
        "idle WebSocket connections are pinged this often; one that stays silent for two intervals is closed",
    ),
    (
        "CORS_ALLOWED_ORIGINS",
        "*",
        "comma-separated origins allowed by CORS, or `*`",
    ),
    (
        "GRAPHQL_INTROSPECTION",
        "true",
        "`false` turns schema introspection off",
    ),
    (
        "GRAPHQL_MAX_DEPTH",
        "15",
        "deepest selection nesting accepted",
    ),
    (
        "GRAPHQL_MAX_COMPLEXITY",
        "5000",
        "largest query complexity accepted (roughly, fields selected times page sizes)",
    ),
    ("LOG_FORMAT", "text", "`text` or `json`"),
    ("RUST_LOG", "info", "log filter, e.g. `info,nexora=debug`"),
];

/// The longest lease `CACHE_LEASE_MS` accepts, in ms.
pub const MAX_LEASE_MS: u64 = 60_000;

/// Runtime configuration of one server instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Postgres URL of the application database.
    pub database_url: String,
    /// Redis URL, or `memory` for the in-process cache.
    pub redis_url: String,
    /// Address the HTTP server binds.
    pub listen_addr: SocketAddr,
    /// HS256 secret; `None` only allowed in demo mode.
    pub jwt_secret: Option<String>,
    /// Lifetime of issued tokens.
    pub jwt_ttl: Duration,
    /// Cap on cached results' freshness; zero disables the query cache.
    pub cache_default_ttl: Duration,
    /// Stale-if-error window past freshness.
    pub cache_stale: Duration,
    /// Prefix of every Redis key this instance writes.
    pub redis_key_prefix: String,
    /// Per-command Redis timeout.
    pub redis_timeout: Duration,
    /// Lease of pushed invalidations; zero turns leased near hits off.
    pub cache_lease: Duration,
    /// Whether first sightings skip Redis while it does not pay off
    /// (`cache/sighting.rs`).
    pub cache_adaptive_first_sightings: bool,
    /// Writes per user per minute; 0 = unlimited.
    pub rate_limit_writes_per_minute: u32,
    /// Maximum pooled Postgres connections.
    pub db_pool_size: u32,
    /// Pool wait and connect timeout.
    pub db_timeout: Duration,
    /// Statement timeout on API connections.
    pub db_statement_timeout: Duration,
    /// Cap on open WebSocket connections; 0 refuses them all.
    pub ws_max_connections: usize,
    /// Cap on the operations running at once on one WebSocket connection.
    pub ws_max_subscriptions: usize,
    /// Keepalive ping interval of WebSocket connections.
    pub ws_ping_interval: Duration,
    /// CORS origins; empty means any.
    pub cors_allowed_origins: Vec<String>,
    /// Whether introspection queries are answered.
    pub introspection: bool,
    /// Maximum selection depth.
    pub max_depth: usize,
    /// Maximum query complexity.
    pub max_complexity: usize,
    /// Emit JSON logs.
    pub log_json: bool,
    /// tracing-subscriber filter.
    pub log_filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("defaults are valid")
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a config from any name → value lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| -> String {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default_of(name).to_owned())
        };
        let num = |name: &str| -> anyhow::Result<u64> {
            let raw = var(name);
            raw.trim()
                .parse::<u64>()
                .with_context(|| format!("{name}={raw:?} is not a whole number"))
        };
        let boolean = |name: &str| -> anyhow::Result<bool> {
            match var(name).trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                other => bail!("{name}={other:?} must be true or false"),
            }
        };
        let listen_raw = var("LISTEN_ADDR");
        let listen_addr = listen_raw.parse().with_context(|| {
            format!("LISTEN_ADDR={listen_raw:?} is not an address:port such as 127.0.0.1:8080")
        })?;
        let database_url = var("DATABASE_URL");
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            bail!("DATABASE_URL={database_url:?} must start with postgres://");
        }
        let redis_url = var("REDIS_URL");
        if redis_url != "memory"
            && !redis_url.starts_with("redis://")
            && !redis_url.starts_with("rediss://")
        {
            bail!("REDIS_URL={redis_url:?} must start with redis:// (or be `memory`)");
        }
        let jwt_secret = get("JWT_SECRET").filter(|s| !s.is_empty());
        if let Some(secret) = &jwt_secret
            && secret.len() < 32
        {
            bail!(
                "JWT_SECRET is {} bytes; it must be at least 32",
                secret.len()
            );
        }
        let log_json = match var("LOG_FORMAT").as_str() {
            "text" => false,
            "json" => true,
            other => bail!("LOG_FORMAT={other:?} must be `text` or `json`"),
        };
        let origins = var("CORS_ALLOWED_ORIGINS");
        let cors_allowed_origins = if origins.trim() == "*" {
            Vec::new()
        } else {
            origins
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        };
        let pool = num("DATABASE_POOL_SIZE")?;
        if pool == 0 || pool > 1000 {
            bail!("DATABASE_POOL_SIZE={pool} must be between 1 and 1000");
        }
        let lease_ms = num("CACHE_LEASE_MS")?;
        if lease_ms != 0 && !(100..=MAX_LEASE_MS).contains(&lease_ms) {
            bail!("CACHE_LEASE_MS={lease_ms} must be 0 or between 100 and {MAX_LEASE_MS}");
        }
        let ws_max = num("WS_MAX_CONNECTIONS")?;
        if ws_max > 1_000_000 {
            bail!("WS_MAX_CONNECTIONS={ws_max} must be at most 1000000");
        }
        let ws_subs = num("WS_MAX_SUBSCRIPTIONS")?;
        if !(1..=10_000).contains(&ws_subs) {
            bail!("WS_MAX_SUBSCRIPTIONS={ws_subs} must be between 1 and 10000");
        }
        Ok(Self {
            database_url,
            redis_url,
            listen_addr,
            jwt_secret,
            jwt_ttl: Duration::from_secs(num("JWT_TTL_SECS")?.max(1)),
            cache_default_ttl: Duration::from_secs(num("CACHE_DEFAULT_TTL_SECS")?),
            cache_stale: Duration::from_secs(num("CACHE_STALE_SECS")?),
            redis_key_prefix: var("REDIS_KEY_PREFIX"),
            redis_timeout: Duration::from_millis(num("REDIS_TIMEOUT_MS")?.max(1)),
            cache_lease: Duration::from_millis(lease_ms),
            cache_adaptive_first_sightings: boolean("CACHE_ADAPTIVE_FIRST_SIGHTINGS")?,
            rate_limit_writes_per_minute: u32::try_from(num("RATE_LIMIT_WRITES_PER_MINUTE")?)
                .context("RATE_LIMIT_WRITES_PER_MINUTE is too large")?,
            db_pool_size: pool as u32,
            db_timeout: Duration::from_millis(num("DATABASE_TIMEOUT_MS")?.max(1)),
            db_statement_timeout: Duration::from_millis(num("DATABASE_STATEMENT_TIMEOUT_MS")?),
            ws_max_connections: ws_max as usize,
            ws_max_subscriptions: ws_subs as usize,
            ws_ping_interval: Duration::from_secs(num("WS_PING_INTERVAL_SECS")?.max(1)),
            cors_allowed_origins,
            introspection: boolean("GRAPHQL_INTROSPECTION")?,
            max_depth: num("GRAPHQL_MAX_DEPTH")? as usize,
            max_complexity: num("GRAPHQL_MAX_COMPLEXITY")? as usize,
            log_json,
            log_filter: var("RUST_LOG"),
        })
    }

    /// The `--help` section listing every variable with its default.
    pub fn help_text() -> String {
        let mut out = String::from("Environment variables:\n");
        for (name, default, meaning) in ENV_VARS {
            out.push_str(&format!(
                "  {name:<31} {meaning}\n  {:<31} default: {default}\n",
                ""
            ));
        }
        out
    }
}

fn default_of(name: &str) -> &'static str {
    ENV_VARS
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or("", |(_, d, _)| if d.starts_with('(') { "" } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = with(&[]).expect("defaults");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.rate_limit_writes_per_minute, 30);
        assert!(c.jwt_secret.is_none());
        assert_eq!(c.cache_lease, Duration::from_millis(300));
        let off = with(&[("CACHE_LEASE_MS", "0")]).expect("lease off");
        assert!(off.cache_lease.is_zero());
        assert_eq!(c.ws_max_subscriptions, 100);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("LISTEN_ADDR", "nope"),
            ("CACHE_DEFAULT_TTL_SECS", "-1"),
            ("JWT_SECRET", "short"),
            ("REDIS_URL", "http://x"),
            ("LOG_FORMAT", "xml"),
            ("GRAPHQL_INTROSPECTION", "maybe"),
            ("CACHE_LEASE_MS", "50"),
            ("WS_MAX_SUBSCRIPTIONS", "0"),
        ] {
            let err = with(&[(name, value)]).expect_err(name).to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
