//! signUp / logIn, anonymous writes, tokens of accounts that are gone.

use super::*;

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
