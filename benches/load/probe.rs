//! What the generator reads from the server besides responses: Prometheus
//! counters from `/metrics` and memory from `/proc/<pid>/status`.

use std::time::Duration;

use crate::client::{self, Target};

/// SQL statements executed by the server (cumulative).
pub const SQL_STATEMENTS: &str = "nexora_sql_statements_total";
/// Cache hits (cumulative).
pub const CACHE_HITS: &str = "nexora_cache_hits_total";
/// Cache misses (cumulative).
pub const CACHE_MISSES: &str = "nexora_cache_misses_total";

/// The counters the report uses; `None` when `/metrics` is missing or does
/// not export the counter (the server before the cache work).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// `nexora_sql_statements_total`.
    pub sql: Option<f64>,
    /// `nexora_cache_hits_total`.
    pub hits: Option<f64>,
    /// `nexora_cache_misses_total`.
    pub misses: Option<f64>,
}

impl Counters {
    /// Scrapes `GET /metrics`; every failure gives `None` counters.
    pub async fn scrape(target: &Target) -> Self {
        match client::get(target, "/metrics", Duration::from_secs(5)).await {
            Ok(reply) if reply.status == 200 => {
                let text = String::from_utf8_lossy(&reply.body);
                Self {
                    sql: counter(&text, SQL_STATEMENTS),
                    hits: counter(&text, CACHE_HITS),
                    misses: counter(&text, CACHE_MISSES),
                }
            }
            _ => Self::default(),
        }
    }
}

/// `after - before` when both exist.
pub fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// Sum of every series of `name` in Prometheus text format (labels summed).
pub fn counter(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with([' ', '\t']) {
            Some(rest)
        } else {
            None // another metric whose name starts with `name`
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Resident memory of a process, in KiB: (VmRSS, VmHWM).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) of process `pid` (`None` = this process), in
/// seconds. Linux reports it in USER_HZ, 100 per second.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // fields after the command name, which may itself contain spaces
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| rest.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}
