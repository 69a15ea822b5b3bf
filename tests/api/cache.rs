//! The query-result cache: hits, scopes, races, Redis and Postgres trouble,
//! stampedes, HTTP caching headers and persisted queries.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use diesel_async::SimpleAsyncConnection;
use nexora::{
    cache::{Snapshot, tags},
    config::Config,
};
use serde_json::{Value, json};

use crate::support::{self, OwnRedis, PgProxy, Res, TestApp, TestDb, fx, gid, test_config};

fn x_cache(res: &Res) -> &str {
    res.headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The body of the first review in a `TITLE_Q` response.
fn first_body(res: &Res) -> &serde_json::Value {
    &res.ok()["title"]["reviews"]["edges"][0]["node"]["body"]
}

/// Near-cache hits `t` served at its leased generation so far.
fn leased_hits(t: &TestApp) -> u64 {
    t.app
        .services
        .cache
        .metrics
        .cache_leased_hits
        .load(Ordering::Relaxed)
}

/// A new title with one review by a new user: the review, the title, and
/// the `TITLE_Q` variables that read it.
async fn reviewed_title(
    c: &mut diesel_async::AsyncPgConnection,
    user: &str,
    title: &str,
    rating: i16,
) -> (i64, i64, Value) {
    let u = fx::user(c, user).await;
    let ti = fx::title(c, title).await;
    let r = fx::review(c, u, ti, rating).await;
    (r, ti, json!({ "id": gid("Title", ti) }))
}

/// A write through `t` as every mutation makes it: the review's new body is
/// committed, then what it changed is invalidated.
async fn edit_body(
    t: &TestApp,
    c: &mut diesel_async::AsyncPgConnection,
    review: i64,
    title: i64,
    body: &str,
) {
    c.batch_execute(&format!(
        "UPDATE reviews SET body = '{body}' WHERE id = {review}"
    ))
    .await
    .expect("update");
    t.app
        .services
        .cache
        .invalidate(&tags::review_edited(review, title, false))
        .await;
}

const TITLE_Q: &str =
    "query T($id: ID!) { title(id: $id) { name reviewCount reviews { edges { node { body } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_skip_execution_and_equivalent_requests_share_an_entry() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let (u, ti) = (
        fx::user(&mut c, "writer").await,
        fx::title(&mut c, "Cached").await,
    );
    fx::review(&mut c, u, ti, 7).await;
    let vars = json!({ "id": gid("Title", ti) });

    let first = t.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(x_cache(&first), "MISS");
    let before = t.statements();
    let second = t.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(t.statements(), before, "a hit runs no SQL");
    assert_eq!(first.body, second.body);

    // whitespace, commas and comments do not matter
    let relaid = "# same query\nquery T($id:ID!){title(id:$id){name,reviewCount,reviews{edges{node{body}}}}}";
    assert_eq!(x_cache(&t.gql(relaid, vars).await), "HIT");
    // nor does variable key order
    let q = "query L($f: Int, $k: TitleKind) { titles(first: $f, kind: $k) { totalCount } }";
    assert_eq!(
        x_cache(&t.gql(q, json!({ "f": 2, "k": "MOVIE" })).await),
        "MISS"
    );
    assert_eq!(
        x_cache(&t.gql(q, json!({ "k": "MOVIE", "f": 2 })).await),
        "HIT"
    );
    // but different values do
    assert_eq!(
        x_cache(&t.gql(q, json!({ "k": "MOVIE", "f": 3 })).await),
        "MISS"
    );

    // HTTP caching: shortest-lived field (lists: 30 s) sets max-age; ETag revalidates
    let cc = second.headers["cache-control"].to_str().expect("cc");
    let max_age: u64 = cc
        .strip_prefix("public, max-age=")
        .expect(cc)
        .parse()
        .expect("n");
    assert!(max_age <= 30, "{cc}");
    let etag = second.headers["etag"].to_str().expect("etag").to_owned();
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("if-none-match", &etag)
        .body(Body::from(
            json!({ "query": TITLE_Q, "variables": { "id": gid("Title", ti) } }).to_string(),
        ))
        .expect("req");
    let res = t.send(req).await;
    assert_eq!(res.status, 304);
    assert_eq!(res.headers["etag"], etag.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_mutations_are_never_cached() {
    let t = TestApp::new().await;
    let q = "{ feed(first: 500) { totalCount } }";
    assert_eq!(t.gql(q, json!({})).await.code(), Some("BAD_USER_INPUT"));
    let res = t.gql(q, json!({})).await;
    assert_eq!(x_cache(&res), "MISS", "errors are not stored");
    assert_eq!(res.headers["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_specific_results_never_leak_between_viewers() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let (ana, bob) = (
        fx::user(&mut c, "ana_a").await,
        fx::user(&mut c, "bob_b").await,
    );
    let ti = fx::title(&mut c, "Scoped").await;
    let r = fx::review(&mut c, bob, ti, 9).await;
    fx::like(&mut c, ana, r).await;
    let (ta, tb) = (t.token(ana), t.token(bob));
    let q = "query R($id: ID!) { review(id: $id) { likeCount viewerHasLiked author { viewerIsFollowing } } viewer { username } }";
    let vars = json!({ "id": gid("Review", r) });
    for (token, liked, name) in [
        (Some(&ta), true, json!("ana_a")),
        (Some(&tb), false, json!("bob_b")),
        (None, false, json!(null)),
    ] {
        for round in ["MISS", "HIT"] {
            let res = t.gql_as(token.map(String::as_str), q, vars.clone()).await;
            assert_eq!(x_cache(&res), round, "{name} {round}");
            assert_eq!(
                res.ok()["review"]["viewerHasLiked"],
                liked,
                "{name} {round}"
            );
            assert_eq!(res.ok()["viewer"]["username"], name);
        }
    }
    let private = t.gql_as(Some(&ta), q, vars.clone()).await;
    assert!(
        private.headers["cache-control"]
            .to_str()
            .expect("cc")
            .starts_with("private")
    );
    // a document without viewer fields is one public entry for everyone
    let public = "query R($id: ID!) { review(id: $id) { likeCount } }";
    assert_eq!(
        x_cache(&t.gql_as(Some(&ta), public, vars.clone()).await),
        "MISS"
    );
    assert_eq!(
        x_cache(&t.gql_as(Some(&tb), public, vars.clone()).await),
        "HIT"
    );
    assert_eq!(x_cache(&t.gql(public, vars).await), "HIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_is_precise_and_reaches_every_instance() {
    let a = TestApp::new().await;
    let b = a.second_instance().await;
    let mut c = a.conn().await;
    let u = fx::user(&mut c, "author").await;
    let (t1, t2) = (
        fx::title(&mut c, "One").await,
        fx::title(&mut c, "Two").await,
    );
    let (r1, _r2) = (
        fx::review(&mut c, u, t1, 5).await,
        fx::review(&mut c, u, t2, 6).await,
    );
    let (v1, v2) = (
        json!({ "id": gid("Title", t1) }),
        json!({ "id": gid("Title", t2) }),
    );
    for v in [&v1, &v2] {
        assert_eq!(x_cache(&a.gql(TITLE_Q, v.clone()).await), "MISS");
        assert_eq!(
            x_cache(&b.gql(TITLE_Q, v.clone()).await),
            "HIT",
            "instances share the cache"
        );
    }
    // a write through A (commit, then invalidate — what every mutation does)
    edit_body(&a, &mut c, r1, t1, "edited").await;
    let res = b.gql(TITLE_Q, v1.clone()).await;
    assert_eq!(
        x_cache(&res),
        "MISS",
        "read-your-writes through the other instance"
    );
    assert_eq!(*first_body(&res), "edited");
    assert_eq!(
        x_cache(&a.gql(TITLE_Q, v2).await),
        "HIT",
        "the other title stays cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_near_hits_ask_redis_nothing_and_every_write_reaches_them() {
    let a = TestApp::new().await;
    let b = a.second_instance().await;
    a.until_leased().await;
    b.until_leased().await;
    // the member set expires once nobody renews (a crashed fleet, a killed
    // test) instead of staying in Redis forever; renewals keep it alive
    let members = nexora::cache::lease::members_key(&a.app.services.config.redis_key_prefix);
    let pttl: i64 = support::shared_cli(&["pttl", &members])
        .parse()
        .expect("pttl");
    let ttl = nexora::cache::lease::MEMBERS_TTL.as_millis() as i64;
    assert!((1..=ttl).contains(&pttl), "member set ttl: {pttl}");
    let mut c = a.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "leaser", "Leased", 7).await;

    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "MISS");
    for i in 0..12 {
        // B validates the entry in Redis once, then serves it from memory
        // with no round trip
        assert_eq!(x_cache(&b.gql(TITLE_Q, vars.clone()).await), "HIT");
        let before = leased_hits(&b);
        let res = b.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(x_cache(&res), "HIT");
        assert_eq!(leased_hits(&b), before + 1, "round {i}: a leased near hit");

        // a write through A: once A answered, B has applied it
        edit_body(&a, &mut c, r, ti, &format!("edit {i}")).await;
        let res = b.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(
            *first_body(&res),
            format!("edit {i}"),
            "round {i}: B served a stale near copy"
        );
        assert_eq!(x_cache(&res), "MISS");
    }
    assert_eq!(
        a.app
            .services
            .cache
            .metrics
            .cache_lease_evictions
            .load(Ordering::Relaxed),
        0,
        "B acknowledged every write in time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_hits_racing_writes_never_show_an_acknowledged_write_missing() {
    use std::sync::{Arc, atomic::AtomicBool};
    let a = TestApp::new().await;
    let b = Arc::new(a.second_instance().await);
    a.until_leased().await;
    b.until_leased().await;
    let mut c = a.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "racer", "Raced", 3).await;
    // readers keep B's near copy hot (and refill it after every write)
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (b, stop, vars) = (b.clone(), stop.clone(), vars.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(b.gql(TITLE_Q, vars.clone()).await.status, 200);
                }
            })
        })
        .collect();
    for i in 0..25 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        edit_body(&a, &mut c, r, ti, &format!("race {i}")).await;
        let res = b.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(
            *first_body(&res),
            format!("race {i}"),
            "round {i}: a read through B after the write answered missed it ({})",
            x_cache(&res)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.await.expect("reader");
    }
    assert!(
        leased_hits(&b) > 25,
        "the readers were served leased near hits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lease_near_hits_read_the_generation_and_writes_still_reach_them() {
    let a = TestApp::with_config(Config {
        cache_lease: Duration::ZERO,
        ..test_config()
    })
    .await;
    let b = a.second_instance().await;
    let mut c = a.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "unleased", "Unleased", 4).await;
    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "MISS");
    for i in 0..5 {
        for _ in 0..3 {
            assert_eq!(x_cache(&b.gql(TITLE_Q, vars.clone()).await), "HIT");
        }
        edit_body(&a, &mut c, r, ti, &format!("plain {i}")).await;
        let res = b.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(
            *first_body(&res),
            format!("plain {i}"),
            "round {i}: B served a stale near copy"
        );
    }
    for t in [&a, &b] {
        assert!(!t.app.services.cache.lease_held());
        assert_eq!(leased_hits(t), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_acknowledging_is_removed_and_its_lease_waited_out() {
    let redis = OwnRedis::start();
    let a = app_on_redis(&redis).await;
    let b = a.second_instance().await;
    a.until_leased().await;
    b.until_leased().await;
    let config = &a.app.services.config;
    let members = format!("{}cache:members", config.redis_key_prefix);
    let evictions = || {
        a.app
            .services
            .cache
            .metrics
            .cache_lease_evictions
            .load(Ordering::Relaxed)
    };

    // an instance that died without leaving: it never acknowledges
    assert_eq!(redis.cli(&["ZADD", &members, "0", "dead"]), "1");
    let started = Instant::now();
    a.app
        .services
        .cache
        .invalidate(&["Title:1".to_owned()])
        .await;
    assert!(
        started.elapsed() >= config.cache_lease,
        "the write answered before the silent member's lease could have run out ({:?})",
        started.elapsed()
    );
    assert_eq!(evictions(), 1);
    assert_ne!(
        redis.cli(&["ZSCORE", &members, "dead"]),
        "0",
        "removed (its renewals fail)"
    );
    // the live members stay; once the dead one's lease is over, writes
    // wait for nobody
    for t in [&a, &b] {
        let id = t.app.services.cache.lease_id().expect("Redis backend");
        assert_eq!(redis.cli(&["ZSCORE", &members, id]), "0");
    }
    tokio::time::sleep(config.cache_lease).await;
    a.app
        .services
        .cache
        .invalidate(&["Title:2".to_owned()])
        .await;
    assert_eq!(evictions(), 1, "B acknowledged, the dead member is gone");
    assert_eq!(redis.cli(&["ZSCORE", &members, "dead"]), "", "forgotten");

    // a removed member gives its lease up and joins again (here removed by
    // hand, with a removal that is already over)
    let id = b
        .app
        .services
        .cache
        .lease_id()
        .expect("Redis backend")
        .to_owned();
    assert_eq!(redis.cli(&["ZADD", &members, "1", &id]), "0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["ZSCORE", &members, &id]) != "0" {
        assert!(Instant::now() < deadline, "B did not join again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.until_leased().await;

    // at shutdown an instance leaves for good: writes stop waiting for it
    b.app.services.cache.leave().await;
    assert!(!b.app.services.cache.lease_held());
    assert_eq!(redis.cli(&["ZSCORE", &members, &id]), "");
    tokio::time::sleep(config.cache_lease).await;
    assert_eq!(
        redis.cli(&["ZSCORE", &members, &id]),
        "",
        "and does not join again"
    );
    assert!(!b.app.services.cache.lease_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_that_raced_a_write_is_never_served() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let (r, ti, _) = reviewed_title(&mut c, "racer", "Raced", 5).await;
    let q = "{ feed { edges { node { id body title { name } } } } }";
    // hold titles locked: the read gets its reviews, then blocks loading titles
    let mut locker = t.conn().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE titles IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let router = t.router.clone();
    let slow = tokio::spawn(async move {
        use tower::ServiceExt;
        let req = Request::post("/graphql")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "query": q }).to_string()))
            .expect("req");
        router.oneshot(req).await.expect("response")
    });
    // wait until the read is blocked on the lock
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let blocked = support::count(
            &mut t.conn().await,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if blocked > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the read never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // the write commits and invalidates while the read is in flight
    edit_body(&t, &mut c, r, ti, "after the write").await;
    locker.batch_execute("COMMIT").await.expect("unlock");
    let old = slow.await.expect("join");
    assert_eq!(old.headers()["x-cache"], "MISS");
    // the slow read saw the old body: no lookup may return it
    let res = t.gql(q, json!({})).await;
    assert_eq!(x_cache(&res), "MISS", "the raced result was not served");
    assert_eq!(
        res.ok()["feed"]["edges"][0]["node"]["body"],
        "after the write"
    );
    assert_eq!(x_cache(&t.gql(q, json!({})).await), "HIT");
}

async fn app_on_redis(redis: &OwnRedis) -> TestApp {
    TestApp::with_config(Config {
        redis_url: redis.url(),
        ..test_config()
    })
    .await
}

/// A redis-server of the test's own, an instance on it, and the variables
/// of `TITLE_Q` for a new title named `name`.
async fn title_on_own_redis(name: &str) -> (OwnRedis, TestApp, serde_json::Value) {
    let redis = OwnRedis::start();
    let t = app_on_redis(&redis).await;
    let mut c = t.conn().await;
    let ti = fx::title(&mut c, name).await;
    (redis, t, json!({ "id": gid("Title", ti) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_redis_lost_are_reloaded_and_bodies_are_stored_whole() {
    let redis = OwnRedis::start();
    let a = app_on_redis(&redis).await;
    let mut c = a.conn().await;
    let (t1, t2) = (
        fx::title(&mut c, "Before flush").await,
        fx::title(&mut c, "After flush").await,
    );
    let v1 = json!({ "id": gid("Title", t1) });
    assert_eq!(x_cache(&a.gql(TITLE_Q, v1.clone()).await), "MISS");

    // a Redis restart or failover loses loaded scripts
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    // an unrelated write: its invalidation script must load again, and the
    // generation moves, so the other instance below validates the first
    // entry with the lookup script (loaded again too)
    a.app
        .services
        .cache
        .invalidate(&["Title:unrelated".to_owned()])
        .await;
    let errors = &a.app.services.cache.metrics.redis_errors;
    assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 0);
    let v2 = json!({ "id": gid("Title", t2) });
    let res = a.gql(TITLE_Q, v2.clone()).await;
    assert_eq!(res.status, 200);
    assert_eq!(x_cache(&res), "MISS");
    assert_eq!(res.ok()["title"]["name"], "After flush");

    // another instance (no near copy) finds both entries through the lookup
    // script, bodies and ETags intact
    let b = a.second_instance().await;
    for (vars, name) in [(v1, "Before flush"), (v2, "After flush")] {
        let res = b.gql(TITLE_Q, vars).await;
        assert_eq!(x_cache(&res), "HIT", "{name}");
        assert_eq!(res.ok()["title"]["name"], name);
        assert!(res.headers.contains_key("etag"));
    }
    // every entry was stored with its lifetime (`SET … PX`)
    let entries = redis.cli(&["--scan", "--pattern", "*cache:gql:*"]);
    assert_eq!(entries.lines().count(), 2, "{entries}");
    for key in entries.lines() {
        let ttl: i64 = redis.cli(&["PTTL", key]).parse().expect("PTTL");
        assert!(ttl > 0, "{key} has no lifetime ({ttl})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_an_older_layout_is_a_miss_and_is_replaced() {
    // during a rolling deploy, Redis may hold entries written by the
    // previous version (a hash per entry): they are misses, never errors
    let (redis, a, vars) = title_on_own_redis("Old layout").await;
    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "MISS");
    // the store leaves after the response (deferred): give it a moment
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut key = String::new();
    while key.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        key = redis.cli(&["--scan", "--pattern", "*cache:gql:*"]);
    }
    assert_eq!(key.lines().count(), 1, "{key}");
    redis.cli(&["DEL", &key]);
    redis.cli(&[
        "HSET",
        &key,
        "b",
        "{}",
        "e",
        "\"x\"",
        "f",
        "99999999999999",
        "p",
        "0",
        "g",
        "0",
        "t",
        "",
    ]);
    let b = a.second_instance().await;
    let res = b.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(x_cache(&res), "MISS", "not BYPASS: the lookup did not fail");
    assert_eq!(res.ok()["title"]["name"], "Old layout");
    // the store leaves after the response (deferred): give it a moment
    let deadline = Instant::now() + Duration::from_secs(3);
    while redis.cli(&["TYPE", &key]) != "string" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        redis.cli(&["TYPE", &key]),
        "string",
        "replaced by the new layout"
    );
    let res = b.gql(TITLE_Q, vars).await;
    assert_eq!(x_cache(&res), "HIT");
    assert_eq!(res.ok()["title"]["name"], "Old layout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_no_errors_and_the_cache_comes_back() {
    let (redis, t, vars) = title_on_own_redis("Paused").await;
    t.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(x_cache(&t.gql(TITLE_Q, vars.clone()).await), "HIT");

    t.until_leased().await;
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "1500", "ALL"]), "OK");
    // the lease runs out without Redis: from then on no near copy is served
    tokio::time::sleep(t.app.services.config.cache_lease).await;
    assert!(
        !t.app.services.cache.lease_held(),
        "the lease must run out while Redis does not answer"
    );
    let started = Instant::now();
    for _ in 0..10 {
        let res = t.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.ok()["title"]["name"], "Paused");
        assert_eq!(x_cache(&res), "BYPASS");
    }
    // at most a few 50 ms timeouts before the breaker opens; then no waiting at all
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );

    // back by itself once Redis answers
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if x_cache(&t.gql(TITLE_Q, vars.clone()).await) == "HIT" {
            break;
        }
        assert!(Instant::now() < deadline, "the cache did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_while_redis_was_paused_is_never_served_stale() {
    let redis = OwnRedis::start();
    let a = app_on_redis(&redis).await;
    let b = a.second_instance().await;
    let mut c = a.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "pauser", "Paused write", 5).await;
    a.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(x_cache(&b.gql(TITLE_Q, vars.clone()).await), "HIT");
    // B serves its near copy without asking Redis
    a.until_leased().await;
    b.until_leased().await;
    let before = leased_hits(&b);
    assert_eq!(x_cache(&b.gql(TITLE_Q, vars.clone()).await), "HIT");
    assert_eq!(leased_hits(&b), before + 1, "a leased near hit");

    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "1000", "ALL"]), "OK");
    c.batch_execute(&format!(
        "UPDATE reviews SET body = 'written during the pause' WHERE id = {r}"
    ))
    .await
    .expect("update");
    let started = Instant::now();
    a.app
        .services
        .cache
        .invalidate(&tags::review_edited(r, ti, false))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "invalidation must not hang on a paused Redis"
    );
    assert!(
        started.elapsed() >= a.app.services.config.cache_lease,
        "a write whose invalidation failed waits until no lease Redis could have renewed runs"
    );
    // Redis is still paused: B's lease has run out, so B reads Postgres
    let res = b.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(
        *first_body(&res),
        "written during the pause",
        "B served its near copy after the write answered"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;

    for (name, app) in [("A", &a), ("B", &b)] {
        let res = app.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(
            *first_body(&res),
            "written during the pause",
            "instance {name} served a stale entry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_that_loses_every_key_never_revives_a_near_copy() {
    let (mut redis, a, _) = title_on_own_redis("unused").await;
    a.until_leased().await;
    let prefix = a.app.services.config.redis_key_prefix.clone();
    let counter = |redis: &OwnRedis, name: &str| -> u64 {
        let v = redis.cli(&["GET", &format!("{prefix}cache:{name}")]);
        v.parse()
            .unwrap_or_else(|_| panic!("cache:{name} is {v:?}"))
    };
    // a whole-cache invalidation (a change-feed gap) and writes before the
    // restart move both counters past where an empty Redis starts counting
    a.app.services.cache.invalidate_all().await;
    let old_epoch = counter(&redis, "epoch");
    for i in 0..5 {
        a.app
            .services
            .cache
            .invalidate(&[format!("Title:unrelated{i}")])
            .await;
    }
    let mut c = a.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "restarter", "Restarted", 6).await;
    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "MISS");
    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "HIT");
    let before = leased_hits(&a);
    assert_eq!(x_cache(&a.gql(TITLE_Q, vars.clone()).await), "HIT");
    assert_eq!(
        leased_hits(&a),
        before + 1,
        "a leased near hit before the restart"
    );

    // no persistence: counters, entries and lease members are all gone
    redis.restart();
    // it joins the new server's (empty) member set again
    let members = format!("{}cache:members", a.app.services.config.redis_key_prefix);
    let id = a.app.services.cache.lease_id().expect("Redis backend");
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["ZSCORE", &members, id]) != "0" {
        assert!(Instant::now() < deadline, "no lease after the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.until_leased().await;
    edit_body(&a, &mut c, r, ti, "after the restart").await;
    for round in 0..4 {
        let res = a.gql(TITLE_Q, vars.clone()).await;
        assert_eq!(
            *first_body(&res),
            "after the restart",
            "read {round} after the write served a copy from before the restart ({})",
            x_cache(&res)
        );
    }
    assert!(
        leased_hits(&a) > before + 1,
        "leased near hits resumed after the restart"
    );
    // an entry stored late by a request that read the counters before the
    // restart carries the old epoch: it must not match the new one
    assert!(
        counter(&redis, "epoch") > old_epoch,
        "the epoch after the restart ({}) can equal one from before ({old_epoch})",
        counter(&redis, "epoch")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_serves_stale_entries_and_fails_fast_otherwise() {
    let proxy = PgProxy::start().await;
    let db = TestDb::new().await;
    let config = Config {
        database_url: proxy.url(&db),
        cache_default_ttl: Duration::from_secs(1),
        db_timeout: Duration::from_millis(1000),
        ..test_config()
    };
    let direct = db.url.clone();
    let t = TestApp::on(db, config).await;
    let mut c =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&direct)
            .await
            .expect("direct");
    let ti = fx::title(&mut c, "Survivor").await;
    let vars = json!({ "id": gid("Title", ti) });
    assert_eq!(x_cache(&t.gql(TITLE_Q, vars.clone()).await), "MISS");
    tokio::time::sleep(Duration::from_millis(1200)).await; // past freshness, inside the stale window

    proxy.cut();
    let res = t.gql(TITLE_Q, vars.clone()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.ok()["title"]["name"], "Survivor");
    assert_eq!(
        res.body["extensions"]["warnings"][0]["code"],
        "STALE_RESULT"
    );
    assert_eq!(x_cache(&res), "HIT");

    let started = Instant::now();
    let res = t.gql("{ feed { totalCount } }", json!({})).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(res.code(), Some("SERVICE_UNAVAILABLE"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let res = t.gql("{ feed { totalCount } }", json!({})).await;
        if res.status == 200 {
            assert_eq!(res.ok()["feed"]["totalCount"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {}", res.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_execute_once_per_key_across_instances() {
    let a = TestApp::new().await;
    let b = a.second_instance().await;
    let mut c = a.conn().await;
    let u = fx::user(&mut c, "stampede").await;
    let mut titles = vec![];
    for i in 0..3 {
        let ti = fx::title(&mut c, &format!("Herd {i}")).await;
        fx::review(&mut c, u, ti, 8).await;
        titles.push(ti);
    }
    // what one execution of this shape costs
    let before = a.statements();
    a.gql(TITLE_Q, json!({ "id": gid("Title", titles[0]) }))
        .await;
    let one = a.statements() - before;
    assert!(one > 0);

    let vars = json!({ "id": gid("Title", titles[1]) });
    let (sa, sb) = (a.statements(), b.statements());
    let reqs = (0..20).map(|i| {
        let (app, v) = (if i % 2 == 0 { &a } else { &b }, vars.clone());
        async move { app.gql(TITLE_Q, v).await }
    });
    let results = futures::future::join_all(reqs).await;
    assert!(results.iter().all(|r| r.ok()["title"]["name"] == "Herd 1"));
    let total = (a.statements() - sa) + (b.statements() - sb);
    assert_eq!(
        total,
        one,
        "20 concurrent misses over two instances executed {} times",
        total as f64 / one as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries_over_post_and_get() {
    let t = TestApp::new().await;
    let query = "{ feed { totalCount } }";
    let hash = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(query.as_bytes()))
    };
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = |body: serde_json::Value| {
        Request::post("/graphql")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("req")
    };
    let res = t.send(post(json!({ "extensions": ext }))).await;
    assert_eq!(res.body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(res.code(), Some("PERSISTED_QUERY_NOT_FOUND"));
    let res = t
        .send(post(json!({ "query": query, "extensions": ext })))
        .await;
    assert_eq!(res.ok()["feed"]["totalCount"], 0);
    // GET with the hash only: CDN-cacheable URLs
    let url = format!("/graphql?extensions={}", urlencode(&ext.to_string()));
    let res = t
        .send(Request::get(&url).body(Body::empty()).expect("req"))
        .await;
    assert_eq!(res.ok()["feed"]["totalCount"], 0);
    assert_eq!(x_cache(&res), "HIT");
    assert!(
        res.headers["cache-control"]
            .to_str()
            .expect("cc")
            .starts_with("public, max-age=")
    );
    // a hash that does not match the query
    let bad = json!({ "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } });
    let res = t
        .send(post(json!({ "query": query, "extensions": bad })))
        .await;
    assert_eq!(res.status, 400);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_cache_has_the_same_semantics() {
    let t = TestApp::with_config(Config {
        redis_url: "memory".into(),
        ..test_config()
    })
    .await;
    assert!(t.app.services.cache.is_memory());
    let mut c = t.conn().await;
    let (r, ti, vars) = reviewed_title(&mut c, "memo", "Memory", 4).await;
    assert_eq!(x_cache(&t.gql(TITLE_Q, vars.clone()).await), "MISS");
    assert_eq!(x_cache(&t.gql(TITLE_Q, vars.clone()).await), "HIT");
    edit_body(&t, &mut c, r, ti, "mem edit").await;
    let res = t.gql(TITLE_Q, vars).await;
    assert_eq!(x_cache(&res), "MISS");
    assert_eq!(*first_body(&res), "mem edit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_cache_and_sql_counters() {
    let t = TestApp::new().await;
    t.gql("{ feed { totalCount } }", json!({})).await;
    t.gql("{ feed { totalCount } }", json!({})).await;
    let res = t
        .send(Request::get("/metrics").body(Body::empty()).expect("req"))
        .await;
    let text = res.body.as_str().expect("text").to_owned();
    for needle in [
        "nexora_cache_hits_total 1",
        "nexora_cache_misses_total 1",
        "nexora_redis_circuit_state 0",
        "nexora_graphql_request_duration_seconds_count{operation=\"query\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(text.contains("nexora_sql_statements_total "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_lock_is_released_only_by_its_holder() {
    use nexora::cache::Lookup;
    for config in [
        test_config(),
        Config {
            redis_url: "memory".into(),
            ..test_config()
        },
    ] {
        let t = TestApp::with_config(config).await;
        let cache = &t.app.services.cache;
        let Lookup::Miss(held, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss")
        };
        assert!(held.locked, "the first miss takes the fill lock");
        let Lookup::Miss(other, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss")
        };
        assert!(!other.locked, "a second miss waits for the holder");
        // a request that does not hold the lock cannot release it
        cache
            .release(
                "lock-test",
                &Snapshot {
                    locked: true,
                    ..other
                },
            )
            .await;
        let Lookup::Miss(still, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss")
        };
        assert!(!still.locked, "released by someone who did not hold it");
        cache.release("lock-test", &held).await;
        let Lookup::Miss(again, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss")
        };
        assert!(again.locked, "free again once the holder released it");
        // a write (elsewhere) while the holder computes: the others still
        // wait for it (no stampede under writes)
        cache.invalidate(&["Title:elsewhere".to_owned()]).await;
        let Lookup::Miss(during, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss")
        };
        assert!(!during.locked, "a holder still computing is waited for");
        // the holder stores, then a write makes its entry outdated: the
        // next miss must not wait for a holder that is done
        let body = bytes::Bytes::from_static(b"{}");
        let tags = ["Title:lock-test".to_owned()];
        let ttl = Duration::from_secs(60);
        assert!(
            cache
                .store("lock-test", &again, body, ttl, &tags)
                .await
                .is_some()
        );
        cache.invalidate(&tags).await;
        let Lookup::Miss(next, None) = cache.lookup("lock-test", true).await else {
            panic!("a miss: the entry is outdated")
        };
        assert!(next.locked, "the lock of a holder that has stored is free");
    }
}

/// Read events Redis has processed so far (this INFO's own included).
fn reads_processed(redis: &OwnRedis) -> u64 {
    info_number(redis, "stats", "total_reads_processed:")
        .expect("total_reads_processed in INFO stats")
}

/// The number after `prefix` (up to a comma or the end of its line) in
/// Redis's `INFO <section>`, if that line is there.
fn info_number(redis: &OwnRedis, section: &str, prefix: &str) -> Option<u64> {
    redis
        .cli(&["INFO", section])
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.split(',').next()?.trim().parse().ok())
}

/// A backend on the test's own redis-server; store failures go to `on_error`.
async fn backend_on(
    redis: &OwnRedis,
    on_error: nexora::cache::redis::OnStoreError,
) -> std::sync::Arc<nexora::cache::redis::RedisBackend> {
    let wait = Duration::from_secs(2);
    let backend = nexora::cache::redis::RedisBackend::connect(&redis.url(), wait, wait, on_error)
        .await
        .expect("connect to the test's redis-server");
    std::sync::Arc::new(backend)
}

#[tokio::test(flavor = "current_thread")]
async fn deferred_stores_travel_with_the_next_lookup_and_report_their_failures() {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use nexora::cache::{Entry, Found, StoreArgs, etag_of, now_ms};

    // a miss does not wait for its store: the SET goes out with this
    // instance's next Redis command, before it and in the same packet (one
    // wake-up of Redis instead of two), and a flush task sends it otherwise
    let redis = OwnRedis::start();
    let failures = Arc::new(AtomicU64::new(0));
    let on_error = {
        let failures = failures.clone();
        Box::new(move |_: &fred::error::Error| {
            failures.fetch_add(1, Ordering::Relaxed);
        })
    };
    let backend = backend_on(&redis, on_error).await;
    let prefix = "t:";
    let Ok(Found::Miss(snap)) = backend
        .lookup("k", now_ms(), "a".into(), 3_000, prefix, false)
        .await
    else {
        panic!("an empty Redis must answer a miss")
    };
    assert!(snap.locked);
    let body = bytes::Bytes::from_static(br#"{"data":{"title":{"name":"Packed"}}}"#);
    let entry = Entry {
        etag: etag_of(&body),
        body: body.clone(),
        fresh_until_ms: now_ms() + 60_000,
    };
    let tags = vec!["title:1".to_owned()];
    let store = |hash: &str, entry: &Entry| {
        let args = StoreArgs {
            hash,
            snap: &snap,
            entry,
            tags: &tags,
            px: 120_000,
        };
        backend.store(prefix, &args);
    };
    // what two INFOs in a row count (redis-cli's own reads: its command and
    // its connection closing)
    let idle = reads_processed(&redis).abs_diff(reads_processed(&redis));
    let before = reads_processed(&redis);
    // this runtime has one thread and nothing below yields before the
    // lookup is sent: the flush task cannot run in between
    store("k", &entry);
    let found = backend
        .lookup("k", now_ms(), "b".into(), 3_000, prefix, false)
        .await;
    let after = reads_processed(&redis);
    let Ok(Found::Fresh(hit, _)) = found else {
        panic!("the lookup right after a store must find it: {found:?}")
    };
    assert_eq!(hit.body, body);
    assert_eq!(hit.etag, entry.etag);
    // one read for the SET and the lookup together
    assert_eq!(
        after - before,
        idle + 1,
        "the SET and the lookup were read apart"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);

    // with no lookup to travel with, the flush task sends it on its own
    let entry2 = Entry {
        etag: etag_of(b"{}"),
        body: bytes::Bytes::from_static(b"{}"),
        fresh_until_ms: now_ms() + 60_000,
    };
    store("k2", &entry2);
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis.cli(&["EXISTS", "t:cache:gql:k2"]) != "1" {
        assert!(
            Instant::now() < deadline,
            "the flush task never sent the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);

    // nobody awaits a store, so its failure must still reach the breaker
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
    store("k3", &entry2);
    let deadline = Instant::now() + Duration::from_secs(2);
    while failures.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "a SET refused by Redis (OOM) was never reported"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(redis.cli(&["EXISTS", "t:cache:gql:k3"]), "0");
}

/// Calls of `command` Redis has run so far (`INFO commandstats`).
fn command_calls(redis: &OwnRedis, command: &str) -> u64 {
    // no line until the command has run once
    info_number(redis, "commandstats", &format!("cmdstat_{command}:calls=")).unwrap_or(0)
}

/// A lookup's outcome, comparable across the two ways of looking up.
fn outcome(found: &nexora::cache::Found) -> String {
    use nexora::cache::Found;
    let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
    match found {
        Found::Fresh(e, counters) => {
            format!(
                "fresh {} {} at generation {} epoch {}",
                text(&e.body),
                e.etag,
                counters.generation,
                counters.epoch
            )
        }
        Found::Stale(e, s) => format!("stale {} locked {}", text(&e.body), s.locked),
        Found::Miss(s) => format!(
            "miss locked {} generation {} epoch {}",
            s.locked, s.generation, s.epoch
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_without_the_script_agree_with_it_and_pure_misses_skip_it() {
    use nexora::cache::{Entry, Found, StoreArgs, etag_of, now_ms};

    let redis = OwnRedis::start();
    let backend = backend_on(&redis, Box::new(|_| {})).await;
    let p = "t:";
    let lookup = |hash: &'static str, lock_px: u64, script: bool| {
        let backend = backend.clone();
        async move {
            backend
                .lookup(hash, now_ms(), format!("token-{hash}"), lock_px, p, script)
                .await
                .expect("lookup")
        }
    };
    // the same key looked up both ways (without taking a lock, which would
    // change what the second one finds) must give the same answer
    let agree = |hash: &'static str, expected: &'static str| {
        let lookup = &lookup;
        async move {
            let quick = outcome(&lookup(hash, 0, false).await);
            let script = outcome(&lookup(hash, 0, true).await);
            assert_eq!(
                quick, script,
                "{hash}: plain commands and the script disagree"
            );
            assert!(
                quick.starts_with(expected),
                "{hash}: {quick}, expected {expected}"
            );
        }
    };
    let store = |hash: &'static str, snap: &nexora::cache::Snapshot, fresh_ms: i64| {
        let body = bytes::Bytes::from(format!(r#"{{"data":"{hash}"}}"#));
        let entry = Entry {
            etag: etag_of(&body),
            body,
            fresh_until_ms: now_ms().saturating_add_signed(fresh_ms),
        };
        let tags = ["Title:1".to_owned()];
        backend.store(
            p,
            &StoreArgs {
                hash,
                snap,
                entry: &entry,
                tags: &tags,
                px: 120_000,
            },
        );
    };

    // a pure miss: two plain commands, no script, and the lock is a
    // placeholder in the entry's place (no lock key to create and expire)
    let scripts = command_calls(&redis, "evalsha");
    let Found::Miss(snap) = lookup("k", 3_000, false).await else {
        panic!("an empty Redis must answer a miss")
    };
    assert!(snap.locked, "the first miss holds the fill lock");
    assert_eq!(
        command_calls(&redis, "evalsha"),
        scripts,
        "a pure miss ran a script"
    );
    assert_eq!(redis.cli(&["GET", "t:cache:gql:k"]), "L token-k");
    assert_eq!(redis.cli(&["EXISTS", "t:cache:lock:k"]), "0");
    agree("k", "miss locked false").await;

    // its store replaces the placeholder; a hit at the generation it was
    // stored at needs no script either
    store("k", &snap, 60_000);
    let scripts = command_calls(&redis, "evalsha");
    let hit = outcome(&lookup("k", 3_000, false).await);
    assert!(hit.starts_with(r#"fresh {"data":"k"}"#), "{hit}");
    assert_eq!(
        command_calls(&redis, "evalsha"),
        scripts,
        "a current hit ran a script"
    );
    agree("k", r#"fresh {"data":"k"}"#).await;

    // once the generation moved, the tags decide (the script reads them)
    let tag_ttl = 600_000;
    backend
        .invalidate(p, &["Title:2".to_owned()], tag_ttl, "-")
        .await
        .expect("invalidate");
    agree("k", r#"fresh {"data":"k"}"#).await;
    backend
        .invalidate(p, &["Title:1".to_owned()], tag_ttl, "-")
        .await
        .expect("invalidate");
    agree("k", "miss").await;

    // past freshness: kept as a fallback, never a hit
    let Found::Miss(snap) = lookup("s", 3_000, false).await else {
        panic!("a miss")
    };
    store("s", &snap, -1);
    agree("s", r#"stale {"data":"s"}"#).await;

    // a whole-cache invalidation
    let Found::Miss(snap) = lookup("e", 3_000, false).await else {
        panic!("a miss")
    };
    store("e", &snap, 60_000);
    agree("e", r#"fresh {"data":"e"}"#).await;
    backend.bump_epoch(p, "-").await.expect("epoch");
    agree("e", "miss").await;

    // an entry of an older layout (a hash) is a miss, and the lock is the
    // lock key (the entry's key is taken)
    redis.cli(&["HSET", "t:cache:gql:o", "b", "{}"]);
    agree("o", "miss").await;
    let Found::Miss(snap) = lookup("o", 3_000, false).await else {
        panic!("a miss")
    };
    assert!(snap.locked);
    assert_eq!(redis.cli(&["GET", "t:cache:lock:o"]), "token-o");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sightings_skip_redis_only_while_it_would_not_pay_off() {
    use nexora::cache::sighting::{PROBE_EVERY, WINDOW};
    let redis = OwnRedis::start();
    let a = app_on_redis(&redis).await;
    let metric = |m: &std::sync::atomic::AtomicU64| m.load(Ordering::Relaxed);
    let metrics = &a.app.services.cache.metrics;
    // titles that do not exist: each id is a key of its own
    let mut next = 1_000_000;
    let mut fresh_keys = |n: u64| -> Vec<Value> {
        (0..n)
            .map(|_| {
                next += 1;
                json!({ "id": gid("Title", next) })
            })
            .collect()
    };
    let x_caches = async |t: &TestApp, keys: &[Value]| -> String {
        let mut out = String::new();
        for v in keys {
            let res = t.gql(TITLE_Q, v.clone()).await;
            assert_eq!(res.ok()["title"], Value::Null);
            out.push(if x_cache(&res) == "HIT" { 'h' } else { 'm' });
        }
        out
    };

    // a new instance looks up and stores every first sighting (another
    // instance may have stored it; it may be asked for again) until a
    // window of first sightings shows neither pays off
    let once = fresh_keys(WINDOW);
    assert_eq!(x_caches(&a, &once).await, "m".repeat(once.len()));
    assert_eq!(metric(&metrics.cache_lookups_skipped), 0);

    // from then on one first sighting in PROBE_EVERY is looked up (and
    // stored); the others are executed at once and not stored
    let lookups = command_calls(&redis, "mget");
    let stores = metric(&metrics.cache_stores);
    let keys = fresh_keys(4 * PROBE_EVERY);
    assert_eq!(x_caches(&a, &keys).await, "m".repeat(keys.len()));
    let skipped = 4 * (PROBE_EVERY - 1);
    assert_eq!(metric(&metrics.cache_lookups_skipped), skipped);
    assert_eq!(metric(&metrics.cache_stores_skipped), skipped);
    assert_eq!(command_calls(&redis, "mget") - lookups, 4, "probes only");
    assert_eq!(metric(&metrics.cache_stores) - stores, 4);
    // a second sighting is looked up: the probes' results hit, the others
    // are stored now; the third request hits
    let second = x_caches(&a, &keys).await;
    assert_eq!(second.matches('h').count(), 4, "{second}");
    assert_eq!(x_caches(&a, &keys).await, "h".repeat(keys.len()));

    // another instance stores results before this one first asks for them
    // (it stores every result): the probes find them, and first sightings
    // are looked up again
    let b = TestApp::on(
        a.db.shared(),
        Config {
            cache_adaptive_first_sightings: false,
            ..a.app.services.config.as_ref().clone()
        },
    )
    .await;
    let shared = fresh_keys(WINDOW * PROBE_EVERY + 20);
    assert_eq!(x_caches(&b, &shared).await, "m".repeat(shared.len()));
    let outcomes = x_caches(&a, &shared).await;
    assert!(
        outcomes.ends_with(&"h".repeat(20)),
        "first sightings of entries B stored are looked up again: {outcomes}"
    );
}
