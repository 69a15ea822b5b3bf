//! The measurement loop: N keep-alive connections, each a task issuing one
//! request at a time (closed loop); a warm-up whose numbers are thrown away;
//! counters scraped while every connection is idle between the two phases
//! and after the last; per-request latencies kept exactly and sorted at the
//! end.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;
use axum::http::HeaderValue;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::{
    client::{self, Conn, Reply, Target},
    probe::{self, Counters},
    workload::{
        self, CursorPool, DataSize, LIKE_MUTATION, REVIEW_LIKES_QUERY, Rng, ZipfTitles, global_id,
    },
};

/// What each request of a workload sends.
pub enum Kind {
    /// The same body every time (W1, W2, Baseline).
    Fixed(Bytes),
    /// Titles drawn from Zipf (W3, W6).
    Zipf(ZipfTitles),
    /// The feed after a never-repeated cursor (W4).
    Cursors(CursorPool),
    /// Zipf reads plus `likeReview` by random signed-in users (W5).
    WriteMix {
        /// The read part.
        reads: ZipfTitles,
        /// `Bearer …` of users 1..=n.
        tokens: Vec<HeaderValue>,
        /// Id ranges.
        size: DataSize,
        /// Share of requests that are likes.
        write_share: f64,
        /// Share of likes followed by the stale-read check.
        check_share: f64,
    },
}

/// One workload run.
pub struct Plan {
    /// The server.
    pub target: Target,
    /// What to send.
    pub kind: Kind,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Warm-up, not measured.
    pub warmup: Duration,
    /// Measured phase.
    pub duration: Duration,
    /// Per-request timeout (a timeout counts as an error).
    pub timeout: Duration,
    /// Seed of the per-connection random streams.
    pub seed: u64,
    /// Server process to watch for memory.
    pub server_pid: Option<u32>,
    /// Latency samples kept at most (memory bound on very long runs).
    pub max_samples: usize,
    /// Record a `perf` profile of the server during the measured phase here.
    pub perf_out: Option<std::path::PathBuf>,
}

/// Counts of one connection, then of the whole run.
#[derive(Default)]
pub struct Tally {
    /// Every measured request's latency, in ns.
    pub latencies_ns: Vec<u64>,
    /// Measured requests (reads and writes, not the stale-read checks).
    pub requests: u64,
    /// Non-200, GraphQL `errors`, timeouts and transport failures.
    pub errors: u64,
    /// Errors by kind (`HTTP 200: CODE`, `timeout`, …).
    pub error_kinds: BTreeMap<String, u64>,
    /// Response bytes received.
    pub bytes: u64,
    /// Writes attempted (W5).
    pub writes: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Latencies of writes, in ns.
    pub write_latencies_ns: Vec<u64>,
    /// Likes whose result was read back.
    pub stale_checks: u64,
    /// Read-backs showing fewer likes than the mutation returned.
    pub stale_reads: u64,
    /// Read-backs that failed.
    pub check_errors: u64,
    /// Connections opened.
    pub connects: u64,
    /// Latencies not kept because of `max_samples`.
    pub samples_dropped: u64,
}

impl Tally {
    fn error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_ns.extend(other.latencies_ns);
        self.requests += other.requests;
        self.errors += other.errors;
        for (k, v) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += v;
        }
        self.bytes += other.bytes;
        self.writes += other.writes;
        self.write_errors += other.write_errors;
        self.write_latencies_ns.extend(other.write_latencies_ns);
        self.stale_checks += other.stale_checks;
        self.stale_reads += other.stale_reads;
        self.check_errors += other.check_errors;
        self.connects += other.connects;
        self.samples_dropped += other.samples_dropped;
    }
}

