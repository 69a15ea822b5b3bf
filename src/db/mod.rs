//! Postgres access: the pool, migrations, and one module per entity holding
//! its rows and every SQL query that touches it.
//!
//! Every statement sent through a pooled connection is counted (diesel's
//! instrumentation), per [`Db`] instance: tests assert N+1 bounds with it and
//! `/metrics` exports it.

pub mod comments;
pub mod cursor;
pub mod follows;
pub mod likes;
pub mod page;
pub mod reviews;
pub mod row;
pub mod schema;
pub mod titles;
pub mod users;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use diesel::connection::InstrumentationEvent;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, SimpleAsyncConnection,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
        bb8::{self, PooledConnection},
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use crate::config::Config;

/// The migrations under `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Error from checking out a pooled connection (timeout or connect failure).
pub type PoolError = bb8::RunError;
/// A checked-out connection.
pub type Conn<'a> = PooledConnection<'a, AsyncPgConnection>;

/// The connection pool and its statement counter.
#[derive(Clone)]
pub struct Db {
    pool: bb8::Pool<AsyncPgConnection>,
    statements: Arc<AtomicU64>,
    /// After a failed checkout, further checkouts fail at once until this
    /// instant (ms since `started`): a request touching the database several
    /// times in sequence fails fast instead of waiting out each timeout.
    down_until_ms: Arc<AtomicU64>,
    started: std::time::Instant,
}

/// How long checkouts fail fast after one failed.
const DOWN_LATCH: Duration = Duration::from_millis(1000);

impl Db {
    /// Builds a lazy pool (no connection is made until the first query).
    pub async fn connect(cfg: &Config) -> anyhow::Result<Self> {
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let connect_timeout = cfg.db_timeout;
        let statement_timeout = cfg.db_statement_timeout.as_millis();
        let mut manager_config = ManagerConfig::default();
        // Fast: no `SELECT 1` per checkout (it would cost a round trip per
        // request and pollute statement counts); a dead connection is
        // discarded by bb8 once a query on it fails.
        manager_config.recycling_method = RecyclingMethod::Fast;
        manager_config.custom_setup = Box::new(move |url| {
            let counter = counter.clone();
            let url = url.to_owned();
            async move {
                let mut conn =
                    tokio::time::timeout(connect_timeout, AsyncPgConnection::establish(&url))
                        .await
                        .map_err(|_| {
                            diesel::ConnectionError::BadConnection("connect timed out".into())
                        })??;
                conn.batch_execute(&format!("SET statement_timeout = {statement_timeout}"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                    if let InstrumentationEvent::StartQuery { .. } = event {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
                Ok(conn)
            }
            .boxed()
        });
        let manager =
            AsyncDieselConnectionManager::new_with_config(&cfg.database_url, manager_config);
        let pool = bb8::Pool::builder()
            .max_size(cfg.db_pool_size)
            .connection_timeout(cfg.db_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .build(manager)
            .await
            .context("building the Postgres pool")?;
        Ok(Self {
            pool,
            statements,
            down_until_ms: Arc::new(AtomicU64::new(0)),
            started: std::time::Instant::now(),
        })
    }

    /// Checks out a connection, waiting at most the configured timeout (no
    /// wait at all for a second after a checkout failed).
    pub async fn conn(&self) -> Result<Conn<'_>, PoolError> {
        let now = self.started.elapsed().as_millis() as u64;
        if now < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(bb8::RunError::TimedOut);
        }
        let res = self.pool.get().await;
        // no live connection at all means Postgres is unreachable (an
        // exhausted pool under load keeps its connections and is not latched)
        if res.is_err() && self.pool.state().connections == 0 {
            let until = self.started.elapsed() + DOWN_LATCH;
            self.down_until_ms
                .store(until.as_millis() as u64, Ordering::Relaxed);
        }
        res
    }

    /// Statements sent through this pool since it was built.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Whether Postgres answers right now (for `/readyz`).
    pub async fn ping(&self) -> bool {
        use diesel_async::RunQueryDsl;
        let Ok(mut conn) = self.conn().await else {
            return false;
        };
        diesel::sql_query("SELECT 1")
            .execute(&mut *conn)
            .await
            .is_ok()
    }
}

/// Splits `postgres://host/db?opts` into the URL of the `postgres`
/// maintenance database and the database name.
fn maintenance_url(url: &str) -> anyhow::Result<(String, String)> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let slash = base[scheme_end..]
        .rfind('/')
        .map(|i| i + scheme_end)
        .context("DATABASE_URL names no database (expected postgres://host:port/name)")?;
    let name = base[slash + 1..].to_owned();
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "DATABASE_URL database name {name:?} must be letters, digits and _"
    );
    let mut admin = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        admin.push('?');
        admin.push_str(q);
    }
    Ok((admin, name))
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database_if_missing(url: &str, timeout: Duration) -> anyhow::Result<()> {
    use diesel::sql_types::{Bool, Text};
    use diesel_async::RunQueryDsl;
    let (admin_url, name) = maintenance_url(url)?;
    let mut conn = connect_once(&admin_url, timeout).await?;
    let exists: bool = diesel::select(
        diesel::dsl::sql::<Bool>("EXISTS (SELECT 1 FROM pg_database WHERE datname = ")
            .bind::<Text, _>(&name)
            .sql(")"),
    )
    .get_result(&mut conn)
    .await
    .context("checking whether the database exists")?;
    if !exists {
        match conn
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // another instance created it at the same moment
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("already exists") => {}
            Err(e) => return Err(e).context(format!("creating database {name}")),
        }
    }
    Ok(())
}

/// One connection with a timeout and a message that says how to start Postgres.
pub async fn connect_once(url: &str, timeout: Duration) -> anyhow::Result<AsyncPgConnection> {
    let redacted = redact(url);
    match tokio::time::timeout(timeout, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => anyhow::bail!(
            "cannot connect to Postgres at {redacted}: {e}. Start one (see README: `docker compose up -d postgres`, \
             or `pg_ctlcluster 15 main start`) or set DATABASE_URL"
        ),
        Err(_) => anyhow::bail!(
            "cannot connect to Postgres at {redacted}: no answer within {timeout:?}. Start one (see README) or set DATABASE_URL"
        ),
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Applies pending migrations, serialized across instances by an advisory lock.
pub async fn migrate(url: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let mut conn = connect_once(url, timeout).await?;
    // held by this session until the connection closes with the harness
    conn.batch_execute("SELECT pg_advisory_lock(7243090125)")
        .await?;
    let applied = tokio::task::spawn_blocking(move || {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    })
    .await??;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_url_swaps_the_database() {
        let (admin, name) =
            maintenance_url("postgres://u:p@h:5432/app?sslmode=disable").expect("valid");
        assert_eq!(admin, "postgres://u:p@h:5432/postgres?sslmode=disable");
        assert_eq!(name, "app");
        assert!(maintenance_url("postgres://h:5432/").is_err());
    }

    #[test]
    fn redact_hides_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
