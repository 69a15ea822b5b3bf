//! Deterministic, realistic sample data, bulk-loaded.
//!
//! The same seed and sizes always give the same rows (a SplitMix64 generator
//! of our own, so the output does not change with a dependency upgrade).
//! Popularity is skewed (a few titles draw most reviews and likes), ratings
//! lean positive, and about 2% of the activity falls in the last 24 hours so
//! `trendingTitles` has something to rank. Rows are inserted in chunks with
//! `unnest` arrays while the counter triggers are off; the counters are then
//! recomputed in one pass (`nexora_recount()`). Seeded users all get the
//! password `password123`: demo data only.

use std::{collections::HashSet, time::Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Int2, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::cli::SeedArgs;

/// Rows inserted per statement.
const CHUNK: usize = 10_000;

/// The demo-only password of every seeded user.
pub const DEMO_PASSWORD: &str = "password123";

/// What a seed run wrote.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub titles: usize,
    pub users: usize,
    pub reviews: usize,
    pub likes: usize,
    pub comments: usize,
    pub seconds: f64,
}

/// SplitMix64: tiny, fast, and stable forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// Skewed towards 0: index `n * u^k` (k = 3 puts ~half the draws in the first 12%).
    fn skewed(&mut self, n: usize, k: i32) -> usize {
        ((n as f64) * self.unit().powi(k)) as usize % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ADJECTIVES: &[&str] = &[
    "Silent",
    "Crimson",
    "Last",
    "Hidden",
    "Broken",
    "Golden",
    "Endless",
    "Midnight",
    "Lost",
    "Wild",
    "Frozen",
    "Electric",
    "Hollow",
    "Burning",
    "Distant",
    "Iron",
    "Velvet",
    "Shattered",
    "Quiet",
    "Neon",
    "Savage",
    "Paper",
    "Glass",
    "Northern",
    "Little",
    "Eternal",
    "Wandering",
    "Secret",
    "Final",
    "Scarlet",
];
const NOUNS: &[&str] = &[
    "Horizon",
    "Kingdom",
    "Garden",
    "River",
    "Empire",
    "Signal",
    "Harbor",
    "Orchard",
    "Protocol",
    "Lantern",
    "Frontier",
    "Tide",
    "Requiem",
    "Mirror",
    "Station",
    "Summer",
    "Winter",
    "Machine",
    "Crown",
    "Witness",
    "Voyage",
    "Circuit",
    "Legacy",
    "Shadow",
    "Canyon",
    "Dynasty",
    "Echo",
    "Labyrinth",
    "Monsoon",
    "Sparrow",
];
const GENRES: &[&str] = &[
    "drama",
    "comedy",
    "thriller",
    "sci-fi",
    "fantasy",
    "horror",
    "romance",
    "crime",
    "documentary",
    "animation",
    "action",
    "adventure",
    "mystery",
    "history",
    "war",
    "family",
];
const FIRST: &[&str] = &[
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
    "Wen", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Almeida",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Sato",
    "Tanaka",
    "Varga",
    "Weber",
    "Young",
];
const OPENERS: &[&str] = &[
    "An absolute triumph.",
    "Not what I expected.",
    "Gorgeous to look at, thin on story.",
    "A slow burn that pays off.",
    "I laughed, I cried.",
    "Overrated, honestly.",
    "The cast carries it.",
    "Rewatched it twice already.",
    "The pacing drags in the middle.",
    "The soundtrack alone is worth it.",
    "A bold, messy experiment.",
    "Comfort viewing at its best.",
];
const MIDDLES: &[&str] = &[
    "The writing is sharp and the dialogue feels lived-in.",
    "Some scenes linger far too long.",
    "The final act ties every thread together.",
    "Its world-building is the real star.",
    "The lead performance is quietly devastating.",
    "It never quite decides what it wants to be.",
    "Every frame looks like a painting.",
    "The twist is telegraphed early.",
];
const COMMENTS: &[&str] = &[
    "Totally agree!",
    "Hard disagree on the ending.",
    "Great write-up.",
    "You convinced me to watch it.",
    "The soundtrack really is something.",
    "I thought the middle was the best part.",
    "Spot on.",
    "Did you watch the director's cut?",
    "Same feeling here.",
    "Interesting take, never saw it that way.",
];
/// Rating weights for 1..=10: most reviews are positive, a long tail of pans.
const RATING_WEIGHTS: [u32; 10] = [2, 2, 3, 4, 6, 10, 16, 22, 20, 15];

fn rating(rng: &mut Rng) -> i16 {
    let total: u32 = RATING_WEIGHTS.iter().sum();
    let mut roll = (rng.unit() * f64::from(total)) as u32;
    for (i, w) in RATING_WEIGHTS.iter().enumerate() {
        if roll < *w {
            return i as i16 + 1;
        }
        roll -= w;
    }
    8
}

/// A moment in the last year; `recent` of the draws fall in the last day.
fn when(rng: &mut Rng, now: DateTime<Utc>, recent: f64) -> DateTime<Utc> {
    let secs = if rng.unit() < recent {
        rng.below(86_000)
    } else {
        86_400 + rng.below(365 * 86_400)
    };
    now - Duration::seconds(secs as i64) - Duration::microseconds(rng.below(1_000_000) as i64)
}

/// Seeds an empty database. Refuses when any title or user exists, so it
/// never mixes with (or loses) real data.
pub async fn run(
    url: &str,
    args: &SeedArgs,
    timeout: std::time::Duration,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    anyhow::ensure!(
        args.users > 0 || (args.reviews == 0 && args.likes == 0 && args.comments == 0),
        "--users must be positive when reviews, likes or comments are asked for"
    );
    anyhow::ensure!(
        args.titles > 0 || args.reviews == 0,
        "--titles must be positive when reviews are asked for"
    );
    anyhow::ensure!(
        u64::from(args.reviews) <= u64::from(args.users) * u64::from(args.titles) / 2,
        "--reviews is too large: each user reviews a title at most once (at most half of users x titles)"
    );
    let mut conn = crate::db::connect_once(url, timeout).await?;
    if !is_empty(&mut conn).await? {
        anyhow::bail!(
            "the database already has titles or users; seed needs an empty database (use a fresh DATABASE_URL)"
        );
    }
    let password_hash = crate::auth::hash_password(DEMO_PASSWORD.into())
        .await
        .map_err(|e| anyhow::anyhow!("hashing the demo password: {}", e.message()))?;
    let mut rng = Rng(args.seed ^ 0x6E65_786F_7261);
    let now = Utc::now();
    let report = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            conn.batch_execute(
                "ALTER TABLE titles DISABLE TRIGGER USER; ALTER TABLE reviews DISABLE TRIGGER USER;
                 ALTER TABLE review_likes DISABLE TRIGGER USER; ALTER TABLE comments DISABLE TRIGGER USER;
                 ALTER TABLE follows DISABLE TRIGGER USER;",
            )
            .await?;
            let mut report = SeedReport {
                titles: insert_titles(conn, &mut rng, args.titles as usize, now).await?,
                users: insert_users(conn, &mut rng, args.users as usize, &password_hash, now).await?,
                ..SeedReport::default()
            };
            let reviews = insert_reviews(conn, &mut rng, args, now).await?;
            report.reviews = reviews.len();
            report.likes = insert_likes(conn, &mut rng, &reviews, args, now).await?;
            report.comments = insert_comments(conn, &mut rng, &reviews, args, now).await?;
            conn.batch_execute(
                "ALTER TABLE titles ENABLE TRIGGER USER; ALTER TABLE reviews ENABLE TRIGGER USER;
                 ALTER TABLE review_likes ENABLE TRIGGER USER; ALTER TABLE comments ENABLE TRIGGER USER;
                 ALTER TABLE follows ENABLE TRIGGER USER;
                 SELECT nexora_recount();
                 SELECT setval('titles_id_seq', greatest((SELECT max(id) FROM titles), 1));
                 SELECT setval('users_id_seq', greatest((SELECT max(id) FROM users), 1));
                 SELECT setval('reviews_id_seq', greatest((SELECT max(id) FROM reviews), 1));
                 SELECT setval('comments_id_seq', greatest((SELECT max(id) FROM comments), 1));",
            )
            .await?;
            Ok(report)
        })
        .await
        .context("seeding")?;
    conn.batch_execute("ANALYZE").await?;
    Ok(SeedReport {
        seconds: started.elapsed().as_secs_f64(),
        ..report
    })
}

