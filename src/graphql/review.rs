//! Reviews: the `Review` type, `ReviewQuery` (review, feed, homeFeed) and
//! `ReviewMutation` (create, update, delete), `ReviewSubscription` (reviewAdded).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, Subscription};
use diesel_async::AsyncConnection;
use futures::{Stream, StreamExt};

use super::{
    comment::Comment,
    connection::{CommentConnection, ReviewConnection, Total, decode_after, page_size},
    context::{ContextExt, load_review, load_title, load_user, must_exist, ttl},
    cost,
    fast::Lean,
    ids,
    loader::{FeedPageKey, ReviewCommentsKey, ReviewKey, ViewerLikedKey},
    scalars::DateTime,
    title::Title,
    user::User,
    validate, write,
};
use crate::{
    cache::tags,
    db::{
        self,
        cursor::SortKind,
        page::PageKey,
        reviews::{NewReview, ReviewPatch, ReviewRow, ReviewSort},
    },
    error::{AppError, AppResult},
    feed::Lagged,
};

/// Orders of a title's reviews.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum ReviewOrder {
    /// Most recent first.
    Newest,
    /// Most liked first.
    MostLiked,
}

/// One user's rating and write-up of one title.
pub struct Review(pub ReviewRow);

impl Review {
    /// Tags every review of a list as a dependency of the result.
    pub fn tag_all(ctx: &Context<'_>, rows: &[ReviewRow]) -> AppResult<()> {
        for r in rows {
            ctx.tag(tags::review(r.id), ttl::REVIEW)?;
        }
        Ok(())
    }
}

#[Object]
impl Review {
    /// Global id.
    pub async fn id(&self) -> ID {
        ids::to_global("Review", self.0.id)
    }

    /// The reviewed title.
    async fn title(&self, ctx: &Context<'_>) -> Result<Lean<Title>> {
        let row = load_title(ctx, self.0.title_id).await?;
        Ok(Lean(Title(must_exist(row, "title", self.0.title_id)?)))
    }

    /// Who wrote the review.
    async fn author(&self, ctx: &Context<'_>) -> Result<Lean<User>> {
        let row = load_user(ctx, self.0.author_id).await?;
        Ok(Lean(User(must_exist(row, "user", self.0.author_id)?)))
    }

    /// 1 to 10
    async fn rating(&self) -> i32 {
        i32::from(self.0.rating)
    }

    /// The review text, as written.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Whether the text reveals plot points.
    async fn contains_spoilers(&self) -> bool {
        self.0.contains_spoilers
    }

    /// Number of likes.
    async fn like_count(&self) -> i32 {
        self.0.like_count
    }

    /// Whether the signed-in viewer liked this review; false when anonymous. Viewer-specific.
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(viewer) = ctx.viewer_id()? else {
            return Ok(false);
        };
        ctx.tag(tags::review(self.0.id), ttl::REVIEW)?;
        let key = ViewerLikedKey {
            viewer,
            review: self.0.id,
        };
        Ok(ctx.loader()?.load_one(key).await?.unwrap_or(false))
    }

    /// Number of comments.
    async fn comment_count(&self) -> i32 {
        self.0.comment_count
    }

    /// Comments on this review, oldest first.
    #[graphql(complexity = "cost::plus(1, cost::list(first, 10, child_complexity))")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 10)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<CommentConnection> {
        let first = page_size(first, 10)?;
        let after = decode_after(after.as_deref(), "CO", SortKind::Time)?;
        let had_after = after.is_some();
        ctx.tag(tags::review_comments(self.0.id), ttl::LIST)?;
        let key = ReviewCommentsKey(PageKey {
            parent: self.0.id,
            after,
            limit: first + 1,
        });
        let rows = ctx.loader()?.load_one(key).await?.unwrap_or_default();
        Comment::tag_all(ctx, &rows)?;
        Ok(CommentConnection::new(
            rows,
            first,
            had_after,
            |r| r.keyset().encode("CO"),
            Comment,
            Total::Known(i64::from(self.0.comment_count)),
        ))
    }

    /// When the review was written.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// When the review was last edited (equals createdAt when never edited).
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// Review queries.
#[derive(Default)]
pub struct ReviewQuery;

