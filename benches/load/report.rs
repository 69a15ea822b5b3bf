//! Results: one JSON line per workload run, and the table (with the issue's
//! target ratios) built from the lines of one suite run.

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _, path::Path};

use anyhow::Context;
use serde_json::{Value, json};

use crate::engine::{Outcome, percentile_ms};
use crate::probe::delta;

/// Facts about the run that are not measurements.
pub struct Meta<'a> {
    /// Same for every workload of one suite run.
    pub run_id: &'a str,
    /// Row name: W1 … W6, W4-off, Baseline.
    pub label: &'a str,
    /// Generator workload: w1 … w5, baseline.
    pub workload: &'a str,
    /// `on`, `off` (CACHE_DEFAULT_TTL_SECS=0) or `none` (baseline).
    pub cache: &'a str,
    /// Commit measured.
    pub git_rev: &'a str,
    /// Connections.
    pub connections: usize,
    /// Generator runtime threads.
    pub threads: usize,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Whether `perf` was recording (slightly lower figures).
    pub profiled: bool,
    /// Run in alternating slices with this row, slices this long (seconds).
    pub interleaved: Option<(&'a str, f64)>,
}

/// The JSON line of one run.
pub fn line(meta: &Meta<'_>, out: &Outcome) -> Value {
    let t = &out.tally;
    let secs = out.wall.as_secs_f64();
    let requests = t.requests as f64;
    let sql = delta(out.before.sql, out.after.sql);
    let hits = delta(out.before.hits, out.after.hits);
    let misses = delta(out.before.misses, out.after.misses);
    let mib = |kib: Option<u64>| kib.map(|k| round(k as f64 / 1024.0, 1));
    let mut line = json!({
        "run_id": meta.run_id,
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "label": meta.label,
        "workload": meta.workload,
        "cache": meta.cache,
        "git_rev": meta.git_rev,
        "connections": meta.connections,
        "threads": meta.threads,
        "warmup_s": meta.warmup_s,
        "profiled": meta.profiled,
        "duration_s": round(secs, 3),
        "requests": t.requests,
        "rps": round(requests / secs.max(1e-9), 1),
        "p50_ms": percentile_ms(&t.latencies_ns, 0.50).map(|v| round(v, 3)),
        "p90_ms": percentile_ms(&t.latencies_ns, 0.90).map(|v| round(v, 3)),
        "p99_ms": percentile_ms(&t.latencies_ns, 0.99).map(|v| round(v, 3)),
        "max_ms": percentile_ms(&t.latencies_ns, 1.0).map(|v| round(v, 3)),
        "errors": t.errors,
        "error_kinds": t.error_kinds,
        "bytes_per_response": t.bytes.checked_div(t.requests).unwrap_or(0),
        "sql_statements": sql,
        "sql_per_request": sql.map(|s| round(s / requests.max(1.0), 2)),
        "cache_hits": hits,
        "cache_misses": misses,
        "writes": t.writes,
        "write_errors": t.write_errors,
        "write_p99_ms": percentile_ms(&t.write_latencies_ns, 0.99).map(|v| round(v, 3)),
        "stale_checks": t.stale_checks,
        "stale_reads": t.stale_reads,
        "check_errors": t.check_errors,
        "connects": t.connects,
        "samples_dropped": t.samples_dropped,
        "cursor_pool": out.cursors.map(|c| c.0),
        "cursor_passes": out.cursors.map(|c| c.1),
        "server_cpu_s": out.server_cpu_s.map(|v| round(v, 2)),
        "server_cpu_us_per_request": out.server_cpu_s.map(|v| round(v * 1e6 / requests.max(1.0), 1)),
        "generator_cpu_s": out.generator_cpu_s.map(|v| round(v, 2)),
        "server_rss_max_mib": mib(out.rss_max_kib),
        "server_hwm_mib": mib(out.hwm_kib),
        "machine": machine(),
    });
    line["interleaved_with"] = json!(meta.interleaved.map(|i| i.0));
    line["slice_s"] = json!(meta.interleaved.map(|i| i.1));
    line
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// CPU count, model, memory and load average (the machine is shared, so the
/// load average says how quiet it was).
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": model,
        "mem_gib": round(mem_kib as f64 / 1024.0 / 1024.0, 1),
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Appends one line to `path`.
pub fn append(path: &Path, line: &Value) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}")?;
    Ok(())
}

