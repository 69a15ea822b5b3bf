//! The query-result cache, rate limiter and persisted-query store. This is
//! the only module that talks to Redis (`fred`); errors never leave it: they
//! become a miss, a skipped write or an allowed request, plus a counter and a
//! `warn!`.
//!
//! WORK IN PROGRESS: the public API below is final; the Redis and in-memory
//! backends land in the following commits.

pub mod tags;

use crate::{config::Config, error::AppError};

/// The cache facade shared by all requests of an instance.
pub struct Cache {
    _prefix: String,
}

impl Cache {
    /// Connects per `config.redis_url` (`memory` → in-process). Never fails:
    /// an unreachable Redis means running uncached while reconnecting.
    pub async fn connect(config: &Config) -> Self {
        Self {
            _prefix: config.redis_key_prefix.clone(),
        }
    }

    /// Marks everything that depends on `tags` as changed. Call after the
    /// writing transaction committed and before responding.
    pub async fn invalidate(&self, tags: &[String]) {
        let _ = tags;
    }

    /// Marks every cached result as changed (after a change-feed gap).
    pub async fn invalidate_all(&self) {}

    /// Counts one write by `user_id` against the per-minute limit;
    /// `Err(RateLimited)` when over it. Fails open when Redis is unreachable.
    pub async fn allow_write(&self, user_id: i64) -> Result<(), AppError> {
        let _ = user_id;
        Ok(())
    }
}
