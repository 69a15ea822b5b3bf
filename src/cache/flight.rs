//! Per-instance single flight: concurrent requests for the same cache key
//! wait for the first one (the leader) instead of each looking up and
//! executing. Across instances the fill lock in Redis does the same job.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::sync::watch;

/// Shares one computed value per key among concurrent callers.
pub struct Flights<T: Clone> {
    inflight: Mutex<HashMap<String, watch::Receiver<Option<T>>, foldhash::fast::RandomState>>,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::default()),
        }
    }
}

/// The caller's role for one key.
pub enum Role<'a, T: Clone> {
    /// Compute the value, then call [`Leader::finish`].
    Leader(Leader<'a, T>),
    /// Someone else is computing it.
    Follower(watch::Receiver<Option<T>>),
}

/// The computing caller; dropping it without finishing lets followers retry.
pub struct Leader<'a, T: Clone> {
    flights: &'a Flights<T>,
    /// `None` once freed (or when nothing was registered).
    key: Option<String>,
    tx: watch::Sender<Option<T>>,
}

impl<T: Clone> Leader<'_, T> {
    /// Hands the value to every follower, and frees the key. The value is
    /// cloned only when someone follows: most keys (every miss of a new
    /// key) have no follower, and a response's clone and its drop were a
    /// tenth of the cache's own work on a miss (callgrind, W4).
    pub fn finish(mut self, value: &T) {
        // freed first: whoever joins from now on leads a flight of their
        // own, so the receivers counted below are all of this one's followers
        self.free();
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Some(value.clone()));
        }
    }

    fn free(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(mut map) = self.flights.inflight.lock()
        {
            map.remove(&key);
        }
    }
}

impl<T: Clone> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        self.free();
    }
}

impl<T: Clone> Flights<T> {
    /// Joins the flight for `key`.
    pub fn join(&self, key: &str) -> Role<'_, T> {
        let Ok(mut map) = self.inflight.lock() else {
            // poisoned lock: everyone leads, nothing shared
            let (tx, _) = watch::channel(None);
            return Role::Leader(Leader {
                flights: self,
                key: None,
                tx,
            });
        };
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_owned(), rx);
        Role::Leader(Leader {
            flights: self,
            key: Some(key.to_owned()),
            tx,
        })
    }
}

/// Waits for the leader's value; `None` if it gave up or took too long.
pub async fn follow<T: Clone>(mut rx: watch::Receiver<Option<T>>, limit: Duration) -> Option<T> {
    let wait = async {
        loop {
            if let Some(v) = rx.borrow_and_update().clone() {
                return Some(v);
            }
            if rx.changed().await.is_err() {
                // leader dropped without a value
                return rx.borrow().clone();
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value_and_the_key_frees() {
        let flights: Flights<u32> = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        let waiter = tokio::spawn(follow(rx, Duration::from_secs(1)));
        leader.finish(&7);
        assert_eq!(waiter.await.expect("join"), Some(7));
        assert!(
            matches!(flights.join("k"), Role::Leader(_)),
            "the key is free again"
        );
    }

    #[tokio::test]
    async fn a_leader_that_gives_up_releases_followers() {
        let flights: Flights<u32> = Flights::default();
        let leader = flights.join("k");
        let Role::Follower(rx) = flights.join("k") else {
            panic!("follows")
        };
        drop(leader);
        assert_eq!(follow(rx, Duration::from_secs(1)).await, None);
    }

    /// Counts its clones.
    struct Counted(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self(self.0.clone())
        }
    }

    #[tokio::test]
    async fn the_value_is_cloned_only_for_followers() {
        let clones = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let value = Counted(clones.clone());
        let flights: Flights<Counted> = Flights::default();
        let count = || clones.load(std::sync::atomic::Ordering::Relaxed);

        let Role::Leader(alone) = flights.join("k") else {
            panic!("first caller leads")
        };
        alone.finish(&value);
        assert_eq!(count(), 0, "nobody followed: nothing to clone");

        let Role::Leader(leader) = flights.join("k") else {
            panic!("the key was freed")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        let waiter = tokio::spawn(follow(rx, Duration::from_secs(1)));
        leader.finish(&value);
        assert!(waiter.await.expect("join").is_some(), "the follower got it");
        assert!(count() >= 1, "cloned for the follower");
        assert!(matches!(flights.join("k"), Role::Leader(_)), "freed again");
    }
}
