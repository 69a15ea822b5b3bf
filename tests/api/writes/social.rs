//! Likes, comments and follows: idempotence, exact counters under
//! concurrency, authorization, the home feed.

use super::*;

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
