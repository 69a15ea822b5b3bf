//! GraphQL over HTTP: methods, media types, status codes, limits, auth.

use axum::{body::Body, http::Request};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_queries_and_post_only_mutations() {
    let t = TestApp::new().await;
    let res = t
        .send(
            Request::get("/graphql?query=%7Bfeed%7BtotalCount%7D%7D")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, json!({ "data": { "feed": { "totalCount": 0 } } }));

    let res = t
        .send(Request::get("/graphql?query=mutation%7BlogIn(input%3A%7Busername%3A%22a%22%2Cpassword%3A%22b%22%7D)%7Btoken%7D%7D").body(Body::empty()).expect("req"))
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.headers["allow"], "POST");

    // a browser gets GraphiQL, pre-filled
    let res = t
        .send(
            Request::get("/graphql")
                .header("accept", "text/html")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(res.status, 200);
    assert!(
        res.body
            .as_str()
            .is_some_and(|h| h.contains("graphiql") && h.contains("TopRated"))
    );
    let res = t
        .send(
            Request::get("/playground")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert!(
        res.body
            .as_str()
            .is_some_and(|h| h.contains("GraphQLPlayground.init") && h.contains("TopRated"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_follow_the_graphql_over_http_spec() {
    let t = TestApp::new().await;
    let post = |body: &str, accept: &str, ctype: &str| {
        Request::post("/graphql")
            .header("content-type", ctype)
            .header("accept", accept)
            .body(Body::from(body.to_owned()))
            .expect("req")
    };
    let modern = "application/graphql-response+json";
    // validation error: 400 with the modern media type, 200 with legacy JSON
    let res = t
        .send(post(r#"{"query":"{ nope }"}"#, modern, "application/json"))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.headers["content-type"],
        "application/graphql-response+json; charset=utf-8"
    );
    assert_eq!(res.code(), Some("GRAPHQL_VALIDATION_FAILED"));
    let res = t
        .send(post(
            r#"{"query":"{ nope }"}"#,
            "application/json",
            "application/json",
        ))
        .await;
    assert_eq!(res.status, 200);
    let res = t
        .send(post(r#"{"query":"{ feed { "}"#, modern, "application/json"))
        .await;
    assert_eq!(
        (res.status.as_u16(), res.code()),
        (400, Some("GRAPHQL_PARSE_FAILED"))
    );
    // malformed JSON and unknown media types
    let res = t
        .send(post("{not json", "application/json", "application/json"))
        .await;
    assert_eq!(res.status, 400);
    let res = t.send(post("{}", "application/json", "text/plain")).await;
    assert_eq!(res.status, 415);
    // application/graphql bodies are plain documents
    let res = t
        .send(post(
            "{ feed { totalCount } }",
            "application/json",
            "application/graphql",
        ))
        .await;
    assert_eq!(res.body, json!({ "data": { "feed": { "totalCount": 0 } } }));
    // body over 1 MiB
    let big = format!(
        r#"{{"query":"{{ feed {{ totalCount }} }}","variables":{{"x":"{}"}}}}"#,
        "a".repeat(1_100_000)
    );
    let res = t
        .send(post(&big, "application/json", "application/json"))
        .await;
    assert_eq!(res.status, 413);
    // batches
    let res = t
        .send(post(
            r#"[{"query":"{ feed { totalCount } }"},{"query":"{ viewer { id } }"}]"#,
            "application/json",
            "application/json",
        ))
        .await;
    assert_eq!(
        res.body,
        json!([{ "data": { "feed": { "totalCount": 0 } } }, { "data": { "viewer": null } }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_rejected_never_anonymous() {
    let t = TestApp::new().await;
    let forged = nexora::auth::Auth::new(
        b"another-secret-another-secret-xx",
        std::time::Duration::from_secs(60),
    )
    .issue(1)
    .expect("token");
    let now = chrono::Utc::now().timestamp() as u64;
    let expired = t
        .app
        .services
        .auth
        .issue_expiring(1, now - 3600, now - 60)
        .expect("token");
    for header in [
        "Bearer garbage",
        &format!("Bearer {forged}"),
        &format!("Bearer {expired}"),
        "Basic abc",
    ] {
        let req = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", header)
            .body(Body::from(r#"{"query":"{ viewer { id } }"}"#))
            .expect("req");
        let res = t.send(req).await;
        assert_eq!(res.status, 401, "{header}");
        assert_eq!(res.code(), Some("UNAUTHENTICATED"), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let t = TestApp::new().await;
    let res = t
        .send(Request::get("/healthz").body(Body::empty()).expect("req"))
        .await;
    assert_eq!(res.status, 200);
    let res = t
        .send(Request::get("/readyz").body(Body::empty()).expect("req"))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.headers.contains_key("x-request-id"));

    // readiness follows Postgres: an instance pointed at a dead port is not ready
    let mut config = crate::support::test_config();
    config.database_url = "postgres://postgres@127.0.0.1:1/nowhere".into();
    config.db_timeout = std::time::Duration::from_millis(300);
    let pool = nexora::db::Db::connect(&config).await.expect("lazy pool");
    let cache = nexora::cache::Cache::connect(&config).await;
    let app = nexora::app::App::build(config, pool, cache, crate::support::SECRET);
    let router = nexora::http::router(app);
    use tower::ServiceExt;
    let started = std::time::Instant::now();
    let res = router
        .oneshot(Request::get("/readyz").body(Body::empty()).expect("req"))
        .await
        .expect("res");
    assert_eq!(res.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_are_generic_and_carry_the_request_id() {
    let t = TestApp::with_config(nexora::config::Config {
        cache_default_ttl: std::time::Duration::ZERO,
        ..crate::support::test_config()
    })
    .await;
    let mut c = t.conn().await;
    crate::support::fx::title(&mut c, "Broken").await;
    // a schema the code does not expect: every title query now fails in SQL
    use diesel_async::SimpleAsyncConnection;
    c.batch_execute("ALTER TABLE titles DROP COLUMN synopsis")
        .await
        .expect("alter");
    let res = t
        .gql("{ titles { edges { node { name } } } }", json!({}))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.code(), Some("INTERNAL_SERVER_ERROR"));
    let message = res.body["errors"][0]["message"].as_str().expect("message");
    assert!(
        !message.contains("synopsis") && !message.to_lowercase().contains("column"),
        "leaks SQL: {message}"
    );
    let request_id = res.body["errors"][0]["extensions"]["requestId"]
        .as_str()
        .expect("requestId");
    assert_eq!(
        res.headers["x-request-id"].to_str().expect("header"),
        request_id
    );
    assert!(message.contains(request_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_headers_and_preflights_succeed() {
    let t = TestApp::new().await;
    let preflight = t
        .send(
            Request::options("/graphql")
                .header("origin", "https://app.example")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization",
                )
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    let allowed = preflight.headers["access-control-allow-headers"]
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));

    // twice each: the second is answered from the cache, through the same layers
    for _ in 0..2 {
        let res = t.send(titles_post(Some("https://app.example"))).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["access-control-allow-origin"], "*");
        let exposed = res.headers["access-control-expose-headers"]
            .to_str()
            .expect("text")
            .to_ascii_lowercase();
        assert!(exposed.contains("x-cache") && exposed.contains("etag"));
        // not a CORS request, but a shared cache may hand it to a browser later
        let res = t.send(titles_post(None)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["access-control-allow-origin"], "*");
        assert_eq!(
            res.headers["access-control-expose-headers"],
            "x-request-id,x-cache,etag,retry-after"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cors_allow_list_is_enforced_and_varies_on_origin() {
    let t = TestApp::with_config(nexora::config::Config {
        cors_allowed_origins: vec!["https://app.example".into()],
        ..crate::support::test_config()
    })
    .await;
    let allowed = t.send(titles_post(Some("https://app.example"))).await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let other = t.send(titles_post(Some("https://evil.example"))).await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
    let plain = t.send(titles_post(None)).await;
    assert!(!plain.headers.contains_key("access-control-allow-origin"));
    let vary: Vec<_> = plain.headers.get_all("vary").iter().collect();
    assert!(
        vary.iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("origin"))),
        "{vary:?}"
    );
}

/// A small cacheable query, sent from `origin` (a browser) or without one.
fn titles_post(origin: Option<&str>) -> Request<Body> {
    let body = json!({ "query": "{ titles(first: 1) { totalCount } }" }).to_string();
    let mut req = Request::post("/graphql").header("content-type", "application/json");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.body(Body::from(body)).expect("req")
}
