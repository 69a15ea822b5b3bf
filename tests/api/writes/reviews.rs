//! createTitle and the review lifecycle: validation, verbatim text,
//! authorization, counters, concurrent duplicates.

use super::*;

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
