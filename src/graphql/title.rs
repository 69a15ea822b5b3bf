//! Titles: the `Title` type, `TitleQuery` (title, titles, trendingTitles)
//! and `TitleMutation` (createTitle).

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::Utc;
use diesel_async::AsyncConnection;

use super::{
    connection::{ReviewConnection, TitleConnection, Total, decode_after, page_size},
    context::{ContextExt, load_title, ttl},
    cost,
    fast::Lean,
    ids,
    loader::TitleReviewsKey,
    review::{Review, ReviewOrder},
    scalars::DateTime,
    validate, write,
};
use crate::{
    cache::tags,
    db::{
        self,
        cursor::SortKind,
        page::PageKey,
        reviews::ReviewSort,
        titles::{NewTitle, TitleFilter, TitleRow, TitleSort},
    },
    error::{AppError, AppResult},
};

/// What kind of work a title is.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum TitleKind {
    /// A feature film.
    Movie,
    /// An open-ended series.
    Series,
    /// A series with a planned end.
    Miniseries,
    /// Japanese animation, film or series.
    Anime,
}

impl TitleKind {
    /// The stored form.
    pub fn as_db(self) -> &'static str {
        match self {
            Self::Movie => "MOVIE",
            Self::Series => "SERIES",
            Self::Miniseries => "MINISERIES",
            Self::Anime => "ANIME",
        }
    }

    fn from_db(s: &str) -> AppResult<Self> {
        Ok(match s {
            "MOVIE" => Self::Movie,
            "SERIES" => Self::Series,
            "MINISERIES" => Self::Miniseries,
            "ANIME" => Self::Anime,
            other => {
                return Err(AppError::Internal(format!(
                    "unknown title kind {other:?} in database"
                )));
            }
        })
    }
}

/// Orders of the title list.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum TitleOrder {
    /// Alphabetical by name.
    Name,
    /// Most recently added first.
    Newest,
    /// Highest average rating first; unrated titles last.
    TopRated,
    /// Most reviews first.
    MostReviewed,
}

impl TitleOrder {
    fn sort(self) -> (TitleSort, &'static str, SortKind) {
        match self {
            Self::Name => (TitleSort::Name, "TN", SortKind::Text),
            Self::Newest => (TitleSort::Newest, "TC", SortKind::Time),
            Self::TopRated => (TitleSort::TopRated, "TR", SortKind::Float),
            Self::MostReviewed => (TitleSort::MostReviewed, "TM", SortKind::Int),
        }
    }
}

/// A movie, series, miniseries or anime that people review.
///
/// The row is shared: the loader hands one `Arc` to every field (and every
/// concurrent request) that asked for it, instead of a copy each.
pub struct Title(pub Arc<TitleRow>);

impl From<TitleRow> for Title {
    fn from(row: TitleRow) -> Self {
        Self(Arc::new(row))
    }
}

#[Object]
impl Title {
    /// Global id.
    pub async fn id(&self) -> ID {
        ids::to_global("Title", self.0.id)
    }

    /// Movie, series, miniseries or anime.
    async fn kind(&self) -> Result<TitleKind> {
        Ok(TitleKind::from_db(&self.0.kind)?)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Year of first release.
    async fn release_year(&self) -> Option<i32> {
        self.0.release_year
    }

    /// Short plot summary.
    async fn synopsis(&self) -> Option<&str> {
        self.0.synopsis.as_deref()
    }

    /// Genres, lower-case (e.g. `drama`, `sci-fi`).
    async fn genres(&self) -> &[String] {
        &self.0.genres
    }

    /// Mean rating (1-10) over all reviews; null when there are none.
    async fn average_rating(&self) -> Option<f64> {
        self.0.avg_rating.map(|a| (a * 100.0).round() / 100.0)
    }

    /// Number of reviews of this title.
    async fn review_count(&self) -> i32 {
        self.0.review_count
    }

    /// Reviews of this title.
    #[graphql(complexity = "cost::plus(1, cost::list(first, 10, child_complexity))")]
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 10)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(
            desc = "Order of the reviews.",
            default_with = "Some(ReviewOrder::Newest)"
        )]
        order_by: Option<ReviewOrder>,
    ) -> Result<ReviewConnection> {
        let first = page_size(first, 10)?;
        let (sort, tag) = match order_by.unwrap_or(ReviewOrder::Newest) {
            ReviewOrder::Newest => (ReviewSort::Newest, "RN"),
            ReviewOrder::MostLiked => (ReviewSort::MostLiked, "RL"),
        };
        let kind = if sort == ReviewSort::Newest {
            SortKind::Time
        } else {
            SortKind::Int
        };
        let after = decode_after(after.as_deref(), tag, kind)?;
        let had_after = after.is_some();
        ctx.tag(tags::title_reviews(self.0.id), ttl::LIST)?;
        let key = TitleReviewsKey {
            sort,
            page: PageKey {
                parent: self.0.id,
                after,
                limit: first + 1,
            },
        };
        let rows = ctx.loader()?.load_one(key).await?.unwrap_or_default();
        Review::tag_all(ctx, &rows)?;
        Ok(ReviewConnection::new(
            rows,
            first,
            had_after,
            |r| r.keyset(sort).encode(tag),
            Review,
            Total::Known(i64::from(self.0.review_count)),
        ))
    }

    /// When the title was added.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

impl Title {
    /// Tags every title of a list as a dependency of the result.
    pub fn tag_all(ctx: &Context<'_>, rows: &[TitleRow]) -> AppResult<()> {
        for r in rows {
            ctx.tag(tags::title(r.id), ttl::TITLE)?;
        }
        Ok(())
    }
}

