//! Batched keyset pages of child rows for many parents in one statement
//! (`unnest` of the keys, `CROSS JOIN LATERAL` per parent): nested
//! connections cost one query per request shape, not one per parent.

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    pg::Pg,
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
        query
            .bind::<Array<Nullable<Timestamptz>>, _>(vals)
            .bind::<Array<Nullable<BigInt>>, _>(ids)
            .bind::<Array<BigInt>, _>(limits)
            .load(conn)
            .await
    } else {
        let vals: Vec<Option<i64>> = keys
            .iter()
            .map(|k| k.after.as_ref().and_then(Keyset::as_int))
            .collect();
        query
            .bind::<Array<Nullable<BigInt>>, _>(vals)
            .bind::<Array<Nullable<BigInt>>, _>(ids)
            .bind::<Array<BigInt>, _>(limits)
            .load(conn)
            .await
    }
}
