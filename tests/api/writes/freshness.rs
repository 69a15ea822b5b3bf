//! Read-your-writes with the query cache on: each write refreshes what it
//! changed and leaves the rest cached.

use super::*;

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

fn x_cache(res: &Res) -> &str {
    res.headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reads `read` until it is served from the cache, runs `write`, and checks
/// the next read is recomputed and shows `expect`, while `other` (cached
/// before) is still a hit.
async fn refreshes(
    t: &TestApp,
    label: &str,
    read: (&str, Value),
    write: impl Future<Output = Res>,
    expect: Value,
    other: (&str, &Value),
) {
    t.gql(read.0, read.1.clone()).await.ok();
    let warm = t.gql(read.0, read.1.clone()).await;
    assert_eq!(
        x_cache(&warm),
        "HIT",
        "{label}: not cached before the write"
    );
    write.await.ok();
    let after = t.gql(read.0, read.1.clone()).await;
    assert_ne!(x_cache(&after), "HIT", "{label}: stale hit after the write");
    assert_eq!(after.ok(), &expect, "{label}");
    let untouched = t.gql(other.0, other.1.clone()).await;
    assert_eq!(x_cache(&untouched), "HIT", "{label}: invalidated too much");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_write_refreshes_what_it_changed_and_nothing_else() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let fan = fx::user(&mut c, "fan").await;
    let admin = t.token(fx::admin(&mut c, "boss").await);
    let (t1, t2) = (
        fx::title(&mut c, "One").await,
        fx::title(&mut c, "Two").await,
    );
    let r1 = gid("Review", fx::review(&mut c, ana, t1, 4).await);
    let (ana_t, fan_t) = (t.token(ana), t.token(fan));
    let other_q = "query($id: ID!) { title(id: $id) { name reviewCount } }";
    let other_v = json!({ "id": gid("Title", t2) });
    let other = (other_q, &other_v);
    t.gql(other_q, other_v.clone()).await.ok();

    let review_q = "query($id: ID!) { review(id: $id) { rating likeCount commentCount comments { totalCount } } }";
    let review_v = json!({ "id": r1 });
    let title_q =
        "query($id: ID!) { title(id: $id) { reviewCount averageRating } feed { totalCount } }";
    let title_v = json!({ "id": gid("Title", t1) });
    let user_q = "{ user(username: \"ana\") { followerCount } }";

    refreshes(&t, "likeReview", (review_q, review_v.clone()),
        t.gql_as(Some(&fan_t), LIKE, json!({ "id": r1 })),
        json!({ "review": { "rating": 4, "likeCount": 1, "commentCount": 0, "comments": { "totalCount": 0 } } }),
        other).await;
    let res_comment = t.gql_as(
        Some(&fan_t),
        ADD_COMMENT,
        json!({ "reviewId": r1, "body": "hi" }),
    );
    refreshes(&t, "addComment", (review_q, review_v.clone()), res_comment,
        json!({ "review": { "rating": 4, "likeCount": 1, "commentCount": 1, "comments": { "totalCount": 1 } } }),
        other).await;
    let comment_id = {
        let res = t
            .gql(
                "query($id: ID!) { review(id: $id) { comments { edges { node { id } } } } }",
                review_v.clone(),
            )
            .await;
        res.ok()["review"]["comments"]["edges"][0]["node"]["id"].clone()
    };
    refreshes(&t, "deleteComment", (review_q, review_v.clone()),
        t.gql_as(Some(&fan_t), DELETE_COMMENT, json!({ "id": comment_id })),
        json!({ "review": { "rating": 4, "likeCount": 1, "commentCount": 0, "comments": { "totalCount": 0 } } }),
        other).await;
    refreshes(&t, "unlikeReview", (review_q, review_v.clone()),
        t.gql_as(Some(&fan_t), UNLIKE, json!({ "id": r1 })),
        json!({ "review": { "rating": 4, "likeCount": 0, "commentCount": 0, "comments": { "totalCount": 0 } } }),
        other).await;
    refreshes(
        &t,
        "updateReview",
        (title_q, title_v.clone()),
        t.gql_as(
            Some(&ana_t),
            UPDATE_REVIEW,
            json!({ "id": r1, "input": { "rating": 8 } }),
        ),
        json!({ "title": { "reviewCount": 1, "averageRating": 8.0 }, "feed": { "totalCount": 1 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "createReview",
        (title_q, title_v.clone()),
        review(&t, &fan_t, t1, 2, "meh"),
        json!({ "title": { "reviewCount": 2, "averageRating": 5.0 }, "feed": { "totalCount": 2 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "deleteReview",
        (title_q, title_v.clone()),
        t.gql_as(Some(&ana_t), DELETE_REVIEW, json!({ "id": r1 })),
        json!({ "title": { "reviewCount": 1, "averageRating": 2.0 }, "feed": { "totalCount": 1 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "followUser",
        (user_q, json!({})),
        t.gql_as(Some(&fan_t), FOLLOW, json!({ "id": gid("User", ana) })),
        json!({ "user": { "followerCount": 1 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "unfollowUser",
        (user_q, json!({})),
        t.gql_as(Some(&fan_t), UNFOLLOW, json!({ "id": gid("User", ana) })),
        json!({ "user": { "followerCount": 0 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "createTitle",
        ("{ titles { totalCount } }", json!({})),
        t.gql_as(
            Some(&admin),
            CREATE_TITLE,
            json!({ "input": { "kind": "MOVIE", "name": "Three" } }),
        ),
        json!({ "titles": { "totalCount": 3 } }),
        other,
    )
    .await;
    refreshes(
        &t,
        "signUp",
        ("{ user(username: \"newbie\") { username } }", json!({})),
        sign_up(&t, "newbie", "new password"),
        json!({ "user": { "username": "newbie" } }),
        other,
    )
    .await;
}