/// Title queries.
#[derive(Default)]
pub struct TitleQuery;

#[Object]
impl TitleQuery {
    /// A title by global id; null when there is none.
    #[graphql(complexity = "cost::plus(cost::ROOT, child_complexity)")]
    async fn title(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the title.")] id: ID,
    ) -> Result<Option<Title>> {
        let Some(id) = ids::decode(&id, "Title", "id")? else {
            return Ok(None);
        };
        Ok(load_title(ctx, id).await?.map(Title))
    }

    /// Titles, filtered and ordered, with cursor pagination.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "cost::plus(cost::ROOT, cost::list(first, 20, child_complexity))")]
    async fn titles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "Only titles of this kind.")] kind: Option<TitleKind>,
        #[graphql(desc = "Only titles with this genre (case-insensitive).")] genre: Option<String>,
        #[graphql(desc = "Case-insensitive substring of the name, at most 100 characters.")] search: Option<String>,
        #[graphql(desc = "Order of the list.", default_with = "Some(TitleOrder::Name)")]
        order_by: Option<TitleOrder>,
    ) -> Result<TitleConnection> {
        let first = page_size(first, 20)?;
        let order_by = order_by.unwrap_or(TitleOrder::Name);
        let (sort, tag, sort_kind) = order_by.sort();
        let after = decode_after(after.as_deref(), tag, sort_kind)?;
        let search = search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if search.as_ref().is_some_and(|s| s.chars().count() > 100) {
            return Err(
                AppError::bad_input("search", "search is limited to 100 characters").into(),
            );
        }
        let genre = genre
            .map(|g| g.trim().to_lowercase())
            .filter(|g| !g.is_empty());
        for (field, value) in [("search", &search), ("genre", &genre)] {
            if let Some(v) = value {
                validate::no_nul(field, v)?;
            }
        }
        let filter = TitleFilter {
            kind: kind.map(|k| k.as_db().to_owned()),
            genre,
            search,
        };
        ctx.tag(tags::TITLES.into(), ttl::LIST)?;
        if matches!(order_by, TitleOrder::TopRated | TitleOrder::MostReviewed) {
            // the order moves with every review written
            ctx.tag(tags::TITLES_RANKED.into(), ttl::LIST)?;
        }
        let rows = {
            let mut conn = ctx.services()?.db.conn().await.map_err(AppError::from)?;
            db::titles::page(&mut conn, &filter, sort, after.as_ref(), first + 1)
                .await
                .map_err(AppError::from)?
        };
        Title::tag_all(ctx, &rows)?;
        Ok(TitleConnection::new(
            rows,
            first,
            after.is_some(),
            |r| r.keyset(sort).encode(tag),
            Title::from,
            Total::Titles(filter),
        ))
    }

    /// Titles with the most review and like activity in the last 24 hours
    /// (a review counts as 3, a like as 1).
    #[graphql(complexity = "cost::plus(cost::ROOT, cost::list(first, 10, child_complexity))")]
    async fn trending_titles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many titles, 0 to 100.", default = 10)] first: Option<i32>,
    ) -> Result<Vec<Lean<Title>>> {
        let first = page_size(first, 10)?;
        ctx.tag(tags::TRENDING.into(), ttl::LIST)?;
        let since = Utc::now() - chrono::Duration::hours(24);
        let rows = {
            let mut conn = ctx.services()?.db.conn().await.map_err(AppError::from)?;
            db::titles::trending(&mut conn, since, first)
                .await
                .map_err(AppError::from)?
        };
        Title::tag_all(ctx, &rows)?;
        Ok(rows.into_iter().map(|r| Lean(Title::from(r))).collect())
    }
}

/// A new title.
#[derive(InputObject)]
pub struct CreateTitleInput {
    /// Movie, series, miniseries or anime.
    pub kind: TitleKind,
    /// Display name, 1 to 200 characters, stored as written.
    pub name: String,
    /// Year of first release, 1850 to 2200.
    pub release_year: Option<i32>,
    /// Short plot summary, at most 5,000 characters.
    pub synopsis: Option<String>,
    /// At most 10 genres of 1 to 40 characters; stored trimmed, lower-case, without duplicates.
    pub genres: Option<Vec<String>>,
}

/// Catalogue writes.
#[derive(Default)]
pub struct TitleMutation;

#[Object]
impl TitleMutation {
    /// ADMIN only.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn create_title(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The title.")] input: CreateTitleInput,
    ) -> Result<Title> {
        Ok(create(ctx, input).await?)
    }
}

async fn create(ctx: &Context<'_>, input: CreateTitleInput) -> AppResult<Title> {
    let viewer = ctx.require_user()?;
    validate::text("input.name", &input.name, 1, validate::TITLE_NAME_MAX)?;
    if let Some(year) = input.release_year {
        validate::range("input.releaseYear", year, 1850, 2200)?;
    }
    if let Some(synopsis) = &input.synopsis {
        validate::text("input.synopsis", synopsis, 0, validate::SYNOPSIS_MAX)?;
    }
    let genres = validate::genres("input.genres", input.genres.as_deref().unwrap_or_default())?;
    let services = write::admit(ctx, viewer).await?;
    let new = NewTitle {
        kind: input.kind.as_db(),
        name: &input.name,
        release_year: input.release_year,
        synopsis: input.synopsis.as_deref(),
        genres: &genres,
    };
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            write::require_admin(c, viewer, "add titles").await?;
            Ok(db::titles::insert(c, &new).await?)
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::title_created(row.id))
        .await;
    Ok(Title::from(row))
}