async fn is_empty(conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
    #[derive(diesel::QueryableByName)]
    struct Flag {
        #[diesel(sql_type = Bool)]
        empty: bool,
    }
    let row: Flag = diesel::sql_query(
        "SELECT NOT EXISTS (SELECT 1 FROM titles) AND NOT EXISTS (SELECT 1 FROM users) AS empty",
    )
    .get_result(conn)
    .await?;
    Ok(row.empty)
}

async fn insert_titles(
    conn: &mut AsyncPgConnection,
    rng: &mut Rng,
    n: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let kinds = [
        "MOVIE",
        "MOVIE",
        "MOVIE",
        "MOVIE",
        "SERIES",
        "SERIES",
        "MINISERIES",
        "ANIME",
        "ANIME",
        "MOVIE",
    ];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let (mut ids, mut kind, mut name, mut year, mut synopsis, mut genres, mut created) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in start..end {
            ids.push(i as i64 + 1);
            kind.push(kinds[rng.below(kinds.len())].to_owned());
            let base = format!("The {} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS));
            // names repeat in real catalogues too; a sequel number keeps most distinct
            name.push(if rng.below(4) == 0 {
                format!("{base} {}", 2 + rng.below(3))
            } else {
                base
            });
            year.push(if rng.below(20) == 0 {
                None
            } else {
                Some(2026 - (rng.unit().powi(2) * 70.0) as i32)
            });
            synopsis.push(format!(
                "A story of {} and {} set against a {} {}.",
                rng.pick(NOUNS).to_lowercase(),
                rng.pick(NOUNS).to_lowercase(),
                rng.pick(ADJECTIVES).to_lowercase(),
                rng.pick(NOUNS).to_lowercase()
            ));
            let mut g: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(GENRES)).collect();
            g.sort_unstable();
            g.dedup();
            // Postgres has no arrays of arrays of different lengths: send a literal per row
            genres.push(format!("{{{}}}", g.join(",")));
            created.push(
                now - Duration::days(30 + rng.below(1500) as i64)
                    - Duration::seconds(rng.below(86_400) as i64),
            );
        }
        diesel::sql_query(
            "INSERT INTO titles (id, kind, name, release_year, synopsis, genres, created_at)
             SELECT id, kind, name, year, synopsis, genres::text[], created
               FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::timestamptz[])
                 AS t(id, kind, name, year, synopsis, genres, created)",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Text>, _>(kind)
        .bind::<Array<Text>, _>(name)
        .bind::<Array<Nullable<Int4>>, _>(year)
        .bind::<Array<Text>, _>(synopsis)
        .bind::<Array<Text>, _>(genres)
        .bind::<Array<Timestamptz>, _>(created)
        .execute(conn)
        .await?;
    }
    Ok(n)
}