/// Row order of the table.
const ORDER: [&str; 8] = ["Baseline", "W1", "W2", "W3", "W4", "W5", "W6", "W4-off"];

/// The Markdown table of the last suite run in `path` (the run id of the
/// last line), with the targets below it.
pub fn table(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a results line is not JSON")?;
    let run_id = lines
        .last()
        .and_then(|l| l["run_id"].as_str())
        .context("no results")?;
    let mut rows: BTreeMap<String, &Value> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["run_id"] == run_id) {
        if let Some(label) = l["label"].as_str() {
            rows.insert(label.to_owned(), l);
        }
    }
    let first = lines
        .iter()
        .find(|l| l["run_id"] == run_id)
        .context("no results")?;
    let mut out = String::new();
    let m = &first["machine"];
    writeln!(
        out,
        "Run `{run_id}` (commit {}), {} connections, {} generator threads, {} s warm-up + {} s per workload.  ",
        first["git_rev"].as_str().unwrap_or("?"),
        first["connections"],
        first["threads"],
        first["warmup_s"],
        first["duration_s"].as_f64().map_or(0.0, f64::round),
    )?;
    writeln!(
        out,
        "Machine: {} CPUs ({}), {} GiB RAM; load average at the first workload: {}.\n",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["mem_gib"],
        m["loadavg"].as_str().unwrap_or("?"),
    )?;
    if let Some(r) = rows.get("W4")
        && let (Some(with), Some(slice)) = (r["interleaved_with"].as_str(), r["slice_s"].as_f64())
    {
        writeln!(
            out,
            "W4 and {with} ran interleaved, in alternating {slice} s slices against two servers.\n"
        )?;
    }
    writeln!(
        out,
        "| workload | cache | req/s | p50 ms | p90 ms | p99 ms | errors | SQL/req | cache hits | server CPU µs/req | generator CPU % | server RSS max MiB | load avg |"
    )?;
    writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    let labels = ORDER
        .iter()
        .map(|s| (*s).to_owned())
        .chain(
            rows.keys()
                .filter(|k| !ORDER.contains(&k.as_str()))
                .cloned(),
        )
        .collect::<Vec<_>>();
    for label in &labels {
        let Some(r) = rows.get(label) else { continue };
        let hit_rate = match (r["cache_hits"].as_f64(), r["cache_misses"].as_f64()) {
            (Some(h), Some(m)) if h + m > 0.0 => format!("{:.0}%", 100.0 * h / (h + m)),
            _ => "n/a".into(),
        };
        writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {hit_rate} | {} | {} | {} | {} |",
            r["cache"].as_str().unwrap_or("?"),
            num(&r["rps"], 0),
            num(&r["p50_ms"], 2),
            num(&r["p90_ms"], 2),
            num(&r["p99_ms"], 2),
            errors(r),
            num(&r["sql_per_request"], 2),
            num(&r["server_cpu_us_per_request"], 0),
            match (r["generator_cpu_s"].as_f64(), r["duration_s"].as_f64()) {
                (Some(c), Some(d)) if d > 0.0 => format!("{:.0}%", 100.0 * c / d),
                _ => "n/a".into(),
            },
            num(&r["server_rss_max_mib"], 1),
            r["machine"]["loadavg"]
                .as_str()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?"),
        )?;
    }
    out.push('\n');
    out.push_str(&targets(&rows)?);
    Ok(out)
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".into(), |x| format!("{x:.digits$}"))
}

fn errors(r: &Value) -> String {
    let n = r["errors"].as_u64().unwrap_or(0);
    let mut s = n.to_string();
    if r["workload"] == "w5" {
        write!(
            s,
            " ({} of {} likes; stale {}/{} checked)",
            r["write_errors"], r["writes"], r["stale_reads"], r["stale_checks"]
        )
        .ok();
    }
    s
}

