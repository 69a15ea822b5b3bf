//! One [`DbLoader`] with a `Loader` impl per key type. Loaders only batch
//! (no per-request memo): Redis is the cache. Each batch is one SQL
//! statement (per viewer / sort order when keys mix them).

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;

use crate::{
    db::{
        self, Db,
        comments::CommentRow,
        cursor::Keyset,
        page::PageKey,
        reviews::{ReviewRow, ReviewSort},
        titles::TitleRow,
        users::UserRow,
    },
    error::AppError,
};

/// Batches database reads across the resolvers of one (or several concurrent) requests.
pub struct DbLoader {
    db: Db,
}

impl DbLoader {
    /// A loader reading through `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// A title by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TitleKey(pub i64);
/// A user by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserKey(pub i64);
/// A review by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReviewKey(pub i64);
/// A comment by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommentKey(pub i64);
/// Whether `viewer` liked `review`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewerLikedKey {
    pub viewer: i64,
    pub review: i64,
}
/// Whether `viewer` follows `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewerFollowsKey {
    pub viewer: i64,
    pub user: i64,
}
/// A page of the platform-wide feed: rows after `after` (from the top
/// without one), at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeedPageKey {
    pub after: Option<Keyset>,
    pub limit: i64,
}
/// A page of one title's reviews.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TitleReviewsKey {
    pub sort: ReviewSort,
    pub page: PageKey,
}
/// A page of one author's reviews.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthorReviewsKey(pub PageKey);
/// A page of one review's comments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReviewCommentsKey(pub PageKey);

/// Rows by id for `keys`, one statement. The map is built straight from the
/// rows: every row returned was asked for, and the batcher deduplicated the
/// keys, so each row is handed out once.
async fn by_id<K, R, V, F>(
    db: &Db,
    keys: &[K],
    id_of_key: impl Fn(&K) -> i64,
    key_of_row: impl Fn(&R) -> K,
    value: impl Fn(R) -> V,
    query: F,
) -> Result<HashMap<K, V>, AppError>
where
    K: Eq + std::hash::Hash,
    F: AsyncFnOnce(&mut diesel_async::AsyncPgConnection, &[i64]) -> diesel::QueryResult<Vec<R>>,
{
    let ids: Vec<i64> = keys.iter().map(&id_of_key).collect();
    let mut conn = db.conn().await?;
    let rows = query(&mut conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| (key_of_row(&r), value(r)))
        .collect())
}

impl Loader<TitleKey> for DbLoader {
    type Value = Arc<TitleRow>;
    type Error = AppError;

    async fn load(&self, keys: &[TitleKey]) -> Result<HashMap<TitleKey, Arc<TitleRow>>, AppError> {
        by_id(
            &self.db,
            keys,
            |k| k.0,
            |r: &TitleRow| TitleKey(r.id),
            Arc::new,
            async |c, ids| db::titles::by_ids(c, ids).await,
        )
        .await
    }
}

impl Loader<UserKey> for DbLoader {
    type Value = Arc<UserRow>;
    type Error = AppError;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, Arc<UserRow>>, AppError> {
        by_id(
            &self.db,
            keys,
            |k| k.0,
            |r: &UserRow| UserKey(r.id),
            Arc::new,
            async |c, ids| db::users::by_ids(c, ids).await,
        )
        .await
    }
}

impl Loader<ReviewKey> for DbLoader {
    type Value = ReviewRow;
    type Error = AppError;

    async fn load(&self, keys: &[ReviewKey]) -> Result<HashMap<ReviewKey, ReviewRow>, AppError> {
        by_id(
            &self.db,
            keys,
            |k| k.0,
            |r: &ReviewRow| ReviewKey(r.id),
            |r| r,
            async |c, ids| db::reviews::by_ids(c, ids).await,
        )
        .await
    }
}

impl Loader<CommentKey> for DbLoader {
    type Value = CommentRow;
    type Error = AppError;

    async fn load(&self, keys: &[CommentKey]) -> Result<HashMap<CommentKey, CommentRow>, AppError> {
        by_id(
            &self.db,
            keys,
            |k| k.0,
            |r: &CommentRow| CommentKey(r.id),
            |r| r,
            async |c, ids| db::comments::by_ids(c, ids).await,
        )
        .await
    }
}

/// Groups keys by an outer value (viewer, sort order) so each group is one statement.
fn group_by<K: Clone, G: Eq + std::hash::Hash>(
    keys: &[K],
    group: impl Fn(&K) -> G,
) -> HashMap<G, Vec<K>> {
    let mut out: HashMap<G, Vec<K>> = HashMap::new();
    for k in keys {
        out.entry(group(k)).or_default().push(k.clone());
    }
    out
}

impl Loader<ViewerLikedKey> for DbLoader {
    type Value = bool;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ViewerLikedKey],
    ) -> Result<HashMap<ViewerLikedKey, bool>, AppError> {
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::new();
        for (viewer, group) in group_by(keys, |k| k.viewer) {
            let ids: Vec<i64> = group.iter().map(|k| k.review).collect();
            let liked = db::likes::liked_by(&mut conn, viewer, &ids).await?;
            for k in group {
                out.insert(k, liked.contains(&k.review));
            }
        }
        Ok(out)
    }
}

impl Loader<ViewerFollowsKey> for DbLoader {
    type Value = bool;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ViewerFollowsKey],
    ) -> Result<HashMap<ViewerFollowsKey, bool>, AppError> {
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::new();
        for (viewer, group) in group_by(keys, |k| k.viewer) {
            let ids: Vec<i64> = group.iter().map(|k| k.user).collect();
            let followed = db::follows::followed_by(&mut conn, viewer, &ids).await?;
            for k in group {
                out.insert(k, followed.contains(&k.user));
            }
        }
        Ok(out)
    }
}

