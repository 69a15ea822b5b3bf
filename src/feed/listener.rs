//! The LISTEN connection: connect, listen, apply notifications in batches,
//! and reconnect with bounded backoff when the connection is lost.
//!
//! A dedicated tokio-postgres connection, not one from the pool: LISTEN is
//! session state, and a pooled connection would be handed to requests. Its
//! messages are read on a task of their own (the `driver`) so the connection
//! keeps being read while the health check or LISTEN itself waits for an
//! answer.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::poll_fn;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_postgres::{
    AsyncMessage, Client, Connection, NoTls, Notification, Socket, tls::NoTlsStream,
};
use tokio_util::sync::CancellationToken;

use super::{APPLICATION_NAME, CHANNEL, change::Change, change::Effect};
use crate::{app::Services, config::Config};

/// First wait after a failed attempt; it doubles up to [`BACKOFF_CAP`].
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How often the connection is checked with `SELECT 1` (catches a Postgres
/// that vanished without closing the socket).
const HEALTH_EVERY: Duration = Duration::from_secs(10);
/// How long the health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Notifications read ahead of the one being applied.
const READ_AHEAD: usize = 4096;
/// Most notifications applied with one cache call.
const BATCH: usize = 512;

/// Why a listening session ended.
enum Ended {
    Stopped,
    Lost(String),
}

/// Runs until `cancel`: connect, listen, apply; on loss, wait and reconnect.
pub(super) async fn run(services: Arc<Services>, cancel: CancellationToken) {
    let mut delay = BACKOFF_START;
    let mut failures = 0u32;
    loop {
        let attempt = tokio::select! {
            () = cancel.cancelled() => break,
            r = connect(&services.config) => r,
        };
        match attempt {
            Err(error) => {
                failures += 1;
                tracing::warn!(
                    attempt = failures,
                    retry_in_ms = delay.as_millis() as u64,
                    %error,
                    "change feed cannot listen; the cache is invalidated in full once it can"
                );
            }
            Ok(session) => {
                failures = 0;
                let reconnect = services.feed.status().borrow().connects > 0;
                if reconnect {
                    tracing::info!(
                        "change feed reconnected; invalidating the whole cache (changes made while disconnected were not announced)"
                    );
                } else {
                    tracing::info!(channel = CHANNEL, "change feed listening");
                }
                // everything committed before LISTEN took effect may be cached
                // stale; everything after it is announced to this session
                services.cache.invalidate_all().await;
                services.feed.set_connected(true);
                let up_since = Instant::now();
                let ended = session.pump(&services, &cancel).await;
                services.feed.set_connected(false);
                match ended {
                    Ended::Stopped => break,
                    Ended::Lost(error) => {
                        tracing::warn!(%error, "change feed connection lost; reconnecting");
                    }
                }
                if up_since.elapsed() >= STABLE_AFTER {
                    delay = BACKOFF_START;
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(BACKOFF_CAP);
    }
    tracing::info!("change feed stopped");
}

/// A connection that is listening.
struct Session {
    client: Client,
    notifications: mpsc::Receiver<Notification>,
    driver: Driver,
}

/// The task reading the connection; aborted when dropped, which closes it.
struct Driver(JoinHandle<Option<tokio_postgres::Error>>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects and LISTENs, all within the configured connect timeout.
async fn connect(config: &Config) -> anyhow::Result<Session> {
    let mut pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
    pg.application_name(APPLICATION_NAME)
        .connect_timeout(config.db_timeout)
        // the socket is idle between notifications; keepalives notice a
        // peer that vanished
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    let attempt = async {
        let (client, connection) = pg.connect(NoTls).await?;
        let (tx, notifications) = mpsc::channel(READ_AHEAD);
        let driver = Driver(tokio::spawn(drive(connection, tx)));
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok::<_, tokio_postgres::Error>(Session {
            client,
            notifications,
            driver,
        })
    };
    match tokio::time::timeout(config.db_timeout, attempt).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(anyhow::anyhow!(describe(&e))),
        Err(_) => anyhow::bail!("no answer within {:?}", config.db_timeout),
    }
}

/// Reads the connection, forwarding notifications; returns the error that
/// ended it (or `None` when it closed cleanly).
async fn drive(
    mut connection: Connection<Socket, NoTlsStream>,
    tx: mpsc::Sender<Notification>,
) -> Option<tokio_postgres::Error> {
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if tx.send(n).await.is_err() {
                    return None;
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(notice = %notice.message(), "change feed: Postgres notice");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Some(e),
            None => return None,
        }
    }
}

impl Session {
    /// Applies notifications until the connection is lost or `cancel`.
    async fn pump(mut self, services: &Services, cancel: &CancellationToken) -> Ended {
        let health = health_checks(&self.client);
        tokio::pin!(health);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ended::Stopped,
                error = &mut health => return Ended::Lost(error),
                received = self.notifications.recv() => {
                    let Some(first) = received else {
                        // the driver ended, after everything it read was applied
                        let error = match (&mut self.driver.0).await {
                            Ok(Some(e)) => describe(&e),
                            Ok(None) => "the connection closed".to_owned(),
                            Err(e) => format!("the connection task failed: {e}"),
                        };
                        return Ended::Lost(error);
                    };
                    batch.push(first);
                    while batch.len() < BATCH {
                        match self.notifications.try_recv() {
                            Ok(n) => batch.push(n),
                            Err(_) => break,
                        }
                    }
                    apply(services, &mut batch).await;
                }
            }
        }
    }
}

/// Never returns while the connection answers; returns why it stopped.
async fn health_checks(client: &Client) -> String {
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        match tokio::time::timeout(HEALTH_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("health check failed: {}", describe(&e)),
            Err(_) => return format!("health check got no answer within {HEALTH_TIMEOUT:?}"),
        }
    }
}

/// The error with its causes (tokio-postgres says only "db error" on top).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Invalidates what a batch of changes affects (one cache call), then hands
/// new reviews to subscribers, so a subscriber that reacts by querying reads
/// fresh data.
async fn apply(services: &Services, batch: &mut Vec<Notification>) {
    let mut tags = BTreeSet::new();
    let mut everything = false;
    let mut added = Vec::new();
    let count = batch.len();
    for n in batch.drain(..) {
        if n.channel() != CHANNEL {
            continue;
        }
        let Some(change) = Change::parse(n.payload()) else {
            tracing::warn!(
                payload = n.payload(),
                "change feed: unreadable notification; invalidating everything"
            );
            everything = true;
            continue;
        };
        match change.effect() {
            Effect::Tags(t) => tags.extend(t),
            Effect::Everything => everything = true,
        }
        added.extend(change.review_added());
    }
    if everything {
        services.cache.invalidate_all().await;
    } else if !tags.is_empty() {
        let tags: Vec<String> = tags.into_iter().collect();
        services.cache.invalidate(&tags).await;
    }
    tracing::debug!(
        changes = count,
        cache.everything = everything,
        reviews_added = added.len(),
        "change feed: applied"
    );
    services.feed.count_applied(count);
    for event in added {
        services.feed.publish(event);
    }
}