async fn insert_users(
    conn: &mut AsyncPgConnection,
    rng: &mut Rng,
    n: usize,
    hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let (mut ids, mut username, mut display, mut bio, mut role, mut created) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in start..end {
            ids.push(i as i64 + 1);
            let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
            // the index keeps usernames unique; 3-30 chars of [a-z0-9_]
            let mut handle = format!("{}_{}{}", first.to_lowercase(), last.to_lowercase(), i + 1);
            handle.truncate(30);
            username.push(handle);
            display.push(format!("{first} {last}"));
            bio.push(if rng.below(3) == 0 {
                None
            } else {
                Some(format!(
                    "Loves {} and {}.",
                    rng.pick(GENRES),
                    rng.pick(GENRES)
                ))
            });
            // user 1 is an admin, so the demo can exercise admin-only writes
            role.push(if i == 0 { "ADMIN" } else { "MEMBER" }.to_owned());
            created.push(now - Duration::days(400 + rng.below(800) as i64));
        }
        let hashes = vec![hash.to_owned(); ids.len()];
        diesel::sql_query(
            "INSERT INTO users (id, username, display_name, bio, password_hash, role, created_at)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Text>, _>(username)
        .bind::<Array<Text>, _>(display)
        .bind::<Array<Nullable<Text>>, _>(bio)
        .bind::<Array<Text>, _>(hashes)
        .bind::<Array<Text>, _>(role)
        .bind::<Array<Timestamptz>, _>(created)
        .execute(conn)
        .await?;
    }
    Ok(n)
}