/// The targets, each with the measured figure and a verdict.
fn targets(rows: &BTreeMap<String, &Value>) -> anyhow::Result<String> {
    let f = |label: &str, key: &str| rows.get(label).and_then(|r| r[key].as_f64());
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "n/a",
    };
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{:.1}%", 100.0 * v));
    let ms = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2} ms"));
    let mut rows_out: Vec<(String, String, &str, &str)> = Vec::new();
    for w in ["W1", "W2"] {
        let r = ratio(f(w, "rps"), f("Baseline", "rps"));
        rows_out.push((
            format!("{w} req/s vs Baseline"),
            pct(r),
            "≥ 50%",
            verdict(r.map(|r| r >= 0.5)),
        ));
        let p = f(w, "p99_ms");
        rows_out.push((
            format!("{w} p99"),
            ms(p),
            "< 3 ms",
            verdict(p.map(|p| p < 3.0)),
        ));
    }
    let sql4 = f("W4", "sql_per_request");
    rows_out.push((
        "W4 SQL statements/request".into(),
        sql4.map_or_else(|| "n/a".into(), |v| format!("{v:.2}")),
        "≤ 6",
        verdict(sql4.map(|v| v <= 6.0)),
    ));
    let rps4 = f("W4", "rps");
    rows_out.push((
        "W4 req/s".into(),
        rps4.map_or_else(|| "n/a".into(), |v| format!("{v:.0}")),
        "≥ 2,500",
        verdict(rps4.map(|v| v >= 2500.0)),
    ));
    let p4 = f("W4", "p99_ms");
    rows_out.push((
        "W4 p99".into(),
        ms(p4),
        "< 30 ms",
        verdict(p4.map(|p| p < 30.0)),
    ));
    // from the raw counts: `sql_per_request` is rounded to two decimals,
    // which would turn W3's few statements into 0 and the reduction into 100%
    let sql = |label: &str| ratio(f(label, "sql_statements"), f(label, "requests"));
    let saved = ratio(sql("W3"), sql("W6")).map(|r| 1.0 - r);
    rows_out.push((
        "W3 SQL/request, reduction vs W6 (cache off)".into(),
        pct(saved),
        "≥ 90%",
        verdict(saved.map(|s| s >= 0.9)),
    ));
    let slower = ratio(f("W4", "rps"), f("W4-off", "rps")).map(|r| 1.0 - r);
    rows_out.push((
        "W4 (pure miss) slower than W4-off (cache off)".into(),
        pct(slower),
        "≤ 10%",
        verdict(slower.map(|s| s <= 0.10)),
    ));
    let rss = f("W5", "server_rss_max_mib");
    rows_out.push((
        "Server RSS under W5 (max VmRSS)".into(),
        rss.map_or_else(|| "n/a".into(), |v| format!("{v:.1} MiB")),
        "≤ 150 MiB",
        verdict(rss.map(|v| v <= 150.0)),
    ));
    let w5 = rows.get("W5");
    let (e5, s5, c5) = (
        w5.and_then(|r| r["errors"].as_u64()),
        w5.and_then(|r| r["stale_reads"].as_u64()),
        w5.and_then(|r| r["stale_checks"].as_u64()),
    );
    let w5_text = match (e5, s5, c5) {
        (Some(e), Some(s), Some(c)) => format!("{e} errors, {s} stale of {c} checked"),
        _ => "n/a".into(),
    };
    rows_out.push((
        "W5 errors and stale reads".into(),
        w5_text,
        "0 and 0",
        verdict(match (e5, s5, c5) {
            (Some(e), Some(s), Some(c)) if c > 0 => Some(e == 0 && s == 0),
            (Some(e), _, _) if e > 0 => Some(false),
            _ => None,
        }),
    ));
    let mut out = String::from("| target | measured | goal | verdict |\n|---|--:|--:|---|\n");
    for (what, measured, goal, v) in rows_out {
        writeln!(out, "| {what} | {measured} | {goal} | {v} |")?;
    }
    Ok(out)
}