/// Everything one run measured.
pub struct Outcome {
    /// Merged counts; latencies sorted.
    pub tally: Tally,
    /// From the start of the measured phase to the last response.
    pub wall: Duration,
    /// `/metrics` after warm-up.
    pub before: Counters,
    /// `/metrics` after the measured phase.
    pub after: Counters,
    /// Largest VmRSS seen during the measured phase (sampled every 100 ms), KiB.
    pub rss_max_kib: Option<u64>,
    /// VmHWM at the end (peak over the process's life), KiB.
    pub hwm_kib: Option<u64>,
    /// Cursor pool size and passes (W4).
    pub cursors: Option<(usize, usize)>,
    /// CPU seconds the server used during the measured phase.
    pub server_cpu_s: Option<f64>,
    /// CPU seconds the generator used during the measured phase.
    pub generator_cpu_s: Option<f64>,
}

/// Runs the plan: warm-up, scrape, measure, scrape.
pub async fn run(plan: Arc<Plan>) -> anyhow::Result<Outcome> {
    run_phase(plan.clone(), plan.warmup, plan.duration).await
}

/// Runs two plans (the same workload against two servers) in alternating
/// slices of `slice` until each has been measured for its `duration`, each
/// warmed up once before its first slice. On a shared machine whose speed
/// drifts by tens of percent over seconds, the two then see the same
/// conditions, and their ratio means something; run one after the other,
/// they may not. Returns the merged outcomes of `a` and `b`.
pub async fn run_interleaved(
    a: Arc<Plan>,
    b: Arc<Plan>,
    slice: Duration,
) -> anyhow::Result<(Outcome, Outcome)> {
    let slice = slice.max(Duration::from_millis(500));
    let slices = (a.duration.as_secs_f64() / slice.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let (mut parts_a, mut parts_b) = (Vec::new(), Vec::new());
    for i in 0..slices {
        // the last slice takes what is left, so the totals equal `duration`
        let len = a.duration.saturating_sub(slice * i).min(slice);
        let warm = |p: &Plan| if i == 0 { p.warmup } else { Duration::ZERO };
        // alternate which goes first, so neither always follows the other
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let one = run_phase(first.clone(), warm(first), len).await?;
        let two = run_phase(second.clone(), warm(second), len).await?;
        let (to_a, to_b) = if i % 2 == 0 { (one, two) } else { (two, one) };
        parts_a.push(to_a);
        parts_b.push(to_b);
    }
    Ok((merge(parts_a), merge(parts_b)))
}

/// One outcome from the slices of one plan: counts and times summed, the
/// scrape before the first and after the last (nothing else drives that
/// server in between), the largest RSS.
fn merge(parts: Vec<Outcome>) -> Outcome {
    let add = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    let mut parts = parts.into_iter();
    let mut out = parts.next().expect("at least one slice");
    for p in parts {
        out.tally.merge(p.tally);
        out.wall += p.wall;
        out.after = p.after;
        out.rss_max_kib = out.rss_max_kib.max(p.rss_max_kib);
        out.hwm_kib = p.hwm_kib;
        out.cursors = p.cursors;
        out.server_cpu_s = add(out.server_cpu_s, p.server_cpu_s);
        out.generator_cpu_s = add(out.generator_cpu_s, p.generator_cpu_s);
    }
    out.tally.latencies_ns.sort_unstable();
    out.tally.write_latencies_ns.sort_unstable();
    out
}

/// One warm-up (may be zero) and one measured phase of `plan`.
async fn run_phase(
    plan: Arc<Plan>,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let n = plan.connections.max(1);
    let warm_done = Arc::new(Barrier::new(n + 1));
    let go = Arc::new(Barrier::new(n + 1));
    let cap = plan.max_samples / n;
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let (plan, warm_done, go) = (plan.clone(), warm_done.clone(), go.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(plan.seed, i as u64 + 1);
                let mut conn = None;
                let mut scratch = Tally::default();
                let warm_until = Instant::now() + warmup;
                drive(&plan, &mut conn, &mut rng, &mut scratch, warm_until, 0).await;
                warm_done.wait().await;
                go.wait().await;
                let mut tally = Tally {
                    latencies_ns: Vec::with_capacity(cap.min(1 << 20)),
                    ..Tally::default()
                };
                let until = Instant::now() + duration;
                drive(&plan, &mut conn, &mut rng, &mut tally, until, cap).await;
                tally
            })
        })
        .collect();

    warm_done.wait().await;
    let before = Counters::scrape(&plan.target).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_rss(
        plan.server_pid,
        stop.clone(),
        duration + plan.timeout + Duration::from_secs(10),
    ));
    let cpu_before = (
        plan.server_pid.and_then(|p| probe::cpu_seconds(Some(p))),
        probe::cpu_seconds(None),
    );
    let perf = start_perf(&plan, duration)?;
    go.wait().await;
    let started = Instant::now();
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await?);
    }
    let wall = started.elapsed();
    let server_cpu_s = probe::delta(
        cpu_before.0,
        plan.server_pid.and_then(|p| probe::cpu_seconds(Some(p))),
    );
    let generator_cpu_s = probe::delta(cpu_before.1, probe::cpu_seconds(None));
    stop.store(true, Ordering::Relaxed);
    let rss_max_kib = sampler.await?;
    if let Some(mut child) = perf {
        // perf stops by itself when its `sleep` (the measured duration) ends
        tokio::task::spawn_blocking(move || child.wait()).await??;
    }
    let after = Counters::scrape(&plan.target).await;
    tally.latencies_ns.sort_unstable();
    tally.write_latencies_ns.sort_unstable();
    let cursors = match &plan.kind {
        Kind::Cursors(pool) => Some((pool.len(), pool.passes())),
        _ => None,
    };
    Ok(Outcome {
        tally,
        wall,
        before,
        after,
        rss_max_kib,
        hwm_kib: plan.server_pid.and_then(probe::memory_kib).map(|m| m.1),
        cursors,
        server_cpu_s,
        generator_cpu_s,
    })
}

