//! Reviews: the `Review` type, `ReviewQuery` (review, feed, homeFeed) and
//! `ReviewSubscription` (reviewAdded).

use async_graphql::{Context, Enum, ID, Object, Result, Subscription};
use futures::{Stream, StreamExt};

use super::{
    comment::Comment,
    connection::{CommentConnection, ReviewConnection, Total, decode_after, page_size},
    context::{ContextExt, load_review, load_title, load_user, must_exist, ttl},
    ids,
    loader::{ReviewCommentsKey, ReviewKey, ViewerLikedKey},
    scalars::DateTime,
    title::Title,
    user::User,
};
use crate::{
    cache::tags,
    db::{self, cursor::SortKind, page::PageKey, reviews::ReviewRow, reviews::ReviewSort},
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
    async fn title(&self, ctx: &Context<'_>) -> Result<Title> {
        let row = load_title(ctx, self.0.title_id).await?;
        Ok(Title(must_exist(row, "title", self.0.title_id)?))
    }

    /// Who wrote the review.
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        let row = load_user(ctx, self.0.author_id).await?;
        Ok(User(must_exist(row, "user", self.0.author_id)?))
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
    async fn feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 20)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<ReviewConnection> {
        let first = page_size(first, 20)?;
        let after = decode_after(after.as_deref(), "FD", SortKind::Time)?;
        ctx.tag(tags::FEED.into(), ttl::LIST)?;
        let rows = {
            let mut conn = ctx.services()?.db.conn().await.map_err(AppError::from)?;
            db::reviews::feed_page(&mut conn, after.as_ref(), first + 1)
                .await
                .map_err(AppError::from)?
        };
        Review::tag_all(ctx, &rows)?;
        Ok(ReviewConnection::new(
            rows,
            first,
            after.is_some(),
            |r| r.keyset(ReviewSort::Newest).encode("FD"),
            Review,
            Total::Feed,
        ))
    }

    /// Reviews by the users the viewer follows, newest first. Requires sign-in.
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
