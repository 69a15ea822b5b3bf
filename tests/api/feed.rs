//! The change feed over real TCP: instances sharing one database and one
//! Redis prefix (as in production), `reviewAdded` over WebSocket with
//! graphql-transport-ws, and cache invalidation for writes made in SQL.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use futures::{SinkExt, StreamExt};
use nexora::{app::App, config::Config, feed::FeedTask};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::support::{TestApp, fx, gid, test_config};

/// The promise: a change reaches subscribers and caches within this.
const WITHIN: Duration = Duration::from_secs(1);

const REVIEW_ADDED: &str = "subscription($title: ID) {
  reviewAdded(titleId: $title) { id rating body viewerHasLiked title { id name } author { username } }
}";

const TITLE_NAME: &str = "query($id: ID!) { title(id: $id) { name } }";

/// One instance served on a real port, with its change-feed listener.
struct Live {
    app: App,
    addr: SocketAddr,
    feed: Option<FeedTask>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

impl Live {
    /// Starts the listener (waiting until it listens), then serves.
    async fn start(app: App) -> Self {
        let feed = app.start_feed();
        wait_connects(&app, 1).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = nexora::http::router(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let closing = app.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                    closing.services.sockets.close_all();
                })
                .await
                .expect("serve");
        });
        Self {
            app,
            addr,
            feed: Some(feed),
            shutdown: Some(tx),
            server: Some(server),
            http: reqwest::Client::new(),
        }
    }

    /// POSTs a query over TCP: the JSON body and the `x-cache` header.
    async fn query(&self, query: &str, variables: Value) -> (Value, String) {
        let res = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        let x_cache = res
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        (res.json().await.expect("json body"), x_cache)
    }

    /// A graphql-transport-ws connection, initialised with `payload`.
    async fn subscriber(&self, payload: Value) -> Ws {
        let mut ws = ws_connect(self.addr, "graphql-transport-ws")
            .await
            .expect("upgrade");
        send(
            &mut ws,
            json!({ "type": "connection_init", "payload": payload }),
        )
        .await;
        match next(&mut ws, WITHIN).await {
            Got::Json(m) if m["type"] == "connection_ack" => ws,
            other => panic!("no connection_ack: {other:?}"),
        }
    }

    /// Subscribes to `reviewAdded` and waits until the subscription listens.
    async fn subscribe(&self, ws: &mut Ws, id: &str, title: Option<&str>) {
        let before = self.app.services.feed.subscribers();
        send(
            ws,
            json!({ "id": id, "type": "subscribe",
                    "payload": { "query": REVIEW_ADDED, "variables": { "title": title } } }),
        )
        .await;
        within_5s(
            || self.app.services.feed.subscribers() > before,
            &format!("subscription {id} never started"),
        )
        .await;
    }

    /// Stops serving: sockets are told to close, then the listener stops.
    async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("server stops")
                .expect("server task");
        }
        if let Some(feed) = self.feed.take() {
            feed.stop().await;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Polls `done` every 10 ms; panics with `what` if it is still false after 5 s.
async fn within_5s(done: impl Fn() -> bool, what: &str) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A second instance over the test's database and Redis prefix.
async fn another_instance(t: &TestApp) -> App {
    t.second_instance().await.app.clone()
}

async fn wait_connects(app: &App, n: u64) {
    let mut status = app.services.feed.status();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.connected && s.connects >= n),
    )
    .await
    .unwrap_or_else(|_| panic!("the change feed did not connect {n} times"))
    .expect("feed status");
}

/// Terminates this database's listener connections from Postgres, waiting
/// until they are gone (a listener reconnects after at least 100 ms).
async fn kill_listeners(c: &mut AsyncPgConnection) {
    c.batch_execute(&format!(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
          WHERE application_name = '{}' AND datname = current_database()",
        nexora::feed::APPLICATION_NAME
    ))
    .await
    .expect("terminate listeners");
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr, protocol: &str) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocol).expect("header"),
    );
    connect_async(req).await.map(|(ws, _)| ws)
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

