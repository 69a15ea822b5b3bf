//! Pushed invalidations under a lease: near-cache hits with no Redis round
//! trip, still read-your-writes across instances.
//!
//! Without a lease, a near-cache hit waits for a read of Redis's generation
//! counter sent after the request arrived (see `near.rs`): correct, but a
//! suspend and a wake-up per hit. With one, an instance keeps the counter
//! itself, and Redis tells it of every bump:
//!
//! - Every script that bumps the generation also `PUBLISH`es the new value
//!   on `<prefix>cache:inv` and returns the members (instances holding or
//!   seeking a lease, the sorted set `<prefix>cache:members`).
//! - A member applies each value it receives (its counter only grows), then
//!   acknowledges it on the writer's channel `<prefix>cache:ack:<id>`.
//! - A member holds a lease while its renewals succeed: each renewal is one
//!   script that checks it is still a member and returns the counter, which
//!   the member applies *before* extending its lease to `sent + length −
//!   margin` (`sent` taken before the renewal left). It serves near copies
//!   at its own counter only while the lease runs.
//! - A writer applies its value locally, then waits until every other member
//!   acknowledged it, or until `length` has passed since its script
//!   answered. Members that did not acknowledge in time are marked removed
//!   in the set with the time their lease can run until: their renewals
//!   fail from then on (they join again), and every writer keeps waiting
//!   for them until that time, so no writer forgets a lease that may run.
//!
//! Why a write is never followed by a stale near hit: take a member that
//! serves a near hit at time `T` after the writer answered (so `T ≥ c +
//! length` if it did not acknowledge, `c` the end of the writer's script).
//! Its lease at `T` comes from a renewal sent at `t0 > T − length + margin >
//! c`, so Redis ran that renewal after the writer's script, and the counter
//! it returned, already applied, covers the write. A member that
//! acknowledged had applied it before acknowledging. Joining is "add me,
//! read the counter" in one script, after a ping through the subscription
//! proved messages arrive. Nothing depends on clocks agreeing across
//! machines, only on each one's monotonic clock running at about the same
//! rate (the margin).
//!
//! When the writer's script fails (Redis down or paused), the write is
//! lost to Redis as before (the instance is marked dirty and bumps the epoch
//! before serving hits again), and the writer also waits until `length` has
//! passed since it sent the script (or since Redis began failing, when the
//! breaker skipped the call): a member whose renewals stopped reaching Redis
//! by then no longer serves near copies. A Redis that takes a renewal sent
//! well after the write's script before the script itself (only when
//! packets are held up longer than the margin) is the same case as an
//! invalidation that never arrived: the change feed carries the write to the
//! other instances, as it did before leases.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fred::{
    clients::SubscriberClient,
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    types::Message,
};
use tokio::sync::Notify;

use super::redis::RedisBackend;
use crate::metrics::Metrics;

/// The default lease (`CACHE_LEASE_MS`).
pub const DEFAULT_LEASE: Duration = Duration::from_millis(300);
/// How long a writer waits for acknowledgements before it removes the
/// silent members and waits out their leases.
const ACK_WAIT: Duration = Duration::from_millis(150);
/// How long a ping through the subscription may take before joining.
const PING_WAIT: Duration = Duration::from_millis(250);

/// How long the member set outlives its last join or renewal: ten times
/// the longest lease `CACHE_LEASE_MS` allows. Without an expiry, the set of
/// instances that all stopped without leaving (a crash, a killed test)
/// would stay in Redis forever.
pub const MEMBERS_TTL: Duration = Duration::from_secs(600);
const _: () = assert!(MEMBERS_TTL.as_millis() >= 10 * crate::config::MAX_LEASE_MS as u128);

/// The set of instances holding (or seeking) a lease.
pub fn members_key(prefix: &str) -> String {
    format!("{prefix}cache:members")
}

/// Where generation bumps are published.
pub fn inv_channel(prefix: &str) -> String {
    format!("{prefix}cache:inv")
}

/// Where acknowledgements (and the member's own pings) reach member `id`.
pub fn ack_channel(prefix: &str, id: &str) -> String {
    format!("{prefix}cache:ack:{id}")
}

/// What a generation bump returned: the new value and the members to wait for.
#[derive(Debug, Default)]
pub struct Published {
    /// The generation after the bump.
    pub generation: u64,
    /// Member ids (hex), this instance included if it is one, each with how
    /// long its lease may still run if it was removed (zero for a member).
    pub members: Vec<(String, Duration)>,
}

/// A member a writer waits for.
#[derive(Debug, PartialEq)]
struct Owed {
    member: u64,
    /// When its lease can have run out at the latest.
    until: Instant,
    /// Removed already (its lease runs out by `until`).
    removed: bool,
}

