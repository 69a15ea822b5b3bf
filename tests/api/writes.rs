//! Every mutation against real Postgres and Redis: accounts, authorization,
//! validation, idempotence, counters under concurrency, and read-your-writes.

use std::time::Duration;

use futures::future::join_all;
use nexora::config::Config;
use serde_json::{Value, json};

use crate::support::{Res, TestApp, fx, gid, test_config};

const SIGN_UP: &str = "mutation($input: SignUpInput!) {
  signUp(input: $input) { token user { id username displayName bio role reviewCount } }
}";
const LOG_IN: &str = "mutation($input: LogInInput!) {
  logIn(input: $input) { token user { id username } }
}";
const CREATE_TITLE: &str = "mutation($input: CreateTitleInput!) {
  createTitle(input: $input) { id kind name releaseYear synopsis genres reviewCount averageRating }
}";
const CREATE_REVIEW: &str = "mutation($input: CreateReviewInput!) {
  createReview(input: $input) {
    id rating body containsSpoilers likeCount
    title { id reviewCount averageRating }
    author { id reviewCount }
  }
}";
const UPDATE_REVIEW: &str = "mutation($id: ID!, $input: UpdateReviewInput!) {
  updateReview(id: $id, input: $input) {
    id rating body containsSpoilers createdAt updatedAt title { averageRating }
  }
}";
const DELETE_REVIEW: &str = "mutation($id: ID!) { deleteReview(id: $id) }";
const LIKE: &str = "mutation($id: ID!) { likeReview(id: $id) { id likeCount viewerHasLiked } }";
const UNLIKE: &str = "mutation($id: ID!) { unlikeReview(id: $id) { id likeCount viewerHasLiked } }";
const ADD_COMMENT: &str = "mutation($reviewId: ID!, $body: String!) {
  addComment(reviewId: $reviewId, body: $body) {
    id body author { id } review { id commentCount }
  }
}";
const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";
const FOLLOW: &str = "mutation($id: ID!) {
  followUser(id: $id) { id followerCount viewerIsFollowing }
}";
const UNFOLLOW: &str = "mutation($id: ID!) {
  unfollowUser(id: $id) { id followerCount viewerIsFollowing }
}";
const TITLE: &str = "query($id: ID!) {
  title(id: $id) {
    reviewCount averageRating
    reviews(first: 10) { totalCount edges { node { id rating } } }
  }
}";

/// A config whose pool waits long enough for a burst of concurrent writes
/// on a busy 2-core machine (the default 1.5 s is tuned for production).
fn patient_config() -> Config {
    Config {
        db_timeout: Duration::from_secs(20),
        ..test_config()
    }
}

fn assert_code(res: &Res, code: &str) {
    assert_eq!(res.code(), Some(code), "{}", res.body);
}

fn assert_bad_input(res: &Res, field: &str) {
    assert_eq!(
        (res.code(), res.field()),
        (Some("BAD_USER_INPUT"), Some(field)),
        "{}",
        res.body
    );
}

async fn sign_up(t: &TestApp, username: &str, password: &str) -> Res {
    t.gql(
        SIGN_UP,
        json!({ "input": { "username": username, "password": password } }),
    )
    .await
}

