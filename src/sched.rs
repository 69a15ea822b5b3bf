//! Scheduling helpers shared by the batching points of a request.

/// Yields to the scheduler until a whole round passes in which `count` did
/// not change, at most `rounds` rounds. Tasks already runnable on this
/// instance (sibling resolvers, requests read in the same tick) get to
/// register first, so what the caller sends next covers them too; the cap
/// keeps a steady trickle from holding the caller back.
pub async fn until_quiet(rounds: usize, count: impl Fn() -> u64) {
    for _ in 0..rounds {
        let before = count();
        tokio::task::yield_now().await;
        if count() == before {
            break;
        }
    }
}