/// Distributes lateral-page rows back to the keys they belong to. Rows come
/// back per key in key order, each key's rows contiguous, so a key's rows are
/// those with its parent, in order, up to its limit; keys that share a parent
/// (aliases with different arguments) are then split by re-filtering.
fn distribute<R: Clone>(
    keys: &[PageKey],
    rows: Vec<R>,
    parent_of: impl Fn(&R) -> i64,
    keyset_of: impl Fn(&R) -> crate::db::cursor::Keyset,
    descending: bool,
) -> HashMap<PageKey, Vec<R>> {
    let mut by_parent: HashMap<i64, Vec<R>> = HashMap::new();
    for r in rows {
        by_parent.entry(parent_of(&r)).or_default().push(r);
    }
    let mut out = HashMap::new();
    for k in keys {
        let candidates = by_parent.get(&k.parent).cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut mine: Vec<R> = candidates
            .into_iter()
            .filter(|r| {
                let ks = keyset_of(r);
                seen.insert(ks.id)
                    && k.after
                        .as_ref()
                        .is_none_or(|a| after_position(&ks, a, descending))
            })
            .collect();
        mine.sort_by(|a, b| {
            let (ka, kb) = (keyset_of(a), keyset_of(b));
            let ord = cmp_keyset(&ka, &kb);
            if descending { ord.reverse() } else { ord }
        });
        mine.truncate(usize::try_from(k.limit).unwrap_or(0));
        out.insert(k.clone(), mine);
    }
    out
}

fn cmp_keyset(a: &crate::db::cursor::Keyset, b: &crate::db::cursor::Keyset) -> std::cmp::Ordering {
    use crate::db::cursor::SortValue::{Int, Time};
    let v = match (&a.value, &b.value) {
        (Time(x), Time(y)) | (Int(x), Int(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    };
    v.then(a.id.cmp(&b.id))
}

fn after_position(
    row: &crate::db::cursor::Keyset,
    after: &crate::db::cursor::Keyset,
    descending: bool,
) -> bool {
    let ord = cmp_keyset(row, after);
    if descending { ord.is_lt() } else { ord.is_gt() }
}

/// Root `feed` pages of concurrent requests, one statement for all (each
/// request's page used to be a statement of its own: the largest share of
/// a feed miss's database work).
impl Loader<FeedPageKey> for DbLoader {
    type Value = Vec<ReviewRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[FeedPageKey],
    ) -> Result<HashMap<FeedPageKey, Vec<ReviewRow>>, AppError> {
        let pages: Vec<(Option<Keyset>, i64)> =
            keys.iter().map(|k| (k.after.clone(), k.limit)).collect();
        let rows = {
            let mut conn = self.db.conn().await?;
            db::reviews::feed_pages(&mut conn, &pages).await?
        };
        let mut split: Vec<Vec<ReviewRow>> = vec![Vec::new(); keys.len()];
        for row in rows {
            let page = usize::try_from(row.page - 1)
                .ok()
                .and_then(|i| split.get_mut(i));
            if let Some(page) = page {
                page.push(row.review);
            }
        }
        // the order `distribute` gives the other review pages
        let newest_first = |a: &ReviewRow, b: &ReviewRow| {
            cmp_keyset(&b.keyset(ReviewSort::Newest), &a.keyset(ReviewSort::Newest))
        };
        Ok(keys
            .iter()
            .cloned()
            .zip(split)
            .map(|(k, mut rows)| {
                // the lateral yields each page in its ORDER BY; SQL does not
                // promise it, so check (one pass) before trusting it
                if !rows.is_sorted_by(|a, b| newest_first(a, b).is_le()) {
                    rows.sort_by(newest_first);
                }
                (k, rows)
            })
            .collect())
    }
}

impl Loader<TitleReviewsKey> for DbLoader {
    type Value = Vec<ReviewRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[TitleReviewsKey],
    ) -> Result<HashMap<TitleReviewsKey, Vec<ReviewRow>>, AppError> {
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::new();
        for (sort, group) in group_by(keys, |k| k.sort) {
            let pages: Vec<PageKey> = group.iter().map(|k| k.page.clone()).collect();
            let rows = db::reviews::by_titles(&mut conn, sort, &pages).await?;
            let mut split = distribute(&pages, rows, |r| r.title_id, |r| r.keyset(sort), true);
            for k in group {
                let rows = split.remove(&k.page).unwrap_or_default();
                out.insert(k, rows);
            }
        }
        Ok(out)
    }
}

impl Loader<AuthorReviewsKey> for DbLoader {
    type Value = Vec<ReviewRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[AuthorReviewsKey],
    ) -> Result<HashMap<AuthorReviewsKey, Vec<ReviewRow>>, AppError> {
        let mut conn = self.db.conn().await?;
        let pages: Vec<PageKey> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = db::reviews::by_authors(&mut conn, &pages).await?;
        let split = distribute(
            &pages,
            rows,
            |r| r.author_id,
            |r| r.keyset(ReviewSort::Newest),
            true,
        );
        Ok(split
            .into_iter()
            .map(|(k, v)| (AuthorReviewsKey(k), v))
            .collect())
    }
}

impl Loader<ReviewCommentsKey> for DbLoader {
    type Value = Vec<CommentRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ReviewCommentsKey],
    ) -> Result<HashMap<ReviewCommentsKey, Vec<CommentRow>>, AppError> {
        let mut conn = self.db.conn().await?;
        let pages: Vec<PageKey> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = db::comments::by_reviews(&mut conn, &pages).await?;
        let split = distribute(&pages, rows, |r| r.review_id, CommentRow::keyset, false);
        Ok(split
            .into_iter()
            .map(|(k, v)| (ReviewCommentsKey(k), v))
            .collect())
    }
}