async fn review(t: &TestApp, token: &str, title: i64, rating: i32, body: &str) -> Res {
    t.gql_as(
        Some(token),
        CREATE_REVIEW,
        json!({ "input": { "titleId": gid("Title", title), "rating": rating, "body": body } }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_and_log_in_issue_working_tokens() {
    let t = TestApp::new().await;
    let res = sign_up(&t, "Ana_Lima", "correct horse battery").await;
    let payload = &res.ok()["signUp"];
    assert_eq!(
        payload["user"],
        json!({ "id": payload["user"]["id"], "username": "ana_lima", "displayName": "ana_lima",
                "bio": null, "role": "MEMBER", "reviewCount": 0 })
    );
    // the token signs the viewer in
    let token = payload["token"].as_str().expect("token");
    let res = t
        .gql_as(Some(token), "{ viewer { username } }", json!({}))
        .await;
    assert_eq!(res.ok()["viewer"]["username"], "ana_lima");

    // usernames compare case-insensitively, for sign-in and for uniqueness
    let res = t
        .gql(
            LOG_IN,
            json!({ "input": { "username": "ANA_lima", "password": "correct horse battery" } }),
        )
        .await;
    let token = res.ok()["logIn"]["token"].as_str().expect("token");
    assert_eq!(res.ok()["logIn"]["user"]["id"], payload["user"]["id"]);
    let res = t
        .gql_as(Some(token), "{ viewer { username } }", json!({}))
        .await;
    assert_eq!(res.ok()["viewer"]["username"], "ana_lima");
    assert_code(
        &sign_up(&t, "ANA_LIMA", "another password").await,
        "CONFLICT",
    );

    // a wrong password and an unknown user get the same answer
    let wrong = t
        .gql(
            LOG_IN,
            json!({ "input": { "username": "ana_lima", "password": "wrong horse battery" } }),
        )
        .await;
    let unknown = t
        .gql(
            LOG_IN,
            json!({ "input": { "username": "nobody_here", "password": "correct horse battery" } }),
        )
        .await;
    let absurd = t
        .gql(
            LOG_IN,
            json!({ "input": { "username": "x".repeat(5000), "password": "y".repeat(5000) } }),
        )
        .await;
    for res in [&wrong, &unknown, &absurd] {
        assert_code(res, "UNAUTHENTICATED");
        assert_eq!(res.data(), &Value::Null);
    }
    assert_eq!(
        wrong.body["errors"][0]["message"],
        unknown.body["errors"][0]["message"]
    );

    // the password is stored as an argon2id hash only
    let mut c = t.conn().await;
    let hash = nexora::db::users::credentials(&mut c, "ana_lima")
        .await
        .expect("query")
        .expect("user")
        .1;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_checks_every_field() {
    let t = TestApp::new().await;
    let ok_password = "long enough";
    let cases = [
        (
            json!({ "username": "ab", "password": ok_password }),
            "input.username",
        ),
        (
            json!({ "username": "a".repeat(31), "password": ok_password }),
            "input.username",
        ),
        (
            json!({ "username": "has-dash", "password": ok_password }),
            "input.username",
        ),
        (
            json!({ "username": "émile", "password": ok_password }),
            "input.username",
        ),
        (
            json!({ "username": "robert'); DROP TABLE users;--", "password": ok_password }),
            "input.username",
        ),
        (
            json!({ "username": "shortpw", "password": "1234567" }),
            "input.password",
        ),
        (
            json!({ "username": "longpw", "password": "p".repeat(129) }),
            "input.password",
        ),
        (
            json!({ "username": "named", "password": ok_password, "displayName": "" }),
            "input.displayName",
        ),
        (
            json!({ "username": "named", "password": ok_password, "displayName": "   " }),
            "input.displayName",
        ),
        (
            json!({ "username": "named", "password": ok_password, "displayName": "n".repeat(51) }),
            "input.displayName",
        ),
        (
            json!({ "username": "named", "password": ok_password, "bio": "b".repeat(501) }),
            "input.bio",
        ),
        (
            json!({ "username": "named", "password": ok_password, "bio": "nul\u{0}byte" }),
            "input.bio",
        ),
    ];
    for (input, field) in cases {
        let res = t.gql(SIGN_UP, json!({ "input": input })).await;
        assert_bad_input(&res, field);
    }
    // boundaries are inclusive, and text is kept as written
    let display = "Zoë 🎬 \"The\" Critic — مراجع";
    let res = t
        .gql(
            SIGN_UP,
            json!({ "input": { "username": "a".repeat(30), "password": "p".repeat(128),
                               "displayName": display, "bio": "b".repeat(500) } }),
        )
        .await;
    assert_eq!(res.ok()["signUp"]["user"]["displayName"], display);
    let res = sign_up(&t, "abc", "12345678").await;
    assert_eq!(res.ok()["signUp"]["user"]["username"], "abc");
    // nothing else was created
    let res = t
        .gql("{ user(username: \"named\") { id } }", json!({}))
        .await;
    assert_eq!(res.ok()["user"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_writes_are_unauthenticated() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let title = fx::title(&mut c, "Heat").await;
    let rev = fx::review(&mut c, ana, title, 8).await;
    let com = fx::comment(&mut c, ana, rev, "hi").await;
    let (r, u, ti, co) = (
        gid("Review", rev),
        gid("User", ana),
        gid("Title", title),
        gid("Comment", com),
    );
    let writes = [
        r#"mutation { createTitle(input: { kind: MOVIE, name: "X" }) { id } }"#.to_owned(),
        format!(
            r#"mutation {{ createReview(input: {{ titleId: "{ti}", rating: 5, body: "x" }}) {{ id }} }}"#
        ),
        format!(r#"mutation {{ updateReview(id: "{r}", input: {{ rating: 1 }}) {{ id }} }}"#),
        format!(r#"mutation {{ deleteReview(id: "{r}") }}"#),
        format!(r#"mutation {{ likeReview(id: "{r}") {{ id }} }}"#),
        format!(r#"mutation {{ unlikeReview(id: "{r}") {{ id }} }}"#),
        format!(r#"mutation {{ addComment(reviewId: "{r}", body: "x") {{ id }} }}"#),
        format!(r#"mutation {{ deleteComment(id: "{co}") }}"#),
        format!(r#"mutation {{ followUser(id: "{u}") {{ id }} }}"#),
        format!(r#"mutation {{ unfollowUser(id: "{u}") {{ id }} }}"#),
        "{ homeFeed { totalCount } }".to_owned(),
    ];
    for q in &writes {
        let res = t.gql(q, json!({})).await;
        assert_code(&res, "UNAUTHENTICATED");
    }
    // nothing changed
    let res = t.gql(TITLE, json!({ "id": ti })).await;
    assert_eq!(res.ok()["title"]["reviewCount"], 1);
    let res = t
        .gql(
            "query($id: ID!) { review(id: $id) { rating likeCount commentCount } }",
            json!({ "id": r }),
        )
        .await;
    assert_eq!(
        res.ok()["review"],
        json!({ "rating": 8, "likeCount": 0, "commentCount": 1 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_title_is_for_admins_and_canonicalizes_genres() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let member = t.token(fx::user(&mut c, "member").await);
    let admin = t.token(fx::admin(&mut c, "boss").await);
    let input = json!({ "kind": "ANIME", "name": "Cowboy Bebop: 天国の扉 — \"Knockin'\"",
                        "releaseYear": 2001, "synopsis": "Bounty hunters.\nIn space.",
                        "genres": [" Sci-Fi ", "ACTION", "sci-fi", "Neo Noir"] });
    let res = t
        .gql_as(Some(&member), CREATE_TITLE, json!({ "input": input }))
        .await;
    assert_code(&res, "FORBIDDEN");

    let res = t
        .gql_as(Some(&admin), CREATE_TITLE, json!({ "input": input }))
        .await;
    let created = &res.ok()["createTitle"];
    assert_eq!(created["name"], input["name"]);
    assert_eq!(created["synopsis"], input["synopsis"]);
    assert_eq!(created["kind"], "ANIME");
    assert_eq!(created["releaseYear"], 2001);
    assert_eq!(created["genres"], json!(["sci-fi", "action", "neo noir"]));
    assert_eq!(
        (&created["reviewCount"], &created["averageRating"]),
        (&json!(0), &Value::Null)
    );
    let res = t
        .gql(
            "{ titles(genre: \"Neo Noir\") { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(res.ok()["titles"]["edges"][0]["node"]["id"], created["id"]);

    // the role is read from the database, not from the token
    nexora::db::users::set_role(&mut c, "boss", "MEMBER")
        .await
        .expect("demote");
    let res = t
        .gql_as(Some(&admin), CREATE_TITLE, json!({ "input": input }))
        .await;
    assert_code(&res, "FORBIDDEN");
    nexora::db::users::set_role(&mut c, "boss", "ADMIN")
        .await
        .expect("promote");

    let base = json!({ "kind": "MOVIE", "name": "Fine" });
    let with = |k: &str, v: Value| {
        let mut i = base.clone();
        i[k] = v;
        i
    };
    let bad = [
        (with("name", json!("")), "input.name"),
        (with("name", json!(" \t ")), "input.name"),
        (with("name", json!("n".repeat(201))), "input.name"),
        (with("releaseYear", json!(1849)), "input.releaseYear"),
        (with("releaseYear", json!(2201)), "input.releaseYear"),
        (with("synopsis", json!("s".repeat(5001))), "input.synopsis"),
        (with("genres", json!(["ok", " "])), "input.genres"),
        (with("genres", json!(["g".repeat(41)])), "input.genres"),
        (
            with(
                "genres",
                json!((0..11).map(|i| format!("g{i}")).collect::<Vec<_>>()),
            ),
            "input.genres",
        ),
    ];
    for (input, field) in bad {
        let res = t
            .gql_as(Some(&admin), CREATE_TITLE, json!({ "input": input }))
            .await;
        assert_bad_input(&res, field);
    }
    // inclusive bounds
    let edge = json!({ "kind": "SERIES", "name": "n".repeat(200), "releaseYear": 1850,
                       "synopsis": "s".repeat(5000),
                       "genres": (0..10).map(|i| format!("{i}{}", "g".repeat(39))).collect::<Vec<_>>() });
    let res = t
        .gql_as(Some(&admin), CREATE_TITLE, json!({ "input": edge }))
        .await;
    assert_eq!(
        res.ok()["createTitle"]["genres"].as_array().map(Vec::len),
        Some(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_keep_text_verbatim_and_validate_input() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let token = t.token(ana);
    let bodies = [
        "Plain.",
        "Ünïcödé, 日本語, emoji 🎬🍿👍🏽 and a ZWJ family 👨‍👩‍👧",
        "עברית וערבית: مراجعة رائعة",
        r#"Quotes: "double", 'single', `back`, \backslash\ and \n literally"#,
        "'); DROP TABLE reviews; -- and $1 and %s and {{x}}",
        "<script>alert('x')</script> &amp;",
        "  leading and trailing spaces, tabs\t and\nnew\r\nlines  ",
        &"é".repeat(10_000),
    ];
    let mut ids = vec![];
    for (i, body) in bodies.iter().enumerate() {
        let title = fx::title(&mut c, &format!("T{i}")).await;
        let res = review(&t, &token, title, 7, body).await;
        let created = &res.ok()["createReview"];
        assert_eq!(created["body"], *body);
        ids.push(created["id"].clone());
    }
    // read back through the query API
    for (id, body) in ids.iter().zip(bodies) {
        let res = t
            .gql(
                "query($id: ID!) { review(id: $id) { body } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(res.ok()["review"]["body"], body);
    }

    let title = fx::title(&mut c, "Target").await;
    let tid = gid("Title", title);
    let bad = [
        (
            json!({ "titleId": tid, "rating": 0, "body": "x" }),
            "input.rating",
        ),
        (
            json!({ "titleId": tid, "rating": 11, "body": "x" }),
            "input.rating",
        ),
        (
            json!({ "titleId": tid, "rating": -3, "body": "x" }),
            "input.rating",
        ),
        (
            json!({ "titleId": tid, "rating": 5, "body": "" }),
            "input.body",
        ),
        (
            json!({ "titleId": tid, "rating": 5, "body": "\n \n" }),
            "input.body",
        ),
        (
            json!({ "titleId": tid, "rating": 5, "body": "é".repeat(10_001) }),
            "input.body",
        ),
        (
            json!({ "titleId": tid, "rating": 5, "body": "nul \u{0} inside" }),
            "input.body",
        ),
        (
            json!({ "titleId": "not-an-id!", "rating": 5, "body": "x" }),
            "input.titleId",
        ),
        (
            json!({ "titleId": gid("User", ana), "rating": 5, "body": "x" }),
            "input.titleId",
        ),
    ];
    for (input, field) in bad {
        let res = t
            .gql_as(Some(&token), CREATE_REVIEW, json!({ "input": input }))
            .await;
        assert_bad_input(&res, field);
    }
    // a well-formed id of no title
    let res = review(&t, &token, 999_999, 5, "x").await;
    assert_code(&res, "NOT_FOUND");
    // none of that was written
    let res = t.gql(TITLE, json!({ "id": tid })).await;
    assert_eq!(res.ok()["title"]["reviewCount"], 0);

    // a review updates the title's and the author's counters in its transaction
    let res = t
        .gql_as(
            Some(&token),
            CREATE_REVIEW,
            json!({ "input": { "titleId": tid, "rating": 9, "body": "Great", "containsSpoilers": true } }),
        )
        .await;
    let created = &res.ok()["createReview"];
    assert_eq!(created["containsSpoilers"], true);
    assert_eq!(created["title"]["reviewCount"], 1);
    assert_eq!(created["title"]["averageRating"], 9.0);
    assert_eq!(created["author"]["reviewCount"], bodies.len() + 1);
    // one review per user per title
    assert_code(&review(&t, &token, title, 3, "again").await, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicate_reviews_conflict_all_but_one() {
    let t = TestApp::with_config(patient_config()).await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let title = fx::title(&mut c, "Contested").await;
    let token = t.token(ana);
    let attempts = (0..10).map(|i| {
        let (t, token) = (&t, &token);
        async move { review(t, token, title, 1 + i % 10, &format!("take {i}")).await }
    });
    let results = join_all(attempts).await;
    let codes: Vec<Option<&str>> = results.iter().map(Res::code).collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == Some("CONFLICT")).count(),
        9,
        "{codes:?}"
    );
    let winner = results
        .iter()
        .find(|r| r.code().is_none())
        .expect("one succeeded");
    let rating = winner.ok()["createReview"]["rating"].clone();
    let res = t.gql(TITLE, json!({ "id": gid("Title", title) })).await;
    let got = &res.ok()["title"];
    assert_eq!(got["reviewCount"], 1);
    assert_eq!(got["reviews"]["totalCount"], 1);
    assert_eq!(got["averageRating"].as_f64(), rating.as_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_likes_count_exactly_forty() {
    let t = TestApp::with_config(patient_config()).await;
    let mut c = t.conn().await;
    let author = fx::user(&mut c, "author").await;
    let title = fx::title(&mut c, "Liked").await;
    let rev = gid("Review", fx::review(&mut c, author, title, 8).await);
    let mut tokens = vec![];
    for i in 0..40 {
        tokens.push(t.token(fx::user(&mut c, &format!("fan{i}")).await));
    }
    let likes = tokens
        .iter()
        .map(|tok| t.gql_as(Some(tok), LIKE, json!({ "id": rev })));
    let results = join_all(likes).await;
    let mut counts: Vec<i64> = results
        .iter()
        .map(|r| {
            assert_eq!(r.ok()["likeReview"]["viewerHasLiked"], true);
            r.ok()["likeReview"]["likeCount"].as_i64().expect("count")
        })
        .collect();
    // each response shows the count including its own like: all distinct
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<i64>>());
    let res = t
        .gql(
            "query($id: ID!) { review(id: $id) { likeCount } }",
            json!({ "id": rev }),
        )
        .await;
    assert_eq!(res.ok()["review"]["likeCount"], 40);

    let unlikes = tokens
        .iter()
        .map(|tok| t.gql_as(Some(tok), UNLIKE, json!({ "id": rev })));
    for r in join_all(unlikes).await {
        assert_eq!(r.ok()["unlikeReview"]["viewerHasLiked"], false);
    }
    let res = t
        .gql(
            "query($id: ID!) { review(id: $id) { likeCount } }",
            json!({ "id": rev }),
        )
        .await;
    assert_eq!(res.ok()["review"]["likeCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_are_idempotent() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let author = fx::user(&mut c, "author").await;
    let fan = t.token(fx::user(&mut c, "fan").await);
    let title = fx::title(&mut c, "Liked").await;
    let rev = gid("Review", fx::review(&mut c, author, title, 8).await);
    for _ in 0..2 {
        let res = t.gql_as(Some(&fan), LIKE, json!({ "id": rev })).await;
        assert_eq!(
            res.ok()["likeReview"],
            json!({ "id": rev, "likeCount": 1, "viewerHasLiked": true })
        );
    }
    for _ in 0..2 {
        let res = t.gql_as(Some(&fan), UNLIKE, json!({ "id": rev })).await;
        assert_eq!(
            res.ok()["unlikeReview"],
            json!({ "id": rev, "likeCount": 0, "viewerHasLiked": false })
        );
    }
    let missing = gid("Review", 999_999);
    for q in [LIKE, UNLIKE] {
        assert_code(
            &t.gql_as(Some(&fan), q, json!({ "id": missing })).await,
            "NOT_FOUND",
        );
        assert_bad_input(&t.gql_as(Some(&fan), q, json!({ "id": "%%%" })).await, "id");
        assert_bad_input(
            &t.gql_as(Some(&fan), q, json!({ "id": gid("Title", title) }))
                .await,
            "id",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_review_is_for_its_author_only() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let ben = t.token(fx::user(&mut c, "ben").await);
    let admin = t.token(fx::admin(&mut c, "boss").await);
    let title = fx::title(&mut c, "Edited").await;
    let rev = gid("Review", fx::review(&mut c, ana, title, 4).await);
    let ana = t.token(ana);

    let change = json!({ "id": rev, "input": { "rating": 10, "body": "Changed my mind 🙃" } });
    assert_code(
        &t.gql_as(Some(&ben), UPDATE_REVIEW, change.clone()).await,
        "FORBIDDEN",
    );
    assert_code(
        &t.gql_as(Some(&admin), UPDATE_REVIEW, change.clone()).await,
        "FORBIDDEN",
    );

    let res = t.gql_as(Some(&ana), UPDATE_REVIEW, change).await;
    let r = &res.ok()["updateReview"];
    assert_eq!(
        (&r["rating"], &r["body"], &r["containsSpoilers"]),
        (&json!(10), &json!("Changed my mind 🙃"), &json!(false))
    );
    assert_eq!(r["title"]["averageRating"], 10.0);
    assert!(r["updatedAt"].as_str() >= r["createdAt"].as_str(), "{r}");
    // omitted fields stay as they are
    let res = t
        .gql_as(
            Some(&ana),
            UPDATE_REVIEW,
            json!({ "id": rev, "input": { "containsSpoilers": true } }),
        )
        .await;
    let r = &res.ok()["updateReview"];
    assert_eq!(
        (&r["rating"], &r["body"], &r["containsSpoilers"]),
        (&json!(10), &json!("Changed my mind 🙃"), &json!(true))
    );

    for (input, field) in [
        (json!({}), "input"),
        (json!({ "rating": 11 }), "input.rating"),
        (json!({ "body": "" }), "input.body"),
        (json!({ "body": "b".repeat(10_001) }), "input.body"),
    ] {
        let res = t
            .gql_as(
                Some(&ana),
                UPDATE_REVIEW,
                json!({ "id": rev, "input": input }),
            )
            .await;
        assert_bad_input(&res, field);
    }
    let res = t
        .gql_as(
            Some(&ana),
            UPDATE_REVIEW,
            json!({ "id": gid("Review", 999_999), "input": { "rating": 3 } }),
        )
        .await;
    assert_code(&res, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_reviews_updates_the_title_and_needs_author_or_admin() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let ben = fx::user(&mut c, "ben").await;
    let stranger = t.token(fx::user(&mut c, "stranger").await);
    let admin = t.token(fx::admin(&mut c, "boss").await);
    let title = fx::title(&mut c, "Divisive").await;
    let tid = gid("Title", title);
    let r_ana = fx::review(&mut c, ana, title, 4).await;
    let r_ben = fx::review(&mut c, ben, title, 9).await;
    fx::like(&mut c, ben, r_ana).await;
    let comment = fx::comment(&mut c, ben, r_ana, "disagree").await;
    let ana = t.token(ana);

    let res = t.gql(TITLE, json!({ "id": tid })).await;
    assert_eq!(
        (
            &res.ok()["title"]["reviewCount"],
            &res.ok()["title"]["averageRating"]
        ),
        (&json!(2), &json!(6.5))
    );

    let res = t
        .gql_as(
            Some(&stranger),
            DELETE_REVIEW,
            json!({ "id": gid("Review", r_ana) }),
        )
        .await;
    assert_code(&res, "FORBIDDEN");

    // the author deletes: counters move with it, comments and likes go too
    let res = t
        .gql_as(
            Some(&ana),
            DELETE_REVIEW,
            json!({ "id": gid("Review", r_ana) }),
        )
        .await;
    assert_eq!(res.ok()["deleteReview"], gid("Review", r_ana));
    let res = t.gql(TITLE, json!({ "id": tid })).await;
    let got = &res.ok()["title"];
    assert_eq!(
        (&got["reviewCount"], &got["averageRating"]),
        (&json!(1), &json!(9.0))
    );
    assert_eq!(got["reviews"]["totalCount"], 1);
    let res = t
        .gql(
            "query($r: ID!, $c: ID!, $u: String!) {
               review(id: $r) { id } node(id: $c) { id } user(username: $u) { reviewCount }
             }",
            json!({ "r": gid("Review", r_ana), "c": gid("Comment", comment), "u": "ana" }),
        )
        .await;
    assert_eq!(
        res.ok(),
        &json!({ "review": null, "node": null, "user": { "reviewCount": 0 } })
    );
    let res = t.gql("{ feed { totalCount } }", json!({})).await;
    assert_eq!(res.ok()["feed"]["totalCount"], 1);

    // an admin may delete anyone's review
    let res = t
        .gql_as(
            Some(&admin),
            DELETE_REVIEW,
            json!({ "id": gid("Review", r_ben) }),
        )
        .await;
    assert_eq!(res.ok()["deleteReview"], gid("Review", r_ben));
    let res = t.gql(TITLE, json!({ "id": tid })).await;
    let got = &res.ok()["title"];
    assert_eq!(
        (&got["reviewCount"], &got["averageRating"]),
        (&json!(0), &Value::Null)
    );

    // gone is gone
    let res = t
        .gql_as(
            Some(&admin),
            DELETE_REVIEW,
            json!({ "id": gid("Review", r_ben) }),
        )
        .await;
    assert_code(&res, "NOT_FOUND");
    let res = t
        .gql_as(Some(&admin), DELETE_REVIEW, json!({ "id": "bm9wZQ" }))
        .await;
    assert_bad_input(&res, "id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_added_verbatim_and_deleted_by_author_or_admin() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let ben = t.token(fx::user(&mut c, "ben").await);
    let admin = t.token(fx::admin(&mut c, "boss").await);
    let title = fx::title(&mut c, "Talked about").await;
    let rev = gid("Review", fx::review(&mut c, ana, title, 6).await);
    let ana = t.token(ana);

    let body = "Agreed — \"mostly\" 👍\n\n'; DELETE FROM comments; --";
    let res = t
        .gql_as(
            Some(&ben),
            ADD_COMMENT,
            json!({ "reviewId": rev, "body": body }),
        )
        .await;
    let added = &res.ok()["addComment"];
    assert_eq!(added["body"], body);
    assert_eq!(added["review"]["commentCount"], 1);
    let ben_comment = added["id"].clone();
    let res = t
        .gql_as(
            Some(&ana),
            ADD_COMMENT,
            json!({ "reviewId": rev, "body": "c".repeat(2000) }),
        )
        .await;
    let ana_comment = res.ok()["addComment"]["id"].clone();
    assert_eq!(res.ok()["addComment"]["review"]["commentCount"], 2);

    for (vars, field) in [
        (json!({ "reviewId": rev, "body": "" }), "body"),
        (json!({ "reviewId": rev, "body": "c".repeat(2001) }), "body"),
        (json!({ "reviewId": "???", "body": "x" }), "reviewId"),
    ] {
        assert_bad_input(&t.gql_as(Some(&ben), ADD_COMMENT, vars).await, field);
    }
    let res = t
        .gql_as(
            Some(&ben),
            ADD_COMMENT,
            json!({ "reviewId": gid("Review", 999_999), "body": "x" }),
        )
        .await;
    assert_code(&res, "NOT_FOUND");

    // the review's author is not the comment's author
    let res = t
        .gql_as(Some(&ana), DELETE_COMMENT, json!({ "id": ben_comment }))
        .await;
    assert_code(&res, "FORBIDDEN");
    let res = t
        .gql_as(Some(&ben), DELETE_COMMENT, json!({ "id": ben_comment }))
        .await;
    assert_eq!(res.ok()["deleteComment"], ben_comment);
    let res = t
        .gql_as(Some(&admin), DELETE_COMMENT, json!({ "id": ana_comment }))
        .await;
    assert_eq!(res.ok()["deleteComment"], ana_comment);
    let res = t
        .gql_as(Some(&ben), DELETE_COMMENT, json!({ "id": ben_comment }))
        .await;
    assert_code(&res, "NOT_FOUND");
    let res = t
        .gql(
            "query($id: ID!) { review(id: $id) { commentCount comments { totalCount edges { node { id } } } } }",
            json!({ "id": rev }),
        )
        .await;
    assert_eq!(
        res.ok()["review"],
        json!({ "commentCount": 0, "comments": { "totalCount": 0, "edges": [] } })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_are_idempotent_and_fill_the_home_feed() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let critic = fx::user(&mut c, "critic").await;
    let title = fx::title(&mut c, "Followed").await;
    let rev = fx::review(&mut c, critic, title, 7).await;
    // a viewer signed up through the API, with the token it was given
    let res = sign_up(&t, "reader", "reading all day").await;
    let token = res.ok()["signUp"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let reader = res.ok()["signUp"]["user"]["id"].clone();
    let critic = gid("User", critic);
    const HOME: &str = "{ homeFeed { totalCount edges { node { id } } }
                          viewer { followingCount } }";

    let res = t.gql_as(Some(&token), HOME, json!({})).await;
    assert_eq!(res.ok()["homeFeed"]["totalCount"], 0);
    for _ in 0..2 {
        let res = t
            .gql_as(Some(&token), FOLLOW, json!({ "id": critic }))
            .await;
        assert_eq!(
            res.ok()["followUser"],
            json!({ "id": critic, "followerCount": 1, "viewerIsFollowing": true })
        );
    }
    let res = t.gql_as(Some(&token), HOME, json!({})).await;
    assert_eq!(
        res.ok(),
        &json!({ "homeFeed": { "totalCount": 1, "edges": [{ "node": { "id": gid("Review", rev) } }] },
                 "viewer": { "followingCount": 1 } })
    );
    for _ in 0..2 {
        let res = t
            .gql_as(Some(&token), UNFOLLOW, json!({ "id": critic }))
            .await;
        assert_eq!(
            res.ok()["unfollowUser"],
            json!({ "id": critic, "followerCount": 0, "viewerIsFollowing": false })
        );
    }
    let res = t.gql_as(Some(&token), HOME, json!({})).await;
    assert_eq!(res.ok()["homeFeed"]["totalCount"], 0);

    for q in [FOLLOW, UNFOLLOW] {
        assert_bad_input(
            &t.gql_as(Some(&token), q, json!({ "id": reader })).await,
            "id",
        );
        assert_code(
            &t.gql_as(Some(&token), q, json!({ "id": gid("User", 999_999) }))
                .await,
            "NOT_FOUND",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_follows_at_the_same_moment_do_not_deadlock() {
    // each follow changes two users' counters; two users following each
    // other at once must not lock them in opposite orders
    let t = TestApp::with_config(Config {
        rate_limit_writes_per_minute: 0,
        ..patient_config()
    })
    .await;
    let mut c = t.conn().await;
    let mut pairs = vec![];
    for i in 0..4 {
        let a = fx::user(&mut c, &format!("left{i}")).await;
        let b = fx::user(&mut c, &format!("right{i}")).await;
        pairs.push((a, b));
    }
    let t = &t;
    let sides = pairs.iter().flat_map(|&(a, b)| {
        [(a, b), (b, a)].map(|(from, to)| async move {
            let token = t.token(from);
            let vars = json!({ "id": gid("User", to) });
            for _ in 0..12 {
                for q in [FOLLOW, UNFOLLOW] {
                    let res = t.gql_as(Some(&token), q, vars.clone()).await;
                    assert!(res.body.get("errors").is_none(), "{}", res.body);
                }
            }
            t.gql_as(Some(&token), FOLLOW, vars).await
        })
    });
    for res in join_all(sides).await {
        assert_eq!(res.ok()["followUser"]["followerCount"], 1);
    }
    let res = t
        .gql(
            "{ user(username: \"left0\") { followerCount followingCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        res.ok()["user"],
        json!({ "followerCount": 1, "followingCount": 1 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_deleted_accounts_cannot_write() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let author = fx::user(&mut c, "author").await;
    let ghost = fx::user(&mut c, "ghost").await;
    let title = fx::title(&mut c, "Haunted").await;
    let rev = gid("Review", fx::review(&mut c, author, title, 5).await);
    let token = t.token(ghost);
    {
        use diesel_async::SimpleAsyncConnection;
        c.batch_execute(&format!("DELETE FROM users WHERE id = {ghost}"))
            .await
            .expect("delete");
    }
    let res = t.gql_as(Some(&token), LIKE, json!({ "id": rev })).await;
    assert_code(&res, "UNAUTHENTICATED");
    let res = t
        .gql_as(Some(&token), FOLLOW, json!({ "id": gid("User", author) }))
        .await;
    assert_code(&res, "UNAUTHENTICATED");
    let res = review(&t, &token, title, 5, "boo").await;
    assert_code(&res, "UNAUTHENTICATED");
}

/// What a client reads right after a write shows the write, whichever query
/// it uses (with the query cache on, this exercises each write's tags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_right_after_writes_show_them() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let boss = fx::admin(&mut c, "boss").await;
    let admin = t.token(boss);
    let fan_token = t.token(fx::user(&mut c, "fan").await);
    const READ: &str = "query($t: ID!) {
      title(id: $t) { reviewCount averageRating reviews(orderBy: MOST_LIKED) { edges { node { likeCount commentCount } } } }
      feed { totalCount }
      titles(orderBy: TOP_RATED) { totalCount edges { node { id } } }
      user(username: \"boss\") { reviewCount followerCount reviews { totalCount } }
    }";
    // warm up reads (and the cache, when on) before each write
    let res = t
        .gql_as(
            Some(&admin),
            CREATE_TITLE,
            json!({ "input": { "kind": "MOVIE", "name": "Fresh" } }),
        )
        .await;
    let tid = res.ok()["createTitle"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let read = |token: Option<String>| {
        let t = &t;
        let tid = tid.clone();
        async move { t.gql_as(token.as_deref(), READ, json!({ "t": tid })).await }
    };
    let before = read(None).await;
    assert_eq!(before.ok()["titles"]["totalCount"], 1);
    let res = t
        .gql_as(
            Some(&admin),
            CREATE_REVIEW,
            json!({ "input": { "titleId": tid, "rating": 6, "body": "ok" } }),
        )
        .await;
    let rid = res.ok()["createReview"]["id"].clone();
    let after = read(None).await;
    assert_eq!(after.ok()["title"]["reviewCount"], 1);
    assert_eq!(after.ok()["feed"]["totalCount"], 1);
    assert_eq!(after.ok()["user"]["reviews"]["totalCount"], 1);

    t.gql_as(Some(&fan_token), LIKE, json!({ "id": rid }))
        .await
        .ok();
    t.gql_as(
        Some(&fan_token),
        ADD_COMMENT,
        json!({ "reviewId": rid, "body": "!" }),
    )
    .await
    .ok();
    let after = read(None).await;
    assert_eq!(
        after.ok()["title"]["reviews"]["edges"][0]["node"],
        json!({ "likeCount": 1, "commentCount": 1 })
    );
    t.gql_as(
        Some(&admin),
        UPDATE_REVIEW,
        json!({ "id": rid, "input": { "rating": 2 } }),
    )
    .await
    .ok();
    assert_eq!(read(None).await.ok()["title"]["averageRating"], 2.0);
    t.gql_as(Some(&fan_token), FOLLOW, json!({ "id": gid("User", boss) }))
        .await
        .ok();
    assert_eq!(read(None).await.ok()["user"]["followerCount"], 1);
    t.gql_as(Some(&admin), DELETE_REVIEW, json!({ "id": rid }))
        .await
        .ok();
    let after = read(Some(fan_token.clone())).await;
    assert_eq!(after.ok()["title"]["reviewCount"], 0);
    assert_eq!(after.ok()["feed"]["totalCount"], 0);
    assert_eq!(after.ok()["user"]["reviewCount"], 0);
}
