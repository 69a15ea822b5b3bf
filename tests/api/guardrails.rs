//! Limits a public GraphQL API needs: depth and complexity (checked before
//! any SQL runs), introspection switch, mutations only over POST, and the
//! per-user write rate limit.

use axum::{body::Body, http::Request};
use nexora::config::Config;
use serde_json::json;

use crate::support::{TestApp, fx, gid, test_config};

/// `feed { edges { node { title { reviews { edges { node { title … } } } } } } }`,
/// `depth` selections deep.
fn deep_query(depth: usize) -> String {
    // one item per list, so only the depth is large
    let cycle = ["edges", "node", "title", "reviews(first: 1)"];
    let names: Vec<&str> = std::iter::once("feed(first: 1)")
        .chain(cycle.iter().copied().cycle())
        .take(depth)
        .collect();
    let leaf = match names.last() {
        Some(&"edges") => "cursor",
        Some(&"feed(first: 1)" | &"reviews(first: 1)") => "totalCount",
        _ => "id",
    };
    let mut q = leaf.to_owned();
    for name in names.iter().rev() {
        q = format!("{name} {{ {q} }}");
    }
    format!("{{ {q} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_and_wide_queries_are_rejected_before_any_sql() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let title = fx::title(&mut c, "Deep").await;
    fx::review(&mut c, ana, title, 7).await;
    let token = t.token(ana);

    // the configured depth passes…
    let res = t.gql(&deep_query(14), json!({})).await;
    res.ok();

    let wide_feed: String = (0..2000)
        .map(|i| format!("a{i}: feed {{ totalCount }} "))
        .collect();
    let wide_viewer: String = (0..2000)
        .map(|i| format!("a{i}: viewer {{ id }} "))
        .collect();
    let wide_likes: String = (0..2000)
        .map(|i| format!("a{i}: likeReview(id: \"{}\") {{ id }} ", gid("Review", 1)))
        .collect();
    let cases = [
        (deep_query(60), "deep"),
        (deep_query(16), "deep"),
        (format!("{{ {wide_feed} }}"), "complex"),
        (format!("{{ {wide_viewer} }}"), "complex"),
        (format!("mutation {{ {wide_likes} }}"), "complex"),
    ];
    for (query, why) in cases {
        let before = t.statements();
        let res = t.gql_as(Some(&token), &query, json!({})).await;
        assert_eq!(res.status, 200);
        assert_eq!(
            res.code(),
            Some("GRAPHQL_VALIDATION_FAILED"),
            "{}",
            res.body
        );
        let message = res.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(message.contains(why), "{message}");
        assert!(res.data().is_null(), "{}", res.body);
        assert_eq!(t.statements(), before, "SQL ran for a rejected query");
    }
    // nothing was liked
    let res = t
        .gql("{ feed { edges { node { likeCount } } } }", json!({}))
        .await;
    assert_eq!(res.ok()["feed"]["edges"][0]["node"]["likeCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pages_with_nested_fields_fit_the_limits() {
    let t = TestApp::new().await;
    let args = nexora::cli::SeedArgs {
        titles: 20,
        users: 30,
        reviews: 150,
        likes: 100,
        comments: 100,
        seed: 3,
    };
    nexora::seed::run(&t.db.url, &args, std::time::Duration::from_secs(5))
        .await
        .expect("seed");
    let token = t.token(1);
    let feed = "query($after: String) {
      feed(first: 100, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { cursor node {
          id rating body containsSpoilers likeCount commentCount viewerHasLiked createdAt updatedAt
          title { id name kind genres averageRating reviewCount }
          author { id username displayName viewerIsFollowing }
          comments(first: 3) { totalCount edges { node { id body author { username } } } }
        } }
      }
    }";
    let res = t.gql_as(Some(&token), feed, json!({})).await;
    let edges = res.ok()["feed"]["edges"].as_array().map(Vec::len);
    assert_eq!(edges, Some(100));

    let titles = "{ titles(first: 100, orderBy: TOP_RATED) { edges { node {
        id name averageRating reviewCount
        reviews(first: 5, orderBy: MOST_LIKED) { edges { node { id rating likeCount author { username } } } }
    } } } }";
    t.gql_as(Some(&token), titles, json!({})).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_can_be_switched_off() {
    let q = "{ __schema { queryType { name } } }";
    let on = TestApp::new().await;
    let res = on.gql(q, json!({})).await;
    assert_eq!(res.ok()["__schema"]["queryType"]["name"], "Query");

    let off = TestApp::with_config(Config {
        introspection: false,
        ..test_config()
    })
    .await;
    for q in [
        q,
        "{ __type(name: \"Review\") { fields { name } } }",
        "query { ...F } fragment F on Query { __schema { types { name } } }",
    ] {
        let res = off.gql(q, json!({})).await;
        assert!(res.body.get("errors").is_some(), "{}", res.body);
        assert!(res.code().is_some(), "{}", res.body);
        assert!(
            res.data().get("__schema").is_none_or(|v| v.is_null())
                && res.data().get("__type").is_none_or(|v| v.is_null()),
            "{}",
            res.body
        );
    }
    // clients still get __typename (normalized caches need it)
    let res = off.gql("{ __typename }", json!({})).await;
    assert_eq!(res.ok()["__typename"], "Query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_over_get_are_refused_and_not_run() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let ben = fx::user(&mut c, "ben").await;
    let query = format!(
        "mutation {{ followUser(id: \"{}\") {{ id }} }}",
        gid("User", ben)
    );
    let uri = format!("/graphql?query={}", url_encode(&query));
    let res = t
        .send(
            Request::get(uri)
                .header("authorization", format!("Bearer {}", t.token(ana)))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.headers["allow"], "POST");
    let res = t
        .gql("{ user(username: \"ben\") { followerCount } }", json!({}))
        .await;
    assert_eq!(res.ok()["user"]["followerCount"], 0);
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_rate_limited_per_user() {
    let t = TestApp::with_config(Config {
        rate_limit_writes_per_minute: 3,
        ..test_config()
    })
    .await;
    let mut c = t.conn().await;
    let author = fx::user(&mut c, "author").await;
    let ana = t.token(fx::user(&mut c, "ana").await);
    let ben = t.token(fx::user(&mut c, "ben").await);
    let mut reviews = vec![];
    for i in 0..5 {
        let title = fx::title(&mut c, &format!("T{i}")).await;
        reviews.push(gid("Review", fx::review(&mut c, author, title, 5).await));
    }
    let like = "mutation($id: ID!) { likeReview(id: $id) { likeCount } }";

    // rejected input does not use up the allowance
    for _ in 0..3 {
        let res = t
            .gql_as(Some(&ana), like, json!({ "id": "not an id" }))
            .await;
        assert_eq!(res.code(), Some("BAD_USER_INPUT"));
    }
    for id in &reviews[..3] {
        let res = t.gql_as(Some(&ana), like, json!({ "id": id })).await;
        assert_eq!(res.ok()["likeReview"]["likeCount"], 1);
    }
    let res = t
        .gql_as(Some(&ana), like, json!({ "id": reviews[3] }))
        .await;
    assert_eq!(res.code(), Some("RATE_LIMITED"), "{}", res.body);
    assert_eq!(res.status, 429);
    let retry: u64 = res
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry), "{retry}");

    // the refused write did not happen; reads and other users are unaffected
    let res = t
        .gql_as(
            Some(&ana),
            "query($id: ID!) { review(id: $id) { likeCount } viewer { username } }",
            json!({ "id": reviews[3] }),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.ok(),
        &json!({ "review": { "likeCount": 0 }, "viewer": { "username": "ana" } })
    );
    let res = t
        .gql_as(Some(&ben), like, json!({ "id": reviews[3] }))
        .await;
    assert_eq!(res.ok()["likeReview"]["likeCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_and_forged_cursors_are_bad_input() {
    // Postgres text cannot hold U+0000: refused up front, never an internal error
    let t = TestApp::new().await;
    let cursor = |value: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::json!(value).to_string())
    };
    let cases = [
        (
            "query($v: String!) { user(username: $v) { id } }",
            json!("a\u{0}b"),
            "username",
        ),
        (
            "query($v: String) { titles(search: $v) { totalCount } }",
            json!("a\u{0}b"),
            "search",
        ),
        (
            "query($v: String) { titles(genre: $v) { totalCount } }",
            json!("a\u{0}b"),
            "genre",
        ),
        (
            "query($v: String) { titles(after: $v) { totalCount } }",
            json!(cursor(json!(["TN", "a\u{0}b", 1]))),
            "after",
        ),
    ];
    for (q, v, field) in cases {
        let res = t.gql(q, json!({ "v": v })).await;
        assert_eq!(
            (res.code(), res.field()),
            (Some("BAD_USER_INPUT"), Some(field)),
            "{}",
            res.body
        );
    }
    for extreme in [i64::MIN, i64::MAX] {
        let after = cursor(json!(["FD", extreme, 1]));
        let res = t
            .gql(
                "query($v: String) { feed(after: $v) { edges { cursor } } }",
                json!({ "v": after }),
            )
            .await;
        // no error at all: an out-of-range position is simply past the ends
        res.ok();
    }
}
