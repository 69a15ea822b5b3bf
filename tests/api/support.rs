//! Test harness: one database per test cloned from a migrated template, a
//! unique Redis key prefix per test, the real router, and small fixtures.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use http_body_util::BodyExt;
use nexora::{app::App, config::Config, db::Db};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tower::ServiceExt;

/// Where the tests find Postgres (trust auth, as on the dev machines and CI).
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
/// Where the tests find Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// A fixed test secret (32 bytes).
pub const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

async fn admin(sql: &str) {
    let url = format!("{PG_BASE}/postgres");
    let mut conn = match tokio::time::timeout(
        Duration::from_secs(5),
        AsyncPgConnection::establish(&url),
    )
    .await
    {
        Ok(Ok(c)) => c,
        other => panic!(
            "cannot reach Postgres at {url} ({}).\nStart it: `pg_ctlcluster --skip-systemctl-redirect 15 main start` \
             (or `docker compose up -d postgres`); the tests need a trust-auth `postgres` user.",
            match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            }
        ),
    };
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("admin SQL failed: {sql}: {e}"));
}

fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).expect("read migration"));
    }
    hex::encode(h.finalize())[..12].to_owned()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("migrations dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

/// Creates (once per migrations version, safely across processes) the template database.
async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("nexora_tmpl_{}", migrations_hash());
            let url = format!("{PG_BASE}/postgres");
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap_or_else(|e| {
                panic!("cannot reach Postgres at {url}: {e}. Start it: `pg_ctlcluster --skip-systemctl-redirect 15 main start`")
            });
            conn.batch_execute("SELECT pg_advisory_lock(884213)").await.expect("lock");
            let exists = count(
                &mut conn,
                &format!("SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"),
            )
            .await
                > 0;
            if !exists {
                let building = format!("{name}_build");
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await.expect("drop");
                conn.batch_execute(&format!("CREATE DATABASE {building}")).await.expect("create template");
                nexora::db::migrate(&format!("{PG_BASE}/{building}"), Duration::from_secs(10))
                    .await
                    .expect("migrate template");
                // the migration connection is closed by now; rename makes it visible atomically
                conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}")).await.expect("rename");
            }
            conn.batch_execute("SELECT pg_advisory_unlock(884213)").await.expect("unlock");
            name
        })
        .await
        .clone()
}

/// A database of one's own, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Whether dropping this handle drops the database (false for the handle
    /// a second instance holds on a shared database).
    owned: bool,
}

impl TestDb {
    pub async fn new() -> Self {
        let tmpl = template().await;
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        admin(&format!("CREATE DATABASE {name} TEMPLATE {tmpl}")).await;
        Self {
            url: format!("{PG_BASE}/{name}"),
            name,
            owned: true,
        }
    }

    /// A handle on the same database that does not drop it.
    pub fn shared(&self) -> Self {
        Self {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        // Drop runs outside async; a short-lived thread with its own runtime does the SQL.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(admin(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            }
        })
        .join();
    }
}

