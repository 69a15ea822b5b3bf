//! Titles: rows and queries, including keyset-paginated listing and trending.

use chrono::{DateTime, Utc};
use diesel::{
    pg::Pg,
    prelude::*,
    sql_types::{BigInt, Integer, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{
    cursor::{Keyset, SortValue},
    row::{RowGt, RowLt},
    schema::{platform_counters, titles},
};

/// A title row.
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = titles, check_for_backend(diesel::pg::Pg))]
pub struct TitleRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub release_year: Option<i32>,
    pub synopsis: Option<String>,
    pub genres: Vec<String>,
    pub review_count: i32,
    pub rating_sum: i64,
    pub avg_rating: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// A title to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = titles)]
pub struct NewTitle<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub release_year: Option<i32>,
    pub synopsis: Option<&'a str>,
    pub genres: &'a [String],
}

/// Sort orders of the title list (mirror of the GraphQL `TitleOrder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TitleSort {
    Name,
    Newest,
    TopRated,
    MostReviewed,
}

/// Filters of the title list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TitleFilter {
    /// Stored kind, e.g. `MOVIE`.
    pub kind: Option<String>,
    /// Lower-case genre the title must have.
    pub genre: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
}

impl TitleFilter {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.genre.is_none() && self.search.is_none()
    }
}

impl TitleRow {
    /// This row's position in a list sorted by `sort`.
    pub fn keyset(&self, sort: TitleSort) -> Keyset {
        let value = match sort {
            TitleSort::Name => SortValue::Text(self.name.clone()),
            TitleSort::Newest => return Keyset::time(self.created_at, self.id),
            TitleSort::TopRated => SortValue::Float(self.avg_rating.map(f64::to_bits)),
            TitleSort::MostReviewed => SortValue::Int(i64::from(self.review_count)),
        };
        Keyset { value, id: self.id }
    }
}

type Boxed<'a> = titles::BoxedQuery<'a, Pg>;

fn filtered(filter: &TitleFilter) -> Boxed<'_> {
    let mut q = titles::table.into_boxed();
    if let Some(kind) = &filter.kind {
        q = q.filter(titles::kind.eq(kind));
    }
    if let Some(genre) = &filter.genre {
        q = q.filter(titles::genres.contains(vec![genre.clone()]));
    }
    if let Some(search) = &filter.search {
        // ILIKE with the pattern characters escaped, served by the trigram index
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        q = q.filter(titles::name.ilike(format!("%{escaped}%")));
    }
    q
}

/// One page of titles after `after`, `limit` rows at most.
pub async fn page(
    conn: &mut AsyncPgConnection,
    filter: &TitleFilter,
    sort: TitleSort,
    after: Option<&Keyset>,
    limit: i64,
) -> QueryResult<Vec<TitleRow>> {
    let mut q = filtered(filter);
    q = match sort {
        TitleSort::Name => {
            if let Some(Keyset {
                value: SortValue::Text(name),
                id,
            }) = after
            {
                q = q.filter(RowGt::new(
                    titles::name,
                    titles::id,
                    name.clone().into_sql::<Text>(),
                    id.into_sql::<BigInt>(),
                ));
            }
            q.order((titles::name.asc(), titles::id.asc()))
        }
        TitleSort::Newest => {
            if let Some(k) = after
                && let Some(at) = k.as_time()
            {
                q = q.filter(RowLt::new(
                    titles::created_at,
                    titles::id,
                    at.into_sql::<Timestamptz>(),
                    k.id.into_sql::<BigInt>(),
                ));
            }
            q.order((titles::created_at.desc(), titles::id.desc()))
        }
        TitleSort::TopRated => {
            if let Some(Keyset {
                value: SortValue::Float(bits),
                id,
            }) = after
            {
                q = match bits.map(f64::from_bits) {
                    Some(v) => q.filter(
                        titles::avg_rating
                            .lt(v)
                            .or(titles::avg_rating.eq(v).and(titles::id.lt(*id)))
                            .or(titles::avg_rating.is_null()),
                    ),
                    None => q.filter(titles::avg_rating.is_null().and(titles::id.lt(*id))),
                };
            }
            q.order((titles::avg_rating.desc().nulls_last(), titles::id.desc()))
        }
        TitleSort::MostReviewed => {
            if let Some(k) = after
                && let Some(n) = k.as_int()
            {
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                q = q.filter(RowLt::new(
                    titles::review_count,
                    titles::id,
                    n.into_sql::<Integer>(),
                    k.id.into_sql::<BigInt>(),
                ));
            }
            q.order((titles::review_count.desc(), titles::id.desc()))
        }
    };
    q.limit(limit)
        .select(TitleRow::as_select())
        .load(conn)
        .await
}

/// Number of titles matching `filter`; unfiltered it reads a maintained counter.
pub async fn count(conn: &mut AsyncPgConnection, filter: &TitleFilter) -> QueryResult<i64> {
    if filter.is_empty() {
        return platform_counters::table
            .find("titles")
            .select(platform_counters::value)
            .first(conn)
            .await;
    }
    filtered(filter).count().get_result(conn).await
}

/// Titles with these ids, in no particular order.
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<TitleRow>> {
    titles::table
        .filter(titles::id.eq_any(ids))
        .select(TitleRow::as_select())
        .load(conn)
        .await
}

/// Titles ranked by activity since `since`: a review counts 3, a like 1.
pub async fn trending(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<TitleRow>> {
    diesel::sql_query(
        "SELECT t.* FROM titles t JOIN (
             SELECT title_id, sum(w) AS score FROM (
                 SELECT title_id, 3 AS w FROM reviews WHERE created_at > $1
                 UNION ALL
                 SELECT r.title_id, 1 FROM review_likes l JOIN reviews r ON r.id = l.review_id
                  WHERE l.created_at > $1
             ) activity GROUP BY title_id ORDER BY score DESC, title_id DESC LIMIT $2
         ) s ON s.title_id = t.id
         ORDER BY s.score DESC, t.id DESC",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Inserts a title.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewTitle<'_>) -> QueryResult<TitleRow> {
    diesel::insert_into(titles::table)
        .values(new)
        .returning(TitleRow::as_returning())
        .get_result(conn)
        .await
}
