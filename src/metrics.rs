//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! A handful of atomic counters and fixed-bucket histograms written here
//! rather than a metrics crate: the set is small and fixed, and the hot path
//! stays a relaxed atomic add.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 13],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{le}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters of one instance.
#[derive(Default)]
pub struct Metrics {
    /// Responses served from the cache.
    pub cache_hits: AtomicU64,
    /// Cacheable requests executed.
    pub cache_misses: AtomicU64,
    /// Requests that skipped the cache (Redis down, not cacheable, disabled).
    pub cache_bypasses: AtomicU64,
    /// Entries served past freshness because Postgres failed.
    pub cache_stale_served: AtomicU64,
    /// Results stored (with Redis: handed over; a failed `SET` counts
    /// under `redis_errors`).
    pub cache_stores: AtomicU64,
    /// Results not stored because something they read changed meanwhile
    /// (in-process backend; Redis stores them and every lookup refuses them).
    pub cache_store_races: AtomicU64,
    /// Tags invalidated.
    pub cache_invalidations: AtomicU64,
    /// Whole-cache invalidations (epoch bumps).
    pub cache_epoch_bumps: AtomicU64,
    /// Near-cache hits served at the leased generation (no Redis round trip).
    pub cache_leased_hits: AtomicU64,
    /// Members removed for not acknowledging an invalidation in time.
    pub cache_lease_evictions: AtomicU64,
    /// Misses executed without a lookup (first sightings, see
    /// `cache/sighting.rs`); counted among the misses too.
    pub cache_lookups_skipped: AtomicU64,
    /// Results of such misses not stored (keys rarely asked for twice).
    pub cache_stores_skipped: AtomicU64,
    /// Failed or timed-out Redis calls.
    pub redis_errors: AtomicU64,
    /// Writes refused by the rate limiter.
    pub rate_limited: AtomicU64,
    /// Latency of queries.
    pub query_latency: Histogram,
    /// Latency of mutations.
    pub mutation_latency: Histogram,
}

impl Metrics {
    /// The exposition text.
    pub fn render(&self, sql_statements: u64, circuit_state: u8, lease_held: bool) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "nexora_cache_hits_total",
                "Responses served from the cache",
                &self.cache_hits,
            ),
            (
                "nexora_cache_misses_total",
                "Cacheable requests that were executed",
                &self.cache_misses,
            ),
            (
                "nexora_cache_bypass_total",
                "Requests that skipped the cache",
                &self.cache_bypasses,
            ),
            (
                "nexora_cache_stale_served_total",
                "Entries served past freshness because Postgres failed",
                &self.cache_stale_served,
            ),
            (
                "nexora_cache_stores_total",
                "Results stored in the cache (with Redis: sent after the response; failed SETs count as Redis errors)",
                &self.cache_stores,
            ),
            (
                "nexora_cache_store_races_total",
                "Results not stored because a write changed what they read (in-process cache; with Redis every lookup refuses them instead)",
                &self.cache_store_races,
            ),
            (
                "nexora_cache_invalidations_total",
                "Cache tags invalidated",
                &self.cache_invalidations,
            ),
            (
                "nexora_cache_epoch_bumps_total",
                "Whole-cache invalidations",
                &self.cache_epoch_bumps,
            ),
            (
                "nexora_cache_lookups_skipped_total",
                "Misses executed without a Redis lookup: keys this instance saw first while such lookups found nothing",
                &self.cache_lookups_skipped,
            ),
            (
                "nexora_cache_stores_skipped_total",
                "Results of such misses not stored: keys this instance rarely sees twice",
                &self.cache_stores_skipped,
            ),
            (
                "nexora_cache_leased_hits_total",
                "Hits served from this process at the leased generation, with no Redis round trip",
                &self.cache_leased_hits,
            ),
            (
                "nexora_cache_lease_evictions_total",
                "Instances removed from the cache members for not acknowledging an invalidation in time (the write waited out their lease)",
                &self.cache_lease_evictions,
            ),
            (
                "nexora_redis_errors_total",
                "Failed or timed-out Redis calls",
                &self.redis_errors,
            ),
            (
                "nexora_rate_limited_total",
                "Writes refused by the rate limiter",
                &self.rate_limited,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP nexora_sql_statements_total SQL statements sent to Postgres\n# TYPE nexora_sql_statements_total counter\nnexora_sql_statements_total {sql_statements}"
        );
        let _ = writeln!(
            out,
            "# HELP nexora_redis_circuit_state Redis circuit breaker: 0 closed, 1 open, 2 half-open\n# TYPE nexora_redis_circuit_state gauge\nnexora_redis_circuit_state {circuit_state}"
        );
        let _ = writeln!(
            out,
            "# HELP nexora_cache_lease_held Whether this instance holds the lease of pushed invalidations (near-cache hits without a Redis round trip)\n# TYPE nexora_cache_lease_held gauge\nnexora_cache_lease_held {}",
            u8::from(lease_held)
        );
        let name = "nexora_graphql_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} GraphQL request latency by operation type\n# TYPE {name} histogram"
        );
        self.query_latency
            .render(&mut out, name, "operation=\"query\"");
        self.mutation_latency
            .render(&mut out, name, "operation=\"mutation\"");
        out
    }
}