/// `perf record` of the server for the measured duration (DWARF call
/// graphs: release builds have no frame pointers).
fn start_perf(plan: &Plan, duration: Duration) -> anyhow::Result<Option<std::process::Child>> {
    let (Some(out), Some(pid)) = (&plan.perf_out, plan.server_pid) else {
        return Ok(None);
    };
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "--no-buildid-cache", // nothing left in ~/.debug; the binary stays in the run dir
            "-F",
            "99",
            "--call-graph",
            "dwarf,8192",
            "-p",
        ])
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .args(["--", "sleep"])
        .arg(format!("{:.1}", duration.as_secs_f64()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting perf: {e}"))?;
    Ok(Some(child))
}

async fn sample_rss(pid: Option<u32>, stop: Arc<AtomicBool>, limit: Duration) -> Option<u64> {
    let pid = pid?;
    let until = Instant::now() + limit;
    let mut max = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        if let Some((rss, _)) = probe::memory_kib(pid) {
            max = max.max(Some(rss));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    max
}

/// Issues requests one after another until `until`.
async fn drive(
    plan: &Plan,
    conn: &mut Option<Conn>,
    rng: &mut Rng,
    tally: &mut Tally,
    until: Instant,
    cap: usize,
) {
    while Instant::now() < until {
        step(plan, conn, rng, tally, cap).await;
        if conn.is_none() {
            // the server refused or dropped us: don't spin
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn record(tally: &mut Tally, ns: u64, cap: usize) {
    tally.requests += 1;
    if tally.latencies_ns.len() < cap {
        tally.latencies_ns.push(ns);
    } else {
        tally.samples_dropped += 1;
    }
}

async fn step(plan: &Plan, conn: &mut Option<Conn>, rng: &mut Rng, tally: &mut Tally, cap: usize) {
    let body = match &plan.kind {
        Kind::Fixed(b) => b.clone(),
        Kind::Zipf(z) => z.pick(rng),
        Kind::Cursors(pool) => {
            let (cursor, first) = pool.take();
            workload::feed_body(first, Some(cursor))
        }
        Kind::WriteMix {
            reads,
            tokens,
            size,
            write_share,
            check_share,
        } => {
            if rng.unit() < *write_share {
                let user = rng.one_to(size.users);
                let review = rng.one_to(size.reviews);
                let check = rng.unit() < *check_share;
                let token = &tokens[(user - 1) as usize];
                like(plan, conn, tally, cap, token, review, check).await;
                return;
            }
            reads.pick(rng)
        }
    };
    let started = Instant::now();
    let res = exchange(plan, conn, body, None, tally).await;
    record(tally, started.elapsed().as_nanos() as u64, cap);
    match res {
        Ok(r) => {
            tally.bytes += r.body.len() as u64;
            if r.status != 200 || workload::has_errors(&r.body) {
                tally.error(workload::error_kind(r.status, &r.body));
            }
        }
        Err(kind) => tally.error(kind),
    }
}

/// One like by `token`'s user; with `check`, reads the review's likeCount
/// before (so a cache holds it) and right after, through the server: the
/// read must show at least the count the mutation returned.
async fn like(
    plan: &Plan,
    conn: &mut Option<Conn>,
    tally: &mut Tally,
    cap: usize,
    token: &HeaderValue,
    review: u64,
    check: bool,
) {
    let id = global_id("Review", review);
    let read_back = workload::body(REVIEW_LIKES_QUERY, json!({ "id": id }));
    if check {
        let _ = exchange(plan, conn, read_back.clone(), None, tally).await;
    }
    let started = Instant::now();
    let res = exchange(
        plan,
        conn,
        workload::body(LIKE_MUTATION, json!({ "id": id })),
        Some(token),
        tally,
    )
    .await;
    let ns = started.elapsed().as_nanos() as u64;
    record(tally, ns, cap);
    tally.writes += 1;
    tally.write_latencies_ns.push(ns);
    let count = match res {
        Ok(r) if r.status == 200 && !workload::has_errors(&r.body) => {
            tally.bytes += r.body.len() as u64;
            like_count(&r.body, "likeReview")
        }
        Ok(r) => {
            tally.write_errors += 1;
            tally.error(workload::error_kind(r.status, &r.body));
            return;
        }
        Err(kind) => {
            tally.write_errors += 1;
            tally.error(kind);
            return;
        }
    };
    let Some(liked) = count else {
        tally.write_errors += 1;
        tally.error("likeReview returned no likeCount".into());
        return;
    };
    if !check {
        return;
    }
    match exchange(plan, conn, read_back, None, tally).await {
        Ok(r) if r.status == 200 => match like_count(&r.body, "review") {
            Some(seen) => {
                tally.stale_checks += 1;
                if seen < liked {
                    tally.stale_reads += 1;
                }
            }
            None => tally.check_errors += 1,
        },
        _ => tally.check_errors += 1,
    }
}

fn like_count(body: &[u8], field: &str) -> Option<i64> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["data"][field]["likeCount"].as_i64()
}

/// One request on the connection, opening it first when needed. Any
/// transport failure or timeout drops the connection.
async fn exchange(
    plan: &Plan,
    conn: &mut Option<Conn>,
    body: Bytes,
    auth: Option<&HeaderValue>,
    tally: &mut Tally,
) -> Result<Reply, String> {
    if conn.is_none() {
        match tokio::time::timeout(plan.timeout, client::connect(&plan.target)).await {
            Ok(Ok(c)) => {
                tally.connects += 1;
                *conn = Some(c);
            }
            Ok(Err(e)) => return Err(short(format!("connect: {e:#}"))),
            Err(_) => return Err("connect: timeout".into()),
        }
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    match tokio::time::timeout(
        plan.timeout,
        client::post(c, &plan.target, "/graphql", body, auth),
    )
    .await
    {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => {
            *conn = None;
            Err(short(format!("transport: {e}")))
        }
        Err(_) => {
            *conn = None;
            Err("timeout".into())
        }
    }
}

fn short(s: String) -> String {
    s.chars().take(80).collect()
}

/// Nearest-rank percentile of sorted samples, in ms.
pub fn percentile_ms(sorted_ns: &[u64], q: f64) -> Option<f64> {
    if sorted_ns.is_empty() {
        return None;
    }
    let rank = ((q * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len());
    Some(sorted_ns[rank - 1] as f64 / 1e6)
}