/// A review row waiting to be flushed: id, title, author, rating, body, spoilers, created.
type ReviewTuple = (i64, i64, i64, i16, String, bool, DateTime<Utc>);

/// A seeded review: its id and creation time (likes and comments come after it).
struct Seeded {
    id: i64,
    created: DateTime<Utc>,
}

async fn insert_reviews(
    conn: &mut AsyncPgConnection,
    rng: &mut Rng,
    args: &SeedArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Seeded>> {
    let (n, users, titles) = (
        args.reviews as usize,
        args.users as usize,
        args.titles as usize,
    );
    let mut seen: HashSet<(usize, usize)> = HashSet::with_capacity(n);
    let mut rows: Vec<ReviewTuple> = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while rows.len() < n {
        attempts += 1;
        anyhow::ensure!(
            attempts < n * 50 + 1000,
            "could not place {n} distinct reviews; ask for fewer"
        );
        let (user, title) = (rng.below(users), rng.skewed(titles, 3));
        if !seen.insert((user, title)) {
            continue;
        }
        let created = when(rng, now, 0.02);
        let body = format!("{} {}", rng.pick(OPENERS), rng.pick(MIDDLES));
        rows.push((
            0,
            title as i64 + 1,
            user as i64 + 1,
            rating(rng),
            body,
            rng.below(10) == 0,
            created,
        ));
    }
    // Written oldest first, ids in that order, as a live table receives
    // them: the heap follows time, so a page of the feed reads a few
    // neighbouring heap pages. In random order each of a page's rows sat on
    // a page of its own (and the feed's statement cost Postgres about twice
    // as much as on a table that grew with time).
    // `out` stays in the order drawn: likes and comments pick reviews by
    // position with a skew, and popularity should not follow age
    let mut by_time: Vec<usize> = (0..rows.len()).collect();
    by_time.sort_by_key(|&i| rows[i].6);
    for (rank, &i) in by_time.iter().enumerate() {
        rows[i].0 = rank as i64 + 1;
    }
    let out = rows
        .iter()
        .map(|r| Seeded {
            id: r.0,
            created: r.6,
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<ReviewTuple> = rows.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        flush_reviews(conn, chunk).await?;
    }
    Ok(out)
}

async fn flush_reviews(conn: &mut AsyncPgConnection, rows: Vec<ReviewTuple>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (id, t, u, r, b, s, c) in rows {
        cols.0.push(id);
        cols.1.push(t);
        cols.2.push(u);
        cols.3.push(r);
        cols.4.push(b);
        cols.5.push(s);
        cols.6.push(c);
    }
    diesel::sql_query(
        "INSERT INTO reviews (id, title_id, author_id, rating, body, contains_spoilers, created_at, updated_at)
         SELECT id, t, u, r, b, s, c, c
           FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int2[], $5::text[], $6::bool[], $7::timestamptz[])
             AS x(id, t, u, r, b, s, c)",
    )
    .bind::<Array<BigInt>, _>(cols.0)
    .bind::<Array<BigInt>, _>(cols.1)
    .bind::<Array<BigInt>, _>(cols.2)
    .bind::<Array<Int2>, _>(cols.3)
    .bind::<Array<Text>, _>(cols.4)
    .bind::<Array<Bool>, _>(cols.5)
    .bind::<Array<Timestamptz>, _>(cols.6)
    .execute(conn)
    .await?;
    Ok(())
}

/// A moment between `after` and now.
fn later(rng: &mut Rng, after: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let span = (now - after).num_seconds().max(1) as usize;
    after + Duration::seconds(rng.below(span) as i64)
}

async fn insert_likes(
    conn: &mut AsyncPgConnection,
    rng: &mut Rng,
    reviews: &[Seeded],
    args: &SeedArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let (n, users) = (args.likes as usize, args.users as usize);
    if reviews.is_empty() || n == 0 {
        return Ok(0);
    }
    anyhow::ensure!(
        n <= reviews.len() * users / 2,
        "--likes is too large for the reviews and users asked for"
    );
    let mut seen: HashSet<(usize, usize)> = HashSet::with_capacity(n);
    let (mut rid, mut uid, mut created) = (vec![], vec![], vec![]);
    let mut written = 0;
    let mut attempts = 0usize;
    while written < n {
        attempts += 1;
        anyhow::ensure!(
            attempts < n * 50 + 1000,
            "could not place {n} distinct likes; ask for fewer"
        );
        let (review, user) = (rng.skewed(reviews.len(), 2), rng.below(users));
        if !seen.insert((review, user)) {
            continue;
        }
        let r = &reviews[review];
        rid.push(r.id);
        uid.push(user as i64 + 1);
        created.push(if rng.below(50) == 0 {
            now - Duration::seconds(rng.below(80_000) as i64)
        } else {
            later(rng, r.created, now)
        });
        written += 1;
        if rid.len() == CHUNK || written == n {
            diesel::sql_query(
                "INSERT INTO review_likes (review_id, user_id, created_at)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::timestamptz[])",
            )
            .bind::<Array<BigInt>, _>(std::mem::take(&mut rid))
            .bind::<Array<BigInt>, _>(std::mem::take(&mut uid))
            .bind::<Array<Timestamptz>, _>(std::mem::take(&mut created))
            .execute(conn)
            .await?;
        }
    }
    Ok(n)
}

async fn insert_comments(
    conn: &mut AsyncPgConnection,
    rng: &mut Rng,
    reviews: &[Seeded],
    args: &SeedArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let (n, users) = (args.comments as usize, args.users as usize);
    if reviews.is_empty() || n == 0 {
        return Ok(0);
    }
    let (mut ids, mut rid, mut uid, mut body, mut created) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let r = &reviews[rng.skewed(reviews.len(), 2)];
        ids.push(i as i64 + 1);
        rid.push(r.id);
        uid.push(rng.below(users) as i64 + 1);
        body.push(rng.pick(COMMENTS).to_owned());
        created.push(later(rng, r.created, now));
        if ids.len() == CHUNK || i + 1 == n {
            diesel::sql_query(
                "INSERT INTO comments (id, review_id, author_id, body, created_at)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[])",
            )
            .bind::<Array<BigInt>, _>(std::mem::take(&mut ids))
            .bind::<Array<BigInt>, _>(std::mem::take(&mut rid))
            .bind::<Array<BigInt>, _>(std::mem::take(&mut uid))
            .bind::<Array<Text>, _>(std::mem::take(&mut body))
            .bind::<Array<Timestamptz>, _>(std::mem::take(&mut created))
            .execute(conn)
            .await?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_ratings_skew_positive() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng(1);
        let ratings: Vec<i16> = (0..10_000).map(|_| rating(&mut r)).collect();
        let high = ratings.iter().filter(|x| **x >= 7).count();
        assert!(high > 6_000, "{high}");
        assert!(ratings.iter().all(|x| (1..=10).contains(x)));
    }
}
