//! nexora's load generator (issue 6), driven by `benches/run.sh`.
//!
//! A `[[bench]]` target with `harness = false` rather than a `[[bin]]`: it
//! is built in the release profile, may use dev-dependencies (hyper's
//! client) without them reaching the server's dependency list, and is not
//! installed with the server. `cargo bench` alone only prints how to run the
//! suite; `benches/run.sh` builds it, starts the servers and calls the
//! subcommands below.

mod client;
mod engine;
mod probe;
mod report;
mod workload;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    client::Target,
    engine::{Kind, Plan},
    workload::{CursorPool, DataSize, ZipfTitles},
};

/// Load generator for nexora's benchmark suite (see benches/README.md).
#[derive(Parser)]
#[command(name = "load")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one workload against a server and append its JSON line.
    Run(Box<RunArgs>),
    /// Save the W1 response (body and Content-Type) for the baseline.
    Capture {
        /// Server URL, e.g. http://127.0.0.1:18391.
        #[arg(long)]
        url: String,
        /// Where to write the body; the Content-Type goes to `<out>.type`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a saved response from a trivial axum handler (the Baseline).
    Baseline {
        /// Loopback address to bind.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Body captured with `capture`.
        #[arg(long)]
        body: PathBuf,
        /// Exit after this long even if nobody stops us.
        #[arg(long, default_value_t = 7200)]
        max_secs: u64,
    },
    /// Wait until `GET /healthz` answers 200.
    Wait {
        /// Server URL.
        #[arg(long)]
        url: String,
        /// Give up after this long.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Print the Markdown table of the last suite run in a results file.
    Table {
        /// A `.jsonl` results file.
        #[arg(long)]
        input: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Fixed title(id): a cache hit after warm-up.
    W1,
    /// First feed page: a hit.
    W2,
    /// title(id) with Zipf(s) ids (W6 = the same with the cache off).
    W3,
    /// Feed page after a never-repeated real cursor: always a miss.
    W4,
    /// 95% W3 + 5% likeReview by signed-in users, with stale-read checks.
    W5,
    /// W1's request, sent to the baseline server.
    Baseline,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Server URL (loopback only).
    #[arg(long)]
    url: String,
    /// What to send.
    #[arg(long, value_enum)]
    workload: Workload,
    /// Row name in the results (W1 … W6, W4-off, Baseline).
    #[arg(long)]
    label: String,
    /// `on`, `off` or `none`, recorded as is.
    #[arg(long, default_value = "on")]
    cache: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Generator runtime threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Per-request timeout in ms (counted as an error).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Random seed of the request streams.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seeded titles (ids 1..=n).
    #[arg(long, default_value_t = 5000)]
    titles: u32,
    /// Seeded users (ids 1..=n).
    #[arg(long, default_value_t = 2000)]
    users: u32,
    /// Seeded reviews (ids 1..=n).
    #[arg(long, default_value_t = 100_000)]
    reviews: u32,
    /// Zipf exponent of W3/W5 title ids.
    #[arg(long, default_value_t = 1.1)]
    zipf_s: f64,
    /// W5: share of requests that are likes.
    #[arg(long, default_value_t = 0.05)]
    write_share: f64,
    /// W5: share of likes followed by a stale-read check.
    #[arg(long, default_value_t = 0.2)]
    check_share: f64,
    /// W4: most feed pages of 100 to collect cursors from.
    #[arg(long, default_value_t = 1000)]
    cursor_pages: u32,
    /// W4: file caching the collected cursors between runs on one database.
    #[arg(long)]
    cursor_cache: Option<PathBuf>,
    /// W5: the server's JWT_SECRET, to sign users' tokens (default: the
    /// JWT_SECRET environment variable; a flag would show it in `ps`).
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Server process id, for its memory (VmRSS/VmHWM).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Profile the server with `perf record` during the measured phase,
    /// into this file (the figures of a profiled run are a little lower).
    #[arg(long)]
    perf_out: Option<PathBuf>,
    /// A second server to run the same workload against, interleaved with
    /// the first in slices of `--slice` seconds (W4 and W4-off: the ratio of
    /// two runs one after the other is at the mercy of a shared machine).
    #[arg(long, requires = "pair_label")]
    pair_url: Option<String>,
    /// Row name of the second server's results.
    #[arg(long)]
    pair_label: Option<String>,
    /// `--cache` of the second server.
    #[arg(long, default_value = "off")]
    pair_cache: String,
    /// Process id of the second server.
    #[arg(long)]
    pair_server_pid: Option<u32>,
    /// Length of one interleaved slice, in seconds.
    #[arg(long, default_value_t = 2.0)]
    slice: f64,
    /// Results file to append to.
    #[arg(long)]
    out: PathBuf,
    /// Suite run id (one per run.sh invocation).
    #[arg(long)]
    run_id: String,
    /// Commit measured.
    #[arg(long, default_value = "unknown")]
    git_rev: String,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this target is driven by run.sh instead
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let cli = Cli::parse_from(args);
    let Some(command) = cli.command else {
        println!(
            "nexora load generator: run the suite with `bash benches/run.sh` (see benches/README.md)"
        );
        return Ok(());
    };
    let threads = match &command {
        Cmd::Run(a) => a.threads.max(1),
        _ => 2,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
            Cmd::Run(args) => run(*args).await,
            Cmd::Capture { url, out } => capture(&url, &out).await,
            Cmd::Baseline {
                listen,
                body,
                max_secs,
            } => baseline(listen, &body, max_secs).await,
            Cmd::Wait { url, timeout_secs } => wait(&url, timeout_secs).await,
            Cmd::Table { input } => {
                print!("{}", report::table(&input)?);
                Ok(())
            }
        }
    })
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let main = plan(&a, &a.url, &a.label, a.server_pid).await?;
    let Some(pair_url) = &a.pair_url else {
        let outcome = engine::run(main).await?;
        return report_run(&a, &a.label, &a.cache, None, &outcome);
    };
    let pair_label = a.pair_label.as_deref().unwrap_or("pair");
    let pair = plan(&a, pair_url, pair_label, a.pair_server_pid).await?;
    let slice = Duration::from_secs_f64(a.slice);
    let (first, second) = engine::run_interleaved(main, pair, slice).await?;
    report_run(&a, &a.label, &a.cache, Some(pair_label), &first)?;
    report_run(&a, pair_label, &a.pair_cache, Some(&a.label), &second)
}

