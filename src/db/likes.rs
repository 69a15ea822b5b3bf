//! Review likes.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::review_likes;

/// Which of `review_ids` the user has liked.
pub async fn liked_by(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    review_ids: &[i64],
) -> QueryResult<Vec<i64>> {
    review_likes::table
        .filter(review_likes::user_id.eq(user_id))
        .filter(review_likes::review_id.eq_any(review_ids))
        .select(review_likes::review_id)
        .load(conn)
        .await
}

/// Likes a review; returns whether a like was added (false: already liked).
pub async fn like(conn: &mut AsyncPgConnection, user_id: i64, review_id: i64) -> QueryResult<bool> {
    let n = diesel::insert_into(review_likes::table)
        .values((
            review_likes::review_id.eq(review_id),
            review_likes::user_id.eq(user_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Removes a like; returns whether one was removed.
pub async fn unlike(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    review_id: i64,
) -> QueryResult<bool> {
    let n = diesel::delete(review_likes::table.find((review_id, user_id)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}
