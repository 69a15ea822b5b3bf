//! The workloads: their GraphQL documents, pre-built request bodies, the
//! Zipf sampler, the feed-cursor pool and the signed-in users' tokens.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::HeaderValue;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::client::{self, Target};

/// W1/W3/W5 reads: a title page.
pub const TITLE_QUERY: &str = "query T($id: ID!) { title(id: $id) { name averageRating reviewCount reviews(first: 10) { edges { node { rating body author { username } likeCount } } } } }";

/// W2/W4: a feed page with what a feed card shows.
pub const FEED_QUERY: &str = "query F($first: Int!, $after: String) { feed(first: $first, after: $after) { edges { node { id rating body likeCount commentCount title { name } author { username displayName } } } } }";

/// Paging the feed to collect real cursors for W4.
const CURSOR_QUERY: &str = "query P($after: String) { feed(first: 100, after: $after) { edges { cursor } pageInfo { hasNextPage endCursor } } }";

/// W5 writes.
pub const LIKE_MUTATION: &str = "mutation L($id: ID!) { likeReview(id: $id) { id likeCount } }";

/// W5 stale-read check.
pub const REVIEW_LIKES_QUERY: &str = "query R($id: ID!) { review(id: $id) { likeCount } }";

/// Page size of the W2/W4 feed.
pub const FEED_PAGE: u32 = 20;

/// Sizes of the seeded data set the workloads draw ids from.
#[derive(Clone, Copy, Debug)]
pub struct DataSize {
    /// Users 1..=users.
    pub users: u32,
    /// Reviews 1..=reviews.
    pub reviews: u32,
}

/// `base64url_nopad("Type:n")`, the server's global id.
pub fn global_id(type_name: &str, n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{type_name}:{n}"))
}

/// A JSON request body.
pub fn body(query: &str, variables: Value) -> Bytes {
    Bytes::from(json!({ "query": query, "variables": variables }).to_string())
}

/// The W1 body: the title with id `n`.
pub fn title_body(n: u64) -> Bytes {
    body(TITLE_QUERY, json!({ "id": global_id("Title", n) }))
}

/// The W2/W4 body: a feed page, after `cursor` when given.
pub fn feed_body(first: u32, cursor: Option<&str>) -> Bytes {
    body(FEED_QUERY, json!({ "first": first, "after": cursor }))
}