#[Object]
impl ReviewQuery {
    /// A review by global id; null when there is none.
    #[graphql(complexity = "cost::plus(cost::ROOT, child_complexity)")]
    async fn review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review.")] id: ID,
    ) -> Result<Option<Review>> {
        let Some(id) = ids::decode(&id, "Review", "id")? else {
            return Ok(None);
        };
        Ok(load_review(ctx, id).await?.map(Review))
    }

    /// All reviews on the platform, newest first.
    #[graphql(complexity = "cost::plus(cost::ROOT, cost::list(first, 20, child_complexity))")]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<ReviewConnection> {
        let first = page_size(first, 20)?;
        let after = decode_after(after.as_deref(), "FD", SortKind::Time)?;
        let had_after = after.is_some();
        ctx.tag(tags::FEED.into(), ttl::LIST)?;
        // batched: concurrent requests' feed pages are one statement
        let rows = ctx
            .loader()?
            .load_one(FeedPageKey {
                after,
                limit: first + 1,
            })
            .await?
            .unwrap_or_default();
        Review::tag_all(ctx, &rows)?;
        Ok(ReviewConnection::new(
            rows,
            first,
            had_after,
            |r| r.keyset(ReviewSort::Newest).encode("FD"),
            Review,
            Total::Feed,
        ))
    }

    /// Reviews by the users the viewer follows, newest first. Requires sign-in.
    #[graphql(complexity = "cost::plus(cost::ROOT, cost::list(first, 20, child_complexity))")]
    async fn home_feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<ReviewConnection> {
        let viewer = ctx.require_user()?;
        let first = page_size(first, 20)?;
        let after = decode_after(after.as_deref(), "HF", SortKind::Time)?;
        ctx.tag(tags::FEED.into(), ttl::LIST)?;
        ctx.tag(tags::follows(viewer), ttl::LIST)?;
        let rows = {
            let mut conn = ctx.services()?.db.conn().await.map_err(AppError::from)?;
            db::reviews::home_feed_page(&mut conn, viewer, after.as_ref(), first + 1)
                .await
                .map_err(AppError::from)?
        };
        Review::tag_all(ctx, &rows)?;
        Ok(ReviewConnection::new(
            rows,
            first,
            after.is_some(),
            |r| r.keyset(ReviewSort::Newest).encode("HF"),
            Review,
            Total::HomeFeed(viewer),
        ))
    }
}

/// A new review.
#[derive(InputObject)]
pub struct CreateReviewInput {
    /// Global id of the title to review.
    pub title_id: ID,
    /// 1 to 10.
    pub rating: i32,
    /// The review text, 1 to 10,000 characters, stored as written.
    pub body: String,
    /// Whether the text reveals plot points.
    #[graphql(default_with = "Some(false)")]
    pub contains_spoilers: Option<bool>,
}

/// Changes to a review; omitted or null fields stay as they are.
#[derive(InputObject)]
pub struct UpdateReviewInput {
    /// New rating, 1 to 10.
    pub rating: Option<i32>,
    /// New text, 1 to 10,000 characters.
    pub body: Option<String>,
    /// New spoiler flag.
    pub contains_spoilers: Option<bool>,
}

/// Review writes: create, edit, delete (likes are in `like`).
#[derive(Default)]
pub struct ReviewMutation;

#[Object]
impl ReviewMutation {
    /// One review per user per title.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn create_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review.")] input: CreateReviewInput,
    ) -> Result<Review> {
        Ok(create(ctx, input).await?)
    }

    /// Author only.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn update_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review.")] id: ID,
        #[graphql(desc = "What to change.")] input: UpdateReviewInput,
    ) -> Result<Review> {
        Ok(update(ctx, &id, input).await?)
    }

    /// Author or ADMIN. Returns the deleted review's id.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn delete_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review.")] id: ID,
    ) -> Result<ID> {
        Ok(delete(ctx, &id).await?)
    }
}

const DUPLICATE_REVIEW: &[(&str, &str)] = &[(
    "reviews_author_id_title_id_key",
    "you already reviewed this title",
)];

