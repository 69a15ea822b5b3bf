//! Reviews: rows and queries (feeds, per-title and per-author pages, writes).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Nullable, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{
    cursor::Keyset,
    page::{LateralOrder, PageKey, Prepared, lateral},
    row::RowLt,
    schema::{follows, platform_counters, reviews, users},
};

/// A review row.
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = reviews, check_for_backend(diesel::pg::Pg))]
pub struct ReviewRow {
    pub id: i64,
    pub title_id: i64,
    pub author_id: i64,
    pub rating: i16,
    pub body: String,
    pub contains_spoilers: bool,
    pub like_count: i32,
    pub comment_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A review to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = reviews)]
pub struct NewReview<'a> {
    pub title_id: i64,
    pub author_id: i64,
    pub rating: i16,
    pub body: &'a str,
    pub contains_spoilers: bool,
}

/// Changes to a review; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = reviews)]
pub struct ReviewPatch<'a> {
    pub rating: Option<i16>,
    pub body: Option<&'a str>,
    pub contains_spoilers: Option<bool>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Review orders within one title.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewSort {
    Newest,
    MostLiked,
}

impl ReviewRow {
    /// This row's position in a list sorted by `sort`.
    pub fn keyset(&self, sort: ReviewSort) -> Keyset {
        match sort {
            ReviewSort::Newest => Keyset::time(self.created_at, self.id),
            ReviewSort::MostLiked => Keyset {
                value: super::cursor::SortValue::Int(i64::from(self.like_count)),
                id: self.id,
            },
        }
    }
}

/// Reviews with these ids, in no particular order.
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<ReviewRow>> {
    reviews::table
        .filter(reviews::id.eq_any(ids))
        .select(ReviewRow::as_select())
        .load(conn)
        .await
}

/// One row of [`feed_pages`]: a review and the 1-based position of the page
/// (in the keys passed) it belongs to.
#[derive(Debug, QueryableByName)]
pub struct FeedPageRow {
    #[diesel(sql_type = BigInt)]
    pub page: i64,
    #[diesel(embed)]
    pub review: ReviewRow,
}

/// Pages of all reviews, newest first, one per `(after, limit)`, in one
/// statement: concurrent `feed` requests share it (each lateral page is an
/// index range scan of `reviews_newest_idx` from its cursor). Rows come back
/// page by page, each page in feed order.
///
/// A page without a cursor starts below `('infinity', i64::MAX)`: every
/// row a `DateTime<Utc>` can be read from is below it.
pub async fn feed_pages(
    conn: &mut AsyncPgConnection,
    pages: &[(Option<Keyset>, i64)],
) -> QueryResult<Vec<FeedPageRow>> {
    const SQL: &str = "SELECT k.page, r.* FROM unnest($1::timestamptz[], $2::int8[], $3::int8[]) \
         WITH ORDINALITY AS k(c_at, c_id, lim, page) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM reviews x \
              WHERE (x.created_at, x.id) < (COALESCE(k.c_at, 'infinity'), COALESCE(k.c_id, 9223372036854775807)) \
              ORDER BY x.created_at DESC, x.id DESC \
              LIMIT k.lim \
         ) r";
    let mut ats = Vec::with_capacity(pages.len());
    let mut ids = Vec::with_capacity(pages.len());
    let mut limits = Vec::with_capacity(pages.len());
    for (after, limit) in pages {
        let at = after.as_ref().and_then(Keyset::as_time);
        ats.push(at);
        ids.push(at.and(after.as_ref().map(|k| k.id)));
        limits.push(*limit);
    }
    Prepared(
        diesel::sql_query(SQL)
            .bind::<Array<Nullable<Timestamptz>>, _>(ats)
            .bind::<Array<Nullable<BigInt>>, _>(ids)
            .bind::<Array<BigInt>, _>(limits),
    )
    .load(conn)
    .await
}

/// Number of reviews on the platform (a maintained counter).
pub async fn feed_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    platform_counters::table
        .find("reviews")
        .select(platform_counters::value)
        .first(conn)
        .await
}

