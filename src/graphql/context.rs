//! Per-request state and the [`ContextExt`] helpers resolvers use.
//!
//! Every helper that loads data also records what the result depends on
//! (cache tags such as `Review:42` or `Title:7:reviews`) and the shortest
//! freshness among what was read, so the query cache can store the response
//! with the right tags and TTL. Reading the viewer marks the result
//! viewer-specific (cached per viewer, never in the public scope).

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use async_graphql::Context;

use super::{
    batch::Batcher,
    loader::{CommentKey, ReviewKey, TitleKey, UserKey},
};
use crate::{
    app::Services,
    cache::tags,
    db::{comments::CommentRow, reviews::ReviewRow, titles::TitleRow, users::UserRow},
    error::{AppError, AppResult},
};

/// Freshness hints, in seconds, per kind of data (issue-defined defaults).
pub mod ttl {
    /// Titles change rarely.
    pub const TITLE: u64 = 300;
    /// Users: profile and counters.
    pub const USER: u64 = 120;
    /// Reviews and comments.
    pub const REVIEW: u64 = 60;
    /// Lists, feeds and counts.
    pub const LIST: u64 = 30;
}

/// Who is asking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Viewer {
    /// The signed-in user's id; `None` when anonymous.
    pub user_id: Option<i64>,
}

/// State of one GraphQL request, attached with `Request::data`.
#[derive(Debug)]
pub struct RequestState {
    /// Who is asking.
    pub viewer: Viewer,
    /// Set when the result read viewer-specific data.
    private: AtomicBool,
    /// Shortest freshness among the data read, in seconds.
    min_ttl: AtomicU64,
    /// What the result depends on.
    tags: Mutex<BTreeSet<String>>,
    /// No tags are kept: a subscription's results are never cached, and its
    /// state lives as long as the connection (tags would pile up per event).
    untracked: bool,
}

impl RequestState {
    /// Fresh state for a request by `viewer`.
    pub fn new(viewer: Viewer) -> Arc<Self> {
        Arc::new(Self {
            viewer,
            private: AtomicBool::new(false),
            min_ttl: AtomicU64::new(u64::MAX),
            tags: Mutex::new(BTreeSet::new()),
            untracked: false,
        })
    }

    /// State of a WebSocket connection's subscriptions by `viewer`: nothing
    /// they read is cached, so no tags are collected.
    pub fn untracked(viewer: Viewer) -> Arc<Self> {
        Arc::new(Self {
            viewer,
            private: AtomicBool::new(false),
            min_ttl: AtomicU64::new(u64::MAX),
            tags: Mutex::new(BTreeSet::new()),
            untracked: true,
        })
    }

    /// Records a dependency with its freshness.
    pub fn tag(&self, tag: String, ttl: u64) {
        if self.untracked {
            return;
        }
        self.min_ttl.fetch_min(ttl, Ordering::Relaxed);
        if let Ok(mut tags) = self.tags.lock() {
            tags.insert(tag);
        }
    }

    /// Marks the result as depending on who the viewer is.
    pub fn mark_private(&self) {
        self.private.store(true, Ordering::Relaxed);
    }

    /// Whether the result depends on who the viewer is.
    pub fn is_private(&self) -> bool {
        self.private.load(Ordering::Relaxed)
    }

    /// Shortest freshness recorded, if anything was recorded.
    pub fn ttl(&self) -> Option<u64> {
        match self.min_ttl.load(Ordering::Relaxed) {
            u64::MAX => None,
            t => Some(t),
        }
    }

    /// The recorded tags, moved out (once the result is complete: a store
    /// is their only reader).
    pub fn take_tags(&self) -> Vec<String> {
        self.tags
            .lock()
            .map(|mut t| std::mem::take(&mut *t).into_iter().collect())
            .unwrap_or_default()
    }
}

/// Helpers on the resolver context. Missing context data is an internal
/// error, never a panic.
pub trait ContextExt {
    /// Shared services (pool, loader, cache, config).
    fn services(&self) -> AppResult<&Arc<Services>>;
    /// This request's state.
    fn request(&self) -> AppResult<&Arc<RequestState>>;
    /// The batching loader.
    fn loader(&self) -> AppResult<&Batcher> {
        Ok(&self.services()?.loader)
    }
    /// The viewer's user id (marks the result viewer-specific).
    fn viewer_id(&self) -> AppResult<Option<i64>> {
        let req = self.request()?;
        req.mark_private();
        Ok(req.viewer.user_id)
    }
    /// The viewer's user id, or `UNAUTHENTICATED`.
    fn require_user(&self) -> AppResult<i64> {
        self.viewer_id()?.ok_or_else(|| {
            AppError::Unauthenticated("sign in first: send Authorization: Bearer <token>".into())
        })
    }
    /// Records a dependency of the result.
    fn tag(&self, tag: String, ttl: u64) -> AppResult<()> {
        self.request()?.tag(tag, ttl);
        Ok(())
    }
}

impl ContextExt for Context<'_> {
    fn services(&self) -> AppResult<&Arc<Services>> {
        self.data::<Arc<Services>>()
            .map_err(|_| AppError::Internal("services missing from schema data".into()))
    }

    fn request(&self) -> AppResult<&Arc<RequestState>> {
        self.data::<Arc<RequestState>>()
            .map_err(|_| AppError::Internal("request state missing from request data".into()))
    }
}

/// Loads (and tags) single entities by id.
pub async fn load_title(ctx: &Context<'_>, id: i64) -> AppResult<Option<Arc<TitleRow>>> {
    ctx.tag(tags::title(id), ttl::TITLE)?;
    ctx.loader()?.load_one(TitleKey(id)).await
}

/// Loads (and tags) a user by id.
pub async fn load_user(ctx: &Context<'_>, id: i64) -> AppResult<Option<Arc<UserRow>>> {
    ctx.tag(tags::user(id), ttl::USER)?;
    ctx.loader()?.load_one(UserKey(id)).await
}

/// Loads (and tags) a review by id.
pub async fn load_review(ctx: &Context<'_>, id: i64) -> AppResult<Option<ReviewRow>> {
    ctx.tag(tags::review(id), ttl::REVIEW)?;
    ctx.loader()?.load_one(ReviewKey(id)).await
}

/// Loads (and tags) a comment by id.
pub async fn load_comment(ctx: &Context<'_>, id: i64) -> AppResult<Option<CommentRow>> {
    ctx.tag(tags::comment(id), ttl::REVIEW)?;
    let row = ctx.loader()?.load_one(CommentKey(id)).await?;
    if let Some(r) = &row {
        // a comment exists only as long as its review (deletes cascade)
        ctx.tag(tags::review(r.review_id), ttl::REVIEW)?;
    }
    Ok(row)
}

/// A non-null parent reference that must exist (a foreign key guarantees it;
/// a row deleted mid-request is reported as `NOT_FOUND`).
pub fn must_exist<T>(row: Option<T>, what: &str, id: i64) -> AppResult<T> {
    row.ok_or_else(|| AppError::NotFound(format!("{what} {id} no longer exists")))
}
