//! Users: rows and queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::users;

/// A user as the API shows it (no password hash).
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub bio: Option<String>,
    pub role: String,
    pub review_count: i32,
    pub follower_count: i32,
    pub following_count: i32,
    pub created_at: DateTime<Utc>,
}

/// A user to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub bio: Option<&'a str>,
    pub password_hash: &'a str,
    pub role: &'a str,
}

/// Users with these ids, in no particular order.
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)
        .await
}

/// The user with this (lower-case) username.
pub async fn by_username(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user by id.
pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The stored role of a user (`MEMBER`/`ADMIN`); `None` when there is no such user.
/// Authorization reads this, never a claim in the token, so a demotion
/// takes effect at once.
pub async fn role_of(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<String>> {
    users::table
        .find(id)
        .select(users::role)
        .first(conn)
        .await
        .optional()
}

/// Locks the rows of these users in id order until the transaction ends and
/// returns the ids that exist. Two users following each other at the same
/// moment would otherwise update the same two counter rows in opposite
/// orders and deadlock. `FOR NO KEY UPDATE` does not block foreign-key
/// checks (other users' inserts referencing these rows).
pub async fn lock_in_order(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    users::table
        .filter(users::id.eq_any(ids))
        .order(users::id.asc())
        .for_no_key_update()
        .select(users::id)
        .load(conn)
        .await
}

/// Id and password hash of the user with this username, for sign-in.
pub async fn credentials(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<Option<(i64, String)>> {
    users::table
        .filter(users::username.eq(username))
        .select((users::id, users::password_hash))
        .first(conn)
        .await
        .optional()
}

/// Inserts a user; a taken username fails on `users_username_key`.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets a user's role; returns the updated row, or `None` for an unknown username.
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    username: &str,
    role: &str,
) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::role.eq(role))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