/// This instance's view of the generation counter, and its lease.
pub struct Lease {
    me: u64,
    id: String,
    prefix: String,
    /// Where bumps are published ([`inv_channel`]).
    inv: String,
    /// Where acknowledgements and pings reach this member ([`ack_channel`]).
    inbox: String,
    length: Duration,
    margin: Duration,
    base: Instant,
    /// Highest generation value applied.
    generation: AtomicU64,
    /// End of the lease in µs since `base`; 0 when none is held.
    valid_until_us: AtomicU64,
    /// Highest generation each other member acknowledged to us.
    acks: Mutex<HashMap<u64, u64, foldhash::fast::RandomState>>,
    acked: Notify,
    /// Highest ping number that came back through the subscription.
    pings: AtomicU64,
    pinged: Notify,
    /// Whether this instance seeks a lease at all (`CACHE_LEASE_MS` > 0).
    enabled: bool,
    /// Left for good (shutting down).
    stopped: AtomicBool,
}

impl Lease {
    /// The state of member `me` (hex id `format!("{me:x}")`).
    pub fn new(me: u64, prefix: &str, length: Duration) -> Self {
        let enabled = !length.is_zero();
        let length = if enabled { length } else { DEFAULT_LEASE };
        let id = format!("{me:x}");
        Self {
            me,
            inv: inv_channel(prefix),
            inbox: ack_channel(prefix, &id),
            id,
            prefix: prefix.to_owned(),
            length,
            margin: length / 6,
            base: Instant::now(),
            generation: AtomicU64::new(0),
            valid_until_us: AtomicU64::new(0),
            acks: Mutex::new(HashMap::default()),
            acked: Notify::new(),
            pings: AtomicU64::new(0),
            pinged: Notify::new(),
            enabled,
            stopped: AtomicBool::new(false),
        }
    }

    /// This member's id as stored in the member set.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How long a writer waits out a member that does not answer.
    pub fn length(&self) -> Duration {
        self.length
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// The generation to serve near copies at, while the lease runs.
    pub fn generation_now(&self) -> Option<u64> {
        let until = self.valid_until_us.load(Ordering::Acquire);
        // after leaving, a renewal that was in flight may still extend the
        // lease, but writers no longer wait for this instance
        if until == 0
            || self.stopped.load(Ordering::Acquire)
            || self.micros(Instant::now()) >= until
        {
            return None;
        }
        Some(self.generation.load(Ordering::Acquire))
    }

    /// Whether a lease is held right now.
    pub fn held(&self) -> bool {
        self.generation_now().is_some()
    }

    /// Takes a generation value read from Redis (or pushed by it) into account.
    pub fn apply(&self, generation: u64) {
        self.generation.fetch_max(generation, Ordering::AcqRel);
    }

    /// Extends the lease after a renewal sent at `sent` succeeded (its
    /// generation already applied).
    fn extend(&self, sent: Instant) {
        let until = self.micros(sent + self.length - self.margin).max(1);
        self.valid_until_us.fetch_max(until, Ordering::AcqRel);
    }

    /// Gives the lease up at once (removed from the set, or messages lost).
    fn drop_lease(&self) {
        self.valid_until_us.store(0, Ordering::Release);
    }

    /// Gives the lease up for good without telling Redis: no renewal or
    /// join is sent from now on (one already in flight may still land).
    /// Writers keep waiting for this member until its lease has run out.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.drop_lease();
    }

    /// Gives the lease up for good and leaves the members, so writers stop
    /// waiting for this instance (at shutdown, once no request is served).
    pub async fn leave(&self, r: &RedisBackend) {
        self.stop();
        if let Err(e) = r.lease_leave(&self.prefix, self.id.clone()).await {
            tracing::debug!(error = %e, "could not leave the cache members");
        }
    }

    fn is_joined(&self) -> bool {
        self.valid_until_us.load(Ordering::Acquire) != 0
    }

