//! Deterministic batching for the [`DbLoader`](super::loader::DbLoader).
//!
//! async-graphql's `DataLoader` closes a batch after a fixed delay; on a busy
//! machine the resolving thread can be descheduled for longer than that while
//! it registers the keys of a list, and the batch splits (seen here: 19
//! statements instead of 4 for a 50-item feed under parallel tests). Here
//! the resolver that opens a batch closes it only when a whole yield round
//! of its task passed without a new key arriving, and without a batch
//! delivering results into its request (see [`Deliveries`]): every sibling
//! resolver of a list has registered by then, whatever the machine's load
//! (the others just wait for the result). (One yield is not
//! enough: `FuturesUnordered`, which async-graphql uses for sibling fields,
//! stops after two self-waking futures, so first polls can spread over a few
//! rounds.) At most 16 rounds, so a steady trickle of keys cannot hold a
//! batch open. The fetch runs on a spawned task, so a cancelled
//! request never strands the other waiters of its batch. Keys from
//! concurrent requests that land in the same tick share the batch.

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use async_graphql::dataloader::Loader;
use tokio::sync::{Notify, OnceCell};

use super::loader::DbLoader;
use crate::{
    error::{AppError, AppResult},
    sched::{self, Deliveries},
};

type BatchResult<K, V> = Result<Arc<HashMap<K, V>>, AppError>;

/// Most keys one statement is sent: a batch shared by many concurrent
/// requests can collect thousands, and one statement over all of them
/// would have its size, and its time against the statement timeout, set by
/// the crowd. Larger batches are loaded in chunks of this size, one after
/// the other on one task.
pub const MAX_BATCH_KEYS: usize = 1000;

/// What a batch collects until it is dispatched.
struct Pending<K> {
    keys: Vec<K>,
    /// The requests waiting on it, told when it delivers (see
    /// [`Deliveries`]); consecutive keys of one request share an entry.
    watchers: Vec<Arc<Deliveries>>,
}

struct Slot<K, V> {
    pending: Mutex<Pending<K>>,
    closed: AtomicBool,
    result: OnceCell<BatchResult<K, V>>,
    done: Notify,
}

impl<K, V> Slot<K, V> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending {
                keys: Vec::new(),
                watchers: Vec::new(),
            }),
            closed: AtomicBool::new(false),
            result: OnceCell::new(),
            done: Notify::new(),
        })
    }

    async fn wait(&self) -> &BatchResult<K, V> {
        loop {
            // created before the check, so a notify between the two is not lost
            let notified = self.done.notified();
            if let Some(r) = self.result.get() {
                return r;
            }
            notified.await;
        }
    }
}

/// Per key type: the batch currently accepting keys.
struct Open<K, V> {
    current: Mutex<Option<Arc<Slot<K, V>>>>,
}

/// Batches `load_one` calls per execution tick and runs each batch once.
pub struct Batcher {
    loader: Arc<DbLoader>,
    open: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Batcher {
    /// A batcher over `loader`.
    pub fn new(loader: DbLoader) -> Self {
        Self {
            loader: Arc::new(loader),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open_for<K, V>(&self) -> AppResult<Arc<Open<K, V>>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let mut map = self
            .open
            .lock()
            .map_err(|_| AppError::Internal("batcher lock poisoned".into()))?;
        let entry = map
            .entry(TypeId::of::<K>())
            .or_insert_with(|| {
                Arc::new(Open::<K, V> {
                    current: Mutex::new(None),
                }) as Arc<dyn Any + Send + Sync>
            })
            .clone();
        entry
            .downcast::<Open<K, V>>()
            .map_err(|_| AppError::Internal("batcher type mismatch".into()))
    }

    /// Loads one value, batched with every other key registered in this tick.
    pub async fn load_one<K>(&self, key: K) -> AppResult<Option<<DbLoader as Loader<K>>::Value>>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
    {
        let open = self.open_for::<K, <DbLoader as Loader<K>>::Value>()?;
        let (slot, created) = {
            let mut current = open
                .current
                .lock()
                .map_err(|_| AppError::Internal("batcher lock poisoned".into()))?;
            let (slot, created) = match current.as_ref() {
                Some(s) if !s.closed.load(Ordering::Acquire) => (s.clone(), false),
                _ => {
                    let s = Slot::new();
                    *current = Some(s.clone());
                    (s, true)
                }
            };
            // duplicates are dropped at dispatch: checking here scanned the
            // whole list per key (batches from concurrent requests hold
            // hundreds)
            if let Ok(mut p) = slot.pending.lock() {
                p.keys.push(key.clone());
                sched::with_deliveries(|d| {
                    if !p.watchers.last().is_some_and(|w| Arc::ptr_eq(w, d)) {
                        p.watchers.push(d.clone());
                    }
                });
            }
            (slot, created)
        };
        if created {
            // The batch's creator alone waits for a quiet round (every
            // sibling resolver has registered by then) and dispatches it;
            // the others only wait for the result (each of them yielding
            // too made every resolver of a page re-poll its field up to 16
            // times). Dispatched on drop as well, so a cancelled creator
            // never strands the batch's other waiters. A round in which a
            // batch delivered into this request is not quiet: the siblings
            // it woke may not have been polled yet.
            let _dispatch = OnDrop(Some(|| self.dispatch(&open, &slot)));
            let mine = sched::with_deliveries(Arc::clone);
            sched::until_settled(16, mine.as_deref(), || {
                slot.pending
                    .lock()
                    .map(|p| p.keys.len() as u64)
                    .unwrap_or(0)
            })
            .await;
        }
        match slot.wait().await {
            Ok(map) => Ok(map.get(&key).cloned()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Closes `slot` to new keys and runs its batch on a task of its own (so
    /// a cancelled request never cancels the others' fetch). Once per slot.
    fn dispatch<K>(
        &self,
        open: &Open<K, <DbLoader as Loader<K>>::Value>,
        slot: &Arc<Slot<K, <DbLoader as Loader<K>>::Value>>,
    ) where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
    {
        if slot.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut current) = open.current.lock()
            && current.as_ref().is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            *current = None;
        }
        let (mut keys, mut watchers) = slot
            .pending
            .lock()
            .map(|mut p| (std::mem::take(&mut p.keys), std::mem::take(&mut p.watchers)))
            .unwrap_or_default();
        // a request whose keys are not consecutive is told once
        watchers.sort_unstable_by_key(|w| Arc::as_ptr(w) as usize);
        watchers.dedup_by(|a, b| Arc::ptr_eq(a, b));
        // loaders get each key once
        let mut seen: HashSet<K, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(keys.len(), Default::default());
        keys.retain(|k| seen.insert(k.clone()));
        let loader = self.loader.clone();
        let s = slot.clone();
        // a request dropped while the runtime shuts down has nobody to answer
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let result = load_chunked(&loader, &keys).await.map(Arc::new);
                for w in &watchers {
                    w.bump();
                }
                let _ = s.result.set(result);
                s.done.notify_waiters();
                for w in &watchers {
                    w.bump();
                }
            });
        }
    }
}

/// `loader.load(keys)`, at most [`MAX_BATCH_KEYS`] keys per call.
async fn load_chunked<K>(
    loader: &DbLoader,
    keys: &[K],
) -> Result<HashMap<K, <DbLoader as Loader<K>>::Value>, AppError>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    DbLoader: Loader<K, Error = AppError>,
{
    if keys.len() <= MAX_BATCH_KEYS {
        return loader.load(keys).await;
    }
    let mut all = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_BATCH_KEYS) {
        all.extend(loader.load(chunk).await?);
    }
    Ok(all)
}

/// Runs its closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