/// One page of reviews by the users `viewer` follows, newest first.
pub async fn home_feed_page(
    conn: &mut AsyncPgConnection,
    viewer: i64,
    after: Option<&Keyset>,
    limit: i64,
) -> QueryResult<Vec<ReviewRow>> {
    let followees = follows::table
        .filter(follows::follower_id.eq(viewer))
        .select(follows::followee_id);
    let mut q = reviews::table
        .filter(reviews::author_id.eq_any(followees))
        .into_boxed();
    if let Some(k) = after
        && let Some(at) = k.as_time()
    {
        q = q.filter(RowLt::new(
            reviews::created_at,
            reviews::id,
            at.into_sql::<Timestamptz>(),
            k.id.into_sql::<BigInt>(),
        ));
    }
    q.order((reviews::created_at.desc(), reviews::id.desc()))
        .limit(limit)
        .select(ReviewRow::as_select())
        .load(conn)
        .await
}

/// Number of reviews in `viewer`'s home feed (sum of maintained counters).
pub async fn home_feed_count(conn: &mut AsyncPgConnection, viewer: i64) -> QueryResult<i64> {
    let sum: Option<i64> = follows::table
        .inner_join(users::table.on(users::id.eq(follows::followee_id)))
        .filter(follows::follower_id.eq(viewer))
        .select(diesel::dsl::sum(users::review_count))
        .first(conn)
        .await?;
    Ok(sum.unwrap_or(0))
}

/// Pages of reviews for many titles at once.
pub async fn by_titles(
    conn: &mut AsyncPgConnection,
    sort: ReviewSort,
    keys: &[PageKey],
) -> QueryResult<Vec<ReviewRow>> {
    let order = match sort {
        ReviewSort::Newest => LateralOrder {
            table: "reviews",
            parent_col: "title_id",
            sort_col: "created_at",
            by_time: true,
            descending: true,
        },
        ReviewSort::MostLiked => LateralOrder {
            table: "reviews",
            parent_col: "title_id",
            sort_col: "like_count",
            by_time: false,
            descending: true,
        },
    };
    lateral(conn, order, keys).await
}

/// Pages of reviews for many authors at once, newest first.
pub async fn by_authors(
    conn: &mut AsyncPgConnection,
    keys: &[PageKey],
) -> QueryResult<Vec<ReviewRow>> {
    let order = LateralOrder {
        table: "reviews",
        parent_col: "author_id",
        sort_col: "created_at",
        by_time: true,
        descending: true,
    };
    lateral(conn, order, keys).await
}

/// Inserts a review; a second review of a title by one author fails on
/// `reviews_author_id_title_id_key`.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewReview<'_>) -> QueryResult<ReviewRow> {
    diesel::insert_into(reviews::table)
        .values(new)
        .returning(ReviewRow::as_returning())
        .get_result(conn)
        .await
}

/// The review, locked for update until the transaction ends.
pub async fn lock(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ReviewRow>> {
    reviews::table
        .find(id)
        .for_update()
        .select(ReviewRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A review by id.
pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ReviewRow>> {
    reviews::table
        .find(id)
        .select(ReviewRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Applies `patch` to a review and stamps `updated_at` with the database
/// clock (the clock `created_at` came from, so `updatedAt >= createdAt`).
pub async fn edit(
    conn: &mut AsyncPgConnection,
    id: i64,
    patch: &ReviewPatch<'_>,
) -> QueryResult<ReviewRow> {
    diesel::update(reviews::table.find(id))
        .set((patch, reviews::updated_at.eq(diesel::dsl::now)))
        .returning(ReviewRow::as_returning())
        .get_result(conn)
        .await
}

/// Applies `patch` to a review.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: i64,
    patch: &ReviewPatch<'_>,
) -> QueryResult<ReviewRow> {
    diesel::update(reviews::table.find(id))
        .set(patch)
        .returning(ReviewRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes a review (its likes and comments go with it).
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ReviewRow>> {
    diesel::delete(reviews::table.find(id))
        .returning(ReviewRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