/// SplitMix64: a tiny deterministic generator (one per connection).
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of run seed `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Self(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in 1..=n.
    pub fn one_to(&mut self, n: u32) -> u64 {
        1 + (self.unit() * f64::from(n)) as u64 % u64::from(n.max(1))
    }
}

/// Zipf(s) over ranks 1..=n by inverse CDF (binary search); rank k is title k.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution P(k) ∝ 1 / k^s over 1..=n.
    pub fn new(n: u32, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / f64::from(k).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }
    /// A rank in 1..=n.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        (self.cdf.partition_point(|c| *c < u) + 1).min(self.cdf.len())
    }
}

/// W3 reads: one pre-built body per title, picked by Zipf rank.
pub struct ZipfTitles {
    zipf: Zipf,
    bodies: Vec<Bytes>,
}

impl ZipfTitles {
    /// Bodies for titles 1..=titles with Zipf(s).
    pub fn new(titles: u32, s: f64) -> Self {
        Self {
            zipf: Zipf::new(titles, s),
            bodies: (1..=u64::from(titles)).map(title_body).collect(),
        }
    }
    /// The body of the next read.
    pub fn pick(&self, rng: &mut Rng) -> Bytes {
        self.bodies[self.zipf.sample(rng) - 1].clone()
    }
}

/// Real feed cursors, handed out in a shuffled order without replacement so
/// no request repeats an earlier one (a repeat could be a cache hit). When
/// the pool runs out, the next pass asks for a page size one larger, which
/// is again a new query (reported as `cursor_passes`).
pub struct CursorPool {
    cursors: Vec<String>,
    next: AtomicUsize,
}

impl CursorPool {
    /// Pages the feed (first: 100) up to `max_pages` times; cursors in a
    /// shuffled order. The pool is cached in `cache_file` when given.
    pub async fn collect(
        target: &Target,
        max_pages: u32,
        seed: u64,
        cache_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut cursors: Vec<String> = match cache_file.map(std::fs::read_to_string) {
            Some(Ok(text)) => text.lines().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if cursors.is_empty() {
            cursors = page_feed(target, max_pages).await?;
            if let Some(path) = cache_file {
                std::fs::write(path, cursors.join("\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        if cursors.is_empty() {
            bail!("the feed is empty: no cursors for W4");
        }
        let mut rng = Rng::new(seed, 0xC0);
        for i in (1..cursors.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            cursors.swap(i, j);
        }
        Ok(Self {
            cursors,
            next: AtomicUsize::new(0),
        })
    }

    /// How many distinct cursors the pool holds.
    pub fn len(&self) -> usize {
        self.cursors.len()
    }

    /// The next (cursor, page size): a combination never asked before.
    pub fn take(&self) -> (&str, u32) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let pass = (i / self.cursors.len()) as u32;
        (&self.cursors[i % self.cursors.len()], FEED_PAGE + pass)
    }

    /// Full passes over the pool so far (0 = no cursor used twice).
    pub fn passes(&self) -> usize {
        self.next.load(Ordering::Relaxed) / self.cursors.len()
    }
}

async fn page_feed(target: &Target, max_pages: u32) -> anyhow::Result<Vec<String>> {
    let mut conn = client::connect(target).await?;
    let mut cursors = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..max_pages {
        let req = body(CURSOR_QUERY, json!({ "after": after }));
        let reply = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client::post(&mut conn, target, "/graphql", req, None),
        )
        .await
        .context("paging the feed timed out")??;
        let v: Value = serde_json::from_slice(&reply.body)?;
        if reply.status != 200 || v.get("errors").is_some() {
            bail!(
                "paging the feed failed: HTTP {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let feed = &v["data"]["feed"];
        if let Some(edges) = feed["edges"].as_array() {
            cursors.extend(
                edges
                    .iter()
                    .filter_map(|e| e["cursor"].as_str().map(str::to_owned)),
            );
        }
        match (
            feed["pageInfo"]["hasNextPage"].as_bool(),
            feed["pageInfo"]["endCursor"].as_str(),
        ) {
            (Some(true), Some(end)) => after = Some(end.to_owned()),
            _ => break,
        }
    }
    Ok(cursors)
}

/// `Bearer <HS256 token>` for users 1..=users, signed like the server's.
pub fn mint_tokens(secret: &str, users: u32) -> anyhow::Result<Vec<HeaderValue>> {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let now = chrono::Utc::now().timestamp();
    (1..=users)
        .map(|id| {
            let claims = json!({ "sub": id.to_string(), "iat": now, "exp": now + 86_400 });
            let token = jsonwebtoken::encode(&header, &claims, &key)?;
            Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
        })
        .collect()
}

/// Whether a GraphQL response body carries a top-level `errors` member.
/// Inside JSON strings a quote is always escaped, so `"errors":` can only be
/// a key; no field of our documents is named `errors`.
///
/// Runs on every response, on the two cores the server has too: a window
/// scan took ~3.9 µs per 5 KB W2 body here (about a tenth of the
/// generator's CPU per W2 request), memchr's SIMD search ~0.26 µs.
pub fn has_errors(body: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"errors\":"));
    FINDER.find(body).is_some()
}

/// The first error's `extensions.code` (or message), for the error breakdown.
pub fn error_kind(status: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors")?.get(0).cloned());
    let what = match first {
        Some(e) => e["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let msg = e["message"].as_str().unwrap_or("?");
                msg.chars().take(60).collect()
            }),
        None => "no GraphQL error".to_owned(),
    };
    format!("HTTP {status}: {what}")
}
