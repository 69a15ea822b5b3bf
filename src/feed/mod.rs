//! The change feed. Postgres announces every committed change of a content
//! table (triggers → `NOTIFY nexora_changes`, see the `change_feed`
//! migration); each instance LISTENs on a dedicated connection
//! ([`spawn`]), invalidates the cache tags each change affects, and publishes
//! new reviews to `reviewAdded` subscribers. Writes made outside the API (psql,
//! batch jobs, other services) thus reach every instance's cache and
//! subscribers too.
//!
//! Notifications are delivered at most once: nothing arrives while the
//! listener is disconnected, so every (re)connect invalidates the whole cache.
//! Subscribers miss reviews created during such a gap (usually well under a
//! second); clients that must not miss any refetch after reconnecting.
//!
//! Slow subscribers never slow the feed: publishing into the broadcast channel
//! never waits, and a subscriber that falls more than [`SUBSCRIBER_BUFFER`]
//! events behind is told so and its subscription ends.

pub mod change;
mod listener;

use std::{
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use futures::Stream;
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::app::Services;

/// Events a subscriber may fall behind by before its subscription is ended.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// The Postgres channel the triggers notify.
pub const CHANNEL: &str = "nexora_changes";

/// `application_name` of the listener connection (find it in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "nexora-feed";

/// A review was created (through any instance, or directly in SQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewAdded {
    /// The new review.
    pub review_id: i64,
    /// Its title.
    pub title_id: i64,
}

/// A subscriber fell behind and missed events; its stream ends after this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged {
    /// How many events it missed.
    pub missed: u64,
}

/// The listener's state, for readiness and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Listening right now.
    pub connected: bool,
    /// Successful connects so far; each one invalidated the whole cache
    /// before it was counted.
    pub connects: u64,
}

/// The per-instance hub between the listener and the subscribers.
pub struct Feed {
    reviews: broadcast::Sender<ReviewAdded>,
    status: watch::Sender<Status>,
    applied: AtomicU64,
}

impl Default for Feed {
    fn default() -> Self {
        Self::with_buffer(SUBSCRIBER_BUFFER)
    }
}

impl Feed {
    /// A hub whose subscribers may fall `buffer` events behind.
    pub fn with_buffer(buffer: usize) -> Self {
        Self {
            reviews: broadcast::Sender::new(buffer.max(1)),
            status: watch::Sender::new(Status::default()),
            applied: AtomicU64::new(0),
        }
    }

    /// New reviews from now on, of one title or of all. The stream ends after
    /// yielding `Err(Lagged)` (the subscriber was too slow) or when the
    /// instance shuts down.
    pub fn reviews_added(
        &self,
        title_id: Option<i64>,
    ) -> impl Stream<Item = Result<ReviewAdded, Lagged>> + Send + use<> {
        let rx = self.reviews.subscribe();
        futures::stream::unfold(Some(rx), move |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) if title_id.is_none_or(|t| t == event.title_id) => {
                        return Some((Ok(event), Some(rx)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Some((Err(Lagged { missed }), None));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Hands a new review to every subscriber; never waits.
    pub fn publish(&self, event: ReviewAdded) {
        // an error only means nobody is subscribed
        let _ = self.reviews.send(event);
    }

    /// Subscribers right now (one per open `reviewAdded` subscription).
    pub fn subscribers(&self) -> usize {
        self.reviews.receiver_count()
    }

    /// Watches the listener's state.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Counts applied notifications (for `/metrics`).
    fn count_applied(&self, n: usize) {
        self.applied.fetch_add(n as u64, Relaxed);
    }

    /// Appends the feed's metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let status = *self.status.borrow();
        let lines: [(&str, &str, &str, u64); 4] = [
            (
                "nexora_feed_connected",
                "gauge",
                "1 while the change-feed listener is listening",
                u64::from(status.connected),
            ),
            (
                "nexora_feed_connects_total",
                "counter",
                "Change-feed (re)connects, each a whole-cache invalidation",
                status.connects,
            ),
            (
                "nexora_feed_notifications_total",
                "counter",
                "Change notifications applied",
                self.applied.load(Relaxed),
            ),
            (
                "nexora_subscriptions",
                "gauge",
                "Open reviewAdded subscriptions",
                self.subscribers() as u64,
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }

    fn set_connected(&self, connected: bool) {
        self.status.send_modify(|s| {
            s.connected = connected;
            if connected {
                s.connects += 1;
            }
        });
    }
}

/// The running listener of one instance. Dropping it stops the listener too,
/// without waiting.
pub struct FeedTask {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FeedTask {
    /// Stops the listener and waits (briefly) for its connection to close.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
        {
            tracing::warn!("change feed did not stop within 2 s");
        }
    }
}

impl Drop for FeedTask {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the listener of an instance: it connects, LISTENs, and keeps
/// reconnecting (with backoff) until stopped.
pub fn spawn(services: Arc<Services>) -> FeedTask {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(listener::run(services, cancel.clone()));
    FeedTask {
        cancel,
        task: Some(task),
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn added(review_id: i64, title_id: i64) -> ReviewAdded {
        ReviewAdded {
            review_id,
            title_id,
        }
    }

    #[tokio::test]
    async fn subscribers_see_their_title_only() {
        let feed = Feed::default();
        let mut all = Box::pin(feed.reviews_added(None));
        let mut two = Box::pin(feed.reviews_added(Some(2)));
        feed.publish(added(1, 1));
        feed.publish(added(2, 2));
        assert_eq!(all.next().await, Some(Ok(added(1, 1))));
        assert_eq!(all.next().await, Some(Ok(added(2, 2))));
        assert_eq!(two.next().await, Some(Ok(added(2, 2))));
        drop(feed);
        assert_eq!(two.next().await, None, "ends when the instance goes away");
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_dropped_without_slowing_others() {
        let feed = Feed::with_buffer(4);
        let mut slow = Box::pin(feed.reviews_added(None));
        let mut fast = Box::pin(feed.reviews_added(None));
        for i in 1..=10 {
            // publishing never waits for the slow one
            feed.publish(added(i, 1));
            assert_eq!(fast.next().await, Some(Ok(added(i, 1))));
        }
        assert_eq!(slow.next().await, Some(Err(Lagged { missed: 6 })));
        assert_eq!(slow.next().await, None);
        assert_eq!(feed.subscribers(), 1);
    }
}