async fn create(ctx: &Context<'_>, input: CreateReviewInput) -> AppResult<Review> {
    let viewer = ctx.require_user()?;
    let title_id = ids::require(&input.title_id, "Title", "input.titleId")?;
    let rating = validate::rating("input.rating", input.rating)?;
    validate::text("input.body", &input.body, 1, validate::REVIEW_BODY_MAX)?;
    let services = write::admit(ctx, viewer).await?;
    let new = NewReview {
        title_id,
        author_id: viewer,
        rating,
        body: &input.body,
        contains_spoilers: input.contains_spoilers.unwrap_or(false),
    };
    let mut conn = services.db.conn().await?;
    // the counters (title rating, user reviewCount, feed total) move in this
    // transaction by trigger; a concurrent duplicate waits on the unique
    // index and then fails on it, which is the CONFLICT below
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            db::reviews::insert(c, &new)
                .await
                .map_err(|e| AppError::from_db(e, DUPLICATE_REVIEW))
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::review_written(row.id, row.title_id, row.author_id))
        .await;
    Ok(Review(row))
}

async fn update(ctx: &Context<'_>, id: &ID, input: UpdateReviewInput) -> AppResult<Review> {
    let viewer = ctx.require_user()?;
    let id = ids::require(id, "Review", "id")?;
    let rating = input
        .rating
        .map(|r| validate::rating("input.rating", r))
        .transpose()?;
    if let Some(body) = &input.body {
        validate::text("input.body", body, 1, validate::REVIEW_BODY_MAX)?;
    }
    if rating.is_none() && input.body.is_none() && input.contains_spoilers.is_none() {
        return Err(AppError::bad_input(
            "input",
            "give at least one of rating, body, containsSpoilers",
        ));
    }
    let services = write::admit(ctx, viewer).await?;
    let patch = ReviewPatch {
        rating,
        body: input.body.as_deref(),
        contains_spoilers: input.contains_spoilers,
        updated_at: None,
    };
    let mut conn = services.db.conn().await?;
    let (before, after) = conn
        .transaction::<_, AppError, _>(async |c| {
            let before = db::reviews::lock(c, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no review with this id".into()))?;
            if before.author_id != viewer {
                return Err(AppError::Forbidden(
                    "only its author may edit a review".into(),
                ));
            }
            let after = db::reviews::edit(c, id, &patch).await?;
            Ok((before, after))
        })
        .await?;
    drop(conn);
    let tags = tags::review_edited(after.id, after.title_id, before.rating != after.rating);
    services.cache.invalidate(&tags).await;
    Ok(Review(after))
}

async fn delete(ctx: &Context<'_>, id: &ID) -> AppResult<ID> {
    let viewer = ctx.require_user()?;
    let id = ids::require(id, "Review", "id")?;
    let services = write::admit(ctx, viewer).await?;
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            let row = db::reviews::lock(c, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no review with this id".into()))?;
            write::require_author_or_admin(c, viewer, row.author_id, "review").await?;
            // likes and comments go by cascade; the title's reviewCount and
            // averageRating, the author's reviewCount and the feed total by
            // trigger. Cached comments also depend on their review's tag,
            // so invalidating the review covers them.
            db::reviews::delete(c, id).await?;
            Ok(row)
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::review_written(row.id, row.title_id, row.author_id))
        .await;
    Ok(ids::to_global("Review", row.id))
}

/// Live review events, over WebSocket (graphql-transport-ws) at `/graphql`.
#[derive(Default)]
pub struct ReviewSubscription;

#[Subscription]
impl ReviewSubscription {
    /// A review was created, on any title or on the given one.
    async fn review_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of a title: only its new reviews. All titles when omitted.")]
        title_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Review>>> {
        let title = match &title_id {
            Some(id) => {
                let id = ids::require(id, "Title", "titleId")?;
                must_exist(load_title(ctx, id).await?, "title", id)?;
                Some(id)
            }
            None => None,
        };
        let services = ctx.services()?.clone();
        let events = services.feed.reviews_added(title);
        Ok(events.filter_map(move |event| {
            let services = services.clone();
            async move {
                let event = match event {
                    Ok(event) => event,
                    Err(Lagged { missed }) => return Some(Err(AppError::Lagged { missed }.into())),
                };
                // through the shared loader: a review announced to many
                // subscribers at once is read in one batch
                match services.loader.load_one(ReviewKey(event.review_id)).await {
                    Ok(Some(row)) => Some(Ok(Review(row))),
                    // deleted again before it could be read
                    Ok(None) => None,
                    Err(e) => Some(Err(e.into())),
                }
            }
        }))
    }
}