    /// After this instance bumped the generation (its script answered at
    /// `answered`): applies the value here, then waits until every other
    /// member applied it or can no longer serve near copies. Members that do
    /// not acknowledge within [`ACK_WAIT`] are removed (their renewals fail
    /// from then on). Returns how many were removed.
    pub async fn settle(
        &self,
        r: &RedisBackend,
        published: Published,
        answered: Instant,
        metrics: &Metrics,
    ) -> usize {
        self.apply(published.generation);
        let mut owed: Vec<Owed> = published
            .members
            .iter()
            .filter_map(|(id, leaving)| {
                let member = u64::from_str_radix(id, 16).ok()?;
                let until = if leaving.is_zero() {
                    answered + self.length
                } else {
                    answered + (*leaving).min(self.length)
                };
                Some(Owed {
                    member,
                    until,
                    removed: !leaving.is_zero(),
                })
            })
            .filter(|o| o.member != self.me)
            .collect();
        if owed.is_empty() {
            return 0;
        }
        let g = published.generation;
        self.wait_acks(&mut owed, g, answered + ACK_WAIT).await;
        let silent: Vec<String> = owed
            .iter()
            .filter(|o| !o.removed)
            .map(|o| format!("{:x}", o.member))
            .collect();
        if !silent.is_empty() {
            metrics
                .cache_lease_evictions
                .fetch_add(silent.len() as u64, Ordering::Relaxed);
            tracing::warn!(members = ?silent, "cache members did not acknowledge an invalidation in time; removing them and waiting out their leases");
            if let Err(e) = r
                .lease_evict(&self.prefix, silent.clone(), self.length)
                .await
            {
                tracing::debug!(error = %e, "could not remove silent cache members");
            }
        }
        // an acknowledgement arriving meanwhile still counts
        self.wait_acks(&mut owed, g, answered + self.length).await;
        if let Ok(mut acks) = self.acks.lock() {
            for o in &owed {
                acks.remove(&o.member);
            }
        }
        silent.len()
    }

    /// Waits until each member in `owed` acknowledged `generation` or its
    /// lease can have run out (removing it from the list either way), or
    /// until `until`.
    async fn wait_acks(&self, owed: &mut Vec<Owed>, generation: u64, until: Instant) {
        loop {
            let notified = self.acked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            if let Ok(acks) = self.acks.lock() {
                owed.retain(|o| {
                    o.until > now && acks.get(&o.member).is_none_or(|g| *g < generation)
                });
            }
            let Some(next) = owed.iter().map(|o| o.until).min() else {
                return;
            };
            let wake = next.min(until);
            if wake <= now {
                return;
            }
            let _ = tokio::time::timeout_at(wake.into(), notified).await;
        }
    }

    /// Handles one message of the subscription.
    fn on_message(&self, r: &Arc<RedisBackend>, message: &Message) {
        let Some(text) = message.value.as_str() else {
            return;
        };
        let mut words = text.split(' ');
        let channel: &str = &message.channel;
        if channel == self.inv {
            let (Some(g), Some(origin)) = (
                words.next().and_then(|g| g.parse::<u64>().ok()),
                words.next(),
            ) else {
                return;
            };
            self.apply(g);
            // an instance without a lease is no member: nobody waits for it
            if origin != self.id && self.enabled {
                // applied first, acknowledged second
                let (r, channel, ack) = (
                    r.clone(),
                    ack_channel(&self.prefix, origin),
                    format!("a {g} {}", self.id),
                );
                tokio::spawn(async move {
                    if let Err(e) = r.publish(channel, ack).await {
                        tracing::debug!(error = %e, "could not acknowledge an invalidation");
                    }
                });
            }
            return;
        }
        match (words.next(), words.next(), words.next()) {
            (Some("a"), Some(g), Some(member)) => {
                let (Ok(g), Ok(member)) = (g.parse::<u64>(), u64::from_str_radix(member, 16))
                else {
                    return;
                };
                if let Ok(mut acks) = self.acks.lock() {
                    let seen = acks.entry(member).or_insert(0);
                    *seen = (*seen).max(g);
                }
                self.acked.notify_waiters();
            }
            (Some("p"), Some(n), None) => {
                if let Ok(n) = n.parse::<u64>() {
                    self.pings.fetch_max(n, Ordering::AcqRel);
                    self.pinged.notify_waiters();
                }
            }
            _ => {}
        }
    }

    /// Publishes ping `n` to ourselves and waits for it to come back.
    async fn ping(&self, r: &RedisBackend, n: u64) -> bool {
        let notified = self.pinged.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if r.publish(self.inbox.clone(), format!("p {n}"))
            .await
            .is_err()
        {
            return false;
        }
        let deadline = tokio::time::Instant::now() + PING_WAIT;
        loop {
            if self.pings.load(Ordering::Acquire) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified.as_mut())
                .await
                .is_err()
            {
                return false;
            }
            notified.set(self.pinged.notified());
            notified.as_mut().enable();
        }
    }

    /// One step of the member's loop: subscribe, then renew the lease or join.
    async fn step(
        &self,
        r: &RedisBackend,
        subscriber: &SubscriberClient,
        subscribed: &mut bool,
        pings: &mut u64,
    ) {
        if !*subscribed {
            if !subscriber.is_connected() {
                return;
            }
            let channels = vec![self.inv.clone(), self.inbox.clone()];
            // re-subscribed after reconnects by `manage_subscriptions`
            if subscriber.subscribe(channels).await.is_err() {
                return;
            }
            *subscribed = true;
        }
        if !self.enabled || self.stopped.load(Ordering::Acquire) {
            return;
        }
        if self.is_joined() {
            let sent = Instant::now();
            match r.lease_renew(&self.prefix, &self.id, false).await {
                Ok(Some(g)) => {
                    self.apply(g);
                    self.extend(sent);
                }
                Ok(None) => {
                    tracing::info!(
                        "removed from the cache members (slow to acknowledge); joining again"
                    );
                    self.drop_lease();
                }
                // the lease runs out by itself
                Err(e) => tracing::debug!(error = %e, "cache lease renewal failed"),
            }
            return;
        }
        *pings += 1;
        if !self.ping(r, *pings).await {
            return;
        }
        let sent = Instant::now();
        if let Ok(Some(g)) = r.lease_renew(&self.prefix, &self.id, true).await {
            self.apply(g);
            self.extend(sent);
            tracing::debug!(generation = g, "cache lease held");
        }
    }
}