/// What `a` asks to send to `url`.
async fn plan(
    a: &RunArgs,
    url: &str,
    label: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<Arc<Plan>> {
    let target = Target::parse(url)?;
    let size = DataSize {
        users: a.users,
        reviews: a.reviews,
    };
    let kind = match a.workload {
        Workload::W1 | Workload::Baseline => Kind::Fixed(workload::title_body(1)),
        Workload::W2 => Kind::Fixed(workload::feed_body(workload::FEED_PAGE, None)),
        Workload::W3 => Kind::Zipf(ZipfTitles::new(a.titles, a.zipf_s)),
        Workload::W4 => {
            let pool = CursorPool::collect(
                &target,
                a.cursor_pages,
                a.seed ^ label.len() as u64,
                a.cursor_cache.as_deref(),
            )
            .await?;
            Kind::Cursors(pool)
        }
        Workload::W5 => {
            let secret = a
                .jwt_secret
                .clone()
                .or_else(|| std::env::var("JWT_SECRET").ok())
                .context("W5 needs JWT_SECRET (or --jwt-secret) to sign users' tokens")?;
            Kind::WriteMix {
                reads: ZipfTitles::new(a.titles, a.zipf_s),
                tokens: workload::mint_tokens(&secret, a.users)?,
                size,
                write_share: a.write_share,
                check_share: a.check_share,
            }
        }
    };
    Ok(Arc::new(Plan {
        target,
        kind,
        connections: a.connections,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        timeout: Duration::from_millis(a.timeout_ms),
        seed: a.seed,
        server_pid,
        max_samples: 20_000_000,
        perf_out: a.perf_out.clone(),
    }))
}

/// Appends the JSON line of one server's outcome and prints its summary.
fn report_run(
    a: &RunArgs,
    label: &str,
    cache: &str,
    interleaved_with: Option<&str>,
    outcome: &engine::Outcome,
) -> anyhow::Result<()> {
    let workload_name = a
        .workload
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let meta = report::Meta {
        run_id: &a.run_id,
        label,
        workload: &workload_name,
        cache,
        git_rev: &a.git_rev,
        connections: a.connections,
        threads: a.threads,
        warmup_s: a.warmup,
        profiled: a.perf_out.is_some(),
        interleaved: interleaved_with.map(|w| (w, a.slice)),
    };
    let line = report::line(&meta, outcome);
    report::append(&a.out, &line)?;
    let show = |k: &str| line[k].to_string();
    println!(
        "{:<8} {:>9} req/s  p50 {} ms  p90 {} ms  p99 {} ms  errors {}  SQL/req {}  RSS max {} MiB",
        label,
        show("rps"),
        show("p50_ms"),
        show("p90_ms"),
        show("p99_ms"),
        show("errors"),
        show("sql_per_request"),
        show("server_rss_max_mib"),
    );
    if outcome.tally.errors > 0 {
        println!("         errors by kind: {}", line["error_kinds"]);
    }
    Ok(())
}

/// Fetches W1 once, checks it is a real answer, and saves it.
async fn capture(url: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let target = Target::parse(url)?;
    let mut conn = client::connect(&target).await?;
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client::post(
            &mut conn,
            &target,
            "/graphql",
            workload::title_body(1),
            None,
        ),
    )
    .await
    .context("W1 request timed out")??;
    let v: serde_json::Value = serde_json::from_slice(&reply.body)?;
    if reply.status != 200 || v.get("errors").is_some() || v["data"]["title"].is_null() {
        bail!(
            "W1 did not return title 1: HTTP {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    std::fs::write(out, &reply.body)?;
    let ctype = reply
        .content_type
        .as_ref()
        .and_then(|c| c.to_str().ok())
        .unwrap_or("application/json");
    std::fs::write(out.with_extension("type"), ctype)?;
    println!(
        "captured W1: {} bytes, {ctype}, {} reviews in the page",
        reply.body.len(),
        v["data"]["title"]["reviews"]["edges"]
            .as_array()
            .map_or(0, Vec::len)
    );
    Ok(())
}

/// The ceiling: the same bytes as W1 from a handler that does nothing.
async fn baseline(
    listen: std::net::SocketAddr,
    body: &std::path::Path,
    max_secs: u64,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!("the baseline only binds loopback addresses");
    }
    let bytes = Bytes::from(std::fs::read(body)?);
    let ctype = std::fs::read_to_string(body.with_extension("type"))
        .unwrap_or_else(|_| "application/json".into());
    let ctype = HeaderValue::from_str(ctype.trim())?;
    let app = axum::Router::new()
        .route(
            "/graphql",
            axum::routing::post(move || {
                let (bytes, ctype) = (bytes.clone(), ctype.clone());
                async move { ([(header::CONTENT_TYPE, ctype)], bytes) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let serve = axum::serve(listener, app);
    match tokio::time::timeout(Duration::from_secs(max_secs), serve).await {
        Ok(r) => r?,
        Err(_) => eprintln!("baseline: {max_secs} s passed; exiting"),
    }
    Ok(())
}

async fn wait(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let target = Target::parse(url)?;
    let until = std::time::Instant::now() + Duration::from_secs(timeout_secs);
    while std::time::Instant::now() < until {
        if let Ok(r) = client::get(&target, "/healthz", Duration::from_secs(2)).await
            && r.status == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url} did not answer /healthz within {timeout_secs} s")
}
