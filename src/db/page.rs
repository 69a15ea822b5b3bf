//! Batched keyset pages of child rows for many parents in one statement
//! (`unnest` of the keys, `CROSS JOIN LATERAL` per parent): nested
//! connections cost one query per request shape, not one per parent.

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{Array, BigInt, Nullable, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cursor::Keyset;

/// One parent's page request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// Parent row id (title, author, review…).
    pub parent: i64,
    /// Position to continue after.
    pub after: Option<Keyset>,
    /// Rows wanted (page size plus one, to tell whether more exist).
    pub limit: i64,
}

/// How child rows are ordered.
#[derive(Clone, Copy, Debug)]
pub struct LateralOrder {
    /// Child table.
    pub table: &'static str,
    /// Column pointing at the parent.
    pub parent_col: &'static str,
    /// Sort column (a timestamp or an integer).
    pub sort_col: &'static str,
    /// Whether the sort column is a timestamp (else an integer).
    pub by_time: bool,
    /// Newest/largest first.
    pub descending: bool,
}

impl LateralOrder {
    fn sql(&self) -> String {
        let (cmp, dir) = if self.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let val_ty = if self.by_time { "timestamptz" } else { "int8" };
        let LateralOrder {
            table,
            parent_col,
            sort_col,
            ..
        } = self;
        format!(
            "SELECT r.* FROM unnest($1::int8[], $2::{val_ty}[], $3::int8[], $4::int8[]) AS k(parent, c_val, c_id, lim)
             CROSS JOIN LATERAL (
                 SELECT * FROM {table} x
                  WHERE x.{parent_col} = k.parent
                    AND (k.c_id IS NULL OR (x.{sort_col}, x.id) {cmp} (k.c_val, k.c_id))
                  ORDER BY x.{sort_col} {dir}, x.id {dir}
                  LIMIT k.lim
             ) r"
        )
    }
}

/// Loads every key's page in one statement; rows come back grouped by the
/// order of `keys` but the caller should group by parent column.
pub async fn lateral<T>(
    conn: &mut AsyncPgConnection,
    order: LateralOrder,
    keys: &[PageKey],
) -> QueryResult<Vec<T>>
where
    T: QueryableByName<Pg> + Send + 'static,
{
    let parents: Vec<i64> = keys.iter().map(|k| k.parent).collect();
    let ids: Vec<Option<i64>> = keys
        .iter()
        .map(|k| k.after.as_ref().map(|a| a.id))
        .collect();
    let limits: Vec<i64> = keys.iter().map(|k| k.limit).collect();
    let query = diesel::sql_query(order.sql()).bind::<Array<BigInt>, _>(parents);
    if order.by_time {
        let vals: Vec<Option<DateTime<Utc>>> = keys
            .iter()
            .map(|k| k.after.as_ref().and_then(Keyset::as_time))
            .collect();
        Prepared(
            query
                .bind::<Array<Nullable<Timestamptz>>, _>(vals)
                .bind::<Array<Nullable<BigInt>>, _>(ids)
                .bind::<Array<BigInt>, _>(limits),
        )
        .load(conn)
        .await
    } else {
        let vals: Vec<Option<i64>> = keys
            .iter()
            .map(|k| k.after.as_ref().and_then(Keyset::as_int))
            .collect();
        Prepared(
            query
                .bind::<Array<Nullable<BigInt>>, _>(vals)
                .bind::<Array<Nullable<BigInt>>, _>(ids)
                .bind::<Array<BigInt>, _>(limits),
        )
        .load(conn)
        .await
    }
}

/// A raw SQL statement (`diesel::sql_query` with its binds) kept in the
/// connection's prepared-statement cache, keyed by its text.
///
/// Diesel never caches `sql_query`: it cannot know that a text is not built
/// from user input, which would grow the cache without bound. Ours are a
/// fixed handful of texts (one per [`LateralOrder`] and the batched feed),
/// and an uncached statement costs, on every execution, a separate prepare
/// round trip (diesel-async prepares it unnamed, then binds) and Postgres's
/// planning of it (~0.5 ms for a lateral page on the benchmark data). Only
/// wrap texts that come from a bounded set, never from input.
#[derive(Debug)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache keys the statement by its SQL text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
