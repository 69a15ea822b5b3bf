//! Relay connections: `PageInfo`, the three connection types, page-size and
//! cursor argument checks, and the lazily computed `totalCount`.

use async_graphql::{Context, Object, SimpleObject};

use super::{
    comment::Comment,
    context::{ContextExt, ttl},
    fast::Lean,
    review::Review,
    title::Title,
};
use crate::{
    cache::tags,
    db::{
        self,
        cursor::{Keyset, SortKind},
        titles::TitleFilter,
    },
    error::{AppError, AppResult},
};

/// Largest page a client may ask for.
pub const MAX_PAGE: i32 = 100;

/// Validates a `first` argument (`None` → `default`); returns the page size.
pub fn page_size(first: Option<i32>, default: i32) -> AppResult<i64> {
    let first = first.unwrap_or(default);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(AppError::bad_input(
            "first",
            format!("first must be between 0 and {MAX_PAGE}, got {first}"),
        ));
    }
    Ok(i64::from(first))
}

/// Decodes an `after` argument for the list tagged `tag`.
pub fn decode_after(after: Option<&str>, tag: &str, kind: SortKind) -> AppResult<Option<Keyset>> {
    match after {
        None => Ok(None),
        Some(c) => Keyset::decode(c, tag, kind)
            .map(Some)
            .ok_or_else(|| AppError::bad_input("after", "`after` is not a cursor of this list")),
    }
}

/// Information about pagination in a connection.
#[derive(Clone, Debug, Default, SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items precede this page (true when paginating with `after`).
    pub has_previous_page: bool,
    /// Cursor of the first item of this page.
    pub start_cursor: Option<String>,
    /// Cursor of the last item of this page; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// Where a connection's `totalCount` comes from; read only when asked for.
#[derive(Clone, Debug)]
pub enum Total {
    /// Already known (a maintained counter on the parent row).
    Known(i64),
    /// All reviews.
    Feed,
    /// Reviews by the users this user follows.
    HomeFeed(i64),
    /// Titles matching a filter.
    Titles(TitleFilter),
}

impl Total {
    async fn resolve(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let n = match self {
            Total::Known(n) => *n,
            other => {
                ctx.tag(tags::COUNTS.into(), ttl::LIST)?;
                let services = ctx.services()?;
                let mut conn = services.db.conn().await?;
                match other {
                    Total::Feed => db::reviews::feed_count(&mut conn).await?,
                    Total::HomeFeed(viewer) => {
                        db::reviews::home_feed_count(&mut conn, *viewer).await?
                    }
                    Total::Titles(filter) => db::titles::count(&mut conn, filter).await?,
                    Total::Known(n) => *n,
                }
            }
        };
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// Splits `rows` (fetched with limit `first + 1`) into a page.
pub fn paginate<R, N>(
    mut rows: Vec<R>,
    first: i64,
    had_after: bool,
    cursor: impl Fn(&R) -> String,
    node: impl Fn(R) -> N,
) -> (Vec<(String, N)>, PageInfo) {
    let has_next_page = rows.len() as i64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(0));
    let edges: Vec<(String, N)> = rows.into_iter().map(|r| (cursor(&r), node(r))).collect();
    let info = PageInfo {
        has_next_page,
        has_previous_page: had_after,
        start_cursor: edges.first().map(|(c, _)| c.clone()),
        end_cursor: edges.last().map(|(c, _)| c.clone()),
    };
    (edges, info)
}

macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ".")]
        pub struct $conn {
            edges: Vec<Lean<$edge>>,
            page_info: PageInfo,
            total: Total,
        }

        impl $conn {
            /// Builds the connection from rows fetched with limit `first + 1`.
            pub fn new<R>(
                rows: Vec<R>,
                first: i64,
                had_after: bool,
                cursor: impl Fn(&R) -> String,
                node: impl Fn(R) -> $node,
                total: Total,
            ) -> Self {
                let (edges, page_info) = paginate(rows, first, had_after, cursor, node);
                let edges = edges
                    .into_iter()
                    .map(|(cursor, node)| {
                        Lean($edge {
                            cursor,
                            node: Lean(node),
                        })
                    })
                    .collect();
                Self {
                    edges,
                    page_info,
                    total,
                }
            }
        }

        #[Object]
        impl $conn {
            /// The items of this page, each with its cursor.
            async fn edges(&self) -> &[Lean<$edge>] {
                &self.edges
            }

            /// Pagination state of this page.
            // computed in memory with the page: free, not multiplied by the page size
            #[graphql(complexity = 0)]
            async fn page_info(&self) -> &PageInfo {
                &self.page_info
            }

            #[doc = concat!("Number of ", $what, " in the whole list, not just this page.")]
            async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
                Ok(self.total.resolve(ctx).await?)
            }
        }

        #[doc = concat!("One of ", $what, " with its cursor.")]
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Opaque position of this item; pass it as `after` to continue after it.
            pub cursor: String,
            /// The item.
            pub node: Lean<$node>,
        }
    };
}

connection!(TitleConnection, TitleEdge, Title, "titles");
connection!(ReviewConnection, ReviewEdge, Review, "reviews");
connection!(CommentConnection, CommentEdge, Comment, "comments");