#[derive(Debug)]
enum Got {
    Json(Value),
    Closed(Option<u16>),
    Nothing,
}

/// The next GraphQL message within `within`, answering pings as real clients do.
async fn next(ws: &mut Ws, within: Duration) -> Got {
    next_with(ws, within, true).await
}

async fn next_with(ws: &mut Ws, within: Duration, pong: bool) -> Got {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Got::Nothing,
            Ok(None | Some(Err(_))) => return Got::Closed(None),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).expect("JSON message");
                if pong && value["type"] == "ping" {
                    send(ws, json!({ "type": "pong" })).await;
                    continue;
                }
                return Got::Json(value);
            }
            Message::Close(frame) => return Got::Closed(frame.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
}

/// The `reviewAdded` payload of the next message, within `within`.
async fn next_review(ws: &mut Ws, within: Duration) -> Value {
    match next(ws, within).await {
        Got::Json(m) if m["type"] == "next" => {
            assert!(m["payload"].get("errors").is_none(), "errors: {m}");
            m["payload"]["data"]["reviewAdded"].clone()
        }
        other => panic!("expected a reviewAdded event within {within:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_inserted_in_sql_reaches_matching_subscribers_on_every_instance() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let b = Live::start(another_instance(&t).await).await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let (dune, heat) = (
        fx::title(&mut c, "Dune").await,
        fx::title(&mut c, "Heat").await,
    );

    let mut on_a = a.subscriber(json!({})).await;
    a.subscribe(&mut on_a, "dune", Some(&gid("Title", dune)))
        .await;
    let mut other_title = a.subscriber(json!({})).await;
    a.subscribe(&mut other_title, "heat", Some(&gid("Title", heat)))
        .await;
    let mut on_b = b.subscriber(json!({})).await;
    b.subscribe(&mut on_b, "all", None).await;

    let review = fx::review(&mut c, ana, dune, 8).await;
    let committed = Instant::now();
    let expected = json!({
        "id": gid("Review", review), "rating": 8, "body": format!("review by {ana} of {dune}"),
        "viewerHasLiked": false, "title": { "id": gid("Title", dune), "name": "Dune" },
        "author": { "username": "ana" },
    });
    assert_eq!(next_review(&mut on_a, WITHIN).await, expected);
    assert_eq!(next_review(&mut on_b, WITHIN).await, expected);
    assert!(committed.elapsed() < WITHIN);
    // the titleId filter holds
    assert!(matches!(
        next(&mut other_title, Duration::from_millis(300)).await,
        Got::Nothing
    ));
    let second = fx::review(&mut c, ana, heat, 3).await;
    assert_eq!(
        next_review(&mut other_title, WITHIN).await["id"],
        gid("Review", second)
    );
    assert_eq!(
        next_review(&mut on_b, WITHIN).await["id"],
        gid("Review", second)
    );
    assert!(matches!(
        next(&mut on_a, Duration::from_millis(300)).await,
        Got::Nothing
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_connection_is_closed_when_its_token_expires() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let mut c = t.conn().await;
    let ben = fx::user(&mut c, "ben").await;
    let now = chrono::Utc::now().timestamp() as u64;
    // exp in 1 s; HTTP accepts a token for 5 s of clock skew beyond it
    let short = a
        .app
        .services
        .auth
        .issue_expiring(ben, now, now + 1)
        .expect("token");
    let mut expiring = a
        .subscriber(json!({ "Authorization": format!("Bearer {short}") }))
        .await;
    a.subscribe(&mut expiring, "1", None).await;
    let mut lasting = a
        .subscriber(json!({ "Authorization": format!("Bearer {}", t.token(ben)) }))
        .await;
    a.subscribe(&mut lasting, "1", None).await;
    assert_eq!(a.app.services.feed.subscribers(), 2);
    // still accepted for a while: nothing closes it yet
    assert!(matches!(
        next(&mut expiring, Duration::from_millis(500)).await,
        Got::Nothing
    ));
    // then closed as a new connection with that token would be refused
    match next(&mut expiring, Duration::from_secs(8)).await {
        Got::Closed(Some(4403)) => {}
        other => panic!("expected close 4403 once the token expired, got {other:?}"),
    }
    // its subscription ended on the server; the other connection's did not
    within_5s(
        || a.app.services.feed.subscribers() <= 1,
        "the expired connection's subscription is still registered",
    )
    .await;
    assert_eq!(a.app.services.feed.subscribers(), 1);
    assert!(matches!(
        next(&mut lasting, Duration::from_millis(300)).await,
        Got::Nothing
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_init_authenticates_like_http() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let mut c = t.conn().await;
    let (ana, ben) = (fx::user(&mut c, "ana").await, fx::user(&mut c, "ben").await);
    let dune = fx::title(&mut c, "Dune").await;

    // a bad token closes the connection with graphql-transport-ws' 4403
    for payload in [
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "Authorization": format!("Bearer {}", a.app.services.auth.issue_expiring(ben, 1, 2).expect("token")) }),
        json!({ "Authorization": t.token(ben) }),
        json!({ "Authorization": 42 }),
    ] {
        let mut ws = ws_connect(a.addr, "graphql-transport-ws")
            .await
            .expect("upgrade");
        send(
            &mut ws,
            json!({ "type": "connection_init", "payload": payload }),
        )
        .await;
        match next(&mut ws, WITHIN).await {
            Got::Closed(Some(4403)) => {}
            other => panic!("{payload}: expected close 4403, got {other:?}"),
        }
    }

    // signed in: viewer-specific fields answer for the viewer; anonymous: not
    let token = t.token(ben);
    let mut signed_in = a
        .subscriber(json!({ "Authorization": format!("Bearer {token}") }))
        .await;
    a.subscribe(&mut signed_in, "1", None).await;
    let mut anonymous = a.subscriber(Value::Null).await;
    a.subscribe(&mut anonymous, "1", None).await;
    // the review and ben's like commit together, so the like is there when it is announced
    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO reviews (title_id, author_id, rating, body) VALUES ({dune}, {ana}, 9, 'x');
         INSERT INTO review_likes (review_id, user_id) VALUES (currval('reviews_id_seq'), {ben});
         COMMIT;"
    ))
    .await
    .expect("insert");
    assert_eq!(
        next_review(&mut signed_in, WITHIN).await["viewerHasLiked"],
        true
    );
    assert_eq!(
        next_review(&mut anonymous, WITHIN).await["viewerHasLiked"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_title_ids_are_refused_with_codes() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let mut ws = a.subscriber(json!({})).await;
    for (id, title, code) in [
        ("1", "not an id".to_owned(), "BAD_USER_INPUT"),
        ("2", gid("User", ana), "BAD_USER_INPUT"),
        ("3", gid("Title", 999), "NOT_FOUND"),
    ] {
        send(
            &mut ws,
            json!({ "id": id, "type": "subscribe",
                    "payload": { "query": REVIEW_ADDED, "variables": { "title": title } } }),
        )
        .await;
        match next(&mut ws, WITHIN).await {
            Got::Json(m) if m["type"] == "next" => {
                assert_eq!(m["id"], id);
                assert_eq!(
                    m["payload"]["errors"][0]["extensions"]["code"], code,
                    "{title}: {m}"
                );
            }
            other => panic!("{title}: expected an error, got {other:?}"),
        }
        match next(&mut ws, WITHIN).await {
            Got::Json(m) if m["type"] == "complete" && m["id"] == id => {}
            other => panic!("{title}: expected complete, got {other:?}"),
        }
    }
    assert_eq!(a.app.services.feed.subscribers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_killed_from_postgres_recovers_and_keeps_delivering() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let (dune, heat) = (
        fx::title(&mut c, "Dune").await,
        fx::title(&mut c, "Heat").await,
    );
    let mut ws = a.subscriber(json!({})).await;
    a.subscribe(&mut ws, "1", None).await;

    kill_listeners(&mut c).await;
    wait_connects(&a.app, 2).await;
    let review = fx::review(&mut c, ana, dune, 7).await;
    assert_eq!(
        next_review(&mut ws, WITHIN).await["id"],
        gid("Review", review)
    );
    // and again: the backoff does not leave it disconnected
    kill_listeners(&mut c).await;
    wait_connects(&a.app, 3).await;
    let review = fx::review(&mut c, ana, heat, 7).await;
    assert_eq!(
        next_review(&mut ws, WITHIN).await["id"],
        gid("Review", review)
    );
    // operators see it
    let metrics = a
        .http
        .get(format!("http://{}/metrics", a.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "nexora_feed_connected 1",
        "nexora_feed_connects_total 3",
        "nexora_subscriptions 1",
        "nexora_websocket_connections 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

/// Reads `title(id) { name }` through `live` until it says `name`; panics
/// after [`WITHIN`].
async fn eventually_named(live: &Live, id: &str, name: &str, since: Instant) {
    loop {
        let (body, _) = live.query(TITLE_NAME, json!({ "id": id })).await;
        if body["data"]["title"]["name"] == name {
            return;
        }
        assert!(
            since.elapsed() < WITHIN,
            "{} still answers {body} {:?} after the write",
            live.addr,
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads twice through `live`: the second read must come from the cache.
async fn warm(live: &Live, id: &str, name: &str) {
    let (body, _) = live.query(TITLE_NAME, json!({ "id": id })).await;
    assert_eq!(body["data"]["title"]["name"], name);
    let (body, x_cache) = live.query(TITLE_NAME, json!({ "id": id })).await;
    assert_eq!(body["data"]["title"]["name"], name);
    assert_eq!(x_cache, "HIT", "the second read was not cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_in_sql_is_fresh_on_every_instance_within_a_second() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    // fixtures first: their own notifications could otherwise land after
    // the warming reads and make them look uncached
    let (dune, heat) = (
        fx::title(&mut c, "Dune").await,
        fx::title(&mut c, "Heat").await,
    );
    let (dune, heat) = (gid("Title", dune), gid("Title", heat));
    let a = Live::start(t.app.clone()).await;
    let b = Live::start(another_instance(&t).await).await;
    for live in [&a, &b] {
        warm(live, &dune, "Dune").await;
        warm(live, &heat, "Heat").await;
    }

    // as an admin would in psql
    c.batch_execute("UPDATE titles SET name = 'Dune: Part One' WHERE name = 'Dune'")
        .await
        .expect("update");
    let written = Instant::now();
    for live in [&a, &b] {
        eventually_named(live, &dune, "Dune: Part One", written).await;
    }
    // what the change did not touch stays cached
    for live in [&a, &b] {
        let (body, x_cache) = live.query(TITLE_NAME, json!({ "id": heat })).await;
        assert_eq!(body["data"]["title"]["name"], "Heat");
        assert_eq!(x_cache, "HIT", "{} dropped an unrelated entry", live.addr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_nothing_the_listener_may_have_missed() {
    let t = TestApp::new().await;
    let mut c = t.conn().await;
    let dune = gid("Title", fx::title(&mut c, "Dune").await);
    let a = Live::start(t.app.clone()).await;
    let b = Live::start(another_instance(&t).await).await;
    for live in [&a, &b] {
        warm(live, &dune, "Dune").await;
    }

    // both listeners are gone and the write commits before they can be back
    // (their backoff starts at 100 ms): its notification reaches nobody, and
    // only the reconnects can make the cache fresh
    kill_listeners(&mut c).await;
    c.batch_execute("UPDATE titles SET name = 'Dune (1984)'")
        .await
        .expect("update");
    let written = Instant::now();
    for live in [&a, &b] {
        eventually_named(live, &dune, "Dune (1984)", written).await;
    }
    wait_connects(&a.app, 2).await;
    wait_connects(&b.app, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_are_capped_per_instance() {
    let t = TestApp::with_config(Config {
        ws_max_connections: 1,
        ..test_config()
    })
    .await;
    let a = Live::start(t.app.clone()).await;
    let first = a.subscriber(json!({})).await;
    match ws_connect(a.addr, "graphql-transport-ws").await {
        Err(tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 503);
            assert_eq!(res.headers()["retry-after"], "5");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| "a connection")),
    }
    // a connection without a GraphQL protocol is refused before counting
    match ws_connect(a.addr, "chat").await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|_| "a connection")),
    }
    // room again once the first one leaves
    drop(first);
    within_5s(|| a.app.services.sockets.open() == 0, "never released").await;
    a.subscriber(json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_per_connection_are_capped() {
    let t = TestApp::with_config(Config {
        ws_max_subscriptions: 2,
        ..test_config()
    })
    .await;
    let a = Live::start(t.app.clone()).await;
    let mut ws = a.subscriber(json!({})).await;
    a.subscribe(&mut ws, "1", None).await;
    a.subscribe(&mut ws, "2", None).await;
    // a third is refused with an error for its id, and never starts
    send(
        &mut ws,
        json!({ "id": "3", "type": "subscribe", "payload": { "query": REVIEW_ADDED } }),
    )
    .await;
    match next(&mut ws, WITHIN).await {
        Got::Json(m) if m["type"] == "error" && m["id"] == "3" => {
            assert_eq!(
                m["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
                "{m}"
            );
        }
        other => panic!("expected an error for operation 3, got {other:?}"),
    }
    assert_eq!(a.app.services.feed.subscribers(), 2);
    // completing one makes room, on the same connection
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    within_5s(|| a.app.services.feed.subscribers() <= 1, "never completed").await;
    a.subscribe(&mut ws, "3", None).await;
    assert_eq!(a.app.services.feed.subscribers(), 2);
    // and the running ones still deliver
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let dune = fx::title(&mut c, "Dune").await;
    fx::review(&mut c, ana, dune, 9).await;
    let mut got = vec![];
    while got.len() < 2 {
        match next(&mut ws, Duration::from_secs(5)).await {
            Got::Json(m) if m["type"] == "next" => {
                got.push(m["id"].as_str().unwrap_or("").to_owned());
            }
            // the server's answer to completing operation 1
            Got::Json(m) if m["type"] == "complete" && m["id"] == "1" => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
    got.sort();
    assert_eq!(got, ["2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_pinged_and_silent_ones_closed() {
    let t = TestApp::with_config(Config {
        ws_ping_interval: Duration::from_secs(1),
        ..test_config()
    })
    .await;
    let a = Live::start(t.app.clone()).await;
    let mut silent = a.subscriber(json!({})).await;
    let opened = Instant::now();
    // one that answers its pings (as graphql-ws clients do) stays open
    let mut alive = a.subscriber(json!({})).await;
    let alive = tokio::spawn(async move { next(&mut alive, Duration::from_secs(4)).await });
    match next_with(&mut silent, Duration::from_secs(3), false).await {
        Got::Json(m) if m["type"] == "ping" => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    // one that never answers is closed after two intervals of silence
    loop {
        match next_with(&mut silent, Duration::from_secs(5), false).await {
            Got::Json(m) if m["type"] == "ping" => {}
            Got::Closed(Some(3008)) => break,
            other => panic!("expected close 3008, got {other:?}"),
        }
    }
    assert!(opened.elapsed() >= Duration::from_millis(1900));
    assert!(matches!(alive.await.expect("alive task"), Got::Nothing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_cleanly() {
    let t = TestApp::new().await;
    let mut a = Live::start(t.app.clone()).await;
    let mut ws = a.subscriber(json!({})).await;
    a.subscribe(&mut ws, "1", None).await;
    let addr = a.addr;
    let shut_down = tokio::spawn(async move {
        a.shut_down().await;
        a
    });
    match next(&mut ws, Duration::from_secs(2)).await {
        Got::Closed(Some(1001)) => {}
        other => panic!("expected close 1001 (going away), got {other:?}"),
    }
    // the close handshake completes from the client's side
    assert!(matches!(
        next(&mut ws, Duration::from_secs(1)).await,
        Got::Closed(None)
    ));
    let a = tokio::time::timeout(Duration::from_secs(5), shut_down)
        .await
        .expect("shutdown finishes")
        .expect("shutdown task");
    assert!(a.app.services.sockets.closed(Duration::from_secs(1)).await);
    assert!(!a.app.services.feed.status().borrow().connected);
    assert!(ws_connect(addr, "graphql-transport-ws").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_playground_legacy_protocol_works_too() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let mut c = t.conn().await;
    let ana = fx::user(&mut c, "ana").await;
    let dune = fx::title(&mut c, "Dune").await;
    let mut ws = ws_connect(a.addr, "graphql-ws").await.expect("upgrade");
    send(&mut ws, json!({ "type": "connection_init", "payload": {} })).await;
    match next(&mut ws, WITHIN).await {
        Got::Json(m) if m["type"] == "connection_ack" => {}
        other => panic!("no connection_ack: {other:?}"),
    }
    let before = a.app.services.feed.subscribers();
    send(
        &mut ws,
        json!({ "id": "1", "type": "start", "payload": { "query": REVIEW_ADDED } }),
    )
    .await;
    within_5s(
        || a.app.services.feed.subscribers() != before,
        "the legacy subscription never started",
    )
    .await;
    let review = fx::review(&mut c, ana, dune, 6).await;
    loop {
        match next(&mut ws, WITHIN).await {
            Got::Json(m) if m["type"] == "ka" => {}
            Got::Json(m) if m["type"] == "data" => {
                assert_eq!(
                    m["payload"]["data"]["reviewAdded"]["id"],
                    gid("Review", review)
                );
                break;
            }
            other => panic!("expected data, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_created_through_one_instance_reaches_subscribers_of_the_other() {
    let t = TestApp::new().await;
    let a = Live::start(t.app.clone()).await;
    let b = Live::start(another_instance(&t).await).await;
    let mut c = t.conn().await;
    let writer = fx::user(&mut c, "writer").await;
    let (film, other) = (
        fx::title(&mut c, "Subscribed").await,
        fx::title(&mut c, "Ignored").await,
    );
    let mut on_a = a.subscriber(json!({})).await;
    a.subscribe(&mut on_a, "film", Some(&gid("Title", film)))
        .await;
    let mut elsewhere = a.subscriber(json!({})).await;
    a.subscribe(&mut elsewhere, "other", Some(&gid("Title", other)))
        .await;

    // the mutation goes through instance B, signed in
    let token = t.token(writer);
    let res = b
        .http
        .post(format!("http://{}/graphql", b.addr))
        .bearer_auth(&token)
        .json(&json!({
            "query": "mutation($t: ID!) { createReview(input: { titleId: $t, rating: 9, body: \"live!\" }) { id } }",
            "variables": { "t": gid("Title", film) },
        }))
        .send()
        .await
        .expect("request");
    let created: Value = res.json().await.expect("json");
    let id = created["data"]["createReview"]["id"].clone();
    assert!(id.is_string(), "{created}");
    let sent = Instant::now();
    let got = next_review(&mut on_a, WITHIN).await;
    assert_eq!(got["id"], id);
    assert_eq!(got["body"], "live!");
    assert!(sent.elapsed() < WITHIN);
    assert!(matches!(
        next(&mut elsewhere, Duration::from_millis(300)).await,
        Got::Nothing
    ));
}