/// A unique Redis key prefix for one test.
pub fn redis_prefix() -> String {
    format!(
        "test:{}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One server instance over a test database.
pub struct TestApp {
    pub app: App,
    pub router: Router,
    pub db: TestDb,
}

/// A response: status, headers and JSON body.
pub struct Res {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Res {
    /// `data` of the response.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// The `extensions.code` of the first error.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }
    /// The `extensions.field` of the first error (which input was wrong).
    pub fn field(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["field"].as_str()
    }
    /// Panics with the body when there are errors.
    pub fn ok(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        self.data()
    }
}

/// Defaults plus test Redis with a fresh key prefix and a small pool.
pub fn test_config() -> Config {
    Config {
        redis_url: REDIS_URL.into(),
        redis_key_prefix: redis_prefix(),
        db_pool_size: 8,
        ..Config::default()
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(mut config: Config) -> Self {
        let db = TestDb::new().await;
        config.database_url = db.url.clone();
        Self::on(db, config).await
    }

    /// An instance over an existing database (a second instance shares it).
    pub async fn on(db: TestDb, config: Config) -> Self {
        let pool = Db::connect(&config).await.expect("pool");
        let cache = nexora::cache::Cache::connect(&config).await;
        let app = App::build(config, pool, cache, SECRET);
        let router = nexora::http::router(app.clone());
        Self { app, router, db }
    }

    /// Another instance over the same database, Redis and key prefix (as two
    /// servers behind a load balancer); the database stays this one's.
    pub async fn second_instance(&self) -> TestApp {
        TestApp::on(self.db.shared(), self.app.services.config.as_ref().clone()).await
    }

    /// Waits until this instance holds the lease of pushed invalidations
    /// (it joins in the background after connecting to Redis).
    pub async fn until_leased(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.app.services.cache.lease_held() {
            assert!(
                std::time::Instant::now() < deadline,
                "the instance did not obtain its cache lease within 5 s; is Redis running? (`redis-server --daemonize yes`)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Statements sent through this instance's pool so far.
    pub fn statements(&self) -> u64 {
        self.app.services.db.statements()
    }

    /// A signed token for a user id.
    pub fn token(&self, user_id: i64) -> String {
        self.app.services.auth.issue(user_id).expect("token")
    }

    /// Sends any request through the router.
    pub async fn send(&self, req: Request<Body>) -> Res {
        // on a worker task, as axum serves connections (block_on wakes yields eagerly)
        let router = self.router.clone();
        let res = tokio::spawn(async move { router.oneshot(req).await })
            .await
            .expect("request task")
            .expect("router");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Res {
            status,
            headers,
            body,
        }
    }

    /// POSTs a GraphQL request, signed in as `token` when given.
    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Res {
        let mut req = Request::post("/graphql").header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    /// POSTs an anonymous GraphQL request.
    pub async fn gql(&self, query: &str, variables: Value) -> Res {
        self.gql_as(None, query, variables).await
    }

    /// A direct database connection for fixtures and checks.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db.url)
            .await
            .expect("connect test db")
    }
}

impl Drop for TestApp {
    /// A test's Redis keys go with it (its prefix is its own): the epoch and
    /// generation counters have no expiry and would pile up run after run.
    fn drop(&mut self) {
        // first: a heartbeat finding itself no member once the keys are
        // gone would join again and leave the member set behind
        self.app.services.cache.stop_lease();
        let config = &self.app.services.config;
        if !self.db.owned || config.redis_url != REDIS_URL {
            return;
        }
        let pattern = format!("{}*", config.redis_key_prefix);
        let server = ["-u", REDIS_URL];
        let Some(listed) = redis_cli(&server, &["--scan", "--pattern", &pattern]) else {
            return;
        };
        let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
        for chunk in keys.chunks(500) {
            let _ = redis_cli(&server, &[&["del"], chunk].concat());
        }
    }
}

/// Global id as the API shows it.
pub fn gid(ty: &str, id: i64) -> String {
    nexora::graphql::ids::to_global(ty, id).0
}

/// Small fixture builders writing straight to the database.
/// Runs `sql`, a query returning one row with one bigint column `n`.
pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query(sql)
        .get_result(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.n
}

pub mod fx {
    use diesel_async::AsyncPgConnection;
    use nexora::db::{self, reviews::NewReview, titles::NewTitle, users::NewUser};

    pub async fn user(c: &mut AsyncPgConnection, name: &str) -> i64 {
        db::users::insert(
            c,
            &NewUser {
                username: name,
                display_name: name,
                bio: None,
                password_hash: "x",
                role: "MEMBER",
            },
        )
        .await
        .expect("user")
        .id
    }

    /// A user promoted to ADMIN (as `nexora admin promote` does).
    pub async fn admin(c: &mut AsyncPgConnection, name: &str) -> i64 {
        let id = user(c, name).await;
        db::users::set_role(c, name, "ADMIN")
            .await
            .expect("promote")
            .expect("user exists");
        id
    }

    pub async fn title(c: &mut AsyncPgConnection, name: &str) -> i64 {
        let genres = vec!["drama".to_owned()];
        db::titles::insert(
            c,
            &NewTitle {
                kind: "MOVIE",
                name,
                release_year: Some(2020),
                synopsis: None,
                genres: &genres,
            },
        )
        .await
        .expect("title")
        .id
    }

    pub async fn review(c: &mut AsyncPgConnection, author: i64, title: i64, rating: i16) -> i64 {
        let body = format!("review by {author} of {title}");
        db::reviews::insert(
            c,
            &NewReview {
                title_id: title,
                author_id: author,
                rating,
                body: &body,
                contains_spoilers: false,
            },
        )
        .await
        .expect("review")
        .id
    }

    pub async fn like(c: &mut AsyncPgConnection, user: i64, review: i64) {
        db::likes::like(c, user, review).await.expect("like");
    }

    pub async fn comment(c: &mut AsyncPgConnection, author: i64, review: i64, body: &str) -> i64 {
        db::comments::insert(c, review, author, body)
            .await
            .expect("comment")
            .id
    }

    pub async fn follow(c: &mut AsyncPgConnection, follower: i64, followee: i64) {
        db::follows::follow(c, follower, followee)
            .await
            .expect("follow");
    }
}

/// A Redis server of one's own on a free port (for tests that pause, kill
/// or restart Redis without disturbing the other tests). Killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let me = Self {
            port,
            child: Self::spawn(port),
        };
        me.until_listening();
        me
    }

    /// Kills the server and starts an empty one on the same port (a
    /// restart without persistence: every key is lost).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port);
        self.until_listening();
    }

    fn spawn(port: u16) -> std::process::Child {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); install it: `apt-get install redis-server`"
                )
            })
    }

    fn until_listening(&self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a redis-cli command against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(&["-p", &self.port.to_string()], args).expect("redis-cli")
    }
}

/// Runs a redis-cli command against the shared test Redis.
pub fn shared_cli(args: &[&str]) -> String {
    redis_cli(&["-u", REDIS_URL], args).expect("redis-cli")
}

/// redis-cli `args` against `server` (`-u URL` or `-p PORT`): its output,
/// trimmed; `None` when redis-cli could not run.
fn redis_cli(server: &[&str], args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("redis-cli")
        .args(server)
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of Postgres that a test can cut and restore, to make
/// the database unreachable for one instance only.
pub struct PgProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl PgProxy {
    pub async fn start() -> Self {
        use std::sync::{Arc, atomic::AtomicBool};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::Relaxed) {
                    drop(client); // refused while cut
                    continue;
                }
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
        }
    }

    /// The URL of `db` through this proxy.
    pub fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}
