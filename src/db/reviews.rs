//! Reviews: rows and queries (feeds, per-title and per-author pages, writes).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{
    cursor::Keyset,
    page::{LateralOrder, PageKey, lateral},
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

/// One page of all reviews, newest first.
pub async fn feed_page(
    conn: &mut AsyncPgConnection,
    after: Option<&Keyset>,
    limit: i64,
) -> QueryResult<Vec<ReviewRow>> {
    let mut q = reviews::table.into_boxed();
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
