//! Scheduling helpers shared by the batching points of a request.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

/// Yields to the scheduler until a whole round passes in which `count` did
/// not change, at most `rounds` rounds. Tasks already runnable on this
/// instance (sibling resolvers, requests read in the same tick) get to
/// register first, so what the caller sends next covers them too; the cap
/// keeps a steady trickle from holding the caller back.
pub async fn until_quiet(rounds: usize, count: impl Fn() -> u64) {
    until_settled(rounds, None, count).await;
}

/// [`until_quiet`], where a round in which a batch delivered results into
/// this request (`deliveries`) is not quiet either, and a delivery under way
/// is waited out before a round starts: the siblings it wakes register
/// after it, and a round spent while its task was descheduled halfway (by
/// the OS, on a loaded machine) would otherwise count against the cap.
pub async fn until_settled(
    rounds: usize,
    deliveries: Option<&Deliveries>,
    count: impl Fn() -> u64,
) {
    let delivered = || deliveries.map_or(0, |d| d.0.load(Ordering::Acquire));
    for _ in 0..rounds {
        if let Some(d) = deliveries {
            d.idle().await;
        }
        let before = (delivered(), count());
        tokio::task::yield_now().await;
        if (delivered(), count()) == before {
            break;
        }
    }
}

/// Batch results delivered into one request's task: bumped once before a
/// batch wakes its waiters and once after, so an odd value means a delivery
/// is under way.
///
/// A batch wakes its waiters one by one from its own task, and the request
/// can be polled on the other worker meanwhile, with only the first waiters
/// woken. A batch opened then by one of them must not count that poll as a
/// quiet round, or it closes before the siblings still being woken register
/// (seen as split batches: 3 + 31 keys instead of 34). Nor may it spend its
/// rounds while the delivering task is descheduled halfway: on a loaded
/// machine the 16 rounds passed in microseconds that way. Waiting the
/// delivery out took the split rate of the N+1 test's nested query, run
/// alongside the rest of the suite, from 8 in 400 to 0 in 2,000. Counted
/// per request, so deliveries into other requests do not hold its batches
/// open.
#[derive(Default)]
pub struct Deliveries(AtomicU64, Notify);

impl Deliveries {
    /// Marks the start (and, called again, the end) of a delivery.
    pub fn bump(&self) {
        if self.0.fetch_add(1, Ordering::AcqRel) % 2 == 1 {
            self.1.notify_waiters();
        }
    }

    /// Returns once no delivery is under way. A delivery runs no await
    /// between its two bumps, so this waits only while its task is between
    /// them.
    async fn idle(&self) {
        loop {
            // created before the check, so an end between the two is not lost
            let ended = self.1.notified();
            if self.0.load(Ordering::Acquire).is_multiple_of(2) {
                return;
            }
            ended.await;
        }
    }
}

tokio::task_local! {
    static DELIVERIES: Arc<Deliveries>;
}

/// Runs `f` (one request's execution) with its own delivery count.
pub async fn tracking_deliveries<F: Future>(f: F) -> F::Output {
    DELIVERIES.scope(Arc::default(), f).await
}

/// Calls `f` with the current request's delivery count, if it keeps one.
pub fn with_deliveries<R>(f: impl FnOnce(&Arc<Deliveries>) -> R) -> Option<R> {
    DELIVERIES.try_with(f).ok()
}
