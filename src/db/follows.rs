//! Follows between users.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::follows;

/// Which of `user_ids` the follower follows.
pub async fn followed_by(
    conn: &mut AsyncPgConnection,
    follower: i64,
    user_ids: &[i64],
) -> QueryResult<Vec<i64>> {
    follows::table
        .filter(follows::follower_id.eq(follower))
        .filter(follows::followee_id.eq_any(user_ids))
        .select(follows::followee_id)
        .load(conn)
        .await
}

/// Follows a user; returns whether a follow was added.
pub async fn follow(
    conn: &mut AsyncPgConnection,
    follower: i64,
    followee: i64,
) -> QueryResult<bool> {
    let n = diesel::insert_into(follows::table)
        .values((
            follows::follower_id.eq(follower),
            follows::followee_id.eq(followee),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Unfollows a user; returns whether a follow was removed.
pub async fn unfollow(
    conn: &mut AsyncPgConnection,
    follower: i64,
    followee: i64,
) -> QueryResult<bool> {
    let n = diesel::delete(follows::table.find((follower, followee)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}
