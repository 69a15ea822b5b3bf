//! Comments on reviews.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{
    cursor::Keyset,
    page::{LateralOrder, PageKey, lateral},
    schema::comments,
};

/// A comment row.
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = comments, check_for_backend(diesel::pg::Pg))]
pub struct CommentRow {
    pub id: i64,
    pub review_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl CommentRow {
    /// Position in a review's comments (oldest first).
    pub fn keyset(&self) -> Keyset {
        Keyset::time(self.created_at, self.id)
    }
}

/// Comments with these ids.
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<CommentRow>> {
    comments::table
        .filter(comments::id.eq_any(ids))
        .select(CommentRow::as_select())
        .load(conn)
        .await
}

/// Pages of comments for many reviews at once, oldest first (reading order).
pub async fn by_reviews(
    conn: &mut AsyncPgConnection,
    keys: &[PageKey],
) -> QueryResult<Vec<CommentRow>> {
    let order = LateralOrder {
        table: "comments",
        parent_col: "review_id",
        sort_col: "created_at",
        by_time: true,
        descending: false,
    };
    lateral(conn, order, keys).await
}

/// Adds a comment.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    review_id: i64,
    author_id: i64,
    body: &str,
) -> QueryResult<CommentRow> {
    diesel::insert_into(comments::table)
        .values((
            comments::review_id.eq(review_id),
            comments::author_id.eq(author_id),
            comments::body.eq(body),
        ))
        .returning(CommentRow::as_returning())
        .get_result(conn)
        .await
}

/// The comment, locked for update until the transaction ends.
pub async fn lock(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<CommentRow>> {
    comments::table
        .find(id)
        .for_update()
        .select(CommentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a comment.
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<CommentRow>> {
    diesel::delete(comments::table.find(id))
        .returning(CommentRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