/// Starts the member's tasks: the subscription's message loop and the
/// renewal loop (every quarter lease). Both end once `lease` is dropped;
/// the renewal loop then leaves the member set.
pub fn start(lease: &Arc<Lease>, r: Arc<RedisBackend>, subscriber: SubscriberClient) {
    let _connection = subscriber.connect();
    let _resubscribe = subscriber.manage_subscriptions();
    {
        // messages published while the subscription was down are lost:
        // give the lease up (writers waiting for us wait it out)
        let weak = Arc::downgrade(lease);
        let _task = subscriber.on_reconnect(move |_| {
            let weak = weak.clone();
            async move {
                if let Some(l) = weak.upgrade() {
                    l.drop_lease();
                }
                Ok(())
            }
        });
    }
    let mut messages = subscriber.message_rx();
    let weak: Weak<Lease> = Arc::downgrade(lease);
    let r2 = r.clone();
    let receiver = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match messages.recv().await {
                Ok(m) => {
                    let Some(l) = weak.upgrade() else { break };
                    l.on_message(&r2, &m);
                }
                Err(RecvError::Lagged(_)) => {
                    let Some(l) = weak.upgrade() else { break };
                    l.drop_lease();
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    let weak: Weak<Lease> = Arc::downgrade(lease);
    let every = lease.length / 4;
    let (id, prefix) = (lease.id.clone(), lease.prefix.clone());
    tokio::spawn(async move {
        let (mut subscribed, mut pings) = (false, 0);
        while let Some(l) = weak.upgrade() {
            l.step(&r, &subscriber, &mut subscribed, &mut pings).await;
            drop(l);
            tokio::time::sleep(every).await;
            if weak.strong_count() == 0 {
                let _ = r.lease_leave(&prefix, id).await;
                let _ = subscriber.quit().await;
                receiver.abort();
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_copies_are_served_only_while_the_lease_runs() {
        let l = Lease::new(1, "t:", Duration::from_millis(60));
        assert_eq!(l.generation_now(), None, "no lease before joining");
        l.apply(7);
        l.extend(Instant::now());
        assert_eq!(l.generation_now(), Some(7));
        l.apply(5);
        assert_eq!(l.generation_now(), Some(7), "the counter never goes back");
        std::thread::sleep(Duration::from_millis(55));
        assert_eq!(
            l.generation_now(),
            None,
            "the lease ends a margin before the writers stop waiting"
        );
        l.extend(Instant::now());
        assert!(l.held());
        l.drop_lease();
        assert!(!l.held());
    }

    #[tokio::test]
    async fn a_writer_waits_for_every_acknowledgement_or_the_lease() {
        let l = Arc::new(Lease::new(1, "t:", Duration::from_millis(300)));
        let far = Instant::now() + Duration::from_secs(5);
        let owe = |member, until| Owed {
            member,
            until,
            removed: false,
        };
        let mut owed = vec![owe(2, far), owe(3, far)];
        let acker = {
            let l = l.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                for (m, g) in [(2u64, 4u64), (3, 3), (3, 5)] {
                    l.acks.lock().expect("acks").insert(m, g);
                    l.acked.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let started = Instant::now();
        l.wait_acks(&mut owed, 4, far).await;
        assert!(owed.is_empty(), "both acknowledged 4 or later");
        assert!(started.elapsed() < Duration::from_secs(1));
        acker.await.expect("joined");

        // a silent member is still owed at the first deadline ...
        let started = Instant::now();
        let mut owed = vec![owe(9, started + Duration::from_millis(80))];
        l.wait_acks(&mut owed, 4, started + Duration::from_millis(30))
            .await;
        assert_eq!(owed.len(), 1, "a silent member is still owed");
        assert!(started.elapsed() >= Duration::from_millis(25));
        // ... and waited out once its lease can have run out
        l.wait_acks(&mut owed, 4, far).await;
        assert!(owed.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(75) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}
